"""The requests both engines answer in the parity tests (shared by the test module and the vLLM worker script)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sfteval.core.requests import GenerationRequest, ScoreRequest
from sfteval.engines.config import EngineConfig

GREEDY_TOKENS = 32
MAX_LENGTH = 2048
ENGINE_CONFIG = EngineConfig(dtype="float32", max_length=MAX_LENGTH, batch_size=8)
"""fp32 on CPU for both engines; the vllm engine also gets `VLLM_EXTRA` to show pass-through reaching vllm.LLM."""
VLLM_EXTRA: dict[str, Any] = {"enforce_eager": True, "gpu_memory_utilization": 0.25}

INSTRUCTIONS = (
    "What is the capital of France?",
    "Write a haiku about the sea.",
    "List three primary colors.",
    "Explain photosynthesis in one sentence.",
    "Translate 'good morning' into Spanish.",
    "What is 12 times 7?",
    "Give me a synonym for 'happy'.",
    "Summarize the plot of Cinderella in two sentences.",
    "Name a mammal that can fly.",
    "Write a Python function that returns the square of a number.",
    "Why is the sky blue?",
    "Suggest a name for a pet goldfish.",
    "What does CPU stand for?",
    "Describe the taste of a lemon.",
    "How many days are in a leap year?",
    "Write one sentence using the word 'river'.",
    "What is the boiling point of water in Celsius?",
    "Give two tips for better sleep.",
    "Who wrote Romeo and Juliet?",
    "Classify the sentiment of: 'I loved this movie!'",
    "Convert 5 kilometers to meters.",
    "What is the opposite of 'ancient'?",
    "Write a short greeting for a birthday card.",
    "Name the largest planet in our solar system.",
    "Explain what a noun is.",
    "Give an example of a renewable energy source.",
    "What color do you get by mixing blue and yellow?",
    "Write a question you would ask a new friend.",
    "What is the plural of 'mouse'?",
    "Describe a cat in three words.",
)
RAW_PROMPTS = ("The quick brown fox", "Once upon a time, in a small village,")

SCORE_PAIRS = (
    ("The capital of France is", " Paris"),
    ("The capital of France is", " London"),
    ("The capital of France is ", "Paris"),
    ("Question: What color is the sky on a clear day?\nAnswer:", " Blue"),
    ("Question: What color is the sky on a clear day?\nAnswer:", " Green"),
    ("2 + 2 =", " 4"),
    ("2 + 2 =", " 5"),
    ("", "Hello world, this is a test."),
    ("Water freezes at", " 0 degrees Celsius and boils at 100 degrees Celsius."),
    ("The opposite of hot is", " cold"),
    ("Once upon a time", " there was a princess who lived in a castle."),
    ("def add(a, b):\n", "    return a + b\n"),
)


def generation_requests(tokenizer: Any) -> list[GenerationRequest]:
    """32 greedy chat prompts (the tokenizer's own template), plus stop-string and sampled requests."""
    prompts = [
        tokenizer.apply_chat_template(
            [{"role": "user", "content": text}], tokenize=False, add_generation_prompt=True
        )
        for text in INSTRUCTIONS
    ] + list(RAW_PROMPTS)
    greedy = [GenerationRequest(prompt, max_new_tokens=GREEDY_TOKENS) for prompt in prompts]
    stopped = [
        GenerationRequest(prompts[index], max_new_tokens=48, stop=(".", "\n"))
        for index in range(0, len(prompts), 4)
    ]
    sampled = [
        GenerationRequest(prompts[0], max_new_tokens=16, temperature=0.8, top_p=0.9, seed=seed)
        for seed in (1, 1, 2)
    ]
    return greedy + stopped + sampled + [GenerationRequest(prompts[1], max_new_tokens=0)]


def score_requests() -> list[ScoreRequest]:
    """Every pair with ranks, and the first few again with top-5 next-token distributions."""
    with_ranks = [ScoreRequest(context, continuation, ranks=True) for context, continuation in SCORE_PAIRS]
    with_top = [ScoreRequest(context, continuation, top_k=5) for context, continuation in SCORE_PAIRS[:4]]
    return with_ranks + with_top


def variant_paths(model: Path, adapter: Path) -> dict[str, tuple[str, Path, Path | None]]:
    """name -> (kind, path, base path) of the two variants compared."""
    return {"adapter": ("adapter", adapter, model), "base": ("full", model, None)}
