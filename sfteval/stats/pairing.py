"""Aligning two variants' item records on shared item ids, so paired tests see the same items in order."""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Pairing:
    """Two variants' values aligned on shared item ids, with counts of what could not be paired."""

    ids: tuple[Hashable, ...]
    a_values: np.ndarray
    b_values: np.ndarray
    cluster_ids: tuple[Hashable, ...] | None
    unmatched_a: int
    unmatched_b: int
    missing_values: int


def item_id_of(record: Any) -> Hashable:
    """The `item_id` of an ItemRecord-like object or a dict."""
    return record["item_id"] if isinstance(record, dict) else record.item_id


def cluster_id_of(record: Any) -> Hashable:
    """The `cluster_id` of an ItemRecord-like object or a dict."""
    return record["cluster_id"] if isinstance(record, dict) else record.cluster_id


def pairing(
    records_a: Iterable[Any],
    records_b: Iterable[Any],
    value: Callable[[Any], float | bool | None],
    key: Callable[[Any], Hashable] = item_id_of,
    cluster: Callable[[Any], Hashable] | None = cluster_id_of,
) -> Pairing:
    """Align two variants' records on shared keys (sorted), so that paired tests see the same items in order.

    Pairs where either value is None are dropped and counted in `missing_values`; cluster ids come from
    `records_a` and must agree with `records_b`.
    """
    by_key_a = _index_records(records_a, key, "records_a")
    by_key_b = _index_records(records_b, key, "records_b")
    shared = sorted(by_key_a.keys() & by_key_b.keys(), key=str)
    values = {k: (value(by_key_a[k]), value(by_key_b[k])) for k in shared}
    kept = [k for k in shared if None not in values[k]]
    mismatched = [k for k in kept if cluster is not None and cluster(by_key_a[k]) != cluster(by_key_b[k])]
    if mismatched:
        raise ValueError(f"item {mismatched[0]!r} has different cluster ids in the two record lists")
    return Pairing(
        ids=tuple(kept),
        a_values=np.array([values[k][0] for k in kept], dtype=float),
        b_values=np.array([values[k][1] for k in kept], dtype=float),
        cluster_ids=None if cluster is None else tuple(cluster(by_key_a[k]) for k in kept),
        unmatched_a=len(by_key_a) - len(shared),
        unmatched_b=len(by_key_b) - len(shared),
        missing_values=len(shared) - len(kept),
    )


def _index_records(records: Iterable[Any], key: Callable[[Any], Hashable], name: str) -> dict[Hashable, Any]:
    """Map key → record, refusing duplicate keys (they would make the pairing ambiguous)."""
    indexed: dict[Hashable, Any] = {}
    for record in records:
        item_key = key(record)
        if item_key in indexed:
            raise ValueError(f"{name} has more than one record for item {item_key!r}")
        indexed[item_key] = record
    return indexed
