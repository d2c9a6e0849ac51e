"""Imports point one way (docs/architecture.md, "Layers"): a module imports its own layer or the ones below it, and
siblings that must stay apart (probes and engines, the report and the runner) never import each other.

Every import counts, also those inside functions and under TYPE_CHECKING: a lazy import against the order is still
a dependency against it.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FOLDERS = {"sfteval": "sfteval", "sfteval.trainer": "trainer", "sfteval.probes": "probes"}

# Top to bottom. A module belongs to the layer of the longest prefix that names it.
LAYERS: tuple[tuple[str, ...], ...] = (
    (
        "sfteval.__main__",
        "sfteval.cli",
        "sfteval.commands",
        "sfteval.demo",
        "sfteval.integrations",
        "sfteval.trainer.commands",
        "sfteval.trainer.__main__",
    ),
    ("sfteval.runner", "sfteval.run_output", "sfteval.run_lock", "sfteval.report", "sfteval.suite"),
    ("sfteval.probes", "sfteval.engines", "sfteval.cache", "sfteval.trainer"),
    (
        "sfteval.stats",
        "sfteval.templates",
        "sfteval.tokenization",
        "sfteval.lmeval_tasks",
        "sfteval.discovery",
        "sfteval.weights",
        "sfteval.default_model",
    ),
    ("sfteval.core", "sfteval"),
)

# Siblings in one layer that must not import each other: (importer, imported).
APART = (
    ("sfteval.report", "sfteval.runner"),
    ("sfteval.suite", "sfteval.runner"),
    ("sfteval.suite", "sfteval.report"),
    ("sfteval.run_output", "sfteval.runner"),
    ("sfteval.probes", "sfteval.engines"),
    ("sfteval.probes", "sfteval.cache"),
    ("sfteval.probes", "sfteval.trainer"),
    ("sfteval.engines", "sfteval.probes"),
    ("sfteval.engines", "sfteval.cache"),
    ("sfteval.engines", "sfteval.trainer"),
    ("sfteval.cache", "sfteval.probes"),
    ("sfteval.trainer", "sfteval.probes"),
    ("sfteval.trainer", "sfteval.engines"),
    ("sfteval.trainer", "sfteval.cache"),
)


def module_name(path: Path) -> str:
    """The dotted name a source file is imported as (trainer/ and probes/ live in the sfteval namespace)."""
    for package, folder in sorted(FOLDERS.items(), key=lambda item: -len(item[1])):
        base = ROOT / folder
        if base in path.parents:
            parts = list(path.relative_to(base).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            return ".".join([package, *parts])
    raise ValueError(path)


def owner(name: str, prefixes: tuple[str, ...]) -> str | None:
    """The longest prefix (a module or a package) that `name` is or lies in."""
    matches = [prefix for prefix in prefixes if name == prefix or name.startswith(prefix + ".")]
    return max(matches, key=len) if matches else None


def layer_of(name: str) -> int:
    prefixes = tuple(prefix for layer in LAYERS for prefix in layer)
    found = owner(name, prefixes)
    assert found is not None, f"{name} is in no layer: add it to LAYERS in tests/test_layers.py"
    return next(index for index, layer in enumerate(LAYERS) if found in layer)


def imports_of(path: Path) -> list[tuple[int, str]]:
    """(line, imported module) for every sfteval import in the file, at any depth."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
            found += [(node.lineno, name) for name in names if name.split(".")[0] == "sfteval"]
        elif isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names if alias.name.startswith("sfteval")]
    return found


def resolved(name: str, known: set[str]) -> str:
    """`from a.b import c`: the module a.b.c when it exists, else a.b (c is a name defined in it)."""
    return name if name in known else name.rsplit(".", 1)[0]


def file_violations(importer: str, path: Path, known: set[str]) -> list[str]:
    """Every import of one module that points up a layer or across siblings kept apart."""
    apart_prefixes = tuple(prefix for pair in APART for prefix in pair)
    problems = []
    for line, imported in sorted({(line, resolved(raw, known)) for line, raw in imports_of(path)}):
        if imported not in known or imported == importer:
            continue
        where = f"{importer}:{line} imports {imported}"
        if layer_of(imported) < layer_of(importer):
            problems.append(f"{where} (a higher layer)")
        pair = (owner(importer, apart_prefixes), owner(imported, apart_prefixes))
        if pair in APART:
            problems.append(f"{where} ({pair[0]} must not import {pair[1]})")
    return problems


def source_files() -> dict[str, Path]:
    return {
        module_name(path): path
        for folder in FOLDERS.values()
        for path in (ROOT / folder).rglob("*.py")
        if "__pycache__" not in path.parts
    }


def test_imports_point_down_the_layers() -> None:
    files = source_files()
    assert [
        problem for name, path in files.items() for problem in file_violations(name, path, set(files))
    ] == []


def test_every_module_has_a_layer() -> None:
    for name in source_files():
        layer_of(name)


@pytest.mark.parametrize(
    ("importer", "line", "reason"),
    [
        ("probes/termination/findings.py", "from sfteval.report.findings import ordered", "a higher layer"),
        ("sfteval/report/merge.py", "from sfteval.runner import select_variants", "must not import"),
        (
            "probes/memorization/probe.py",
            "    from sfteval.engines.hf.engine import HFEngineFactory",
            "must not",
        ),
        ("sfteval/core/results.py", "from sfteval.stats import holm", "a higher layer"),
    ],
)
def test_an_import_against_the_order_fails(tmp_path: Path, importer: str, line: str, reason: str) -> None:
    """The check is not vacuous: one import against the order, added to a copy of a module, is caught."""
    files = source_files()
    original = (ROOT / importer).read_text(encoding="utf-8")
    added = f"\n\ndef _added():\n{line}\n" if line.startswith(" ") else f"\n{line}\n"
    copy = tmp_path / "copy.py"
    copy.write_text(original + added, encoding="utf-8")
    name = module_name(ROOT / importer)
    assert file_violations(name, ROOT / importer, set(files)) == []
    found = file_violations(name, copy, set(files))
    assert len(found) == 1 and reason in found[0], found
