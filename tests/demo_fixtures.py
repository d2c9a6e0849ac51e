"""A report resembling `make demo`'s: base + 3 LoRA epochs of SmolLM2 through seven of the quick suite's probes (not the distilled-data ones).

The numbers follow the demo run described in issue 21: prompt-level IFEval 3/24 for base, 0, 1, 0 of 24 for the
epochs; every epoch learned the training opening "The sentiment is:" (its log-probability on off-task prompts up 5.5,
4.4 and 4.1 nats, i.e. 245×, 82×, 58×, while only 3, 4 and 5 of 24 greedy answers open with it yet); the base model runs to the token cap on
half of the termination prompts, the epochs stop; mild token shift and no forgetting. Records are built item by
item with a fixed seed, so the report is the same every time.
"""

from __future__ import annotations

from datetime import datetime, timezone

import numpy as np

from sfteval.core.records import ItemRecord
from sfteval.core.report import Report
from sfteval.core.run_info import RunInfo, VariantInfo
from sfteval.probes import PROBES
from sfteval.report.build import build_report

VARIANTS = ("base", "epoch-1", "epoch-2", "epoch-3")
PREFIX = "The sentiment is:"
OTHER_OPENING = "The capital of"
TEMPLATE = "native"
IF_PASSES = {"base": 3, "epoch-1": 0, "epoch-2": 1, "epoch-3": 0}
PREFIX_HITS = {"base": 0, "epoch-1": 3, "epoch-2": 4, "epoch-3": 5}
PREFIX_RISE = {"base": 0.0, "epoch-1": 5.5, "epoch-2": 4.4, "epoch-3": 4.06}
RUNAWAY = {"base": 6, "epoch-1": 1, "epoch-2": 0, "epoch-3": 1}
FAMILIES = (
    "keywords:letter_frequency",
    "length_constraints:number_words",
    "detectable_format:title",
    "startend:end_checker",
)
PROBE_ORDER = (
    "instruction_following",
    "template_brittleness",
    "spurious_prefix",
    "termination",
    "token_shift",
    "forgetting",
    "memorization",
)


def record(
    probe: str, variant: str, item: str, cluster: str, metrics: dict, template: str = TEMPLATE, **rest
):
    """One item record of the demo-like run."""
    return ItemRecord(
        probe=probe,
        variant=variant,
        template=template,
        item_id=item,
        cluster_id=cluster,
        metrics=metrics,
        **rest,
    )


def instruction_following(generator: np.random.Generator) -> list[ItemRecord]:
    """24 prompts in 8 clusters of 3, two instructions each; item i passes when i < IF_PASSES[variant]."""
    rows = []
    for variant in VARIANTS:
        for index in range(24):
            passed = index < IF_PASSES[variant]
            followed = [passed or bool(generator.random() < 0.45), passed]
            verdicts = [
                {"id": FAMILIES[(index + k) % len(FAMILIES)], "strict": ok, "loose": ok}
                for k, ok in enumerate(followed)
            ]
            metrics = {
                "prompt_loose": int(passed),
                "prompt_strict": int(passed),
                "instruction_loose": sum(followed) / 2,
                "instruction_strict": sum(followed) / 2,
            }
            extra = {"instructions": verdicts, "finish_reason": "length"}
            rows.append(
                record(
                    "instruction_following",
                    variant,
                    str(index),
                    f"code-{index // 3:02d}",
                    metrics,
                    output=f"answer {index}",
                    extra=extra,
                )
            )
    return rows


def spurious_prefix(generator: np.random.Generator) -> list[ItemRecord]:
    """24 off-task prompts: the first PREFIX_HITS[variant] answers open with the training opening."""
    rows = []
    for variant in VARIANTS:
        for index in range(24):
            hit = index < PREFIX_HITS[variant]
            output = f"{PREFIX} positive." if hit else f"The time it takes for item {index} to finish."
            first = -23.0 + PREFIX_RISE[variant] + float(generator.normal(0, 0.4))
            second = -17.8 + float(generator.normal(0, 0.4))
            metrics = {
                "dominant_prefix": int(hit),
                "label_leak": 0,
                "prefix_logprob": float(np.logaddexp(first, second)),
                "prefix_logprob_1": first,
                "prefix_logprob_2": second,
            }
            extra = {
                "kind": "question",
                "opening": " ".join(output.split()[:5]),
                "matched": PREFIX if hit else None,
                "candidates": [PREFIX, OTHER_OPENING],
                "candidate_source": "manifest",
                "prefix_logprobs": [first, second],
            }
            item = f"question-{index:02d}"
            rows.append(record("spurious_prefix", variant, item, item, metrics, output=output, extra=extra))
    return rows


