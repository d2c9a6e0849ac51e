"""Intervals for proportions and their differences that are valid by construction (STYLE.md decision 9).

A proportion (the mean of per-item values in [0, 1]) gets Wilson's score interval. With clustered items it is
Wilson's interval on the design-effect-adjusted n: deff = clustered variance (Miller 2024, with the C/(C−1) factor)
/ simple-random-sampling variance p̂(1−p̂)/n, floored at 1, and the t quantile with C − 1 degrees of freedom instead
of z — the degrees-of-freedom adjusted effective n of Korn & Graubard (1998, Survey Methodology 24:193). When p̂ is
0 or 1 the design effect cannot be estimated; it is taken as 1, and the t quantile still widens the interval. Either
way the interval lies in [0, 1] and is never zero-width.

A difference of two proportions gets Newcombe's hybrid score interval (Newcombe 1998, method 10; the MOVER of
Zou & Donner 2008): each side's Wilson interval, recombined with the correlation of the two means (0 for
independent samples; for paired items the clustered covariance over the clustered variances, shrunk by Newcombe's
1/(2n) correction when positive). It lies inside [low_b − high_a, high_b − low_a] ⊂ [−1, 1] and is never
zero-width. tests/test_stats_proportions.py shows coverage ≥ 0.93 at nominal 0.95 for clustered data with 8–30
clusters and p in {0.02, 0.2, 0.5}.

The `*_bounds` functions take many samples at once (rows of a 2-D array sharing one cluster layout), so the
coverage simulations run vectorised; the single-sample functions call them with one row.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import special

from sfteval.stats.arrays import as_values, checked_confidence, cluster_codes, clustered_se
from sfteval.stats.intervals import Estimate, Interval

FloatArray = np.ndarray


@dataclass(frozen=True)
class ProportionBounds:
    """Per-sample means and interval bounds, one entry per row of the input."""

    mean: FloatArray
    low: FloatArray
    high: FloatArray


def proportion_bounds(values: Any, codes: Any, confidence: float = 0.95) -> ProportionBounds:
    """Wilson (independent items) or design-effect Wilson (clustered) bounds for each row of `values`.

    `values` is (samples, items) with every value in [0, 1]; `codes` gives each item's cluster as 0..C−1 (items
    are independent when every cluster holds one item). At least one item is needed; with one cluster of several
    items the between-cluster spread is unknown and the bounds are NaN.
    """
    rows, layout = _rows(values), _layout(codes, np.shape(values)[-1])
    mean, variance, _ = _clustered_moments(rows, layout)
    low, high = _wilson(mean, _effective_n(mean, variance, layout), _quantile(layout, confidence))
    return ProportionBounds(mean, low, high)


def paired_difference_bounds(a: Any, b: Any, codes: Any, confidence: float = 0.95) -> ProportionBounds:
    """Newcombe's hybrid score bounds of mean(a) − mean(b) for each row; a and b paired per item (same layout)."""
    first, second = _rows(a), _rows(b)
    if first.shape != second.shape:
        raise ValueError(f"a and b must be aligned per item: shapes {first.shape} vs {second.shape}")
    layout = _layout(codes, first.shape[-1])
    mean_a, variance_a, residuals_a = _clustered_moments(first, layout)
    mean_b, variance_b, residuals_b = _clustered_moments(second, layout)
    covariance = _cluster_factor(layout) * np.sum(residuals_a * residuals_b, axis=-1) / layout.n**2
    with np.errstate(divide="ignore", invalid="ignore"):
        correlation = np.where(
            (variance_a > 0) & (variance_b > 0), covariance / np.sqrt(variance_a * variance_b), 0.0
        )
        spread = np.sqrt(mean_a * (1 - mean_a) * mean_b * (1 - mean_b))
        shrink = np.where(spread > 0, 1 / (2 * layout.n * spread), 0.0)
    correlation = np.clip(correlation, -1.0, 1.0)
    correlation = np.where(correlation > 0, np.maximum(correlation - shrink, 0.0), correlation)
    quantile = _quantile(layout, confidence)
    low_a, high_a = _wilson(mean_a, _effective_n(mean_a, variance_a, layout), quantile)
    low_b, high_b = _wilson(mean_b, _effective_n(mean_b, variance_b, layout), quantile)
    return _recombined(mean_a, (low_a, high_a), mean_b, (low_b, high_b), correlation)


