"""Small inline-SVG charts for the HTML report: lines with CI bands, grouped bars, diverging bars, stacked shares.

Charts are strings of SVG markup with every label escaped. They use presentation attributes and CSS classes only
(no `style` attributes, no scripts), so the page's strict Content-Security-Policy holds; hover text is SVG <title>.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

WIDTH, HEIGHT = 600, 280
LEFT, RIGHT, TOP, BOTTOM = 64, 16, 36, 52
PALETTE = ("#2b6cb0", "#c05621", "#2f855a", "#805ad5", "#b7791f", "#2c7a7b", "#c53030", "#4a5568")
BETTER, WORSE, NEUTRAL = "#2f855a", "#c53030", "#718096"


@dataclass(frozen=True)
class Point:
    """One value with its optional interval; `note` is the hover text."""

    value: float | None
    low: float | None = None
    high: float | None = None
    note: str = ""
    marked: bool = False


@dataclass(frozen=True)
class Series:
    """A named sequence of points, one per category."""

    name: str
    points: tuple[Point, ...]


@dataclass(frozen=True)
class _Frame:
    """The plotting area and the y scale shared by a chart's marks."""

    low: float
    high: float
    percent: bool

    def y(self, value: float) -> float:
        span = self.high - self.low or 1.0
        return TOP + (HEIGHT - TOP - BOTTOM) * (1 - (value - self.low) / span)

    def label(self, value: float) -> str:
        return f"{100 * value:g}%" if self.percent else f"{value:.3g}"


def line_chart(title: str, categories: Sequence[str], series: Sequence[Series], percent: bool) -> str:
    """One line per series across the categories, with a shaded CI band and a * above marked points."""
    frame = _frame(series, percent)
    xs = _positions(len(categories))
    parts = [_axes(frame, categories, xs)]
    for index, line in enumerate(series):
        color = PALETTE[index % len(PALETTE)]
        parts.append(_band(line, xs, frame, color))
        parts.append(_polyline(line, xs, frame, color))
        parts.extend(
            _dot(x, point, frame, color, line.name) for x, point in zip(xs, line.points, strict=True)
        )
    parts.append(_legend([line.name for line in series]))
    return _svg(title, parts)


def bar_chart(title: str, categories: Sequence[str], series: Sequence[Series], percent: bool) -> str:
    """Grouped bars: one group per category, one bar per series, with CI whiskers."""
    frame = _frame(series, percent, include_zero=True)
    xs = _positions(len(categories))
    slot = (WIDTH - LEFT - RIGHT) / max(len(categories), 1)
    width = min(28.0, 0.8 * slot / max(len(series), 1))
    parts = [_axes(frame, categories, xs)]
    zero = frame.y(max(frame.low, min(0.0, frame.high)))
    for index, group in enumerate(series):
        color = PALETTE[index % len(PALETTE)]
        offset = (index - (len(series) - 1) / 2) * width
        for x, point in zip(xs, group.points, strict=True):
            if point.value is None:
                continue
            top, bottom = sorted((frame.y(point.value), zero))
            note = escape(f"{group.name}: {point.note}")
            parts.append(
                f'<rect class="bar" x="{x + offset - width / 2:.1f}" y="{top:.1f}" width="{width - 2:.1f}" '
                f'height="{max(bottom - top, 1):.1f}" fill="{color}"><title>{note}</title></rect>'
            )
            if point.low is not None and point.high is not None:
                parts.append(_whisker(x + offset - 1, frame.y(point.low), frame.y(point.high)))
    parts.append(_legend([group.name for group in series]))
    return _svg(title, parts)


