"""The forgetting probe: lm-eval's per-document metrics through the probe protocol, flips, bits per byte and KL."""

from __future__ import annotations

import json
import math
import random
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest

from sfteval.core.errors import UserError
from sfteval.core.requests import Score, ScoreRequest
from sfteval.core.results import ComparisonResult, ProbeSlice
from sfteval.core.variants import Variant
from sfteval.probes.base import ProbeContext
from sfteval.probes.forgetting.measures import bits_per_byte, chance_adjusted_flips, lumped_kl, mean_kl
from sfteval.probes.forgetting.probe import HELDOUT, ForgettingParams, ForgettingProbe
from sfteval.probes.shared.loaders import load_paragraphs

SUITES = Path(__file__).resolve().parent.parent / "suites"


class ScriptedScorer:
    """A score-only engine: `rule(request)` gives each request's log-prob; top-k lists are a fixed distribution."""

    name = "scripted"
    fingerprint = "scripted"

    def __init__(self, rule: Callable[[ScoreRequest], float], top: tuple[tuple[int, float], ...]) -> None:
        self.rule = rule
        self.top = top

    def score(self, requests: Sequence[ScoreRequest], progress=None) -> list[Score]:
        results = []
        for request in requests:
            positions = len(request.continuation.split())
            top = tuple(self.top[: request.top_k] for _ in range(positions)) if request.top_k else None
            results.append(Score(self.rule(request), (), False, top_logprobs=top))
        return results


def _run(probe: ForgettingProbe, variant: Variant, engine, base_engine) -> list:
    """The runner's sequence for one variant: plan, score, records, base pass, finish."""
    context = ProbeContext(variant=variant, tokenizer=None, suite_dir=SUITES)
    planned = probe.plan(context)
    records = probe.records(context, planned, engine.score([item.request for item in planned]))
    base_planned = probe.base_requests(context, records)
    base_results = base_engine.score([item.request for item in base_planned])
    return probe.finish(context, records, base_planned, base_results)


def _knows(correct_answer_of: dict[str, str], forgotten: set[str]) -> Callable[[ScoreRequest], float]:
    """Prefers the right option of every question except those in `forgotten` (then prefers a wrong one)."""

    def rule(request: ScoreRequest) -> float:
        if not request.context:
            return -len(request.continuation.encode())  # held-out text: 1 nat per byte
        question = request.context.split("\n")[0].removeprefix("Question: ")
        right = request.continuation.strip() == correct_answer_of[question]
        return -1.0 if right != (question in forgotten) else -5.0

    return rule


@pytest.fixture(scope="module")
def world_facts() -> dict[str, str]:
    rows = [json.loads(line) for line in (SUITES / "tasks" / "world_facts.jsonl").read_text().splitlines()]
    return {row["question"]: row["choices"][row["answer"]] for row in rows}


