"""Parameters shared by the probes that serve prompts under templates: how many items, and under which templates."""

from __future__ import annotations

from pydantic import Field, field_validator

from sfteval.probes.base import ProbeContext, ProbeParams
from sfteval.probes.shared.loaders import (
    OFF_TASK_PROMPTS,
    DataFile,
    PromptItem,
    data_path,
    load_prompts,
    seeded_sample,
)


class ServingParams(ProbeParams):
    """Parameters every probe of this family takes: how many items, and under which serving templates."""

    limit: int | None = Field(default=None, ge=1, description="At most this many items (a seeded sample).")
    templates: tuple[str, ...] | None = Field(
        default=None,
        min_length=1,
        description="Serving templates; None = the training template, else native (or alpaca without one).",
    )

    @field_validator("templates")
    @classmethod
    def _known_templates(cls, templates: tuple[str, ...] | None) -> tuple[str, ...] | None:
        from sfteval.templates import check_template_names

        check_template_names(templates)
        return templates


def serving_templates(configured: tuple[str, ...] | None, context: ProbeContext) -> tuple[str, ...]:
    """As configured, else the training template, else native (alpaca when the tokenizer has no chat template)."""
    if configured:
        return configured
    if context.train_template:
        return (context.train_template,)
    has_chat_template = bool(getattr(context.tokenizer, "chat_template", None))
    return ("native",) if has_chat_template else ("alpaca",)


class OffTaskParams(ServingParams):
    """Serving parameters of a probe that asks off-task prompts (spurious_prefix, token_shift)."""

    prompts: DataFile = Field(
        default=None, description="Off-task prompts JSONL (id, prompt, kind); None = sfteval's set."
    )

    def sampled_prompts(self, context: ProbeContext) -> list[PromptItem]:
        """The off-task prompts, cut to `limit` by a seeded sample."""
        path = data_path(self.prompts, context.suite_dir, OFF_TASK_PROMPTS)
        return seeded_sample(load_prompts(path), self.limit, context.seed)
