"""The real default model (SmolLM2-135M-Instruct): lint its native template, and a two-step LoRA run."""

from __future__ import annotations

import json

import pytest
from conftest import write_jsonl

from sfteval.discovery import MANIFEST_NAME, discover
from sfteval.trainer.config import TrainConfig
from sfteval.trainer.lint.config import LintConfig
from sfteval.trainer.lint.run import run_lint
from sfteval.trainer.train import run_training

pytestmark = pytest.mark.slow


def test_default_model_native_template_lints_clean(trainer_data):
    report = run_lint(LintConfig(data=[trainer_data / "clean.jsonl"]))
    assert report.template == "native" and not report.has_errors
    # SmolLM2's pad token is its EOS (<|im_end|>): reported as a risk, not an error.
    assert {finding.check for finding in report.findings} == {"pad_eq_eos"}


def test_default_model_flags_already_templated_data(tmp_path):
    """Rows exported already in SmolLM2's ChatML, then templated again: <|im_start|> (its BOS) repeats."""
    rows = [
        {
            "prompt": f"<|im_start|>user\nWhat is {a} plus {a}?<|im_end|>\n<|im_start|>assistant\n",
            "completion": str(2 * a),
        }
        for a in range(4)
    ]
    report = run_lint(LintConfig(data=[write_jsonl(tmp_path / "d.jsonl", rows)]))
    assert report.has_errors and {f.check for f in report.findings if f.level == "error"} == {"double_bos"}


def test_default_model_lora_two_steps(tmp_path):
    rows = [
        {"instruction": f"What is {a} plus {a}?", "output": f"{a} plus {a} is {2 * a}."} for a in range(8)
    ]
    data = write_jsonl(tmp_path / "d.jsonl", rows)
    config = TrainConfig(
        data=[data], out=tmp_path / "out", lora=True, epochs=1, batch_size=4, max_seq_len=128
    )
    result = run_training(config)
    manifest = json.loads((config.out / MANIFEST_NAME).read_text())
    assert result.steps == 2 and manifest["template"] == "native" and manifest["lora"]["r"] == 16
    assert manifest["mask_stats"]["rows_used"] == 8 and manifest["holdout"]["rows"] == 0
    assert [(v.name, v.kind) for v in discover(config.out)] == [("base", "full"), ("epoch-1", "adapter")]
