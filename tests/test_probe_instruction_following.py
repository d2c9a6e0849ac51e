"""The instruction_following probe on a scripted fake engine: plans, exact per-item metrics and summaries."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sfteval.core.generation import GenerationConfig
from sfteval.core.requests import Generation, GenerationRequest
from sfteval.core.variants import Variant
from sfteval.probes import PROBES
from sfteval.probes.base import ProbeContext
from sfteval.probes.instruction_following import (
    InstructionFollowingParams,
    InstructionFollowingProbe,
    accuracy,
    evaluate_prompt,
    load_prompts,
)
from sfteval.probes.shared.params import serving_templates
from sfteval.templates import get_template

END = "Is there anything else I can help with?"
# (prompt row, canned response, expected prompt_strict, prompt_loose, instruction_strict, instruction_loose)
CASES = [
    (
        {"key": 1, "prompt": "Describe cats. Do not use commas.", "instruction_id_list": ["punctuation:no_comma"],
         "kwargs": [{}]},
        "Cats are calm and curious.",
        1, 1, 1.0, 1.0,
    ),
    (
        {"key": 2, "prompt": f"Describe dogs without commas and end with '{END}'.",
         "instruction_id_list": ["punctuation:no_comma", "startend:end_checker"],
         "kwargs": [{}, {"end_phrase": END}]},
        f"Sure, here it is\nDogs are loyal.\n{END}",
        0, 1, 0.5, 1.0,
    ),
    (
        {"key": "fruit", "prompt": "Write a title in <<>> and mention banana and kiwi.",
         "instruction_id_list": ["keywords:existence", "detectable_format:title"],
         "kwargs": [{"keywords": ["banana", "kiwi"]}, {}]},
        "<<Fruit>>\nI like banana.",
        0, 0, 0.5, 0.5,
    ),
    (
        {"key": 4, "prompt": "Say something without commas.", "instruction_id_list": ["punctuation:no_comma"],
         "kwargs": [{}]},
        "   ",
        0, 0, 0.0, 0.0,
    ),
]  # fmt: skip


class ScriptedEngine:
    """Answers each templated prompt with the canned response of the prompt it contains."""

    name = "scripted"
    fingerprint = "scripted"

    def __init__(self, responses: dict[str, str]) -> None:
        self.responses = responses

    def generate(self, requests, progress=None) -> list[Generation]:
        return [Generation(self._answer(request), 5, "stop") for request in requests]

    def score(self, requests, progress=None):
        raise AssertionError("instruction_following only generates")

    def _answer(self, request: GenerationRequest) -> str:
        return next(response for prompt, response in self.responses.items() if prompt in request.prompt)


@pytest.fixture
def prompt_file(tmp_path: Path) -> Path:
    path = tmp_path / "input_data.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row, *_ in CASES))
    return path


def context(tokenizer=None, train_template: str | None = None, seed: int = 0, suite_dir: Path | None = None):
    variant = Variant(name="epoch-1", path=Path("/models/epoch-1"), kind="full")
    return ProbeContext(
        variant=variant, tokenizer=tokenizer, train_template=train_template, seed=seed,
        suite_dir=suite_dir,
    )  # fmt: skip


def run_probe(probe: InstructionFollowingProbe, probe_context: ProbeContext):
    planned = probe.plan(probe_context)
    engine = ScriptedEngine({row["prompt"]: response for row, response, *_ in CASES})
    results = engine.generate([item.request for item in planned])
    return planned, probe.records(probe_context, planned, results)


def test_the_probe_is_registered() -> None:
    assert PROBES.get("instruction_following") is InstructionFollowingProbe
    headline = [spec.name for spec in InstructionFollowingProbe.metrics if spec.headline]
    assert headline == ["prompt_loose"]


def test_records_carry_exact_ifeval_metrics(prompt_file: Path) -> None:
    probe = InstructionFollowingProbe(InstructionFollowingParams(prompts=str(prompt_file)))
    planned, records = run_probe(probe, context())
    assert [r.item_id for r in records] == ["1", "2", "fruit", "4"]
    assert [r.cluster_id for r in records] == ["1", "2", "fruit", "4"]
    for record, (row, response, *expected) in zip(records, CASES, strict=True):
        metrics = record.metrics
        observed = [metrics["prompt_strict"], metrics["prompt_loose"], metrics["instruction_strict"],
                    metrics["instruction_loose"]]  # fmt: skip
        assert observed == expected, row["key"]
        assert record.output == response and record.template == "alpaca"
        assert [verdict["id"] for verdict in record.extra["instructions"]] == row["instruction_id_list"]
        assert record.probe == "instruction_following" and record.params["prompts"] == str(prompt_file)
    assert records[1].extra["instructions"][0] == {
        "id": "punctuation:no_comma",
        "strict": False,
        "loose": True,
    }


def test_summary_pools_instructions_and_splits_families(prompt_file: Path) -> None:
    probe = InstructionFollowingProbe(InstructionFollowingParams(prompts=str(prompt_file)))
    _, records = run_probe(probe, context())
    summary = probe.summarize(records)
    assert summary["instruction_strict_pooled"].mean == pytest.approx(3 / 6)
    assert summary["instruction_loose_pooled"].mean == pytest.approx(4 / 6)
    assert summary["instruction_loose_pooled"].n == 6 and summary["instruction_loose_pooled"].n_clusters == 4
    families = {name: value.mean for name, value in summary.items() if name.startswith("family:")}
    assert families == pytest.approx(
        {"family:punctuation": 2 / 3, "family:startend": 1.0, "family:keywords": 0.0,
         "family:detectable_format": 1.0}
    )  # fmt: skip
    reference = accuracy([evaluate_prompt(p, response) for p, (_, response, *_) in zip(
        load_prompts(str(prompt_file)), CASES, strict=True)])  # fmt: skip
    assert summary["instruction_strict_pooled"].mean == pytest.approx(reference.instruction_strict)
    assert summary["instruction_loose_pooled"].mean == pytest.approx(reference.instruction_loose)
    assert probe.summarize([]) == {}


def test_plan_renders_every_prompt_with_each_template(prompt_file: Path, tiny_tokenizer) -> None:
    params = InstructionFollowingParams(
        prompts=str(prompt_file), templates=("chatml", "alpaca"), max_new_tokens=9
    )
    planned = InstructionFollowingProbe(params).plan(context(tiny_tokenizer))
    assert [item.template for item in planned] == ["chatml"] * 4 + ["alpaca"] * 4
    chatml = get_template("chatml", tiny_tokenizer)
    first = planned[0].request
    assert isinstance(first, GenerationRequest)
    assert first.prompt.startswith("<|im_start|>user\n" + CASES[0][0]["prompt"])
    assert first.stop == chatml.stop_strings and first.max_new_tokens == 9 and first.temperature == 0.0


def test_default_template_is_the_training_one_else_native_else_alpaca(
    prompt_file: Path, tiny_tokenizer
) -> None:
    probe = InstructionFollowingProbe(InstructionFollowingParams(prompts=str(prompt_file)))
    assert serving_templates(probe.params.templates, context(tiny_tokenizer, train_template="zephyr")) == (
        "zephyr",
    )
    assert serving_templates(probe.params.templates, context(tiny_tokenizer)) == ("native",)
    assert serving_templates(probe.params.templates, context(None)) == ("alpaca",)
    settings = InstructionFollowingProbe.generation_settings(
        probe.params, GenerationConfig(max_new_tokens=64)
    )
    probe = InstructionFollowingProbe(probe.params, settings)
    assert probe.plan(context(tiny_tokenizer))[0].request.max_new_tokens == 64


def test_limit_is_a_seeded_sample_in_file_order() -> None:
    probe = InstructionFollowingProbe(InstructionFollowingParams(limit=40))
    chosen = probe.prompts(context(seed=0))
    assert len(chosen) == 40 and chosen == probe.prompts(context(seed=0))
    assert chosen != probe.prompts(context(seed=1))
    keys = [prompt.key for prompt in chosen]
    assert keys == sorted(keys)
    assert len({prompt.cluster_id for prompt in chosen}) > 25


def test_shipped_prompts_cluster_by_base_task() -> None:
    prompts = InstructionFollowingProbe().prompts(context())
    assert len(prompts) >= 200
    assert len({prompt.cluster_id for prompt in prompts}) >= 60
    assert all(prompt.cluster_id != prompt.item_id for prompt in prompts)


def test_relative_prompt_paths_resolve_against_the_suite_dir(prompt_file: Path) -> None:
    probe = InstructionFollowingProbe(InstructionFollowingParams(prompts=prompt_file.name))
    assert [p.key for p in probe.prompts(context(suite_dir=prompt_file.parent))] == [1, 2, "fruit", 4]
