"""TrainConfig: YAML + flags merge (a given flag always wins, explicit false included), defaults, errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from sfteval.core.errors import UserError
from sfteval.trainer.config import DEFAULT_LORA_TARGETS, TrainConfig, load_train_config
from sfteval.trainer.lint.config import load_lint_config


def write_yaml(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "train.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_explicit_false_flag_beats_yaml_true(tmp_path):
    config_file = write_yaml(tmp_path, "data: d.jsonl\nout: o\nlora: true\nmask-terminator: true\n")
    config = load_train_config(config_file, {"lora": False, "mask_terminator": None, "epochs": None})
    assert config.lora is False
    assert config.mask_terminator is True  # not given on the command line: the YAML value stands


def test_yaml_paths_are_relative_to_the_file_and_flags_override(tmp_path):
    config_file = write_yaml(tmp_path, "data: [a.jsonl, b.jsonl]\nout: run\nepochs: 5\nlr: 0.001\n")
    config = load_train_config(config_file, {"epochs": 2})
    assert config.data == [tmp_path / "a.jsonl", tmp_path / "b.jsonl"]
    assert config.out == tmp_path / "run"
    assert (config.epochs, config.learning_rate) == (2, 0.001)


def test_learning_rate_and_lora_defaults():
    full = TrainConfig(data=[Path("d")], out=Path("o"))
    lora = TrainConfig(data=[Path("d")], out=Path("o"), lora=True)
    assert (full.learning_rate, lora.learning_rate) == (2e-5, 2e-4)
    assert lora.lora_modules == list(DEFAULT_LORA_TARGETS)
    assert TrainConfig(data=[Path("d")], out=Path("o"), lora_targets=["q_proj"]).lora_modules == ["q_proj"]
    assert (full.epochs, full.max_seq_len, full.truncation, full.train_on) == (3, 2048, "drop", "all")


@pytest.mark.parametrize(
    ("rows", "holdout", "expected"), [(39, None, 0), (40, None, 4), (5000, None, 200), (10, 0.5, 5)]
)
def test_holdout_rows(rows, holdout, expected):
    config = TrainConfig(data=[Path("d")], out=Path("o"), holdout=holdout)
    assert config.holdout_rows(rows) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("data: d.jsonl\nout: o\nepoch: 3\n", "epoch: unknown setting"),
        ("data: d.jsonl\nout: o\nepochs: zero\n", "epochs:"),
        ("data: [d.jsonl\n", "invalid YAML"),
        ("- a\n- b\n", "must be a YAML mapping"),
    ],
)
def test_bad_config_file_names_the_file(tmp_path, text, message):
    config_file = write_yaml(tmp_path, text)
    with pytest.raises(UserError) as error:
        load_train_config(config_file, {})
    assert str(config_file) in str(error.value) and message in str(error.value)


def test_missing_data_is_a_user_error():
    with pytest.raises(UserError, match="data"):
        load_train_config(None, {"out": Path("o")})


def test_lint_reads_a_training_config(tmp_path):
    config_file = write_yaml(
        tmp_path, "data: d.jsonl\nout: o\nepochs: 4\nmask_terminator: true\nmax_seq_len: 64\n"
    )
    config = load_lint_config(config_file, {"max_seq_len": 128})
    assert config.mask_terminator is True and config.max_seq_len == 128
    assert config.data == [tmp_path / "d.jsonl"]
