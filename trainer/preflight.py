"""Checks `sfteval train` makes before it loads a model: a writable output directory, and data that teaches answers.

Both used to fail late or not at all: an `--out` that is a file or read-only failed after the model had loaded, and
data whose every response is empty trained a model to stop without answering, with exit 0 (lint calls the same rows
`empty_response` errors). Training now refuses data where fewer than MIN_ANSWERED_SHARE of the rows it trains on
have a response with text, in the lint finding's words.
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from pathlib import Path

from sfteval.core.errors import UserError
from sfteval.templates import TrainOn
from sfteval.trainer.encode import EncodedRow
from sfteval.trainer.lint.run import ROW_CHECKS
from sfteval.trainer.summaries import trained_responses

MIN_ANSWERED_SHARE = 0.5


def check_output_directory(out: Path) -> None:
    """`--out` must be a directory this process can write in, or creatable in one (nothing is created here)."""
    existing = out
    while not existing.exists() and existing.parent != existing:
        existing = existing.parent
    if not existing.is_dir():
        what = "exists and is not a directory" if existing == out else f"{existing} is not a directory"
        raise UserError(f"--out {out}: {what}")
    try:
        with tempfile.TemporaryFile(dir=existing):
            pass
    except OSError as error:
        raise UserError(f"--out {out}: cannot write in {existing} ({error.strerror or error})") from None


def check_answers(rows: Sequence[EncodedRow], train_on: TrainOn, source: Path) -> None:
    """Refuse data where fewer than MIN_ANSWERED_SHARE of the trained rows have every trained response non-empty."""
    used = [row.conversation for row in rows if row.used]
    empty = [
        conversation.id
        for conversation in used
        if any(not response.strip() for response in trained_responses([conversation], train_on))
    ]
    if used and len(used) - len(empty) < MIN_ANSWERED_SHARE * len(used):
        words = ROW_CHECKS["empty_response"][1]
        raise UserError(
            f"{source}: {len(empty)} of {len(used)} rows have {words} (lint check empty_response, rows "
            f"{', '.join(empty[:3])}{', ...' if len(empty) > 3 else ''}); training needs at least "
            f"{MIN_ANSWERED_SHARE:.0%} of its rows with a response",
            hint="see `sfteval lint`",
        )
