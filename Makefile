# One command for the demo, one for the tests; both create .venv when it is missing.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell sha1sum pyproject.toml | cut -c1-12)
DEMO_OUT ?= demo-output

.PHONY: demo test lint bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e ".[dev,runner,sweep]"
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/python examples/demo.py --out $(DEMO_OUT)
	$(BIN)/python examples/al_demo.py --out $(DEMO_OUT)/al

test: $(STAMP)
	$(BIN)/ruff check palm_bayes al_runner tests benchmarks examples
	$(BIN)/ruff format --check palm_bayes al_runner tests benchmarks examples
	$(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check palm_bayes al_runner tests benchmarks examples
	$(BIN)/ruff format --check palm_bayes al_runner tests benchmarks examples

bench: $(STAMP)
	$(BIN)/python benchmarks/lcdb_forecast.py

clean:
	rm -rf $(VENV) $(DEMO_OUT)
