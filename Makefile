# Two commands for a newcomer (each creates the environment when it is missing):
#   make demo   generate a synthetic dataset on disk, read it back and check it
#   make test   run the test suite
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
PY := $(VENV)/bin/python
INSTALLED := $(VENV)/.installed
DEMO_DIR ?= outputs/demo

.PHONY: demo test env clean

env: $(INSTALLED)

$(INSTALLED): requirements.lock pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements.lock
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps -e .
	@touch $@

demo: $(INSTALLED)
	$(PY) -m spinefm.data.export dataset=synthetic out=$(DEMO_DIR)/synthetic
	$(PY) -m spinefm.data.check dataset=synthetic dataset.root=$(DEMO_DIR)/synthetic

test: $(INSTALLED)
	$(PY) -m pytest

clean:
	rm -rf $(VENV) outputs .pytest_cache
