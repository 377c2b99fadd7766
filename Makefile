# Two commands on a fresh machine: `make demo` and `make test`. Both create .venv on first use.
VENV    ?= .venv
PYTHON  ?= python3
PY      := $(VENV)/bin/python
STAMP   := $(VENV)/.installed-stamp
KERNEL  := mtlskit

.PHONY: venv demo test test-fast lint lab sandbox sandbox-down clean bench

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	$(PY) -m ipykernel install --sys-prefix --name $(KERNEL) --display-name "Python (mtlskit)" >/dev/null
	touch $(STAMP)

venv: $(STAMP)

demo: venv
	$(VENV)/bin/mtlskit run --apply

lint: venv
	$(VENV)/bin/ruff check lib tests bench
	$(VENV)/bin/ruff format --check lib tests bench
	$(VENV)/bin/lint-imports --config pyproject.toml

test: venv lint
	$(VENV)/bin/pytest

# Seconds, no sandbox and no kernel: every test not marked e2e (tests/conftest.py says which are).
test-fast: venv
	$(VENV)/bin/pytest -m "not e2e"

lab: venv
	$(VENV)/bin/mtlskit sandbox up
	$(VENV)/bin/jupyter lab --notebook-dir=notebooks

sandbox: venv
	$(VENV)/bin/mtlskit sandbox up --foreground

sandbox-down: venv
	$(VENV)/bin/mtlskit sandbox down

bench: venv
	$(PY) bench/run.py
	$(PY) bench/dataplane.py
	$(PY) bench/runbook.py

clean:
	-$(VENV)/bin/mtlskit sandbox down 2>/dev/null
	rm -rf $(VENV) .sandbox runs
