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

# The console's browser test drives Debian's chromium (Playwright's own browser
# download is unreachable): installed here when missing; a failed install stops the run.
test: /usr/bin/chromium
/usr/bin/chromium:
	apt-get install -y chromium || { apt-get update && apt-get install -y chromium; }

bench: $(STAMP)
	$(VENV)/bin/fraudflow bench

clean:
	rm -rf $(VENV) out .pytest_cache .mypy_cache .ruff_cache
