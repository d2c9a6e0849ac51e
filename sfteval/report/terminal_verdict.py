"""The verdict block the terminal report starts with: the recommendation and its candidates, the defects (findings
grouped across epochs) and the gate result, sized to fit one 80×40 screen for a run like the demo's.

Warnings and errors are shown in full while they fit LINE_BUDGET; info findings are counted (all are shown with
--detail). All report text goes through `Text` objects, never markup strings.
"""

from __future__ import annotations

from rich import box
from rich.console import Console, Group, RenderableType
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from sfteval.core.formatting import MISSING, format_delta, format_p, format_value
from sfteval.core.recommendation import CandidateScore, Recommendation
from sfteval.core.report import Report
from sfteval.core.results import FindingGroup
from sfteval.report.finding_groups import report_groups
from sfteval.report.gate_render import summary_line
from sfteval.report.recommend import capitalized

LINE_BUDGET = 36
"""Lines the verdict panel may fill (an 80×40 screen less the run line, the borders and a prompt)."""
SEVERITY_MARKS = {"error": ("✖", "bold red"), "warning": ("▲", "yellow"), "info": ("●", "cyan")}


def verdict_panel(report: Report, console: Console, detail: bool = False) -> Panel:
    """Recommendation, candidates, grouped findings and the gate verdict in one panel."""
    width = console.width - 4
    parts: list[RenderableType] = [recommendation_text(report)]
    if report.recommendation is not None and report.recommendation.candidates:
        parts.append(candidates_table(report.recommendation, report))
        parts.extend(
            Text.assemble(("✖ ", "red"), f"{c.variant}: {', '.join(c.exclusions)}")
            for c in report.recommendation.candidates
            if c.exclusions
        )
    parts.append(gate_text(report))
    used = sum(_height(console, part, width) for part in parts)
    verdict = report.recommendation.verdict if report.recommendation is not None else ""
    # A defect every epoch shares is already told by the verdict sentence.
    groups = tuple(group for group in report_groups(report) if capitalized(group.message) not in verdict)
    parts[-1:-1] = findings_lines(groups, console, width, LINE_BUDGET - used, detail)
    return Panel(Group(*parts), title="verdict", title_align="left", box=box.ROUNDED)


def recommendation_text(report: Report) -> Text:
    """The recommendation's verdict sentence, marked ✔ (a checkpoint) or ✖ (none is fit)."""
    recommendation = report.recommendation
    if recommendation is None:
        return Text("● no recommendation: no non-base variant or no headline metric to rank by", style="dim")
    if recommendation.variant is None:
        return Text.assemble(("✖ ", "bold red"), (recommendation.verdict, "bold"))
    verdict = recommendation.verdict or f"Recommended: {recommendation.variant}."
    text = Text("✔ ", style="bold green")
    head, _, rest = verdict.partition(recommendation.variant)
    return text.append(head, style="bold").append(recommendation.variant, style="bold green").append(rest)


def candidates_table(recommendation: Recommendation, report: Report) -> Table:
    """variant | deciding metric | Δ vs base | Δ vs the earliest fit | status, one row per candidate."""
    probe = report.probe(recommendation.probe)
    info = None if probe is None else probe.metric_info(recommendation.metric)
    binary = info is not None and info.binary
    earliest = next((c.variant for c in recommendation.candidates if c.eligible), None)
    table = Table(box=box.SIMPLE, show_edge=False, pad_edge=False, padding=(0, 1))
    table.add_column("candidate", no_wrap=True)
    table.add_column(recommendation.metric, justify="right", no_wrap=True)
    table.add_column("Δ vs base", justify="right", no_wrap=True)
    if any(c.delta_vs_earliest is not None for c in recommendation.candidates):
        table.add_column(f"Δ vs {earliest}", justify="right", no_wrap=True)
    table.add_column("status")
    for candidate in recommendation.candidates:
        row = [
            Text(candidate.variant),
            Text(format_value(candidate.score, binary)),
            _delta(candidate.delta_vs_base, candidate.p_vs_base, binary),
        ]
        if len(table.columns) == 5:
            row.append(_delta(candidate.delta_vs_earliest, candidate.p_vs_earliest, binary))
        table.add_row(*row, _status(candidate, recommendation))
    return table


def findings_lines(
    groups: tuple[FindingGroup, ...], console: Console, width: int, budget: int, detail: bool
) -> list[RenderableType]:
    """Warning and error groups while they fit `budget` lines, then a line counting what is left out."""
    shown: list[RenderableType] = []
    left: list[FindingGroup] = []
    for group in groups:
        text = group_text(group)
        height = _height(console, text, width)
        if detail or (group.severity != "info" and height <= budget - 1):
            shown.append(text)
            budget -= height
        else:
            left.append(group)
    if not groups and not detail:
        shown.append(Text("● no other finding", style="dim"))
    if left:
        counts = {severity: sum(g.severity == severity for g in left) for severity in SEVERITY_MARKS}
        told = ", ".join(f"{count} {severity}" for severity, count in counts.items() if count)
        noun = "finding" if len(left) == 1 else "findings"
        shown.append(Text(f"● {told} {noun} more: --detail shows every finding", style="dim"))
    return shown


def group_text(group: FindingGroup) -> Text:
    """'▲ epochs 1–3 make ...' with a hanging indent left to the console's wrapping."""
    symbol, style = SEVERITY_MARKS[group.severity]
    return Text.assemble((f"{symbol} ", style), group.message)


def gate_text(report: Report) -> Text:
    """The gate's one-line verdict, or that no gate was applied."""
    if report.gate is None:
        return Text("gate: not applied (sfteval gate RUN applies the default policy)", style="dim")
    style = "bold green" if report.gate.passed else "bold red"
    return Text(summary_line(report.gate), style=style)


def _delta(delta: float | None, adjusted_p: float | None, binary: bool) -> Text:
    """'+25.0 p=0.002' (green when significantly up, red when significantly down), or '—'."""
    if delta is None:
        return Text(MISSING, style="dim")
    significant = adjusted_p is not None and adjusted_p <= 0.05
    style = ("green" if delta > 0 else "red") if significant else ""
    text = Text(format_delta(delta, binary), style=style)
    return text.append(f" {format_p(adjusted_p)}" if adjusted_p is not None else "", style="dim")


def _status(candidate: CandidateScore, recommendation: Recommendation) -> Text:
    if candidate.variant == recommendation.variant:
        return Text("recommended", style="bold green")
    if candidate.eligible:
        return Text("fit", style="dim")
    return Text("✖ excluded", style="red")


def _height(console: Console, renderable: RenderableType, width: int) -> int:
    """Lines the renderable takes at `width` columns."""
    return len(console.render_lines(renderable, console.options.update(width=width), pad=False))
