"""memorization: does the model echo its training responses, and how does that grow by epoch?"""

from sfteval.probes.memorization.probe import MemorizationProbe

__all__ = ["MemorizationProbe"]
