"""Every performance figure of sfteval in one run on one machine: writes bench/RESULTS.md and bench/results.json.

Each figure is a ratio against a reference measured back to back in the same process, and each figure runs in its
own process (`run_all.py --figure NAME --json FILE`) so that its peak memory is its own: the parent reads the
child's max RSS from os.wait4, which covers the child and every process it waited for (getrusage(RUSAGE_CHILDREN)
would give the largest child so far, not this one's). Load averages before and after each figure are recorded:
other processes on the machine inflate wall times.

    .venv/bin/python bench/run_all.py [--only generation,rerun] [--quick] [--threads 1] [--out bench/RESULTS.md]

The full run takes about 30 minutes on a 2-core CPU (the demo alone about 8); `--quick` shrinks every workload
(except the demo, which has one size) for a smoke check, and labels RESULTS.md as such.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
FIGURES = {
    "generation": "Generation overhead: hf engine + fresh cache vs `model.generate`",
    "scoring": "Scoring vs lm-eval's HF backend (HFLM), zero-shot",
    "scoring_5shot": "Scoring vs lm-eval's HF backend (HFLM), 5-shot",
    "training": "Trainer vs TRL SFTTrainer",
    "rerun": "Rerun after adding one epoch",
    "demo": "`sfteval demo` wall time",
}
PACKAGES = ("torch", "transformers", "peft", "trl", "lm_eval", "accelerate")


def parse_arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", help=f"comma-separated figures (default all): {', '.join(FIGURES)}")
    parser.add_argument("--out", type=Path, default=BENCH / "RESULTS.md", help="the Markdown table")
    parser.add_argument(
        "--json", type=Path, default=None, help="raw numbers (default: results.json next to --out)"
    )
    parser.add_argument("--threads", type=int, default=1, help="OMP_NUM_THREADS of every figure's processes")
    parser.add_argument("--quick", action="store_true", help="smaller sizes: a smoke check, not the figures")
    parser.add_argument("--figure", choices=list(FIGURES), help=argparse.SUPPRESS)
    options = parser.parse_args()
    names = [name.strip() for name in (options.only or ",".join(FIGURES)).split(",") if name.strip()]
    unknown = [name for name in names if name not in FIGURES]
    if unknown or not names:
        parser.error(
            f"--only: unknown figure(s) {', '.join(unknown) or '(none given)'}; known: {', '.join(FIGURES)}"
        )
    if options.threads < 1:
        parser.error("--threads must be at least 1")
    options.names = names
    options.json = options.json or options.out.with_name("results.json")
    return options


def run_one_figure(name: str, json_path: Path, threads: int, quick: bool) -> None:
    """Child mode: measure one figure and write its {"summary", "raw"} JSON."""
    sys.path.insert(0, str(BENCH))
    sys.path.insert(0, str(ROOT))
    import _run_all_figures
    import _run_all_rerun

    functions = {
        "generation": _run_all_figures.generation,
        "scoring": _run_all_figures.scoring,
        "scoring_5shot": _run_all_figures.scoring_5shot,
        "training": _run_all_figures.training,
        "rerun": _run_all_rerun.rerun,
        "demo": _run_all_figures.demo,
    }
    sizes = _run_all_figures.Sizes.quick() if quick else _run_all_figures.Sizes()
    result = functions[name](sizes, threads)
    json_path.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")


def child_environment(threads: int) -> dict[str, str]:
    """The figures' environment: fixed thread count, offline, no tokenizer thread pool."""
    return {
        **os.environ,
        "OMP_NUM_THREADS": str(threads),
        "MKL_NUM_THREADS": str(threads),
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "TOKENIZERS_PARALLELISM": "false",
    }


def measure_figure(name: str, options: argparse.Namespace, folder: Path) -> dict[str, Any]:
    """Run one figure in its own process: its results plus wall time, peak RSS and load before/after."""
    output = folder / f"{name}.json"
    command = [sys.executable, str(Path(__file__).resolve()), "--figure", name, "--json", str(output),
               "--threads", str(options.threads), *(["--quick"] if options.quick else [])]  # fmt: skip
    load_before = os.getloadavg()
    started = time.perf_counter()
    process = subprocess.Popen(command, env=child_environment(options.threads), cwd=ROOT)
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - started
    load_after = os.getloadavg()
    result: dict[str, Any] = {"error": f"exit status {process.returncode}"}
    if process.returncode == 0 and output.is_file():
        result = json.loads(output.read_text(encoding="utf-8"))
    return {
        **result,
        "returncode": process.returncode,
        "wall_seconds": round(wall, 1),
        "max_rss_mib": round(usage.ru_maxrss / 1024),  # Linux reports KiB
        "load_before": [round(value, 2) for value in load_before],
        "load_after": [round(value, 2) for value in load_after],
    }


