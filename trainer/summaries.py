"""What the manifest records about the data: held-out split, response openings, short labels, seeded samples."""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any

from sfteval.templates import TrainOn
from sfteval.trainer.data import Conversation

MAX_OPENING_WORDS = 5
TOP_OPENINGS = 20
LABEL_MAX_WORDS = 4
LABEL_MIN_COUNT = 3


def _prompt_key(conversation: Conversation) -> tuple[tuple[str, str, str], ...]:
    return tuple((message.role, message.content, message.input) for message in conversation.prompt)


def split_holdout(
    conversations: Sequence[Conversation], count: int, seed: int
) -> tuple[list[Conversation], list[Conversation]]:
    """(train, held out): at most `count` rows, whole prompt groups at a time, so no held-out prompt is trained."""
    if count <= 0:
        return list(conversations), []
    groups: dict[tuple[Any, ...], list[int]] = {}
    for index, conversation in enumerate(conversations):
        groups.setdefault(_prompt_key(conversation), []).append(index)
    keys = list(groups)
    random.Random(seed).shuffle(keys)
    held: set[int] = set()
    for key in keys:
        if len(held) + len(groups[key]) <= count:
            held.update(groups[key])
    train = [conversation for index, conversation in enumerate(conversations) if index not in held]
    heldout = [conversation for index, conversation in enumerate(conversations) if index in held]
    return train, heldout


def trained_responses(conversations: Iterable[Conversation], train_on: TrainOn) -> list[str]:
    """The assistant texts the loss is computed on."""
    responses: list[str] = []
    for conversation in conversations:
        assistant = [message.content for message in conversation.messages if message.role == "assistant"]
        responses += assistant if train_on == "all" else assistant[-1:]
    return responses


def response_openings(responses: Sequence[str], top: int = TOP_OPENINGS) -> list[dict[str, Any]]:
    """The most frequent 1-5 word response openings (seen at least twice), with share of all responses."""
    counts: Counter[tuple[int, str]] = Counter()
    for response in responses:
        words = response.split()
        for length in range(1, min(MAX_OPENING_WORDS, len(words)) + 1):
            counts[(length, " ".join(words[:length]))] += 1
    ranked = sorted(
        ((key, count) for key, count in counts.items() if count >= 2),
        key=lambda item: (-item[1], -item[0][0], item[0][1]),
    )
    return [
        {"opening": opening, "words": length, "count": count, "share": round(count / len(responses), 4)}
        for (length, opening), count in ranked[:top]
    ]


def frequent_labels(responses: Sequence[str]) -> list[str]:
    """Distinct short responses (at most 4 words) seen at least 3 times: classification labels."""
    counts = Counter(response.strip() for response in responses if response.strip())
    short = [
        (text, count)
        for text, count in counts.items()
        if len(text.split()) <= LABEL_MAX_WORDS and count >= LABEL_MIN_COUNT
    ]
    return [text for text, _ in sorted(short, key=lambda item: (-item[1], item[0]))]


def sample_pairs(conversations: Sequence[Conversation], size: int, seed: int) -> list[dict[str, Any]]:
    """A seeded sample of prompt/response pairs with non-empty responses (prompt turns end with the user turn)."""
    answered = [conversation for conversation in conversations if conversation.response.strip()]
    chosen = random.Random(seed).sample(answered, min(size, len(answered)))
    return [
        {
            "id": conversation.id,
            "messages": [_message_dict(m) for m in conversation.prompt],
            "response": conversation.response,
        }
        for conversation in chosen
    ]


def _message_dict(message: Any) -> dict[str, str]:
    """{role, content}, plus `input` for Alpaca rows that have one (so Message(**item) rebuilds it exactly)."""
    item = {"role": message.role, "content": message.content}
    if message.input:
        item["input"] = message.input
    return item
