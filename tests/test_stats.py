"""Tests for sfteval.stats against published values, scipy, independent formulas and simulation."""

from __future__ import annotations

import time

import numpy as np
import pytest
from scipy import optimize
from scipy import stats as scipy_stats

from sfteval import stats
from sfteval.core.records import ItemRecord


def score_test_interval(successes: int, n: int, confidence: float) -> tuple[float, float]:
    """Wilson's interval found independently: the p where the score statistic equals the critical value."""
    z = scipy_stats.norm.ppf((1 + confidence) / 2)
    proportion_hat = successes / n

    def excess(p: float) -> float:
        return abs(proportion_hat - p) / np.sqrt(p * (1 - p) / n) - z

    tiny = 1e-12
    low = 0.0 if successes == 0 else optimize.brentq(excess, tiny, min(proportion_hat, 1 - tiny))
    high = 1.0 if successes == n else optimize.brentq(excess, max(proportion_hat, tiny), 1 - tiny)
    return low, high


# Newcombe 1998, "Two-sided confidence intervals for the single proportion", Table I, method 3 (Wilson score).
@pytest.mark.parametrize(
    ("successes", "n", "low", "high"),
    [(81, 263, 0.2553, 0.3662), (15, 148, 0.0624, 0.1605), (0, 20, 0.0, 0.1611), (1, 29, 0.0061, 0.1718)],
)
def test_wilson_matches_newcombe_1998(successes: int, n: int, low: float, high: float) -> None:
    interval = stats.wilson_interval(successes, n)
    assert interval.low == pytest.approx(low, abs=5e-5)
    assert interval.high == pytest.approx(high, abs=5e-5)


@pytest.mark.parametrize(("successes", "n"), [(0, 1), (1, 1), (3, 7), (50, 100), (99, 100), (400, 1000)])
@pytest.mark.parametrize("confidence", [0.8, 0.95, 0.99])
def test_wilson_equals_inverted_score_test(successes: int, n: int, confidence: float) -> None:
    interval = stats.wilson_interval(successes, n, confidence)
    low, high = score_test_interval(successes, n, confidence)
    assert (interval.low, interval.high) == pytest.approx((low, high), abs=1e-9)


@pytest.mark.parametrize(("successes", "n"), [(0, 0), (-1, 5), (6, 5)])
def test_wilson_rejects_impossible_counts(successes: int, n: int) -> None:
    with pytest.raises(ValueError):
        stats.wilson_interval(successes, n)


def test_proportion_uses_wilson_and_its_design_effect_form_for_clusters() -> None:
    binary = stats.proportion([True, False, True, True])
    assert binary.method == "wilson"
    assert binary.mean == 0.75
    assert (binary.low, binary.high) == pytest.approx(
        (stats.wilson_interval(3, 4).low, stats.wilson_interval(3, 4).high)
    )
    single = stats.proportion([1])
    assert (single.mean, single.se, single.high) == (1.0, np.inf, 1.0)
    assert single.low == pytest.approx(stats.wilson_interval(1, 1).low)
    fractions = stats.proportion([0.2, 0.5, 0.9])
    assert fractions.method == "wilson" and 0 <= fractions.low < fractions.high <= 1
    assert stats.proportion([1, 0, 1, 0], cluster_ids=["x", "x", "y", "y"]).method == "wilson-deff"


def test_mean_ci_equals_scipy_t_interval() -> None:
    values = np.random.default_rng(3).normal(size=30)
    estimate = stats.mean_ci(values, confidence=0.9)
    low, high = scipy_stats.t.interval(0.9, values.size - 1, loc=values.mean(), scale=scipy_stats.sem(values))
    assert (estimate.low, estimate.high) == pytest.approx((low, high), rel=1e-12)
    assert estimate.se == pytest.approx(scipy_stats.sem(values), rel=1e-12)


