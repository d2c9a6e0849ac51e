"""Intervals for proportions and their differences: coverage by simulation at the quick suite's sizes, validity
(inside [0, 1] or [−1, 1], never zero-width) for any data, and agreement with the published formulas."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sfteval import stats
from sfteval.stats.proportions import paired_difference_bounds, proportion_bounds

REPLICATIONS = 4000
CLUSTER_COUNTS = (8, 15, 30)
PROPORTIONS = (0.02, 0.2, 0.5)
INTRACLUSTER_CORRELATION = 0.2


def layout(clusters: int) -> np.ndarray:
    """Cluster codes with sizes cycling 1, 2, 3, 4 (IFEval prompts carry 1-3 instructions; families group prompts)."""
    sizes = [1 + index % 4 for index in range(clusters)]
    return np.repeat(np.arange(clusters), sizes)


def cluster_probabilities(generator, p: float, clusters: int) -> np.ndarray:
    """Per-replication, per-cluster success probabilities: Beta with mean p and the intracluster correlation."""
    rho = INTRACLUSTER_CORRELATION
    return generator.beta(p * (1 - rho) / rho, (1 - p) * (1 - rho) / rho, size=(REPLICATIONS, clusters))


def clustered_outcomes(generator, p: float, codes: np.ndarray) -> np.ndarray:
    """(replications, items) 0/1 outcomes: items of one cluster share a Beta-distributed success probability."""
    per_cluster = cluster_probabilities(generator, p, int(codes.max()) + 1)
    return (generator.random((REPLICATIONS, codes.size)) < per_cluster[:, codes]).astype(float)


@pytest.mark.parametrize("clusters", CLUSTER_COUNTS)
def test_clustered_proportion_interval_covers_at_nominal_level(clusters):
    generator = np.random.default_rng(clusters)
    codes = layout(clusters)
    for p in PROPORTIONS:
        bounds = proportion_bounds(clustered_outcomes(generator, p, codes), codes)
        coverage = np.mean((bounds.low <= p) & (p <= bounds.high))
        assert coverage >= 0.93, (clusters, p, coverage)
        assert np.all(bounds.high - bounds.low > 0)


@pytest.mark.parametrize("clusters", CLUSTER_COUNTS)
def test_paired_difference_interval_covers_at_nominal_level(clusters):
    """Variant B repeats A's outcome on an item with probability 0.5, else draws from its own clustered rate."""
    generator = np.random.default_rng(100 + clusters)
    codes = layout(clusters)
    for p in PROPORTIONS:
        for other in (p, min(2 * p + 0.1, 0.9)):
            first = clustered_outcomes(generator, p, codes)
            fresh = clustered_outcomes(generator, other, codes)
            second = np.where(generator.random(first.shape) < 0.5, first, fresh)
            truth = p - (0.5 * p + 0.5 * other)
            bounds = paired_difference_bounds(first, second, codes)
            coverage = np.mean((bounds.low <= truth) & (truth <= bounds.high))
            assert coverage >= 0.93, (clusters, p, other, coverage)
            assert np.all(bounds.high - bounds.low > 0)


def test_independent_items_get_wilson_and_newcombes_paired_interval():
    outcomes = np.array([1] * 7 + [0] * 13)
    estimate = stats.proportion(outcomes)
    wilson = stats.wilson_interval(7, 20)
    assert estimate.method == "wilson" and (estimate.low, estimate.high) == pytest.approx(
        (wilson.low, wilson.high)
    )
    first = np.array([1] * 12 + [1] * 9 + [0] * 2 + [0] * 11)
    second = np.array([1] * 12 + [0] * 9 + [1] * 2 + [0] * 11)
    interval = stats.paired_difference_interval(first, second)
    assert interval.method == "newcombe"
    assert (interval.low, interval.high) == pytest.approx(newcombe_method_10(12, 9, 2, 11))


def newcombe_method_10(a: int, b: int, c: int, d: int) -> tuple[float, float]:
    """Newcombe (1998), paired method 10, written out from the paper: Wilson margins and the corrected phi."""
    n = a + b + c + d
    p1, p2 = (a + b) / n, (a + c) / n
    low1, high1 = (lambda i: (i.low, i.high))(stats.wilson_interval(a + b, n))
    low2, high2 = (lambda i: (i.low, i.high))(stats.wilson_interval(a + c, n))
    denominator = np.sqrt((a + b) * (c + d) * (a + c) * (b + d))
    numerator = max(a * d - b * c - n / 2, 0) if a * d > b * c else a * d - b * c
    phi = numerator / denominator if denominator else 0.0
    delta = np.sqrt((p1 - low1) ** 2 - 2 * phi * (p1 - low1) * (high2 - p2) + (high2 - p2) ** 2)
    epsilon = np.sqrt((high1 - p1) ** 2 - 2 * phi * (high1 - p1) * (p2 - low2) + (p2 - low2) ** 2)
    return p1 - p2 - delta, p1 - p2 + epsilon


@pytest.mark.parametrize("successes", [0, 24])
def test_all_or_nothing_is_never_a_zero_width_interval(successes):
    outcomes = [1] * successes + [0] * (24 - successes)
    clusters = [index // 3 for index in range(24)]
    for estimate in (stats.proportion(outcomes), stats.proportion(outcomes, clusters)):
        assert 0 <= estimate.low < estimate.high <= 1
        assert estimate.low <= estimate.mean <= estimate.high
    assert stats.proportion(outcomes, clusters).method == "wilson-deff"
    same = stats.paired_difference_interval(outcomes, outcomes, clusters)
    assert -1 <= same.low < 0 < same.high <= 1


def test_independent_difference_stays_inside_the_range():
    interval = stats.independent_difference((0.25, 0.0, 1.0), (0.75, 0.0, 1.0))
    assert -1 <= interval.low < 0.5 < interval.high <= 1
    assert stats.independent_difference((0.0, 0.0, 0.1), (0.0, 0.0, 0.1)).low < 0


def test_one_cluster_of_several_items_has_no_interval():
    estimate = stats.proportion([1, 0, 1], ["c", "c", "c"])
    assert estimate.low == -np.inf and estimate.high == np.inf
    assert stats.paired_difference_interval([1, 0, 1], [0, 0, 1], ["c", "c", "c"]).high == np.inf


def test_values_outside_the_unit_interval_are_refused():
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        stats.proportion([0.5, 1.5])


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.tuples(st.floats(0, 1), st.floats(0, 1), st.integers(0, 5)), min_size=1, max_size=40),
    st.booleans(),
)
def test_intervals_are_valid_for_any_data(rows, binary):
    first = np.array([row[0] for row in rows])
    second = np.array([row[1] for row in rows])
    if binary:
        first, second = np.round(first), np.round(second)
    clusters = [row[2] for row in rows]
    for values in (first, second):
        estimate = stats.proportion(values, clusters)
        if np.isfinite(estimate.low):
            assert 0 <= estimate.low < estimate.high <= 1
    difference = stats.paired_difference_interval(first, second, clusters)
    if np.isfinite(difference.low):
        assert -1 <= difference.low < difference.high <= 1
