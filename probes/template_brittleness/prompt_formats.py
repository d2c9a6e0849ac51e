"""Semantically equivalent prompt formats for multiple-choice items, and sensitivity measures across conditions.

Formats follow FormatSpread's grammar (Sclar et al. 2023, `msclar/formatspread` grammar_definition.py; see
diagnostics.md §2.1): the separator between a field name and its text, the space between fields, the casing of field
names, and how options are enumerated (wrapper, numbering, gap before the option text). A seeded sample is shared
by every variant of a run, so per-item results pair across checkpoints. Sensitivity: ProSA's per-item PSS (mean
pairwise disagreement across conditions) and the spread max − min of condition accuracies with a bootstrap CI.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from sfteval import stats

# Subsets of FormatSpread's option lists that stay readable as one prompt.
SEPARATORS = (": ", ":: ", "::: ", " : ", " - ", ":\n", ": \n", "\n")
SPACES = ("\n", "\n\n", " \n", "; \n", " || ", " -- ", "\n ")
CASINGS = ("identity", "title", "upper", "lower")
WRAPPERS = ("({})", "{}.", "{})", "[{}]", "<{}>", "{} )")
NUMBERINGS = ("ABCDEFGH", "abcdefgh", "12345678", ("i", "ii", "iii", "iv", "v", "vi", "vii", "viii"))
OPTION_GAPS = (" ", "  ", "\t")


@dataclass(frozen=True)
class PromptFormat:
    """One way of writing a multiple-choice prompt; `render` gives the context, options are scored after it."""

    name: str
    separator: str
    space: str
    casing: str
    wrapper: str
    numbering: tuple[str, ...]
    option_gap: str

    def field(self, descriptor: str) -> str:
        """A field name in this format's casing."""
        return {"identity": descriptor, "title": descriptor.title(), "upper": descriptor.upper()}.get(
            self.casing, descriptor.lower()
        )

    def render(self, question: str, choices: Sequence[str]) -> str:
        """Question, enumerated options and the answer field, ending where the answer text begins."""
        options = self.space.join(
            self.wrapper.format(label) + self.option_gap + choice
            for label, choice in zip(self.numbering, choices, strict=False)
        )
        fields = [
            self.field("Question") + self.separator + question,
            self.field("Options") + self.separator + options,
            self.field("Answer") + self.separator.rstrip(" "),
        ]
        return self.space.join(fields)


def sample_formats(count: int, seed: int) -> list[PromptFormat]:
    """`count` distinct formats drawn with `seed`; a separator with a newline forces a space with one (FormatSpread)."""
    rng = random.Random(seed)
    formats: dict[tuple, PromptFormat] = {}
    while len(formats) < count:
        separator = rng.choice(SEPARATORS)
        spaces = [space for space in SPACES if "\n" in space] if "\n" in separator else list(SPACES)
        numbering = rng.choice(NUMBERINGS)
        key = (
            separator,
            rng.choice(spaces),
            rng.choice(CASINGS),
            rng.choice(WRAPPERS),
            tuple(numbering),
            rng.choice(OPTION_GAPS),
        )
        formats.setdefault(key, PromptFormat(f"format-{len(formats)}", *key))
    return list(formats.values())


def continuation_after(context: str, text: str) -> str:
    """The scored option text: a space first unless the context already ends in whitespace."""
    return text if not context or context[-1].isspace() else " " + text


def pss(scores: Sequence[float]) -> float:
    """ProSA's per-item sensitivity: mean |Y(p) − Y(q)| over all pairs of conditions."""
    pairs = list(itertools.combinations(scores, 2))
    return sum(abs(first - second) for first, second in pairs) / len(pairs) if pairs else 0.0


def spread_estimate(
    scores: Sequence[Mapping[str, float]],
    cluster_ids: Sequence[str],
    seed: int,
    n_resamples: int = 1000,
    confidence: float = 0.95,
) -> stats.Estimate:
    """Spread = max − min over conditions of the mean score, with a percentile (cluster) bootstrap CI.

    Each element of `scores` is one item's score per condition; only conditions every item has are used.
    """
    codes, weights = _resampling(cluster_ids, seed, n_resamples)
    observed, resampled = _spreads(scores, codes, weights)
    low, high = _percentiles(resampled, confidence)
    method = "bootstrap" if weights.shape[1] == len(scores) else "cluster-bootstrap"
    return stats.Estimate(observed, low, high, len(scores), float(resampled.std()), weights.shape[1], method)


def spread_difference(
    scores: Sequence[Mapping[str, float]],
    reference_scores: Sequence[Mapping[str, float]],
    cluster_ids: Sequence[str],
    seed: int,
    n_resamples: int = 1000,
    confidence: float = 0.95,
) -> tuple[float, float, float]:
    """spread(scores) − spread(reference) on the same items, with a paired (cluster) bootstrap percentile CI."""
    codes, weights = _resampling(cluster_ids, seed, n_resamples)
    observed, resampled = _spreads(scores, codes, weights)
    reference, reference_resampled = _spreads(reference_scores, codes, weights)
    low, high = _percentiles(resampled - reference_resampled, confidence)
    return observed - reference, low, high


def _resampling(cluster_ids: Sequence[str], seed: int, n_resamples: int) -> tuple[np.ndarray, np.ndarray]:
    """Cluster codes of the items and, per resample, how often each cluster was drawn."""
    codes = np.unique(np.asarray(cluster_ids), return_inverse=True)[1]
    n_clusters = int(codes.max()) + 1
    draws = np.random.default_rng(seed).integers(0, n_clusters, size=(n_resamples, n_clusters))
    weights = np.stack([np.bincount(row, minlength=n_clusters) for row in draws]).astype(float)
    return codes, weights


def _spreads(
    scores: Sequence[Mapping[str, float]], codes: np.ndarray, weights: np.ndarray
) -> tuple[float, np.ndarray]:
    """The observed spread and its value under each resample's cluster weights."""
    conditions = sorted(set.intersection(*(set(row) for row in scores)))
    matrix = np.array([[row[condition] for condition in conditions] for row in scores], dtype=float)
    sums = np.zeros((weights.shape[1], len(conditions)))
    np.add.at(sums, codes, matrix)
    counts = np.bincount(codes, minlength=weights.shape[1]).astype(float)
    observed = float(_spread(sums.sum(0) / counts.sum()))
    return observed, _spread((weights @ sums) / (weights @ counts)[:, None])


def _percentiles(values: np.ndarray, confidence: float) -> tuple[float, float]:
    tail = (1 - confidence) / 2
    low, high = np.quantile(values, [tail, 1 - tail])
    return float(low), float(high)


def _spread(means: np.ndarray) -> np.ndarray:
    return means.max(axis=-1) - means.min(axis=-1)
