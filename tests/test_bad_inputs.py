"""Bad input of every kind a new user tries: exit 2, one line naming the file (and line or key), no traceback, and
nothing already computed lost.

One table, one test. Each case builds its bad input in its own folder next to a fresh copy of a finished run
directory, runs the console-script entry point in this process, and checks the line and the run directory: the
cache keeps every row it had, and report.json with report.html are either untouched or both gone (a run that failed
after it started removes them; it never leaves a page that contradicts the JSON).
"""

from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import pytest
from run_fixtures import full_checkpoint, if_suite, invoke, pickle_only_model
from test_run_lock import HOLD_LOCK

ROWS = [
    {"instruction": f"say {word}", "output": f"{word} {word}"} for word in "red green blue cat dog".split()
]
REPORTS = ("report.json", "report.html")


@dataclass(frozen=True)
class Workspace:
    """What every case starts from: the tiny model, a one-checkpoint SFT dir, a suite, a finished run, data."""

    model: Path
    sft: Path
    suite: Path
    good_run: Path
    data: Path


@dataclass(frozen=True)
class Case:
    """A bad input: `arguments(workspace, folder, run, stack)` builds it and returns the command line."""

    name: str
    arguments: Callable[[Workspace, Path, Path, ExitStack], list[str]]
    words: Callable[[Path], list[str]]


