"""termination: does the model stop, keep template markers out of its answers, and avoid loops?"""

from sfteval.probes.termination.probe import TerminationProbe

__all__ = ["TerminationProbe"]
