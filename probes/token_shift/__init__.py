"""token_shift: which tokens of a variant's answers would the base model not have chosen? (URIAL)"""

from sfteval.probes.token_shift.probe import TokenShiftProbe

__all__ = ["TokenShiftProbe"]