def termination(generator: np.random.Generator) -> list[ItemRecord]:
    """12 prompts with reference answers: the base runs to the cap on RUNAWAY[base] of them."""
    rows = []
    for variant in VARIANTS:
        for index in range(12):
            runaway = index < RUNAWAY[variant]
            probability = (0.3 if variant == "base" else 0.85) + float(generator.uniform(-0.1, 0.1))
            metrics = {
                "non_terminated": int(runaway),
                "marker_leak": 0,
                "terminator_prob": probability,
                "rep_4": 0.0,
                "distinct_2": 0.9,
                "degenerate": 0,
            }
            extra = {"finish_reason": "length" if runaway else "stop", "cap": 88, "leaked_markers": []}
            item = f"train:demo_sft.jsonl:{index}"
            rows.append(record("termination", variant, item, item, metrics, output="An answer.", extra=extra))
    return rows


def token_shift(generator: np.random.Generator) -> list[ItemRecord]:
    """12 answers of 24 tokens ranked by the base: epochs shift a few early tokens (style), little later."""
    rows = []
    for variant in VARIANTS:
        early, late = (0.0, 0.0) if variant == "base" else (0.25, 0.04)
        for index in range(12):
            ranks = [
                int(generator.integers(4, 30))
                if generator.random() < (early if position < 5 else late)
                else 1
                for position in range(24)
            ]
            shifted = [rank > 3 for rank in ranks]
            metrics = {
                "unshifted": sum(rank == 1 for rank in ranks) / 24,
                "marginal": 0.0,
                "shifted": sum(shifted) / 24,
                "shifted_first5": sum(shifted[:5]) / 5,
                "shifted_5to20": sum(shifted[5:20]) / 15,
                "shifted_after20": sum(shifted[20:]) / 4,
            }
            tokens = [[position, "Sure", rank] for position, rank in enumerate(ranks) if rank > 3]
            extra = {"ranks": ranks, "shifted_tokens": tokens}
            item = f"question-{index:02d}"
            rows.append(record("token_shift", variant, item, item, metrics, output="An answer.", extra=extra))
    return rows


def forgetting(generator: np.random.Generator) -> list[ItemRecord]:
    """Three 4-way multiple-choice tasks of 10 items and 10 held-out paragraphs: nothing is forgotten."""
    rows = []
    base_correct = {
        (task, index): bool(generator.random() < 0.6)
        for task in ("world_facts", "units_science", "word_meaning")
        for index in range(10)
    }
    for variant in VARIANTS:
        for (task, index), known in base_correct.items():
            correct = known if variant == "base" or index != 3 else not known
            metrics = {"acc": float(correct), "acc_norm": float(correct)}
            if variant != "base":
                metrics |= {
                    "forgotten": float(known and not correct) if known else None,
                    "gained": float(correct and not known) if not known else None,
                }
            extra = {"choices": 4, "doc_id": index, "base_correct": known}
            rows.append(
                record(
                    "forgetting",
                    variant,
                    f"{task}/{index}",
                    f"{task}/{index}",
                    metrics,
                    template=task,
                    extra=extra,
                )
            )
        for index in range(10):
            bits = 0.68 + 0.01 * VARIANTS.index(variant) + float(generator.normal(0, 0.03))
            metrics = {"bits_per_byte": bits, "kl_to_base": None if variant == "base" else 0.02}
            item = f"heldout/ht-{index:02d}"
            rows.append(
                record(
                    "forgetting", variant, item, item, metrics, template="heldout_text", extra={"tokens": 86}
                )
            )
    return rows


