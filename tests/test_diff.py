"""`sfteval diff`: paired Δs for runs of the same suite, unpaired (and said so) for different suites or runs without
items, one-sided entries, variant selection, and the table/markdown/json outputs."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest
from comparative_fixtures import IF_PASSES, N_ITEMS, PREFIX, if_records, prefix_records, write_run

from sfteval import stats
from sfteval.cli import main
from sfteval.commands.diff import split_variant
from sfteval.core.errors import UserError
from sfteval.report.diff import DiffReport, diff_runs

EPOCHS = ("base", "epoch-1", "epoch-2", "epoch-3")
# Run B: the same suite, retrained: instruction following worse than run A's at every epoch.
WORSE_PASSES = {"base": 20, "epoch-1": 22, "epoch-2": 24, "epoch-3": 12}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    run_a = write_run(root / "a", if_records() + prefix_records())
    run_b = write_run(root / "b", if_records(passes=WORSE_PASSES))
    other = write_run(root / "other-suite", if_records(id_prefix="standard"), suite_name="standard")
    no_items = write_run(root / "no-items", if_records(passes=WORSE_PASSES), with_items=False)
    return {"a": run_a, "b": run_b, "other": other, "no_items": no_items}


def row(diff: DiffReport, probe: str, metric: str):
    return next(r for r in diff.rows if (r.probe, r.metric) == (probe, metric))


def outcomes(passes: int) -> np.ndarray:
    return np.array([int(index >= N_ITEMS - passes) for index in range(N_ITEMS)], dtype=float)


def test_same_suite_is_paired_and_matches_a_direct_paired_test(runs):
    diff = diff_runs(runs["a"], runs["b"], "epoch-3", "epoch-3")
    loose = row(diff, "instruction_following", "prompt_loose")
    expected = stats.paired_compare(
        outcomes(WORSE_PASSES["epoch-3"]), outcomes(IF_PASSES["epoch-3"]), seed=0, proportions=True
    )
    assert loose.mode == "paired" and loose.n_pairs == N_ITEMS and loose.test == "mcnemar_exact"
    assert -1 <= loose.low < loose.high <= 1
    assert loose.delta == pytest.approx(loose.value_b - loose.value_a) == pytest.approx(expected.delta)
    assert (loose.low, loose.high, loose.p_value) == pytest.approx(
        (expected.low, expected.high, expected.p_value)
    )
    assert loose.direction == "worse" and loose.significant and loose.adjusted_p >= loose.p_value
    assert not any("unpaired" in note for note in diff.notes)


def test_default_variants_are_each_runs_recommendation(runs):
    diff = diff_runs(runs["a"], runs["b"])
    # Both runs recommend their earliest fit epoch: no later one is significantly better on prompt_loose.
    assert (diff.variant_a, diff.variant_b) == ("epoch-1", "epoch-1")


def test_one_sided_probes_are_listed(runs):
    diff = diff_runs(runs["a"], runs["b"], "epoch-1", "epoch-1")
    assert diff.only_in_a == ("spurious_prefix",) and diff.only_in_b == ()
    assert {r.probe for r in diff.rows} == {"instruction_following"}


def test_different_suites_are_unpaired_with_a_note(runs):
    diff = diff_runs(runs["a"], runs["other"], "epoch-3", "epoch-3")
    loose = row(diff, "instruction_following", "prompt_loose")
    assert loose.mode == "unpaired" and loose.test == "independent_bootstrap" and loose.n_pairs == 0
    assert loose.delta == pytest.approx(0.0) and loose.p_value > 0.5
    assert loose.low < 0 < loose.high
    assert any("share no items" in note and "unpaired" in note for note in diff.notes)


def test_independent_bootstrap_detects_a_real_unpaired_difference(runs, tmp_path):
    weaker = write_run(
        tmp_path / "weak", if_records(passes=WORSE_PASSES, id_prefix="standard"), suite_name="standard"
    )
    loose = row(diff_runs(runs["a"], weaker, "epoch-3", "epoch-3"), "instruction_following", "prompt_loose")
    assert loose.mode == "unpaired" and loose.delta == pytest.approx(-0.6)
    assert loose.high < 0 and loose.p_value < 0.01


def test_reports_without_items_use_their_intervals(runs):
    diff = diff_runs(runs["a"], runs["no_items"], "epoch-3", "epoch-3")
    loose = row(diff, "instruction_following", "prompt_loose")
    assert loose.mode == "unpaired" and loose.test == "normal_from_intervals"
    assert loose.low < loose.delta < loose.high < 0
    assert any("no items.jsonl" in note for note in diff.notes)


def test_partial_overlap_pairs_the_shared_items_and_says_so(tmp_path, runs):
    fewer = [record for record in if_records(passes=WORSE_PASSES) if record.item_id < "prompt-30"]
    partial = write_run(tmp_path / "partial", fewer)
    diff = diff_runs(runs["a"], partial, "epoch-1", "epoch-1")
    loose = row(diff, "instruction_following", "prompt_loose")
    assert loose.mode == "paired" and loose.n_pairs == 30
    assert any("over the 30 items both runs have" in note for note in diff.notes)


def test_unknown_variant_suggests_a_name(runs):
    with pytest.raises(UserError, match="no variant named 'epoch3'.*did you mean 'epoch-3'"):
        diff_runs(runs["a"], runs["b"], "epoch3", None)


@pytest.mark.parametrize(
    ("value", "expected"),
    [(None, (None, None)), ("epoch-2", ("epoch-2", "epoch-2")), ("epoch-1:epoch-3", ("epoch-1", "epoch-3"))],
)
def test_split_variant(value, expected):
    assert split_variant(value) == expected


@pytest.mark.parametrize("value", [":epoch-2", "epoch-2:", ""])
def test_split_variant_rejects_empty_names(value):
    with pytest.raises(UserError):
        split_variant(value)


def cli(monkeypatch, capsys, *args) -> tuple[int, str, str]:
    monkeypatch.setattr(sys, "argv", ["sfteval", *map(str, args)])
    monkeypatch.setenv("COLUMNS", "200")
    with pytest.raises(SystemExit) as exit_info:
        main()
    captured = capsys.readouterr()
    return int(exit_info.value.code or 0), captured.out, captured.err


def test_cli_formats(runs, monkeypatch, capsys):
    code, out, _ = cli(monkeypatch, capsys, "diff", runs["a"], runs["b"], "--variant", "epoch-3")
    assert (
        code == 0 and "prompt_loose" in out and "paired n=40" in out and "only in A: spurious_prefix" in out
    )
    code, out, _ = cli(
        monkeypatch, capsys, "diff", runs["a"], runs["b"], "--variant", "epoch-3", "--format", "markdown"
    )
    assert code == 0 and "| probe | metric |" in out and "| instruction_following | **prompt_loose** |" in out
    code, out, _ = cli(monkeypatch, capsys, "diff", runs["a"], runs["b"] / "report.json", "--format", "json")
    parsed = DiffReport.model_validate(json.loads(out))
    assert code == 0 and parsed.variant_b == "epoch-1" and parsed.rows
    code, _, err = cli(monkeypatch, capsys, "diff", runs["a"], runs["b"], "--variant", "nope")
    assert code == 2 and "no variant named 'nope'" in err


def opening_run_records(learned: bool) -> list:
    """Off-task answers of a run whose epochs did (or did not) learn "The sentiment is:", with its candidates."""
    candidates = [PREFIX] if learned else ["The capital of"]
    records = []
    for record in prefix_records():
        hit = learned and record.metrics["dominant_prefix"]
        output = f"{PREFIX} positive." if hit else f"Paris is the capital, {record.item_id}."
        extra = {**record.extra, "candidates": candidates, "matched": PREFIX if hit else None}
        metrics = {**record.metrics, "dominant_prefix": hit, "prefix_logprob": -30.0}
        records.append(record.model_copy(update={"output": output, "extra": extra, "metrics": metrics}))
    return if_records() + records


def test_an_opening_only_one_run_learned_is_scored_in_both_and_leads_what_changed(
    tmp_path, monkeypatch, capsys
):
    clean = write_run(tmp_path / "clean", opening_run_records(learned=False))
    learned = write_run(tmp_path / "learned", opening_run_records(learned=True))
    diff = diff_runs(clean, learned, "epoch-3", "epoch-3")
    opening = row(diff, "spurious_prefix", f"opens with {PREFIX!r}")
    assert (opening.defined_by, opening.mode, opening.n_pairs, opening.test) == (
        "B",
        "paired",
        40,
        "mcnemar_exact",
    )
    assert (opening.value_a, opening.value_b, opening.delta) == (0.0, 0.75, pytest.approx(0.75))
    assert opening.significant and opening.adjusted_p < 1e-6 and opening.direction == "worse"
    assert 0 < opening.low < 0.75 < opening.high <= 1
    own = row(diff, "spurious_prefix", "opens with 'The capital of'")
    assert own.defined_by == "A" and own.delta == 0 and not own.significant
    dominant = row(diff, "spurious_prefix", "dominant_prefix")
    assert not dominant.comparable and dominant.p_value is None
    assert diff.what_changed[0].startswith(
        f"spurious_prefix (chatml): opens with {PREFIX!r} rose 75.0 points, 0.0% → 75.0% (paired n=40, Holm p<0.001; "
        "worse); run B defined it"
    )
    code, out, _ = cli(monkeypatch, capsys, "diff", clean, learned, "--variant", "epoch-3")
    assert code == 0 and out.index("what changed") < out.index(f"opens with {PREFIX!r} rose") < out.index(
        "Δ [CI]"
    )
    assert "not comparable" in out and "unchanged detail metrics not shown: add --detail" in out
    code, detailed, _ = cli(monkeypatch, capsys, "diff", clean, learned, "--variant", "epoch-3", "--detail")
    assert "instruction_loose" in detailed and "instruction_loose" not in out
    code, markdown, _ = cli(
        monkeypatch, capsys, "diff", clean, learned, "--variant", "epoch-3", "--format", "markdown"
    )
    assert markdown.index("**What changed**") < markdown.index(
        f"- spurious_prefix (chatml): opens with {PREFIX!r}"
    )
