"""The probe protocol: suite data -> engine requests -> item records -> per-variant summaries.

A probe never loads a model and never compares variants (the stats layer does that on records paired by item_id).
The runner calls, for each variant: `plan(context)` -> requests; executes them on the variant's engine (through the
cache); then `records(context, planned, results)`. A probe that also needs the *base* model to score something the
variant produced (token shift) sets `needs_base_scoring = True` and implements `base_requests` / `finish`: the
runner executes those requests on the base engine after the variant pass.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field

from sfteval.core.generation import (
    DEFAULT_MAX_NEW_TOKENS,
    GenerationConfig,
    GenerationOverrides,
    GenerationPolicy,
    GenerationSettings,
    resolve_generation,
)
from sfteval.core.metrics import MetricSpec
from sfteval.core.records import ItemRecord
from sfteval.core.registry import Registry
from sfteval.core.requests import EngineRequest, EngineResult, GenerationRequest
from sfteval.core.results import Finding, ProbeSlice, RunRelativeMeasure
from sfteval.core.variants import Variant


@dataclass(frozen=True)
class PlannedRequest:
    """One engine request a probe wants, tagged with the item it belongs to."""

    item_id: str
    cluster_id: str
    template: str
    request: EngineRequest
    tag: str = ""


@dataclass(frozen=True)
class ProbeContext:
    """What a probe may know about the variant it plans for (never the model itself)."""

    variant: Variant
    tokenizer: Any
    manifest: dict[str, Any] | None = None
    train_template: str | None = None
    seed: int = 0
    suite_dir: Path | None = None


class ProbeParams(BaseModel):
    """Base class for a probe's parameters (from the suite YAML); unknown keys are rejected."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class GenerationParams(ProbeParams):
    """The one generation parameter a suite may set per probe (see `sfteval.core.generation` for the layers)."""

    max_new_tokens: int | None = Field(
        default=None,
        ge=1,
        description="Tokens generated per request; None = the probe's own rule, else the suite's generation block.",
    )


class Probe(ABC):
    """A diagnostic. Subclasses set `name`, `version`, `metrics`, `Params`, and implement plan/records."""

    name: ClassVar[str]
    version: ClassVar[int] = 1
    metrics: ClassVar[tuple[MetricSpec, ...]] = ()
    Params: ClassVar[type[ProbeParams]] = ProbeParams
    needs_base_scoring: ClassVar[bool] = False
    generation_policy: ClassVar[GenerationPolicy] = GenerationPolicy()
    run_relative_metrics: ClassVar[tuple[str, ...]] = ()
    """Metrics measured against something the run itself defined (spurious_prefix's candidate prefixes): two runs
    that defined it differently cannot compare them directly (`sfteval diff` uses `run_relative_measures`)."""

    def __init__(
        self, params: ProbeParams | None = None, generation: GenerationSettings | None = None
    ) -> None:
        self.params = params if params is not None else self.Params()
        self.generation = generation or self.generation_settings(self.params, GenerationConfig())

    @classmethod
    def generation_settings(
        cls, params: ProbeParams, suite: GenerationConfig, overrides: GenerationOverrides | None = None
    ) -> GenerationSettings:
        """The settings this probe generates with under a suite's defaults and command-line overrides."""
        requested = params.max_new_tokens if isinstance(params, GenerationParams) else None
        return resolve_generation(suite, cls.generation_policy, requested, overrides)

    def generation_request(
        self, prompt: str, context: ProbeContext, stop: tuple[str, ...], max_new_tokens: int | None = None
    ) -> GenerationRequest:
        """A request to continue `prompt` with this probe's generation settings (a probe that sizes generations
        from its references passes `max_new_tokens` when the settings leave it open)."""
        return GenerationRequest(
            prompt=prompt,
            max_new_tokens=self.generation.max_new_tokens or max_new_tokens or DEFAULT_MAX_NEW_TOKENS,
            temperature=self.generation.temperature,
            seed=context.seed,
            stop=stop,
        )

    @abstractmethod
    def plan(self, context: ProbeContext) -> list[PlannedRequest]:
        """Engine requests for one variant."""

    @abstractmethod
    def records(
        self, context: ProbeContext, planned: Sequence[PlannedRequest], results: Sequence[EngineResult]
    ) -> list[ItemRecord]:
        """Turn results (aligned with `planned`) into item records."""

    def summarize(self, records: Sequence[ItemRecord]) -> dict[str, float]:
        """Probe-level metrics of one variant that are not per-item means (e.g. entropy); default none."""
        return {}

    def base_requests(self, context: ProbeContext, records: Sequence[ItemRecord]) -> list[PlannedRequest]:
        """Requests to run on the base engine for this variant's records (only if needs_base_scoring)."""
        return []

    def finish(
        self,
        context: ProbeContext,
        records: Sequence[ItemRecord],
        planned: Sequence[PlannedRequest],
        results: Sequence[EngineResult],
    ) -> list[ItemRecord]:
        """Complete records with the base engine's results (only if needs_base_scoring)."""
        return list(records)

    def findings(self, report_slice: ProbeSlice) -> list[Finding]:
        """Sentences about this probe's results beyond the report's generic ones (e.g. "epoch-3 opens 80% of
        answers with …"); default none."""
        return []

    @classmethod
    def run_relative_measures(cls, records: Sequence[ItemRecord]) -> tuple[RunRelativeMeasure, ...]:
        """What one run's records define relative to themselves, scorable on any run's records (e.g. each
        candidate opening); default none."""
        return ()

    def record(
        self, context: ProbeContext, planned: PlannedRequest, metrics: dict[str, Any], **fields: Any
    ) -> ItemRecord:
        """Build an ItemRecord stamped with this probe's name, version and parameters."""
        return ItemRecord(
            probe=self.name,
            probe_version=self.version,
            params=self.params.model_dump(mode="json"),
            variant=context.variant.name,
            template=planned.template,
            item_id=planned.item_id,
            cluster_id=planned.cluster_id,
            metrics=metrics,
            **fields,
        )


PROBES: Registry[type[Probe]] = Registry("probe")


def register_probe(cls: type[Probe]) -> type[Probe]:
    """Class decorator: make a probe nameable from suites."""
    PROBES.add(cls.name, cls)
    return cls
