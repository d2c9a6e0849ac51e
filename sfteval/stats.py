"""Paired statistics for comparing checkpoints on the same items (diagnostics.md §6).

Intervals, paired differences with (cluster) bootstrap CIs, McNemar's exact test, Holm's correction and a power
note, after Miller 2024 ("Adding Error Bars to Evals", arXiv 2411.00640). Every resampling takes an explicit integer
seed, which is returned in its result so that reports can save it.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from scipy import special

# Resamples drawn per vectorised step: bounds memory at chunk × clusters integers.
_RESAMPLE_CHUNK = 500


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


@dataclass(frozen=True)
class PairedDiff:
    """Mean paired difference mean(a) − mean(b) with a percentile bootstrap CI and two-sided p-value."""

    delta: float
    low: float
    high: float
    p_value: float
    n: int
    n_clusters: int
    n_resamples: int
    confidence: float
    seed: int


@dataclass(frozen=True)
class McNemar:
    """Discordant pair counts (b01: a false, b true; b10: a true, b false) and the exact two-sided p-value."""

    b01: int
    b10: int
    p_value: float


@dataclass(frozen=True)
class HolmResult:
    """One hypothesis after Holm's step-down correction."""

    p_value: float
    adjusted_p: float
    significant: bool


@dataclass(frozen=True)
class Comparison:
    """A paired comparison of a against b: delta = mean(a) − mean(b), its bootstrap CI, and the test's p-value."""

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


@dataclass(frozen=True)
class Pairing:
    """Two variants' values aligned on shared item ids, with counts of what could not be paired."""

    ids: tuple[Hashable, ...]
    a_values: np.ndarray
    b_values: np.ndarray
    cluster_ids: tuple[Hashable, ...] | None
    unmatched_a: int
    unmatched_b: int
    missing_values: int


def wilson_interval(successes: int, n: int, confidence: float = 0.95) -> Interval:
    """Wilson score interval for a binomial proportion: keeps good coverage at small n and near 0 or 1."""
    if n <= 0:
        raise ValueError(f"wilson_interval needs n > 0 trials, got n={n}")
    if not 0 <= successes <= n:
        raise ValueError(f"successes must lie in [0, n={n}], got {successes}")
    z = _normal_quantile(confidence)
    proportion_hat = successes / n
    denominator = 1 + z * z / n
    center = (proportion_hat + z * z / (2 * n)) / denominator
    half_width = z / denominator * np.sqrt(proportion_hat * (1 - proportion_hat) / n + z * z / (4 * n * n))
    return Interval(low=float(max(0.0, center - half_width)), high=float(min(1.0, center + half_width)))


def proportion(values: Any, cluster_ids: Any = None, confidence: float = 0.95) -> Estimate:
    """Mean of per-item scores with a CI: Wilson for independent 0/1 items, else the (clustered) t interval.

    Wilson is used for binary data because CLT intervals under-cover with fewer than a few hundred items (Bowyer et
    al. 2025, arXiv 2503.01747); Wilson assumes independent items, so clustered or continuous data go to `mean_ci`.
    """
    scores = _as_values(values, "values")
    if cluster_ids is not None or not _is_binary(scores):
        return mean_ci(scores, cluster_ids=cluster_ids, confidence=confidence)
    interval = wilson_interval(int(scores.sum()), scores.size, confidence)
    return Estimate(
        mean=float(scores.mean()),
        low=interval.low,
        high=interval.high,
        n=scores.size,
        se=_clustered_se(scores, np.arange(scores.size)),
        n_clusters=scores.size,
        method="wilson",
    )


def mean_ci(values: Any, cluster_ids: Any = None, confidence: float = 0.95) -> Estimate:
    """Mean with a t interval on the CLT or clustered standard error (Miller 2024), df = clusters − 1.

    With fewer than two clusters (or items) the spread is unknown and the interval is (−inf, inf).
    """
    scores = _as_values(values, "values")
    codes = _cluster_codes(cluster_ids, scores.size)
    n_clusters = int(codes.max()) + 1
    mean = float(scores.mean())
    if n_clusters < 2:
        return Estimate(mean, -np.inf, np.inf, scores.size, np.inf, n_clusters, "t")
    se = _clustered_se(scores, codes)
    half_width = float(special.stdtrit(n_clusters - 1, (1 + _checked_confidence(confidence)) / 2)) * se
    method = "t" if n_clusters == scores.size else "clustered-t"
    return Estimate(mean, mean - half_width, mean + half_width, scores.size, se, n_clusters, method)


