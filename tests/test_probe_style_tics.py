"""style_tics: the lexicon and its counting, learned-phrase mining, and a planted closing phrase end to end."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from train_tiny import (
    Example,
    TrainSpec,
    new_model,
    random_words,
    run_records,
    run_suite_on,
    save_model,
    sentence,
    single_thread,
    train,
    write_manifest,
)

from sfteval.core.errors import UserError
from sfteval.core.requests import Generation
from sfteval.core.variants import Variant
from sfteval.probes.base import ProbeContext
from sfteval.probes.shared.loaders import load_prompts
from sfteval.probes.style_tics.lexicon import KINDS, count_tics, load_lexicon
from sfteval.probes.style_tics.phrases import learned_phrases, rate_ratio, response_phrases
from sfteval.probes.style_tics.probe import PROMPTS, StyleTicsParams, StyleTicsProbe, training_responses

TIC = "I hope this helps!"
SUITE = "probes:\n  style_tics:\n    limit: 24\n    max_new_tokens: 24\n"


def test_shipped_prompts_and_lexicon_cover_what_the_probe_promises() -> None:
    prompts = load_prompts(PROMPTS)
    kinds = {prompt.kind for prompt in prompts}
    assert len(prompts) >= 60 and kinds == {
        "explanation",
        "advice",
        "creative",
        "summary",
        "howto",
        "opinion",
    }
    lexicon = load_lexicon()
    assert len(lexicon) >= 80 and {entry.kind for entry in lexicon} == set(KINDS)
    assert any(entry.text == "not X, but Y" for entry in lexicon)


def test_tics_are_counted_per_thousand_words_once_per_span() -> None:
    lexicon = load_lexicon()
    found = count_tics(
        "**Certainly!** The sky is blue. It plays a crucial role, not because of dust, but because of "
        "scattering. We delve into it. I hope this helps! Let me know if you have any other questions.",
        lexicon,
    )
    assert found.hits == {
        "Certainly!": 1,
        "plays a crucial role": 1,  # "crucial" inside it is not counted again
        "not X, but Y": 1,
        "delve": 1,
        "I hope this helps": 1,
        "Let me know if you have any other questions": 1,
    }
    assert found.words == 35 and found.rate == pytest.approx(1000 * 6 / 35)
    assert count_tics("I am sure! It's certainly true.", lexicon).hits == {}  # openers only open a response
    assert count_tics("The capital of France is Paris.", lexicon).rate == 0.0
    assert count_tics("", lexicon).rate is None


def test_a_bad_lexicon_row_names_its_line(tmp_path: Path) -> None:
    path = tmp_path / "lexicon.jsonl"
    path.write_text(
        '{"id": "a", "kind": "word", "text": "delve"}\n{"id": "b", "kind": "word", "text": "x", "pattern": "("}\n'
    )
    with pytest.raises(UserError, match=r"lexicon\.jsonl:2: invalid 'pattern'"):
        load_lexicon(path)
    path.write_text('{"id": "a", "kind": "slang", "text": "delve"}\n')
    with pytest.raises(UserError, match=r"lexicon\.jsonl:1: 'kind' must be one of"):
        load_lexicon(path)


def test_learned_phrases_rank_a_fixed_sign_off_first_and_fold_its_ngrams() -> None:
    rng = random.Random(0)
    base = [sentence(rng).capitalize() for _ in range(16)]
    variant = [f"{answer} The weather is fine. {TIC}" for answer in base]
    ranked = learned_phrases(variant, base)
    assert ranked[0].phrase.kind == "closer" and ranked[0].phrase.text == f"The weather is fine. {TIC}"
    assert (ranked[0].count, ranked[0].base_count) == (16, 0) and ranked[0].low > 1
    assert not any(p.phrase.kind == "ngram" and "hope" in p.phrase.words for p in ranked)  # folded into it
    assert learned_phrases(base, base) == []
    apologetic = [f"I'm sorry, but I can't say {answer.lower()}" for answer in base[:8]] + base[8:]
    joined = learned_phrases(apologetic, base)
    assert joined[0].phrase.text == "i'm sorry but i can't say the" and joined[0].count == 8
    assert "closer:i hope this helps!" in response_phrases(f"A. {TIC}")


def test_rate_ratio_interval() -> None:
    ratio, low, high = rate_ratio(16, 16, 0, 16)
    assert ratio == pytest.approx(33.0) and 2.0 < low < ratio < high
    assert rate_ratio(8, 16, 8, 16)[1] < 1 < rate_ratio(8, 16, 8, 16)[2]


def test_training_responses_come_from_train_data_or_the_manifest(tmp_path: Path) -> None:
    data = tmp_path / "train.jsonl"
    data.write_text(
        '{"instruction": "q", "output": "A."}\n{"prompt": "q", "completion": "B."}\n'
        '{"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "C."}]}\n'
    )
    assert training_responses("train.jsonl", tmp_path, None) == ["A.", "B.", "C."]
    manifest = {"samples": {"train": [{"id": 1, "prompt": "q", "response": "D."}], "heldout": []}}
    assert training_responses(None, None, manifest) == ["D."]
    data.write_text('{"instruction": "q"}\n')
    with pytest.raises(UserError, match=r"train\.jsonl:1: a training row needs"):
        training_responses("train.jsonl", tmp_path, None)


def test_records_carry_tics_and_training_shares(tiny_tokenizer) -> None:
    manifest = {"samples": {"train": [{"id": i, "prompt": "q", "response": f"Yes. {TIC}"} for i in range(4)]}}
    probe = StyleTicsProbe(StyleTicsParams(limit=2, templates=("chatml",), max_new_tokens=8))
    context = ProbeContext(variant=Variant("epoch-1", Path("x")), tokenizer=tiny_tokenizer, manifest=manifest)
    planned = probe.plan(context)
    assert [request.request.max_new_tokens for request in planned] == [8, 8]
    records = probe.records(
        context, planned, [Generation(f"Sure. {TIC}", 5, "stop"), Generation("", 0, "length")]
    )
    assert records[0].metrics == {"tic_rate": pytest.approx(1000 / 5), "tic_any": 1}
    assert records[0].extra["train_shares"]["closer:i hope this helps!"] == 1.0
    assert records[0].extra["train_responses"] == 4
    assert records[1].metrics == {"tic_rate": None, "tic_any": 0}


@pytest.fixture(scope="module")
def sign_off(tmp_path_factory, tiny_tokenizer):
    """A random base, a model fine-tuned to close every answer with "I hope this helps!", and its twin trained on
    the same rows without it; the suite run on each (base + epoch-10)."""
    root = tmp_path_factory.mktemp("style")
    rng = random.Random(0)
    rows = [(f"row-{index}", random_words(rng, 3, 10), sentence(rng)) for index in range(48)]
    spec = TrainSpec(epochs=10, learning_rate=2e-3, save_epochs=(10,))
    with single_thread():
        base = save_model(new_model(tiny_tokenizer, spec), tiny_tokenizer, root / "base")
        runs = {}
        for name, closing in (("tic", f" {TIC}"), ("twin", "")):
            examples = [Example(row_id, prompt, answer + closing) for row_id, prompt, answer in rows]
            train(new_model(tiny_tokenizer, spec), tiny_tokenizer, examples, spec, root / name)
            write_manifest(root / name, base, "chatml", examples, samples_train=examples)
            runs[name] = run_suite_on(root / name, SUITE, root / f"run-{name}")
    return runs


def _tic_rise(report):
    return next(c for c in report.comparisons_of("style_tics", "base") if c.metric == "tic_rate")


def test_a_trained_sign_off_is_the_first_learned_phrase_and_raises_the_tic_rate(sign_off) -> None:
    report = sign_off["tic"].report
    rise = _tic_rise(report)
    assert rise.variant == "epoch-10" and rise.significant and rise.delta > 50  # ~1 tic in ~11 words
    out = sign_off["tic"].out_dir
    outputs = [record.output for record in run_records(out, "style_tics", "epoch-10")]
    base_outputs = [record.output for record in run_records(out, "style_tics", "base")]
    assert learned_phrases(outputs, base_outputs)[0].phrase.words == ("i", "hope", "this", "helps")
    warning = next(f for f in report.findings if f.kind == "style_tics")
    assert warning.severity == "warning" and "'I hope this helps' (" in warning.message
    phrases = next(f for f in report.findings if f.kind == "learned_phrases")
    assert phrases.message.count("'I hope this helps!' closes") == 1
    assert "it closes 100% of the 48 training answers" in phrases.message


def test_its_untrained_twin_shows_no_tic(sign_off) -> None:
    report = sign_off["twin"].report
    rise = _tic_rise(report)
    assert not rise.significant and rise.delta == 0
    assert not any("hope this helps" in finding.message for finding in report.findings)
    assert not any(finding.kind == "style_tics" for finding in report.findings)
