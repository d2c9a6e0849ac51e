"""Suites: the shipped ones load; every kind of bad suite is a UserError naming the file and the line."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from sfteval.core.errors import UserError
from sfteval.suite import available_suites, load_suite, resolve_suite


def write_suite(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "suite.yaml"
    path.write_text(textwrap.dedent(text).lstrip(), encoding="utf-8")
    return path


@pytest.mark.parametrize("name", ["quick", "standard"])
def test_shipped_suites_load_by_name(name: str) -> None:
    suite = load_suite(name)
    assert suite.name == name
    assert suite.path == resolve_suite(name).resolve()
    assert [probe.name for probe in suite.probes][0] == "instruction_following"
    assert name in available_suites()


def test_quick_suite_is_smaller_than_standard() -> None:
    quick, standard = load_suite("quick"), load_suite("standard")
    assert quick.probes[0].params.limit is not None and standard.probes[0].params.limit is None
    assert quick.config.generation.max_new_tokens < standard.config.generation.max_new_tokens


def test_a_file_suite_validates_probe_params_and_keeps_its_text(tmp_path: Path) -> None:
    path = write_suite(
        tmp_path,
        """
        seed: 7
        generation: {max_new_tokens: 32}
        probes:
          instruction_following:
            limit: 5
            templates: [chatml, alpaca]
        """,
    )
    suite = load_suite(str(path))
    assert suite.name == "suite"
    assert suite.config.seed == 7 and suite.config.generation.max_new_tokens == 32
    params = suite.probes[0].params
    assert params.limit == 5 and params.templates == ("chatml", "alpaca")
    assert suite.text == path.read_text()
    assert suite.probes[0].build().params == params
    assert suite.probes[0].build(suite.config.generation).generation.max_new_tokens == 32


@pytest.mark.parametrize(
    ("text", "line", "words"),
    [
        ("probes:\n  instruction_following:\n    limit: 0\n", 3, "probes.instruction_following.limit"),
        ("probes:\n  instruction_following:\n    limt: 3\n", 3, "limt: Extra inputs are not permitted"),
        ("generation:\n  max_new_tokens: many\nprobes:\n  instruction_following: {}\n", 2, "max_new_tokens"),
        ("seed: 1\nsed: 2\nprobes: {instruction_following: {}}\n", 2, "sed"),
        (
            "probes:\n  instruction_following: {}\n  instruction_folowing: {}\n",
            3,
            "did you mean 'instruction_following'",
        ),
        ("probes:\n  instruction_following:\n    templates: [chatml, alpacca]\n", 3, "did you mean 'alpaca'"),
        ("probes:\n  instruction_following:\n    prompts: missing.jsonl\n", 3, "missing.jsonl not found"),
        ("name: x\nprobes:\n  instruction_following: {}\nname: y\n", 4, "duplicate key 'name'"),
        ("probes:\n  instruction_following: [1\n", 3, "invalid YAML"),
        ("- just\n- a list\n", 1, "must be a YAML mapping"),
        ("name: no probes\n", 1, "probes: Field required"),
        ("probes: {}\n", 1, "probes"),
    ],
)
def test_bad_suites_name_file_and_line(tmp_path: Path, text: str, line: int, words: str) -> None:
    path = write_suite(tmp_path, text)
    with pytest.raises(UserError) as caught:
        load_suite(path)
    message = str(caught.value)
    assert message.startswith(f"{path}:{line}: "), message
    assert words in message


def test_several_errors_report_the_first_and_count_the_rest(tmp_path: Path) -> None:
    path = write_suite(tmp_path, "probes:\n  instruction_following:\n    limit: -1\n    max_new_tokens: 0\n")
    with pytest.raises(UserError, match=r"suite.yaml:3: .*limit.*\(and 1 more\)"):
        load_suite(path)


def test_empty_suite_file(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="suite file is empty"):
        load_suite(write_suite(tmp_path, "\n"))


def test_unknown_suite_name_suggests_a_shipped_one() -> None:
    with pytest.raises(UserError, match="did you mean 'quick'"):
        load_suite("quik")


def test_missing_suite_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="nope.yaml: suite file not found"):
        load_suite(tmp_path / "nope.yaml")


def test_relative_prompt_files_resolve_against_the_suite_dir(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "mine.jsonl").write_text("{}\n")
    path = write_suite(tmp_path, "probes:\n  instruction_following:\n    prompts: data/mine.jsonl\n")
    suite = load_suite(path)
    assert suite.directory == tmp_path.resolve()
    assert suite.probes[0].params.prompts == "data/mine.jsonl"
