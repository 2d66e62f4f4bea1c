# CartPole Lab — `make run` starts the app, `make test` runs lint and the whole test suite.
# Both create ./.venv and install the pinned requirements on first use (and again when they change).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: run dev test lint bench chromium clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed-app: requirements.txt | $(BIN)/python
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements.txt
	touch $@

$(VENV)/.installed-dev: requirements.txt requirements-ray.txt requirements-dev.txt | $(BIN)/python
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $@ $(VENV)/.installed-app

run: $(VENV)/.installed-app
	$(BIN)/streamlit run app.py

# While editing pages: reload on save (the watcher costs CPU whenever a worker starts; see .streamlit/config.toml).
dev: $(VENV)/.installed-app
	$(BIN)/streamlit run app.py --server.fileWatcherType auto --server.runOnSave true

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check .

# The browser tests drive Debian's Chromium (Playwright cannot download browsers here); installed when missing.
chromium:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; \
	  else echo "note: no chromium; run 'sudo apt-get install chromium' or the browser tests are skipped"; fi; }

test: lint chromium
	$(BIN)/python -m pytest

# The tables in docs/BENCHMARKS.md. For the SB3 comparison: pip install -r requirements-bench.txt, add --vs-sb3.
bench: $(VENV)/.installed-dev chromium
	$(BIN)/python bench/solve.py --seeds 5
	$(BIN)/python bench/throughput.py
	$(BIN)/python bench/store.py
	$(BIN)/python bench/replay.py
	$(BIN)/python bench/live_page.py
	$(BIN)/python bench/live_cost.py
	$(BIN)/python bench/cli_latency.py
	$(BIN)/python bench/study.py
	$(BIN)/python bench/ray_scale.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
