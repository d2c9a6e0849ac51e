"""The vLLM parity suite runs only in the vLLM environment (`make test-vllm`): offline, this folder importable.

Without vLLM the run stops with a usage error rather than skipping, so a broken vLLM install never passes as green.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).parent))

if importlib.util.find_spec("vllm") is None:
    raise pytest.UsageError("tests_vllm needs vLLM: run it with `make test-vllm` (builds .venv-vllm)")
