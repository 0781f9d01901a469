# The README's commands. Everything a fresh machine lacks is installed on first use.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PY_STAMP := $(VENV)/.installed
NODE_STAMP := node_modules/.installed
# Debian's Chromium: the console's browser tests and screenshots drive it (no browser is downloaded).
CHROMIUM := /usr/bin/chromium
# checkov's pins clash with the suite's (requirements-checkov.txt), so it gets a venv of its own.
CHECKOV_VENV := .venv-checkov
CHECKOV_STAMP := $(CHECKOV_VENV)/.installed

# The report's text font (tests/analytics/test_glyphs.py checks the report's characters against the installed fonts).
REPORT_FONT := /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf

.PHONY: run test setup bench clean

setup: $(PY_STAMP) $(NODE_STAMP) $(CHECKOV_STAMP) $(REPORT_FONT)

$(REPORT_FONT):
	apt-get update -qq && apt-get install -y -qq --no-install-recommends fonts-dejavu-core

$(PY_STAMP): requirements.txt requirements-dev.txt requirements-analytics.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $@

$(CHECKOV_STAMP): requirements-checkov.txt
	test -x $(CHECKOV_VENV)/bin/python || $(PYTHON) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/python -m pip install --quiet --disable-pip-version-check -r requirements-checkov.txt
	touch $@

$(NODE_STAMP): package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

$(CHROMIUM):
	apt-get update -qq && apt-get install -y -qq chromium

## Serve the app on https://127.0.0.1:7071 over Azurite (data kept in .localdev/; FRESH=1 starts empty;
## SEED=file imports a seed), with the console at the printed `console:` URL.
run: setup
	$(PY) -m localdev run $(if $(FRESH),--fresh,) $(if $(SEED),--seed $(SEED),)

## Run the whole test suite; it starts Azurite and the local host itself.
test: setup $(CHROMIUM)
	$(PY) -m pytest $(PYTEST_ARGS)

## API benchmarks against the local host (numbers go to benchmarks/README.md).
bench: setup
	$(PY) -m benchmarks.api

clean:
	rm -rf $(VENV) $(CHECKOV_VENV) node_modules .localdev .pytest_cache
