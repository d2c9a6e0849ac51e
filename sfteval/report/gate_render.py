"""Renderers of a GateResult: a rich table, JUnit XML (shown by CI systems) and a Markdown step summary."""

from __future__ import annotations

import xml.etree.ElementTree as ElementTree
from collections import Counter

from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from sfteval.core.formatting import MISSING, format_p, format_value
from sfteval.core.report import GateCheck, GateResult, Report
from sfteval.report.diff_render import markdown_cell

_VERDICT_STYLES = {"pass": "green", "fail": "bold red", "warn": "yellow", "skipped": "dim"}
_VERDICT_MARKS = {"pass": "✔", "fail": "✖", "warn": "▲", "skipped": "–"}


def render_gate(result: GateResult, console: Console) -> None:
    """Every check with its value, bound and verdict; the reasons for fails and warnings; the overall verdict."""
    table = Table(
        title=Text(f"gate: {result.policy}", style="bold"),
        caption=Text("values in % for binary metrics; drops and gains vs base in points", style="dim"),
        box=box.SIMPLE_HEAVY,
    )
    for column in ("verdict", "rule", "variant", "value", "bound"):
        table.add_column(column, overflow="fold")
    for check in result.checks:
        if check.verdict == "skipped":
            continue
        table.add_row(
            Text(f"{_VERDICT_MARKS[check.verdict]} {check.verdict}", style=_VERDICT_STYLES[check.verdict]),
            Text(check.rule),
            Text(_where(check)),
            Text(format_check_value(check)),
            Text(format_bound(check)),
        )
    console.print(table)
    for check in result.checks:
        if check.verdict in ("fail", "warn"):
            mark = Text(
                f"{_VERDICT_MARKS[check.verdict]} {check.rule} ({_where(check)}): ",
                _VERDICT_STYLES[check.verdict],
            )
            console.print(mark + Text(check.message))
    skipped = {check.rule: check.message for check in result.checks if check.verdict == "skipped"}
    for rule, why in skipped.items():
        console.print(Text(f"skipped {rule}: {why}", style="dim"))
    if result.baseline is not None:
        console.print(Text(f"baseline: {result.baseline}", style="bold"))
    for note in result.notes:
        console.print(Text(f"note: {note}", style="dim"))
    console.print(Text(summary_line(result), style="bold green" if result.passed else "bold red"))


def _where(check: GateCheck) -> str:
    """`epoch-2 · chatml`, `epoch-2`, or `—` for a rule skipped as a whole."""
    return " · ".join(part for part in (check.variant, check.template) if part) or MISSING


def summary_line(result: GateResult) -> str:
    """`gate passed: epoch-2 passes every fail-rule (3 pass, 1 warn, 2 skipped)` or why it failed."""
    counts = Counter(check.verdict for check in result.checks)
    tally = ", ".join(
        f"{counts[verdict]} {verdict}" for verdict in ("pass", "fail", "warn", "skipped") if counts[verdict]
    )
    gated = ", ".join(result.gated_variants) or "no variant"
    regressed = [
        check.rule
        for check in result.checks
        if check.verdict == "fail" and check.check in ("not_worse_than_baseline", "max_drop_vs_baseline")
    ]
    if regressed:
        rules = ", ".join(dict.fromkeys(regressed))
        return f"gate failed: regressed against the baseline {result.baseline} (rule {rules}; {tally})"
    if result.passed:
        return f"gate passed ({result.scope}): {gated} passes every fail-rule ({tally})"
    if not result.gated_variants:
        return (
            f"gate failed ({result.scope}): no checkpoint is recommended, every candidate has a defect "
            f"or breaks a fail-rule ({tally})"
        )
    broken = [name for name in result.gated_variants if name in result.failed_variants]
    return f"gate failed ({result.scope}): {', '.join(broken)} broke a fail-rule ({tally})"


def recommendation_line(report: Report) -> Text:
    """The recommendation after gating: the best checkpoint among those passing every fail-rule, or none."""
    recommendation = report.recommendation
    if recommendation is None:
        return Text("no recommendation: no non-base variant or no headline metric to rank by", style="dim")
    if recommendation.variant is None:
        return Text(f"no recommended checkpoint. {recommendation.verdict}".rstrip(), style="bold red")
    probe = report.probe(recommendation.probe)
    info = None if probe is None else probe.metric_info(recommendation.metric)
    score = format_value(recommendation.score, info is not None and info.binary)
    return Text.assemble(
        ("recommended checkpoint: ", "bold"),
        (recommendation.variant, "bold green"),
        f" ({recommendation.metric} of {recommendation.probe} {score}; no defect, passes every fail-rule)",
    )


