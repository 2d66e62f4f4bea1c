# CartPole Lab — `make run` starts the app, `make test` runs lint and the whole test suite.
# Both create ./.venv and install the pinned requirements on first use (and again when they change).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: run test lint bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed-app: requirements.txt | $(BIN)/python
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements.txt
	touch $@

$(VENV)/.installed-dev: requirements.txt requirements-dev.txt | $(BIN)/python
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $@ $(VENV)/.installed-app

run: $(VENV)/.installed-app
	$(BIN)/streamlit run app.py

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check .

test: lint
	$(BIN)/python -m pytest

bench: $(VENV)/.installed-dev
	$(BIN)/python bench/solve.py --algos qlearning,dqn,ppo --seeds 5

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
