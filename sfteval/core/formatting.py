"""Number formatting shared by findings and renderers: binary metrics in percent, deltas in points."""

from __future__ import annotations

MISSING = "—"


def format_number(value: float) -> str:
    """A continuous value with about three significant digits, never in exponent form below a million."""
    magnitude = abs(value)
    if magnitude >= 100:
        return f"{value:,.1f}"
    if magnitude >= 1:
        return f"{value:.2f}"
    return f"{value:.3f}"


def format_value(value: float | None, binary: bool) -> str:
    """A metric value: `62.5%` for binary metrics, `0.423` otherwise, `—` when absent."""
    if value is None:
        return MISSING
    return f"{100 * value:.1f}%" if binary else format_number(value)


def format_interval(low: float | None, high: float | None, binary: bool) -> str:
    """A CI as `[55.1, 69.4]` (percent for binary metrics), or `[no CI]` when a bound is unknown."""
    if low is None or high is None:
        return "[no CI]"
    if binary:
        return f"[{100 * low:.1f}, {100 * high:.1f}]"
    return f"[{format_number(low)}, {format_number(high)}]"


def format_delta(delta: float, binary: bool) -> str:
    """A signed difference: `-12.5` points for binary metrics, `+0.021` otherwise."""
    if binary:
        return f"{100 * delta:+.1f}"
    return ("+" if delta >= 0 else "-") + format_number(abs(delta))


def format_magnitude(delta: float, binary: bool) -> str:
    """The size of a change in words: `12.5 points` for binary metrics, `0.021` otherwise."""
    return f"{100 * abs(delta):.1f} points" if binary else format_number(abs(delta))


def format_p(p_value: float) -> str:
    """A p-value as `p=0.003`, or `p<0.001` below one in a thousand."""
    return "p<0.001" if p_value < 0.001 else f"p={p_value:.3f}"
