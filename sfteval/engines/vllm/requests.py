"""Engine requests to vLLM inputs (token-id prompts + SamplingParams) and vLLM outputs back to engine results.

Token ids come from the engines' shared `Encoder` (sfteval.engines.encoding) with its truncation rules, so the two
engines condition on the same tokens; text is decoded the way the hf engine decodes it (special tokens kept).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sfteval.core.errors import UserError
from sfteval.core.requests import Generation, GenerationRequest, Score, ScoreRequest
from sfteval.engines.encoding import Encoder


@dataclass(frozen=True)
class VLLMInput:
    """One request for `LLM.generate`: a TokensPrompt, its SamplingParams and, for scoring, the scored tail length."""

    prompt: Any
    parameters: Any
    scored_tokens: int = 0


def generation_input(encoder: Encoder, index: int, request: GenerationRequest) -> VLLMInput:
    """The token prompt (left-truncated so that prompt + max_new_tokens fits) and sampling params of a request."""
    from vllm import SamplingParams
    from vllm.inputs import TokensPrompt

    prompt = encoder.prompt_ids(index, request)
    parameters = SamplingParams(
        max_tokens=request.max_new_tokens,
        temperature=request.temperature,
        top_p=request.top_p,
        seed=request.seed if request.temperature > 0 else None,
        stop=[stop for stop in request.stop if stop],
        skip_special_tokens=False,
        spaces_between_special_tokens=False,
    )
    return VLLMInput(TokensPrompt(prompt_token_ids=prompt), parameters)


def to_generation(output: Any) -> Generation:
    """A Generation from a RequestOutput: token_ids include the EOS / stop-completing token, text excludes the stop."""
    completion = output.outputs[0]
    return Generation(
        text=completion.text,
        num_tokens=len(completion.token_ids),
        finish_reason="length" if completion.finish_reason == "length" else "stop",
    )


def score_input(encoder: Encoder, index: int, request: ScoreRequest) -> VLLMInput | None:
    """Context + continuation as one token prompt whose prompt_logprobs score it; None when nothing is to score."""
    from vllm import SamplingParams
    from vllm.inputs import TokensPrompt

    context, continuation = encoder.pair(request.context, request.continuation)
    if not continuation:
        return None
    # vLLM needs room for the one token it generates after the prompt.
    limit = encoder.max_length - 1
    if len(continuation) >= limit:
        raise UserError(
            f"score request {index}: continuation of {len(continuation)} tokens exceeds the max length "
            f"{encoder.max_length}"
        )
    prompt = (context + continuation)[-limit:]
    parameters = SamplingParams(
        max_tokens=1, temperature=0.0, prompt_logprobs=request.top_k, detokenize=False
    )
    return VLLMInput(TokensPrompt(prompt_token_ids=prompt), parameters, len(continuation))


def empty_score(request: ScoreRequest) -> Score:
    """The score of an empty continuation (as the hf engine gives it)."""
    return Score(0.0, (), True, (), () if request.ranks else None, () if request.top_k else None)


def to_score(encoder: Encoder, request: ScoreRequest, scored_tokens: int, output: Any) -> Score:
    """A Score from the prompt_logprobs of the continuation's positions (the prompt's last `scored_tokens`)."""
    tokens = output.prompt_token_ids[-scored_tokens:]
    positions = output.prompt_logprobs[-scored_tokens:]
    chosen = [position[token] for token, position in zip(tokens, positions, strict=True)]
    token_logprobs = tuple(float(entry.logprob) for entry in chosen)
    top = None
    if request.top_k:
        top = tuple(_top_logprobs(position, request.top_k) for position in positions)
    return Score(
        logprob=sum(token_logprobs),
        token_logprobs=token_logprobs,
        is_greedy=all(entry.rank == 1 for entry in chosen),
        tokens=tuple(encoder.decode([token]) for token in tokens),
        ranks=tuple(int(entry.rank) for entry in chosen) if request.ranks else None,
        top_logprobs=top,
    )


def _top_logprobs(position: dict[int, Any], top_k: int) -> tuple[tuple[int, float], ...]:
    """The k most likely (token id, log-prob) pairs at one position, most likely first (the prompt token only if so)."""
    ranked = sorted(position.items(), key=lambda item: item[1].rank)
    return tuple((token, float(entry.logprob)) for token, entry in ranked if entry.rank <= top_k)[:top_k]
