"""The token_shift probe's sentences: each variant's shifted share vs the base with its most often shifted tokens;
shift that stays high late in answers.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from sfteval.core.records import ItemRecord
from sfteval.core.results import Finding, ProbeSlice
from sfteval.probes.shared.sentences import VariantCell, finding, percent, quoted, variant_cells
from sfteval.probes.token_shift.metrics import MARGINAL_RANK, NAME

WARN_LATE_SHIFT = 0.15


def token_shift_findings(report_slice: ProbeSlice, top_tokens: int) -> list[Finding]:
    """Each variant's shifted share vs the base with its most often shifted tokens; late shift as a warning."""
    found: list[Finding] = []
    for cell in variant_cells(report_slice):
        counts = Counter(
            token for record in cell.records for _, token, _ in record.extra.get("shifted_tokens", [])
        )
        share = _pooled_share(cell.records)
        if not counts or share is None:
            continue
        base_share = _pooled_share(cell.base)
        versus = "" if base_share is None else f" (base {percent(base_share)})"
        named = ", ".join(f"{quoted(token, 20)} ×{count}" for token, count in counts.most_common(top_tokens))
        message = (
            f"{cell.variant}: {percent(share)} of its answer tokens are not among the base model's top 3"
            f"{versus}{cell.where}; most often shifted: {named}."
        )
        found.append(
            finding("info", "token_shift", message, NAME, cell.variant, "shifted_pooled", cell.template)
        )
        found += _late_shift_finding(cell)
    return found


def _pooled_share(records: Sequence[ItemRecord], start: int = 0) -> float | None:
    """Shifted tokens / tokens over the records' answers, from position `start` on."""
    ranks = [rank for record in records for rank in (record.extra.get("ranks") or [])[start:]]
    return sum(rank > MARGINAL_RANK for rank in ranks) / len(ranks) if ranks else None


def _late_shift_finding(cell: VariantCell) -> list[Finding]:
    """A warning when shift stays high after the first 20 tokens: content, not just style, moved."""
    late = _pooled_share(cell.records, start=20)
    if late is None or late < WARN_LATE_SHIFT:
        return []
    message = (
        f"{cell.variant} still departs from the base's top-3 choices on {percent(late)} of tokens after the first 20"
        f"{cell.where}: beyond style, SFT changed content (check forgetting)."
    )
    claim = f"depart from the base's top-3 choices on {{value}} of tokens after the first 20{cell.where}"
    return [
        finding(
            "warning", "late_token_shift", message, NAME, cell.variant, "shifted_after20", cell.template,
            value=late, value_text=percent(late), claim=claim,
        )
    ]  # fmt: skip