def test_clustered_se_matches_miller_double_sum() -> None:
    generator = np.random.default_rng(4)
    values = generator.normal(size=60)
    clusters = generator.integers(0, 12, size=60)
    residuals = values - values.mean()
    double_sum = sum(
        residuals[i] * residuals[j] for i in range(60) for j in range(60) if clusters[i] == clusters[j]
    )
    n_clusters = len(set(clusters.tolist()))
    expected = np.sqrt(n_clusters / (n_clusters - 1) * double_sum) / 60
    estimate = stats.mean_ci(values, cluster_ids=clusters)
    assert estimate.se == pytest.approx(expected, rel=1e-10)
    assert estimate.n_clusters == n_clusters


def test_unique_cluster_ids_reduce_to_the_clt_interval() -> None:
    values = np.random.default_rng(5).random(25)
    clustered = stats.mean_ci(values, cluster_ids=[f"item-{index}" for index in range(25)])
    plain = stats.mean_ci(values)
    assert (clustered.low, clustered.high, clustered.se) == pytest.approx((plain.low, plain.high, plain.se))


def test_correlated_clusters_widen_the_mean_interval() -> None:
    generator = np.random.default_rng(6)
    clusters = np.repeat(np.arange(20), 10)
    values = generator.normal(size=20)[clusters] + 0.2 * generator.normal(size=200)
    clustered = stats.mean_ci(values, cluster_ids=clusters)
    naive = stats.mean_ci(values)
    assert clustered.high - clustered.low > 2 * (naive.high - naive.low)


def test_mean_ci_edge_cases() -> None:
    with pytest.raises(ValueError):
        stats.mean_ci([])
    with pytest.raises(ValueError):
        stats.proportion([])
    with pytest.raises(ValueError):
        stats.mean_ci([1.0, float("nan")])
    constant = stats.mean_ci([0.4, 0.4, 0.4])
    assert (constant.mean, constant.low, constant.high) == pytest.approx((0.4, 0.4, 0.4))
    single_cluster = stats.mean_ci([0.1, 0.5, 0.9], cluster_ids=["c", "c", "c"])
    assert single_cluster.mean == pytest.approx(0.5)
    assert (single_cluster.low, single_cluster.high) == (-np.inf, np.inf)
    with pytest.raises(ValueError):
        stats.mean_ci([1.0, 2.0], cluster_ids=["only-one"])


def test_bootstrap_delta_direction_and_analytic_se() -> None:
    generator = np.random.default_rng(7)
    a = generator.normal(0.3, 1.0, size=400)
    b = a - 0.1 + generator.normal(0, 0.5, size=400)
    result = stats.paired_bootstrap_diff(a, b, n_resamples=4000, seed=1)
    differences = a - b
    assert result.delta == pytest.approx(differences.mean())
    bootstrap_se = (result.high - result.low) / (2 * 1.96)
    assert bootstrap_se == pytest.approx(differences.std() / np.sqrt(400), rel=0.1)
    assert result.low < result.delta < result.high


def test_bootstrap_seeds_reproduce_exactly() -> None:
    generator = np.random.default_rng(8)
    a, b = generator.random(300), generator.random(300)
    clusters = generator.integers(0, 30, size=300)
    first = stats.paired_bootstrap_diff(a, b, cluster_ids=clusters, seed=42)
    assert stats.paired_bootstrap_diff(a, b, cluster_ids=clusters, seed=42) == first
    assert first.seed == 42
    assert stats.paired_bootstrap_diff(a, b, cluster_ids=clusters, seed=43) != first


def test_bootstrap_ci_covers_true_difference_at_nominal_rate() -> None:
    generator = np.random.default_rng(9)
    true_delta = 0.25
    covered = 0
    for simulation in range(200):
        a = generator.normal(size=100)
        b = a - true_delta + generator.normal(size=100)
        result = stats.paired_bootstrap_diff(a, b, n_resamples=1000, seed=simulation)
        covered += result.low <= true_delta <= result.high
    assert 0.90 <= covered / 200 <= 0.99


