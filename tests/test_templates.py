"""Templates: golden renderings of every format, system folding, Alpaca input, native derivation, errors."""

from __future__ import annotations

import pytest
import tiny

from sfteval.core.errors import UserError
from sfteval.templates import (
    Message,
    Segment,
    all_markers,
    get_template,
    messages_from_example,
    template_names,
)

SYSTEM_CONVERSATION = [Message("system", "Be brief."), Message("user", "Hi?"), Message("assistant", "Hello.")]
TWO_TURNS = [
    Message("user", "Q1"),
    Message("assistant", "A1"),
    Message("user", "Q2"),
    Message("assistant", "A2"),
]
ALPACA = "Below is an instruction that describes a task. Write a response that appropriately completes the request."
VICUNA = (
    "A chat between a curious user and an artificial intelligence assistant. "
    "The assistant gives helpful, detailed, and polite answers to the user's questions."
)
CHATML_SYSTEM = (
    "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi?<|im_end|>\n<|im_start|>assistant\n"
)
CHATML_TURN = "<|im_start|>user\nQ1<|im_end|>\n<|im_start|>assistant\n"
LLAMA3_HEADER = "<|start_header_id|>{}<|end_header_id|>\n\n"
LLAMA3_SYSTEM = (
    "<|begin_of_text|>" + LLAMA3_HEADER.format("system") + "Be brief.<|eot_id|>"
    + LLAMA3_HEADER.format("user") + "Hi?<|eot_id|>" + LLAMA3_HEADER.format("assistant")
)  # fmt: skip
LLAMA3_Q1 = (
    "<|begin_of_text|>" + LLAMA3_HEADER.format("user") + "Q1<|eot_id|>" + LLAMA3_HEADER.format("assistant")
)
LLAMA3_Q2 = LLAMA3_HEADER.format("user") + "Q2<|eot_id|>" + LLAMA3_HEADER.format("assistant")

# (system + user + assistant segments, two-turn segments) as (text, trainable) pairs, per template.
GOLDEN_SEGMENTS = {
    "alpaca": (
        [("Be brief.\n\n### Instruction:\nHi?\n\n### Response:\n", False), ("Hello.</s>", True)],
        [
            (ALPACA + "\n\n### Instruction:\nQ1\n\n### Response:\n", False),
            ("A1</s>", True),
            ("\n\n### Instruction:\nQ2\n\n### Response:\n", False),
            ("A2</s>", True),
        ],
    ),
    "chatml": (
        [(CHATML_SYSTEM, False), ("Hello.<|im_end|>", True)],
        [
            (CHATML_TURN, False),
            ("A1<|im_end|>", True),
            ("\n" + CHATML_TURN.replace("Q1", "Q2"), False),
            ("A2<|im_end|>", True),
        ],
    ),
    "llama2": (
        [("<s>[INST] <<SYS>>\nBe brief.\n<</SYS>>\n\nHi? [/INST]", False), (" Hello. </s>", True)],
        [
            ("<s>[INST] Q1 [/INST]", False),
            (" A1 </s>", True),
            ("<s>[INST] Q2 [/INST]", False),
            (" A2 </s>", True),
        ],
    ),
    "llama3": (
        [(LLAMA3_SYSTEM, False), ("Hello.<|eot_id|>", True)],
        [(LLAMA3_Q1, False), ("A1<|eot_id|>", True), (LLAMA3_Q2, False), ("A2<|eot_id|>", True)],
    ),
    "mistral": (
        [("<s>[INST] Be brief.\n\nHi? [/INST]", False), (" Hello.</s>", True)],
        [("<s>[INST] Q1 [/INST]", False), (" A1</s>", True), ("[INST] Q2 [/INST]", False), (" A2</s>", True)],
    ),
    "native": (
        [(CHATML_SYSTEM, False), ("Hello.<|im_end|>", True)],
        [
            (CHATML_TURN, False),
            ("A1<|im_end|>", True),
            ("\n" + CHATML_TURN.replace("Q1", "Q2"), False),
            ("A2<|im_end|>", True),
        ],
    ),
    "raw": (
        [("Be brief.\n\nHi?", False), ("Hello.</s>", True)],
        [("Q1", False), ("A1</s>", True), ("Q2", False), ("A2</s>", True)],
    ),
    "vicuna": (
        [("Be brief. USER: Hi? ASSISTANT:", False), (" Hello.</s>", True)],
        [
            (VICUNA + " USER: Q1 ASSISTANT:", False),
            (" A1</s>", True),
            ("USER: Q2 ASSISTANT:", False),
            (" A2</s>", True),
        ],
    ),
    "zephyr": (
        [("<|system|>\nBe brief.</s>\n<|user|>\nHi?</s>\n<|assistant|>\n", False), ("Hello.</s>", True)],
        [
            ("<|user|>\nQ1</s>\n<|assistant|>\n", False),
            ("A1</s>", True),
            ("\n<|user|>\nQ2</s>\n<|assistant|>\n", False),
            ("A2</s>", True),
        ],
    ),
}

