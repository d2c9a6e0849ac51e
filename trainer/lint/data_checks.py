"""Dataset-level checks: duplicates, response-opening concentration, stock phrases, task coverage, tokenizer risks."""

from __future__ import annotations

import re
import zlib
from collections import Counter, defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sfteval.templates import Template
from sfteval.trainer.data import Conversation
from sfteval.trainer.lint.results import LintFinding, Table, finding
from sfteval.trainer.summaries import response_openings

OPENING_SHARE_WARNING = 0.25
OPENING_MIN_COUNT = 5
STOCK_PHRASE_WARNING = 0.05
NEAR_DUPLICATE_JACCARD = 0.8
# Boilerplate typical of responses distilled from chat models.
STOCK_PHRASES = (
    "As an AI language model",
    "As an AI",
    "I'm sorry, but",
    "I cannot",
    "Certainly!",
    "Sure!",
    "Of course!",
    "Absolutely!",
    "Great question",
    "I hope this helps",
    "It's important to note",
    "It is important to note",
    "In conclusion",
    "Let me know if",
    "delve",
)
# Rough task families, first match wins: (name, pattern over the lower-cased prompt).
TASK_PATTERNS = (
    ("translation", r"\btranslat"),
    ("summarisation", r"\bsummar|\btl;?dr\b"),
    ("classification", r"\bclassif|\bcategor|\bsentiment\b|\blabel\b|\bwhich of the following\b"),
    ("code", r"\bcode\b|\bpython\b|\bfunction\b|\bprogram\b|\bscript\b|\bsql\b|\bjavascript\b|def |```"),
    ("math", r"\bcalculate\b|\bsolve\b|\bequation\b|\d+\s*[-+*/^]\s*\d+"),
    ("rewriting", r"\brewrite\b|\bparaphrase\b|\brephrase\b|\bedit\b|\bcorrect the\b"),
    ("extraction", r"\bextract\b|\blist (all|the)\b|\bidentify\b"),
    ("creative writing", r"\bpoem\b|\bstory\b|\bessay\b|\bwrite a\b|\bcompose\b"),
    ("brainstorming", r"\bideas?\b|\bsuggest\b|\bbrainstorm\b"),
    ("question answering", r"^(what|who|when|where|why|how|which|is|are|do|does|can)\b|\?\s*$"),
)


def tokenizer_findings(tokenizer: Any, template: Template, model_path: Path) -> list[LintFinding]:
    """Pad == EOS risk and a template terminator that generation would not stop on."""
    found: list[LintFinding] = []
    if tokenizer.pad_token_id is not None and tokenizer.pad_token_id == tokenizer.eos_token_id:
        found.append(LintFinding(
            check="pad_eq_eos", level="warning", count=1, examples=[],
            message=f"pad token == EOS ({tokenizer.eos_token!r}): sfteval masks padding by position, but collators "
            "that mask labels equal to pad_token_id would never train the EOS",
        ))  # fmt: skip
    ids = tokenizer(template.terminator, add_special_tokens=False)["input_ids"] if template.terminator else []
    if len(ids) != 1:
        found.append(LintFinding(
            check="terminator_not_single_token", level="warning", count=1, examples=[],
            message=f"the terminator {template.terminator!r} is {len(ids)} tokens, not one special token",
        ))  # fmt: skip
    elif ids[0] not in _generation_stop_ids(tokenizer, model_path):
        found.append(LintFinding(
            check="terminator_not_eos", level="warning", count=1, examples=[],
            message=f"the trained terminator {template.terminator!r} is not an EOS id of the model's generation "
            "config: plain generate() will not stop on it (serve with the template's stop strings)",
        ))  # fmt: skip
    return found


def _generation_stop_ids(tokenizer: Any, model_path: Path) -> set[int]:
    from transformers import GenerationConfig

    stops = {tokenizer.eos_token_id}
    try:
        configured = GenerationConfig.from_pretrained(str(model_path)).eos_token_id
    except OSError:
        configured = None
    stops |= set(configured if isinstance(configured, list) else [configured])
    return {stop for stop in stops if stop is not None}


def _prompt_text(conversation: Conversation) -> str:
    return "\n".join(message.text() for message in conversation.prompt)


def _normalise(text: str) -> str:
    return " ".join(re.sub(r"[^\w\s]", " ", text.lower()).split())


def duplicate_findings(conversations: Sequence[Conversation]) -> list[LintFinding | None]:
    """Exact duplicate rows, prompts with conflicting responses, and near-duplicate rows."""
    by_row: dict[tuple[str, str], list[str]] = defaultdict(list)
    by_prompt: dict[str, set[str]] = defaultdict(set)
    prompt_ids: dict[str, list[str]] = defaultdict(list)
    for conversation in conversations:
        prompt = _prompt_text(conversation)
        by_row[(prompt, conversation.response)].append(conversation.id)
        by_prompt[prompt].add(conversation.response)
        prompt_ids[prompt].append(conversation.id)
    exact = [row_id for ids in by_row.values() for row_id in ids[1:]]
    conflicting = [
        row_id for prompt, ids in prompt_ids.items() if len(by_prompt[prompt]) > 1 for row_id in ids
    ]
    unique = {ids[0] for ids in by_row.values()}
    texts = {c.id: _normalise(_prompt_text(c) + " " + c.response) for c in conversations if c.id in unique}
    near = near_duplicate_ids(texts)
    return [
        finding("exact_duplicate", "warning", exact, "rows repeated verbatim (prompt and response): extra epochs on them"),
        finding("conflicting_responses", "warning", conflicting, "the same prompt has different responses"),
        finding("near_duplicate", "warning", near, f"rows nearly identical to another (word 3-gram Jaccard >= {NEAR_DUPLICATE_JACCARD})"),
    ]  # fmt: skip


