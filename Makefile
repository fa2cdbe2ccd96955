# Two entry points (see README): `make demo` and `make test`.
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp

.PHONY: demo test lint bench clean

$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/fraudflow demo

lint: $(STAMP)
	$(PY) -m ruff check fraudflow tests benchmarks
	$(PY) -m mypy

test: $(STAMP) lint
	$(PY) -m tests.support.timescale
	$(PY) -m pytest

bench: $(STAMP)
	$(VENV)/bin/fraudflow bench

clean:
	rm -rf $(VENV) out .pytest_cache .mypy_cache .ruff_cache
