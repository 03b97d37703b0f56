# Every target creates .venv and installs what it needs on a fresh machine.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run test lint bench bench-quick clean chromium

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test,embedded]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/cronctl serve --embedded --scheduler scheduler --repo . --path crons.d

# The status page's tests load the daemon's pages in headless Chromium (Debian package).
chromium:
	command -v chromium >/dev/null || (apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y chromium)

test: $(STAMP) chromium
	$(BIN)/ruff check reconciler tests bench
	$(BIN)/lint-imports
	$(BIN)/pytest -p no:cacheprovider -q -n 2 --dist loadfile

lint: $(STAMP)
	$(BIN)/ruff check reconciler tests bench
	$(BIN)/lint-imports

# Benchmarks against a moto server in its own process (loopback); both write
# bench/results.json and bench/RESULTS.md. bench-quick: smaller sizes, under 3 minutes.
bench: $(STAMP)
	$(BIN)/python -m bench

bench-quick: $(STAMP)
	$(BIN)/python -m bench --quick

clean:
	rm -rf $(VENV) build *.egg-info
