"""Which charts a report gets, derived from whatever it holds (no probe is special-cased by name).

Per probe: each headline metric across base → epochs with CI bands (the first directional metric when a probe has
no headline), one series per serving template; a per-template bar chart when the probe was probed under several
templates; flips vs base (items that went 1 → 0 and 0 → 1) for binary headline metrics, from the item records;
the distribution of response openings when the probe's records carry an `opening` (e.g. spurious_prefix); and a
reliability diagram when they carry a per-item `confidence` and 0/1 `correct` (e.g. calibration).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

from sfteval.core.formatting import format_interval, format_value
from sfteval.core.records import ItemRecord
from sfteval.core.report import Report
from sfteval.core.results import MetricInfo, ProbeResult
from sfteval.report.svg import (
    BETTER,
    WORSE,
    Point,
    Series,
    bar_chart,
    diverging_chart,
    line_chart,
    stacked_chart,
)

BASE = "base"
TOP_OPENINGS = 5
MAX_SERIES = 8


@dataclass(frozen=True)
class Chart:
    """One figure of the HTML report."""

    kind: str
    probe: str
    title: str
    caption: str
    svg: str


def probe_charts(report: Report, probe: ProbeResult, records: Sequence[ItemRecord]) -> list[Chart]:
    """Every chart the probe's results (and its item records, when given) support."""
    charts = [
        chart for info in chart_metrics(probe) if (chart := trend_chart(report, probe, info)) is not None
    ]
    charts += [chart for info in chart_metrics(probe) if (chart := template_chart(probe, info)) is not None]
    headline_binary = [info for info in probe.metrics if info.headline and info.binary and info.per_item]
    charts += [chart for info in headline_binary if (chart := flips_chart(probe, info, records)) is not None]
    extras = (openings_chart(probe, records), reliability_chart(probe, records))
    return charts + [chart for chart in extras if chart is not None]


def chart_metrics(probe: ProbeResult) -> list[MetricInfo]:
    """The probe's headline metrics, or its first metric with a direction when it declares none."""
    headline = [info for info in probe.metrics if info.headline]
    if headline:
        return headline
    directional = [info for info in probe.metrics if info.higher_is_better is not None]
    return directional[:1] or list(probe.metrics[:1])


def variant_order(report: Report, probe: ProbeResult) -> list[str]:
    """The run's variants that have at least one cell in the probe, in run order."""
    present = {cell.variant for cell in probe.cells}
    return [variant.name for variant in report.run.variants if variant.name in present]


def trend_chart(report: Report, probe: ProbeResult, info: MetricInfo) -> Chart | None:
    """The metric across base → epochs, one line per template, CI bands, * where significantly different from base."""
    variants = variant_order(report, probe)
    significant = {
        (c.template, c.variant)
        for c in report.comparisons_of(probe.name, "base")
        if c.metric == info.name and c.significant
    }
    series = []
    for template in probe.templates:
        points = tuple(
            _point(probe, variant, template, info, (template, variant) in significant) for variant in variants
        )
        if any(point.value is not None for point in points):
            series.append(Series(template, points))
    if not series or len(variants) < 1:
        return None
    title = f"{probe.name}: {info.name} by checkpoint"
    caption = (
        f"{info.description or info.name} ({_direction(info)}); shaded: {100 * report.stats.confidence:g}% CI; "
        "* significantly different from base after Holm correction."
    )
    svg = line_chart(title, variants, series[:MAX_SERIES], percent=info.binary)
    return Chart("trend", probe.name, title, caption, svg)


def template_chart(probe: ProbeResult, info: MetricInfo) -> Chart | None:
    """Bars per serving template (one per variant) when the metric has values under two or more templates."""
    templates = [
        template
        for template in probe.templates
        if any(_value(probe, cell.variant, template, info.name) is not None for cell in probe.cells)
    ]
    if len(templates) < 2:
        return None
    variants = list(dict.fromkeys(cell.variant for cell in probe.cells))
    series = [
        Series(variant, tuple(_point(probe, variant, template, info, False) for template in templates))
        for variant in variants[:MAX_SERIES]
    ]
    title = f"{probe.name}: {info.name} per serving template"
    caption = f"{info.description or info.name} under each template ({_direction(info)}); whiskers: CI."
    return Chart(
        "templates", probe.name, title, caption, bar_chart(title, templates, series, percent=info.binary)
    )


