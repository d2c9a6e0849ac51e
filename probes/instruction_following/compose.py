"""Compose base tasks with 1-3 non-conflicting verifiable instructions into IFEval-format prompts (seeded).

python -m sfteval.probes.instruction_following.compose            # rewrites data/prompts.jsonl (seed 0)
python -m sfteval.probes.instruction_following.compose --seed 1 --count 300 --output my_prompts.jsonl
"""

from __future__ import annotations

import argparse
import json
import random
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sfteval.core.errors import UserError
from sfteval.core.jsonl import read_jsonl

from .checkers import RELATIONS, get_checker, instruction_ids
from .conflicts import compatible
from .prompts import DEFAULT_PROMPTS, IFPrompt

BASE_TASKS = Path(__file__).parent / "data" / "base_tasks.jsonl"
DEFAULT_SEED = 0
DEFAULT_COUNT = 240
REPEAT = "combination:repeat_prompt"


@dataclass(frozen=True)
class BaseTask:
    """A task prompt before instructions are appended; keywords are topical words a good answer would use."""

    task_id: str
    kind: str
    prompt: str
    keywords: tuple[str, ...]


def load_base_tasks(path: str | None = None) -> list[BaseTask]:
    """Read base tasks (JSONL: id, kind, prompt, keywords with at least 2 entries)."""
    source = Path(path) if path is not None else BASE_TASKS
    tasks: list[BaseTask] = []
    for where, row in read_jsonl(source, "base tasks"):
        try:
            task = BaseTask(row["id"], row["kind"], row["prompt"], tuple(row["keywords"]))
        except (KeyError, TypeError) as error:
            raise UserError(f"{where}: malformed base task ({error})") from None
        if len(task.keywords) < 2:
            raise UserError(f"{where}: base task needs at least 2 keywords")
        tasks.append(task)
    return tasks


# Instructions a task kind cannot sensibly take (a translation has a fixed language; code has its own case).
_KIND_EXCLUDES = {
    "translate": {
        "language:response_language", "change_case:english_capital", "change_case:english_lowercase",
        "change_case:capital_word_frequency", "keywords:frequency", "keywords:letter_frequency",
        "length_constraints:number_words", "length_constraints:number_sentences",
        "length_constraints:number_paragraphs", "length_constraints:nth_paragraph_first_word",
        "detectable_format:multiple_sections", "detectable_format:number_bullet_lists",
    },
    "code": {"language:response_language", "change_case:english_capital", "change_case:english_lowercase"},
}  # fmt: skip
_YES_NO_KINDS = {"decide"}
_FORBIDDEN_CHOICES = (
    "very",
    "really",
    "important",
    "thing",
    "things",
    "many",
    "also",
    "just",
    "good",
    "great",
)
_FIRST_WORDS = ("first", "however", "finally", "overall", "next", "today", "moreover", "in")
_END_PHRASES = (
    "Any other questions?",
    "Is there anything else I can help with?",
    "Let me know if you need more.",
)
_LANGUAGES = ("es", "fr", "de", "it", "pt", "ru", "ja", "hi", "ko", "sw", "fi", "pl")


def _relation_count(
    rng: random.Random, less_than: tuple[int, int], at_least: tuple[int, int]
) -> tuple[str, int]:
    relation = rng.choice(RELATIONS)
    low, high = less_than if relation == "less than" else at_least
    return relation, rng.randint(low, high)


def _sentences(rng: random.Random, task: BaseTask) -> dict[str, Any]:
    relation, count = _relation_count(rng, (3, 10), (3, 12))
    return {"num_sentences": count, "relation": relation}


def _words(rng: random.Random, task: BaseTask) -> dict[str, Any]:
    relation, count = _relation_count(rng, (5, 30), (10, 40))
    return {"num_words": count * 10, "relation": relation}


def _frequency(rng: random.Random, task: BaseTask) -> dict[str, Any]:
    relation, count = _relation_count(rng, (2, 4), (1, 3))
    return {"keyword": rng.choice(task.keywords), "frequency": count, "relation": relation}


def _letters(rng: random.Random, task: BaseTask) -> dict[str, Any]:
    relation, count = _relation_count(rng, (2, 10), (3, 12))
    return {"letter": rng.choice("abcdefghilmnoprstuwy"), "let_frequency": count, "let_relation": relation}


def _capitals(rng: random.Random, task: BaseTask) -> dict[str, Any]:
    relation, count = _relation_count(rng, (2, 8), (2, 10))
    return {"capital_frequency": count, "capital_relation": relation}


def _nth_paragraph(rng: random.Random, task: BaseTask) -> dict[str, Any]:
    paragraphs = rng.randint(2, 5)
    return {
        "num_paragraphs": paragraphs,
        "nth_paragraph": rng.randint(1, paragraphs),
        "first_word": rng.choice(_FIRST_WORDS),
    }


