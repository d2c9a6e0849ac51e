"""Engine settings shared by every engine implementation."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator


class EngineConfig(BaseModel):
    """How to run inference. `extra` passes engine-specific arguments through (e.g. vLLM's tensor_parallel_size)."""

    model_config = ConfigDict(extra="forbid")

    device: str = Field(default="auto", description="auto | cpu | cuda | cuda:N")
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = Field(
        default="auto", description="auto = float32 on CPU, bfloat16 on GPUs that support it"
    )
    batch_size: int = Field(default=16, ge=1, description="Requests per forward batch.")
    threads: int | Literal["auto"] | None = Field(
        default=None,
        description="CPU threads for torch: N; auto = OMP_NUM_THREADS if set, else the cores other processes leave "
        "free, measured as each variant starts (the commands' default); None = leave torch's setting alone.",
    )
    max_length: int | None = Field(default=None, description="Truncate context to this many tokens (left).")
    trust_remote_code: bool = Field(default=False, description="Allow model repos to run their own code.")
    extra: dict[str, Any] = Field(default_factory=dict, description="Engine-specific pass-through arguments.")

    @field_validator("threads", mode="before")
    @classmethod
    def _threads(cls, value: Any) -> Any:
        """`--threads` arrives as text: a positive number or auto."""
        if isinstance(value, str):
            value = value.strip()
            if value.isdigit():
                value = int(value)
            elif value != "auto":
                raise ValueError(f"{value!r} is neither a number of threads nor auto")
        if isinstance(value, int) and value < 1:
            raise ValueError("threads must be at least 1 (or auto)")
        return value
