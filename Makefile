# Two entry points do all set-up on a fresh machine: `make demo` and `make test`.
PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test test-fast install clean data bench

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	# The CPU build of torch lies on local disk; asking for it first keeps pip from pulling a CUDA build.
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/netgpt demo

test: $(STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/python -m pytest

# Lint and every test not marked slow (no training, subprocess servers or Ray): a few minutes on a 2-core CPU.
test-fast: $(STAMP)
	$(BIN)/ruff check src tests benchmarks && $(BIN)/python -m pytest -m "not slow"

# The headline benchmark (hours on a 2-core CPU; resumable: finished stages are skipped).
bench: $(STAMP)
	$(BIN)/netgpt bench --config configs/bench-cpu.yaml

# Regenerate the committed benchmark splits (deterministic; `netgpt tasks check` verifies them).
data: $(STAMP)
	$(BIN)/netgpt tasks build --out data/bench

clean:
	rm -rf $(VENV) .pytest_cache
