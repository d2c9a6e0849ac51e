"""The one training configuration: built from a YAML file and/or CLI flags (a flag given on the CLI always wins)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from sfteval.core.errors import UserError

DEFAULT_FULL_LR = 2e-5
DEFAULT_LORA_LR = 2e-4
# Every linear projection of a Llama/Mistral/Qwen-style attention and MLP block.
DEFAULT_LORA_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
AUTO_HOLDOUT_MIN_ROWS = 40
AUTO_HOLDOUT_FRACTION = 0.1
HOLDOUT_CAP = 200


class TrainConfig(BaseModel):
    """Everything that decides a training run; `None` means "resolve from the model/data at run time"."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    data: list[Path] = Field(min_length=1, description="Training files (JSONL, JSON or Parquet).")
    out: Path = Field(description="Output directory: checkpoints, manifest.")
    model: Path | None = Field(None, description="Base model dir; None = the embedded default model.")
    template: str | None = Field(None, description="Template name; None = native if the tokenizer has one.")
    train_on: Literal["all", "last"] = Field("all", description="Train every assistant turn or the last.")
    epochs: int = Field(3, ge=1)
    lr: float | None = Field(None, gt=0, description="Learning rate; None = 2e-5 full, 2e-4 LoRA.")
    batch_size: int = Field(8, ge=1, description="Rows per device per micro-batch.")
    grad_accum: int = Field(1, ge=1, description="Micro-batches per optimizer step.")
    max_seq_len: int = Field(2048, ge=8)
    truncation: Literal["drop", "keep_start"] = Field("drop", description="What to do with overlong rows.")
    lora: bool = False
    lora_r: int = Field(16, ge=1)
    lora_alpha: int = Field(32, ge=1)
    lora_dropout: float = Field(0.05, ge=0, lt=1)
    lora_targets: list[str] | None = Field(
        None, description="Module names; None = all attention/MLP projections."
    )
    seed: int = 0
    holdout: float | None = Field(
        None, ge=0, lt=1, description="Fraction of rows held out (never trained); None = 0.1 when >= 40 rows."
    )
    warmup_ratio: float = Field(0.0, ge=0, lt=1)
    weight_decay: float = Field(0.0, ge=0)
    scheduler: Literal["linear", "cosine", "constant"] = "linear"
    precision: Literal["auto", "fp32", "bf16"] = Field(
        "auto", description="auto = bf16 where the GPU or CPU supports it, else fp32."
    )
    mask_terminator: bool = Field(
        False, description="Defect switch for validation: leave the end-of-turn token untrained."
    )
    max_steps: int | None = Field(
        None, ge=1, description="Stop after this many optimizer steps (benchmarks)."
    )
    sample_size: int = Field(200, ge=0, description="Prompt/response pairs sampled into the manifest.")

    @field_validator("lora_targets")
    @classmethod
    def _non_empty_targets(cls, targets: list[str] | None) -> list[str] | None:
        if targets is not None and not [target for target in targets if target.strip()]:
            raise ValueError("lora_targets needs at least one module name")
        return targets

    @property
    def learning_rate(self) -> float:
        """The learning rate actually used."""
        if self.lr is not None:
            return self.lr
        return DEFAULT_LORA_LR if self.lora else DEFAULT_FULL_LR

    @property
    def lora_modules(self) -> list[str]:
        """The LoRA target module names actually used."""
        return list(self.lora_targets) if self.lora_targets else list(DEFAULT_LORA_TARGETS)

    def holdout_rows(self, rows: int) -> int:
        """How many of `rows` to hold out: explicit fraction, else 10% from 40 rows up; at most 200."""
        fraction = self.holdout
        if fraction is None:
            fraction = AUTO_HOLDOUT_FRACTION if rows >= AUTO_HOLDOUT_MIN_ROWS else 0.0
        wanted = round(rows * fraction)
        return min(wanted, HOLDOUT_CAP, max(rows - 1, 0))


def load_train_config(config_file: Path | None, flags: dict[str, Any]) -> TrainConfig:
    """Merge a YAML config with CLI flags; a flag counts as given when it is not None (so False wins)."""
    values: dict[str, Any] = read_yaml_config(config_file) if config_file is not None else {}
    values.update({key: value for key, value in flags.items() if value is not None})
    return validate_config(TrainConfig, values, config_file)


def read_yaml_config(path: Path) -> dict[str, Any]:
    """A YAML mapping of config keys (dashes or underscores); relative paths are taken from the file's directory."""
    import yaml

    try:
        loaded = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UserError(f"{path}: config file not found") from None
    except (OSError, UnicodeDecodeError) as error:  # a directory, unreadable, not UTF-8
        raise UserError(f"{path}: cannot read the config file ({error})") from None
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f":{mark.line + 1}" if mark is not None else ""
        raise UserError(f"{path}{where}: invalid YAML ({getattr(error, 'problem', None) or error})") from None
    if loaded is None:
        return {}
    if not isinstance(loaded, dict):
        raise UserError(f"{path}: a config file must be a YAML mapping of settings")
    values = {str(key).replace("-", "_"): value for key, value in loaded.items()}
    if isinstance(values.get("data"), str):
        values["data"] = [values["data"]]
    return _relative_to(Path(path).parent, values)


def _relative_to(base: Path, values: dict[str, Any]) -> dict[str, Any]:
    """Relative paths in a config file mean relative to the file, not to the working directory."""
    resolved = dict(values)
    for key in ("model", "out"):
        if isinstance(values.get(key), str):
            resolved[key] = str(base / Path(values[key]).expanduser())
    if isinstance(values.get("data"), list):
        resolved["data"] = [
            str(base / Path(item).expanduser()) if isinstance(item, str) else item for item in values["data"]
        ]
    return resolved


def validate_config(model: type[BaseModel], values: dict[str, Any], config_file: Path | None) -> Any:
    """Build `model` from `values`, turning the first validation error into a one-line UserError."""
    try:
        return model.model_validate(values)
    except ValidationError as error:
        first = error.errors()[0]
        key = ".".join(str(part) for part in first["loc"]) or "config"
        source = f"{config_file}: " if config_file is not None else ""
        message = "unknown setting" if first["type"] == "extra_forbidden" else first["msg"]
        raise UserError(f"{source}{key.replace('_', '-')}: {message}") from None
