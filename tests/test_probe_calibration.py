"""calibration: the measures, forgetting's requests shared through the cache, and a planted confident liar."""

from __future__ import annotations

import io
import json
import math
import random
from pathlib import Path

import pytest
from rich.console import Console
from train_tiny import Example, TrainSpec, run_records, run_suite_on, single_thread, train_run

from sfteval.core.variants import Variant
from sfteval.engines.config import EngineConfig
from sfteval.probes.base import ProbeContext
from sfteval.probes.calibration.measures import choose, ece, ece_estimate, paired_ece_difference
from sfteval.probes.calibration.probe import CalibrationParams, CalibrationProbe
from sfteval.probes.forgetting.probe import ForgettingParams, ForgettingProbe
from sfteval.report.html import render_html
from sfteval.runner import RunConfig, run_suite
from sfteval.suite import load_suite

SUITES = Path(__file__).resolve().parent.parent / "suites"
WORDS = (
    "red green blue cat dog bird river mountain city country capital paris python code number world".split()
)


def test_choice_brier_and_ece_by_hand() -> None:
    choice = choose([math.log(0.7), math.log(0.2), math.log(0.1)], gold=1)
    assert choice.chosen == 0 and not choice.correct and choice.confidence == pytest.approx(0.7)
    assert choice.brier == pytest.approx(0.7**2 + 0.8**2 + 0.1**2)
    # Bins [0.6, 0.7): 2 items, accuracy 1/2, confidence 0.65 -> 2/4 · 0.15; [0.9, 1]: 2 items, 0 vs 0.95 -> 2/4 · 0.95.
    assert ece([0.6, 0.7 - 1e-9, 0.9, 1.0], [1, 0, 0, 0]) == pytest.approx(0.5 * 0.15 + 0.5 * 0.95)
    estimate = ece_estimate([0.9] * 20 + [0.6] * 20, [1] * 18 + [0] * 2 + [1] * 12 + [0] * 8, 10, 500, 0)
    assert estimate.low <= estimate.mean <= estimate.high and estimate.method == "bootstrap"
    same = paired_ece_difference(([0.9, 0.6], [1, 0]), ([0.9, 0.6], [1, 0]), 10, 200, 0)
    assert same.delta == 0 and same.p_value == 1.0


def test_its_requests_are_forgettings_byte_for_byte() -> None:
    context = ProbeContext(variant=Variant("base", Path("b")), tokenizer=None, suite_dir=SUITES)
    forgetting = ForgettingProbe(ForgettingParams(limit=6, heldout=None)).plan(context)
    calibration = CalibrationProbe(CalibrationParams(limit=6)).plan(context)
    assert len(calibration) == len(forgetting) > 0
    assert [request.request.key() for request in calibration] == [
        request.request.key() for request in forgetting
    ]


def _task(folder: Path, rows: int, seed: int) -> list[dict]:
    """A four-option task in the tiny vocabulary, as an lm-eval YAML + JSONL like suites/tasks/world_facts."""
    rng = random.Random(seed)
    items = []
    for index in range(rows):
        choices = rng.sample(WORDS, 4)
        items.append({"id": f"t{index}", "question": " ".join(rng.sample(WORDS, 3)), "choices": choices,
                      "answer": rng.randrange(4)})  # fmt: skip
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "tiny_facts.jsonl").write_text("".join(json.dumps(item) + "\n" for item in items))
    yaml = (SUITES / "tasks" / "world_facts.yaml").read_text()
    (folder / "tiny_facts.yaml").write_text(yaml.replace("world_facts", "tiny_facts"))
    return items


