"""build_report on synthetic records: exact metric values, paired comparisons, Holm, findings, recommendation."""

from __future__ import annotations

import math

import pytest
from report_fixtures import (
    ACCURACY,
    CLUSTER_PERIODS,
    N_ITEMS,
    answer_records,
    cluster_records,
    probes,
    run_info,
)

from sfteval import stats
from sfteval.core.errors import UserError
from sfteval.core.records import ItemRecord
from sfteval.core.report import Report
from sfteval.core.results import ComparisonResult
from sfteval.report.build import build_report

SEED = 7


@pytest.fixture(scope="module")
def report() -> Report:
    return build_report(run_info(), answer_records() + cluster_records(), probes(), seed=SEED)


def comparison(report: Report, probe: str, metric: str, template: str, variant: str, reference: str):
    matches = [
        c
        for c in report.comparisons
        if (c.probe, c.metric, c.template, c.variant, c.reference)
        == (probe, metric, template, variant, reference)
    ]
    assert len(matches) == 1
    return matches[0]


def alpaca_passes(variant: str) -> list[int]:
    return [int(index % CLUSTER_PERIODS[variant] != 0) for index in range(12)]


def test_binary_cells_use_wilson_intervals(report):
    answers = report.probe("answers")
    for variant, outcomes in ACCURACY.items():
        value = answers.cell(variant, "chatml").metric("accuracy")
        interval = stats.wilson_interval(sum(outcomes), N_ITEMS)
        assert (value.value, value.low, value.high) == (sum(outcomes) / N_ITEMS, interval.low, interval.high)
        assert (value.n, value.n_clusters, value.missing, value.method) == (N_ITEMS, N_ITEMS, 0, "wilson")


def test_continuous_cells_use_t_intervals_and_count_missing_values(report):
    cell = report.probe("answers").cell("epoch-1", "chatml")
    lengths = [index + 1 for index in range(N_ITEMS)]
    expected = stats.mean_ci(lengths)
    length = cell.metric("length")
    assert (length.value, length.low, length.high, length.method) == (
        expected.mean,
        expected.low,
        expected.high,
        "t",
    )
    loss = cell.metric("loss")
    assert (loss.n, loss.missing) == (N_ITEMS - 1, 1)
    assert loss.value == pytest.approx(
        1.9 + sum(0.01 * (index % 7) for index in range(1, N_ITEMS)) / (N_ITEMS - 1)
    )