def test_bootstrap_p_values_are_roughly_uniform_under_the_null() -> None:
    generator = np.random.default_rng(10)
    p_values = [
        stats.paired_bootstrap_diff(
            generator.normal(size=80), generator.normal(size=80), n_resamples=999, seed=s
        ).p_value
        for s in range(200)
    ]
    assert scipy_stats.kstest(p_values, "uniform").pvalue > 0.001
    assert 0.01 <= np.mean(np.asarray(p_values) < 0.05) <= 0.12


def test_bootstrap_detects_a_clear_difference() -> None:
    generator = np.random.default_rng(11)
    a = generator.normal(1.0, 1.0, size=200)
    result = stats.paired_bootstrap_diff(a, a - 0.5 + 0.2 * generator.normal(size=200), seed=0)
    assert result.p_value == pytest.approx(2 / 2001)
    assert result.low > 0


def test_cluster_bootstrap_is_wider_when_clusters_are_correlated() -> None:
    generator = np.random.default_rng(12)
    clusters = np.repeat(np.arange(40), 10)
    a = generator.normal(size=400)
    b = a - generator.normal(size=40)[clusters] - 0.3 * generator.normal(size=400)
    by_item = stats.paired_bootstrap_diff(a, b, seed=0)
    by_cluster = stats.paired_bootstrap_diff(a, b, cluster_ids=clusters, seed=0)
    assert by_cluster.delta == by_item.delta
    assert by_cluster.n_clusters == 40 and by_item.n_clusters == 400
    assert by_cluster.high - by_cluster.low > 1.5 * (by_item.high - by_item.low)


def test_bootstrap_edge_cases() -> None:
    same = stats.paired_bootstrap_diff([0.3, 0.7, 1.0], [0.3, 0.7, 1.0])
    assert (same.delta, same.low, same.high, same.p_value) == (0.0, 0.0, 0.0, 1.0)
    single = stats.paired_bootstrap_diff([1.0, 1.0, 0.0], [0.0, 0.0, 0.0], cluster_ids=["c"] * 3)
    assert single.delta == pytest.approx(2 / 3)
    assert (single.low, single.high, single.p_value) == (-np.inf, np.inf, 1.0)
    with pytest.raises(ValueError):
        stats.paired_bootstrap_diff([], [])
    with pytest.raises(ValueError):
        stats.paired_bootstrap_diff([1.0, 2.0], [1.0])
    with pytest.raises(ValueError):
        stats.paired_bootstrap_diff([1.0, 2.0], [1.0, 3.0], n_resamples=0)
    with pytest.raises(ValueError):
        stats.paired_bootstrap_diff([1.0, 2.0], [1.0, 3.0], confidence=1.0)


def test_bootstrap_is_fast_enough() -> None:
    generator = np.random.default_rng(13)
    a, b = generator.random(1000), generator.random(1000)
    stats.paired_bootstrap_diff(a, b, n_resamples=2000)
    started = time.perf_counter()
    stats.paired_bootstrap_diff(a, b, n_resamples=2000)
    assert time.perf_counter() - started < 0.5


def test_mcnemar_matches_scipy_binomtest() -> None:
    generator = np.random.default_rng(14)
    for _ in range(50):
        n = int(generator.integers(1, 120))
        a = generator.random(n) < generator.random()
        b = generator.random(n) < generator.random()
        result = stats.mcnemar_exact(a, b)
        assert result.b01 == int(np.sum(~a & b)) and result.b10 == int(np.sum(a & ~b))
        if result.b01 + result.b10:
            expected = scipy_stats.binomtest(result.b01, result.b01 + result.b10, 0.5).pvalue
            assert result.p_value == pytest.approx(expected, rel=1e-9)


def test_mcnemar_counts_direction_and_edge_cases() -> None:
    result = stats.mcnemar_exact([1, 1, 1, 0, 0], [0, 0, 1, 1, 0])
    assert (result.b01, result.b10) == (1, 2)
    assert stats.mcnemar_exact([True, False], [True, False]).p_value == 1.0
    assert stats.mcnemar_exact([1, 0], [0, 1]).p_value == 1.0
    with pytest.raises(ValueError):
        stats.mcnemar_exact([], [])
    with pytest.raises(ValueError):
        stats.mcnemar_exact([0.5, 1.0], [0, 1])
    with pytest.raises(ValueError):
        stats.mcnemar_exact([1, 0, 1], [0, 1])


