"""A bounded sample of model outputs for the HTML report: the same items for every variant, text truncated."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

from sfteval.core.formatting import format_number
from sfteval.core.records import ItemRecord

MAX_CHARACTERS = 2000


@dataclass(frozen=True)
class SampleItem:
    """One item of one variant as the sample browser shows it (untrusted text, escaped by the renderer)."""

    item_id: str
    template: str
    prompt: str | None
    output: str | None
    metrics: tuple[tuple[str, str], ...]


def sample_outputs(
    records: Sequence[ItemRecord], probes: Sequence[str], per_variant: int
) -> dict[str, dict[str, list[SampleItem]]]:
    """probe → variant → items: the first `per_variant` items (by first appearance) that have a prompt or output."""
    keys: dict[str, list[tuple[str, str]]] = defaultdict(list)
    by_key: dict[tuple[str, str, str, str], ItemRecord] = {}
    for record in records:
        if record.output is None and record.prompt is None:
            continue
        key = (record.template, record.item_id)
        chosen = keys[record.probe]
        if key not in chosen and len(chosen) < per_variant:
            chosen.append(key)
        by_key[(record.probe, record.variant, *key)] = record
    sampled: dict[str, dict[str, list[SampleItem]]] = {}
    for probe in probes:
        variants = list(dict.fromkeys(variant for (name, variant, _, _) in by_key if name == probe))
        sampled_probe = {
            variant: [
                _item(by_key[(probe, variant, *key)])
                for key in keys[probe]
                if (probe, variant, *key) in by_key
            ]
            for variant in variants
        }
        if sampled_probe:
            sampled[probe] = sampled_probe
    return sampled


def _item(record: ItemRecord) -> SampleItem:
    metrics = tuple((name, _format(value)) for name, value in record.metrics.items())
    return SampleItem(
        item_id=record.item_id,
        template=record.template,
        prompt=None if record.prompt is None else truncate(record.prompt),
        output=None if record.output is None else truncate(record.output),
        metrics=metrics,
    )


def truncate(text: str, limit: int = MAX_CHARACTERS) -> str:
    """The text cut to `limit` characters, saying how much was left out."""
    if len(text) <= limit:
        return text
    return text[:limit] + f"… [{len(text) - limit} more characters]"


def _format(value: float | int | bool | None) -> str:
    if value is None:
        return "—"
    if isinstance(value, bool):
        return str(value).lower()
    return format_number(float(value)) if isinstance(value, float) else str(value)
