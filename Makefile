# Two commands set everything up on a fresh machine:
#   make demo   create .venv, install lstmkit, run the main job (AirPassengers forecast)
#   make test   create .venv, install lstmkit with test tools, run the test suite
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
OUT ?= runs/air_passengers

.PHONY: demo test test-fallback lint bench clean

$(BIN)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet -c constraints.txt -e '.[dev]'
	# the reference xLSTM package, for the SLSTM/MLSTM interop tests; --no-deps leaves out
	# mlstm_kernels (NXAI Community License), which the vanilla layers do not need
	$(BIN)/pip install --quiet --no-deps -c constraints.txt xlstm
	@touch $@

# The fused CPU kernel is built during set-up (once per machine and torch version, ~30 s),
# so neither the first run nor the tests' timings pay for it; without a compiler this
# says so and lstmkit runs its reference loop.
$(BIN)/.kernel: $(BIN)/.installed $(wildcard src/lstmkit/nn/csrc/*)
	$(BIN)/python -m lstmkit.nn.fused
	@touch $@

demo: $(BIN)/.kernel
	$(BIN)/lstmkit forecast --out $(OUT)

# Two pytest workers (CI has 2 cores; each test process uses one torch thread), a file per
# worker so that module-scoped fixtures (trained tiny models) are built once.
test: $(BIN)/.kernel
	$(BIN)/python -m pytest -q -n 2 --dist loadfile

# The nn and variant tests again as on a CPU without oneDNN products or native bf16
# (lstmkit.nn.cpu), so the fallback path runs on every machine; CI runs it after `make test`.
FALLBACK_TESTS = tests/test_nn_fused.py tests/test_nn_variants.py tests/test_nn_layers.py \
	tests/test_nn_cpu.py tests/test_nn_xlstm.py tests/test_forecasting_variants.py \
	tests/test_text_training.py
test-fallback: $(BIN)/.kernel
	LSTMKIT_CPU_FALLBACK=1 $(BIN)/python -m pytest -q -n 2 --dist loadfile $(FALLBACK_TESTS)

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