def diverging_chart(
    title: str,
    categories: Sequence[str],
    down: Sequence[int],
    up: Sequence[int],
    labels: tuple[str, str],
    colors: tuple[str, str],
) -> str:
    """Per category a bar below zero (`down`, e.g. items lost) and one above (`up`, items gained), in counts."""
    largest = max([*down, *up, 1])
    frame = _Frame(-largest * 1.1, largest * 1.1, percent=False)
    xs = _positions(len(categories))
    parts = [_axes(frame, categories, xs, integer=True)]
    zero = frame.y(0)
    for x, lost, gained in zip(xs, down, up, strict=True):
        for count, color, label, sign in (
            (lost, colors[0], labels[0], -1),
            (gained, colors[1], labels[1], 1),
        ):
            top, bottom = sorted((frame.y(sign * count), zero))
            parts.append(
                f'<rect class="bar" x="{x - 14:.1f}" y="{top:.1f}" width="28" height="{max(bottom - top, 1):.1f}" '
                f'fill="{color}"><title>{escape(f"{label}: {count}")}</title></rect>'
            )
            text_y = top - 4 if sign > 0 else bottom + 12
            parts.append(
                f'<text class="value" x="{x:.1f}" y="{text_y:.1f}" text-anchor="middle">{count}</text>'
            )
    parts.append(
        f'<line class="zero" x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{zero:.1f}" y2="{zero:.1f}" stroke="#1a202c"/>'
    )
    parts.append(_legend(list(labels), list(colors)))
    return _svg(title, parts)


def stacked_chart(
    title: str, categories: Sequence[str], segments: Sequence[tuple[str, Sequence[float]]]
) -> str:
    """One horizontal 100% bar per category, split into named shares (each segment's shares sum to ≤ 1)."""
    row = (HEIGHT - 12 - BOTTOM) / max(len(categories), 1)
    height = min(26.0, row * 0.7)
    span = WIDTH - LEFT - RIGHT
    parts = []
    for position, category in enumerate(categories):
        y = 12 + row * position + (row - height) / 2
        parts.append(
            f'<text class="tick" x="{LEFT - 6}" y="{y + height / 2 + 4:.1f}" text-anchor="end">{escape(category)}</text>'
        )
        start = 0.0
        for index, (name, shares) in enumerate(segments):
            share = shares[position]
            if share <= 0:
                continue
            note = escape(f"{category}: {name} {100 * share:.0f}%")
            parts.append(
                f'<rect class="bar" x="{LEFT + span * start:.1f}" y="{y:.1f}" width="{span * share:.1f}" '
                f'height="{height:.1f}" fill="{PALETTE[index % len(PALETTE)]}"><title>{note}</title></rect>'
            )
            start += share
    parts.append(_legend([name for name, _ in segments], top=HEIGHT - BOTTOM + 6))
    return _svg(title, parts)


def _svg(title: str, parts: Sequence[str]) -> str:
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" class="chart-svg">'
        f"<title>{escape(title)}</title>" + "".join(parts) + "</svg>"
    )


def _frame(series: Sequence[Series], percent: bool, include_zero: bool = False) -> _Frame:
    """The y range: [0, 1] for percentages, else the data and intervals padded to nice ticks."""
    if percent:
        return _Frame(0.0, 1.0, percent=True)
    values = [
        bound
        for line in series
        for point in line.points
        for bound in (point.value, point.low, point.high)
        if bound is not None and math.isfinite(bound)
    ] + ([0.0] if include_zero else [])
    low, high = (min(values), max(values)) if values else (0.0, 1.0)
    if high - low < 1e-12:
        low, high = low - 0.5, high + 0.5
    ticks = nice_ticks(low, high)
    return _Frame(ticks[0], ticks[-1], percent=False)


def nice_ticks(low: float, high: float, count: int = 5) -> list[float]:
    """Round tick values (steps of 1, 2, 2.5 or 5 × 10^k) covering [low, high]."""
    raw = (high - low) / max(count - 1, 1)
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(factor * magnitude for factor in (1, 2, 2.5, 5, 10) if factor * magnitude >= raw)
    first = math.floor(low / step) * step
    ticks = [first]
    while ticks[-1] < high - 1e-12:
        ticks.append(ticks[-1] + step)
    return [round(tick, 12) for tick in ticks]


def _positions(count: int) -> list[float]:
    """Evenly spaced category centres across the plotting width."""
    slot = (WIDTH - LEFT - RIGHT) / max(count, 1)
    return [LEFT + slot * (index + 0.5) for index in range(count)]