def paired_bootstrap_diff(
    a: Any,
    b: Any,
    cluster_ids: Any = None,
    n_resamples: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
) -> PairedDiff:
    """Paired bootstrap of delta = mean(a) − mean(b), resampling items or, when given, whole clusters.

    The CI is the percentile interval of the resampled deltas. The two-sided p-value inverts that interval: twice
    the share of resampled deltas on the far side of 0 from the observed delta, with the +1 correction
    (Davison & Hinkley 1997), capped at 1. With fewer than two clusters nothing can be resampled, so the CI is
    (−inf, inf) and p = 1.
    """
    first, second = _aligned(a, b)
    differences = first - second
    codes = _cluster_codes(cluster_ids, differences.size)
    confidence = _checked_confidence(confidence)
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
    return PairedDiff(delta, low, high, p_value, differences.size, n_clusters, n_resamples, confidence, seed)


def mcnemar_exact(a: Any, b: Any) -> McNemar:
    """McNemar's exact test: two-sided binomial test of b01 against b01 + b10 discordant pairs at p = 1/2."""
    scores_a, scores_b = _aligned(a, b)
    if not (_is_binary(scores_a) and _is_binary(scores_b)):
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


def holm(p_values: Sequence[float], alpha: float = 0.05) -> list[HolmResult]:
    """Holm's step-down adjusted p-values (monotone, capped at 1), in input order; controls family-wise error."""
    p = np.asarray(p_values, dtype=float).reshape(-1)
    if np.any(~np.isfinite(p)) or np.any((p < 0) | (p > 1)):
        raise ValueError("p-values must be finite numbers in [0, 1]")
    order = np.argsort(p, kind="stable")
    multipliers = p.size - np.arange(p.size)
    adjusted_sorted = np.minimum(1.0, np.maximum.accumulate(multipliers * p[order]))
    adjusted = np.empty_like(p)
    adjusted[order] = adjusted_sorted
    return [
        HolmResult(p_value=float(raw), adjusted_p=float(value), significant=bool(value <= alpha))
        for raw, value in zip(p, adjusted, strict=True)
    ]


def paired_compare(
    a: Any,
    b: Any,
    cluster_ids: Any = None,
    seed: int = 0,
    n_resamples: int = 2000,
    confidence: float = 0.95,
) -> Comparison:
    """Compare a against b on aligned items: McNemar for independent 0/1 items, else a (cluster-robust) paired t-test.

    Clustered binary items use the t-test too, since McNemar assumes independent pairs. The delta and its CI always
    come from the (cluster) paired bootstrap. The p-value is not the bootstrap's: a bootstrap p can never go below
    2/(B + 1) (0.001 with B = 2000), so once Holm multiplies it by the few hundred comparisons of a report nothing
    could ever be significant; the t-test's p has no such floor.
    """
    bootstrap = paired_bootstrap_diff(a, b, cluster_ids, n_resamples, confidence, seed)
    independent = bootstrap.n_clusters == bootstrap.n
    binary = _is_binary(_as_values(a, "a")) and _is_binary(_as_values(b, "b"))
    if binary and independent:
        test, p_value = "mcnemar_exact", mcnemar_exact(a, b).p_value
    else:
        test = "paired_t" if independent else "cluster_t"
        p_value = paired_t_p(a, b, cluster_ids)
    return Comparison(test=test, **{**asdict(bootstrap), "p_value": p_value})


