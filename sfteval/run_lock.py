"""One writer per run directory: `sfteval run` holds `<out>/run.lock` while it writes there.

Two runs into one directory would both rewrite items.jsonl and each append its records, so every record would be
there twice. The lock is an `flock` on the file, which the kernel drops when its holder exits (kill -9 included), and
the file names the holder (pid, start time, command) for the error message. A run that finds the lock held stops
with a one-line error; one that finds a lock file nobody holds (its writer was killed) takes it over with a warning.
The file is removed when the run ends (with the directory, if the run created it and wrote nothing). Runs sharing
one `--cache` need no lock: sqlite serialises their writes.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from sfteval.core.errors import UserError

LOCK_FILE = "run.lock"

_held: set[Path] = set()


@contextmanager
def hold_run_directory(directory: Path, warn: Callable[[str], None]) -> Iterator[None]:
    """Hold the directory's lock for the block (created if needed); a lock this process holds already is reused."""
    key = Path(directory).resolve()
    if key in _held:
        yield
        return
    created = not Path(directory).exists()
    descriptor = _acquire(Path(directory), warn)
    _held.add(key)
    try:
        yield
    finally:
        _held.discard(key)
        _release(Path(directory), descriptor, remove_if_empty=created)


def _acquire(directory: Path, warn: Callable[[str], None]) -> int:
    """Open and flock the lock file, write this process into it; a held lock is a UserError naming its holder."""
    import fcntl

    path = directory / LOCK_FILE
    while True:
        try:
            directory.mkdir(parents=True, exist_ok=True)
            descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as error:
            raise UserError(f"{directory}: cannot write the run directory ({error})") from None
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _describe(_read_holder(descriptor))
            os.close(descriptor)
            raise UserError(
                f"{directory}: another sfteval run{holder} is writing this run directory",
                hint="wait for it to finish, or give this run another --out",
            ) from None
        if _same_file(descriptor, path):
            break
        os.close(descriptor)  # the holder removed the file between our open and our flock: open the new one
    previous = _read_holder(descriptor)
    if previous is not None:
        warn(f"{path}: took over the lock of a run that is no longer running{_describe(previous)}")
    _write_holder(descriptor)
    return descriptor


def _release(directory: Path, descriptor: int, remove_if_empty: bool) -> None:
    """Remove the lock file while still holding the lock, then drop it (a run that opened the old file retries).

    A directory this run created and left empty (it failed before writing anything) is removed too.
    """
    try:
        (directory / LOCK_FILE).unlink(missing_ok=True)
    finally:
        os.close(descriptor)
    if remove_if_empty:
        with contextlib.suppress(OSError):
            directory.rmdir()


def _same_file(descriptor: int, path: Path) -> bool:
    try:
        return os.fstat(descriptor).st_ino == os.stat(path).st_ino
    except FileNotFoundError:
        return False


def _read_holder(descriptor: int) -> dict[str, Any] | None:
    """What the lock file says about its holder; None when it is empty or unreadable."""
    try:
        text = os.pread(descriptor, 65536, 0).decode("utf-8")
        holder = json.loads(text) if text.strip() else None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    return holder if isinstance(holder, dict) else None


def _write_holder(descriptor: int) -> None:
    holder = {
        "pid": os.getpid(),
        "started": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "command": " ".join(sys.argv),
    }
    os.ftruncate(descriptor, 0)
    os.pwrite(descriptor, (json.dumps(holder) + "\n").encode("utf-8"), 0)


def _describe(holder: dict[str, Any] | None) -> str:
    """' (pid 123, started 2025-01-01T10:00:00+00:00)', or '' when the holder is unknown."""
    if holder is None:
        return ""
    return f" (pid {holder.get('pid', '?')}, started {holder.get('started', '?')})"
