"""docs/adding-a-probe.md's example probe, taken from the page itself, registered and run through `sfteval run` on a
tiny model: the recipe works as written, and the report carries the new probe's metrics and comparisons."""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path

import pytest
import tiny

from sfteval.probes import PROBES

DOC = Path(__file__).resolve().parent.parent / "docs" / "adding-a-probe.md"


def example_code() -> str:
    """The first python block after the page's "The example" heading."""
    text = DOC.read_text(encoding="utf-8")
    section = text[text.index("## The example") :]
    match = re.search(r"```python\n(.*?)```", section, re.S)
    assert match is not None, "docs/adding-a-probe.md has no python example"
    return match.group(1)


@pytest.fixture(scope="module")
def example_probe(tmp_path_factory: pytest.TempPathFactory) -> type:
    """Import the documented module once (its @register_probe makes the suite name `answer_length` valid)."""
    if "answer_length" not in PROBES:
        path = tmp_path_factory.mktemp("example") / "answer_length_probe.py"
        path.write_text(example_code(), encoding="utf-8")
        spec = importlib.util.spec_from_file_location("answer_length_probe", path)
        assert spec is not None and spec.loader is not None
        spec.loader.exec_module(importlib.util.module_from_spec(spec))
    return PROBES.get("answer_length")


def test_the_documented_probe_runs_end_to_end(example_probe, tiny_model_dir: Path, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from sfteval.cli import app

    ckpt = tiny.save_lora_epochs(tiny_model_dir, tmp_path / "sft", epochs=2)
    suite = tmp_path / "suite.yaml"
    suite.write_text(
        "probes:\n  answer_length:\n    limit: 4\n    max_new_tokens: 6\n    templates: [chatml]\n"
    )
    out = tmp_path / "run"
    arguments = ["run", "--ckpt", str(ckpt), "--base", str(tiny_model_dir), "--suite", str(suite)]
    result = CliRunner().invoke(app, [*arguments, "--engine", "hf", "--device", "cpu", "--out", str(out)])
    assert result.exit_code == 0, result.output
    report = json.loads((out / "report.json").read_text())
    (probe,) = report["probes"]
    assert probe["name"] == "answer_length" and [m["name"] for m in probe["metrics"]] == [
        "words",
        "ran_to_cap",
    ]
    assert [cell["variant"] for cell in probe["cells"]] == ["base", "epoch-1", "epoch-2"]
    assert all(cell["n_items"] == 4 for cell in probe["cells"])
    compared = {(c["variant"], c["reference"], c["metric"]) for c in report["comparisons"]}
    assert ("epoch-2", "base", "words") in compared and ("epoch-2", "epoch-1", "ran_to_cap") in compared
    records = [json.loads(line) for line in (out / "items.jsonl").read_text().splitlines()]
    assert {record["probe"] for record in records} == {"answer_length"} and len(records) == 12
    assert all(0 <= record["metrics"]["words"] <= 6 for record in records)
    assert "answer_length" in result.output