def flips_chart(probe: ProbeResult, info: MetricInfo, records: Sequence[ItemRecord]) -> Chart | None:
    """Per variant, the items whose binary metric went 1 → 0 and 0 → 1 vs base (same template and item)."""
    values = {
        (record.variant, record.template, record.item_id): record.metrics.get(info.name)
        for record in records
        if record.probe == probe.name
    }
    base = {key[1:]: value for key, value in values.items() if key[0] == BASE and value is not None}
    variants = [name for name in dict.fromkeys(key[0] for key in values) if name != BASE]
    if not base or not variants:
        return None
    down, up = [], []
    for variant in variants:
        pairs = [
            (base[key[1:]], value)
            for key, value in values.items()
            if key[0] == variant and key[1:] in base and value is not None
        ]
        down.append(sum(1 for before, after in pairs if before and not after))
        up.append(sum(1 for before, after in pairs if not before and after))
    good_up = info.higher_is_better is not False
    labels = (
        "1 → 0 (" + ("lost" if good_up else "fixed") + ")",
        "0 → 1 (" + ("gained" if good_up else "new") + ")",
    )
    colors = (WORSE, BETTER) if good_up else (BETTER, WORSE)
    title = f"{probe.name}: {info.name} flips vs base"
    caption = f"Items whose {info.name} changed from base (paired by template and item id), per checkpoint."
    return Chart(
        "flips", probe.name, title, caption, diverging_chart(title, variants, down, up, labels, colors)
    )


def openings_chart(probe: ProbeResult, records: Sequence[ItemRecord]) -> Chart | None:
    """Share of each variant's outputs opening with the most common openings (the prefix distribution)."""
    by_variant: dict[str, list[str]] = defaultdict(list)
    for record in records:
        opening = record.extra.get("opening") if record.probe == probe.name else None
        if isinstance(opening, str):
            by_variant[record.variant].append(opening.strip() or "(empty)")
    if not by_variant:
        return None
    overall = Counter(opening for openings in by_variant.values() for opening in openings)
    top = [opening for opening, _ in overall.most_common(TOP_OPENINGS)]
    variants = list(by_variant)
    segments = [
        (
            _clip(opening),
            [by_variant[variant].count(opening) / len(by_variant[variant]) for variant in variants],
        )
        for opening in top
    ]
    segments.append(
        (
            "other",
            [
                sum(1 for item in by_variant[variant] if item not in top) / len(by_variant[variant])
                for variant in variants
            ],
        )
    )
    title = f"{probe.name}: response openings"
    caption = f"Share of each checkpoint's outputs that open with the {len(top)} most common openings."
    return Chart("openings", probe.name, title, caption, stacked_chart(title, variants, segments))


def reliability_chart(probe: ProbeResult, records: Sequence[ItemRecord], bins: int = 10) -> Chart | None:
    """Accuracy per equal-width confidence bin, one line per variant (base included) beside the diagonal."""
    by_variant: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for record in records:
        confidence, correct = record.metrics.get("confidence"), record.metrics.get("correct")
        if record.probe == probe.name and confidence is not None and correct is not None:
            by_variant[record.variant].append((float(confidence), float(correct)))
    if not by_variant:
        return None
    labels = [f"{100 * k // bins}–{100 * (k + 1) // bins}%" for k in range(bins)]
    series = [Series("perfect calibration", tuple(Point((k + 0.5) / bins) for k in range(bins)))]
    for variant, answers in list(by_variant.items())[: MAX_SERIES - 1]:
        binned: list[list[tuple[float, float]]] = [[] for _ in range(bins)]
        for confidence, correct in answers:
            binned[min(int(confidence * bins), bins - 1)].append((confidence, correct))
        series.append(Series(variant, tuple(_bin_point(variant, chosen) for chosen in binned)))
    title = f"{probe.name}: reliability diagram"
    caption = "Accuracy of the answers in each confidence bin (all items pooled); points under the diagonal are overconfident."
    return Chart("reliability", probe.name, title, caption, line_chart(title, labels, series, percent=True))


def _bin_point(variant: str, answers: Sequence[tuple[float, float]]) -> Point:
    """A bin's accuracy, with its count and mean confidence as hover text; no point for an empty bin."""
    if not answers:
        return Point(None)
    accuracy = sum(correct for _, correct in answers) / len(answers)
    confidence = sum(value for value, _ in answers) / len(answers)
    note = (
        f"{variant}: {len(answers)} answers, mean confidence {confidence:.2f}, accuracy {100 * accuracy:.0f}%"
    )
    return Point(accuracy, note=note)


def _point(probe: ProbeResult, variant: str, template: str, info: MetricInfo, marked: bool) -> Point:
    cell = probe.cell(variant, template)
    value = None if cell is None else cell.metric(info.name)
    if value is None or value.value is None:
        return Point(None)
    note = f"{variant}: {format_value(value.value, info.binary)} {format_interval(value.low, value.high, info.binary)} (n={value.n})"
    return Point(value.value, value.low, value.high, note=note, marked=marked)


def _value(probe: ProbeResult, variant: str, template: str, metric: str) -> float | None:
    cell = probe.cell(variant, template)
    value = None if cell is None else cell.metric(metric)
    return None if value is None else value.value


def _direction(info: MetricInfo) -> str:
    if info.higher_is_better is None:
        return "descriptive"
    return "higher is better" if info.higher_is_better else "lower is better"


def _clip(text: str, limit: int = 24) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
