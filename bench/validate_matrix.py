"""The detection matrix of bench/validate_defects.py: per column, which report comparisons flag it, and the table.

A column is flagged for a variant when its report holds a comparison of the final epoch against base, of one of
the column's named metrics, with Holm-adjusted p < 0.05 (Holm per probe and reference, as the report does it)
and a delta in the defect's direction. These rules were fixed before the final full run.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rich.table import Table
from rich.text import Text

from sfteval.probes.spurious_prefix.probe import MAX_CANDIDATES, candidate_metric

ALPHA = 0.05


@dataclass(frozen=True)
class Column:
    """One diagnostic column: its probe and the metrics that flag it (+1: up is the defect; -1: down is)."""

    name: str
    probe: str
    metrics: dict[str, int]
    counts: bool = True
    described: str = ""

    def rule(self) -> str:
        """The flag rule in words, for the docstring, README and validation.json."""
        parts = self.described or " or ".join(
            f"{metric} {'up' if sign > 0 else 'down'}" for metric, sign in self.metrics.items()
        )
        kind = "" if self.counts else " (information only: not a defect flag)"
        return f"{self.probe}: {parts} vs base, Holm-adjusted p < {ALPHA:g}{kind}"


def columns() -> tuple[Column, ...]:
    """The matrix's columns: eight defect diagnostics, then two information columns."""
    return (
        Column(
            "spurious prefix",
            "spurious_prefix",
            {
                "dominant_prefix": 1,
                "prefix_logprob": 1,
                **{candidate_metric(k): 1 for k in range(1, MAX_CANDIDATES + 1)},
            },
            described="dominant_prefix up or prefix_logprob (any candidate) up or prefix_logprob_k "
            "(candidate k on its own) up",
        ),
        Column("termination", "termination", {"terminator_prob": -1, "non_terminated": 1}),
        Column(
            "template brittleness",
            "template_brittleness",
            {"sft_template_gap": 1, "if_template_gap": 1, "mc_template_gap": 1},
        ),
        Column("forgetting", "forgetting", {"acc": -1, "bits_per_byte": 1}),
        Column("memorization", "memorization", {"train_extracted": 1}),
        Column("style tics", "style_tics", {"tic_rate": 1, "tic_any": 1}),
        Column("over-refusal", "refusal", {"over_refusal": 1, "safe_refusal_logprob": 1}),
        Column("overconfidence", "calibration", {"overconfident_wrong": 1, "overconfidence": 1}),
        Column("instruction following", "instruction_following", {"prompt_loose": -1}, counts=False),
        Column("token shift", "token_shift", {"shifted": 1}, counts=False),
    )


def flags(column: Column, comparison: Any) -> bool:
    """Whether one report comparison (final epoch vs base) flags the column."""
    sign = column.metrics.get(comparison.metric)
    return sign is not None and comparison.adjusted_p < ALPHA and comparison.delta * sign > 0


def cell(report: Any, column: Column, variant: str) -> dict[str, Any] | None:
    """The column's cell for `variant`: its flagging comparison with the least adjusted p, else its closest one."""
    candidates = [
        comparison
        for comparison in report.comparisons_of(column.probe, "base")
        if comparison.variant == variant and comparison.metric in column.metrics
    ]
    if not candidates:
        return None

    def rank(comparison: Any) -> tuple[bool, bool, int, float]:
        in_direction = comparison.delta * column.metrics[comparison.metric] > 0
        order = list(column.metrics).index(comparison.metric)
        return (not flags(column, comparison), not in_direction, order, comparison.adjusted_p)

    chosen = min(candidates, key=rank)
    value = _value(report, column.probe, variant, chosen.template, chosen.metric)
    return {
        "metric": chosen.metric,
        "template": chosen.template,
        "value": value,
        "base": _value(report, column.probe, "base", chosen.template, chosen.metric),
        "delta": chosen.delta,
        "low": chosen.low,
        "high": chosen.high,
        "p": chosen.p_value,
        "p_adjusted": chosen.adjusted_p,
        "test": chosen.test,
        "n": chosen.n,
        "flagged": flags(column, chosen),
        "flagged_by": sorted(
            f"{comparison.metric} ({comparison.template})"
            for comparison in candidates
            if flags(column, comparison)
        ),
    }


def _value(report: Any, probe: str, variant: str, template: str, metric: str) -> float | None:
    """A metric's mean in one cell of the report, or None."""
    result = report.probe(probe)
    found = result.cell(variant, template) if result else None
    value = found.metric(metric) if found else None
    return value.value if value else None


