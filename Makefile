# Two commands set everything up on a fresh machine with python3 and make:
#   make demo   installs everything and runs the main job (train, analyse, plot)
#   make test   installs everything and runs the test suite
#   make bench  runs the stopping, overhead and start-up benchmarks (results in benchmarks/results/)
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
STAMP   = $(VENV)/.installed
OUT    ?= demo_output

.PHONY: install demo test bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e ".[all,dev]"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/python recipes/demo.py --out $(OUT)

test: $(STAMP)
	$(BIN)/python -m pytest -q

bench: $(STAMP)
	$(BIN)/python -m pip install -q -e ".[all,dev,bench]"
	$(BIN)/python benchmarks/stopping.py
	$(BIN)/python benchmarks/overhead.py
	$(BIN)/python benchmarks/startup.py

clean:
	rm -rf $(VENV) $(OUT) .pytest_cache