TERMINATORS = {"chatml": "<|im_end|>", "native": "<|im_end|>", "llama3": "<|eot_id|>"}


def segments_of(pairs: list[tuple[str, bool]]) -> list[Segment]:
    return [Segment(text, trainable) for text, trainable in pairs]


def test_every_required_template_is_registered():
    required = {"alpaca", "chatml", "llama2", "llama3", "vicuna", "zephyr", "mistral", "raw", "native"}
    assert set(template_names()) == required


def test_only_raw_leaves_its_turns_unmarked(tiny_tokenizer):
    turns = {name: get_template(name, tiny_tokenizer).has_turns for name in template_names()}
    assert [name for name, marked in turns.items() if not marked] == ["raw"]


@pytest.mark.parametrize("name", sorted(GOLDEN_SEGMENTS))
def test_golden_training_segments(name, tiny_tokenizer):
    template = get_template(name, tiny_tokenizer)
    with_system, two_turns = GOLDEN_SEGMENTS[name]
    assert template.render_training(SYSTEM_CONVERSATION) == segments_of(with_system)
    assert template.render_training(TWO_TURNS) == segments_of(two_turns)


@pytest.mark.parametrize("name", sorted(GOLDEN_SEGMENTS))
def test_golden_serving_prompt_is_the_training_text_before_the_response(name, tiny_tokenizer):
    template = get_template(name, tiny_tokenizer)
    with_system, two_turns = GOLDEN_SEGMENTS[name]
    assert template.render_prompt(SYSTEM_CONVERSATION[:-1]) == with_system[0][0]
    assert template.render_prompt(TWO_TURNS[:-1]) == "".join(text for text, _ in two_turns[:-1])


@pytest.mark.parametrize("name", sorted(GOLDEN_SEGMENTS))
def test_terminator_is_trained_and_stops_generation(name, tiny_tokenizer):
    template = get_template(name, tiny_tokenizer)
    assert template.terminator == TERMINATORS.get(name, "</s>")
    trainable = [segment.text for segment in template.render_training(TWO_TURNS) if segment.trainable]
    assert all(text.endswith(template.terminator) for text in trainable)
    assert template.terminator in template.stop_strings


@pytest.mark.parametrize("name", sorted(GOLDEN_SEGMENTS))
def test_train_on_last_trains_only_the_final_response(name, tiny_tokenizer):
    segments = get_template(name, tiny_tokenizer).render_training(TWO_TURNS, train_on="last")
    trainable = [segment.text for segment in segments if segment.trainable]
    assert len(trainable) == 1 and "A2" in trainable[0]
    assert "A1" in "".join(segment.text for segment in segments if not segment.trainable)


def test_alpaca_with_input_uses_the_input_preamble_and_slot(tiny_tokenizer):
    messages = messages_from_example("Translate.", output="Bonjour", input="Hello")
    segments = get_template("alpaca", tiny_tokenizer).render_training(messages)
    prompt = (
        "Below is an instruction that describes a task, paired with an input that provides further context. "
        "Write a response that appropriately completes the request.\n\n"
        "### Instruction:\nTranslate.\n\n### Input:\nHello\n\n### Response:\n"
    )
    assert segments == [Segment(prompt, False), Segment("Bonjour</s>", True)]


def test_formats_without_input_slot_append_the_input_to_the_content(tiny_tokenizer):
    messages = messages_from_example("Translate.", input="Hello", system="Be brief.")
    assert get_template("chatml", tiny_tokenizer).render_prompt(messages) == (
        "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nTranslate.\n\nHello<|im_end|>\n"
        "<|im_start|>assistant\n"
    )


def test_bos_comes_from_the_tokenizer(tiny_tokenizer):
    tokenizer = tiny.build_tokenizer()
    tokenizer.bos_token = "<|begin_of_text|>"
    assert (
        get_template("mistral", tokenizer)
        .render_prompt([Message("user", "x")])
        .startswith("<|begin_of_text|>[INST]")
    )


def test_unknown_template_suggests_a_name():
    with pytest.raises(UserError, match="unknown template 'chatm'") as raised:
        get_template("chatm")
    assert "did you mean 'chatml'?" in str(raised.value)