def describe_machine(threads: int) -> dict[str, Any]:
    """CPU model, core count, RAM, library versions and the thread count the figures ran with."""
    cpuinfo = Path("/proc/cpuinfo").read_text(encoding="utf-8")
    meminfo = Path("/proc/meminfo").read_text(encoding="utf-8")
    model = re.search(r"^model name\s*:\s*(.+)$", cpuinfo, re.MULTILINE)
    memory = re.search(r"^MemTotal:\s+(\d+) kB", meminfo, re.MULTILINE)
    flags = re.search(r"^flags\s*:\s*(.+)$", cpuinfo, re.MULTILINE)
    bf16 = sorted(set(flags.group(1).split()) & {"avx512_bf16", "amx_bf16"}) if flags else []
    return {
        "cpu": model.group(1).strip() if model else platform.processor() or "unknown",
        # The trainer's precision follows it (auto = bf16 autocast where the CPU has it); the engines stay fp32.
        "bf16_flags": bf16,
        "cpus": os.cpu_count(),
        "usable_cpus": len(os.sched_getaffinity(0)),
        "ram_gib": round(int(memory.group(1)) / 1024**2, 1) if memory else None,
        "threads": threads,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "versions": {name: _version(name) for name in PACKAGES},
    }


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def verdict(figure: dict[str, Any]) -> str:
    if "summary" not in figure:
        return f"failed ({figure['error']})"
    met = figure["summary"]["met"]
    return "—" if met is None else "met" if met else "not met"


def render_markdown(results: dict[str, Any], command: str) -> str:
    """RESULTS.md: the table of figures, notes per figure, and the machine."""
    lines = ["# sfteval performance figures", ""]
    if results["quick"]:
        lines += [
            "> **QUICK SMOKE RUN (`--quick`): reduced sizes, only some figures. These are NOT the reference "
            "figures;** run `.venv/bin/python bench/run_all.py` on an idle machine for those.",
            "",
        ]
    lines += [
        f"Measured {results['started']} with `{command}`. Each figure is measured against its reference back "
        f"to back on this machine, in its own process, with OMP_NUM_THREADS={results['machine']['threads']}.",
        "",
        "| # | figure | sfteval | reference | result | goal | verdict | wall (s) | peak RSS (MiB) "
        "| load (1 min) before → after |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, figure in results["figures"].items():
        number = list(FIGURES).index(name) + 1
        row = figure.get("summary") or {"sfteval": "—", "reference": "—", "result": "—", "goal": "—"}
        lines.append(
            f"| {number} | {FIGURES[name]} | {row['sfteval']} | {row['reference']} | {row['result']} "
            f"| {row['goal']} | {verdict(figure)} | {figure['wall_seconds']} | {figure['max_rss_mib']} "
            f"| {figure['load_before'][0]} → {figure['load_after'][0]} |"
        )
    lines += [
        "",
        "Peak memory (figure 6) is the peak RSS column: the max RSS of the figure's process and of every process "
        "it ran (os.wait4), each figure in a fresh process, so figures do not share memory.",
        "",
        "## Notes",
        "",
    ]
    for name, figure in results["figures"].items():
        notes = figure["summary"]["notes"] if "summary" in figure else [figure["error"]]
        lines += [f"- **{FIGURES[name]}**: " + "; ".join(notes)]
    return "\n".join(lines + ["", *render_machine(results["machine"])]) + "\n"


def render_machine(machine: dict[str, Any]) -> list[str]:
    versions = ", ".join(f"{name} {version}" for name, version in machine["versions"].items())
    return [
        "## Machine",
        "",
        "| | |",
        "|---|---|",
        f"| CPU | {machine['cpu']} |",
        f"| cores | {machine['cpus']} ({machine['usable_cpus']} usable by this process) |",
        f"| bf16 instructions (trainer's auto precision: bf16 autocast where present) | "
        f"{', '.join(machine.get('bf16_flags') or []) or 'none (fp32)'} |",
        f"| RAM | {machine['ram_gib']} GiB |",
        f"| threads (OMP_NUM_THREADS) | {machine['threads']} |",
        f"| Python | {machine['python']} on {machine['platform']} |",
        f"| libraries | {versions} |",
    ]


def main() -> int:
    options = parse_arguments()
    if options.figure:
        run_one_figure(options.figure, options.json, options.threads, options.quick)
        return 0
    for path in (options.out, options.json):  # before the figures, not after 30 minutes of them
        path.parent.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {
        "started": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "quick": options.quick,
        "machine": describe_machine(options.threads),
        "figures": {},
    }
    with tempfile.TemporaryDirectory(prefix="run_all-") as folder:
        for index, name in enumerate(options.names, start=1):
            print(f"[{index}/{len(options.names)}] {name}: {FIGURES[name]} ...", flush=True)
            figure = results["figures"][name] = measure_figure(name, options, Path(folder))
            result = figure["summary"]["result"] if "summary" in figure else ""
            print(
                f"[{index}/{len(options.names)}] {name}: {result} -> {verdict(figure)}; {figure['wall_seconds']} s, "
                f"peak RSS {figure['max_rss_mib']} MiB, load {figure['load_before'][0]} → {figure['load_after'][0]}",
                flush=True,
            )
    command = "python bench/run_all.py " + " ".join(sys.argv[1:])
    options.json.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    options.out.write_text(render_markdown(results, command.strip()), encoding="utf-8")
    print(f"wrote {options.out} and {options.json}")
    return 0 if all("summary" in figure for figure in results["figures"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
