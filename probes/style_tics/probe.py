"""The style_tics probe: did SFT on distilled data teach the model a stronger model's stylistic tics?

Models trained on another model's outputs inherit its "stylistic tics that are difficult to fine-tune away" (the
seed article). The probe asks free-form prompts (explanation, advice, creative, summary, how-to, opinion) and, per
response:

* tic_rate: hits of the tic lexicon (openers such as "Certainly!", closers such as "I hope this helps", hedges,
  "delve", "tapestry", "not X, but Y" contrasts) per 1,000 words, slop-score's scale; paired with the base per
  prompt by the report;
* tic_any: the response holds at least one tic.

Its findings name the learned phrases: 1-4-grams, opening and closing sentences the variant uses far more than its
base on the same prompts (rate ratio with an interval, sfteval.probes.style_tics.phrases), each with the share of
the training responses that hold it, from `train_data` or the manifest's sample of trained pairs. Each record keeps
the training shares of the phrases in its own output, so a report rebuilt later still says where a tic came from.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from pydantic import Field

from sfteval.core.errors import UserError
from sfteval.core.generation import GenerationSettings
from sfteval.core.jsonl import read_jsonl
from sfteval.core.records import ItemRecord
from sfteval.core.requests import EngineResult, Generation, GenerationRequest
from sfteval.core.results import Finding, ProbeSlice
from sfteval.probes.base import (
    GenerationParams,
    PlannedRequest,
    Probe,
    ProbeContext,
    ProbeParams,
    register_probe,
)
from sfteval.probes.shared.loaders import (
    DataFile,
    PromptItem,
    data_path,
    load_prompts,
    manifest_pairs,
    seeded_sample,
)
from sfteval.probes.shared.params import ServingParams, serving_templates
from sfteval.probes.style_tics.findings import phrase_findings, tic_findings
from sfteval.probes.style_tics.lexicon import DATA_DIR, LEXICON, Entry, count_tics, load_lexicon
from sfteval.probes.style_tics.metrics import METRICS, NAME
from sfteval.probes.style_tics.phrases import TRAIN_SHARE_FLOOR, present_shares, training_shares

PROMPTS = DATA_DIR / "prompts.jsonl"


class StyleTicsParams(GenerationParams, ServingParams):
    """Parameters of the style_tics probe (suite YAML): limit, templates and max_new_tokens, and its data files."""

    prompts: DataFile = Field(
        default=None, description="Free-form prompts JSONL (id, prompt, kind); None = sfteval's set."
    )
    lexicon: DataFile = Field(
        default=None, description="Tic lexicon JSONL (id, kind, text, pattern?); None = sfteval's list."
    )
    train_data: DataFile = Field(
        default=None,
        description="Training JSONL (response, output, completion or messages) to trace tics to; "
        "None = the manifest's sample of trained pairs.",
    )
    min_count: int = Field(default=3, ge=1, description="Responses a learned phrase must occur in.")
    top_phrases: int = Field(default=3, ge=1, description="Learned phrases named in a finding.")


@register_probe
class StyleTicsProbe(Probe):
    """Does the model use known distilled-data phrases more than its base, and which phrases did it learn?"""

    name = NAME
    version = 1
    Params = StyleTicsParams
    metrics = METRICS

    params: StyleTicsParams

    def __init__(
        self, params: ProbeParams | None = None, generation: GenerationSettings | None = None
    ) -> None:
        super().__init__(params, generation)
        self._training: dict[tuple[str | None, str | None], tuple[int, dict[str, float]]] = {}

    def prompts(self, context: ProbeContext) -> list[PromptItem]:
        """The free-form prompts, cut to `limit` by a seeded sample."""
        path = data_path(self.params.prompts, context.suite_dir, PROMPTS)
        return seeded_sample(load_prompts(path), self.params.limit, context.seed)

    def lexicon(self, context: ProbeContext) -> tuple[Entry, ...]:
        return load_lexicon(data_path(self.params.lexicon, context.suite_dir, LEXICON))

    def plan(self, context: ProbeContext) -> list[PlannedRequest]:
        """One generation per prompt and serving template (the suite's generation settings)."""
        from sfteval.templates import Message, get_template

        planned = []
        for name in serving_templates(self.params.templates, context):
            template = get_template(name, context.tokenizer)
            for item in self.prompts(context):
                prompt = template.render_prompt([Message("user", item.prompt)])
                request = self.generation_request(prompt, context, template.stop_strings)
                planned.append(PlannedRequest(item.id, item.id, name, request, tag="generate"))
        return planned

    def records(
        self, context: ProbeContext, planned: Sequence[PlannedRequest], results: Sequence[EngineResult]
    ) -> list[ItemRecord]:
        """Per response: tic counts and rate, and the training shares of its phrases."""
        kinds = {item.id: item.kind for item in self.prompts(context)}
        entries = self.lexicon(context)
        trained, shares = self._training_shares(context)
        records = []
        for request, result in zip(planned, results, strict=True):
            if not isinstance(result, Generation) or not isinstance(request.request, GenerationRequest):
                raise TypeError(f"{NAME} got an unexpected result {type(result).__name__}")
            tics = count_tics(result.text, entries)
            metrics = {"tic_rate": tics.rate, "tic_any": int(tics.total > 0)}
            extra = {
                "kind": kinds.get(request.item_id, ""),
                "tics": tics.hits,
                "words": tics.words,
                "train_responses": trained,
                "train_shares": present_shares(result.text, shares, TRAIN_SHARE_FLOOR),
                "finish_reason": result.finish_reason,
            }
            records.append(
                self.record(context, request, metrics, prompt=request.request.prompt, output=result.text,
                            extra=extra)
            )  # fmt: skip
        return records

    def findings(self, report_slice: ProbeSlice) -> list[Finding]:
        """A rising tic rate (naming the tics) and each variant's learned phrases (with their training shares)."""
        return tic_findings(report_slice) + phrase_findings(
            report_slice, self.params.min_count, self.params.top_phrases
        )

    def _training_shares(self, context: ProbeContext) -> tuple[int, dict[str, float]]:
        """(training responses, share of them holding each phrase), read once per data source."""
        key = (self.params.train_data, None if context.suite_dir is None else str(context.suite_dir))
        if key not in self._training:
            responses = training_responses(self.params.train_data, context.suite_dir, context.manifest)
            self._training[key] = (len(responses), training_shares(responses))
        return self._training[key]


def training_responses(
    train_data: str | None, suite_dir: Path | None, manifest: Mapping[str, Any] | None
) -> list[str]:
    """The responses of `train_data` (relative to the suite), else of the manifest's trained sample, else none."""
    if train_data is None:
        return [pair.response for pair in manifest_pairs(manifest, "train")]
    return [
        _response(row, where)
        for where, row in read_jsonl(data_path(train_data, suite_dir, PROMPTS), "training rows")
    ]


def _response(row: Mapping[str, Any], where: str) -> str:
    """A training row's response: `response`, `output` (alpaca), `completion`, or the last assistant message."""
    for key in ("response", "output", "completion"):
        if isinstance(row.get(key), str):
            return str(row[key])
    messages = row.get("messages")
    if isinstance(messages, list):
        replies = [m.get("content") for m in messages if isinstance(m, dict) and m.get("role") == "assistant"]
        if replies and isinstance(replies[-1], str):
            return replies[-1]
    raise UserError(
        f"{where}: a training row needs 'response', 'output', 'completion' or assistant 'messages'"
    )
