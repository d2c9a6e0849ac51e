"""The instruction_following probe: IFEval-style verifiable instructions, strict and loose, per prompt.

One generation request per (prompt, serving template); one item record per response with IFEval's four numbers at
the prompt's level (prompt_strict/prompt_loose: all instructions followed; instruction_strict/instruction_loose:
the fraction followed) and each instruction's verdicts in `extra`. `summarize` adds IFEval's pooled
instruction-level accuracy and per-family accuracy, with intervals clustered by the records' cluster ids.
Items cluster by base task for our composed set (prompts built from one task are correlated) and by prompt for an
IFEval-format file.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pydantic import Field

from sfteval import stats
from sfteval.core.metrics import MetricSpec
from sfteval.core.records import ItemRecord
from sfteval.core.requests import EngineResult, Generation, GenerationRequest
from sfteval.core.shipped import resolve_data_path
from sfteval.probes.base import GenerationParams, PlannedRequest, Probe, ProbeContext, register_probe
from sfteval.probes.shared.loaders import DataFile, seeded_sample
from sfteval.probes.shared.params import ServingParams, serving_templates
from sfteval.templates import Message, get_template

from .evaluate import PromptEvaluation, evaluate_prompt
from .prompts import IFPrompt, load_prompts
from .text import load_language_profiles


class InstructionFollowingParams(GenerationParams, ServingParams):
    """Parameters of the instruction_following probe (suite YAML)."""

    prompts: DataFile = Field(
        default=None,
        description="IFEval-format input_data.jsonl (relative to the suite file); None = sfteval's composed set.",
    )


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
        MetricSpec("instruction_loose", "fraction of the prompt's instructions followed (loose check)",
                   fraction=True),
        MetricSpec("instruction_strict", "fraction of the prompt's instructions followed (strict check)",
                   fraction=True),
        MetricSpec("instruction_loose_pooled", "instructions followed / instructions, over all prompts (loose)"),
        MetricSpec("instruction_strict_pooled", "instructions followed / instructions, over all prompts (strict)"),
    )  # fmt: skip

    params: InstructionFollowingParams

    def plan(self, context: ProbeContext) -> list[PlannedRequest]:
        """One greedy (or suite-temperature) generation per prompt and serving template."""
        load_language_profiles()  # before any generation, so no Ctrl-C can land in langdetect's own loader
        prompts = self.prompts(context)
        planned = []
        for name in serving_templates(self.params.templates, context):
            template = get_template(name, context.tokenizer)
            for prompt in prompts:
                request = self.generation_request(
                    template.render_prompt([Message("user", prompt.prompt)]), context, template.stop_strings
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
        source = resolve_data_path(self.params.prompts, context.suite_dir) if self.params.prompts else None
        prompts = load_prompts(str(source) if source is not None else None)
        return seeded_sample(prompts, self.params.limit, context.seed)


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
