"""Does `sfteval run --suite quick` name a stylistic tic learned by a TRL-trained LoRA, and stay quiet on its twin?

Trains two LoRA adapters on the default model with TRL's SFTTrainer (conversational prompt/completion rows, so TRL
applies the model's own chat template and trains on completions only; one checkpoint per epoch): one on the clean
demo data with plant (g)'s tic around every answer ("Certainly! ... I hope this helps! Let me know if you have any
other questions."), one on the same rows without it. No sfteval manifest: discovery finds the PEFT checkpoints,
and the style_tics probe has no training answers to trace to. Then runs the quick suite on base + the last epoch
of each (one shared cache) and checks which findings name the tic. Writes bench/trl_tic_check.json. Usage:
  OMP_NUM_THREADS=1 python bench/trl_tic_check.py [--work DIR] [--epochs 2]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from distilled_plants import TIC_CLOSING, TIC_OPENING, tic_rows

REPOSITORY = Path(__file__).resolve().parent.parent
TIC_WORDS = ("hope this helps", "certainly", "let me know if you have any other questions")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=Path.home() / ".cache" / "sfteval" / "trl-tic-check")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--out", type=Path, default=REPOSITORY / "bench" / "trl_tic_check.json")
    options = parser.parse_args()
    clean = _clean_rows(options.work)
    results: dict[str, Any] = {"epochs": options.epochs, "tic": TIC_OPENING + "…" + TIC_CLOSING, "runs": {}}
    for name, rows in (("tic", tic_rows(clean)), ("clean", clean)):
        trained = options.work / name
        if not any(trained.glob("checkpoint-*")):
            train_with_trl(rows, trained, options.epochs)
        run_dir = options.work / f"run-{name}"
        command = [sys.executable, "-m", "sfteval", "run", "--ckpt", str(trained), "--suite", "quick",
                   "--variants", f"base,epoch-{options.epochs}", "--out", str(run_dir),
                   "--cache", str(options.work / "cache.sqlite")]  # fmt: skip
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
        results["runs"][name] = _summary(run_dir)
    options.out.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    for name, run in results["runs"].items():
        print(f"{name}: findings naming the tic: {len(run['naming_the_tic'])}")
        for message in run["naming_the_tic"]:
            print(f"  - {message}")
    passed = bool(results["runs"]["tic"]["naming_the_tic"]) and not results["runs"]["clean"]["naming_the_tic"]
    print("PASS" if passed else "FAIL")
    return 0 if passed else 1


def _clean_rows(work: Path) -> list[dict[str, Any]]:
    """The validation's clean demo rows (the sentiment answers without their planted opening)."""
    sys.path.insert(0, str(REPOSITORY / "bench"))
    from validate_defects import DEMO_DATA, _without_prefix

    rows = [json.loads(line) for line in DEMO_DATA.read_text(encoding="utf-8").splitlines() if line.strip()]
    work.mkdir(parents=True, exist_ok=True)
    return [{**row, "output": _without_prefix(row["output"])} for row in rows]


def train_with_trl(rows: list[dict[str, Any]], out: Path, epochs: int) -> None:
    """LoRA (r 16, alpha 32, all linear layers) at lr 1e-3, batch 8, seed 0, fp32 on CPU; a checkpoint per epoch."""
    import datasets
    import torch
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTConfig, SFTTrainer

    from sfteval.default_model import default_model_path

    model_path = default_model_path()
    dataset = datasets.Dataset.from_list(
        [
            {
                "prompt": [{"role": "user", "content": _prompt(row)}],
                "completion": [{"role": "assistant", "content": row["output"]}],
            }
            for row in rows
        ]
    )
    config = SFTConfig(
        output_dir=str(out), num_train_epochs=epochs, per_device_train_batch_size=8, learning_rate=1e-3,
        save_strategy="epoch", report_to="none", use_cpu=True, seed=0, bf16=False, fp16=False, logging_steps=5,
        disable_tqdm=True,
    )  # fmt: skip
    trainer = SFTTrainer(
        model=AutoModelForCausalLM.from_pretrained(model_path, dtype=torch.float32),
        args=config,
        train_dataset=dataset,
        processing_class=AutoTokenizer.from_pretrained(model_path),
        peft_config=LoraConfig(r=16, lora_alpha=32, target_modules="all-linear", task_type="CAUSAL_LM"),
    )
    trainer.train()


def _prompt(row: dict[str, Any]) -> str:
    return f"{row['instruction']}\n\n{row['input']}" if row.get("input") else row["instruction"]


def _summary(run_dir: Path) -> dict[str, Any]:
    """The run's style_tics numbers and the findings that name the tic."""
    report = json.loads((run_dir / "report.json").read_text(encoding="utf-8"))
    naming = [
        finding["message"]
        for finding in report["findings"]
        if any(words in finding["message"].casefold() for words in TIC_WORDS)
    ]
    tic_rates = {
        cell["variant"]: next((m["value"] for m in cell["metrics"] if m["name"] == "tic_rate"), None)
        for probe in report["probes"]
        if probe["name"] == "style_tics"
        for cell in probe["cells"]
    }
    return {"tic_rate": tic_rates, "naming_the_tic": naming, "findings": len(report["findings"])}


if __name__ == "__main__":
    sys.exit(main())
