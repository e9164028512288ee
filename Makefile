# One command for the demo, one for the tests; both create .venv when it is missing.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell sha1sum pyproject.toml | cut -c1-12)
DEMO_OUT ?= demo-output

.PHONY: demo test docs lint bench clean browser

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e ".[dev,docs,runner,sweep]"
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/python examples/demo.py --out $(DEMO_OUT)
	$(BIN)/python examples/al_demo.py --out $(DEMO_OUT)/al

test: $(STAMP) browser
	$(BIN)/ruff check palm_bayes al_runner tests benchmarks examples
	$(BIN)/ruff format --check palm_bayes al_runner tests benchmarks examples
	$(BIN)/lint-imports
	$(MAKE) docs
	$(BIN)/python -m pytest -q

# the documentation site; any Sphinx warning is an error
docs: $(STAMP)
	$(BIN)/sphinx-build -W -b html docs docs/_build

# the report's browser test renders it in Debian's Chromium: installed when we are root
browser:
	@command -v chromium >/dev/null || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null \
	  && apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium \
	  >/dev/null; } || echo "chromium could not be installed: the report's browser test skips (fails under CI=true)"

lint: $(STAMP)
	$(BIN)/ruff check palm_bayes al_runner tests benchmarks examples
	$(BIN)/ruff format --check palm_bayes al_runner tests benchmarks examples
	$(BIN)/lint-imports

bench: $(STAMP)
	$(BIN)/python benchmarks/lcdb_forecast.py

clean:
	rm -rf $(VENV) $(DEMO_OUT) docs/_build
