"""The HTML report: one self-contained file (inline CSS and SVG, no script, no network) to share a run.

Everything that comes from the report or the item records — names, findings and above all model outputs, which
are untrusted text — is escaped with `html.escape`. The page carries a Content-Security-Policy that allows no
script at all and only its own stylesheet (by hash), so even a rendering bug could not run a planted payload.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Sequence
from html import escape
from pathlib import Path

from sfteval.core.errors import UserError
from sfteval.core.formatting import format_delta, format_interval, format_number, format_p, format_value
from sfteval.core.records import ItemRecord
from sfteval.core.report import GateResult, Report
from sfteval.core.results import ProbeResult
from sfteval.report.charts import Chart, probe_charts
from sfteval.report.finding_groups import report_groups
from sfteval.report.html_style import STYLESHEET
from sfteval.report.samples import SampleItem, sample_outputs

HTML_FILE = "report.html"
_SEVERITY_MARKS = {"error": "✖", "warning": "▲", "info": "●"}


def render_html(report: Report, records: Sequence[ItemRecord] | None, samples_per_variant: int = 8) -> str:
    """The whole page; without records the flips, openings and sample browser are left out (and said so)."""
    items = list(records or [])
    body = [
        _header(report),
        _summary(report),
        *(_probe_section(report, probe, items) for probe in report.probes),
        _samples_section(report, items, samples_per_variant, records is not None),
        _notes(report),
    ]
    digest = base64.b64encode(hashlib.sha256(STYLESHEET.encode("utf-8")).digest()).decode("ascii")
    policy = f"default-src 'none'; style-src 'sha256-{digest}'; img-src 'none'; base-uri 'none'; form-action 'none'"
    title = f"sfteval report: {report.run.suite_name} on {report.run.ckpt_dir}"
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f'<meta http-equiv="Content-Security-Policy" content="{policy}">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{escape(title)}</title>\n<style>{STYLESHEET}</style>\n</head>\n<body>\n"
        + "\n".join(part for part in body if part)
        + "\n</body>\n</html>\n"
    )


def write_html(report: Report, records: Sequence[ItemRecord] | None, path: Path) -> Path:
    """Write the page to `path` (directories created) and return it; an unwritable path is a UserError."""
    page = render_html(report, records)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(page, encoding="utf-8")
    except OSError as error:
        raise UserError(f"{path}: cannot write the HTML report ({error})") from None
    return path


def _header(report: Report) -> str:
    run = report.run
    facts = [
        ("suite", run.suite_name),
        ("checkpoints", run.ckpt_dir),
        ("engine", run.engine),
        ("seed", str(run.seed)),
        ("sfteval", run.sfteval_version),
        ("created", run.created_at.strftime("%Y-%m-%d %H:%M %Z")),
    ]
    if "total" in run.timings:
        facts.append(("run time", f"{format_number(run.timings['total'])} s"))
    rows = "".join(
        f"<tr><td>{escape(v.name)}</td><td>{escape(v.kind)}</td><td>{'' if v.epoch is None else f'{v.epoch:g}'}</td>"
        f"<td>{'' if v.step is None else v.step}</td><td><code>{escape(v.fingerprint[:12])}</code></td>"
        f'<td class="path">{escape(v.path)}</td></tr>'
        for v in run.variants
    )
    warning = (
        ""
        if run.complete
        else '<p class="incomplete">Incomplete run: some results are missing; rerun the same command to resume.</p>'
    )
    navigation = " · ".join(
        f'<a href="#probe-{escape(probe.name)}">{escape(probe.name)}</a>' for probe in report.probes
    )
    return (
        '<header>\n<h1>sfteval report</h1>\n<dl class="facts">'
        + "".join(f"<div><dt>{escape(key)}</dt><dd>{escape(value)}</dd></div>" for key, value in facts)
        + f'</dl>\n{warning}\n<table class="variants"><thead><tr><th>variant</th><th>kind</th><th>epoch</th>'
        f"<th>step</th><th>fingerprint</th><th>path</th></tr></thead><tbody>{rows}</tbody></table>\n"
        f'<nav>{navigation} · <a href="#samples">sample outputs</a></nav>\n</header>'
    )


def _summary(report: Report) -> str:
    """Recommendation, gate verdict and findings."""
    parts = ['<section id="summary">\n<h2>Summary</h2>', _recommendation(report)]
    if report.gate is not None:
        parts.append(_gate(report.gate))
    groups = "".join(_finding_item(group.severity, group.message) for group in report_groups(report))
    each = "".join(_finding_item(finding.severity, finding.message) for finding in report.findings)
    parts.append(
        f'<h3>Findings</h3>\n<ul class="findings">{groups}</ul>\n<details><summary>one per variant '
        f'({len(report.findings)})</summary><ul class="findings">{each}</ul></details>'
        if groups
        else '<h3>Findings</h3>\n<p class="dim">No significant change in any headline metric.</p>'
    )
    return "\n".join(parts) + "\n</section>"


def _finding_item(severity: str, message: str) -> str:
    return (
        f'<li class="finding {escape(severity)}"><span class="mark">{_SEVERITY_MARKS[severity]} '
        f"{escape(severity)}</span> {escape(message)}</li>"
    )


def _recommendation(report: Report) -> str:
    """The verdict, the candidates table, the reasons and the rule."""
    recommendation = report.recommendation
    if recommendation is None:
        return '<p class="recommendation dim">No recommendation: no non-base variant or no headline metric to rank by.</p>'
    state = "chosen" if recommendation.variant is not None else "none"
    verdict = escape(recommendation.verdict or "No eligible variant has a score.")
    if recommendation.variant is not None:
        verdict = verdict.replace(
            escape(recommendation.variant), f"<strong>{escape(recommendation.variant)}</strong>", 1
        )
    reasons = "".join(f"<li>{escape(reason)}</li>" for reason in recommendation.reasons)
    return (
        f'<div class="recommendation {state}"><p>{verdict}</p>{_candidates(report)}'
        f"<details><summary>why</summary><ul>{reasons}</ul>"
        f'<p class="dim">Rule: {escape(recommendation.rule)}</p></details></div>'
    )


def _candidates(report: Report) -> str:
    """variant | deciding metric | Δ vs base (Holm p) | Δ vs the earliest fit (Holm p) | status."""
    recommendation = report.recommendation
    assert recommendation is not None
    probe = report.probe(recommendation.probe)
    info = None if probe is None else probe.metric_info(recommendation.metric)
    binary = info is not None and info.binary

    rows = []
    for candidate in recommendation.candidates:
        if candidate.variant == recommendation.variant:
            status = "<strong>recommended</strong>"
        else:
            status = "fit" if candidate.eligible else "excluded: " + escape(", ".join(candidate.exclusions))
        rows.append(
            f"<tr><td>{escape(candidate.variant)}</td><td>{escape(format_value(candidate.score, binary))}</td>"
            f"<td>{_delta_cell(candidate.delta_vs_base, candidate.p_vs_base, binary)}</td>"
            f"<td>{_delta_cell(candidate.delta_vs_earliest, candidate.p_vs_earliest, binary)}</td>"
            f"<td>{status}</td></tr>"
        )
    return (
        f'<table class="candidates"><thead><tr><th>candidate</th><th>{escape(recommendation.metric)}</th>'
        "<th>Δ vs base</th><th>Δ vs earliest fit</th><th>status</th></tr></thead>"
        f"<tbody>{''.join(rows)}</tbody></table>"
    )


def _delta_cell(delta: float | None, adjusted_p: float | None, binary: bool) -> str:
    """'+40.0 (p&lt;0.001)', or '—' when not compared."""
    if delta is None:
        return "—"
    return escape(format_delta(delta, binary) + ("" if adjusted_p is None else f" ({format_p(adjusted_p)})"))


def _gate(gate: GateResult) -> str:
    verdict = "passed" if gate.passed else "failed"
    rows = "".join(
        f'<tr class="{escape(check.verdict)}"><td>{escape(check.verdict)}</td><td>{escape(check.rule)}</td>'
        f"<td>{escape(check.variant or '—')}</td><td>{escape(check.template or '—')}</td>"
        f"<td>{escape(check.message)}</td></tr>"
        for check in gate.checks
    )
    return (
        f'<div class="gate {verdict}"><h3>Gate {verdict}</h3><p class="dim">Policy {escape(gate.policy)} '
        f"(variants: {escape(gate.scope)})</p><details><summary>{len(gate.checks)} checks</summary>"
        f"<table><thead><tr><th>verdict</th><th>rule</th><th>variant</th><th>template</th><th>detail</th></tr>"
        f"</thead><tbody>{rows}</tbody></table></details></div>"
    )


def _probe_section(report: Report, probe: ProbeResult, records: Sequence[ItemRecord]) -> str:
    charts = "".join(_figure(chart) for chart in probe_charts(report, probe, records))
    power = f'<p class="dim">Power: {escape(probe.mde_note)}</p>' if probe.mde_note else ""
    return (
        f'<section class="probe" id="probe-{escape(probe.name)}">\n<h2>{escape(probe.name)} '
        f'<span class="dim">v{probe.version}</span></h2>\n{power}\n<div class="charts">{charts}</div>\n'
        f"{_metrics_table(report, probe)}\n</section>"
    )


def _figure(chart: Chart) -> str:
    return (
        f'<figure class="chart" data-kind="{escape(chart.kind)}">{chart.svg}'
        f"<figcaption><strong>{escape(chart.title)}</strong><br>{escape(chart.caption)}</figcaption></figure>"
    )


def _metrics_table(report: Report, probe: ProbeResult) -> str:
    """Metrics (× templates) as rows, variants as columns: value [CI] and Δ vs base, coloured, * when significant."""
    variants = list(dict.fromkeys(cell.variant for cell in probe.cells))
    if not variants:
        return '<p class="dim">No item records.</p>'
    several = len(probe.templates) > 1
    deltas = {(c.metric, c.template, c.variant): c for c in report.comparisons_of(probe.name, "base")}
    head = (
        "<th>metric</th>"
        + ("<th>template</th>" if several else "")
        + "".join(f"<th>{escape(variant)}</th>" for variant in variants)
    )
    rows = []
    for info in probe.metrics:
        for template in probe.templates:
            cells = []
            for variant in variants:
                cell = probe.cell(variant, template)
                value = None if cell is None else cell.metric(info.name)
                if value is None or value.value is None:
                    cells.append('<td class="dim">—</td>')
                    continue
                text = escape(format_value(value.value, info.binary))
                if value.method != "summary":
                    text += f' <span class="dim">{escape(format_interval(value.low, value.high, info.binary))}</span>'
                comparison = deltas.get((info.name, template, variant))
                if comparison is not None:
                    star = "*" if comparison.significant else ""
                    significance = " significant" if comparison.significant else ""
                    text += (
                        f'<br><span class="delta {comparison.direction}{significance}">Δ '
                        f"{escape(format_delta(comparison.delta, info.binary))}{star}</span>"
                    )
                cells.append(f"<td>{text}</td>")
            name = f"<strong>{escape(info.name)}</strong>" if info.headline else escape(info.name)
            described = f'<td title="{escape(info.description)}">{name}</td>'
            template_cell = f"<td>{escape(template)}</td>" if several else ""
            rows.append(f"<tr>{described}{template_cell}{''.join(cells)}</tr>")
    return (
        f'<table class="metrics"><thead><tr>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table>'
        f'<p class="dim">Δ vs base (points for %); * significant after Holm correction '
        f"(α={report.stats.alpha:g}); green better, red worse.</p>"
    )


def _samples_section(
    report: Report, records: Sequence[ItemRecord], per_variant: int, have_records: bool
) -> str:
    """Per probe and variant, the same sampled items' prompts and outputs, shown as text."""
    if not have_records:
        return '<section id="samples"><h2>Sample outputs</h2><p class="dim">items.jsonl was not available.</p></section>'
    sampled = sample_outputs(records, [probe.name for probe in report.probes], per_variant)
    blocks = []
    for probe, by_variant in sampled.items():
        variants = "".join(
            f'<details><summary>{escape(variant)} <span class="dim">({len(items)} items)</span></summary>'
            + "".join(_sample(item) for item in items)
            + "</details>"
            for variant, items in by_variant.items()
        )
        blocks.append(
            f'<details class="probe-samples"><summary>{escape(probe)}</summary>{variants}</details>'
        )
    content = "".join(blocks) or '<p class="dim">No generated outputs in this run.</p>'
    return (
        '<section id="samples">\n<h2>Sample outputs</h2>\n<p class="dim">The same items for every checkpoint, '
        f"at most {per_variant} per probe; model outputs are shown as plain text.</p>\n{content}\n</section>"
    )


def _sample(item: SampleItem) -> str:
    metrics = ", ".join(f"{escape(name)}={escape(value)}" for name, value in item.metrics)
    prompt = (
        f'<details class="prompt"><summary>prompt</summary><pre>{escape(item.prompt)}</pre></details>'
        if item.prompt
        else ""
    )
    output = f'<pre class="output">{escape(item.output)}</pre>' if item.output is not None else ""
    return (
        f'<article class="sample"><p class="sample-head"><code>{escape(item.item_id)}</code> · '
        f'{escape(item.template)} · <span class="dim">{metrics}</span></p>{prompt}{output}</article>'
    )


def _notes(report: Report) -> str:
    notes = "".join(f"<li>{escape(note)}</li>" for note in report.notes)
    footer = f"report schema v{report.schema_version} · {report.stats.confidence * 100:g}% intervals · "
    footer += f"{report.stats.n_resamples} bootstrap resamples, seed {report.stats.seed}"
    return (f'<section id="notes"><h2>Notes</h2><ul>{notes}</ul></section>\n' if notes else "") + (
        f'<footer class="dim">{escape(footer)}</footer>'
    )