def _axes(frame: _Frame, categories: Sequence[str], xs: Sequence[float], integer: bool = False) -> str:
    """Grid lines with y tick labels, and the category labels under the plot."""
    ticks = [0.0, 0.25, 0.5, 0.75, 1.0] if frame.percent else nice_ticks(frame.low, frame.high)
    parts = []
    for tick in ticks:
        y = frame.y(tick)
        label = f"{abs(tick):g}" if integer else frame.label(tick)
        parts.append(
            f'<line class="grid" x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y:.1f}" y2="{y:.1f}" stroke="#e2e8f0"/>'
        )
        parts.append(
            f'<text class="tick" x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">{escape(label)}</text>'
        )
    for x, category in zip(xs, categories, strict=True):
        parts.append(
            f'<text class="tick" x="{x:.1f}" y="{HEIGHT - BOTTOM + 18}" text-anchor="middle">{escape(category)}</text>'
        )
    return "".join(parts)


def _band(line: Series, xs: Sequence[float], frame: _Frame, color: str) -> str:
    """The CI band as a polygon over the consecutive points that have both bounds."""
    bounded = [
        (x, point)
        for x, point in zip(xs, line.points, strict=True)
        if point.low is not None and point.high is not None
    ]
    if len(bounded) < 2:
        return ""
    upper = [f"{x:.1f},{frame.y(point.high):.1f}" for x, point in bounded if point.high is not None]
    lower = [f"{x:.1f},{frame.y(point.low):.1f}" for x, point in reversed(bounded) if point.low is not None]
    return f'<polygon class="band" points="{" ".join(upper + lower)}" fill="{color}" fill-opacity="0.15"/>'


def _polyline(line: Series, xs: Sequence[float], frame: _Frame, color: str) -> str:
    """The series' line, broken where a point has no value."""
    segments: list[list[str]] = [[]]
    for x, point in zip(xs, line.points, strict=True):
        if point.value is None:
            segments.append([])
        else:
            segments[-1].append(f"{x:.1f},{frame.y(point.value):.1f}")
    return "".join(
        f'<polyline class="line" points="{" ".join(segment)}" fill="none" stroke="{color}" stroke-width="2"/>'
        for segment in segments
        if len(segment) > 1
    )


def _dot(x: float, point: Point, frame: _Frame, color: str, name: str) -> str:
    """A point with hover text, its interval whisker, and a * above it when marked (significant)."""
    if point.value is None:
        return ""
    y = frame.y(point.value)
    whisker = (
        ""
        if point.low is None or point.high is None
        else _whisker(x, frame.y(point.low), frame.y(point.high))
    )
    star = (
        f'<text class="star" x="{x + 6:.1f}" y="{y - 6:.1f}" fill="{color}">*</text>' if point.marked else ""
    )
    note = escape(f"{name}: {point.note}")
    return (
        whisker
        + f'<circle class="dot" cx="{x:.1f}" cy="{y:.1f}" r="4" fill="{color}"><title>{note}</title></circle>'
        + star
    )


def _whisker(x: float, y_low: float, y_high: float) -> str:
    return (
        f'<line class="whisker" x1="{x:.1f}" x2="{x:.1f}" y1="{y_low:.1f}" y2="{y_high:.1f}" '
        f'stroke="#1a202c" stroke-width="1"/>'
    )


def _legend(names: Sequence[str], colors: Sequence[str] | None = None, top: float = 10) -> str:
    """Colour keys in rows starting at `top`, wrapping before the right edge."""
    parts, x, y = [], float(LEFT), top
    for index, name in enumerate(names):
        width = 28 + 7 * len(name)
        if x > LEFT and x + width > WIDTH - RIGHT:
            x, y = float(LEFT), y + 16
        color = colors[index] if colors else PALETTE[index % len(PALETTE)]
        parts.append(f'<rect x="{x:.1f}" y="{y:.1f}" width="12" height="12" fill="{color}"/>')
        parts.append(f'<text class="legend" x="{x + 16:.1f}" y="{y + 10:.1f}">{escape(name)}</text>')
        x += width
    return "".join(parts)
