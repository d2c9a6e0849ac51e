"""'What changed' between two runs, in words, largest first: the block `sfteval diff` starts with.

Only comparable rows whose Holm-adjusted test is significant are told. They are ranked by size on a common scale:
for binary metrics (and run-relative rates) the change itself, a share of items (0.75 = 75 points); for other
metrics the change relative to the larger of the two values (0.2 → 0.3 is 0.33), so a rate that moved 75 points
leads a loss that moved 3%.
"""

from __future__ import annotations

from collections.abc import Sequence

from sfteval.core.formatting import format_magnitude, format_p, format_value
from sfteval.report.diff_model import DiffRow

_JUDGEMENTS = {"better": "better", "worse": "worse", "neutral": "no direction"}


def what_changed(rows: Sequence[DiffRow]) -> tuple[str, ...]:
    """One sentence per significant, comparable change, largest first."""
    changed = [row for row in rows if row.significant and row.comparable and row.delta is not None]
    return tuple(describe(row) for row in sorted(changed, key=size, reverse=True))


def size(row: DiffRow) -> float:
    """The change on a common scale: a share of items for binary metrics, else relative to the larger value."""
    delta = abs(row.delta or 0.0)
    if row.binary:
        return delta
    scale = max(abs(row.value_a or 0.0), abs(row.value_b or 0.0))
    return delta / scale if scale > 0 else delta


def describe(row: DiffRow) -> str:
    """ "spurious_prefix (chatml): opens with 'The sentiment is:' rose 75.0 points, 0.0% → 75.0% (paired n=40,
    Holm p<0.001; worse); run B defined it, both runs' outputs scored for it.\""""
    delta = row.delta or 0.0
    verb = "rose" if delta > 0 else "fell"
    values = f"{format_value(row.value_a, row.binary)} → {format_value(row.value_b, row.binary)}"
    pairing = f"paired n={row.n_pairs}" if row.mode == "paired" else f"unpaired {row.n_a} vs {row.n_b}"
    p_value = format_p(row.adjusted_p if row.adjusted_p is not None else 1.0)
    sentence = (
        f"{row.probe} ({row.template}): {row.metric} {verb} {format_magnitude(delta, row.binary)}, {values} "
        f"({pairing}, Holm {p_value}; {_JUDGEMENTS[row.direction]})"
    )
    if row.defined_by in ("A", "B"):
        sentence += f"; run {row.defined_by} defined it, both runs' outputs scored for it"
    return sentence + "."
