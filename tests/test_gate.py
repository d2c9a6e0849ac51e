"""Gate policies: verdicts on a synthetic run, the recommendation among passing variants, exit codes 0/1/2,
JUnit XML (parsed) and Markdown output, and file:line errors for bad policies."""

from __future__ import annotations

import sys
import xml.etree.ElementTree as ElementTree
from pathlib import Path

import pytest
from comparative_fixtures import build, default_records, if_records, write_run

from sfteval.cli import main
from sfteval.core.errors import UserError
from sfteval.core.records import ItemRecord
from sfteval.core.report import load_report
from sfteval.probes import PROBES
from sfteval.report.gate import apply_gate, load_policy, parse_policy


@pytest.fixture(scope="module")
def report():
    return build(default_records())


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, report):
    return write_run(tmp_path_factory.mktemp("run"), default_records())


def policy(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "policy.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def cli(monkeypatch, capsys, *args: str) -> tuple[int, str, str]:
    """Run `sfteval ARGS` in-process; returns (exit code, stdout, stderr)."""
    monkeypatch.setattr(sys, "argv", ["sfteval", *map(str, args)])
    monkeypatch.setenv("COLUMNS", "200")
    with pytest.raises(SystemExit) as exit_info:
        main()
    captured = capsys.readouterr()
    return int(exit_info.value.code or 0), captured.out, captured.err


def test_default_policy_names_registered_probes_and_declared_metrics():
    loaded = load_policy("default")
    assert loaded.path.name == "default.yaml" and len(loaded.policy.rules) >= 8
    for rule in loaded.policy.rules:
        assert rule.metric in {spec.name for spec in PROBES.get(rule.probe).metrics}
        assert rule.description, f"rule {rule.name} is undocumented"
    covered = {rule.probe for rule in loaded.policy.rules}
    assert {"instruction_following", "spurious_prefix", "termination", "forgetting"} <= covered
    assert {"style_tics", "refusal", "calibration"} <= covered  # distilled-data rules (issue 16)


def test_recommended_scope_excludes_the_flawed_epoch_and_recommends_the_earliest_fit(report):
    # epoch-3 scores highest but learned the opening: its defect findings exclude it even without a gate.
    assert report.recommendation.variant == "epoch-1"
    assert not next(c for c in report.recommendation.candidates if c.variant == "epoch-3").eligible
    gated = apply_gate(report, load_policy("default"))
    gate = gated.gate
    assert gate.passed and gate.scope == "recommended" and gate.gated_variants == ("epoch-1",)
    assert (
        list(gate.failed_variants) == ["epoch-3"]
        and "spurious-prefix-rate" in gate.failed_variants["epoch-3"]
    )
    assert gated.recommendation.variant == "epoch-1" and gated.recommendation.gates_applied
    epoch_3 = next(c for c in gated.recommendation.candidates if c.variant == "epoch-3")
    assert not epoch_3.eligible and "spurious-prefix-rate" in epoch_3.reason
    assert epoch_3.exclusions[0] == "gate rule spurious-prefix-rate"
    assert epoch_3.exclusions[1:] == ("spurious prefix", "dominant_prefix regression")


def test_rules_on_probes_absent_from_the_report_are_skipped_not_failed(report):
    gate = apply_gate(report, load_policy("default")).gate
    termination = [check for check in gate.checks if check.probe == "termination"]
    assert termination and all(check.verdict == "skipped" for check in termination)
    on_the_run = [check for check in termination if "baseline" not in check.check]
    assert on_the_run and all("not in this report" in check.message for check in on_the_run)


def test_all_scope_fails_when_any_epoch_breaks_a_fail_rule(tmp_path, report):
    text = """
variants: all
rules:
  - name: prefix
    probe: spurious_prefix
    metric: dominant_prefix
    max: 0.2
"""
    gate = apply_gate(report, parse_policy(text, policy(tmp_path, text))).gate
    assert not gate.passed and gate.gated_variants == ("epoch-1", "epoch-2", "epoch-3")
    verdicts = {check.variant: check.verdict for check in gate.checks}
    assert verdicts == {"epoch-1": "pass", "epoch-2": "pass", "epoch-3": "fail"}


def test_drop_and_gain_follow_the_metrics_good_direction(tmp_path, report):
    text = """
variants: [epoch-3]
rules:
  - {name: prefix-drop, probe: spurious_prefix, metric: dominant_prefix, max_drop: 0.1}
  - {name: if-gain, probe: instruction_following, metric: prompt_loose, min_gain: 0.4}
  - {name: if-gain-warn, probe: instruction_following, metric: prompt_loose, min_gain: 0.41, severity: warn}
"""
    checks = {
        check.rule: check
        for check in apply_gate(report, parse_policy(text, policy(tmp_path, text))).gate.checks
    }
    # dominant_prefix is lower-is-better: its rise from 0% to 75% is a drop of 0.75 in the good direction.
    assert checks["prefix-drop"].verdict == "fail" and checks["prefix-drop"].value == pytest.approx(0.75)
    # prompt_loose rose 50% → 90%: a gain of exactly 0.4 meets min_gain 0.4 despite floating-point error.
    assert checks["if-gain"].verdict == "pass" and checks["if-gain"].value == pytest.approx(0.4)
    assert checks["if-gain-warn"].verdict == "warn"


def test_not_worse_than_base_fails_on_a_significant_regression(tmp_path):
    passes = {"base": 36, "epoch-1": 34, "epoch-2": 10}
    regressed = build(if_records(("base", "epoch-1", "epoch-2"), passes), ("base", "epoch-1", "epoch-2"))
    text = """
variants: all
rules:
  - {name: if, probe: instruction_following, metric: prompt_loose, not_worse_than_base: true}
"""
    gate = apply_gate(regressed, parse_policy(text, policy(tmp_path, text))).gate
    verdicts = {check.variant: check.verdict for check in gate.checks}
    assert verdicts == {"epoch-1": "pass", "epoch-2": "fail"} and not gate.passed
    assert next(check for check in gate.checks if check.variant == "epoch-2").value < 0.05


def test_recommended_scope_fails_when_no_variant_passes(tmp_path, report):
    text = "rules:\n  - {name: impossible, probe: instruction_following, metric: prompt_loose, min: 0.99}\n"
    gated = apply_gate(report, parse_policy(text, policy(tmp_path, text)))
    assert not gated.gate.passed and gated.gate.gated_variants == ()
    assert gated.recommendation.variant is None


def test_cli_exit_codes_junit_and_markdown(tmp_path, run_dir, monkeypatch, capsys):
    junit, markdown = tmp_path / "gate.xml", tmp_path / "summary.md"
    code, out, _ = cli(monkeypatch, capsys, "gate", run_dir, "--junit", junit, "--markdown", markdown)
    assert code == 0 and "gate passed" in out and "recommended checkpoint: epoch-1" in out
    suite = ElementTree.parse(junit).getroot().find("testsuite")
    cases = suite.findall("testcase")
    assert int(suite.get("tests")) == len(cases) > 0
    failures = [case for case in cases if case.find("failure") is not None]
    skipped = [case for case in cases if case.find("skipped") is not None]
    assert int(suite.get("failures")) == len(failures) == 1 and "epoch-3" in failures[0].get("name")
    assert int(suite.get("skipped")) == len(skipped) > 0
    text = markdown.read_text(encoding="utf-8")
    assert "gate passed" in text and "| ✖ fail | spurious-prefix-rate | epoch-3 |" in text

    strict = policy(
        tmp_path,
        "variants: all\nrules:\n  - {name: p, probe: spurious_prefix, metric: dominant_prefix, max: 0.2}\n",
    )
    code, out, _ = cli(monkeypatch, capsys, "gate", run_dir, "--policy", strict, "--junit", junit)
    assert code == 1 and "gate failed" in out
    assert ElementTree.parse(junit).getroot().find("testsuite").get("failures") == "1"


@pytest.mark.parametrize(
    ("text", "line", "words"),
    [
        ("rules:\n  - name: a\n    probe: [unclosed\n", 4, "invalid YAML"),
        ("rules:\n  - name: !!python/object:os.system a\n", 2, "invalid YAML"),
        ("", 0, "empty"),
        (
            "rules:\n  - name: a\n    probe: instruction_folowing\n    metric: prompt_loose\n    min: 0.5\n",
            2,
            "did you mean",
        ),
        (
            "rules:\n  - name: a\n    probe: spurious_prefix\n    metric: dominant_prefix\n    maximum: 0.5\n",
            5,
            "maximum",
        ),
        (
            "rules:\n  - name: a\n    probe: spurious_prefix\n    metric: dominant_prefix\n",
            2,
            "at least one of",
        ),
        (
            "rules:\n  - name: a\n    probe: spurious_prefix\n    metric: dominant_prefx\n    max: 0.5\n",
            2,
            "did you mean",
        ),
        (
            "rules:\n  - {name: a, probe: spurious_prefix, metric: dominant_prefix, max: 1}\n"
            "  - {name: a, probe: spurious_prefix, metric: dominant_prefix, max: 1}\n",
            3,
            "duplicate rule name",
        ),
        (
            "rules:\n  - {name: a, probe: spurious_prefix, metric: dominant_prefix, max_drop: -1}\n",
            2,
            "max_drop",
        ),
    ],
)
def test_bad_policies_name_the_file_and_line(tmp_path, text, line, words):
    path = policy(tmp_path, text)
    with pytest.raises(UserError) as error:
        load_policy(path)
    assert (f"{path}:{line}:" if line else f"{path}:") in str(error.value) and words in str(error.value)


def test_bad_policy_or_report_exits_2_with_one_line(tmp_path, run_dir, monkeypatch, capsys):
    broken = policy(tmp_path, "rules: [\n")
    code, _, err = cli(monkeypatch, capsys, "gate", run_dir, "--policy", broken)
    assert code == 2 and f"{broken}:" in err and len(err.strip().splitlines()) == 1
    (tmp_path / "report.json").write_text("{not json", encoding="utf-8")
    code, _, err = cli(monkeypatch, capsys, "gate", tmp_path)
    assert code == 2 and "report.json:1" in err
    code, _, err = cli(monkeypatch, capsys, "gate", run_dir, "--policy", "no-such-policy")
    assert code == 2 and "unknown gate policy" in err


def test_direction_free_metric_refuses_drop_rules(tmp_path):
    records = [
        ItemRecord(
            probe="token_shift",
            variant=variant,
            template="chatml",
            item_id=f"item-{index}",
            cluster_id=f"item-{index}",
            metrics={"shifted": 0.1 * index},
        )
        for variant in ("base", "epoch-1")
        for index in range(4)
    ]
    shifted = build(records, ("base", "epoch-1"))
    text = "rules:\n  - {name: s, probe: token_shift, metric: shifted, max_drop: 0.1}\n"
    with pytest.raises(UserError, match=r"policy.yaml:2: rule s: shifted has no good direction"):
        apply_gate(shifted, parse_policy(text, policy(tmp_path, text)))


def test_gate_result_round_trips_through_report_json(tmp_path, report):
    gated = apply_gate(report, load_policy("default"))
    from sfteval.core.report import save_report

    save_report(gated, tmp_path / "report.json")
    assert load_report(tmp_path) == gated


def test_run_with_gate_stores_the_verdict_and_writes_html(tmp_path):
    import test_runner  # the runner tests' fake engine and echo probe (echo answers name the epoch)
    from typer.testing import CliRunner

    from sfteval.cli import app

    base = tmp_path / "base"
    base.mkdir()
    (base / "model.safetensors").write_bytes(b"")
    for epoch in (1, 2):
        test_runner.add_checkpoint(tmp_path / "sft", base, epoch)
    suite = policy(tmp_path, test_runner.SUITE_TEXT).rename(tmp_path / "suite.yaml")
    rule = "rules:\n  - {{name: echo, probe: test_echo, metric: mentions_epoch, {bound}}}\n"
    for bound, expected in (("min: 0.5", 0), ("max: 0.5", 1)):
        out = tmp_path / f"run-{expected}"
        arguments = ["run", "--ckpt", str(tmp_path / "sft"), "--suite", str(suite), "--out", str(out)]
        arguments += [
            "--engine",
            test_runner.FAKE_ENGINE,
            "--gate",
            str(policy(tmp_path, rule.format(bound=bound))),
        ]
        result = CliRunner().invoke(app, arguments)
        assert result.exit_code == expected, result.output
        report = load_report(out)
        assert report.gate is not None and report.gate.passed is (expected == 0)
        assert report.recommendation.variant == ("epoch-1" if expected == 0 else None)
        page = (out / "report.html").read_text(encoding="utf-8")
        assert ("Gate passed" if expected == 0 else "Gate failed") in page
        shown = CliRunner().invoke(app, ["report", str(out)], env={"COLUMNS": "200"})
        assert shown.exit_code == 0 and ("gate passed" if expected == 0 else "gate failed") in shown.output


def test_run_applies_the_default_policy_without_failing_unless_asked(tmp_path, monkeypatch):
    import test_runner
    from typer.testing import CliRunner

    import sfteval.report.gate as gate_module
    from sfteval.cli import app

    base = tmp_path / "base"
    base.mkdir()
    (base / "model.safetensors").write_bytes(b"")
    test_runner.add_checkpoint(tmp_path / "sft", base, 1)
    suite = policy(tmp_path, test_runner.SUITE_TEXT).rename(tmp_path / "suite.yaml")
    failing = policy(
        tmp_path, "rules:\n  - {name: echo, probe: test_echo, metric: mentions_epoch, max: 0.5}\n"
    )
    monkeypatch.setattr(gate_module, "DEFAULT_POLICY", str(failing))
    arguments = [
        "run",
        "--ckpt",
        str(tmp_path / "sft"),
        "--suite",
        str(suite),
        "--engine",
        test_runner.FAKE_ENGINE,
    ]
    result = CliRunner().invoke(app, [*arguments, "--out", str(tmp_path / "default")], env={"COLUMNS": "100"})
    assert result.exit_code == 0, result.output
    gated = load_report(tmp_path / "default")
    assert gated.gate is not None and not gated.gate.passed and gated.recommendation.variant is None
    assert "gate failed" in result.output and "None is recommended" in result.output
    result = CliRunner().invoke(app, [*arguments, "--out", str(tmp_path / "off"), "--no-gate"])
    assert result.exit_code == 0 and load_report(tmp_path / "off").gate is None
    both = CliRunner().invoke(
        app, [*arguments, "--out", str(tmp_path / "x"), "--no-gate", "--gate", "default"]
    )
    assert isinstance(both.exception, UserError) and "choose one" in str(both.exception)
