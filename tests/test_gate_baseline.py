"""`sfteval gate RUN --baseline OLD_RUN`: paired checks against the last accepted run, what could not be paired,
exit 1 on a regression (named), exit 2 when the suite or a probe's version changed; end to end on tiny models."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ElementTree
from pathlib import Path

import pytest
from comparative_fixtures import if_records, write_run
from test_gate import cli
from train_tiny import terminator_runs

from sfteval.core.report import load_report
from sfteval.report.gate import apply_gate, load_policy, parse_policy
from sfteval.report.gate_baseline import Baseline, apply_baseline

ACCEPTED = {"base": 20, "epoch-1": 30, "epoch-2": 34, "epoch-3": 36}
REGRESSED = {"base": 20, "epoch-1": 14, "epoch-2": 24, "epoch-3": 12}
POLICY = """
rules:
  - {name: if-vs-baseline, probe: instruction_following, metric: prompt_loose, not_worse_than_baseline: true}
  - {name: if-drop-vs-baseline, probe: instruction_following, metric: prompt_loose, max_drop_vs_baseline: 0.5,
     severity: warn}
"""


@pytest.fixture
def runs(tmp_path):
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY, encoding="utf-8")
    return {
        "old": write_run(tmp_path / "old", if_records(passes=ACCEPTED)),
        "new": write_run(tmp_path / "new", if_records(passes=REGRESSED)),
        "policy": policy,
    }


def gated(runs, new=None, **choice):
    loaded = load_policy(runs["policy"])
    report = apply_gate(load_report(new or runs["new"]), loaded)
    return apply_baseline(report, loaded, Baseline(new or runs["new"], runs["old"], **choice)).gate


def test_a_regression_on_the_paired_items_fails_the_named_rule(runs, monkeypatch, capsys, tmp_path):
    gate = gated(runs, variant="epoch-3", old_variant="epoch-3")
    check = next(c for c in gate.checks if c.rule == "if-vs-baseline")
    assert (check.verdict, check.variant, check.template, check.n_pairs, check.unpaired) == (
        "fail",
        "epoch-3",
        "chatml",
        40,
        0,
    )
    assert check.value < 0.05 and "significantly worse than the baseline (Δ -60.0 points" in check.message
    drop = next(c for c in gate.checks if c.rule == "if-drop-vs-baseline")
    assert drop.verdict == "warn" and drop.value == pytest.approx(0.6) and drop.bound == 0.5
    assert not gate.passed and gate.baseline == f"epoch-3 of {runs['old']}"
    junit = tmp_path / "gate.xml"
    code, out, _ = cli(
        monkeypatch, capsys, "gate", runs["new"], "--policy", runs["policy"], "--baseline", runs["old"],
        "--variant", "epoch-3", "--baseline-variant", "epoch-3", "--junit", junit,
    )  # fmt: skip
    assert code == 1 and "✖ if-vs-baseline (epoch-3 · chatml)" in out
    assert "gate failed: regressed against the baseline epoch-3 of" in out and "rule if-vs-baseline" in out
    failures = [
        c for c in ElementTree.parse(junit).getroot().iter("testcase") if c.find("failure") is not None
    ]
    assert [case.get("name") for case in failures] == [
        "if-vs-baseline · not_worse_than_baseline [epoch-3 · chatml]"
    ]


def test_the_recommended_checkpoints_are_compared_by_default_and_an_equal_run_passes(runs):
    gate = gated(runs)
    check = next(c for c in gate.checks if c.rule == "if-vs-baseline")
    # Each run's recommendation: epoch-2 now (epoch-1 fell significantly below base, epoch-3 too), 24/40,
    # against the accepted run's epoch-1, 30/40, on the same 40 prompts.
    assert check.variant == "epoch-2" and gate.baseline.startswith("epoch-1 of")
    assert check.verdict == "fail" and "Δ -15.0 points over 40 paired items" in check.message
    same = gated(runs, new=runs["old"])
    assert same.passed and all(c.verdict == "pass" for c in same.checks if c.baseline is not None)


def test_items_on_one_side_only_are_counted_and_said(runs, tmp_path):
    fewer = [record for record in if_records(passes=ACCEPTED) if record.item_id < "prompt-30"]
    partial = write_run(tmp_path / "partial", fewer)
    gate = gated(runs, new=partial, variant="epoch-3", old_variant="epoch-3")
    check = next(c for c in gate.checks if c.rule == "if-vs-baseline")
    assert (check.n_pairs, check.unpaired, check.verdict) == (30, 10, "pass")
    assert "10 unpaired" in check.message
    assert gate.notes == (
        "instruction_following (chatml): 0 items of this run and 10 of the baseline run have no partner (the "
        "suite's items changed); compared on the shared ones",
    )


def test_a_changed_suite_or_probe_version_is_bad_input(runs, tmp_path, monkeypatch, capsys):
    other = write_run(
        tmp_path / "other", if_records(passes=ACCEPTED, id_prefix="standard"), suite_name="standard"
    )
    code, _, err = cli(
        monkeypatch, capsys, "gate", other, "--policy", runs["policy"], "--baseline", runs["old"]
    )
    assert code == 2 and "share no instruction_following items (suite standard vs quick)" in err
    report = json.loads((runs["old"] / "report.json").read_text())
    report["probes"][0]["version"] = 7
    (runs["old"] / "report.json").write_text(json.dumps(report))
    code, _, err = cli(
        monkeypatch, capsys, "gate", runs["new"], "--policy", runs["policy"], "--baseline", runs["old"]
    )
    assert code == 2 and "probe instruction_following is version 1 here but 7 in the baseline run" in err


def test_without_a_baseline_its_rules_are_skipped_and_choices_need_one(runs, monkeypatch, capsys):
    loaded = parse_policy(POLICY, runs["policy"])
    gate = apply_gate(load_report(runs["new"]), loaded).gate
    skipped = [c for c in gate.checks if c.check in ("not_worse_than_baseline", "max_drop_vs_baseline")]
    assert len(skipped) == 2 and all(c.verdict == "skipped" and "--baseline" in c.message for c in skipped)
    code, _, err = cli(monkeypatch, capsys, "gate", runs["new"], "--variant", "epoch-1")
    assert code == 2 and "--baseline" in err
    code, _, err = cli(
        monkeypatch, capsys, "gate", runs["new"], "--baseline", runs["old"], "--baseline-variant", "epoch-9"
    )
    assert code == 2 and "--baseline-variant 'epoch-9': not a variant of" in err


@pytest.fixture(scope="module")
def tiny_runs(tmp_path_factory, tiny_tokenizer):
    """The accepted run trains the end-of-turn token; the new one masks it out of the loss (same data, same base)."""
    runs = terminator_runs(
        tmp_path_factory.mktemp("baseline-gate"), tiny_tokenizer, "probes:\n  termination: {}\n"
    )
    return {"accepted": runs[False].out_dir, "new": runs[True].out_dir}


def test_a_tiny_model_that_stopped_terminating_fails_the_default_baseline_rule(
    tiny_runs, monkeypatch, capsys
):
    code, out, _ = cli(
        monkeypatch, capsys, "gate", tiny_runs["new"], "--baseline", tiny_runs["accepted"],
        "--variant", "epoch-4", "--baseline-variant", "epoch-4",
    )  # fmt: skip
    assert code == 1 and "✖ termination-vs-baseline (epoch-4 · chatml)" in out
    assert "non_terminated significantly worse than the baseline" in out and "over 32 paired items" in out
    code, out, _ = cli(
        monkeypatch, capsys, "gate", tiny_runs["accepted"], "--baseline", tiny_runs["accepted"],
        "--variant", "epoch-4", "--baseline-variant", "epoch-4", "--policy", _only_baseline(tiny_runs),
    )  # fmt: skip
    assert code == 0 and "gate passed" in out


def _only_baseline(tiny_runs) -> Path:
    path = Path(tiny_runs["accepted"]).parent / "baseline-only.yaml"
    text = "variants: [epoch-4]\nrules:\n"
    text += "  - {name: t, probe: termination, metric: non_terminated, not_worse_than_baseline: true}\n"
    path.write_text(text, encoding="utf-8")
    return path
