"""Calibration measures: option probabilities, Brier score, expected calibration error, and bootstraps of ECE.

Pure functions of log-likelihoods and 0/1 outcomes (no models), so they are tested against hand computations.
ECE (Naeini et al. 2015; as in the GPT-4 technical report): Σ_b (|B_b| / n) · |acc(B_b) − conf(B_b)| over equal-width
confidence bins, the last bin closed at 1. ECE is not a mean of item values, so its intervals come from resampling
items: a percentile bootstrap for one model, and a paired bootstrap of the difference for a model and its base on
the same items.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from sfteval import stats


@dataclass(frozen=True)
class Choice:
    """One multiple-choice answer: the option probabilities, the chosen (argmax) option and the gold option."""

    probabilities: tuple[float, ...]
    chosen: int
    gold: int

    @property
    def confidence(self) -> float:
        return self.probabilities[self.chosen]

    @property
    def correct(self) -> bool:
        return self.chosen == self.gold

    @property
    def brier(self) -> float:
        """Σ_k (p_k − y_k)² over the options (0 = certain and right, 2 = certain and wrong)."""
        return math.fsum((p - (k == self.gold)) ** 2 for k, p in enumerate(self.probabilities))


def choose(logprobs: Sequence[float], gold: int) -> Choice:
    """Softmax over the options' log-likelihoods (lm-eval's `brier_score` probabilities); the first argmax is
    chosen, as lm-eval's `acc` chooses."""
    top = max(logprobs)
    weights = [math.exp(value - top) for value in logprobs]
    total = math.fsum(weights)
    probabilities = tuple(weight / total for weight in weights)
    return Choice(probabilities, int(np.argmax(logprobs)), gold)


def bin_index(confidence: float, bins: int) -> int:
    """Equal-width bin of a confidence in [0, 1]; 1.0 falls in the last bin."""
    return min(int(confidence * bins), bins - 1)


def ece(confidences: Sequence[float], correct: Sequence[float], bins: int = 10) -> float:
    """Expected calibration error over `bins` equal-width bins (0 for no items)."""
    conf, acc = np.asarray(confidences, dtype=float), np.asarray(correct, dtype=float)
    return _ece(conf, acc, bins) if conf.size else 0.0


def _ece(conf: np.ndarray, acc: np.ndarray, bins: int) -> float:
    """Per bin |Σ correct − Σ confidence| = |B_b| · |acc(B_b) − conf(B_b)|, summed and divided by n."""
    index = np.minimum((conf * bins).astype(int), bins - 1)
    gaps = np.abs(np.bincount(index, acc, bins) - np.bincount(index, conf, bins))
    return float(gaps.sum() / conf.size)


def ece_estimate(
    confidences: Sequence[float], correct: Sequence[float], bins: int, n_resamples: int, seed: int
) -> stats.Estimate:
    """ECE with a 95% percentile-bootstrap interval over items (method `bootstrap`), widened to hold the estimate:
    binned ECE is biased upward, so for a well-calibrated model every resample can lie above the estimate."""
    conf, acc = np.asarray(confidences, dtype=float), np.asarray(correct, dtype=float)
    value = _ece(conf, acc, bins)
    if conf.size < 2:
        return stats.Estimate(value, -math.inf, math.inf, conf.size, math.inf, conf.size, "bootstrap")
    draws = np.random.default_rng(seed).integers(0, conf.size, size=(n_resamples, conf.size))
    resampled = np.array([_ece(conf[rows], acc[rows], bins) for rows in draws])
    low, high = (float(bound) for bound in np.quantile(resampled, [0.025, 0.975]))
    spread = float(resampled.std())
    return stats.Estimate(value, min(low, value), max(high, value), conf.size, spread, conf.size, "bootstrap")


@dataclass(frozen=True)
class EceDifference:
    """ECE(variant) − ECE(base) on the same items, its 95% paired-bootstrap interval and two-sided p-value."""

    delta: float
    low: float
    high: float
    p_value: float
    n: int


def paired_ece_difference(
    variant: tuple[Sequence[float], Sequence[float]],
    base: tuple[Sequence[float], Sequence[float]],
    bins: int,
    n_resamples: int,
    seed: int,
) -> EceDifference:
    """Resample item indices, recompute both ECEs on the same resample; p inverts the percentile interval with the
    +1 correction, as sfteval.stats.paired_bootstrap_diff does for means."""
    conf_v, acc_v = (np.asarray(values, dtype=float) for values in variant)
    conf_b, acc_b = (np.asarray(values, dtype=float) for values in base)
    delta = _ece(conf_v, acc_v, bins) - _ece(conf_b, acc_b, bins)
    size = conf_v.size
    if size < 2:
        return EceDifference(delta, -math.inf, math.inf, 1.0, size)
    draws = np.random.default_rng(seed).integers(0, size, size=(n_resamples, size))
    deltas = np.array([_ece(conf_v[r], acc_v[r], bins) - _ece(conf_b[r], acc_b[r], bins) for r in draws])
    low, high = np.quantile(deltas, [0.025, 0.975])
    far_side = int(min(np.count_nonzero(deltas <= 0), np.count_nonzero(deltas >= 0)))
    p_value = min(1.0, 2 * (far_side + 1) / (n_resamples + 1))
    return EceDifference(delta, float(low), float(high), p_value, size)