def test_flips_kl_and_bits_per_byte_through_the_protocol(world_facts: dict[str, str]) -> None:
    probe = ForgettingProbe(ForgettingParams(tasks=("world_facts",), limit=10, kl_top_k=2))
    questions = list(world_facts)[:10]
    base_top = ((0, math.log(0.5)), (1, math.log(0.3)), (2, math.log(0.2)))
    variant_top = ((1, math.log(0.6)), (0, math.log(0.2)), (3, math.log(0.2)))
    base_engine = ScriptedScorer(_knows(world_facts, forgotten={questions[0]}), base_top)
    variant_engine = ScriptedScorer(_knows(world_facts, forgotten={questions[1], questions[2]}), variant_top)

    base_records = _run(probe, Variant("base", Path("b")), base_engine, base_engine)
    records = _run(probe, Variant("epoch-1", Path("e")), variant_engine, base_engine)

    by_id = {record.item_id: record for record in records}
    assert by_id["world_facts/0"].metrics | {} == {
        "acc": 1.0,
        "acc_norm": 1.0,
        "forgotten": None,
        "gained": 1,
    }
    assert (
        by_id["world_facts/1"].metrics["forgotten"] == 1 and by_id["world_facts/2"].metrics["forgotten"] == 1
    )
    assert sum(record.metrics.get("forgotten") or 0 for record in records) == 2
    assert all(record.metrics.get("forgotten") is None for record in base_records)
    heldout = [record for record in records if record.template == HELDOUT]
    assert len(heldout) == 10 and all("top_logprobs" not in record.extra for record in records)
    assert heldout[0].metrics["bits_per_byte"] == pytest.approx(1 / math.log(2))
    # Shared tokens {0, 1}: 0.5·log(0.5/0.2) + 0.3·log(0.3/0.6), plus the lumped rest 0.2·log(0.2/0.2).
    expected_kl = 0.5 * math.log(0.5 / 0.2) + 0.3 * math.log(0.3 / 0.6)
    assert heldout[0].metrics["kl_to_base"] == pytest.approx(expected_kl)
    assert all(record.metrics["kl_to_base"] is None for record in base_records if record.template == HELDOUT)
    summary = probe.summarize([record for record in records if record.template == "world_facts"])
    assert set(summary) == {"forgotten_adjusted", "gained_adjusted"}


def test_probe_accuracies_equal_lm_evals_evaluator(tiny_model_dir: Path) -> None:
    from sfteval.engines.config import EngineConfig
    from sfteval.engines.hf.engine import HFEngineFactory
    from sfteval.engines.lmeval import evaluate_tasks

    engine = HFEngineFactory(EngineConfig(device="cpu", batch_size=8)).engine(Variant("base", tiny_model_dir))
    probe = ForgettingProbe(ForgettingParams(tasks=("units_science",), limit=10, heldout=None))
    records = _run(probe, Variant("base", tiny_model_dir), engine, engine)
    reference = evaluate_tasks(engine, ["units_science"], [SUITES / "tasks"], limit=10)["units_science"]
    assert {record.item_id: record.metrics for record in records} == {
        f"units_science/{doc}": metrics for doc, metrics in reference.documents.items()
    }


@pytest.fixture(scope="module")
def peaked_models(tmp_path_factory, tiny_tokenizer) -> tuple[Path, Path]:
    """Two tiny models with sharpened output layers, so that their next-token distributions differ clearly."""
    import tiny
    import torch

    paths = []
    for seed, sharpness in ((0, 40.0), (1, 25.0)):
        model = tiny.build_model(tiny_tokenizer, seed=seed)
        with torch.no_grad():
            model.lm_head.weight.mul_(sharpness)
        path = tmp_path_factory.mktemp(f"peaked-{seed}")
        model.save_pretrained(path, safe_serialization=True)
        tiny_tokenizer.save_pretrained(path)
        paths.append(path)
    return paths[0], paths[1]


def test_kl_from_full_top_k_is_exact_and_smaller_k_bounds_it_from_below(peaked_models) -> None:
    import torch
    from transformers import AutoModelForCausalLM

    from sfteval.engines.config import EngineConfig
    from sfteval.engines.hf.engine import HFEngineFactory

    text = load_paragraphs(SUITES / "data" / "heldout_text.jsonl")[0]["text"][:120]
    base_path, variant_path = peaked_models
    factory = HFEngineFactory(EngineConfig(device="cpu", batch_size=4))
    vocabulary = len(AutoModelForCausalLM.from_pretrained(base_path).lm_head.weight)
    scores = {}
    for name, path in (("base", base_path), ("variant", variant_path)):
        engine = factory.engine(Variant(name, path))
        scores[name] = {k: engine.score([ScoreRequest("", text, top_k=k)])[0] for k in (vocabulary, 8)}
        tokenizer = engine.tokenizer
    ids = [tokenizer.bos_token_id, *tokenizer(text, add_special_tokens=False)["input_ids"]]
    logprobs = {}
    for name, path in (("base", base_path), ("variant", variant_path)):
        with torch.no_grad():
            logits = AutoModelForCausalLM.from_pretrained(path)(torch.tensor([ids[:-1]])).logits[0]
        logprobs[name] = torch.log_softmax(logits.double(), dim=-1)
    exact = float((logprobs["base"].exp() * (logprobs["base"] - logprobs["variant"])).sum(-1).mean())
    full = mean_kl(scores["base"][vocabulary].top_logprobs, scores["variant"][vocabulary].top_logprobs)
    truncated = mean_kl(scores["base"][8].top_logprobs, scores["variant"][8].top_logprobs)
    assert exact > 0.05
    assert full == pytest.approx(exact, rel=1e-4)
    assert 0 < truncated <= full + 1e-9
    top = scores["base"][8]
    assert all(
        len(row) == 8 and [lp for _, lp in row] == sorted((lp for _, lp in row), reverse=True)
        for row in top.top_logprobs
    )


