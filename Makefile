# Two commands for a newcomer (each creates the environment when it is missing):
#   make demo   train the five components on synthetic spines (tiny settings), segment and label
#               held-out synthetic radiographs (overlays in outputs/demo/predictions), evaluate on the test split
#   make test   check the code's style (make lint), then run the test suite
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
PY := $(VENV)/bin/python
INSTALLED := $(VENV)/.installed
DEMO_DIR ?= outputs/demo

.PHONY: demo test lint env clean

env: $(INSTALLED)

$(INSTALLED): requirements.lock pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements.lock
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps -e .
	@touch $@

# Held-out films: the synthetic test split (its seeds never meet the training ones), lateral lumbar.
HELD_OUT := dataset.reader.num_images='{train:0,val:0,test:8}' dataset.reader.phantom.image_size=256 \
	dataset.reader.phantom.views=[lateral_lumbar] splits=[test]

demo: $(INSTALLED)
	$(PY) train.py experiment=train_all_tiny
	$(PY) -m spinefm.data.export dataset=synthetic $(HELD_OUT) out=$(DEMO_DIR)/films
	$(PY) infer.py input=$(DEMO_DIR)/films/images output=$(DEMO_DIR)/predictions pipeline.view=lateral_lumbar
	$(PY) evaluate.py dataset=synthetic

test: lint
	$(PY) -m pytest

# ruff (configured in pyproject.toml): lint rules and the formatter's layout; `ruff format .` fixes the latter
lint: $(INSTALLED)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

clean:
	rm -rf $(VENV) outputs .pytest_cache .ruff_cache
