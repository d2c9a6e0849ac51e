"""The report schema: JSON round trip, strictness, and `sfteval report RUN_DIR` (exit 0, or 2 with one line)."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import BaseModel, ValidationError
from report_fixtures import answer_records, cluster_records, probes, run_info
from rich.console import Console

from sfteval import cli
from sfteval.core import report as report_module
from sfteval.core import results
from sfteval.core import run_info as run_info_module
from sfteval.core.errors import UserError
from sfteval.core.report import Report, load_report, save_report
from sfteval.core.results import MetricValue
from sfteval.core.run_info import VariantInfo
from sfteval.core.variants import Variant
from sfteval.report.build import build_report
from sfteval.report.terminal import render_report


@pytest.fixture(scope="module")
def report() -> Report:
    return build_report(run_info(), answer_records() + cluster_records(), probes(), seed=7)


@pytest.fixture()
def run_dir(tmp_path: Path, report: Report) -> Path:
    save_report(report, tmp_path / "report.json")
    return tmp_path


def run_main(monkeypatch, capsys, *args: str) -> tuple[int, str, str]:
    """Run the console-script entry point in-process; returns (exit code, stdout, stderr)."""
    monkeypatch.setattr(sys, "argv", ["sfteval", *args])
    with pytest.raises(SystemExit) as exit_info:
        cli.main()
    captured = capsys.readouterr()
    return exit_info.value.code, captured.out, captured.err


def test_json_round_trip_is_exact(report):
    assert Report.model_validate_json(report.model_dump_json()) == report
    assert json.loads(report.model_dump_json())["schema_version"] == 1


def test_save_and_load(run_dir, report):
    assert load_report(run_dir) == report
    assert load_report(run_dir / "report.json") == report
    assert not list(run_dir.glob(".*.tmp"))


def test_every_field_is_documented():
    models = [
        model
        for module in (report_module, results, run_info_module)
        for model in vars(module).values()
        if isinstance(model, type) and issubclass(model, BaseModel) and model.__module__ == module.__name__
    ]
    undocumented = [
        f"{model.__name__}.{name}"
        for model in models
        for name, field in model.model_fields.items()
        if not field.description
    ]
    assert len(models) >= 12 and undocumented == []


def test_unknown_keys_and_non_finite_numbers_are_rejected(report):
    data = json.loads(report.model_dump_json())
    data["probes"][0]["surprise"] = 1
    with pytest.raises(ValidationError, match="surprise"):
        Report.model_validate(data)
    with pytest.raises(ValidationError):
        MetricValue(name="x", value=float("nan"), n=1, method="t")


def test_variant_info_from_variant():
    variant = Variant(
        name="epoch-1", path=Path("/x/e1"), kind="adapter", base_path=Path("/x/base"), epoch=1.0, step=5
    )
    info = VariantInfo.from_variant(variant, "abc")
    assert (info.path, info.base_path, info.epoch, info.step, info.fingerprint) == (
        "/x/e1",
        "/x/base",
        1.0,
        5,
        "abc",
    )


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{\n  not json", "report.json:2: not valid JSON"),
        ('{"schema_version": 99}', "report schema version 99, this sfteval reads version 1"),
        ('{"schema_version": 1, "run": {}}', "invalid report at run.engine: Field required"),
        ("[1, 2]", "report schema version None"),
    ],
)
def test_load_report_errors_name_the_file(tmp_path, content, message):
    (tmp_path / "report.json").write_text(content)
    with pytest.raises(UserError, match="report.json") as error:
        load_report(tmp_path)
    assert message in str(error.value)


def test_report_command_renders(monkeypatch, capsys, run_dir):
    code, out, err = run_main(monkeypatch, capsys, "report", str(run_dir))
    assert code == 0, err
    assert "Recommended: epoch-1" in out and "-50.0*" in out and "add --detail" in out
    assert "answers (v3)" not in out
    code, out, err = run_main(monkeypatch, capsys, "report", str(run_dir), "--detail")
    assert code == 0 and "answers (v3)" in out and "Δ -50.0*" in out


@pytest.mark.parametrize("content", [None, "{broken"])
def test_report_command_fails_with_one_line(monkeypatch, capsys, tmp_path, content):
    if content is not None:
        (tmp_path / "report.json").write_text(content)
    code, out, err = run_main(monkeypatch, capsys, "report", str(tmp_path))
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1 and lines[0].startswith("error:")
    assert "report.json" in lines[0] and out == ""


def test_report_command_as_a_subprocess(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "sfteval", "report", str(tmp_path / "missing")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == 2 and len(lines) == 1 and "no report found" in lines[0]


def test_a_report_written_before_the_verdict_fields_still_loads_and_renders(tmp_path, report):
    """Fields added since schema 1 have defaults: an older report.json loads, its findings are grouped on the fly."""
    data = json.loads(report.model_dump_json())
    data.pop("finding_groups")
    for comparison in data["comparisons"]:
        comparison.pop("interval")
    for finding in data["findings"]:
        for key in ("value", "value_text", "adjusted_p", "claim"):
            finding.pop(key)
    for key in ("verdict", "reasons", "beats_base", "comparisons"):
        data["recommendation"].pop(key)
    for candidate in data["recommendation"]["candidates"]:
        for key in ("exclusions", "delta_vs_base", "p_vs_base", "delta_vs_earliest", "p_vs_earliest"):
            candidate.pop(key)
    (tmp_path / "report.json").write_text(json.dumps(data), encoding="utf-8")
    old = load_report(tmp_path)
    assert old.finding_groups == () and old.recommendation.verdict == ""
    output = Console(record=True, width=100, file=io.StringIO())
    render_report(old, output)
    text = output.export_text()
    assert "✔ Recommended: epoch-1." in text and "✖ epoch-2 gives the same answer to every item." in text
