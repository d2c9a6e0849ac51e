"""The registry of IFEval's 25 verifiable instructions, by their IFEval ids and kwarg names.

checker = get_checker("length_constraints:number_words")
checker.describe(num_words=100, relation="at least")   # "Answer with at least 100 words."
checker.check(response, num_words=100, relation="at least")
"""

from __future__ import annotations

from . import content_checkers, format_checkers  # noqa: F401  (importing them registers their checkers)
from .base import CHECKERS, LANGUAGE_NAMES, RELATIONS, Checker

__all__ = ["CHECKERS", "LANGUAGE_NAMES", "RELATIONS", "Checker", "get_checker", "instruction_ids"]


def get_checker(instruction_id: str) -> Checker:
    """The checker for an IFEval instruction id; UserError with a did-you-mean for unknown ids."""
    return CHECKERS.get(instruction_id)


def instruction_ids() -> list[str]:
    """All registered instruction ids, sorted."""
    return CHECKERS.names()