def independent_difference(a: tuple[float, float, float], b: tuple[float, float, float]) -> Interval:
    """Newcombe's hybrid score interval of p_b − p_a from each side's (mean, low, high) score interval.

    The two samples are independent (correlation 0), so each side's own valid interval is all it needs: the result
    lies in [low_b − high_a, high_b − low_a].
    """
    mean_b, mean_a = np.array([b[0]]), np.array([a[0]])
    interval_b = (np.array([b[1]]), np.array([b[2]]))
    interval_a = (np.array([a[1]]), np.array([a[2]]))
    bounds = _recombined(mean_b, interval_b, mean_a, interval_a, np.zeros(1))
    return Interval(float(bounds.low[0]), float(bounds.high[0]))


def proportion(values: Any, cluster_ids: Any = None, confidence: float = 0.95) -> Estimate:
    """Mean of per-item values in [0, 1] (0/1 outcomes or fractions) with Wilson's interval ('wilson'), design-effect
    adjusted when items share clusters ('wilson-deff'); one cluster of several items has none (bounds −inf, inf).

    Wilson rather than a CLT interval because those under-cover with fewer than a few hundred items (Bowyer et al.
    2025, arXiv 2503.01747) and leave [0, 1]; cluster ids that group nothing give the independent-item interval.
    """
    scores = _fractions(values, "values")
    codes = cluster_codes(cluster_ids, scores.size)
    layout = _layout(codes, scores.size)
    bounds = proportion_bounds(scores, codes, confidence)
    low, high = float(bounds.low[0]), float(bounds.high[0])
    if layout.clusters < 2 and scores.size > 1:
        low, high = -np.inf, np.inf
    method = "wilson-deff" if layout.clusters < scores.size else "wilson"
    se = clustered_se(scores, codes) if layout.clusters > 1 else np.inf
    return Estimate(float(bounds.mean[0]), low, high, scores.size, se, layout.clusters, method)


@dataclass(frozen=True)
class DifferenceInterval:
    """An interval of a difference of proportions and the method that made it."""

    low: float
    high: float
    method: str


def paired_difference_interval(
    a: Any, b: Any, cluster_ids: Any = None, confidence: float = 0.95
) -> DifferenceInterval:
    """Newcombe's interval of mean(a) − mean(b) over paired items with values in [0, 1] ('newcombe', or
    'newcombe-deff' when clustered); one cluster of several items has none (−inf, inf)."""
    first, second = _fractions(a, "a"), _fractions(b, "b")
    if first.shape != second.shape:
        raise ValueError(f"a and b must be aligned per item: {first.size} vs {second.size} values")
    codes = cluster_codes(cluster_ids, first.size)
    clusters = int(codes.max()) + 1
    if clusters < 2 and first.size > 1:
        return DifferenceInterval(-np.inf, np.inf, "newcombe-deff")
    bounds = paired_difference_bounds(first, second, codes, confidence)
    method = "newcombe-deff" if clusters < first.size else "newcombe"
    return DifferenceInterval(float(bounds.low[0]), float(bounds.high[0]), method)


@dataclass(frozen=True)
class _Layout:
    """Items' clusters as a one-hot matrix (items × clusters), with the counts the formulas need."""

    onehot: FloatArray
    n: int
    clusters: int


def _cluster_factor(layout: _Layout) -> float:
    """C/(C−1), the small-sample factor of the clustered variance (inspect_ai); NaN below two clusters."""
    return layout.clusters / (layout.clusters - 1) if layout.clusters > 1 else float("nan")


