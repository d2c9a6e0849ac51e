"""`sfteval_manifest.json`: how a run's checkpoints were made, read later by discovery and the probes."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from sfteval.discovery import MANIFEST_NAME

FORMAT_VERSION: Literal[1] = 1


class _Record(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class DataEntry(_Record):
    """One training file: absolute path, content hash, rows read."""

    path: str
    sha256: str
    rows: int


class CheckpointEntry(_Record):
    """One saved checkpoint; `loss` is the mean training loss over the steps since the previous checkpoint."""

    path: str = Field(description="Directory name relative to the output dir, e.g. checkpoint-8.")
    epoch: float
    step: int
    loss: float | None


class Opening(_Record):
    """A frequent response opening (first 1-5 words) and the share of trained responses that start with it."""

    opening: str
    words: int
    count: int
    share: float


class SamplePair(_Record):
    """A prompt (turns ending with the user turn) and its reference response."""

    id: str
    messages: list[dict[str, str]]
    response: str


class Samples(_Record):
    """Seeded samples of trained pairs and of held-out pairs (never trained), for memorisation probes."""

    train: list[SamplePair]
    heldout: list[SamplePair]


class Holdout(_Record):
    """Rows held out of training: fraction asked for (None = automatic), rows held out, seed."""

    fraction: float | None
    rows: int
    seed: int


class TrainManifest(_Record):
    """The manifest schema (format_version 1); other components read these keys by name."""

    format_version: Literal[1] = FORMAT_VERSION
    sfteval_version: str
    base_model: str
    template: str
    train_on: str
    data: list[DataEntry]
    hyperparameters: dict[str, Any]
    lora: dict[str, Any] | None
    checkpoints: list[CheckpointEntry]
    mask_stats: dict[str, int]
    response_openings: list[Opening]
    labels: list[str]
    samples: Samples
    holdout: Holdout


def write_manifest(out_dir: Path, manifest: TrainManifest) -> Path:
    """Write atomically (temp file + rename) so a reader never sees half a manifest."""
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / MANIFEST_NAME
    handle, staging = tempfile.mkstemp(prefix=".manifest-", suffix=".json", dir=out_dir)
    with os.fdopen(handle, "w", encoding="utf-8") as stream:
        json.dump(manifest.model_dump(mode="json"), stream, indent=2, ensure_ascii=False)
        stream.write("\n")
    os.replace(staging, target)
    return target


def with_checkpoint(manifest: TrainManifest, checkpoint: CheckpointEntry) -> TrainManifest:
    """The manifest with `checkpoint` added (replacing an entry for the same directory)."""
    kept = [entry for entry in manifest.checkpoints if entry.path != checkpoint.path]
    ordered = sorted([*kept, checkpoint], key=lambda entry: entry.step)
    return manifest.model_copy(update={"checkpoints": ordered})
