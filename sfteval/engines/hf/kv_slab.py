"""A KV cache layer with room for the tokens still to come, so a decode step writes its column in place.

transformers' `DynamicLayer` concatenates each step's keys and values onto the cache, which copies the whole cache,
every layer, every step: a 24-row decode step over 400 cached tokens of SmolLM2-135M spent 14 % of its time in
those copies (`bench/RESULTS.md`). A slab layer holds keys and values as views of buffers sized for the longest
budget still running; the attention reads the views (same values, same kernel, same bits).
"""

from __future__ import annotations

from typing import Any

import torch
from transformers.cache_utils import DynamicLayer

GROW_COLUMNS = 64
"""Columns added when a layer outgrows its buffer (only when a caller underestimated the room it needs)."""


class SlabLayer(DynamicLayer):
    """A plain full-attention cache layer; `keys`/`values` are the [rows, heads, start:end, dim] views of buffers."""

    def __init__(self, keys: torch.Tensor, values: torch.Tensor, capacity: int) -> None:
        super().__init__()
        self.dtype, self.device, self.is_initialized = keys.dtype, keys.device, True
        self._start, self._end = 0, keys.shape[2]
        self._keys, self._values = self._buffers(keys, values, max(capacity, self._end))

    def update(
        self, key_states: torch.Tensor, value_states: torch.Tensor, *args: Any, **kwargs: Any
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Write the new columns after the cached ones (growing the buffers only when they are full)."""
        added = key_states.shape[2]
        if self._end + added > self._keys.shape[2]:
            held = self._keys[:, :, self._start : self._end], self._values[:, :, self._start : self._end]
            self._start, self._end = 0, self._end - self._start
            self._keys, self._values = self._buffers(*held, self._end + added + GROW_COLUMNS)
        self._keys[:, :, self._end : self._end + added] = key_states
        self._values[:, :, self._end : self._end + added] = value_states
        self._end += added
        return self._views()

    def batch_select_indices(self, indices: torch.Tensor) -> None:
        """Keep the rows `indices` (their buffers, room included)."""
        self._keys, self._values = self._keys[indices], self._values[indices]
        self._views()

    def drop_front(self, columns: int) -> None:
        """Forget the first `columns` cached positions (masked out for every row)."""
        self._start += columns
        self._views()

    def _buffers(
        self, keys: torch.Tensor, values: torch.Tensor, capacity: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        rows, heads, length, _ = keys.shape
        key_buffer = keys.new_empty((rows, heads, capacity, keys.shape[3]))
        value_buffer = values.new_empty((rows, heads, capacity, values.shape[3]))
        key_buffer[:, :, :length] = keys
        value_buffer[:, :, :length] = values
        self.keys, self.values = key_buffer[:, :, :length], value_buffer[:, :, :length]
        return key_buffer, value_buffer

    def _views(self) -> tuple[torch.Tensor, torch.Tensor]:
        keys, values = self._keys[:, :, self._start : self._end], self._values[:, :, self._start : self._end]
        self.keys, self.values = keys, values
        return keys, values


def into_slabs(cache: Any, capacity: int) -> None:
    """Replace every layer of a plain dynamic cache by a slab layer of `capacity` positions holding the same values."""
    cache.layers = [SlabLayer(layer.keys, layer.values, capacity) for layer in cache.layers]
