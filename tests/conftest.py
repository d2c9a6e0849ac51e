"""Shared fixtures: tiny tokenizer/model built once per session, offline."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).parent))

import tiny  # noqa: E402


@pytest.fixture(scope="session")
def tiny_tokenizer():
    return tiny.build_tokenizer()


@pytest.fixture(scope="session")
def tiny_bos_tokenizer():
    """A tokenizer that adds BOS itself (like Llama's), for BOS-at-most-once tests."""
    return tiny.build_tokenizer(add_bos=True)


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    return tiny.save_tiny_model(tmp_path_factory.mktemp("tiny-model"))
