"""One paired comparison of two sets of item records, as the report, its recommendation, `diff` and baseline gates
all make it: align on item keys, compare with `stats.paired_compare` under the report's statistical settings."""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass

from sfteval import stats
from sfteval.core.errors import UserError
from sfteval.core.records import ItemRecord
from sfteval.core.run_info import StatsSettings


@dataclass(frozen=True)
class Paired:
    """The alignment and, when some item has a value on both sides, the comparison (delta = first − second)."""

    pairing: stats.Pairing
    comparison: stats.Comparison | None

    @property
    def low(self) -> float | None:
        """The CI's lower bound, None when it is unknown (fewer than two clusters)."""
        return _bounded(self.comparison, lambda comparison: comparison.low)

    @property
    def high(self) -> float | None:
        """The CI's upper bound, None when it is unknown."""
        return _bounded(self.comparison, lambda comparison: comparison.high)

    @property
    def unpaired(self) -> int:
        """Items on one side only or without a value on both."""
        return self.pairing.unmatched_a + self.pairing.unmatched_b + self.pairing.missing_values


def compare_records(
    first: Sequence[ItemRecord],
    second: Sequence[ItemRecord],
    value: Callable[[ItemRecord], float | None],
    settings: StatsSettings,
    proportions: bool,
    where: str,
    key: Callable[[ItemRecord], Hashable] = stats.item_id_of,
    same_run: bool = True,
) -> Paired:
    """Pair two record sets and compare them; `where` names them in the UserError for inconsistent records.

    Within one run cluster ids must agree between variants (`same_run`); across runs the first side's clusters are
    used, since a suite may have regrouped its items.
    """
    try:
        pairs = stats.pairing(
            first, second, value=value, key=key, cluster=stats.cluster_id_of if same_run else None
        )
    except ValueError as error:
        raise UserError(f"{where}: {error}") from None
    if not pairs.ids:
        return Paired(pairs, None)
    clusters = {key(record): record.cluster_id for record in first}
    comparison = stats.paired_compare(
        pairs.a_values,
        pairs.b_values,
        pairs.cluster_ids if same_run else [clusters[item] for item in pairs.ids],
        seed=settings.seed,
        n_resamples=settings.n_resamples,
        confidence=settings.confidence,
        proportions=proportions,
    )
    return Paired(pairs, comparison)


def _bounded(comparison: stats.Comparison | None, bound: Callable[[stats.Comparison], float]) -> float | None:
    if comparison is None or not (math.isfinite(comparison.low) and math.isfinite(comparison.high)):
        return None
    return bound(comparison)
