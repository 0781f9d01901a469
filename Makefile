# The README's commands. Everything a fresh machine lacks is installed on first use.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PY_STAMP := $(VENV)/.installed
NODE_STAMP := node_modules/.installed

.PHONY: run test setup bench clean

# The report's text font (tests/analytics/test_glyphs.py checks the report's characters against the installed fonts).
REPORT_FONT := /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf

setup: $(PY_STAMP) $(NODE_STAMP) $(REPORT_FONT)

$(REPORT_FONT):
	apt-get update -qq && apt-get install -y -qq --no-install-recommends fonts-dejavu-core

$(PY_STAMP): requirements.txt requirements-dev.txt requirements-analytics.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $@

$(NODE_STAMP): package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

## Serve the app on https://127.0.0.1:7071 over Azurite (data kept in .localdev/; FRESH=1 starts empty).
run: setup
	$(PY) -m localdev run $(if $(FRESH),--fresh,)

## Run the whole test suite; it starts Azurite and the local host itself.
test: setup
	$(PY) -m pytest $(PYTEST_ARGS)

## API benchmarks against the local host (numbers go to benchmarks/README.md).
bench: setup
	$(PY) -m benchmarks.api

clean:
	rm -rf $(VENV) node_modules .localdev .pytest_cache
