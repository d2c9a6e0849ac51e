"""Lint settings: the mask-deciding subset of the training config (a training YAML works as --config)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from sfteval.core.errors import UserError
from sfteval.trainer.config import TrainConfig, read_yaml_config, validate_config


class LintConfig(BaseModel):
    """What decides how rows are rendered, tokenised and masked."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    data: list[Path] = Field(min_length=1)
    model: Path | None = None
    template: str | None = None
    train_on: Literal["all", "last"] = "all"
    max_seq_len: int = Field(2048, ge=8)
    truncation: Literal["drop", "keep_start"] = "drop"
    mask_terminator: bool = False


def load_lint_config(config_file: Path | None, flags: dict[str, Any]) -> LintConfig:
    """Merge a (training) YAML config with flags; training-only keys in the YAML are ignored, unknown ones rejected."""
    values: dict[str, Any] = read_yaml_config(config_file) if config_file is not None else {}
    unknown = sorted(set(values) - set(TrainConfig.model_fields))
    if unknown:
        raise UserError(f"{config_file}: {unknown[0].replace('_', '-')}: unknown setting")
    values = {key: value for key, value in values.items() if key in LintConfig.model_fields}
    values.update({key: value for key, value in flags.items() if value is not None})
    return validate_config(LintConfig, values, config_file)
