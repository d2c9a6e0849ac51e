"""Cost of one KV-cached decode step by batch width and torch thread count (issue 19: threads and batch width).

Loads the default model (float32), prefills `--context` random tokens for each width, then times six single-token
steps and prints the median per step and per row. Run it once idle and once beside another busy process to see
why sfteval picks its thread count from the free cores (bench/RESULTS.md).

    .venv/bin/python bench/decode_step_cost.py --threads 2 [--widths 1,8,16,32,64] [--context 100]
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

DEFAULT_MODEL = Path.home() / ".cache" / "sfteval" / "models" / "smollm2-135m-instruct"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL)
    parser.add_argument("--threads", type=int, required=True)
    parser.add_argument("--widths", default="1,8,16,32,64,96")
    parser.add_argument("--context", type=int, default=100)
    options = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch
    from transformers import AutoModelForCausalLM

    torch.set_num_threads(options.threads)
    model = (
        AutoModelForCausalLM.from_pretrained(options.model, dtype=torch.float32).eval().requires_grad_(False)
    )
    print(f"threads {options.threads}, load {os.getloadavg()[0]:.2f}")
    with torch.no_grad():
        for width in (int(value) for value in options.widths.split(",")):
            generator = torch.Generator().manual_seed(0)
            ids = torch.randint(0, 40000, (width, options.context), generator=generator)
            cache = model(input_ids=ids, use_cache=True, logits_to_keep=1).past_key_values
            mask = torch.ones(width, options.context + 1, dtype=torch.long)
            seconds = []
            for _ in range(6):
                step = torch.randint(0, 40000, (width, 1), generator=generator)
                started = time.perf_counter()
                output = model(
                    input_ids=step,
                    attention_mask=mask,
                    past_key_values=cache,
                    use_cache=True,
                    logits_to_keep=1,
                )
                seconds.append(time.perf_counter() - started)
                cache = output.past_key_values
                mask = torch.cat([mask, torch.ones(width, 1, dtype=torch.long)], dim=1)
            median = sorted(seconds)[len(seconds) // 2]
            print(f"width {width:3d}: {1000 * median:7.1f} ms a step, {1000 * median / width:6.2f} ms a row")


if __name__ == "__main__":
    main()
