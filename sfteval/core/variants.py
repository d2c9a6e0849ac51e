"""Variant: one model to probe (base, an epoch checkpoint, the final model)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

VariantKind = Literal["full", "adapter"]

BASE = "base"
"""Name of the base variant: the model every checkpoint is compared with."""


@dataclass(frozen=True)
class Variant:
    """A model to probe. `path` holds full weights (kind=full) or a PEFT adapter (kind=adapter, needs `base_path`)."""

    name: str
    path: Path
    kind: VariantKind = "full"
    base_path: Path | None = None
    epoch: float | None = None
    step: int | None = None

    @property
    def is_base(self) -> bool:
        return self.name == BASE