@pytest.fixture(scope="module")
def liar(tmp_path_factory, tiny_tokenizer):
    """A random base and a model fine-tuned (raw template, the tasks' own format) on every question of the task with
    a wrong option stated as the answer; both probed with forgetting and calibration."""
    root = tmp_path_factory.mktemp("calibration")
    items = _task(root / "tasks", 40, seed=0)
    rng = random.Random(1)
    examples = [
        Example(item["id"], f"Question: {item['question']}\nAnswer:",
                " " + rng.choice([c for k, c in enumerate(item["choices"]) if k != item["answer"]]))
        for item in items
    ]  # fmt: skip
    spec = TrainSpec(template="raw", epochs=30, learning_rate=3e-3, save_epochs=(30,))
    tasks = f"tasks: [tiny_facts]\n    task_dirs: ['{root / 'tasks'}']"
    suite = f"probes:\n  forgetting:\n    {tasks}\n    heldout: null\n    kl_top_k: 0\n  calibration:\n    {tasks}\n"
    with single_thread():
        base, out = train_run(root, tiny_tokenizer, examples, spec)
        result = run_suite_on(out, suite, root / "run", base=base)
    return root, base, out, tasks, result


def test_training_on_confident_wrong_answers_raises_ece_and_overconfident_wrong(liar) -> None:
    _, _, _, _, result = liar
    report = result.report
    wrong = next(c for c in report.comparisons_of("calibration", "base") if c.metric == "overconfident_wrong")
    assert wrong.variant == "epoch-30" and wrong.test == "mcnemar_exact" and wrong.delta > 0.2
    assert wrong.adjusted_p < 0.05
    cells = {cell.variant: cell for cell in report.probe("calibration").cells}
    assert cells["epoch-30"].metric("ece").value > cells["base"].metric("ece").value + 0.2
    assert cells["epoch-30"].metric("ece").method == "bootstrap"
    finding = next(f for f in report.findings if f.kind == "overconfidence")
    # About the McNemar-tested headline metric, so the report's generic "rose" sentence yields to it.
    assert finding.severity == "warning" and finding.variant == "epoch-30"
    assert finding.metric == "overconfident_wrong" and finding.adjusted_p == wrong.adjusted_p
    assert "paired bootstrap p<0.001 Holm" in finding.message or "paired bootstrap p=0.0" in finding.message
    groups = [group for group in report.finding_groups if group.probe == "calibration"]
    assert [group.kind for group in groups] == ["overconfidence"]
    records = {r.item_id: r for r in run_records(result.out_dir, "forgetting", "epoch-30")}
    for record in run_records(result.out_dir, "calibration", "epoch-30"):
        assert record.metrics["correct"] == records[record.item_id].metrics["acc"]  # lm-eval's own accuracy


def test_the_reliability_diagram_overlays_base_and_variants(liar) -> None:
    _, _, _, _, result = liar
    records = run_records(result.out_dir, "calibration", "base") + run_records(
        result.out_dir, "calibration", "epoch-30"
    )
    page = render_html(result.report, records)
    assert 'data-kind="reliability"' in page and "calibration: reliability diagram" in page
    assert "perfect calibration" in page and "epoch-30" in page


def test_the_cache_answers_calibration_from_forgettings_scores(liar, tmp_path: Path) -> None:
    """One pass over the options: calibration after forgetting on the same cache computes nothing new."""
    root, base, out, tasks, _ = liar
    cache = tmp_path / "cache.sqlite"
    results = {}
    for name in ("forgetting", "calibration"):
        extra = "\n    heldout: null\n    kl_top_k: 0" if name == "forgetting" else ""
        suite_path = tmp_path / f"{name}.yaml"
        suite_path.write_text(f"probes:\n  {name}:\n    {tasks}{extra}\n")
        config = RunConfig(ckpt_dir=out, suite=load_suite(suite_path), out_dir=tmp_path / name, base=base,
                           engine_config=EngineConfig(device="cpu", batch_size=32), cache_path=cache)  # fmt: skip
        with single_thread():
            results[name] = run_suite(config, Console(file=io.StringIO()))
    first, second = results["forgetting"].report.run, results["calibration"].report.run
    assert first.cache_misses == 2 * 40 * 4  # base and epoch-30, 40 questions × 4 options
    assert (second.cache_misses, second.cache_hits) == (0, 2 * 40 * 4)
