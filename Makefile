# tagmill: `make demo` runs two bootstrapped rounds of the engine on a synthetic world; `make test` runs the CPU test suite.
VENV ?= .venv
PYTHON ?= python3
PY := $(VENV)/bin/python
INSTALLED := $(VENV)/.installed

.PHONY: install test test-all demo bench clean

$(INSTALLED): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c constraints.txt -e '.[test]'
	touch $@

install: $(INSTALLED)

test: $(INSTALLED)
	$(PY) -m pytest -q

# The demo: configs/rounds/demo.yaml on a 4,000-image world, about four minutes on 2 cores. Every run
# on one machine prints the same table (images decoded in the training process, fixed seeds).
demo: $(INSTALLED)
	$(VENV)/bin/tagmill synth --out demo/world --n 4000 --seed 0
	$(VENV)/bin/tagmill rounds --config configs/rounds/demo.yaml --input demo/world --work demo/rounds --rounds 2

bench: $(INSTALLED)
	$(PY) -m pip install --quiet -c constraints.txt -e '.[test,bench]'
	$(PY) benchmarks/bench_parse.py
	$(PY) benchmarks/bench_parse_cli.py
	$(PY) benchmarks/bench_pipeline.py

clean:
	rm -rf demo build *.egg-info