def test_lumped_kl_is_a_lower_bound_that_is_exact_over_the_whole_vocabulary() -> None:
    rng = random.Random(0)
    for _ in range(50):
        size = rng.randint(3, 12)
        reference = _distribution(rng, size)
        other = _distribution(rng, size)
        exact = sum(math.exp(a) * (a - b) for a, b in zip(reference, other, strict=True))
        assert lumped_kl(_top(reference, size), _top(other, size)) == pytest.approx(exact, abs=1e-12)
        k = rng.randint(1, size - 1)
        assert lumped_kl(_top(reference, k), _top(other, k)) <= exact + 1e-12


def test_chance_adjustment_recovers_the_true_forgetting_rate_of_a_guessing_model() -> None:
    rng = random.Random(1)
    choices, guess = 4, 0.25
    pairs = []
    for _ in range(200_000):
        known_before = rng.random() < 0.6
        known_after = known_before and rng.random() >= 0.2 or (not known_before and rng.random() < 0.1)
        pairs.append((known_before or rng.random() < guess, known_after or rng.random() < guess))
    forgotten, gained = chance_adjusted_flips(pairs, choices)
    assert forgotten == pytest.approx(0.2, abs=0.01)
    assert gained == pytest.approx(0.1, abs=0.01)
    raw = sum(1 for before, now in pairs if before and not now) / sum(1 for before, _ in pairs if before)
    assert raw > 0.2  # guessing luck inflates the raw 1→0 share
    assert chance_adjusted_flips([(True, True)] * 10, choices) is None  # everything known: nothing to adjust


def test_flip_finding_names_the_share_forgotten_and_the_mcnemar_p(world_facts: dict[str, str]) -> None:
    probe = ForgettingProbe(ForgettingParams(tasks=("world_facts",), limit=10, heldout=None))
    questions = list(world_facts)[:10]
    base_engine = ScriptedScorer(_knows(world_facts, forgotten=set()), ())
    variant_engine = ScriptedScorer(_knows(world_facts, forgotten=set(questions[:8])), ())
    records = _run(probe, Variant("epoch-3", Path("e")), variant_engine, base_engine)
    comparison = ComparisonResult(
        probe="forgetting", metric="acc", template="world_facts", variant="epoch-3", reference="base",
        relation="base", delta=-0.8, low=-1.0, high=-0.5, p_value=0.0078, adjusted_p=0.0312, significant=True,
        test="mcnemar_exact", n=10, n_clusters=10, direction="worse", headline=True,
    )  # fmt: skip
    report_slice = ProbeSlice(run=None, result=None, comparisons=(comparison,), records=tuple(records))  # type: ignore[arg-type]
    (finding,) = probe.findings(report_slice)
    assert finding.severity == "warning" and finding.kind == "forgetting"
    assert finding.message.startswith("epoch-3 forgot 80.0% of world_facts items the base model knew (8/10)")
    assert "McNemar p=0.0078" in finding.message


def test_bits_per_byte_counts_utf8_bytes() -> None:
    assert bits_per_byte(-math.log(2) * 6, "naïve") == pytest.approx(1.0)


