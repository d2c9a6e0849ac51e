"""`sfteval lint`: each planted problem in tests/data/trainer is named; the clean dataset passes."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import tiny
from typer.testing import CliRunner

from sfteval.cli import app
from sfteval.templates import Message, get_template
from sfteval.tokenization import IGNORE_INDEX, TokenizedExample
from sfteval.trainer.data import Conversation
from sfteval.trainer.encode import EncodedRow, EncodeSettings, encode_row
from sfteval.trainer.lint.config import LintConfig, load_lint_config
from sfteval.trainer.lint.data_checks import tokenizer_findings
from sfteval.trainer.lint.mask_checks import check_row, mask_context
from sfteval.trainer.lint.run import run_lint


def lint(tiny_model_dir, data, **settings):
    return run_lint(LintConfig(model=tiny_model_dir, data=[data], **settings))


def checks(report, level=None):
    return {finding.check for finding in report.findings if level is None or finding.level == level}


def test_clean_dataset_has_no_errors(tiny_model_dir, trainer_data):
    report = lint(tiny_model_dir, trainer_data / "clean.jsonl")
    assert not report.has_errors and report.rows == 21
    # The tiny tokenizer's EOS is </s> while its chat template ends turns with <|im_end|>: a real risk, reported.
    assert checks(report) == {"terminator_not_eos"}
    titles = [table.title for table in report.tables]
    assert titles[0].startswith("length distribution") and any("coverage" in title for title in titles)


@pytest.mark.parametrize(
    ("data", "settings", "expected_errors"),
    [
        ("clean.jsonl", {"mask_terminator": True}, {"terminator_not_trained"}),
        ("pretemplated_llama2.jsonl", {"template": "llama2"}, {"double_bos"}),
        ("eos_in_output.jsonl", {"template": "alpaca"}, {"duplicated_eos"}),
        ("long_responses.jsonl", {"template": "alpaca", "max_seq_len": 400, "truncation": "keep_start"},
         {"truncated_response"}),
        ("leaked_turns.jsonl", {}, {"marker_in_response", "empty_response"}),
    ],
    ids=["masked-terminator", "double-bos", "duplicated-eos", "truncated", "leaked-turns"],
)  # fmt: skip
def test_each_planted_problem_is_an_error(tiny_model_dir, trainer_data, data, settings, expected_errors):
    report = lint(tiny_model_dir, trainer_data / data, **settings)
    assert checks(report, "error") == expected_errors
    for item in report.findings:
        if item.level == "error":
            assert item.count > 0 and item.examples and item.message


def test_dropping_overlong_rows_is_a_warning(tiny_model_dir, trainer_data):
    report = lint(tiny_model_dir, trainer_data / "long_responses.jsonl", template="alpaca", max_seq_len=400)
    assert not report.has_errors and "dropped_overlong" in checks(report, "warning")


def test_distilled_data_warnings(tiny_model_dir, trainer_data):
    report = lint(tiny_model_dir, trainer_data / "distilled.jsonl")
    assert {"opening_concentration", "stock_phrases", "exact_duplicate", "near_duplicate"} <= checks(
        report, "warning"
    )
    near = next(item for item in report.findings if item.check == "near_duplicate")
    assert set(near.examples) == {"dist-1", "dist-near"}
    assert not report.has_errors


def foreign_row(tokenizer, labels_from):
    """A row whose labels come from another (buggy) masker, to check that lint catches mask bugs."""
    template = get_template("chatml", tokenizer)
    conversation = Conversation("bug", (Message("user", "name a colour"), Message("assistant", "blue sky")))
    row = encode_row(tokenizer, template, conversation, EncodeSettings())
    labels = labels_from(list(row.full.input_ids), list(row.full.labels))
    example = TokenizedExample(
        row.full.input_ids, tuple(labels), False, sum(x != IGNORE_INDEX for x in labels)
    )
    return template, EncodedRow(row.conversation, row.segments, example, example)


def shifted_right(ids, labels):
    """Off by one (tloen/alpaca-lora#306): the mask starts one token late and ends one token late."""
    return [IGNORE_INDEX, *labels[:-1]]


def masked_by_pad(pad_id):
    """Masking labels equal to pad_token_id when pad == EOS (alignment-handbook#127)."""
    return lambda ids, labels: [IGNORE_INDEX if label == pad_id else label for label in labels]


def test_mask_bugs_from_other_trainers_are_caught():
    tokenizer = tiny.build_tokenizer()
    template, row = foreign_row(tokenizer, shifted_right)
    context = mask_context(tokenizer, template, EncodeSettings())
    expected = {"first_response_token_masked", "terminator_not_trained", "labels_misaligned"}
    assert expected <= check_row(context, row).problems
    tokenizer.pad_token = "<|im_end|>"
    template, row = foreign_row(tokenizer, masked_by_pad(tokenizer.pad_token_id))
    assert check_row(mask_context(tokenizer, template, EncodeSettings()), row).problems == {
        "terminator_not_trained"
    }
    template, row = foreign_row(tokenizer, lambda ids, labels: list(ids))  # trains the whole row
    assert "prompt_leak" in check_row(mask_context(tokenizer, template, EncodeSettings()), row).problems


def test_boundary_merge_is_reported_and_trained(tiny_tokenizer):
    template = get_template("raw", tiny_tokenizer)
    conversation = Conversation("merge", (Message("user", "ques"), Message("assistant", "tion")))
    row = encode_row(tiny_tokenizer, template, conversation, EncodeSettings())
    problems = check_row(mask_context(tiny_tokenizer, template, EncodeSettings()), row).problems
    assert tiny_tokenizer.tokenize("question") == ["question"]
    assert problems == {"boundary_merge"}
    assert row.full.labels[0] == row.full.input_ids[0]  # the merged token carries "tion": it is trained


def test_tokenizer_findings(tiny_model_dir):
    tokenizer = tiny.build_tokenizer()
    tokenizer.pad_token = tokenizer.eos_token
    found = {
        item.check
        for item in tokenizer_findings(tokenizer, get_template("alpaca", tokenizer), tiny_model_dir)
    }
    assert found == {"pad_eq_eos"}
    chatml = get_template("chatml", tokenizer)
    assert {item.check for item in tokenizer_findings(tokenizer, chatml, tiny_model_dir)} == {
        "pad_eq_eos",
        "terminator_not_eos",
    }


def test_cli_exit_codes_show_and_json(tiny_model_dir, trainer_data, tmp_path):
    runner = CliRunner()
    clean = runner.invoke(
        app, ["lint", "--model", str(tiny_model_dir), "--data", str(trainer_data / "clean.jsonl")]
    )
    assert clean.exit_code == 0, clean.output
    assert "OK: 0 error finding(s)" in clean.output
    report_path = tmp_path / "lint.json"
    planted = runner.invoke(app, [
        "lint", "--model", str(tiny_model_dir), "--config", str(trainer_data / "mask_terminator.yaml"),
        "--show", "1", "--json", str(report_path),
    ], env={"COLUMNS": "200"})  # fmt: skip
    assert planted.exit_code == 1, planted.output
    assert "terminator_not_trained" in planted.output and "--- clean-0: " in planted.output
    saved = json.loads(report_path.read_text())
    assert saved["has_errors"] and saved["findings"][0]["check"] == "terminator_not_trained"


def test_cli_bad_input_exit_2(tiny_model_dir, tmp_path):
    data = tmp_path / "d.jsonl"
    data.write_text('{"instruction": "a", "output": "b"}\n{"instruction": "a"}\n', encoding="utf-8")
    result = subprocess.run(
        [sys.executable, "-m", "sfteval", "lint", "--model", str(tiny_model_dir), "--data", str(data)],
        capture_output=True, text=True, timeout=120, env={**os.environ, "OMP_NUM_THREADS": "1"},
    )  # fmt: skip
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == 2 and len(lines) == 1 and "d.jsonl:2: missing field 'output'" in lines[0]


def test_lint_config_rejects_unknown_keys(tmp_path):
    config_file = tmp_path / "c.yaml"
    config_file.write_text("data: d.jsonl\nepohcs: 3\n", encoding="utf-8")
    with pytest.raises(Exception, match="epohcs: unknown setting"):
        load_lint_config(config_file, {})
