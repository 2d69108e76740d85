# Two commands on a fresh machine: `make demo` (the main job) and `make test`.
# Both create .venv and install the pinned dependencies first.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
TORCH := torch==2.13.0

.PHONY: install demo train test test-fast bench clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	# torch first and pinned: an unpinned requirement would pull a multi-GB CUDA build
	$(BIN)/pip install --quiet $(TORCH)
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

install: $(VENV)/.installed

demo: install
	$(BIN)/catneuron demo

train: install
	test -f corpora/default/manifest.json || $(BIN)/catneuron data compose --out corpora/default
	$(BIN)/catneuron train --preset small

test: install
	$(BIN)/python -m pytest -q

# The inner loop: everything but the tests marked slow (make test still runs all).
test-fast: install
	$(BIN)/python -m pytest -q -m "not slow"

bench: install
	$(BIN)/catneuron bench

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache
