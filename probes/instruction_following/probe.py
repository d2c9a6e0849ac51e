"""The instruction_following probe: IFEval-style verifiable instructions, strict and loose, per prompt.

One generation request per (prompt, serving template); one item record per response with IFEval's four numbers at
the prompt's level (prompt_strict/prompt_loose: all instructions followed; instruction_strict/instruction_loose:
the fraction followed) and each instruction's verdicts in `extra`. `summarize` adds IFEval's pooled
instruction-level accuracy and per-family accuracy, with intervals clustered by the records' cluster ids.
Items cluster by base task for our composed set (prompts built from one task are correlated) and by prompt for an
IFEval-format file.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import Field, ValidationInfo, field_validator
from sfteval.probes.base import (
    EngineResult,
    MetricSpec,
    PlannedRequest,
    Probe,
    ProbeContext,
    ProbeParams,
    register_probe,
)

from sfteval import stats
from sfteval.engines.base import Generation, GenerationRequest
from sfteval.records import ItemRecord
from sfteval.templates import Message, get_template

from .evaluate import PromptEvaluation, evaluate_prompt
from .prompts import IFPrompt, load_prompts
from .text import load_language_profiles


class InstructionFollowingParams(ProbeParams):
    """Parameters of the instruction_following probe (suite YAML)."""

    prompts: str | None = Field(
        default=None,
        description="IFEval-format input_data.jsonl (relative to the suite file); None = sfteval's composed set.",
    )
    limit: int | None = Field(default=None, ge=1, description="At most this many prompts (a seeded sample).")
    templates: tuple[str, ...] | None = Field(
        default=None,
        min_length=1,
        description="Serving templates; None = the training template, else native (or alpaca without one).",
    )
    max_new_tokens: int | None = Field(
        default=None, ge=1, description="None = the suite's generation setting."
    )

    @field_validator("templates")
    @classmethod
    def _known_templates(cls, templates: tuple[str, ...] | None) -> tuple[str, ...] | None:
        from sfteval.templates import check_template_names

        check_template_names(templates)
        return templates

    @field_validator("prompts")
    @classmethod
    def _prompt_file_exists(cls, prompts: str | None, info: ValidationInfo) -> str | None:
        suite_dir = (info.context or {}).get("suite_dir")
        if prompts is not None and suite_dir is not None and not resolve_path(prompts, suite_dir).is_file():
            raise ValueError(f"prompt file {resolve_path(prompts, suite_dir)} not found")
        return prompts


def resolve_path(path: str, suite_dir: Path | None) -> Path:
    """A data path from a suite: absolute as given, relative to the suite file's directory otherwise."""
    candidate = Path(path).expanduser()
    return candidate if candidate.is_absolute() or suite_dir is None else Path(suite_dir) / candidate


@register_probe
class InstructionFollowingProbe(Probe):
    """Does the model follow verifiable instructions (IFEval's 25 types), strictly and loosely?"""

    name = "instruction_following"
    version = 1
    Params = InstructionFollowingParams
    metrics = (
        MetricSpec("prompt_loose", "all of the prompt's instructions followed (loose check)", binary=True,
                   headline=True),
        MetricSpec("prompt_strict", "all of the prompt's instructions followed (strict check)", binary=True),
        MetricSpec("instruction_loose", "fraction of the prompt's instructions followed (loose check)"),
        MetricSpec("instruction_strict", "fraction of the prompt's instructions followed (strict check)"),
        MetricSpec("instruction_loose_pooled", "instructions followed / instructions, over all prompts (loose)"),
        MetricSpec("instruction_strict_pooled", "instructions followed / instructions, over all prompts (strict)"),
    )  # fmt: skip

    params: InstructionFollowingParams

    def plan(self, context: ProbeContext) -> list[PlannedRequest]:
        """One greedy (or suite-temperature) generation per prompt and serving template."""
        load_language_profiles()  # before any generation, so no Ctrl-C can land in langdetect's own loader
        prompts = self.prompts(context)
        max_new_tokens = self.params.max_new_tokens or context.max_new_tokens
        planned = []
        for name in self.templates(context):
            template = get_template(name, context.tokenizer)
            for prompt in prompts:
                request = GenerationRequest(
                    prompt=template.render_prompt([Message("user", prompt.prompt)]),
                    max_new_tokens=max_new_tokens,
                    temperature=context.temperature,
                    seed=context.seed,
                    stop=template.stop_strings,
                )
                planned.append(PlannedRequest(prompt.item_id, prompt.cluster_id, name, request))
        return planned

    def records(
        self, context: ProbeContext, planned: Sequence[PlannedRequest], results: Sequence[EngineResult]
    ) -> list[ItemRecord]:
        """Check every response against its prompt's instructions."""
        by_id = {prompt.item_id: prompt for prompt in self.prompts(context)}
        records = []
        for request, result in zip(planned, results, strict=True):
            if not isinstance(result, Generation) or not isinstance(request.request, GenerationRequest):
                raise TypeError(f"{self.name} plans generations only, got {type(result).__name__}")
            evaluation = evaluate_prompt(by_id[request.item_id], result.text)
            records.append(
                self.record(
                    context,
                    request,
                    _metrics(evaluation),
                    prompt=request.request.prompt,
                    output=result.text,
                    extra={
                        "instructions": _verdicts(evaluation),
                        "finish_reason": result.finish_reason,
                        "num_tokens": result.num_tokens,
                    },
                )
            )
        return records

    def summarize(self, records: Sequence[ItemRecord]) -> dict[str, Any]:
        """IFEval's instruction-level accuracy (pooled over instructions) and loose accuracy per family."""
        strict, loose, families, clusters = [], [], [], []
        for record in records:
            for verdict in record.extra["instructions"]:
                strict.append(float(verdict["strict"]))
                loose.append(float(verdict["loose"]))
                families.append(verdict["id"].split(":", 1)[0])
                clusters.append(record.cluster_id)
        if not loose:
            return {}
        summary: dict[str, Any] = {
            "instruction_loose_pooled": _accuracy(loose, clusters),
            "instruction_strict_pooled": _accuracy(strict, clusters),
        }
        for family in sorted(set(families)):
            chosen = [index for index, name in enumerate(families) if name == family]
            summary[f"family:{family}"] = _accuracy([loose[i] for i in chosen], [clusters[i] for i in chosen])
        return summary

    def prompts(self, context: ProbeContext) -> list[IFPrompt]:
        """The prompt set, cut to `limit` prompts by a seeded sample that keeps the file's order."""
        source = resolve_path(self.params.prompts, context.suite_dir) if self.params.prompts else None
        prompts = load_prompts(str(source) if source is not None else None)
        limit = self.params.limit
        if limit is None or limit >= len(prompts):
            return prompts
        chosen = sorted(random.Random(context.seed).sample(range(len(prompts)), limit))
        return [prompts[index] for index in chosen]

    def templates(self, context: ProbeContext) -> tuple[str, ...]:
        """Serving templates: as configured, else the training template, else native (alpaca without one)."""
        if self.params.templates:
            return self.params.templates
        if context.train_template:
            return (context.train_template,)
        has_chat_template = bool(getattr(context.tokenizer, "chat_template", None))
        return ("native",) if has_chat_template else ("alpaca",)


def _accuracy(verdicts: list[float], clusters: list[str]) -> stats.Estimate:
    """Share of instructions followed: a clustered interval when prompts share clusters, else Wilson's."""
    grouped = len(set(clusters)) < len(clusters)
    return stats.proportion(verdicts, clusters if grouped else None)


def _metrics(evaluation: PromptEvaluation) -> dict[str, float | int | bool | None]:
    return {
        "prompt_loose": int(evaluation.prompt_loose),
        "prompt_strict": int(evaluation.prompt_strict),
        "instruction_loose": sum(evaluation.loose) / len(evaluation.loose),
        "instruction_strict": sum(evaluation.strict) / len(evaluation.strict),
    }


def _verdicts(evaluation: PromptEvaluation) -> list[dict[str, Any]]:
    return [
        {"id": instruction_id, "strict": strict, "loose": loose}
        for instruction_id, strict, loose in zip(
            evaluation.instruction_ids, evaluation.strict, evaluation.loose, strict=True
        )
    ]