def test_clustered_binary_cells_use_wilson_on_the_design_effect_n_inside_the_unit_interval(report):
    clustered = report.probe("clustered")
    assert clustered.templates == ("alpaca", "chatml")
    passes = alpaca_passes("epoch-2")
    expected = stats.proportion(passes, cluster_ids=[index // 2 for index in range(12)])
    value = clustered.cell("epoch-2", "alpaca").metric("passed")
    assert (value.value, value.low, value.high, value.method, value.n_clusters) == (
        10 / 12,
        expected.low,
        expected.high,
        "wilson-deff",
        6,
    )
    # The clustered t interval reached past 100%; the design-effect Wilson interval cannot.
    assert stats.mean_ci(passes, cluster_ids=[index // 2 for index in range(12)]).high > 1
    assert 0 < value.low < value.value < value.high < 1


def test_summary_metrics_are_reported_but_not_compared(report):
    answers = report.probe("answers")
    declared, undeclared = answers.metric_info("opening_entropy"), answers.metric_info("distinct_outputs")
    assert (declared.per_item, declared.higher_is_better, declared.description) == (
        False,
        True,
        "entropy of first words",
    )
    assert (undeclared.per_item, undeclared.higher_is_better) == (False, None)
    value = answers.cell("epoch-2", "chatml").metric("distinct_outputs")
    assert (value.value, value.low, value.high, value.method) == (1.0, None, None, "summary")
    assert [info.name for info in answers.metrics] == [
        "accuracy",
        "length",
        "loss",
        "opening_entropy",
        "distinct_outputs",
    ]
    assert {c.metric for c in report.comparisons_of("answers")} == {"accuracy", "length", "loss"}


def test_each_variant_is_compared_with_base_and_the_previous_epoch(report):
    keys = {(c.probe, c.metric, c.template, c.variant, c.reference, c.relation) for c in report.comparisons}
    # answers: 3 per-item metrics × 3 pairs; clustered: 1 metric × 2 templates × 3 pairs.
    assert len(report.comparisons) == len(keys) == 9 + 6
    pairs = {(c.variant, c.reference, c.relation) for c in report.comparisons}
    assert pairs == {
        ("epoch-1", "base", "base"),
        ("epoch-2", "base", "base"),
        ("epoch-2", "epoch-1", "previous"),
    }


def test_binary_comparison_is_mcnemar_with_newcombes_interval(report):
    result = comparison(report, "answers", "accuracy", "chatml", "epoch-2", "base")
    interval = stats.paired_difference_interval(ACCURACY["epoch-2"], ACCURACY["base"])
    assert result.test == "mcnemar_exact" and result.interval == "newcombe"
    assert result.p_value == stats.mcnemar_exact(ACCURACY["epoch-2"], ACCURACY["base"]).p_value == 2 * 0.5**20
    assert (result.delta, result.low, result.high) == (-0.5, interval.low, interval.high)
    assert (result.n, result.n_clusters, result.direction, result.headline) == (
        N_ITEMS,
        N_ITEMS,
        "worse",
        True,
    )


def test_direction_follows_higher_is_better(report):
    loss = comparison(report, "answers", "loss", "chatml", "epoch-2", "base")
    assert loss.delta == pytest.approx(-0.2) and loss.direction == "better"
    assert (loss.n, loss.unpaired) == (N_ITEMS - 1, 1)
    length = comparison(report, "answers", "length", "chatml", "epoch-2", "base")
    assert length.delta == 2.0 and length.direction == "neutral"
    improved = comparison(report, "answers", "accuracy", "chatml", "epoch-1", "base")
    assert improved.delta == pytest.approx(0.05) and improved.direction == "better"


def test_clustered_comparison_uses_the_design_effect_interval_and_cluster_t(report):
    result = comparison(report, "clustered", "passed", "alpaca", "epoch-2", "epoch-1")
    # pairing orders items by id: prompt-0:0, prompt-0:1, prompt-1:0, ... which is index order here.
    clusters = [index // 2 for index in range(12)]
    expected = stats.paired_difference_interval(alpaca_passes("epoch-2"), alpaca_passes("epoch-1"), clusters)
    assert result.test == "cluster_t" and result.n_clusters == 6 and result.interval == "newcombe-deff"
    assert result.delta == pytest.approx(1 / 12)
    assert (result.low, result.high) == (expected.low, expected.high)
    assert result.p_value == stats.paired_t_p(
        alpaca_passes("epoch-2"), alpaca_passes("epoch-1"), [index // 2 for index in range(12)]
    )


def test_holm_correction_runs_per_probe_and_reference(report):
    families: dict[tuple[str, str], list] = {}
    for compared in report.comparisons:
        families.setdefault((compared.probe, compared.relation), []).append(compared)
    assert len(families) > 1
    for members in families.values():
        corrected = stats.holm([c.p_value for c in members], alpha=report.stats.alpha)
        assert [c.adjusted_p for c in members] == [result.adjusted_p for result in corrected]
        assert [c.significant for c in members] == [result.significant for result in corrected]
    alone = build_report(run_info(), answer_records(), {"answers": probes()["answers"]}, seed=SEED)
    drop_alone = comparison(alone, "answers", "accuracy", "chatml", "epoch-2", "base")
    drop_joint = comparison(report, "answers", "accuracy", "chatml", "epoch-2", "base")
    # Another probe's comparisons do not enter the answers probe's family.
    assert (drop_joint.p_value, drop_joint.adjusted_p) == (drop_alone.p_value, drop_alone.adjusted_p)


def test_planted_drop_becomes_a_warning_and_probe_findings_come_first(report):
    messages = [(f.severity, f.kind, f.message) for f in report.findings]
    assert messages[0] == ("error", "identical_outputs", "epoch-2 gives the same answer to every item.")
    assert (
        "warning",
        "headline_regression_vs_base",
        "epoch-2: accuracy of answers fell 50.0 points vs base (90.0% → 40.0%; p<0.001, Holm-adjusted).",
    ) in messages
    assert (
        "warning",
        "headline_regression_vs_previous",
        "epoch-2: accuracy of answers fell 55.0 points vs epoch-1 (95.0% → 40.0%; p<0.001, Holm-adjusted).",
    ) in messages
    # Non-headline metrics changed significantly too, but only headline metrics make generic findings.
    assert comparison(report, "answers", "loss", "chatml", "epoch-2", "base").significant
    assert all(f.metric != "loss" for f in report.findings)


def test_power_note_per_probe(report):
    assert report.probe("answers").mde_note == "accuracy: " + stats.mde_note(N_ITEMS, baseline=0.9)
    clustered_note = report.probe("clustered").mde_note
    assert clustered_note.startswith("passed: " + stats.mde_note(6, baseline=8 / 12))
    assert "counting clusters" in clustered_note


def test_without_base_only_previous_epoch_comparisons_are_made():
    variants = ["epoch-1", "epoch-2"]
    report = build_report(run_info(variants), answer_records(variants), {"answers": probes()["answers"]})
    assert {(c.variant, c.reference, c.relation) for c in report.comparisons} == {
        ("epoch-2", "epoch-1", "previous")
    }
    assert report.recommendation.variant == "epoch-1"


def test_unpaired_items_are_noted_and_a_single_pair_has_a_score_interval():
    records = [
        r
        for r in answer_records(["base", "epoch-1"])
        if not (r.variant == "epoch-1" and r.item_id >= "item-38")
    ]
    records += [
        ItemRecord(
            probe="clustered", variant=v, template="-", item_id="only", cluster_id="c", metrics={"passed": 1}
        )
        for v in ("base", "epoch-1")
    ]
    report = build_report(run_info(["base", "epoch-1"]), records, probes())
    assert "answers (chatml): 2 items of epoch-1 vs base exist on one side only" in " ".join(report.notes)
    assert comparison(report, "answers", "accuracy", "chatml", "epoch-1", "base").unpaired == 2
    single = report.probe("clustered").cell("base", "-").metric("passed")
    # Score intervals need no spread estimate, so even one item has one (Wilson; Newcombe for the difference).
    assert (single.value, single.low, single.method) == (1.0, stats.wilson_interval(1, 1).low, "wilson")
    lone = comparison(report, "clustered", "passed", "-", "epoch-1", "base")
    assert (lone.n, lone.p_value, lone.interval) == (1, 1.0, "newcombe")
    assert -1 < lone.low < 0 < lone.high < 1
    assert Report.model_validate_json(report.model_dump_json()) == report


def test_non_finite_values_count_as_missing_and_one_cluster_has_no_interval():
    records = [
        ItemRecord(
            probe="answers", variant="base", template="t", item_id=f"i{k}", cluster_id="one", metrics=m
        )
        for k, m in enumerate([{"loss": math.inf, "length": 1}, {"loss": 1.0, "length": 2}, {"length": 3}])
    ]
    report = build_report(run_info(["base"]), records, {"answers": probes()["answers"]})
    cell = report.probe("answers").cell("base", "t")
    assert (cell.metric("loss").n, cell.metric("loss").missing, cell.metric("loss").value) == (1, 2, 1.0)
    length = cell.metric("length")
    assert (length.value, length.low, length.method, length.n_clusters) == (2.0, None, "no-interval", 1)
    assert cell.metric("accuracy").method == "no-data" and cell.metric("accuracy").value is None
    assert report.comparisons == () and report.recommendation is None


def test_incomplete_run_is_a_warning_finding():
    report = build_report(run_info(complete=False), answer_records(), {"answers": probes()["answers"]})
    assert any(f.kind == "incomplete_run" and f.severity == "warning" for f in report.findings)


def test_a_probe_without_records_is_noted():
    report = build_report(run_info(), answer_records(), probes())
    assert report.probe("clustered").cells == () and "clustered: no item records" in report.notes


@pytest.mark.parametrize(
    ("update", "message"),
    [
        ({"variant": "epoch-9"}, "variant 'epoch-9' is not among the run's variants"),
        ({"probe": "nonexistent"}, "probe 'nonexistent' is not in the suite"),
        ({}, "item 'item-00' appears twice for base under chatml"),
    ],
)
def test_bad_records_are_user_errors_naming_the_items_file(update, message):
    records = answer_records()
    records.append(records[0].model_copy(update=update))
    with pytest.raises(UserError, match="items.jsonl") as error:
        build_report(run_info(), records, probes())
    assert message in str(error.value)


def test_cluster_ids_that_disagree_between_variants_are_user_errors():
    records = answer_records(["base", "epoch-1"])
    records[-1] = records[-1].model_copy(update={"cluster_id": "elsewhere"})
    with pytest.raises(UserError, match="different cluster ids"):
        build_report(run_info(["base", "epoch-1"]), records, probes())


def test_comparison_results_reject_non_finite_numbers():
    fields = comparison(
        build_report(run_info(), answer_records(), probes()), "answers", "loss", "chatml", "epoch-1", "base"
    )
    with pytest.raises(ValueError):
        ComparisonResult(**{**fields.model_dump(), "low": -math.inf})


def test_a_significant_but_negligible_worsening_is_info_not_a_warning():
    from sfteval.core.results import MetricInfo, ProbeResult
    from sfteval.report.findings import comparison_findings

    info = MetricInfo(name="bits_per_byte", higher_is_better=False, headline=True, negligible=0.01)
    result = ProbeResult(name="forgetting", version=1, metrics=(info,), templates=("heldout_text",), cells=())

    def rise(variant: str, delta: float) -> ComparisonResult:
        return ComparisonResult(
            probe="forgetting", metric="bits_per_byte", template="heldout_text", variant=variant,
            reference="base", relation="base", delta=delta, low=delta / 2, high=delta * 2, p_value=0.01,
            adjusted_p=0.04, significant=True, test="paired_t", n=40, n_clusters=40, direction="worse",
            headline=True,
        )  # fmt: skip

    found = comparison_findings([rise("epoch-1", 0.004), rise("epoch-2", 0.05)], [result])
    severity = {finding.variant: finding.severity for finding in found}
    assert severity == {"epoch-1": "info", "epoch-2": "warning"}
    assert found[0].message.endswith("The change is under 0.01, too small to matter in practice.")
    assert "too small" not in found[1].message