def test_holm_textbook_example() -> None:
    # Holm-Bonferroni worked example (four hypotheses, alpha 0.05): H4 and H1 rejected, then stop at H3.
    results = stats.holm([0.01, 0.04, 0.03, 0.005])
    assert [result.adjusted_p for result in results] == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert [result.significant for result in results] == [True, False, False, True]


def step_down_rejections(p_values: np.ndarray, alpha: float) -> list[bool]:
    """Holm's procedure as written: reject in ascending order while p_(k) <= alpha / (m - k + 1)."""
    rejected = [False] * p_values.size
    for rank, index in enumerate(np.argsort(p_values, kind="stable")):
        if p_values[index] > alpha / (p_values.size - rank):
            break
        rejected[index] = True
    return rejected


def test_holm_agrees_with_the_step_down_rule_and_is_monotone() -> None:
    generator = np.random.default_rng(15)
    for _ in range(200):
        p_values = generator.random(int(generator.integers(1, 12))) ** 3
        results = stats.holm(p_values.tolist(), alpha=0.1)
        assert [result.significant for result in results] == step_down_rejections(p_values, 0.1)
        adjusted = np.array([result.adjusted_p for result in results])
        order = np.argsort(p_values, kind="stable")
        assert np.all(np.diff(adjusted[order]) >= 0)
        assert np.all((adjusted >= p_values) & (adjusted <= 1))


def test_holm_edge_cases() -> None:
    assert stats.holm([]) == []
    assert stats.holm([0.6, 0.7])[0].adjusted_p == 1.0
    with pytest.raises(ValueError):
        stats.holm([0.2, float("nan")])
    with pytest.raises(ValueError):
        stats.holm([1.2])


def test_paired_compare_chooses_the_test() -> None:
    generator = np.random.default_rng(16)
    a, b = generator.random(60) < 0.7, generator.random(60) < 0.5
    binary = stats.paired_compare(a, b, seed=3)
    assert binary.test == "mcnemar_exact"
    assert binary.p_value == stats.mcnemar_exact(a, b).p_value
    bootstrap = stats.paired_bootstrap_diff(a, b, seed=3)
    assert (binary.delta, binary.low, binary.high, binary.seed) == (
        bootstrap.delta,
        bootstrap.low,
        bootstrap.high,
        3,
    )
    first, second = generator.random(60), generator.random(60)
    continuous = stats.paired_compare(first, second)
    assert continuous.test == "paired_t"
    assert continuous.p_value == pytest.approx(scipy_stats.ttest_rel(first, second).pvalue, rel=1e-9)
    clustered = stats.paired_compare(a, b, cluster_ids=np.repeat(np.arange(12), 5))
    assert clustered.test == "cluster_t"
    cluster_means = (a.astype(float) - b.astype(float)).reshape(12, 5).mean(axis=1)
    # Equal cluster sizes: the clustered t equals a one-sample t on cluster means.
    assert clustered.p_value == pytest.approx(scipy_stats.ttest_1samp(cluster_means, 0).pvalue, rel=1e-9)


def test_the_t_test_p_has_no_resampling_floor_and_ignores_float_noise() -> None:
    generator = np.random.default_rng(5)
    base = generator.normal(size=300)
    shifted = base + 1.0 + generator.normal(scale=0.1, size=300)
    comparison = stats.paired_compare(shifted, base)
    assert comparison.p_value < 1e-100  # a bootstrap p could not go below 2 / 2001
    assert stats.holm([comparison.p_value] * 300)[0].significant
    noise = base + 1e-17
    assert stats.paired_compare(noise, base).p_value == 1.0