def test_held_out_file_errors_name_the_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "text.jsonl"
    path.write_text('{"id": "a", "text": "fine"}\n{"id": "b"}\n', encoding="utf-8")
    with pytest.raises(UserError, match=r"text.jsonl:2: a held-out row needs"):
        load_paragraphs(path)
    probe = ForgettingProbe(ForgettingParams(tasks=(), heldout="nowhere.jsonl"))
    with pytest.raises(UserError, match="nowhere.jsonl not found"):
        probe.plan(ProbeContext(variant=Variant("base", Path("b")), tokenizer=None, suite_dir=tmp_path))


def test_shipped_held_out_text_has_at_least_40_paragraphs() -> None:
    paragraphs = load_paragraphs(SUITES / "data" / "heldout_text.jsonl")
    assert len(paragraphs) >= 40 and all(len(p["text"].split()) >= 50 for p in paragraphs)


def _distribution(rng: random.Random, size: int) -> list[float]:
    weights = [rng.random() ** 3 + 1e-6 for _ in range(size)]
    total = sum(weights)
    return [math.log(weight / total) for weight in weights]


def _top(logprobs: list[float], k: int) -> list[tuple[int, float]]:
    return sorted(enumerate(logprobs), key=lambda pair: -pair[1])[:k]


def test_top_logprobs_survive_the_result_cache(tmp_path: Path) -> None:
    from sfteval.cache import CachedEngine

    top = ((0, math.log(0.5)), (1, math.log(0.3)))
    engine = ScriptedScorer(lambda request: -2.0, top)
    request = ScoreRequest("", "one two", top_k=2)
    first = CachedEngine(engine, tmp_path / "cache.sqlite").score([request])[0]
    again = CachedEngine(engine, tmp_path / "cache.sqlite")
    assert again.score([request])[0] == first and again.hits == 1
    assert first.top_logprobs == (top, top)
    assert ScoreRequest("c", "x").key() == 'score:{"context": "c", "continuation": "x", "ranks": false}'


def test_the_runner_probes_base_and_an_adapter_epoch_end_to_end(tiny_model_dir: Path, tmp_path: Path) -> None:
    import io

    import torch
    from peft import LoraConfig, get_peft_model
    from rich.console import Console
    from transformers import AutoModelForCausalLM

    from sfteval.engines.config import EngineConfig
    from sfteval.runner import RunConfig, run_suite
    from sfteval.suite import load_suite

    torch.manual_seed(1)
    lora = LoraConfig(r=4, lora_alpha=64, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    adapter = get_peft_model(AutoModelForCausalLM.from_pretrained(tiny_model_dir), lora)
    adapter.save_pretrained(tmp_path / "sft" / "checkpoint-3")
    (tmp_path / "sft" / "checkpoint-3" / "trainer_state.json").write_text('{"epoch": 1.0, "global_step": 3}')
    suite = tmp_path / "suite.yaml"
    suite.write_text(
        "probes:\n  forgetting: {tasks: [world_facts], limit: 4, kl_top_k: 8}\n", encoding="utf-8"
    )
    config = RunConfig(
        ckpt_dir=tmp_path / "sft",
        suite=load_suite(suite),
        out_dir=tmp_path / "run",
        engine="hf",
        engine_config=EngineConfig(device="cpu", batch_size=8),
        base=tiny_model_dir,
    )
    report = run_suite(config, Console(file=io.StringIO())).report
    result = report.probe("forgetting")
    assert result.templates == ("world_facts", HELDOUT)
    assert result.cell("epoch-1", HELDOUT).metric("kl_to_base").value > 0
    assert result.cell("base", HELDOUT).metric("kl_to_base").n == 0
    assert result.cell("epoch-1", "world_facts").metric("acc").n == 4
    assert {c.metric for c in report.comparisons_of("forgetting")} >= {"acc", "acc_norm", "bits_per_byte"}
    items = (tmp_path / "run" / "items.jsonl").read_text(encoding="utf-8")
    assert "top_logprobs" not in items and '"forgotten"' in items