def _rows(values: Any) -> FloatArray:
    array = np.asarray(values, dtype=float)
    rows = array.reshape(1, -1) if array.ndim == 1 else array
    if rows.ndim != 2 or rows.shape[1] == 0:
        raise ValueError(f"values must be (samples, items) with at least one item, got shape {array.shape}")
    if np.any((rows < 0) | (rows > 1)) or not np.all(np.isfinite(rows)):
        raise ValueError("a proportion's per-item values must lie in [0, 1]")
    return rows


def _fractions(values: Any, name: str) -> FloatArray:
    scores = as_values(values, name)
    if np.any((scores < 0) | (scores > 1)):
        raise ValueError(f"{name}: a proportion's per-item values must lie in [0, 1]")
    return scores


def _layout(codes: Any, n: int) -> _Layout:
    indices = np.asarray(codes, dtype=np.intp)
    if indices.shape != (n,):
        raise ValueError(f"codes must give one cluster per item: {indices.shape} for {n} items")
    clusters = int(indices.max()) + 1
    onehot = np.zeros((n, clusters))
    onehot[np.arange(n), indices] = 1.0
    return _Layout(onehot, n, clusters)


def _clustered_moments(rows: FloatArray, layout: _Layout) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Per row: the mean, the clustered variance of the mean (Miller 2024, App. A) and the cluster residual sums."""
    mean = rows.mean(axis=1)
    residuals = (rows - mean[:, None]) @ layout.onehot
    variance = _cluster_factor(layout) * np.sum(residuals**2, axis=1) / layout.n**2
    return mean, variance, residuals


def _effective_n(mean: FloatArray, variance: FloatArray, layout: _Layout) -> FloatArray:
    """n / deff with deff = clustered / simple variance, at least 1; deff = 1 when p̂ is 0 or 1 (not estimable)
    and for independent items (plain Wilson)."""
    if layout.clusters == layout.n:
        return np.full_like(mean, float(layout.n))
    simple = mean * (1 - mean) / layout.n
    with np.errstate(divide="ignore", invalid="ignore"):
        design_effect = np.where(simple > 0, variance / simple, 1.0)
    return layout.n / np.maximum(design_effect, 1.0)


def _quantile(layout: _Layout, confidence: float) -> float:
    """z for independent items; t with C − 1 degrees of freedom for clustered ones (NaN for one cluster)."""
    level = (1 + checked_confidence(confidence)) / 2
    if layout.clusters == layout.n:
        return float(special.ndtri(level))
    if layout.clusters < 2:
        return float("nan")
    return float(special.stdtrit(layout.clusters - 1, level))


def _wilson(mean: FloatArray, n: FloatArray, quantile: float) -> tuple[FloatArray, FloatArray]:
    """Wilson's score interval at (possibly fractional) sample size n; it always holds p̂ (float rounding aside)."""
    square = quantile * quantile
    denominator = 1 + square / n
    center = (mean + square / (2 * n)) / denominator
    half_width = quantile / denominator * np.sqrt(mean * (1 - mean) / n + square / (4 * n * n))
    low = np.clip(np.minimum(center - half_width, mean), 0.0, 1.0)
    return low, np.clip(np.maximum(center + half_width, mean), 0.0, 1.0)


def _recombined(
    mean_a: FloatArray,
    interval_a: tuple[FloatArray, FloatArray],
    mean_b: FloatArray,
    interval_b: tuple[FloatArray, FloatArray],
    correlation: FloatArray,
) -> ProportionBounds:
    """MOVER: bounds of mean_a − mean_b from each side's interval and the correlation of the two means."""
    (low_a, high_a), (low_b, high_b) = interval_a, interval_b
    below_a, above_b = mean_a - low_a, high_b - mean_b
    above_a, below_b = high_a - mean_a, mean_b - low_b
    lower = np.sqrt(np.maximum(below_a**2 + above_b**2 - 2 * correlation * below_a * above_b, 0.0))
    upper = np.sqrt(np.maximum(above_a**2 + below_b**2 - 2 * correlation * above_a * below_b, 0.0))
    difference = mean_a - mean_b
    return ProportionBounds(
        difference, np.maximum(difference - lower, -1.0), np.minimum(difference + upper, 1.0)
    )