def test_minimum_detectable_effect_formula_and_reference_numbers() -> None:
    z_sum = scipy_stats.norm.ppf(0.975) + scipy_stats.norm.ppf(0.8)
    assert stats.minimum_detectable_effect(200, baseline=0.5) == pytest.approx(z_sum * 0.5 / np.sqrt(200))
    # diagnostics.md §6.1: 3 points at p = 0.5 needs ~4,400 items unpaired, ~2,200 with correlation 0.5.
    assert stats.minimum_detectable_effect(2180, baseline=0.5) == pytest.approx(0.03, abs=5e-4)
    assert stats.minimum_detectable_effect(4360, baseline=0.5, correlation=0.0) == pytest.approx(
        0.03, abs=5e-4
    )
    assert stats.minimum_detectable_effect(100, paired_discordance=0.25) == pytest.approx(z_sum * 0.05)
    assert stats.minimum_detectable_effect(100, sd=2.0, alpha=0.01, power=0.9) == pytest.approx(
        (scipy_stats.norm.ppf(0.995) + scipy_stats.norm.ppf(0.9)) * 0.2
    )


def test_minimum_detectable_effect_has_the_promised_power() -> None:
    generator = np.random.default_rng(17)
    effect = stats.minimum_detectable_effect(150, sd=1.0)
    differences = generator.normal(effect, 1.0, size=(2000, 150))
    power = np.mean(scipy_stats.ttest_1samp(differences, 0.0, axis=1).pvalue < 0.05)
    assert 0.76 <= power <= 0.84


def test_minimum_detectable_effect_rejects_bad_input() -> None:
    with pytest.raises(ValueError):
        stats.minimum_detectable_effect(0, baseline=0.5)
    with pytest.raises(ValueError):
        stats.minimum_detectable_effect(100)
    with pytest.raises(ValueError):
        stats.minimum_detectable_effect(100, baseline=0.5, sd=1.0)
    with pytest.raises(ValueError):
        stats.minimum_detectable_effect(100, baseline=1.5)
    with pytest.raises(ValueError):
        stats.minimum_detectable_effect(100, baseline=0.5, power=1.0)


def test_mde_note_sentence() -> None:
    assert stats.mde_note(200, 0.5) == (
        "with 200 items, differences under ~9.9 points are not detectable at 80% power"
    )


def make_record(item_id: str, variant: str, strict: float | None, cluster_id: str = "c") -> ItemRecord:
    return ItemRecord(
        probe="instruction_following",
        variant=variant,
        template="chatml",
        item_id=item_id,
        cluster_id=cluster_id,
        metrics={"strict": strict},
    )


def test_pairing_aligns_records_and_counts_what_is_left_out() -> None:
    records_a = [make_record("b", "base", 1.0), make_record("a", "base", 0.0), make_record("x", "base", 1.0)]
    records_b = [
        make_record("a", "final", 1.0),
        make_record("b", "final", 1.0),
        make_record("y", "final", 0.0),
        make_record("z", "final", 0.0),
    ]
    paired = stats.pairing(records_a, records_b, value=lambda record: record.metrics["strict"])
    assert paired.ids == ("a", "b")
    assert paired.a_values.tolist() == [0.0, 1.0] and paired.b_values.tolist() == [1.0, 1.0]
    assert paired.cluster_ids == ("c", "c")
    assert (paired.unmatched_a, paired.unmatched_b, paired.missing_values) == (1, 2, 0)


def test_pairing_dicts_missing_values_duplicates_and_cluster_mismatch() -> None:
    records_a = [{"item_id": 1, "score": True}, {"item_id": 2, "score": None}]
    records_b = [{"item_id": 2, "score": False}, {"item_id": 1, "score": False}]
    paired = stats.pairing(records_a, records_b, value=lambda record: record["score"], cluster=None)
    assert paired.ids == (1,) and paired.a_values.tolist() == [1.0] and paired.cluster_ids is None
    assert paired.missing_values == 1
    with pytest.raises(ValueError, match="more than one record"):
        stats.pairing(records_a * 2, records_b, value=lambda record: record["score"], cluster=None)
    mismatched = [make_record("a", "final", 1.0, cluster_id="other")]
    with pytest.raises(ValueError, match="cluster"):
        stats.pairing(
            [make_record("a", "base", 0.0)], mismatched, value=lambda record: record.metrics["strict"]
        )
