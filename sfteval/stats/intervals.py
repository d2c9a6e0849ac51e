"""Means with confidence intervals: Wilson's score interval for a binomial count, the (clustered) t interval for
unbounded metrics (Miller 2024). Proportions of clustered items are in `sfteval.stats.proportions`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import special

from sfteval.stats.arrays import (
    as_values,
    checked_confidence,
    cluster_codes,
    clustered_se,
    normal_quantile,
)


@dataclass(frozen=True)
class Interval:
    """A two-sided confidence interval."""

    low: float
    high: float


@dataclass(frozen=True)
class Estimate:
    """A mean with its confidence interval; `method` names how the interval was made."""

    mean: float
    low: float
    high: float
    n: int
    se: float
    n_clusters: int
    method: str


def wilson_interval(successes: int, n: int, confidence: float = 0.95) -> Interval:
    """Wilson score interval for a binomial proportion: keeps good coverage at small n and near 0 or 1."""
    if n <= 0:
        raise ValueError(f"wilson_interval needs n > 0 trials, got n={n}")
    if not 0 <= successes <= n:
        raise ValueError(f"successes must lie in [0, n={n}], got {successes}")
    z = normal_quantile(confidence)
    proportion_hat = successes / n
    denominator = 1 + z * z / n
    center = (proportion_hat + z * z / (2 * n)) / denominator
    half_width = z / denominator * np.sqrt(proportion_hat * (1 - proportion_hat) / n + z * z / (4 * n * n))
    return Interval(low=float(max(0.0, center - half_width)), high=float(min(1.0, center + half_width)))


def mean_ci(values: Any, cluster_ids: Any = None, confidence: float = 0.95) -> Estimate:
    """Mean with a t interval on the CLT or clustered standard error (Miller 2024), df = clusters − 1.

    With fewer than two clusters (or items) the spread is unknown and the interval is (−inf, inf).
    """
    scores = as_values(values, "values")
    codes = cluster_codes(cluster_ids, scores.size)
    n_clusters = int(codes.max()) + 1
    mean = float(scores.mean())
    if n_clusters < 2:
        return Estimate(mean, -np.inf, np.inf, scores.size, np.inf, n_clusters, "t")
    se = clustered_se(scores, codes)
    half_width = float(special.stdtrit(n_clusters - 1, (1 + checked_confidence(confidence)) / 2)) * se
    method = "t" if n_clusters == scores.size else "clustered-t"
    return Estimate(mean, mean - half_width, mean + half_width, scores.size, se, n_clusters, method)
