"""Many comparisons and small samples: Holm's correction, and the smallest effect a sample can detect."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import special

from sfteval.stats.arrays import normal_quantile


@dataclass(frozen=True)
class HolmResult:
    """One hypothesis after Holm's step-down correction."""

    p_value: float
    adjusted_p: float
    significant: bool


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
    z_sum = normal_quantile(1 - alpha) + float(special.ndtri(power))
    return z_sum * difference_sd / float(np.sqrt(n))


def mde_note(n: int, baseline: float = 0.5, power: float = 0.8) -> str:
    """One-sentence power note for a report, in percentage points, from `minimum_detectable_effect`."""
    effect = minimum_detectable_effect(n, baseline=baseline, power=power)
    noun = "item" if n == 1 else "items"
    return (
        f"with {n} {noun}, differences under ~{100 * effect:.1f} points are not detectable "
        f"at {100 * power:.0f}% power"
    )