def test_native_needs_a_chat_template():
    with pytest.raises(UserError, match="no chat template"):
        get_template("native", tiny.build_tokenizer(chat_template=None))
    with pytest.raises(UserError, match="needs the model's tokenizer"):
        get_template("native")


def test_native_llama2_style_template_strips_and_spaces():
    template = (
        "{{ bos_token }}{% for m in messages %}{% if m['role'] == 'user' %}{{ '[INST] ' + m['content'].strip() "
        "+ ' [/INST]' }}{% else %}{{ ' ' + m['content'].strip() + ' ' + eos_token }}{% endif %}{% endfor %}"
    )
    native = get_template("native", tiny.build_tokenizer(chat_template=template))
    messages = [
        Message("user", "Q1"),
        Message("assistant", " A1 "),
        Message("user", "Q2"),
        Message("assistant", "A2"),
    ]
    assert native.terminator == "</s>"
    assert native.render_training(messages) == [
        Segment("<s>[INST] Q1 [/INST]", False),
        Segment(" A1 </s>", True),
        Segment("[INST] Q2 [/INST] ", False),
        Segment("A2 </s>", True),
    ]


def test_native_response_equal_to_part_of_the_terminator_is_located():
    native = get_template("native", tiny.build_tokenizer())
    segments = native.render_training([Message("user", "q"), Message("assistant", "end")])
    assert segments[-1] == Segment("end<|im_end|>", True)


def test_native_template_that_rewrites_history_is_rejected():
    rewriting = (
        "{% for m in messages %}{{ m['role'] + ':' + m['content'] + '<|im_end|>' }}{% endfor %}"
        "{% if messages | length > 1 %}{{ 'turns:' + (messages | length) | string }}{% endif %}"
        "{% if add_generation_prompt %}{{ 'assistant:' }}{% endif %}"
    )
    native = get_template("native", tiny.build_tokenizer(chat_template=rewriting))
    with pytest.raises(UserError, match="not prefix-stable"):
        native.render_training(TWO_TURNS)


def test_native_template_without_end_of_turn_token_is_rejected():
    plain = "{% for m in messages %}{{ m['role'] + ': ' + m['content'] + '\n' }}{% endfor %}"
    with pytest.raises(UserError, match="could not learn to stop"):
        get_template("native", tiny.build_tokenizer(chat_template=plain))


def test_native_template_errors_become_user_errors():
    refusing = "{% if messages[0]['role'] == 'system' %}{{ raise_exception('no system role') }}{% endif %}"
    native_template = refusing + tiny.CHATML_TEMPLATE
    native = get_template("native", tiny.build_tokenizer(chat_template=native_template))
    with pytest.raises(UserError, match="no system role"):
        native.render_prompt(SYSTEM_CONVERSATION[:-1])


@pytest.mark.parametrize(
    ("roles", "message"),
    [
        (["assistant", "user"], "cannot render"),
        (["user", "user", "assistant"], "cannot render"),
        (["system"], "cannot render"),
        (["user", "assistant", "user"], "ending with an assistant message"),
    ],
)
def test_malformed_conversations_are_user_errors(roles, message, tiny_tokenizer):
    messages = [Message(role, "x") for role in roles]
    with pytest.raises(UserError, match=message):
        get_template("chatml", tiny_tokenizer).render_training(messages)


def test_prompt_must_end_with_a_user_turn(tiny_tokenizer):
    with pytest.raises(UserError, match="ending with a user message"):
        get_template("alpaca", tiny_tokenizer).render_prompt(SYSTEM_CONVERSATION)


def test_bad_roles_and_train_on_values_are_user_errors(tiny_tokenizer):
    with pytest.raises(UserError, match="unknown message role 'tool'"):
        Message("tool", "x")  # type: ignore[arg-type]
    with pytest.raises(UserError, match="only user messages take an input"):
        Message("assistant", "x", input="y")
    with pytest.raises(UserError, match="unknown train_on"):
        get_template("raw", tiny_tokenizer).render_training(TWO_TURNS, train_on="first")  # type: ignore[arg-type]


def test_tokenizer_without_eos_is_rejected_for_eos_terminated_formats():
    tokenizer = tiny.build_tokenizer()
    tokenizer.eos_token = None
    with pytest.raises(UserError, match="has none"):
        get_template("alpaca", tokenizer)
    assert get_template("chatml", tokenizer).terminator == "<|im_end|>"


def test_all_markers_cover_every_named_format():
    markers = all_markers()
    for marker in ("### Instruction", "<|im_start|>", "[INST]", "<|start_header_id|>", "USER:", "<|user|>"):
        assert marker in markers
    assert len(markers) == len(set(markers))
