"""Generation settings are resolved in one place: suite defaults ← the probe's policy ← its parameter ← CLI."""

from __future__ import annotations

import pytest

from sfteval.core.generation import (
    GenerationConfig,
    GenerationOverrides,
    GenerationPolicy,
    GenerationSettings,
    resolve_generation,
)
from sfteval.probes import PROBES

SUITE = GenerationConfig(max_new_tokens=128, temperature=0.7)


@pytest.mark.parametrize(
    ("policy", "parameter", "overrides", "expected"),
    [
        (GenerationPolicy(), None, None, GenerationSettings(128, 0.7)),
        (GenerationPolicy(), 20, None, GenerationSettings(20, 0.7)),
        (GenerationPolicy(), 20, GenerationOverrides(max_new_tokens=9), GenerationSettings(9, 0.7)),
        (GenerationPolicy(), None, GenerationOverrides(temperature=0.0), GenerationSettings(128, 0.0)),
        (GenerationPolicy(max_new_tokens_cap=32), None, None, GenerationSettings(32, 0.7)),
        (GenerationPolicy(max_new_tokens_cap=512), None, None, GenerationSettings(128, 0.7)),
        (GenerationPolicy(max_new_tokens_cap=32), 64, None, GenerationSettings(64, 0.7)),
        (GenerationPolicy(sized_by_reference=True), None, None, GenerationSettings(None, 0.7)),
        (GenerationPolicy(sized_by_reference=True), 40, None, GenerationSettings(40, 0.7)),
        (
            GenerationPolicy(greedy=True),
            None,
            GenerationOverrides(temperature=1.0),
            GenerationSettings(128, 0.0),
        ),
    ],
)
def test_layers_merge_in_order(policy, parameter, overrides, expected) -> None:
    assert resolve_generation(SUITE, policy, parameter, overrides) == expected


def test_shipped_probes_declare_their_rules_once() -> None:
    """What the probes' measurements need, as their classes declare it (not re-decided in their code)."""
    defaults = GenerationConfig()
    settings = {name: PROBES.get(name)().generation for name in PROBES}
    assert settings["spurious_prefix"] == GenerationSettings(32, 0.0)
    assert settings["token_shift"] == GenerationSettings(48, 0.0)
    assert settings["memorization"] == GenerationSettings(None, 0.0)
    assert settings["termination"] == GenerationSettings(None, 0.0)
    assert settings["instruction_following"] == GenerationSettings(defaults.max_new_tokens, 0.0)
    assert settings["refusal"] == GenerationSettings(48, 0.0)  # enough to classify an answer's opening
    assert settings["style_tics"] == GenerationSettings(defaults.max_new_tokens, 0.0)
    sampling = GenerationConfig(max_new_tokens=16, temperature=0.8)
    spurious = PROBES.get("spurious_prefix")
    assert spurious.generation_settings(spurious.Params(), sampling) == GenerationSettings(16, 0.8)
    memorization = PROBES.get("memorization")
    assert memorization.generation_settings(memorization.Params(), sampling) == GenerationSettings(None, 0.0)
