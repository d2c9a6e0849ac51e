"""CLI behaviour: help, version, exit codes and one-line errors (run as a real subprocess)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

import sfteval


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "sfteval", *args], capture_output=True, text=True, timeout=120
    )


def test_help_lists_commands():
    result = run_cli("--help")
    assert result.returncode == 0
    for command in ("inspect", "train", "run", "report", "diff", "gate", "lint", "demo", "model"):
        assert command in result.stdout


def test_version():
    result = run_cli("--version")
    assert result.returncode == 0 and sfteval.__version__ in result.stdout


@pytest.mark.parametrize("args", [("inspect", "/nonexistent"), ("inspect", "--base", "/nope", ".")])
def test_user_error_is_one_line_exit_2(args):
    result = run_cli(*args)
    assert result.returncode == 2
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), result.stderr
    assert "Traceback" not in result.stderr


def test_debug_shows_traceback():
    result = run_cli("--debug", "inspect", "/nonexistent")
    assert result.returncode != 0 and "Traceback" in result.stderr


def test_inspect_table(tmp_path, tiny_model_dir):
    out = tmp_path / "out" / "checkpoint-7"
    out.mkdir(parents=True)
    (out / "adapter_model.safetensors").write_bytes(b"\0")
    (out / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": str(tiny_model_dir)}))
    (out / "trainer_state.json").write_text(json.dumps({"epoch": 1.0}))
    result = subprocess.run(
        [sys.executable, "-m", "sfteval", "inspect", str(tmp_path / "out")],
        capture_output=True,
        text=True,
        env={"COLUMNS": "200", "PATH": "/usr/bin:/bin"},
    )
    assert result.returncode == 0, result.stderr
    assert "epoch-1" in result.stdout and "adapter" in result.stdout and "base" in result.stdout


def test_import_sfteval_does_not_import_torch():
    code = "import sys, sfteval, sfteval.cli, sfteval.discovery, sfteval.stats, sfteval.probes; print('torch' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"


def test_trainer_and_probes_packages_import():
    result = subprocess.run(
        [sys.executable, "-c", "import sfteval.trainer, sfteval.probes"], capture_output=True
    )
    assert result.returncode == 0


def test_every_package_is_listed_in_pyproject():
    """A wheel would silently miss a subpackage that pyproject.toml does not list."""
    from pathlib import Path

    import tomllib

    root = Path(__file__).resolve().parent.parent
    config = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]
    mapping = {folder: name for name, folder in config["package-dir"].items()}
    found = set()
    for folder in mapping:
        for init in (root / folder).rglob("__init__.py"):
            relative = init.parent.relative_to(root / folder).parts
            found.add(".".join([mapping[folder], *relative]))
    assert found <= set(config["packages"]), sorted(found - set(config["packages"]))
