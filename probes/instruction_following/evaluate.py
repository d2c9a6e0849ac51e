"""IFEval's strict and loose verdicts for one response, and prompt-, instruction-, family- and id-level accuracy.

Strict: an instruction is followed iff the response is not blank and its check passes. Loose (an upper bound that
forgives markdown and intro/outro lines): iff any of 8 variants passes, {response, response without "*"} x {as is,
first line removed, last line removed, both removed} (Zhou et al. 2023, `evaluation_lib.py`).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from .checkers import get_checker
from .prompts import IFPrompt


def response_variants(response: str) -> tuple[str, ...]:
    """The 8 responses loose scoring tries; the first is the response itself."""
    lines = response.split("\n")
    cut = (
        response,
        "\n".join(lines[1:]).strip(),
        "\n".join(lines[:-1]).strip(),
        "\n".join(lines[1:-1]).strip(),
    )
    return (*cut, *(variant.replace("*", "") for variant in cut))


@dataclass(frozen=True)
class PromptEvaluation:
    """Per-instruction strict and loose verdicts for one prompt's response."""

    key: int | str
    instruction_ids: tuple[str, ...]
    strict: tuple[bool, ...]
    loose: tuple[bool, ...]

    @property
    def prompt_strict(self) -> bool:
        return all(self.strict)

    @property
    def prompt_loose(self) -> bool:
        return all(self.loose)


def _follows(verify: Callable[..., bool], values: dict[str, object], response: str) -> bool:
    return bool(response.strip()) and bool(verify(response, **values))


def evaluate_prompt(prompt: IFPrompt, response: str) -> PromptEvaluation:
    """Strict and loose verdict for every instruction of `prompt` on `response`."""
    variants = response_variants(response)
    strict: list[bool] = []
    loose: list[bool] = []
    for instruction_id, kwargs in zip(prompt.instruction_id_list, prompt.kwargs, strict=True):
        checker = get_checker(instruction_id)
        values = checker.normalize(kwargs)
        followed = _follows(checker.verify, values, response)
        strict.append(followed)
        loose.append(followed or any(_follows(checker.verify, values, variant) for variant in variants[1:]))
    return PromptEvaluation(prompt.key, prompt.instruction_id_list, tuple(strict), tuple(loose))


@dataclass(frozen=True)
class Accuracy:
    """IFEval's four headline numbers: prompt-level and (pooled) instruction-level, strict and loose."""

    prompt_strict: float
    prompt_loose: float
    instruction_strict: float
    instruction_loose: float
    prompts: int
    instructions: int


@dataclass(frozen=True)
class GroupAccuracy:
    """Instruction-level strict and loose accuracy over one family or instruction id."""

    strict: float
    loose: float
    instructions: int


def accuracy(evaluations: Sequence[PromptEvaluation]) -> Accuracy:
    """Prompt-level: share of prompts with all instructions followed; instruction-level: pooled over prompts."""
    if not evaluations:
        raise ValueError("accuracy of zero evaluations is undefined")
    strict = [verdict for evaluation in evaluations for verdict in evaluation.strict]
    loose = [verdict for evaluation in evaluations for verdict in evaluation.loose]
    return Accuracy(
        prompt_strict=_mean(evaluation.prompt_strict for evaluation in evaluations),
        prompt_loose=_mean(evaluation.prompt_loose for evaluation in evaluations),
        instruction_strict=_mean(strict),
        instruction_loose=_mean(loose),
        prompts=len(evaluations),
        instructions=len(strict),
    )


def accuracy_by_instruction(evaluations: Iterable[PromptEvaluation]) -> dict[str, GroupAccuracy]:
    """Instruction-level accuracy per instruction id, e.g. "punctuation:no_comma"."""
    return _grouped(evaluations, lambda instruction_id: instruction_id)


def accuracy_by_family(evaluations: Iterable[PromptEvaluation]) -> dict[str, GroupAccuracy]:
    """Instruction-level accuracy per family, the id's prefix before ':' (e.g. "keywords")."""
    return _grouped(evaluations, lambda instruction_id: instruction_id.split(":", 1)[0])


def _grouped(
    evaluations: Iterable[PromptEvaluation], group_of: Callable[[str], str]
) -> dict[str, GroupAccuracy]:
    verdicts: dict[str, list[tuple[bool, bool]]] = defaultdict(list)
    for evaluation in evaluations:
        verdicts_of_prompt = zip(evaluation.instruction_ids, evaluation.strict, evaluation.loose, strict=True)
        for instruction_id, strict, loose in verdicts_of_prompt:
            verdicts[group_of(instruction_id)].append((strict, loose))
    return {
        group: GroupAccuracy(
            strict=_mean(strict for strict, _ in pairs),
            loose=_mean(loose for _, loose in pairs),
            instructions=len(pairs),
        )
        for group, pairs in sorted(verdicts.items())
    }


def _mean(values: Iterable[bool]) -> float:
    values = list(values)
    return sum(values) / len(values)
