"""How many CPU threads torch should use: the cores other processes leave free, measured, never a constant.

On a 2-core machine two torch threads are about twice as fast as one when the machine is idle, but when another
process keeps one core busy they spin against it and a decode step takes several times longer than with one
thread (bench/RESULTS.md). So the thread count follows the load: the cores this process may use, less the cores
other processes kept busy over a short window (from /proc/stat, minus this process's own CPU time). An explicit
choice (`--threads`, OMP_NUM_THREADS) always wins; where /proc is missing torch's own default stays.
"""

from __future__ import annotations

import os
import time

MEASURE_SECONDS = 0.25
"""How long the load of other processes is sampled."""


def _busy_and_total_ticks() -> tuple[int, int] | None:
    """CPU ticks spent busy and in total by the whole machine (the first line of /proc/stat)."""
    try:
        with open("/proc/stat", encoding="ascii") as stat:
            fields = [int(value) for value in stat.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    if len(fields) < 5:
        return None
    idle = fields[3] + fields[4]  # idle + iowait
    return sum(fields[:8]) - idle, sum(fields[:8])


def usable_cores() -> int:
    """Cores this process may run on (its affinity mask, not the machine's count)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def others_busy_cores(seconds: float = MEASURE_SECONDS) -> float | None:
    """Cores kept busy by other processes over `seconds` (None where /proc/stat cannot be read)."""
    before = _busy_and_total_ticks()
    own_before = sum(os.times()[:2])
    started = time.monotonic()
    time.sleep(seconds)
    after = _busy_and_total_ticks()
    own = sum(os.times()[:2]) - own_before
    elapsed = time.monotonic() - started
    if before is None or after is None or after[1] <= before[1]:
        return None
    machine_cores = os.cpu_count() or 1
    busy_share = (after[0] - before[0]) / (after[1] - before[1])
    return max(0.0, busy_share * machine_cores - own / elapsed)


def free_cores(seconds: float = MEASURE_SECONDS) -> int | None:
    """Usable cores minus those other processes keep busy (at least 1); None where the load cannot be measured."""
    busy = others_busy_cores(seconds)
    if busy is None:
        return None
    return max(1, usable_cores() - round(busy))


def explicit_threads() -> int | None:
    """The thread count the user fixed with OMP_NUM_THREADS, if any."""
    value = os.environ.get("OMP_NUM_THREADS", "").strip()
    return int(value) if value.isdigit() and int(value) > 0 else None


def auto_threads() -> int | None:
    """The `auto` choice: OMP_NUM_THREADS if set, else the free cores (None where neither is known)."""
    return explicit_threads() or free_cores()
