"""Paired statistics for comparing checkpoints on the same items (diagnostics.md §6).

Intervals, paired differences with (cluster) bootstrap CIs, McNemar's exact test, Holm's correction and a power
note, after Miller 2024 ("Adding Error Bars to Evals", arXiv 2411.00640): `from sfteval import stats` gives them all.
"""

from sfteval.stats.intervals import Estimate, Interval, mean_ci, wilson_interval
from sfteval.stats.multiple import HolmResult, holm, mde_note, minimum_detectable_effect
from sfteval.stats.paired import (
    Comparison,
    McNemar,
    mcnemar_exact,
    paired_bootstrap_diff,
    paired_compare,
    paired_t_p,
)
from sfteval.stats.pairing import Pairing, cluster_id_of, item_id_of, pairing
from sfteval.stats.proportions import (
    DifferenceInterval,
    independent_difference,
    paired_difference_interval,
    proportion,
)

__all__ = [
    "Comparison",
    "DifferenceInterval",
    "Estimate",
    "HolmResult",
    "Interval",
    "McNemar",
    "Pairing",
    "cluster_id_of",
    "holm",
    "independent_difference",
    "item_id_of",
    "mcnemar_exact",
    "mde_note",
    "mean_ci",
    "minimum_detectable_effect",
    "paired_bootstrap_diff",
    "paired_compare",
    "paired_difference_interval",
    "paired_t_p",
    "pairing",
    "proportion",
    "wilson_interval",
]