def write(path: Path, content: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    return path


def run(
    workspace: Workspace, run_dir: Path, *extra: str, ckpt: Path | None = None, suite: Path | None = None
):
    return ["run", "--ckpt", str(ckpt or workspace.sft), "--suite", str(suite or workspace.suite),
            "--out", str(run_dir), "--engine", "hf", "--device", "cpu", *extra]  # fmt: skip


def train(
    workspace: Workspace, folder: Path, *extra: str, data: Path | None = None, model: Path | None = None
):
    return ["train", "--data", str(data or workspace.data), "--model", str(model or workspace.model),
            "--out", str(folder / "out"), "--precision", "fp32", *extra]  # fmt: skip


def sft_copy(workspace: Workspace, folder: Path) -> Path:
    """A copy of the SFT dir to damage."""
    return Path(shutil.copytree(workspace.sft, folder / "sft"))


def damaged(
    file: str, content: str | bytes, *, with_base: bool = False
) -> Callable[[Workspace, Path, Path, ExitStack], list[str]]:
    """A run on a copy of the SFT dir whose `file` (relative to it) holds `content` (`with_base`: --base given, so
    discovery need not read the file to find the base)."""

    def arguments(workspace: Workspace, folder: Path, run_dir: Path, stack: ExitStack) -> list[str]:
        sft = sft_copy(workspace, folder)
        write(sft / file, content)
        return run(workspace, run_dir, *(["--base", str(workspace.model)] if with_base else []), ckpt=sft)

    return arguments


def truncated(workspace: Workspace, folder: Path, run_dir: Path, stack: ExitStack) -> list[str]:
    """The checkpoint's model.safetensors cut in half: the header is intact, the data is not."""
    sft = sft_copy(workspace, folder)
    weights = sft / "checkpoint-5" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    return run(workspace, run_dir, ckpt=sft)


def with_suite(text: str | bytes) -> Callable[[Workspace, Path, Path, ExitStack], list[str]]:
    return lambda workspace, folder, run_dir, stack: run(
        workspace, run_dir, suite=write(folder / "s.yaml", text)
    )


def with_policy(text: str) -> Callable[[Workspace, Path, Path, ExitStack], list[str]]:
    return lambda workspace, folder, run_dir, stack: run(
        workspace, run_dir, "--gate", str(write(folder / "policy.yaml", text))
    )


def run_with(*extra: str) -> Callable[[Workspace, Path, Path, ExitStack], list[str]]:
    return lambda workspace, folder, run_dir, stack: run(workspace, run_dir, *extra)


def train_with(
    *extra: str, rows: list[dict] | None = None
) -> Callable[[Workspace, Path, Path, ExitStack], list[str]]:
    def arguments(workspace: Workspace, folder: Path, run_dir: Path, stack: ExitStack) -> list[str]:
        data = (
            None
            if rows is None
            else write(folder / "d.jsonl", "".join(json.dumps(row) + "\n" for row in rows))
        )
        return train(workspace, folder, *extra, data=data)

    return arguments


def train_config(content: str | bytes | None) -> Callable[[Workspace, Path, Path, ExitStack], list[str]]:
    """`train --config` with a file holding `content`, or a directory when None."""

    def arguments(workspace: Workspace, folder: Path, run_dir: Path, stack: ExitStack) -> list[str]:
        config = folder / "c.yaml"
        config.mkdir() if content is None else write(config, content)
        return train(workspace, folder, "--config", str(config))

    return arguments


def train_model(
    make: Callable[[Path, Path], Path],
) -> Callable[[Workspace, Path, Path, ExitStack], list[str]]:
    return lambda workspace, folder, run_dir, stack: train(
        workspace, folder, model=make(workspace.model, folder)
    )


def auto_map_model(model: Path, target: Path) -> Path:
    """A copy of the model whose config names classes of its own (a model type transformers lacks)."""
    shutil.copytree(model, target)
    config = json.loads((target / "config.json").read_text()) | {
        "model_type": "evil",
        "auto_map": {"AutoModelForCausalLM": "modeling_evil.EvilForCausalLM"},
    }
    write(target / "config.json", json.dumps(config))
    return target


def truncated_model(model: Path, folder: Path) -> Path:
    target = Path(shutil.copytree(model, folder / "m"))
    weights = target / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    return target


def locked(workspace: Workspace, folder: Path, run_dir: Path, stack: ExitStack) -> list[str]:
    """Another process holds the run directory's lock (as a second `sfteval run` on the same --out would find)."""
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_LOCK, str(run_dir)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    stack.callback(holder.communicate, "")
    assert holder.stdout is not None and holder.stdout.readline() == "held\n"
    return run(workspace, run_dir)


def duplicated_items(workspace: Workspace, folder: Path, run_dir: Path, stack: ExitStack) -> list[str]:
    """A run directory whose items.jsonl holds every record twice (what two runs on one --out used to leave)."""
    other = Path(shutil.copytree(run_dir, folder / "twice"))
    items = other / "items.jsonl"
    items.write_text(items.read_text() * 2)
    return ["diff", str(run_dir), str(other)]


def sfteval_yaml(probes: str) -> str:
    return f"generation: {{max_new_tokens: 4}}\nprobes:\n{probes}\n"


def damaged_adapter(workspace: Workspace, folder: Path, run_dir: Path, stack: ExitStack) -> list[str]:
    """A second checkpoint holding an adapter whose adapter_config.json is a list."""
    sft = sft_copy(workspace, folder)
    write(sft / "checkpoint-7" / "adapter_config.json", "[]")
    write(sft / "checkpoint-7" / "adapter_model.safetensors", b"")
    return run(workspace, run_dir, ckpt=sft)


def auto_map_checkpoint(workspace: Workspace, folder: Path, run_dir: Path, stack: ExitStack) -> list[str]:
    auto_map_model(workspace.model, folder / "sft" / "checkpoint-5")
    return run(workspace, run_dir, "--base", str(workspace.model), ckpt=folder / "sft")


def bad_prompt_file(workspace: Workspace, folder: Path, run_dir: Path, stack: ExitStack) -> list[str]:
    """instruction_following reading an IFEval-format prompt file whose second line is broken."""
    write(
        folder / "p.jsonl",
        '{"key": 1, "prompt": "x", "instruction_id_list": ["punctuation:no_comma"], "kwargs": [{}]}\n{oops\n',
    )
    suite = write(folder / "s.yaml", sfteval_yaml("  instruction_following: {prompts: p.jsonl}"))
    return run(workspace, run_dir, suite=suite)


def uncached_task(workspace: Workspace, folder: Path, run_dir: Path, stack: ExitStack) -> list[str]:
    """forgetting on lm-eval's registry task arc_easy, with an empty datasets cache and the hub offline."""
    import datasets.config

    patch = stack.enter_context(pytest.MonkeyPatch.context())
    patch.setattr(datasets.config, "HF_DATASETS_CACHE", folder / "empty-cache")
    patch.setenv("HF_DATASETS_OFFLINE", "1")
    patch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    suite = write(folder / "s.yaml", sfteval_yaml("  forgetting: {tasks: [arc_easy], limit: 2}"))
    return run(workspace, run_dir, suite=suite)


def says(file: str | None, *texts: str) -> Callable[[Path], list[str]]:
    """The line names `file` (relative to the case folder, "" for the folder, "x:3" with a line) and each text."""
    return lambda folder: [*([f"{folder}/{file}".rstrip("/")] if file is not None else []), *texts]


GATE_TYPO = "version: 1\nrules:\n  - name: r\n    probe: instruction_following\n    metric: prompt_lose\n    max_drop: 0.1\n"
ALL_EMPTY = [{"instruction": f"question {index}", "output": ""} for index in range(4)]
CASES = [
    # discovery
    Case("ckpt-missing", lambda w, f, r, s: run(w, r, ckpt=f / "nope"), says("nope: directory not found")),
    Case("ckpt-is-a-file", lambda w, f, r, s: run(w, r, ckpt=write(f / "x.txt", "x")), says("x.txt: not a directory")),
    Case("ckpt-without-weights", lambda w, f, r, s: run(w, r, ckpt=write(f / "e" / "README", "").parent),
         says("e: no model weights found")),
    Case("config-json-is-a-list", damaged("checkpoint-5/config.json", "[]"),
         says("sft/checkpoint-5/config.json: expected a JSON object")),
    Case("config-json-is-a-list-with-base", damaged("checkpoint-5/config.json", "[]", with_base=True),
         says("sft/checkpoint-5/config.json: expected a JSON object")),
    Case("trainer-state-is-a-list", damaged("checkpoint-5/trainer_state.json", "[1]"),
         says("sft/checkpoint-5/trainer_state.json: expected a JSON object")),
    Case("trainer-state-epoch-is-text", damaged("checkpoint-5/trainer_state.json", '{"epoch": "one"}'),
         says("sft/checkpoint-5/trainer_state.json: epoch: expected a number, found 'one'")),
    Case("trainer-state-invalid-json", damaged("checkpoint-5/trainer_state.json", '{"epoch": 1,\n'),
         says("sft/checkpoint-5/trainer_state.json:2: invalid JSON")),
    Case("manifest-is-a-list", damaged("sfteval_manifest.json", "[]"),
         says("sft/sfteval_manifest.json: expected a JSON object")),
    Case("manifest-invalid-json", damaged("sfteval_manifest.json", "{\n\n oops"),
         says("sft/sfteval_manifest.json:3: invalid JSON")),
    Case("adapter-config-is-a-list", damaged_adapter, says("sft/checkpoint-7/adapter_config.json: expected a JSON object")),
    Case("pickle-only-checkpoint", damaged("checkpoint-9/pytorch_model.bin", b"never read"),
         says("sft/checkpoint-9: only pickle weights")),
    Case("base-missing", run_with("--base", "/nonexistent/base"), says(None, "--base /nonexistent/base: directory not found")),
    Case("pickle-only-base", lambda w, f, r, s: run(w, r, "--base", str(pickle_only_model(w.model, f / "b", f / "M"))),
         says("b: only pickle weights")),
    # weights
    Case("truncated-safetensors", truncated, says("sft/checkpoint-5: damaged safetensors weights")),
    Case("safetensors-garbage", damaged("checkpoint-5/model.safetensors", b"garbage!"),
         says("sft/checkpoint-5/model.safetensors: not a safetensors file")),
    Case("auto-map-config", auto_map_checkpoint,
         says("sft/checkpoint-5/config.json: auto_map asks to run the model repository's own code")),
    # suites
    Case("suite-unknown", run_with("--suite", "nope"), says(None, "unknown suite 'nope'")),
    Case("suite-yaml-syntax", with_suite("probes: [\n"), says("s.yaml:2: invalid YAML")),
    Case("suite-unknown-probe", with_suite(sfteval_yaml("  instruction_folowing: {}")),
         says("s.yaml:3:", "did you mean 'instruction_following'")),
    Case("suite-control-character", with_suite("probes:\x07\n"), says("s.yaml", "invalid YAML")),
    Case("suite-bad-parameter", with_suite(sfteval_yaml("  instruction_following: {limit: -1}")),
         says("s.yaml:3:", "limit")),
    Case("suite-not-utf8", with_suite(b"probes: \xff\xfe\n"), says("s.yaml: cannot read")),
    Case("suite-duplicate-key", with_suite(sfteval_yaml("  termination: {}\n  termination: {}")),
         says("s.yaml:4:", "duplicate")),
    Case("if-prompts-bad-jsonl", bad_prompt_file, says("p.jsonl:2:")),
    Case("lm-eval-task-not-cached", uncached_task,
         says(None, "lm-eval task 'arc_easy' needs the dataset 'allenai/ai2_arc'", "HF_DATASETS_OFFLINE unset",
              "local task YAML")),
    Case("forgetting-task-folder-missing",
         with_suite(sfteval_yaml("  forgetting: {tasks: [world_facts], task_dirs: [nowhere], limit: 2}")),
         says("nowhere not found")),
    # gate policies
    Case("gate-control-character", with_policy("version: 1\nrules: []\n\x07\n"), says("policy.yaml:3: invalid YAML")),
    Case("gate-missing", run_with("--gate", "/nonexistent/policy.yaml"),
         says(None, "/nonexistent/policy.yaml: gate policy file not found")),
    Case("gate-unknown-metric", with_policy(GATE_TYPO), says("policy.yaml:", "prompt_lose")),
    # options
    Case("variants-unknown", run_with("--variants", "epoch-9"), says(None, "--variants: no variant named 'epoch-9'")),
    Case("engine-unknown", run_with("--engine", "hf-fast"), says(None, "unknown engine 'hf-fast'")),
    Case("batch-size-zero", run_with("--batch-size", "0"), says(None, "--batch-size")),
    Case("run-train-template-unknown", run_with("--train-template", "chatmll"), says(None, "did you mean 'chatml'")),
    Case("shard-out-of-range", run_with("--shard", "3/2"), says(None, "--shard: '3/2' needs 1 <= i <= n")),
    Case("engine-arg-not-key-value", run_with("--engine-arg", "oops"), says(None, "--engine-arg: 'oops' is not KEY=VALUE")),
    Case("out-is-a-file", lambda w, f, r, s: run(w, write(f / "o.txt", "x")), says("o.txt: cannot write the run directory")),
    Case("cache-is-a-directory", lambda w, f, r, s: run(w, r, "--cache", str(f)), says("", ": cannot open the result cache")),
    Case("cache-not-sqlite", lambda w, f, r, s: run(w, r, "--cache", str(write(f / "c.sqlite", "text " * 100))),
         says("c.sqlite: cannot open the result cache")),
    Case("run-dir-in-use", locked, says(None, "another sfteval run (pid", "is writing this run directory")),
    # train and lint
    Case("train-data-missing", lambda w, f, r, s: train(w, f, data=f / "none.jsonl"), says("none.jsonl: data file not found")),
    Case("train-data-bad-jsonl",
         lambda w, f, r, s: train(w, f, data=write(f / "d.jsonl", '{"instruction": "a", "output": "b"}\n{\n')),
         says("d.jsonl:2:")),
    Case("train-all-responses-empty", train_with(rows=ALL_EMPTY),
         says("d.jsonl: 4 of 4 rows have empty responses: the model is taught to stop without answering")),
    Case("train-no-trained-tokens", train_with("--max-seq-len", "8"), says(None, "no row has trained tokens")),
    Case("train-pickle-only-model", train_model(lambda m, f: pickle_only_model(m, f / "m", f / "M")),
         says("m: only pickle weights")),
    Case("train-auto-map", train_model(lambda m, f: auto_map_model(m, f / "m")), says("m/config.json: auto_map asks")),
    Case("train-truncated-safetensors", train_model(truncated_model), says("m: damaged safetensors weights")),
    Case("train-out-is-a-file", lambda w, f, r, s: train(w, write(f / "o" / "out", "x").parent),
         says("o/out: exists and is not a directory")),
    Case("train-out-unwritable", lambda w, f, r, s: train(w, Path("/proc/sfteval-bad-input")),
         says(None, "--out /proc/sfteval-bad-input/out: cannot write in /proc")),
    Case("train-config-not-utf8", train_config(b"epochs: \xff\n"), says("c.yaml: cannot read the config file")),
    Case("train-config-is-a-directory", train_config(None), says("c.yaml: cannot read the config file")),
    Case("train-config-invalid-yaml", train_config("epochs: [\n"), says("c.yaml:2: invalid YAML")),
    Case("train-config-unknown-key", train_config("epoch: 2\n"), says("c.yaml: epoch: unknown setting")),
    Case("train-template-unknown", lambda w, f, r, s: train(w, f, "--template", "chatmll"), says(None, "did you mean 'chatml'")),
    Case("train-epochs-zero", lambda w, f, r, s: train(w, f, "--epochs", "0"), says(None, "epochs: ")),
    Case("lint-config-is-a-directory",
         lambda w, f, r, s: ["lint", "--data", str(w.data), "--model", str(w.model), "--config", str(f)],
         says("", ": cannot read the config file")),
    # reading runs back
    Case("report-without-report-json", lambda w, f, r, s: ["report", str(f)], says("report.json")),
    Case("report-json-corrupt", lambda w, f, r, s: ["report", str(write(f / "report.json", "{\n"))], says("report.json:")),
    Case("diff-duplicate-records", duplicated_items, says("twice/items.jsonl:", "duplicate item record")),
    Case("gate-policy-control-character",
         lambda w, f, r, s: ["gate", str(r), "--policy", str(write(f / "policy.yaml", "rules:\x1b\n"))],
         says("policy.yaml:1: invalid YAML")),
    Case("html-target-is-a-directory", lambda w, f, r, s: ["report", str(r), "--html", str(f)],
         says("", ": cannot write the HTML report")),
    Case("inspect-trainer-state-is-a-list",
         lambda w, f, r, s: ["inspect", str(damaged("checkpoint-5/trainer_state.json", "[1]")(w, f, r, s)[2])],
         says("sft/checkpoint-5/trainer_state.json: expected a JSON object")),
]  # fmt: skip


@pytest.fixture(scope="module")
def workspace(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Workspace:
    """The tiny model, an SFT dir (base + checkpoint-5), a two-prompt suite, one finished run, training data."""
    from typer.testing import CliRunner

    from sfteval.cli import app

    root = tmp_path_factory.mktemp("bad-inputs")
    sft = full_checkpoint(tiny_model_dir, root)
    suite = if_suite(root, limit=2, max_new_tokens=4)
    good_run = root / "good-run"
    result = CliRunner().invoke(app, run(Workspace(tiny_model_dir, sft, suite, good_run, root), good_run))
    assert result.exit_code == 0, result.output
    data = write(root / "data.jsonl", "".join(json.dumps(row) + "\n" for row in ROWS))
    return Workspace(tiny_model_dir, sft, suite, good_run, data)


def cache_rows(run_dir: Path) -> set[tuple[str, str]]:
    with sqlite3.connect(run_dir / "cache.sqlite") as connection:
        return set(connection.execute("SELECT fingerprint, request_key FROM results"))


def test_the_table_covers_at_least_forty_inputs() -> None:
    assert len(CASES) >= 40 and len({case.name for case in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_bad_input_is_one_line_exit_2_and_loses_nothing(
    case: Case, workspace: Workspace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    run_dir = Path(shutil.copytree(workspace.good_run, tmp_path / "run"))
    folder = tmp_path / "case"
    folder.mkdir()
    before = {name: (run_dir / name).read_bytes() for name in (*REPORTS, "items.jsonl")}
    rows = cache_rows(run_dir)
    with ExitStack() as stack:
        arguments = case.arguments(workspace, folder, run_dir, stack)
        code, stdout, stderr = invoke(arguments, monkeypatch, capsys)
    assert code == 2, f"exit {code}\n{stdout}\n{stderr}"
    assert "Traceback" not in stdout + stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), stderr
    for expected in case.words(folder):
        assert expected in lines[0], f"{expected!r} not in {lines[0]!r}"
    assert not (folder / "M").exists(), "a planted pickle was unpickled"
    assert cache_rows(run_dir) >= rows
    reports = [(run_dir / name).read_bytes() if (run_dir / name).exists() else None for name in REPORTS]
    kept = reports == [before[name] for name in REPORTS]
    assert kept or reports == [None, None], "report.html and report.json disagree"
    if kept:
        assert (run_dir / "items.jsonl").read_bytes() == before["items.jsonl"]
