"""Tokenization: labels from rendered segments for every template, boundary merges, BOS once, truncation."""

from __future__ import annotations

import pytest
import tiny
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sfteval.core.errors import UserError
from sfteval.templates import Message, Segment, get_template, template_names
from sfteval.tokenization import IGNORE_INDEX, encode_text, tokenize_segments, trained_text

TOKENIZERS = ["tiny_tokenizer", "tiny_bos_tokenizer"]
PROPERTY_SETTINGS = settings(
    max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
# The trainable text each format makes of an assistant content (tiny tokenizer: EOS "</s>").
RESPONSE_WRAPS = {
    "chatml": "{}<|im_end|>",
    "native": "{}<|im_end|>",
    "llama3": "{}<|eot_id|>",
    "llama2": " {} </s>",
    "mistral": " {}</s>",
    "vicuna": " {}</s>",
}

printable = st.characters(exclude_categories=("Cs", "Cc")) | st.sampled_from([" ", "\n", "\t"])
texts = st.text(printable, max_size=30).filter(
    lambda text: not any(token in text for token in tiny.SPECIAL_TOKENS)
)
# Word pieces the tiny vocabulary merges ("hel" + "lo" -> "hello"), so boundaries inside merges get drawn.
fragments = st.lists(
    st.sampled_from(["hel", "lo", "hello", " the", "re", "Answer", ":", " ", "\n", "ing"]), max_size=6
)
mergeable_texts = texts | fragments.map("".join)
# A response starting with a letter or digit cannot merge with any format's header (a newline, "]" or ":").
unmergeable_responses = st.builds(str.__add__, st.characters(categories=("L", "N")), texts).filter(
    lambda text: not any(token in text for token in tiny.SPECIAL_TOKENS)
)


@st.composite
def conversations(draw, responses=texts, user_texts=texts):
    messages = [Message("system", draw(texts))] if draw(st.booleans()) else []
    for _ in range(draw(st.integers(1, 3))):
        messages += [Message("user", draw(user_texts)), Message("assistant", draw(responses))]
    return messages


def expected_bos_count(name, tokenizer, messages):
    """Llama 2 opens every user turn with BOS, Mistral the conversation; else the tokenizer's own BOS, if any."""
    written = {"llama2": sum(message.role == "user" for message in messages), "mistral": 1}.get(name, 0)
    return written or len(encode_text(tokenizer, ""))


def check_labels(tokenizer, template, messages, example, train_on):
    """Labels copy ids where trained; terminators trained once per trained turn; BOS never doubled."""
    ids, labels = example.input_ids, example.labels
    assert len(ids) == len(labels)
    assert all(label in (token, IGNORE_INDEX) for token, label in zip(ids, labels, strict=True))
    assert example.num_trained == sum(label != IGNORE_INDEX for label in labels)
    terminator_id = tokenizer.convert_tokens_to_ids(template.terminator)
    turns = sum(message.role == "assistant" for message in messages) if train_on == "all" else 1
    assert labels.count(terminator_id) == turns
    bos = tokenizer.bos_token_id
    assert ids.count(bos) == expected_bos_count(template.name, tokenizer, messages)
    assert ids[1:2] != (bos,)


@pytest.mark.parametrize("tokenizer_name", TOKENIZERS)
@pytest.mark.parametrize("name", template_names())
@PROPERTY_SETTINGS
@given(data=st.data())
def test_trained_tokens_decode_to_exactly_the_responses(name, tokenizer_name, request, data):
    tokenizer = request.getfixturevalue(tokenizer_name)
    # raw glues the user text to the response; a final newline keeps that boundary unmergeable too.
    user_texts = texts.map(lambda text: text + "\n") if name == "raw" else texts
    messages = data.draw(conversations(unmergeable_responses, user_texts))
    train_on = data.draw(st.sampled_from(["all", "last"]))
    template = get_template(name, tokenizer)
    segments = template.render_training(messages, train_on=train_on)
    trained_turns = [m.content for m in messages if m.role == "assistant"][-1 if train_on == "last" else 0 :]
    wrap = RESPONSE_WRAPS.get(name, "{}</s>")
    trainable = "".join(wrap.replace("{}", content) for content in trained_turns)
    assert "".join(segment.text for segment in segments if segment.trainable) == trainable
    example = tokenize_segments(tokenizer, segments)
    assert trained_text(tokenizer, example) == trainable
    check_labels(tokenizer, template, messages, example, train_on)


def assert_boundary_gap(gap, untrainable, first, last):
    """Text trained beyond the responses may only come from tokens straddling a segment boundary."""
    if first:
        assert untrainable.endswith(gap)
    elif last:
        assert untrainable.startswith(gap)
    else:
        split = range(len(gap) + 1)
        assert len(gap) <= len(untrainable)
        assert any(untrainable.startswith(gap[:k]) and untrainable.endswith(gap[k:]) for k in split)


@pytest.mark.parametrize("tokenizer_name", TOKENIZERS)
@pytest.mark.parametrize("name", template_names())
@PROPERTY_SETTINGS
@given(data=st.data())
def test_any_contents_train_every_response_character_and_no_prompt_text(name, tokenizer_name, request, data):
    tokenizer = request.getfixturevalue(tokenizer_name)
    messages = data.draw(conversations(mergeable_texts, mergeable_texts))
    template = get_template(name, tokenizer)
    segments = template.render_training(messages)
    example = tokenize_segments(tokenizer, segments)
    trained = trained_text(tokenizer, example)
    untrainable = [""]
    position = 0
    for segment in segments:
        if not segment.trainable:
            untrainable[-1] += segment.text
            continue
        found = trained.find(segment.text, position)
        assert found >= 0, f"{segment.text!r} not trained in {trained!r}"
        gap = trained[position:found]
        assert_boundary_gap(gap, untrainable[-1], first=len(untrainable) == 1, last=False)
        assert not any(marker in gap for marker in template.markers)
        position = found + len(segment.text)
        untrainable.append("")
    assert_boundary_gap(trained[position:], untrainable[-1], first=False, last=True)
    check_labels(tokenizer, template, messages, example, "all")


@pytest.mark.parametrize("name", template_names())
def test_serving_prompt_tokens_are_the_training_prefix(name, tiny_bos_tokenizer):
    messages = [
        Message("system", "Be brief."),
        Message("user", "Name a colour."),
        Message("assistant", "Red."),
    ]
    template = get_template(name, tiny_bos_tokenizer)
    prompt_ids = encode_text(tiny_bos_tokenizer, template.render_prompt(messages[:-1]))
    example = tokenize_segments(tiny_bos_tokenizer, template.render_training(messages))
    assert list(example.input_ids[: len(prompt_ids)]) == prompt_ids
    assert set(example.labels[: len(prompt_ids)]) == {IGNORE_INDEX}
    assert IGNORE_INDEX not in example.labels[len(prompt_ids) :]


def test_token_straddling_the_response_start_is_trained(tiny_tokenizer):
    segments = [Segment("Answer: ", False), Segment("hi</s>", True)]
    prompt_ids = tiny_tokenizer("Answer: ", add_special_tokens=False)["input_ids"]
    full_ids = tiny_tokenizer("Answer: hi</s>", add_special_tokens=False)["input_ids"]
    assert full_ids[: len(prompt_ids)] != prompt_ids  # " h" merges the prompt's space with the response
    example = tokenize_segments(tiny_tokenizer, segments)
    assert list(example.input_ids) == full_ids
    assert trained_text(tiny_tokenizer, example) == " hi</s>"
    assert example.labels[: len(prompt_ids) - 1] == (IGNORE_INDEX,) * (len(prompt_ids) - 1)


def test_word_merged_across_both_boundaries_is_trained_whole(tiny_tokenizer):
    segments = [Segment("Say", False), Segment(" hel", True), Segment("lo there", False)]
    example = tokenize_segments(tiny_tokenizer, segments)
    assert tiny_tokenizer.convert_tokens_to_ids("Ġhello") in example.input_ids
    assert trained_text(tiny_tokenizer, example) == " hello"
    assert example.num_trained == 1


def test_special_tokens_written_as_text_are_single_trained_ids(tiny_tokenizer):
    segments = [
        Segment("<|im_start|>user\nx<|im_end|>\n<|im_start|>assistant\n", False),
        Segment("y<|im_end|>", True),
    ]
    example = tokenize_segments(tiny_tokenizer, segments)
    end_id = tiny_tokenizer.convert_tokens_to_ids("<|im_end|>")
    assert example.input_ids.count(end_id) == 2
    assert example.labels[-1] == end_id == example.input_ids[-1]


def test_eos_is_trained_when_pad_equals_eos():
    tokenizer = tiny.build_tokenizer()
    tokenizer.pad_token = tokenizer.eos_token
    segments = get_template("alpaca", tokenizer).render_training(
        [Message("user", "x"), Message("assistant", "y")]
    )
    example = tokenize_segments(tokenizer, segments)
    assert example.labels[-1] == tokenizer.eos_token_id == tokenizer.pad_token_id


def test_encode_text_adds_bos_at_most_once(tiny_tokenizer, tiny_bos_tokenizer):
    bos = tiny_bos_tokenizer.bos_token_id
    plain = tiny_tokenizer("hi", add_special_tokens=False)["input_ids"]
    assert encode_text(tiny_tokenizer, "hi") == plain
    assert encode_text(tiny_tokenizer, "<s>hi") == [bos, *plain]
    assert encode_text(tiny_bos_tokenizer, "hi") == [bos, *plain]
    assert encode_text(tiny_bos_tokenizer, "<s>hi") == [bos, *plain]


def test_llama2_on_a_bos_adding_tokenizer_has_one_leading_bos(tiny_bos_tokenizer):
    segments = get_template("llama2", tiny_bos_tokenizer).render_training(
        [Message("user", "x"), Message("assistant", "y")]
    )
    example = tokenize_segments(tiny_bos_tokenizer, segments)
    assert example.input_ids.count(tiny_bos_tokenizer.bos_token_id) == 1
    assert example.input_ids[0] == tiny_bos_tokenizer.bos_token_id


@pytest.fixture
def long_example_segments(tiny_tokenizer):
    messages = [Message("user", "Write a list."), Message("assistant", "one two three four five six")]
    return get_template("chatml", tiny_tokenizer).render_training(messages)


def test_keep_start_truncation_cuts_and_flags(tiny_tokenizer, long_example_segments):
    full = tokenize_segments(tiny_tokenizer, long_example_segments)
    cut = tokenize_segments(tiny_tokenizer, long_example_segments, max_length=len(full.input_ids) - 3)
    assert cut.truncated and not full.truncated
    assert cut.input_ids == full.input_ids[:-3] and cut.labels == full.labels[:-3]
    assert cut.num_trained == full.num_trained - 3
    assert tiny_tokenizer.convert_tokens_to_ids("<|im_end|>") not in cut.labels


def test_drop_truncation_returns_none_for_too_long_rows(tiny_tokenizer, long_example_segments):
    length = len(tokenize_segments(tiny_tokenizer, long_example_segments).input_ids)
    assert (
        tokenize_segments(tiny_tokenizer, long_example_segments, max_length=length - 1, truncation="drop")
        is None
    )
    kept = tokenize_segments(tiny_tokenizer, long_example_segments, max_length=length, truncation="drop")
    assert kept is not None and not kept.truncated


def test_prompt_filling_max_length_leaves_nothing_trained(tiny_tokenizer, long_example_segments):
    example = tokenize_segments(tiny_tokenizer, long_example_segments, max_length=3)
    assert example.truncated and example.num_trained == 0


def test_bad_truncation_settings_are_user_errors(tiny_tokenizer, long_example_segments):
    with pytest.raises(UserError, match="unknown truncation policy"):
        tokenize_segments(tiny_tokenizer, long_example_segments, truncation="keep_end")  # type: ignore[arg-type]
    with pytest.raises(UserError, match="max_length must be a positive"):
        tokenize_segments(tiny_tokenizer, long_example_segments, max_length=0)
