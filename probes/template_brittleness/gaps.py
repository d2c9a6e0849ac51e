"""Template gaps and the held-out SFT axis of the template_brittleness probe.

A chat-tuned base is already brittle (it prefers its own chat format), so an undirected spread cannot say whether
SFT made a model depend on *its training template*. The per-item template gap can:

    gap_i = s_i(training template) − mean over the other evaluated templates t of s_i(t)

Paired against base on the same items, variant gap − base gap is a difference in differences: how much more the
variant's score relies on being served its training template than the base's does.

The SFT axis scores held-out prompt/response pairs of the training task (the manifest's held-out sample) without
generation: per item and template, the mean per-token log-probability of the reference response after the prompt
rendered exactly as the instruction-following axis renders it. It is cheap and sees what SFT taught directly.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from sfteval.core.requests import Score, ScoreRequest
from sfteval.probes.base import PlannedRequest, ProbeContext
from sfteval.probes.shared.loaders import REFERENCE_PAIRS, Pair, load_pairs, manifest_pairs, seeded_sample
from sfteval.probes.shared.template_text import response_text
from sfteval.probes.shared.token_scores import own_tokens

if TYPE_CHECKING:
    from sfteval.templates import Template

SFT_TAG = "sft"
# Where the SFT axis's pairs came from, in words for findings.
SOURCES = {
    "heldout": "held-out SFT answers",
    "suite": "the suite's SFT answers",
    "reference": "sfteval's reference answers",
}


def template_gap(scores: Mapping[str, float], train: str | None) -> float | None:
    """s(train) − mean of s over the other templates; None without the training template or another template."""
    if train is None or train not in scores or len(scores) < 2:
        return None
    others = [value for name, value in scores.items() if name != train]
    return scores[train] - sum(others) / len(others)


def sft_pairs(path: Path | None, limit: int, context: ProbeContext) -> tuple[list[Pair], str]:
    """A seeded sample of `limit` pairs and their source: the named file, else the manifest's held-out sample,
    else sfteval's reference pairs (never trained on either)."""
    if limit == 0:
        return [], "none"
    if path is not None:
        pairs, source = load_pairs(path), "suite"
    else:
        pairs, source = manifest_pairs(context.manifest, "heldout"), "heldout"
        if not pairs:
            pairs, source = load_pairs(REFERENCE_PAIRS), "reference"
    return seeded_sample(pairs, limit, context.seed), source


def sft_requests(pairs: Sequence[Pair], name: str, template: Template) -> list[PlannedRequest]:
    """One score request per pair: the reference response (as training writes it) after the serving prompt."""
    planned = []
    for pair in pairs:
        item_id = f"{SFT_TAG}/{pair.id}"
        prompt, response = response_text(template, pair.messages, pair.response)
        planned.append(PlannedRequest(item_id, item_id, name, ScoreRequest(prompt, response), SFT_TAG))
    return planned


def mean_token_logprob(score: Score, context: str) -> tuple[float, int] | None:
    """(mean per-token log-prob of the response, its token count), leaving out whitespace moved from the context."""
    own = own_tokens(score, context)
    if not own.logprobs:
        return None
    return own.logprob / len(own.logprobs), len(own.logprobs)
