"""Where the shipped suites, their data, lm-eval task YAMLs and gate policies live, and how a name finds its file.

Names resolve to `suites/` of the source checkout sfteval runs from (editable installs: the directory next to the
`sfteval` package, beside pyproject.toml) or, in a built distribution, to the `sfteval.suites` package data.
A value that is an existing file, or has a .yaml/.yml suffix or a directory part, is read as a path.
"""

from __future__ import annotations

import difflib
import importlib.util
from pathlib import Path

from sfteval.core.errors import UserError

YAML_SUFFIXES = (".yaml", ".yml")


def suite_directories() -> list[Path]:
    """The checkout's suites/ dir, then the installed `sfteval.suites` data."""
    import sfteval

    checkout = Path(sfteval.__file__).resolve().parent.parent
    directories = [checkout / "suites"] if (checkout / "pyproject.toml").is_file() else []
    spec = importlib.util.find_spec("sfteval.suites")
    if spec is not None and spec.submodule_search_locations:
        directories.extend(Path(location) for location in spec.submodule_search_locations)
    return [directory for directory in directories if directory.is_dir()]


def shipped_names(folder: str = "") -> list[str]:
    """Names of the YAML files shipped in `folder` of the suites directory ('' = the suites themselves)."""
    return sorted(
        {path.stem for directory in suite_directories() for path in (directory / folder).glob("*.yaml")}
    )


def resolve_shipped(source: str | Path, folder: str, what: str) -> Path:
    """The YAML file a command-line value names: an existing path, or the name of a file shipped in `folder`."""
    path = Path(source)
    if path.is_file():
        return path
    if path.suffix in YAML_SUFFIXES or len(path.parts) > 1:
        raise UserError(f"{path}: {what} file not found")
    for directory in suite_directories():
        candidate = directory / folder / f"{source}.yaml"
        if candidate.is_file():
            return candidate
    known = shipped_names(folder)
    close = difflib.get_close_matches(str(source), known, n=1)
    hint = f"did you mean {close[0]!r}?" if close else f"known: {', '.join(known) or 'none'}"
    raise UserError(f"unknown {what} {str(source)!r} (not a file, not a shipped {what})", hint=hint)


def resolve_data_path(path: str, suite_dir: Path | None) -> Path:
    """A suite data path: absolute as given, else relative to the suite file's folder."""
    candidate = Path(path).expanduser()
    return candidate if candidate.is_absolute() or suite_dir is None else Path(suite_dir) / candidate


def find_data_file(path: str, suite_dir: Path | None) -> Path:
    """A data file relative to the suite's folder, else to the shipped suites folder (user suites reuse our data)."""
    candidates = [resolve_data_path(path, suite_dir), *(folder / path for folder in suite_directories())]
    found = next((candidate for candidate in candidates if candidate.is_file()), None)
    if found is None:
        raise UserError(f"data file {candidates[0]} not found")
    return found