def near_duplicate_ids(texts: dict[str, str], permutations: int = 32, bands: int = 8) -> list[str]:
    """Ids of rows with a near twin: MinHash LSH over word 3-grams proposes pairs, exact Jaccard confirms them."""
    import numpy as np

    shingles = {row_id: _shingles(text) for row_id, text in texts.items()}
    prime = (1 << 61) - 1
    rng = np.random.default_rng(0)
    multipliers = rng.integers(1, prime, permutations, dtype=np.uint64)
    offsets = rng.integers(0, prime, permutations, dtype=np.uint64)
    buckets: dict[tuple[int, bytes], list[str]] = defaultdict(list)
    rows = permutations // bands
    for row_id, grams in shingles.items():
        values = np.array(sorted(grams), dtype=np.uint64)[:, None]
        signature = ((values * multipliers + offsets) % np.uint64(prime)).min(axis=0)
        for band in range(bands):
            buckets[(band, signature[band * rows : (band + 1) * rows].tobytes())].append(row_id)
    found: set[str] = set()
    for candidates in buckets.values():
        for index, first in enumerate(candidates):
            for second in candidates[index + 1 :]:
                if (first not in found or second not in found) and _jaccard(
                    shingles[first], shingles[second]
                ) >= NEAR_DUPLICATE_JACCARD:
                    found.update((first, second))
    return sorted(found)


def _shingles(text: str) -> set[int]:
    words = text.split() or [""]
    grams = [" ".join(words[i : i + 3]) for i in range(max(len(words) - 2, 1))]
    return {zlib.crc32(gram.encode("utf-8")) for gram in grams}


def _jaccard(first: set[int], second: set[int]) -> float:
    return len(first & second) / len(first | second)


def opening_findings(responses: Sequence[str]) -> tuple[list[LintFinding | None], Table]:
    """The share of the most common multi-word opening (spurious-prefix risk), and the top openings table."""
    openings = response_openings(responses)
    multi_word = [item for item in openings if item["words"] >= 2 and item["count"] >= OPENING_MIN_COUNT]
    top = max(multi_word, key=lambda item: item["share"], default=None)
    found = None
    if top is not None and top["share"] >= OPENING_SHARE_WARNING:
        found = LintFinding(
            check="opening_concentration", level="warning", count=top["count"], examples=[],
            message=f"{top['share']:.0%} of responses open with {top['opening']!r}: a model may learn this prefix "
            "for every prompt (spurious-prefix risk)",
        )  # fmt: skip
    rows = [
        [item["opening"], str(item["words"]), str(item["count"]), f"{item['share']:.1%}"]
        for item in openings[:10]
    ]
    return [found], Table(
        title="most frequent response openings", columns=["opening", "words", "rows", "share"], rows=rows
    )


def stock_phrase_findings(responses: Sequence[str]) -> tuple[list[LintFinding | None], Table]:
    """Rates of boilerplate phrases typical of distilled data."""
    lowered = [response.lower() for response in responses]
    counts = {phrase: sum(phrase.lower() in text for text in lowered) for phrase in STOCK_PHRASES}
    total = max(len(responses), 1)
    frequent = [phrase for phrase, count in counts.items() if count / total >= STOCK_PHRASE_WARNING]
    found = None
    if frequent:
        listed = ", ".join(f"{phrase!r} {counts[phrase] / total:.0%}" for phrase in frequent)
        found = LintFinding(
            check="stock_phrases", level="warning", count=len(frequent), examples=[],
            message=f"boilerplate typical of distilled data: {listed}",
        )  # fmt: skip
    rows = [[phrase, str(count), f"{count / total:.1%}"] for phrase, count in counts.items() if count]
    return [found], Table(
        title="stock phrases in responses", columns=["phrase", "responses", "rate"], rows=rows
    )


def coverage_table(conversations: Sequence[Conversation]) -> Table:
    """A rough task-type table from keywords in the prompt (first matching family wins)."""
    counts: Counter[str] = Counter()
    for conversation in conversations:
        prompt = _prompt_text(conversation).lower().strip()
        counts[next((name for name, pattern in TASK_PATTERNS if re.search(pattern, prompt)), "other")] += 1
    total = max(len(conversations), 1)
    rows = [[name, str(count), f"{count / total:.1%}"] for name, count in counts.most_common()]
    return Table(
        title="task coverage (rough, by prompt keywords)", columns=["task", "rows", "share"], rows=rows
    )


def length_table(lengths: dict[str, Sequence[int]], max_seq_len: int) -> Table:
    """Token-length distribution of prompts, responses and whole rows."""
    rows = []
    for name, values in lengths.items():
        ordered = sorted(values)
        if not ordered:
            continue
        pick = [ordered[min(int(q * len(ordered)), len(ordered) - 1)] for q in (0.5, 0.9, 0.99)]
        over = sum(value > max_seq_len for value in ordered) if name == "row" else 0
        rows.append(
            [name, str(ordered[0]), *map(str, pick), str(ordered[-1]), str(over) if name == "row" else ""]
        )
    columns = ["tokens", "min", "p50", "p90", "p99", "max", f"> {max_seq_len}"]
    return Table(title="length distribution (tokens)", columns=columns, rows=rows)
