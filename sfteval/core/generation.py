"""Generation settings, resolved once per probe: suite defaults ← the probe's own rule ← its parameters ← CLI.

The suite's `generation:` block gives the defaults. A probe class declares a `GenerationPolicy` for what its
measurement needs: a cap for probes that read only openings (spurious_prefix: 32 tokens unless the suite's lower
default or the probe's own `max_new_tokens` parameter says otherwise), lengths sized from reference answers
(memorization, termination), or greedy decoding (memorization, token_shift). The probe's `max_new_tokens` parameter
in the suite then wins, and a command-line override (`sfteval run --max-new-tokens / --temperature`) wins over all.
`resolve_generation` is the one place these layers meet; probes only read the result.
"""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, Field

DEFAULT_MAX_NEW_TOKENS = 256
"""Tokens per generation when neither the suite nor a probe says otherwise."""


class GenerationConfig(BaseModel):
    """The suite's `generation:` block: what every generating probe uses unless its own rule or parameters differ."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_new_tokens: int = Field(
        default=DEFAULT_MAX_NEW_TOKENS, ge=1, description="Most tokens generated per request."
    )
    temperature: float = Field(default=0.0, ge=0.0, description="0 = greedy decoding.")


@dataclass(frozen=True)
class GenerationPolicy:
    """What a probe's measurement needs from generation, declared once on the probe class."""

    max_new_tokens_cap: int | None = None
    """At most this many tokens by default (the probe reads only the opening of each answer)."""
    sized_by_reference: bool = False
    """By default the probe sizes each generation from its reference answers (settings carry None)."""
    greedy: bool = False
    """The metric is defined on greedy output: temperature is always 0."""


@dataclass(frozen=True)
class GenerationOverrides:
    """Settings given on the command line; None leaves the layer below in force."""

    max_new_tokens: int | None = None
    temperature: float | None = None


@dataclass(frozen=True)
class GenerationSettings:
    """The resolved settings a probe generates with; `max_new_tokens` None: sized from its reference answers."""

    max_new_tokens: int | None
    temperature: float


def resolve_generation(
    suite: GenerationConfig,
    policy: GenerationPolicy,
    probe_max_new_tokens: int | None = None,
    overrides: GenerationOverrides | None = None,
) -> GenerationSettings:
    """Merge the layers: suite defaults ← the probe's policy ← its `max_new_tokens` parameter ← command line."""
    overrides = overrides or GenerationOverrides()
    default: int | None
    if policy.sized_by_reference:
        default = None
    elif policy.max_new_tokens_cap is not None:
        default = min(suite.max_new_tokens, policy.max_new_tokens_cap)
    else:
        default = suite.max_new_tokens
    chosen = next(
        (value for value in (overrides.max_new_tokens, probe_max_new_tokens) if value is not None), default
    )
    temperature = suite.temperature if overrides.temperature is None else overrides.temperature
    return GenerationSettings(max_new_tokens=chosen, temperature=0.0 if policy.greedy else temperature)