_Sampler = Callable[[random.Random, BaseTask], dict[str, Any]]
_SAMPLERS: dict[str, _Sampler] = {
    "keywords:existence": lambda rng, task: {"keywords": rng.sample(task.keywords, 2)},
    "keywords:frequency": _frequency,
    "keywords:forbidden_words": lambda rng, task: {"forbidden_words": rng.sample(_FORBIDDEN_CHOICES, 2)},
    "keywords:letter_frequency": _letters,
    "language:response_language": lambda rng, task: {"language": rng.choice(_LANGUAGES)},
    "length_constraints:number_sentences": _sentences,
    "length_constraints:number_paragraphs": lambda rng, task: {"num_paragraphs": rng.randint(2, 5)},
    "length_constraints:number_words": _words,
    "length_constraints:nth_paragraph_first_word": _nth_paragraph,
    "detectable_content:number_placeholders": lambda rng, task: {"num_placeholders": rng.randint(1, 4)},
    "detectable_content:postscript": lambda rng, task: {"postscript_marker": rng.choice(("P.S.", "P.P.S"))},
    "detectable_format:number_bullet_lists": lambda rng, task: {"num_bullets": rng.randint(2, 6)},
    "detectable_format:constrained_response": lambda rng, task: {},
    "detectable_format:number_highlighted_sections": lambda rng, task: {"num_highlights": rng.randint(1, 4)},
    "detectable_format:multiple_sections": lambda rng, task: {
        "section_spliter": rng.choice(("Section", "SECTION")),
        "num_sections": rng.randint(2, 5),
    },
    "detectable_format:json_format": lambda rng, task: {},
    "detectable_format:title": lambda rng, task: {},
    "combination:two_responses": lambda rng, task: {},
    # prompt_to_repeat is the finished request, filled in by _assemble.
    REPEAT: lambda rng, task: {},
    "startend:end_checker": lambda rng, task: {"end_phrase": rng.choice(_END_PHRASES)},
    "startend:quotation": lambda rng, task: {},
    "change_case:capital_word_frequency": _capitals,
    "change_case:english_capital": lambda rng, task: {},
    "change_case:english_lowercase": lambda rng, task: {},
    "punctuation:no_comma": lambda rng, task: {},
}


def _suits(instruction_id: str, task: BaseTask) -> bool:
    if instruction_id == "detectable_format:constrained_response":
        return task.kind in _YES_NO_KINDS
    return instruction_id not in _KIND_EXCLUDES.get(task.kind, set())


def _choose(rng: random.Random, task: BaseTask, size: int, usage: Counter[str]) -> list[str]:
    """Up to `size` compatible instructions, each time among the least used so far (ties broken by rng)."""
    chosen: list[str] = []
    for _ in range(size):
        options = [i for i in instruction_ids() if _suits(i, task) and compatible(i, chosen)]
        if not options:
            break
        fewest = min(usage[i] for i in options)
        pick = rng.choice([i for i in options if usage[i] == fewest])
        chosen.append(pick)
        usage[pick] += 1
    return chosen


def _assemble(key: int, task: BaseTask, chosen: list[str], rng: random.Random) -> IFPrompt:
    """Append each instruction's wording to the task; a repeat request goes last and repeats all before it."""
    ordered = [i for i in chosen if i != REPEAT] + [i for i in chosen if i == REPEAT]
    text = task.prompt
    all_kwargs: list[dict[str, Any]] = []
    for instruction_id in ordered:
        kwargs = _SAMPLERS[instruction_id](rng, task)
        if instruction_id == REPEAT:
            kwargs = {"prompt_to_repeat": text}
        text = f"{text} {get_checker(instruction_id).describe(**kwargs)}"
        all_kwargs.append(kwargs)
    return IFPrompt(key, text, tuple(ordered), tuple(all_kwargs), task_id=task.task_id)


def compose(tasks: list[BaseTask], count: int = DEFAULT_COUNT, seed: int = DEFAULT_SEED) -> list[IFPrompt]:
    """`count` prompts cycling through the tasks in a seeded order, each with 1-3 instructions."""
    if not tasks:
        raise UserError("no base tasks to compose prompts from")
    rng = random.Random(seed)
    usage: Counter[str] = Counter()
    prompts: list[IFPrompt] = []
    order: list[BaseTask] = []
    for key in range(1, count + 1):
        if not order:
            order = rng.sample(tasks, len(tasks))
        task = order.pop()
        chosen = _choose(rng, task, rng.randint(1, 3), usage)
        prompts.append(_assemble(key, task, chosen, rng))
    return prompts


def write_prompts(prompts: list[IFPrompt], path: Path) -> None:
    lines = (json.dumps(prompt.to_row(), ensure_ascii=False) for prompt in prompts)
    path.write_text("".join(f"{line}\n" for line in lines), encoding="utf-8")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    parser.add_argument("--count", type=int, default=DEFAULT_COUNT)
    parser.add_argument("--tasks", default=None, help="base tasks JSONL (default: the shipped set)")
    parser.add_argument("--output", type=Path, default=DEFAULT_PROMPTS)
    arguments = parser.parse_args(argv)
    prompts = compose(load_base_tasks(arguments.tasks), arguments.count, arguments.seed)
    write_prompts(prompts, arguments.output)
    print(f"wrote {len(prompts)} prompts to {arguments.output}")


if __name__ == "__main__":
    main()
