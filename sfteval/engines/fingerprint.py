"""Engine fingerprints: a cheap content hash of model (and adapter) files that keys the result cache.

A fingerprint covers the small metadata files (config, generation config, adapter config, tokenizer), every
safetensors header (tensor names, dtypes, shapes, offsets) and sampled bytes of every safetensors file: the first,
middle and last 64 KiB of the data section plus 4 KiB at the start, middle and end of each tensor. It never reads a
whole weight file, so it stays cheap on large models, yet any retrained or replaced tensor changes it. It has no
torch dependency so every engine can use it.
"""

from __future__ import annotations

import hashlib
import json
import struct
from collections.abc import Sequence
from pathlib import Path

from sfteval.core.errors import UserError

FILE_SAMPLE_BYTES = 64 * 1024
TENSOR_SAMPLE_BYTES = 4 * 1024
MAX_HEADER_BYTES = 100 * 1024 * 1024
METADATA_FILES = (
    "config.json",
    "generation_config.json",
    "adapter_config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "added_tokens.json",
    "tokenizer.model",
    "vocab.json",
    "merges.txt",
)


def fingerprint_model(directories: Sequence[Path], *, dtype: str, engine: str) -> str:
    """Hash the model directories in order (base first, then its adapter) with the dtype and engine name."""
    digest = hashlib.sha256()
    _update(digest, "engine", engine.encode())
    _update(digest, "dtype", dtype.encode())
    for position, directory in enumerate(directories):
        _update(digest, "directory", str(position).encode())
        for name in METADATA_FILES:
            path = Path(directory) / name
            if path.is_file():
                _update(digest, name, path.read_bytes())
        for weights in safetensors_files(Path(directory)):
            _update(digest, "weights", weights.name.encode())
            _hash_safetensors(digest, weights)
    return digest.hexdigest()


def safetensors_files(directory: Path) -> list[Path]:
    """The directory's safetensors files, sorted; a UserError when there are none (we never unpickle weights)."""
    if not directory.is_dir():
        raise UserError(f"{directory}: model directory not found")
    files = sorted(directory.glob("*.safetensors"))
    if not files:
        raise UserError(
            f"{directory}: no *.safetensors weights found",
            hint="sfteval loads safetensors only, never pickles",
        )
    return files


def _update(digest: hashlib._Hash, label: str, data: bytes) -> None:
    """Feed one labelled, length-prefixed field so that field boundaries are unambiguous."""
    digest.update(f"{label}\0{len(data)}\0".encode())
    digest.update(data)


def _hash_safetensors(digest: hashlib._Hash, path: Path) -> None:
    """Hash the header of one safetensors file and the byte windows sampled from its data section."""
    size = path.stat().st_size
    with path.open("rb") as handle:
        prefix = handle.read(8)
        if len(prefix) < 8:
            raise UserError(f"{path}: not a safetensors file (too short)")
        (header_length,) = struct.unpack("<Q", prefix)
        if header_length > min(MAX_HEADER_BYTES, size - 8):
            raise UserError(f"{path}: not a safetensors file (bad header length {header_length})")
        header = handle.read(header_length)
        _update(digest, "header", header)
        data_start = 8 + header_length
        for begin, end in _sample_windows(_tensor_ranges(path, header), size - data_start):
            handle.seek(data_start + begin)
            _update(digest, f"bytes@{begin}", handle.read(end - begin))


def _tensor_ranges(path: Path, header: bytes) -> list[tuple[int, int]]:
    """The (begin, end) data offsets of every tensor listed in a safetensors header."""
    try:
        entries = json.loads(header)
        return [
            (int(entry["data_offsets"][0]), int(entry["data_offsets"][1]))
            for name, entry in entries.items()
            if name != "__metadata__"
        ]
    except (ValueError, KeyError, TypeError, IndexError, AttributeError) as error:
        raise UserError(f"{path}: unreadable safetensors header ({error})") from None


def _sample_windows(tensors: list[tuple[int, int]], data_size: int) -> list[tuple[int, int]]:
    """Merged, sorted byte windows: start/middle/end of the data section and of each tensor."""
    windows = _three_windows(0, data_size, FILE_SAMPLE_BYTES)
    for begin, end in tensors:
        windows.extend(_three_windows(begin, min(end, data_size), TENSOR_SAMPLE_BYTES))
    merged: list[tuple[int, int]] = []
    for begin, end in sorted(window for window in windows if window[1] > window[0]):
        if merged and begin <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((begin, end))
    return merged


def _three_windows(begin: int, end: int, width: int) -> list[tuple[int, int]]:
    """Windows of `width` bytes at the start, middle and end of [begin, end), clipped to it."""
    middle = begin + (end - begin) // 2
    starts = (begin, max(begin, middle - width // 2), max(begin, end - width))
    return [(start, min(end, start + width)) for start in starts]
