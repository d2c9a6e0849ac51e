"""Instruction following: IFEval's 25 verifiable instruction types, strict and loose checks, and the probe."""

from .checkers import get_checker, instruction_ids
from .evaluate import PromptEvaluation, accuracy, accuracy_by_family, accuracy_by_instruction, evaluate_prompt
from .probe import InstructionFollowingParams, InstructionFollowingProbe
from .prompts import IFPrompt, load_prompts

__all__ = [
    "IFPrompt",
    "InstructionFollowingParams",
    "InstructionFollowingProbe",
    "PromptEvaluation",
    "accuracy",
    "accuracy_by_family",
    "accuracy_by_instruction",
    "evaluate_prompt",
    "get_checker",
    "instruction_ids",
    "load_prompts",
]
