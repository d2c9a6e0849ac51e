"""Engine settings shared by every engine implementation."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class EngineConfig(BaseModel):
    """How to run inference. `extra` passes engine-specific arguments through (e.g. vLLM's tensor_parallel_size)."""

    model_config = ConfigDict(extra="forbid")

    device: str = Field(default="auto", description="auto | cpu | cuda | cuda:N")
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = Field(
        default="auto", description="auto = float32 on CPU, bfloat16 on GPUs that support it"
    )
    batch_size: int = Field(default=16, ge=1, description="Requests per forward batch.")
    threads: int | None = Field(
        default=None,
        ge=1,
        description="CPU threads for torch (default: OMP_NUM_THREADS, else the cores other processes leave free, "
        "measured as each variant starts).",
    )
    max_length: int | None = Field(default=None, description="Truncate context to this many tokens (left).")
    trust_remote_code: bool = Field(default=False, description="Allow model repos to run their own code.")
    extra: dict[str, Any] = Field(default_factory=dict, description="Engine-specific pass-through arguments.")