def target_misses(rows: dict[str, dict[str, Any]]) -> list[str]:
    """Cells that miss the target: a planted defect its column does not flag; any flag on the clean control."""
    misses = []
    for key, row in rows.items():
        cells = row["cells"]
        expected = row["expected_column"]
        for column in columns():
            if not column.counts:
                continue
            flagged = bool(cells.get(column.name) and cells[column.name]["flagged"])
            if column.name == expected and not flagged:
                misses.append(f"({key}) {row['name']}: {column.name} not flagged (planted defect missed)")
            if expected is None and flagged:
                misses.append(
                    f"({key}) {row['name']}: {column.name} flagged on the clean control (false alarm)"
                )
    return misses


def matrix_table(rows: dict[str, dict[str, Any]]) -> Table:
    """Rows = variants, columns = diagnostics; planted cells are framed, flags green on target and red off it."""
    table = Table(title="planted-defect detection matrix (final epoch vs base; p = Holm-adjusted)")
    table.add_column("variant", no_wrap=True)
    for column in columns():
        table.add_column(column.name + ("" if column.counts else " (info)"), overflow="fold")
    for key, row in rows.items():
        cells = [Text(f"({key}) {row['name']}\n{row['epoch_variant']}", style="bold")]
        for column in columns():
            cells.append(
                _cell_text(row["cells"].get(column.name), column, column.name == row["expected_column"])
            )
        table.add_row(*cells)
    return table


def verdict(found: dict[str, Any], column: Column, expected: bool) -> str:
    """A cell's outcome: flagged, off-target (flagged, not planted here), missed, sig. (information column) or ''."""
    if not column.counts:
        return "sig." if found["flagged"] else ""
    if found["flagged"]:
        return "flagged" if expected else "off-target"
    return "missed" if expected else ""


_TERMINAL = {
    "flagged": ("FLAG", "bold green"),
    "off-target": ("FLAG", "bold red"),
    "missed": ("missed", "bold red"),
    "sig.": ("flag", "cyan"),
    "": ("–", "dim"),
}
_MARKDOWN = {
    "flagged": " **flagged**",
    "off-target": " **flagged (off-target)**",
    "missed": " **missed**",
    "sig.": " sig.",
    "": "",
}


def _cell_text(found: dict[str, Any] | None, column: Column, expected: bool) -> Text:
    """'prefix_logprob -4.1 (Δ +6.2) p 0.001 FLAG', coloured by whether it meets the target."""
    if found is None:
        return Text("no comparison", style="dim")
    value = "–" if found["value"] is None else f"{found['value']:.3g}"
    text = Text(f"{found['metric']}")
    if found["template"] not in ("-", ""):
        text.append(f" [{found['template']}]", style="dim")
    text.append(f"\n{value} (Δ {found['delta']:+.3g})\np {found['p_adjusted']:.2g} ")
    text.append(*_TERMINAL[verdict(found, column, expected)])
    return text


def markdown(rows: dict[str, dict[str, Any]]) -> str:
    """The matrix as the README's markdown table: per cell metric, value, Δ vs base, Holm p and the verdict."""
    names = {"spurious prefix": "prefix", "template brittleness": "template"}
    header = ["variant"] + [
        names.get(column.name, column.name) + ("" if column.counts else " (info)") for column in columns()
    ]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for key, row in rows.items():
        cells = [f"({key}) {row['name']}"]
        for column in columns():
            found = row["cells"].get(column.name)
            expected = column.name == row["expected_column"]
            cells.append(_markdown_cell(found, column, expected))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _markdown_cell(found: dict[str, Any] | None, column: Column, expected: bool) -> str:
    """'prefix_logprob_1 -9.8 (Δ +4.0, p 1e-08) **flagged**'."""
    if found is None:
        return "no comparison"
    value = "–" if found["value"] is None else f"{found['value']:.3g}"
    text = f"{found['metric']} {value} (Δ {found['delta']:+.2g}, p {found['p_adjusted']:.1g})"
    return text + _MARKDOWN[verdict(found, column, expected)]


if __name__ == "__main__":
    import json
    import sys
    from pathlib import Path

    document = json.loads(Path(sys.argv[1] if len(sys.argv) > 1 else "bench/validation.json").read_text())
    print(markdown(document["rows"]))
