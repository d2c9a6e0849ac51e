"""Suites: which probes to run, with which parameters and generation settings, read from YAML.

A suite is data, never code: probe names from the probe registry and their parameters, validated by pydantic (the
probe's own `Params` model). Every validation error names the file and the line it comes from, found by walking
the YAML node tree (which keeps source marks) along the pydantic error location.

Suites named on the command line (`--suite quick`) resolve to `suites/NAME.yaml` of the source checkout sfteval
runs from (editable installs: the directory next to the `sfteval` package, beside pyproject.toml) or, in a built
distribution, to the `sfteval.suites` package data (when packaging maps suites/ there). A value that is an existing
file, or has a .yaml/.yml suffix or a directory part, is read as a path.
"""

from __future__ import annotations

import difflib
import importlib.util
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from sfteval.errors import UserError

if TYPE_CHECKING:
    from sfteval.probes.base import Probe

SUITE_SUFFIXES = (".yaml", ".yml")


class GenerationConfig(BaseModel):
    """Generation settings every generating probe uses unless its own parameters override them."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_new_tokens: int = Field(default=256, ge=1, description="Most tokens generated per request.")
    temperature: float = Field(default=0.0, ge=0.0, description="0 = greedy decoding.")


class SuiteConfig(BaseModel):
    """The YAML document of a suite; `probes` maps registered probe names to their parameters."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str | None = Field(default=None, description="Suite name (default: the file name without suffix).")
    description: str = Field(default="", description="What the suite is for and how long it takes.")
    seed: int = Field(
        default=0, description="Seed of sampling, item sampling and every resampling in the run."
    )
    generation: GenerationConfig = Field(default_factory=GenerationConfig)
    train_template: str | None = Field(
        default=None,
        description="Training template when neither --train-template nor the manifest names one.",
    )
    probes: dict[str, dict[str, Any] | None] = Field(
        min_length=1, description="Probe name -> its parameters."
    )


@dataclass(frozen=True)
class SuiteProbe:
    """One probe of a suite: its registered name, its class and its validated parameters."""

    name: str
    probe_class: type[Probe]
    params: BaseModel

    def build(self) -> Probe:
        """A fresh probe instance with the suite's parameters."""
        return self.probe_class(self.params)


@dataclass(frozen=True)
class Suite:
    """A validated suite with where it came from (its text is saved in the report for reproducibility)."""

    name: str
    path: Path
    text: str
    config: SuiteConfig
    probes: tuple[SuiteProbe, ...]

    @property
    def directory(self) -> Path:
        """Relative data paths in probe parameters resolve against this directory."""
        return self.path.parent


def suite_directories() -> list[Path]:
    """Where suite names are looked up: the checkout's suites/ dir, then the installed `sfteval.suites` data."""
    import sfteval

    checkout = Path(sfteval.__file__).resolve().parent.parent
    directories = [checkout / "suites"] if (checkout / "pyproject.toml").is_file() else []
    spec = importlib.util.find_spec("sfteval.suites")
    if spec is not None and spec.submodule_search_locations:
        directories.extend(Path(location) for location in spec.submodule_search_locations)
    return [directory for directory in directories if directory.is_dir()]


def available_suites() -> list[str]:
    """Names of the suites shipped with sfteval."""
    names = {path.stem for directory in suite_directories() for path in directory.glob("*.yaml")}
    return sorted(names)


def resolve_suite(source: str | Path) -> Path:
    """The YAML file a `--suite` value names: an existing path, or a shipped suite's name."""
    path = Path(source)
    if path.is_file():
        return path
    if path.suffix in SUITE_SUFFIXES or len(path.parts) > 1:
        raise UserError(f"{path}: suite file not found")
    for directory in suite_directories():
        candidate = directory / f"{source}.yaml"
        if candidate.is_file():
            return candidate
    known = available_suites()
    close = difflib.get_close_matches(str(source), known, n=1)
    hint = f"did you mean {close[0]!r}?" if close else f"known suites: {', '.join(known) or 'none'}"
    raise UserError(f"unknown suite {str(source)!r} (not a file, not a shipped suite)", hint=hint)