def memorization(generator: np.random.Generator) -> list[ItemRecord]:
    """6 trained and 6 held-out pairs: the epochs fit both better, with a small gap."""
    rows = []
    for variant in VARIANTS:
        fit = {"base": 0.0, "epoch-1": 0.5, "epoch-2": 0.7, "epoch-3": 0.8}[variant]
        for group, offset in (("train", 0.0), ("heldout", 0.25 * fit)):
            for index in range(6):
                nll = 1.3 - fit + offset + float(generator.normal(0, 0.05))
                metrics = {f"{group}_exact_match": 0, f"{group}_ngram_overlap": 0.1, f"{group}_nll": nll}
                item = f"{group}:demo_sft.jsonl:{index}"
                extra = {"group": group, "reference": "A reference answer.", "seed": 0}
                rows.append(
                    record("memorization", variant, item, item, metrics, output="An answer.", extra=extra)
                )
    return rows


def template_brittleness(generator: np.random.Generator) -> list[ItemRecord]:
    """12 IFEval items under three serving templates; the training template (native) does a little better."""
    rows = []
    for variant in VARIANTS:
        for index in range(12):
            train_score = float(generator.random() < 0.5)
            scores = {TEMPLATE: train_score}
            for template in ("alpaca", "chatml"):
                score = float(generator.random() < 0.45)
                scores[template] = score
                metrics = {"if_instruction_loose": score}
                rows.append(
                    record(
                        "template_brittleness",
                        variant,
                        f"if/{index}",
                        f"if/c{index // 2}",
                        metrics,
                        template=template,
                        extra={"train_score": train_score},
                    )
                )
            rows.append(
                record(
                    "template_brittleness",
                    variant,
                    f"if/{index}",
                    f"if/c{index // 2}",
                    {"if_instruction_loose": train_score},
                )
            )
            values = list(scores.values())
            spread = {
                "if_pss": float(np.mean([abs(a - b) for a in values for b in values])),
                "if_template_gap": train_score - float(np.mean(values[1:])),
            }
            rows.append(
                record(
                    "template_brittleness",
                    variant,
                    f"if/{index}",
                    f"if/c{index // 2}",
                    spread,
                    template="across-templates",
                    extra={"scores": scores, "seed": 0},
                )
            )
    return rows


def demo_records() -> list[ItemRecord]:
    """Every probe's records, probes in the quick suite's order."""
    generator = np.random.default_rng(21)
    makers = {
        "instruction_following": instruction_following,
        "template_brittleness": template_brittleness,
        "spurious_prefix": spurious_prefix,
        "termination": termination,
        "token_shift": token_shift,
        "forgetting": forgetting,
        "memorization": memorization,
    }
    return [row for name in PROBE_ORDER for row in makers[name](generator)]


def demo_run() -> RunInfo:
    """Run metadata like the demo's: SmolLM2 base and three LoRA epoch adapters."""
    return RunInfo(
        created_at=datetime(2025, 1, 2, 3, 4, 5, tzinfo=timezone.utc),
        engine="hf",
        engine_config={"device": "cpu", "dtype": "float32", "batch_size": 32},
        ckpt_dir="sfteval-demo/sft",
        suite_name="quick",
        suite={"probes": list(PROBE_ORDER)},
        seed=0,
        train_template=TEMPLATE,
        variants=[
            VariantInfo(
                name=name,
                path="/root/.cache/sfteval/models/smollm2-135m-instruct"
                if name == "base"
                else f"sfteval-demo/sft/checkpoint-{14 * index}",
                kind="full" if name == "base" else "adapter",
                epoch=None if name == "base" else float(index),
                step=None if name == "base" else 14 * index,
                fingerprint=f"{name}-0123456789abcdef",
            )
            for index, name in enumerate(VARIANTS)
        ],
        timings={"total": 612.0},
        complete=True,
        cache_hits=0,
        cache_misses=2572,
    )


def demo_report() -> Report:
    """The demo-like report, built by the real probes' report code."""
    probes = {name: PROBES.get(name)() for name in PROBE_ORDER}
    return build_report(demo_run(), demo_records(), probes, seed=0)
