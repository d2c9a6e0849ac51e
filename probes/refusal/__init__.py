"""refusal: does the model refuse what it should answer, or answer what it should refuse?"""

from sfteval.probes.refusal.probe import RefusalProbe

__all__ = ["RefusalProbe"]
