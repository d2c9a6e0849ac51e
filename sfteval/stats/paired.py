"""Paired comparisons of two variants on the same items: bootstrap CIs, McNemar's exact test, paired t-tests.

Every resampling takes an explicit integer seed, which is returned in its result so that reports can save it.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np
from scipy import special

from sfteval.stats.arrays import (
    aligned,
    as_values,
    checked_confidence,
    cluster_codes,
    clustered_se,
    is_binary,
)
from sfteval.stats.proportions import paired_difference_interval

# Resamples drawn per vectorised step: bounds memory at chunk × clusters integers.
_RESAMPLE_CHUNK = 500


@dataclass(frozen=True)
class Comparison:
    """A paired comparison of a against b: delta = mean(a) − mean(b), its CI (made by `interval`: the percentile
    bootstrap, or Newcombe's score interval for proportions) and the p-value of `test` (bootstrap: the percentile
    bootstrap's own; mcnemar_exact, paired_t or cluster_t from `paired_compare`)."""

    test: str
    delta: float
    low: float
    high: float
    p_value: float
    n: int
    n_clusters: int
    n_resamples: int
    confidence: float
    seed: int
    interval: str = "bootstrap"


@dataclass(frozen=True)
class McNemar:
    """Discordant pair counts (b01: a false, b true; b10: a true, b false) and the exact two-sided p-value."""

    b01: int
    b10: int
    p_value: float


def paired_bootstrap_diff(
    a: Any,
    b: Any,
    cluster_ids: Any = None,
    n_resamples: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
) -> Comparison:
    """Paired bootstrap of delta = mean(a) − mean(b), resampling items or, when given, whole clusters.

    The CI is the percentile interval of the resampled deltas. The two-sided p-value inverts that interval: twice
    the share of resampled deltas on the far side of 0 from the observed delta, with the +1 correction
    (Davison & Hinkley 1997), capped at 1. With fewer than two clusters nothing can be resampled, so the CI is
    (−inf, inf) and p = 1.
    """
    first, second = aligned(a, b)
    differences = first - second
    codes = cluster_codes(cluster_ids, differences.size)
    confidence = checked_confidence(confidence)
    if n_resamples < 1:
        raise ValueError(f"n_resamples must be at least 1, got {n_resamples}")
    n_clusters = int(codes.max()) + 1
    low, high, p_value = -np.inf, np.inf, 1.0
    if n_clusters >= 2:
        deltas = _bootstrap_means(differences, codes, n_resamples, np.random.default_rng(seed))
        tail = (1 - confidence) / 2
        low, high = (float(bound) for bound in np.quantile(deltas, [tail, 1 - tail]))
        far_side = int(min(np.count_nonzero(deltas <= 0), np.count_nonzero(deltas >= 0)))
        p_value = min(1.0, 2 * (far_side + 1) / (n_resamples + 1))
    delta = float(differences.mean())
    return Comparison(
        "bootstrap", delta, low, high, p_value, differences.size, n_clusters, n_resamples, confidence, seed
    )


def mcnemar_exact(a: Any, b: Any) -> McNemar:
    """McNemar's exact test: two-sided binomial test of b01 against b01 + b10 discordant pairs at p = 1/2."""
    scores_a, scores_b = aligned(a, b)
    if not (is_binary(scores_a) and is_binary(scores_b)):
        raise ValueError("McNemar's test needs 0/1 or boolean outcomes in both a and b")
    first, second = scores_a == 1, scores_b == 1
    b01 = int(np.count_nonzero(~first & second))
    b10 = int(np.count_nonzero(first & ~second))
    discordant = b01 + b10
    if discordant == 0:
        return McNemar(b01, b10, 1.0)
    # Binomial(k, 1/2) is symmetric, so the two-sided "as or less likely" p-value is twice the smaller tail.
    p_value = min(1.0, 2 * float(special.bdtr(min(b01, b10), discordant, 0.5)))
    return McNemar(b01, b10, p_value)


def paired_compare(
    a: Any,
    b: Any,
    cluster_ids: Any = None,
    seed: int = 0,
    n_resamples: int = 2000,
    confidence: float = 0.95,
    proportions: bool = False,
) -> Comparison:
    """Compare a against b on aligned items: McNemar for independent 0/1 items, else a (cluster-robust) paired t-test.

    Clustered binary items use the t-test too, since McNemar assumes independent pairs. For `proportions` (per-item
    values in [0, 1]) the CI is Newcombe's hybrid score interval (design-effect adjusted when clustered), which stays
    in [−1, 1] and is never zero-width; otherwise it is the (cluster) paired bootstrap's. The p-value is not the
    bootstrap's: a bootstrap p can never go below 2/(B + 1) (0.001 with B = 2000), so once Holm multiplies it by the
    few hundred comparisons of a report nothing could ever be significant; the t-test's p has no such floor.
    """
    if proportions:
        comparison = _score_interval_comparison(a, b, cluster_ids, seed, n_resamples, confidence)
    else:
        comparison = paired_bootstrap_diff(a, b, cluster_ids, n_resamples, confidence, seed)
    independent = comparison.n_clusters == comparison.n
    binary = is_binary(as_values(a, "a")) and is_binary(as_values(b, "b"))
    if binary and independent:
        test, p_value = "mcnemar_exact", mcnemar_exact(a, b).p_value
    else:
        test = "paired_t" if independent else "cluster_t"
        p_value = paired_t_p(a, b, cluster_ids)
    return replace(comparison, test=test, p_value=p_value)


def _score_interval_comparison(
    a: Any, b: Any, cluster_ids: Any, seed: int, n_resamples: int, confidence: float
) -> Comparison:
    """delta and Newcombe's interval of two paired proportions (no resampling; p-value filled in by the caller)."""
    first, second = aligned(a, b)
    codes = cluster_codes(cluster_ids, first.size)
    interval = paired_difference_interval(first, second, codes, confidence)
    delta = float(first.mean() - second.mean())
    n_clusters = int(codes.max()) + 1
    return Comparison(
        "score", delta, interval.low, interval.high, 1.0, first.size, n_clusters, n_resamples, confidence, seed,
        interval.method,
    )  # fmt: skip


def paired_t_p(a: Any, b: Any, cluster_ids: Any = None) -> float:
    """Two-sided p of the paired t-test on d = a − b, with the clustered SE and C − 1 degrees of freedom.

    Differences within float noise of zero (|mean| ≤ 1e-12 × the values' scale) count as no difference (p = 1);
    fewer than two clusters give p = 1.
    """
    first, second = aligned(a, b)
    differences = first - second
    codes = cluster_codes(cluster_ids, differences.size)
    n_clusters = int(codes.max()) + 1
    mean = float(differences.mean())
    scale = max(float(np.abs(first).max()), float(np.abs(second).max()), 1.0)
    if n_clusters < 2 or abs(mean) <= 1e-12 * scale:
        return 1.0
    se = clustered_se(differences, codes)
    if se <= 1e-12 * scale:
        return 0.0
    return float(min(1.0, 2 * special.stdtr(n_clusters - 1, -abs(mean) / se)))


def _bootstrap_means(
    differences: np.ndarray, codes: np.ndarray, n_resamples: int, generator: np.random.Generator
) -> np.ndarray:
    """Means of `differences` over resampled clusters: sum of drawn cluster sums over sum of their sizes."""
    n_clusters = int(codes.max()) + 1
    cluster_sums = np.bincount(codes, weights=differences, minlength=n_clusters)
    cluster_sizes = np.bincount(codes, minlength=n_clusters).astype(float)
    means = np.empty(n_resamples)
    for start in range(0, n_resamples, _RESAMPLE_CHUNK):
        stop = min(start + _RESAMPLE_CHUNK, n_resamples)
        drawn = generator.integers(0, n_clusters, size=(stop - start, n_clusters))
        means[start:stop] = cluster_sums[drawn].sum(axis=1) / cluster_sizes[drawn].sum(axis=1)
    return means
