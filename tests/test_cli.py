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


def test_every_code_folder_is_a_packaged_package(monkeypatch):
    """A wheel silently misses a folder of code that setup.py does not list: every folder holding .py files under
    a mapped folder must have an __init__.py and be among the packages setup.py gives setuptools."""
    import runpy
    from pathlib import Path

    import setuptools
    import tomllib

    root = Path(__file__).resolve().parent.parent
    captured: dict = {}
    monkeypatch.setattr(setuptools, "setup", lambda **kwargs: captured.update(kwargs))
    monkeypatch.chdir(root)
    runpy.run_path(str(root / "setup.py"))
    mapping = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]["package-dir"]
    expected = set()
    for name, folder in mapping.items():
        for code in (root / folder).rglob("*.py"):
            relative = code.parent.relative_to(root / folder).parts
            if "__pycache__" not in relative:
                assert (code.parent / "__init__.py").is_file(), f"{code.parent} holds code but no __init__.py"
                expected.add(".".join([name, *relative]))
    assert expected <= set(captured["packages"]), sorted(expected - set(captured["packages"]))
    assert {"sfteval.core", "sfteval.probes.shared", "sfteval.engines.hf"} <= set(captured["packages"])