def paired_t_p(a: Any, b: Any, cluster_ids: Any = None) -> float:
    """Two-sided p of the paired t-test on d = a − b, with the clustered SE and C − 1 degrees of freedom.

    Differences within float noise of zero (|mean| ≤ 1e-12 × the values' scale) count as no difference (p = 1);
    fewer than two clusters give p = 1.
    """
    first, second = _aligned(a, b)
    differences = first - second
    codes = _cluster_codes(cluster_ids, differences.size)
    n_clusters = int(codes.max()) + 1
    mean = float(differences.mean())
    scale = max(float(np.abs(first).max()), float(np.abs(second).max()), 1.0)
    if n_clusters < 2 or abs(mean) <= 1e-12 * scale:
        return 1.0
    se = _clustered_se(differences, codes)
    if se <= 1e-12 * scale:
        return 0.0
    return float(min(1.0, 2 * special.stdtr(n_clusters - 1, -abs(mean) / se)))


def minimum_detectable_effect(
    n: int,
    baseline: float | None = None,
    sd: float | None = None,
    alpha: float = 0.05,
    power: float = 0.8,
    paired_discordance: float | None = None,
    correlation: float = 0.5,
) -> float:
    """Smallest true mean paired difference a two-sided test of n items detects with the given power.

    Normal approximation for paired designs (Miller 2024): MDE = (z_{1−α/2} + z_power) · sd_d / √n, where sd_d is
    the standard deviation of the per-item difference. Give exactly one of: `paired_discordance` (share of items
    whose binary outcome flips; sd_d = √discordance, its value under equal marginals), `sd` (of the per-item
    differences, e.g. from a pilot run), or `baseline` (accuracy p; sd_d = √(2p(1−p)(1−correlation)), with the
    two variants' per-item correlation assumed 0.5 unless given). The result is in the metric's units (fraction
    for accuracies) and is optimistic for small n, where normal approximations under-cover.
    """
    if n <= 0:
        raise ValueError(f"minimum_detectable_effect needs n > 0 items, got n={n}")
    given = [value is not None for value in (baseline, sd, paired_discordance)]
    if sum(given) != 1:
        raise ValueError("give exactly one of baseline, sd or paired_discordance")
    if paired_discordance is not None:
        if not 0 <= paired_discordance <= 1:
            raise ValueError(f"paired_discordance must lie in [0, 1], got {paired_discordance}")
        difference_sd = float(np.sqrt(paired_discordance))
    elif sd is not None:
        if sd < 0:
            raise ValueError(f"sd must be non-negative, got {sd}")
        difference_sd = float(sd)
    else:
        assert baseline is not None
        if not 0 <= baseline <= 1 or not -1 <= correlation <= 1:
            raise ValueError(
                f"baseline must lie in [0, 1] and correlation in [-1, 1], got {baseline}, {correlation}"
            )
        difference_sd = float(np.sqrt(2 * baseline * (1 - baseline) * (1 - correlation)))
    if not (0 < alpha < 1 and 0 < power < 1):
        raise ValueError(f"alpha and power must lie in (0, 1), got {alpha}, {power}")
    z_sum = _normal_quantile(1 - alpha) + float(special.ndtri(power))
    return z_sum * difference_sd / float(np.sqrt(n))


def mde_note(n: int, baseline: float = 0.5, power: float = 0.8) -> str:
    """One-sentence power note for a report, in percentage points, from `minimum_detectable_effect`."""
    effect = minimum_detectable_effect(n, baseline=baseline, power=power)
    noun = "item" if n == 1 else "items"
    return (
        f"with {n} {noun}, differences under ~{100 * effect:.1f} points are not detectable "
        f"at {100 * power:.0f}% power"
    )


def item_id_of(record: Any) -> Hashable:
    """The `item_id` of an ItemRecord-like object or a dict."""
    return record["item_id"] if isinstance(record, dict) else record.item_id


def cluster_id_of(record: Any) -> Hashable:
    """The `cluster_id` of an ItemRecord-like object or a dict."""
    return record["cluster_id"] if isinstance(record, dict) else record.cluster_id


