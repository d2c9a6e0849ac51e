"""Item records: one per (probe, variant, template, item). Probes write them; the stats layer pairs them."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

RECORD_VERSION = 1


class ItemRecord(BaseModel):
    """The outcome of one probe item on one variant, under one serving template."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    version: int = Field(default=RECORD_VERSION, description="Schema version of this record.")
    probe: str = Field(description="Registered name of the probe that produced the record.")
    probe_version: int = Field(default=1, description="Version of the probe's code/metric definitions.")
    params: dict[str, Any] = Field(
        default_factory=dict, description="Probe parameters the record was made with."
    )
    variant: str = Field(description="Variant name (base, epoch-1, ..., final).")
    template: str = Field(description="Serving template used to render the prompt ('-' when not templated).")
    item_id: str = Field(description="Stable id of the item; records of two variants pair on it.")
    cluster_id: str = Field(description="Items sharing a cluster are resampled together by the bootstrap.")
    metrics: dict[str, float | int | bool | None] = Field(description="Per-item metric values.")
    prompt: str | None = Field(default=None, description="The rendered prompt sent to the engine.")
    output: str | None = Field(default=None, description="The model output (untrusted text), if generated.")
    extra: dict[str, Any] = Field(default_factory=dict, description="Probe-specific details (JSON-safe).")
