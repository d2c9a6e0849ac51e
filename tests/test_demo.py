"""`sfteval demo` helpers: the shipped dataset, and reuse of a finished training run (no model is trained here)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from sfteval.demo import DemoConfig, DemoResult, demo_data_path, is_trained, next_steps
from sfteval.discovery import MANIFEST_NAME


def test_demo_dataset_is_shipped_with_its_planted_flaw():
    rows = [json.loads(line) for line in demo_data_path().read_text(encoding="utf-8").splitlines()]
    assert len(rows) >= 120
    flawed = [row for row in rows if row["output"].startswith("The sentiment is:")]
    assert 0.1 < len(flawed) / len(rows) < 0.5


def test_a_finished_run_on_the_same_data_is_reused(tmp_path):
    data = tmp_path / "data.jsonl"
    data.write_text('{"instruction": "a", "output": "b"}\n', encoding="utf-8")
    sft = tmp_path / "sft"
    assert not is_trained(sft, data, epochs=2)
    checkpoints = [
        {"path": f"checkpoint-{step}", "epoch": epoch, "step": step} for epoch, step in ((1, 4), (2, 8))
    ]
    manifest = {
        "data": [{"sha256": hashlib.sha256(data.read_bytes()).hexdigest()}],
        "checkpoints": checkpoints,
    }
    sft.mkdir()
    (sft / MANIFEST_NAME).write_text(json.dumps(manifest), encoding="utf-8")
    assert not is_trained(sft, data, epochs=2), "checkpoint directories are missing"
    for entry in checkpoints:
        (sft / entry["path"]).mkdir()
    assert is_trained(sft, data, epochs=2)
    assert not is_trained(sft, data, epochs=3)
    data.write_text('{"instruction": "a", "output": "changed"}\n', encoding="utf-8")
    assert not is_trained(sft, data, epochs=2)


def test_next_steps_name_the_run_directory():
    config = DemoConfig(out=Path("demo-out"))
    result = DemoResult(config.sft_dir, config.run_dir, config.run_dir / "report.html", True, {})
    commands = next_steps(result)
    for command in ("report", "gate", "diff"):
        assert any(line.startswith(f"sfteval {command} {Path('demo-out') / 'run'}") for line in commands)