def pairing(
    records_a: Iterable[Any],
    records_b: Iterable[Any],
    value: Callable[[Any], float | bool | None],
    key: Callable[[Any], Hashable] = item_id_of,
    cluster: Callable[[Any], Hashable] | None = cluster_id_of,
) -> Pairing:
    """Align two variants' records on shared keys (sorted), so that paired tests see the same items in order.

    Pairs where either value is None are dropped and counted in `missing_values`; cluster ids come from
    `records_a` and must agree with `records_b`.
    """
    by_key_a = _index_records(records_a, key, "records_a")
    by_key_b = _index_records(records_b, key, "records_b")
    shared = sorted(by_key_a.keys() & by_key_b.keys(), key=str)
    values = {k: (value(by_key_a[k]), value(by_key_b[k])) for k in shared}
    kept = [k for k in shared if None not in values[k]]
    mismatched = [k for k in kept if cluster is not None and cluster(by_key_a[k]) != cluster(by_key_b[k])]
    if mismatched:
        raise ValueError(f"item {mismatched[0]!r} has different cluster ids in the two record lists")
    return Pairing(
        ids=tuple(kept),
        a_values=np.array([values[k][0] for k in kept], dtype=float),
        b_values=np.array([values[k][1] for k in kept], dtype=float),
        cluster_ids=None if cluster is None else tuple(cluster(by_key_a[k]) for k in kept),
        unmatched_a=len(by_key_a) - len(shared),
        unmatched_b=len(by_key_b) - len(shared),
        missing_values=len(shared) - len(kept),
    )


def _index_records(records: Iterable[Any], key: Callable[[Any], Hashable], name: str) -> dict[Hashable, Any]:
    """Map key → record, refusing duplicate keys (they would make the pairing ambiguous)."""
    indexed: dict[Hashable, Any] = {}
    for record in records:
        item_key = key(record)
        if item_key in indexed:
            raise ValueError(f"{name} has more than one record for item {item_key!r}")
        indexed[item_key] = record
    return indexed


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


def _clustered_se(scores: np.ndarray, codes: np.ndarray) -> float:
    """Clustered SE of the mean (Miller 2024, App. A) with the C/(C−1) small-sample factor used by inspect_ai.

    With one item per cluster this equals the CLT SE sqrt(Σ(s − s̄)² / (n(n − 1))); unknown (inf) below two clusters.
    """
    n_clusters = int(codes.max()) + 1
    if n_clusters < 2:
        return float(np.inf)
    residual_sums = np.bincount(codes, weights=scores - scores.mean(), minlength=n_clusters)
    variance = n_clusters / (n_clusters - 1) * float(np.sum(residual_sums**2)) / scores.size**2
    return float(np.sqrt(variance))


def _cluster_codes(cluster_ids: Any, n: int) -> np.ndarray:
    """Integer codes 0..C−1 for cluster ids in first-seen order; each item is its own cluster when None."""
    if cluster_ids is None:
        return np.arange(n)
    ids = list(cluster_ids)
    if len(ids) != n:
        raise ValueError(f"cluster_ids has {len(ids)} entries for {n} items")
    codes: dict[Hashable, int] = {}
    return np.array([codes.setdefault(cluster_id, len(codes)) for cluster_id in ids], dtype=np.intp)


def _aligned(a: Any, b: Any) -> tuple[np.ndarray, np.ndarray]:
    """Two score arrays that must be aligned per item (same length, same order)."""
    first, second = _as_values(a, "a"), _as_values(b, "b")
    if first.shape != second.shape:
        raise ValueError(f"a and b must be aligned per item: {first.size} vs {second.size} values")
    return first, second


def _as_values(values: Any, name: str) -> np.ndarray:
    """A non-empty 1-D float array of finite per-item scores (booleans become 0/1)."""
    array = np.asarray(values, dtype=float)
    if array.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {array.shape}")
    if array.size == 0:
        raise ValueError(f"{name} is empty: at least one item is needed")
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{name} contains NaN or infinite values")
    return array


def _is_binary(values: np.ndarray) -> bool:
    """Whether every value is 0 or 1."""
    return bool(np.all((values == 0) | (values == 1)))


def _checked_confidence(confidence: float) -> float:
    """The confidence level, which must lie strictly between 0 and 1."""
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must lie in (0, 1), got {confidence}")
    return float(confidence)


def _normal_quantile(confidence: float) -> float:
    """Two-sided standard-normal critical value z_{(1+confidence)/2}."""
    return float(special.ndtri((1 + _checked_confidence(confidence)) / 2))