def load_suite(source: str | Path) -> Suite:
    """Read, parse and validate a suite (file path or shipped name); errors name the file and line."""
    path = resolve_suite(source)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise UserError(f"{path}: cannot read suite ({error})") from None
    return parse_suite(text, path)


def parse_suite(text: str, path: Path) -> Suite:
    """Validate suite YAML `text` (read from `path`) against the schema and every probe's Params model."""
    root, data = _compose(text, path)
    if not isinstance(data, dict):
        raise UserError(
            f"{path}:{node_line(root)}: a suite must be a YAML mapping (name, generation, probes, ...)"
        )
    try:
        config = SuiteConfig.model_validate(data)
    except ValidationError as error:
        raise located_error(error, root, path, ()) from None
    probes = tuple(_validate_probe(name, params or {}, root, path) for name, params in config.probes.items())
    return Suite(name=config.name or path.stem, path=path.resolve(), text=text, config=config, probes=probes)


def _validate_probe(name: str, params: dict[str, Any], root: yaml.Node, path: Path) -> SuiteProbe:
    """Look the probe up in the registry and validate its parameters with its own Params model."""
    from sfteval.probes import PROBES

    try:
        probe_class = PROBES.get(name)
    except UserError as error:
        line = node_line(node_at(root, ("probes", name), key=True))
        raise UserError(f"{path}:{line}: probes.{name}: {error}") from None
    try:
        validated = probe_class.Params.model_validate(params, context={"suite_dir": path.parent})
    except ValidationError as error:
        raise located_error(error, root, path, ("probes", name)) from None
    return SuiteProbe(name=name, probe_class=probe_class, params=validated)


def _compose(text: str, path: Path) -> tuple[yaml.Node, Any]:
    """Parse YAML into its node tree (with line marks) and the plain data; duplicate keys are errors."""
    try:
        loader = yaml.SafeLoader(text)
        try:
            root = loader.get_single_node()
            if root is None:
                raise UserError(f"{path}: the suite file is empty")
            reject_duplicate_keys(root, path)
            return root, loader.construct_document(root)
        finally:
            loader.dispose()
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        line = f":{mark.line + 1}" if mark is not None else ""
        raise UserError(f"{path}{line}: invalid YAML ({error.problem or error.context})") from None
    except yaml.YAMLError as error:
        raise UserError(f"{path}: invalid YAML ({error})") from None


def reject_duplicate_keys(node: yaml.Node, path: Path) -> None:
    """YAML silently keeps the last of two equal keys; in a config that hides a mistake, so refuse it."""
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key, value in node.value:
            if isinstance(key, yaml.ScalarNode):
                if key.value in seen:
                    raise UserError(f"{path}:{node_line(key)}: duplicate key {key.value!r}")
                seen.add(key.value)
            reject_duplicate_keys(value, path)
    elif isinstance(node, yaml.SequenceNode):
        for item in node.value:
            reject_duplicate_keys(item, path)


def located_error(error: ValidationError, root: yaml.Node, path: Path, prefix: tuple[Any, ...]) -> UserError:
    """Turn the first pydantic error into 'FILE:LINE: dotted.location: message (and N more)'."""
    errors = error.errors(include_url=False)
    first = errors[0]
    location = (*prefix, *first["loc"])
    node = node_at(root, location, key=first["type"] == "extra_forbidden")
    dotted = ".".join(str(part) for part in location) or "(top level)"
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return UserError(f"{path}:{node_line(node)}: {dotted}: {first['msg']}{more}")


def node_at(root: yaml.Node, location: Sequence[Any], key: bool = False) -> yaml.Node:
    """The deepest YAML node along `location` (the key node itself when `key`); stops where the path ends."""
    node = root
    for position, part in enumerate(location):
        if isinstance(node, yaml.MappingNode):
            match = next((pair for pair in node.value if pair[0].value == str(part)), None)
            if match is None:
                return node
            node = match[0] if key and position == len(location) - 1 else match[1]
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and 0 <= part < len(node.value):
            node = node.value[part]
        else:
            return node
    return node


def node_line(node: yaml.Node) -> int:
    return node.start_mark.line + 1
