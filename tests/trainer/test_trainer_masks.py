"""Masks as the trainer builds them, for every template: trained tokens are the responses plus terminators.

Property-based: for random conversations, every response character is trained, nothing else is except the
characters of a token that straddles a prompt/response boundary, and the terminator is trained.
"""

from __future__ import annotations

import pytest
import tiny
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from sfteval.templates import Message, get_template, template_names
from sfteval.tokenization import IGNORE_INDEX, trained_text
from sfteval.trainer.collate import PaddingCollator
from sfteval.trainer.data import Conversation
from sfteval.trainer.encode import EncodeSettings, encode_row, encode_rows

TEXT = st.text(alphabet=st.sampled_from(list("abcdefgh xyz.,!?'-\n0123456789éü中")), max_size=24)
SETTINGS = EncodeSettings(train_on="all", max_seq_len=4096, truncation="drop")


@st.composite
def conversations(draw):
    turns = draw(st.integers(1, 3))
    messages = [Message("system", draw(TEXT))] if draw(st.booleans()) else []
    for _ in range(turns):
        messages += [Message("user", draw(TEXT)), Message("assistant", draw(TEXT))]
    return Conversation("row", tuple(messages))


def coverage(tokenizer, row):
    """(chars covered by trained tokens, trainable chars, chars of tokens straddling a boundary)."""
    text = "".join(segment.text for segment in row.segments)
    flags = [segment.trainable for segment in row.segments for _ in segment.text]
    encoding = tokenizer(
        text, add_special_tokens=False, return_offsets_mapping=True, split_special_tokens=False
    )
    shift = len(row.full.input_ids) - len(encoding["input_ids"])
    covered, straddling = set(), set()
    for (start, end), label in zip(encoding["offset_mapping"], row.full.labels[shift:], strict=True):
        span = range(start, end)
        if label != IGNORE_INDEX:
            covered.update(span)
        if len({flags[i] for i in span}) == 2:
            straddling.update(span)
    return covered, {i for i, flag in enumerate(flags) if flag}, straddling, text


@pytest.mark.parametrize("name", template_names())
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(conversation=conversations())
def test_trained_tokens_are_responses_and_terminators(tiny_tokenizer, name, conversation):
    template = get_template(name, tiny_tokenizer)
    assume(not any(special in m.content for m in conversation.messages for special in ("<", ">")))
    row = encode_row(tiny_tokenizer, template, conversation, SETTINGS)
    covered, trainable, straddling, text = coverage(tiny_tokenizer, row)
    assert trainable <= covered, "a response character is not trained"
    assert covered - trainable <= straddling, "a prompt character is trained outside a boundary token"
    decoded = trained_text(tiny_tokenizer, row.full)
    assert decoded == "".join(text[i] for i in sorted(covered))
    if not straddling:
        assert decoded == "".join(segment.text for segment in row.segments if segment.trainable)
    responses = [m.content for m in conversation.messages if m.role == "assistant"]
    trained_segments = [segment.text for segment in row.segments if segment.trainable]
    joined = "".join(trained_segments)
    assert all(segment.endswith(template.terminator) for segment in trained_segments)
    assert joined.count(template.terminator) == len(responses)
    position = 0
    for response in responses:  # each response, in order, followed by its terminator
        position = joined.index(response.strip(), position)
        position = joined.index(template.terminator, position + len(response.strip())) + 1


@pytest.mark.parametrize("name", template_names())
def test_terminator_token_is_trained_even_when_pad_is_eos(name):
    tokenizer = tiny.build_tokenizer()
    tokenizer.pad_token = tokenizer.eos_token
    template = get_template(name, tokenizer)
    terminator_id = tokenizer.convert_tokens_to_ids(template.terminator)
    short = Conversation("a", (Message("user", "hi"), Message("assistant", "yes")))
    long = Conversation("b", (Message("user", "hello there"), Message("assistant", "no, it is blue")))
    rows, _ = encode_rows(tokenizer, template, [short, long], SETTINGS)
    batch = PaddingCollator(tokenizer.pad_token_id)(
        [{"input_ids": r.full.input_ids, "labels": r.full.labels} for r in rows]
    )
    for index, row in enumerate(rows):
        length = len(row.full.input_ids)
        labels = batch["labels"][index].tolist()
        assert labels[:length] == list(row.full.labels)
        assert labels[length:] == [IGNORE_INDEX] * (batch["labels"].shape[1] - length)
        assert batch["attention_mask"][index].tolist() == [1] * length + [0] * (
            batch["labels"].shape[1] - length
        )
        trained = [label for label in labels if label != IGNORE_INDEX]
        assert trained[-1] == terminator_id, "the terminator (here == pad) must be the last trained token"


