"""No interval in a report leaves its metric's range: proportions (binary and fraction metrics, and summaries that
are shares) stay in [0, 1] and are never zero-width, differences of proportions stay in [−1, 1] — for any records."""

from __future__ import annotations

from demo_fixtures import demo_report
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from report_fixtures import run_info

from sfteval.core.metrics import MetricSpec
from sfteval.core.records import ItemRecord
from sfteval.probes import PROBES
from sfteval.probes.base import PlannedRequest, Probe, ProbeContext
from sfteval.report.build import build_report

VARIANTS = ("base", "epoch-1", "epoch-2")


class ShareProbe(Probe):
    """A binary, a fraction and an unbounded metric over clustered items."""

    name = "shares"
    metrics = (
        MetricSpec("passed", "0/1 outcome", binary=True, headline=True),
        MetricSpec("share", "a fraction of sub-checks passed", fraction=True),
        MetricSpec("loss", "an unbounded number", higher_is_better=False),
    )

    def plan(self, context: ProbeContext) -> list[PlannedRequest]:
        return []

    def records(self, context, planned, results) -> list[ItemRecord]:
        return []


item = st.tuples(st.booleans(), st.sampled_from([0.0, 0.25, 1 / 3, 0.5, 1.0]), st.floats(-50, 50))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.lists(item, min_size=1, max_size=14), min_size=3, max_size=3), st.integers(1, 4))
def test_no_interval_leaves_its_metrics_range(per_variant, cluster_size):
    records = [
        ItemRecord(
            probe="shares",
            variant=variant,
            template="chatml",
            item_id=f"item-{index}",
            cluster_id=f"cluster-{index // cluster_size}",
            metrics={"passed": passed, "share": share, "loss": loss},
        )
        for variant, items in zip(VARIANTS, per_variant, strict=True)
        for index, (passed, share, loss) in enumerate(items)
    ]
    report = build_report(run_info(), records, {"shares": ShareProbe()}, seed=1)
    assert_valid(report)


def assert_valid(report) -> None:
    """Every bounded metric's interval in [0, 1], non-zero width; every bounded difference in [−1, 1]."""
    for probe in report.probes:
        bounded = {info.name for info in probe.metrics if info.binary or info.fraction}
        for cell in probe.cells:
            for value in cell.metrics:
                if value.name in bounded and value.low is not None:
                    assert 0 <= value.low < value.high <= 1, (probe.name, value)
                    assert value.low <= value.value <= value.high
    for comparison in report.comparisons:
        info = report.probe(comparison.probe).metric_info(comparison.metric)
        if (info.binary or info.fraction) and comparison.low is not None:
            assert -1 <= comparison.low < comparison.high <= 1, comparison
            assert comparison.interval.startswith("newcombe")


def test_instruction_following_family_shares_stay_in_the_unit_interval():
    """IFEval's per-family shares over few clustered instructions were t intervals reaching [-0.56, 1.06]."""
    records = []
    for variant in VARIANTS:
        for index in range(6):
            verdicts = [
                {"id": "startend:end_checker", "strict": index % 4 == 0, "loose": index % 4 == 0},
                {"id": "detectable_format:title", "strict": index % 3 == 0, "loose": index % 3 == 0},
            ]
            records.append(
                ItemRecord(
                    probe="instruction_following",
                    variant=variant,
                    template="native",
                    item_id=str(index),
                    cluster_id=f"code-{index // 3}",
                    metrics={
                        "prompt_loose": 0,
                        "prompt_strict": 0,
                        "instruction_loose": 0.5,
                        "instruction_strict": 0.5,
                    },
                    extra={"instructions": verdicts},
                )
            )
    probe = PROBES.get("instruction_following")()
    report = build_report(run_info(), records, {"instruction_following": probe})
    family = report.probe("instruction_following").cell("base", "native").metric("family:startend")
    assert family.method == "wilson-deff" and 0 <= family.low < family.value < family.high <= 1
    zero = report.probe("instruction_following").cell("base", "native").metric("prompt_loose")
    assert zero.value == 0 and zero.low == 0 < zero.high  # 0 of 6: never a zero-width interval
    assert_valid(report)


def test_every_interval_of_the_demo_like_report_is_valid():
    assert_valid(demo_report())
