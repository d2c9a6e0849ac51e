"""Over-refusal and lost refusals: the prompt sets, the string-match refusal classifier and the refusal probe."""

from .classifier import classify
from .probe import RefusalParams, RefusalProbe

__all__ = ["RefusalParams", "RefusalProbe", "classify"]
