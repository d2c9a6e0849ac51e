"""Training data: every accepted format becomes the same messages; every bad input names its file and line."""

from __future__ import annotations

import json

import pytest
from conftest import write_jsonl

from sfteval.core.errors import UserError
from sfteval.templates import Message
from sfteval.trainer.data import load_data_file, load_data_files

EXPECTED = (Message("user", "Name a colour."), Message("assistant", "Blue."))


@pytest.mark.parametrize(
    "row",
    [
        {"instruction": "Name a colour.", "output": "Blue."},
        {"prompt": "Name a colour.", "completion": "Blue."},
        {
            "prompt": [{"role": "user", "content": "Name a colour."}],
            "completion": [{"role": "assistant", "content": "Blue."}],
        },
        {
            "messages": [
                {"role": "user", "content": "Name a colour."},
                {"role": "assistant", "content": "Blue."},
            ]
        },
    ],
    ids=["alpaca", "prompt-completion", "conversational-prompt-completion", "messages"],
)
def test_formats_give_the_same_messages(tmp_path, row):
    data_file = load_data_file(write_jsonl(tmp_path / "d.jsonl", [row]))
    assert data_file.conversations[0].messages == EXPECTED
    assert data_file.conversations[0].id == "d.jsonl:1"
    assert len(data_file.sha256) == 64


def test_alpaca_input_and_system_are_kept(tmp_path):
    row = {"id": 7, "instruction": "Translate.", "input": "bonjour", "output": "hello", "system": "Be terse."}
    conversation = load_data_file(write_jsonl(tmp_path / "d.jsonl", [row])).conversations[0]
    assert conversation.id == "7"
    assert conversation.messages == (
        Message("system", "Be terse."), Message("user", "Translate.", "bonjour"), Message("assistant", "hello"),
    )  # fmt: skip


def test_json_array_and_parquet(tmp_path):
    rows = [{"prompt": "Name a colour.", "completion": "Blue."}] * 2
    (tmp_path / "d.json").write_text(json.dumps(rows), encoding="utf-8")
    assert [c.messages for c in load_data_file(tmp_path / "d.json").conversations] == [EXPECTED, EXPECTED]
    import datasets

    datasets.Dataset.from_list(rows).to_parquet(str(tmp_path / "d.parquet"))
    assert [c.messages for c in load_data_file(tmp_path / "d.parquet").conversations] == [EXPECTED, EXPECTED]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{"prompt": "a", "completion": "b"}\n{"prompt": "a", \n', "d.jsonl:2: invalid JSON"),
        ('{"instruction": "a"}\n', "d.jsonl:1: missing field 'output'"),
        ('{"prompt": "a", "completion": 3}\n', "d.jsonl:1: field 'completion' must be a string"),
        ('\n\n{"question": "a", "answer": "b"}\n', "d.jsonl:3: unrecognised row"),
        (
            '{"messages": [{"role": "user", "content": "a"}]}\n',
            "d.jsonl:1: the row must end with an assistant",
        ),
        (
            '{"messages": [{"role": "robot", "content": "a"}, {"role": "assistant", "content": "b"}]}\n',
            "d.jsonl:1: unknown message role",
        ),
        ('["a", "b"]\n', "d.jsonl:1: a row must be a JSON object"),
        ("", "no rows"),
    ],
)
def test_bad_rows_name_file_and_line(tmp_path, text, message):
    path = tmp_path / "d.jsonl"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(UserError) as error:
        load_data_file(path)
    assert message in str(error.value)


def test_missing_file_unknown_suffix_and_duplicate_ids(tmp_path):
    with pytest.raises(UserError, match="data file not found"):
        load_data_file(tmp_path / "nope.jsonl")
    (tmp_path / "d.csv").write_text("a,b\n", encoding="utf-8")
    with pytest.raises(UserError, match="unsupported data format"):
        load_data_file(tmp_path / "d.csv")
    first = write_jsonl(tmp_path / "a.jsonl", [{"id": "x", "prompt": "p", "completion": "c"}])
    second = write_jsonl(tmp_path / "b.jsonl", [{"id": "x", "prompt": "p", "completion": "c"}])
    with pytest.raises(UserError, match="row id 'x' occurs more than once"):
        load_data_files([first, second])
