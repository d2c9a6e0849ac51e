"""Per-item score arrays as the statistics need them: validated, aligned, grouped into clusters."""

from __future__ import annotations

from collections.abc import Hashable
from typing import Any

import numpy as np
from scipy import special


def as_values(values: Any, name: str) -> np.ndarray:
    """A non-empty 1-D float array of finite per-item scores (booleans become 0/1)."""
    array = np.asarray(values, dtype=float)
    if array.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {array.shape}")
    if array.size == 0:
        raise ValueError(f"{name} is empty: at least one item is needed")
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{name} contains NaN or infinite values")
    return array


def aligned(a: Any, b: Any) -> tuple[np.ndarray, np.ndarray]:
    """Two score arrays that must be aligned per item (same length, same order)."""
    first, second = as_values(a, "a"), as_values(b, "b")
    if first.shape != second.shape:
        raise ValueError(f"a and b must be aligned per item: {first.size} vs {second.size} values")
    return first, second


def is_binary(values: np.ndarray) -> bool:
    """Whether every value is 0 or 1."""
    return bool(np.all((values == 0) | (values == 1)))


def cluster_codes(cluster_ids: Any, n: int) -> np.ndarray:
    """Integer codes 0..C−1 for cluster ids in first-seen order; each item is its own cluster when None."""
    if cluster_ids is None:
        return np.arange(n)
    ids = list(cluster_ids)
    if len(ids) != n:
        raise ValueError(f"cluster_ids has {len(ids)} entries for {n} items")
    codes: dict[Hashable, int] = {}
    return np.array([codes.setdefault(cluster_id, len(codes)) for cluster_id in ids], dtype=np.intp)


def clustered_se(scores: np.ndarray, codes: np.ndarray) -> float:
    """Clustered SE of the mean (Miller 2024, App. A) with the C/(C−1) small-sample factor used by inspect_ai.

    With one item per cluster this equals the CLT SE sqrt(Σ(s − s̄)² / (n(n − 1))); unknown (inf) below two clusters.
    """
    n_clusters = int(codes.max()) + 1
    if n_clusters < 2:
        return float(np.inf)
    residual_sums = np.bincount(codes, weights=scores - scores.mean(), minlength=n_clusters)
    variance = n_clusters / (n_clusters - 1) * float(np.sum(residual_sums**2)) / scores.size**2
    return float(np.sqrt(variance))


def checked_confidence(confidence: float) -> float:
    """The confidence level, which must lie strictly between 0 and 1."""
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must lie in (0, 1), got {confidence}")
    return float(confidence)


def normal_quantile(confidence: float) -> float:
    """Two-sided standard-normal critical value z_{(1+confidence)/2}."""
    return float(special.ndtri((1 + checked_confidence(confidence)) / 2))
