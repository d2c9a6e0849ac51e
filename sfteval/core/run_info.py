"""What a run was: its variants as probed, its settings and timings, and how its statistics were computed."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from sfteval import __version__
from sfteval.core.variants import Variant

ITEMS_FILE = "items.jsonl"


class Strict(BaseModel):
    """Base of every report model: immutable, unknown keys rejected, no NaN or infinity in float fields."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class VariantInfo(Strict):
    """One probed model as it was when the run saw it."""

    name: str = Field(description="Variant name: base, epoch-1, ..., final.")
    path: str = Field(
        description="Directory of the full weights (kind=full) or of the PEFT adapter (kind=adapter)."
    )
    kind: Literal["full", "adapter"] = Field(
        description="full: complete weights; adapter: PEFT adapter on base_path."
    )
    base_path: str | None = Field(default=None, description="Base model directory an adapter applies to.")
    epoch: float | None = Field(default=None, description="Training epoch of the checkpoint, when known.")
    step: int | None = Field(default=None, description="Optimizer step of the checkpoint, when known.")
    fingerprint: str = Field(
        description="Engine fingerprint (weights + adapter + dtype) that keyed the cache."
    )

    @classmethod
    def from_variant(cls, variant: Variant, fingerprint: str) -> VariantInfo:
        """The report's view of a discovered Variant."""
        return cls(
            name=variant.name,
            path=str(variant.path),
            kind=variant.kind,
            base_path=None if variant.base_path is None else str(variant.base_path),
            epoch=variant.epoch,
            step=variant.step,
            fingerprint=fingerprint,
        )


class RunInfo(Strict):
    """What was run, on what, with which settings, and how long it took."""

    sfteval_version: str = Field(default=__version__, description="sfteval version that produced the run.")
    created_at: datetime = Field(
        default_factory=lambda: datetime.now(timezone.utc), description="When the run started (UTC)."
    )
    engine: str = Field(description="Registered engine name (hf, vllm).")
    engine_config: dict[str, Any] = Field(description="Engine settings (EngineConfig as JSON).")
    ckpt_dir: str = Field(description="The SFT output directory whose variants were probed.")
    suite_name: str = Field(description="Suite name (e.g. quick) or the file's stem.")
    suite_path: str | None = Field(default=None, description="Suite YAML file, when it came from a file.")
    suite: dict[str, Any] = Field(description="The validated suite as JSON, so the run can be reproduced.")
    seed: int = Field(description="Seed of generation and of every resampling in the run.")
    train_template: str | None = Field(
        default=None, description="Template the model was trained with, if known."
    )
    variants: tuple[VariantInfo, ...] = Field(
        description="Probed variants in order: base first, then by epoch."
    )
    timings: dict[str, float] = Field(
        default_factory=dict, description="Wall-clock seconds per phase or variant."
    )
    complete: bool = Field(description="False when the run was interrupted: some results are missing.")
    cache_hits: int = Field(default=0, ge=0, description="Engine requests answered from the cache.")
    cache_misses: int = Field(default=0, ge=0, description="Engine requests computed by an engine.")
    items_file: str = Field(
        default=ITEMS_FILE, description="Item-records file, relative to the run directory."
    )
    shard: str | None = Field(
        default=None,
        pattern=r"^[0-9]+/[0-9]+$",
        description="'i/n' when the run probed only the i-th of n shares of the variants (`--shard`); "
        "None for a whole run or for shards merged by `sfteval report --merge`.",
    )


class StatsSettings(Strict):
    """How intervals and tests were computed, so every number can be reproduced."""

    confidence: float = Field(default=0.95, gt=0, lt=1, description="Confidence level of every interval.")
    alpha: float = Field(
        default=0.05,
        gt=0,
        lt=1,
        description="Family-wise error rate of the Holm correction (one family per probe and reference).",
    )
    n_resamples: int = Field(default=2000, ge=1, description="Bootstrap resamples per comparison.")
    seed: int = Field(default=0, description="Seed of every bootstrap in the report.")
    correction: Literal["holm"] = Field(default="holm", description="Multiple-comparison correction used.")