def format_check_value(check: GateCheck) -> str:
    """The observed value: the metric (min/max), the drop or gain in points, or the Holm p-value."""
    if check.value is None:
        return MISSING
    if check.check in ("not_worse_than_base", "not_worse_than_baseline"):
        return format_p(check.value)
    if check.check in ("max_drop", "min_gain", "max_drop_vs_baseline"):
        return _points(check.value, check.binary)
    return format_value(check.value, check.binary)


def format_bound(check: GateCheck) -> str:
    """The rule's bound in words: `≥ 50.0%`, `drop ≤ 5.0 pts`, `not significantly worse`."""
    if check.check == "not_worse_than_base":
        return "not sig. worse than base"
    if check.check == "not_worse_than_baseline":
        return "not sig. worse than baseline"
    if check.check == "max_drop_vs_baseline" and check.bound is not None:
        return f"drop vs baseline ≤ {_points(check.bound, check.binary)}"
    if check.bound is None:
        return MISSING
    if check.check == "min":
        return f"≥ {format_value(check.bound, check.binary)}"
    if check.check == "max":
        return f"≤ {format_value(check.bound, check.binary)}"
    noun, sign = ("drop", "≤") if check.check == "max_drop" else ("gain", "≥")
    return f"{noun} {sign} {_points(check.bound, check.binary)}"


def gate_junit(result: GateResult) -> str:
    """JUnit XML: one test case per check; fail → <failure>, skipped → <skipped>, warn → passes with output."""
    counts = Counter(check.verdict for check in result.checks)
    suites = ElementTree.Element("testsuites", name="sfteval gate")
    suite = ElementTree.SubElement(
        suites,
        "testsuite",
        name=f"sfteval gate {result.policy}",
        tests=str(len(result.checks)),
        failures=str(counts["fail"]),
        errors="0",
        skipped=str(counts["skipped"]),
    )
    properties = ElementTree.SubElement(suite, "properties")
    for name, value in (
        ("policy", result.policy),
        ("scope", result.scope),
        ("passed", str(result.passed).lower()),
    ):
        ElementTree.SubElement(properties, "property", name=name, value=value)
    for check in result.checks:
        case = ElementTree.SubElement(
            suite, "testcase", classname=f"sfteval.gate.{check.probe}", name=_case_name(check), time="0"
        )
        detail = f"{check.message} [value {format_check_value(check)}; bound {format_bound(check)}]"
        if check.verdict == "fail":
            ElementTree.SubElement(case, "failure", message=check.message, type=check.check).text = detail
        elif check.verdict == "skipped":
            ElementTree.SubElement(case, "skipped", message=check.message)
        else:
            ElementTree.SubElement(case, "system-out").text = f"{check.verdict}: {detail}"
    ElementTree.indent(suites)
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n' + ElementTree.tostring(suites, encoding="unicode") + "\n"
    )


def gate_markdown(result: GateResult) -> str:
    """A Markdown step summary: the verdict line and a table of every check."""
    icon = "✅" if result.passed else "❌"
    lines = [
        f"### {icon} sfteval gate",
        "",
        markdown_cell(summary_line(result)),
        "",
        f"Policy: `{markdown_cell(result.policy)}`"
        + (f" · baseline: {markdown_cell(result.baseline)}" if result.baseline else ""),
        "",
        *(f"- {markdown_cell(note)}" for note in result.notes),
        *([""] if result.notes else []),
        "| verdict | rule | variant | template | value | bound | detail |",
        "|---|---|---|---|---:|---|---|",
    ]
    for check in result.checks:
        cells = (
            f"{_VERDICT_MARKS[check.verdict]} {check.verdict}",
            check.rule,
            check.variant or MISSING,
            check.template or MISSING,
            format_check_value(check),
            format_bound(check),
            check.message,
        )
        lines.append("| " + " | ".join(markdown_cell(cell) for cell in cells) + " |")
    return "\n".join(lines) + "\n"


def _case_name(check: GateCheck) -> str:
    where = _where(check)
    return f"{check.rule} · {check.check}" + (f" [{where}]" if where != MISSING else "")


def _points(value: float, binary: bool) -> str:
    return f"{100 * value:.1f} pts" if binary else f"{value:.3g}"
