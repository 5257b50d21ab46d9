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

# The demo's tagger trains about three minutes in all: round 0 longest, later rounds continue from the
# previous round's tagger. It is the narrow `tiny` one, not configs/rounds/synthetic.yaml's
# tiny-fine, to stay within five minutes. Trained this briefly on its own generated tags, it grows
# sure of tags that are not there, and thresholds from the mixture of its scores let them through
# (round 2 precision 0.74), so the demo calibrates them by best F1.
demo: $(INSTALLED)
	$(VENV)/bin/tagmill synth --out demo/world --n 2000 --seed 0
	$(VENV)/bin/tagmill rounds --config configs/rounds/synthetic.yaml --input demo/world --work demo/rounds \
		--rounds 2 --set train.model=tiny --set train.epochs=24 --set train.batch_size=32 \
		--set warm_start.enabled=true --set warm_start.epochs=6 --set warm_start.lr=0.001 \
		--set train.thresholds=f1

bench: $(INSTALLED)
	$(PY) -m pip install --quiet -c constraints.txt -e '.[test,bench]'
	$(PY) benchmarks/bench_parse.py
	$(PY) benchmarks/bench_parse_cli.py
	$(PY) benchmarks/bench_pipeline.py

clean:
	rm -rf demo build *.egg-info
