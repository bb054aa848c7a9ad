# Two commands set everything up on a fresh machine:
#   make demo   create .venv, install lstmkit, run the main job (AirPassengers forecast)
#   make test   create .venv, install lstmkit with test tools, run the test suite
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
OUT ?= runs/air_passengers

.PHONY: demo test lint bench clean

$(BIN)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet -c constraints.txt -e '.[dev]'
	@touch $@

demo: $(BIN)/.installed
	$(BIN)/lstmkit forecast --out $(OUT)

test: $(BIN)/.installed
	$(BIN)/python -m pytest -q

lint: $(BIN)/.installed
	$(BIN)/ruff check . && $(BIN)/ruff format --check .

# The benchmarks behind benchmarks/RESULTS.md (IMDB needs ../shared/data; ~40 min in all).
bench: $(BIN)/.installed
	$(BIN)/python benchmarks/layers.py
	$(BIN)/python benchmarks/variants.py
	$(BIN)/python benchmarks/forecast_accuracy.py
	$(BIN)/python benchmarks/forecast_accuracy.py --precision bf16-mixed
	$(BIN)/python benchmarks/etth1.py
	$(BIN)/python benchmarks/imdb.py --preset seed003
	$(BIN)/python benchmarks/imdb.py --preset seed003 --precision bf16-mixed
	$(BIN)/python benchmarks/imdb.py

clean:
	rm -rf $(VENV) runs build src/*.egg-info .pytest_cache
