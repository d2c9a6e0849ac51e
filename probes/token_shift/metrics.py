"""The token_shift probe's name and metrics: shares of answer tokens the base ranks top-1, 2-3 or lower, by position."""

from __future__ import annotations

from sfteval.core.metrics import MetricSpec

NAME = "token_shift"
MARGINAL_RANK = 3
BUCKETS = (("first5", 0, 5), ("5to20", 5, 20), ("after20", 20, None))

METRICS = (
    MetricSpec("shifted", "share of answer tokens ranked > 3 by the base", higher_is_better=None, headline=True,
               fraction=True),
    MetricSpec("marginal", "share of answer tokens ranked 2-3 by the base", higher_is_better=None, fraction=True),
    MetricSpec("unshifted", "share of answer tokens that are the base's top-1", higher_is_better=None,
               fraction=True),
    *(MetricSpec(f"shifted_{name}", f"shifted share of answer tokens at positions {name}",
                 higher_is_better=None, fraction=True) for name, _, _ in BUCKETS),
    MetricSpec("shifted_pooled", "shifted tokens / tokens over all answers", higher_is_better=None),
    MetricSpec("marginal_pooled", "marginal tokens / tokens over all answers", higher_is_better=None),
)  # fmt: skip
