"""Suites: which probes to run, with which parameters and generation settings, read from YAML.

A suite is data, never code: probe names from the probe registry and their parameters, validated by pydantic (the
probe's own `Params` model). Every validation error names the file and the line it comes from
(`sfteval.core.yaml_source`). Suites named on the command line (`--suite quick`) are the shipped ones
(`sfteval.core.shipped`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from sfteval.core.errors import UserError
from sfteval.core.generation import GenerationConfig, GenerationOverrides
from sfteval.core.shipped import resolve_shipped, shipped_names
from sfteval.core.yaml_source import compose_yaml, located_error, node_at, node_line, read_text
from sfteval.probes.base import PROBES, Probe, ProbeParams


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
    params: ProbeParams

    def build(
        self, generation: GenerationConfig | None = None, overrides: GenerationOverrides | None = None
    ) -> Probe:
        """A fresh probe instance with the suite's parameters and its generation settings resolved against the
        suite's `generation` block (defaults when None) and command-line overrides."""
        settings = self.probe_class.generation_settings(
            self.params, generation or GenerationConfig(), overrides
        )
        return self.probe_class(self.params, settings)


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


def available_suites() -> list[str]:
    """Names of the suites shipped with sfteval."""
    return shipped_names()


def resolve_suite(source: str | Path) -> Path:
    """The YAML file a `--suite` value names: an existing path, or a shipped suite's name."""
    return resolve_shipped(source, "", "suite")


def load_suite(source: str | Path) -> Suite:
    """Read, parse and validate a suite (file path or shipped name); errors name the file and line."""
    path = resolve_suite(source)
    return parse_suite(read_text(path, "suite"), path)


def parse_suite(text: str, path: Path) -> Suite:
    """Validate suite YAML `text` (read from `path`) against the schema and every probe's Params model."""
    root, data = compose_yaml(text, path, "suite file")
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
