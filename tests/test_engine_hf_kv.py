"""The decode loop's cheaper KV cache and attention change no bits (issue 19).

- Slab layers (`kv_slab.py`) write each step's column in place and hold the same keys and values as transformers'
  `DynamicLayer` through appends, row selection, dropped front columns and growth.
- The engine's own CPU models attend with grouped key/value heads kept grouped under a mask (`attention.py`):
  the attention output, every generation and every score equal plain sdpa's (which repeats the heads).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from test_engine_hf_speed_equality import requests as generation_requests
from transformers.cache_utils import DynamicLayer
from transformers.integrations.sdpa_attention import sdpa_attention_forward

from sfteval.attention_masks import NATIVE_GQA_SDPA
from sfteval.core.requests import ScoreRequest
from sfteval.core.variants import Variant
from sfteval.engines.config import EngineConfig
from sfteval.engines.hf import attention, engine
from sfteval.engines.hf.engine import HFEngineFactory
from sfteval.engines.hf.kv_slab import GROW_COLUMNS, SlabLayer


def _states(rows: int, columns: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return (
        torch.randn(rows, 2, columns, 8, generator=generator),
        torch.randn(rows, 2, columns, 8, generator=generator),
    )


def _assert_same(slab: SlabLayer, plain: DynamicLayer) -> None:
    assert torch.equal(slab.keys, plain.keys)
    assert torch.equal(slab.values, plain.values)
    assert slab.get_seq_length() == plain.get_seq_length()


def test_slab_layer_holds_what_a_dynamic_layer_holds_and_appends_in_place() -> None:
    keys, values = _states(4, 5, seed=0)
    plain = DynamicLayer()
    plain.update(keys, values)
    slab = SlabLayer(keys, values, capacity=9)
    _assert_same(slab, plain)
    buffer = slab.keys.data_ptr()
    for step in range(4):
        new = _states(4, 1, seed=10 + step)
        assert all(torch.equal(a, b) for a, b in zip(slab.update(*new), plain.update(*new), strict=True))
        _assert_same(slab, plain)
    assert slab.keys.data_ptr() == buffer, "an append within capacity must not copy the cache"

    rows = torch.tensor([0, 2, 3])
    slab.batch_select_indices(rows)
    plain.batch_select_indices(rows)
    _assert_same(slab, plain)
    slab.drop_front(3)
    plain.keys, plain.values = plain.keys[:, :, 3:], plain.values[:, :, 3:]
    _assert_same(slab, plain)

    for step in range(GROW_COLUMNS + 3):  # past the buffer's end: it grows and keeps every value
        new = _states(3, 1, seed=100 + step)
        slab.update(*new)
        plain.update(*new)
    _assert_same(slab, plain)


def test_native_gqa_attention_equals_transformers_sdpa_with_repeated_heads() -> None:
    module = torch.nn.Module()
    module.num_key_value_groups = 3  # type: ignore[assignment]
    module.is_causal = True  # type: ignore[assignment]
    generator = torch.Generator().manual_seed(1)
    query = torch.randn(5, 6, 1, 16, generator=generator)
    cache = torch.randn(5, 2, 40, 16, generator=generator)
    key, value = cache[:, :, :33], cache.flip(2)[:, :, :33]  # strided views, as slab layers hand them over
    mask = torch.ones(5, 1, 1, 33, dtype=torch.bool)
    mask[1::2, :, :, :7] = False  # left padding
    ours, _ = attention.sdpa_native_gqa(module, query, key, value, mask, scaling=0.25)
    theirs, _ = sdpa_attention_forward(module, query, key, value, mask, scaling=0.25)
    assert torch.equal(ours, theirs)


@pytest.fixture(scope="module")
def results_both_ways(tiny_model_dir: Path):
    """Generations and scores from the engine as built, and with its models left on plain sdpa; with, for each,
    whether torch's attention ran with a mask and grouped key/value heads kept grouped."""
    scores = [
        ScoreRequest("the red bird sings on a", option, ranks=True, top_k=3)
        for option in (" blue mountain", " green water", " sea")
    ]
    sdpa = torch.nn.functional.scaled_dot_product_attention
    results = {}
    for name in ("native", "plain"):
        grouped_masked: list[bool] = []

        def recording(query, key, *args, grouped_masked=grouped_masked, **kwargs):
            grouped = key.shape[1] < query.shape[1] and kwargs.get("enable_gqa", False)
            grouped_masked.append(grouped and kwargs.get("attn_mask") is not None)
            return sdpa(query, key, *args, **kwargs)

        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(torch.nn.functional, "scaled_dot_product_attention", recording)
            if name == "plain":
                patch.setattr(engine, "use_native_gqa", lambda model: False)
            factory = HFEngineFactory(EngineConfig(device="cpu", batch_size=4, threads=1))
            variant_engine = factory.engine(Variant("base", tiny_model_dir))
            generations = variant_engine.generate(generation_requests())
            scored = variant_engine.score(scores)
            implementation = factory._loaded.base_model.config._attn_implementation
            factory.close()
        results[name] = (implementation, generations, scored, any(grouped_masked))
    return results


def test_engine_attends_with_grouped_heads_under_masks_and_changes_no_result(results_both_ways) -> None:
    native, plain = results_both_ways["native"], results_both_ways["plain"]
    assert (native[0], plain[0]) == (NATIVE_GQA_SDPA, "sdpa")
    assert native[3], "no masked attention kept its grouped key/value heads"
    assert not plain[3]
    assert native[1] == plain[1]
    assert native[2] == plain[2]
