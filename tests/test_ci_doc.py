"""docs/ci.md's GitHub Actions workflow is valid YAML and every sfteval command in it uses options that exist."""

from __future__ import annotations

import re
from pathlib import Path

import yaml
from typer.testing import CliRunner

from sfteval.cli import app

DOC = Path(__file__).resolve().parent.parent / "docs" / "ci.md"


def workflow_text() -> str:
    return re.search(r"```yaml\n(.*?)```", DOC.read_text(encoding="utf-8"), re.DOTALL).group(1)


def test_the_workflow_parses_and_gates_against_the_accepted_run():
    workflow = yaml.safe_load(workflow_text())
    steps = workflow["jobs"]["sft-gate"]["steps"]
    names = [step.get("name", step.get("uses")) for step in steps]
    assert "Gate against the accepted run" in names and "Upload the HTML report and the run" in names
    assert workflow["jobs"]["sft-gate"]["runs-on"] == ["self-hosted", "linux", "gpu"]
    gate = next(step for step in steps if step.get("name") == "Gate against the accepted run")
    assert "--baseline accepted" in gate["run"] and "--markdown gate.md" in gate["run"]
    upload = next(step for step in steps if step.get("name") == "Upload the HTML report and the run")
    assert "run/report.html" in upload["with"]["path"]


def test_every_sfteval_option_in_the_workflow_exists():
    text = workflow_text().replace("\\\n", " ")
    commands = re.findall(r"\.venv/bin/sfteval (\w+)([^\n]*)", text)
    assert {command for command, _ in commands} >= {"lint", "train", "run", "gate", "diff"}
    runner = CliRunner()
    for command, arguments in commands:
        help_text = runner.invoke(app, [command, "--help"], env={"COLUMNS": "300"}).output
        for option in re.findall(r"(--[a-z][a-z-]*)", arguments):
            assert option in help_text, f"sfteval {command} has no {option}"
