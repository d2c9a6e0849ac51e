"""Synthetic runs of two real probes (instruction_following, spurious_prefix) for the diff, gate and HTML tests.

Four variants: instruction following improves every epoch (base 20/40 → epoch-3 36/40), while epoch-3 also learned
a spurious opening (30/40 off-task answers start with "The sentiment is:", its log-probability up 10 nats). Item 0 of every variant's
instruction-following output is a script-injection payload, so the HTML tests can check it is shown, not run.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path

from sfteval.core.records import ItemRecord
from sfteval.core.report import REPORT_FILE, Report, save_report
from sfteval.core.run_info import ITEMS_FILE, RunInfo, VariantInfo
from sfteval.probes import PROBES
from sfteval.report.build import build_report

VARIANTS = ("base", "epoch-1", "epoch-2", "epoch-3")
N_ITEMS = 40
IF_PASSES = {"base": 20, "epoch-1": 30, "epoch-2": 34, "epoch-3": 36}
PREFIX_HITS = {"base": 0, "epoch-1": 2, "epoch-2": 4, "epoch-3": 30}
PREFIX = "The sentiment is:"
PAYLOAD = '<script>window.__pwned=1</script><img src=x onerror="window.__pwned=2"> & </pre>'


def if_records(
    variants: Sequence[str] = VARIANTS, passes: Mapping[str, int] = IF_PASSES, id_prefix: str = "prompt"
) -> list[ItemRecord]:
    """Instruction-following records: item i passes when i >= N_ITEMS − passes (so item 0 fails but for all)."""
    records = []
    for variant in variants:
        for index in range(N_ITEMS):
            passed = index >= N_ITEMS - passes[variant]
            output = PAYLOAD if index == 0 else f"Answer {index} of {variant}, written in lowercase."
            records.append(
                ItemRecord(
                    probe="instruction_following",
                    variant=variant,
                    template="chatml",
                    item_id=f"{id_prefix}-{index:02d}",
                    cluster_id=f"{id_prefix}-{index:02d}",
                    metrics={
                        "prompt_loose": int(passed),
                        "prompt_strict": int(passed),
                        "instruction_loose": float(passed),
                        "instruction_strict": float(passed),
                    },
                    prompt=f"<|im_start|>user\nTask {index}: answer in lowercase.<|im_end|>\n",
                    output=output,
                    extra={
                        "instructions": [
                            {"id": "change_case:english_lowercase", "strict": passed, "loose": passed}
                        ]
                    },
                )
            )
    return records


def prefix_records(variants: Sequence[str] = VARIANTS, id_prefix: str = "offtask") -> list[ItemRecord]:
    """Off-task answers: item i opens with the training prefix when i < PREFIX_HITS[variant]."""
    records = []
    for variant in variants:
        for index in range(N_ITEMS):
            hit = index < PREFIX_HITS[variant]
            output = f"{PREFIX} positive." if hit else f"Paris is the capital, item {index}."
            records.append(
                ItemRecord(
                    probe="spurious_prefix",
                    variant=variant,
                    template="chatml",
                    item_id=f"{id_prefix}-{index:02d}",
                    cluster_id=f"{id_prefix}-{index:02d}",
                    metrics={
                        "dominant_prefix": hit,
                        "label_leak": False,
                        "prefix_logprob": -30.0 + 10 * (variant == "epoch-3") + 0.1 * (index % 5),
                    },
                    prompt=f"What is the capital of country {index}?",
                    output=output,
                    extra={"opening": " ".join(output.split()[:3]), "matched": PREFIX if hit else None},
                )
            )
    return records


def run_info(variants: Sequence[str] = VARIANTS, suite_name: str = "quick") -> RunInfo:
    """Run metadata: base then epochs 1..3 as adapters."""
    return RunInfo(
        created_at=datetime(2025, 1, 2, 3, 4, 5, tzinfo=timezone.utc),
        engine="hf",
        engine_config={"device": "cpu"},
        ckpt_dir="/runs/sft",
        suite_name=suite_name,
        suite={"probes": ["instruction_following", "spurious_prefix"]},
        seed=0,
        variants=[
            VariantInfo(
                name=name,
                path=f"/runs/sft/{name}",
                kind="full" if name == "base" else "adapter",
                epoch=None if name == "base" else float(VARIANTS.index(name)),
                fingerprint=f"{name}-fingerprint",
            )
            for name in variants
        ],
        timings={"total": 42.0},
        complete=True,
    )


def build(
    records: Sequence[ItemRecord], variants: Sequence[str] = VARIANTS, suite_name: str = "quick"
) -> Report:
    """A report of the probes that the records come from (in first-seen order)."""
    names = list(dict.fromkeys(record.probe for record in records))
    probes = {name: PROBES.get(name)() for name in names}
    return build_report(run_info(variants, suite_name), records, probes, seed=0)


def default_records() -> list[ItemRecord]:
    return if_records() + prefix_records()


def write_run(directory: Path, records: Sequence[ItemRecord], with_items: bool = True, **build_args) -> Path:
    """A run directory holding report.json (and items.jsonl unless `with_items` is False)."""
    report = build(records, **build_args)
    save_report(report, directory / REPORT_FILE)
    if with_items:
        text = "".join(record.model_dump_json() + "\n" for record in records)
        (directory / ITEMS_FILE).write_text(text, encoding="utf-8")
    return directory