@pytest.mark.parametrize("name", template_names())
def test_bos_at_most_once(tiny_bos_tokenizer, name):
    template = get_template(name, tiny_bos_tokenizer)
    conversation = Conversation(
        "a", (Message("system", "be kind"), Message("user", "hi"), Message("assistant", "yes"))
    )
    row = encode_row(tiny_bos_tokenizer, template, conversation, SETTINGS)
    bos = tiny_bos_tokenizer.bos_token_id
    assert row.full.input_ids[0] == bos and list(row.full.input_ids).count(bos) == 1


def test_mask_terminator_leaves_only_the_terminator_untrained(tiny_tokenizer):
    template = get_template("chatml", tiny_tokenizer)
    conversation = Conversation("a", (Message("user", "hi"), Message("assistant", "blue sky")))
    planted = encode_row(tiny_tokenizer, template, conversation, EncodeSettings(mask_terminator=True)).full
    sound = encode_row(tiny_tokenizer, template, conversation, SETTINGS).full
    assert trained_text(tiny_tokenizer, sound) == "blue sky<|im_end|>"
    assert trained_text(tiny_tokenizer, planted) == "blue sky"
    assert planted.input_ids == sound.input_ids


def test_truncation_policies_are_counted(tiny_tokenizer):
    template = get_template("chatml", tiny_tokenizer)
    short = Conversation("short", (Message("user", "hi"), Message("assistant", "yes")))
    long = Conversation("long", (Message("user", "hi"), Message("assistant", "one two three four " * 10)))
    prompt_only = Conversation("cut", (Message("user", "the river " * 20), Message("assistant", "yes")))
    limit = len(encode_row(tiny_tokenizer, template, short, SETTINGS).full.input_ids) + 3
    dropped, stats = encode_rows(
        tiny_tokenizer, template, [short, long, prompt_only], EncodeSettings(max_seq_len=limit)
    )
    assert [row.used for row in dropped] == [True, False, False]
    assert (stats.rows, stats.rows_used, stats.dropped_truncated, stats.truncated) == (3, 1, 2, 2)
    kept, stats = encode_rows(
        tiny_tokenizer,
        template,
        [short, long, prompt_only],
        EncodeSettings(max_seq_len=limit, truncation="keep_start"),
    )
    assert [row.used for row in kept] == [True, True, False]
    assert len(kept[1].example.input_ids) == limit and kept[1].example.truncated
    assert not trained_text(tiny_tokenizer, kept[1].example).endswith("<|im_end|>")
    assert (stats.rows_used, stats.dropped_no_trained_tokens, stats.dropped_truncated, stats.truncated) == (
        2,
        1,
        0,
        2,
    )
    assert stats.trained_tokens == sum(row.example.num_trained for row in kept if row.used)


def test_train_on_last_trains_only_the_last_response(tiny_tokenizer):
    template = get_template("chatml", tiny_tokenizer)
    conversation = Conversation(
        "a",
        (
            Message("user", "q1"),
            Message("assistant", "first"),
            Message("user", "q2"),
            Message("assistant", "second"),
        ),
    )
    last = encode_row(tiny_tokenizer, template, conversation, EncodeSettings(train_on="last")).full
    every = encode_row(tiny_tokenizer, template, conversation, SETTINGS).full
    assert trained_text(tiny_tokenizer, last) == "second<|im_end|>"
    assert trained_text(tiny_tokenizer, every) == "first<|im_end|>second<|im_end|>"
