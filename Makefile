# gcalib developer commands. `make test` is the one CI runs (.ci/run).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp

.PHONY: install test test-fast test-headless bench demo notebooks clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -e '.[dev,notebooks]'
	touch $(STAMP)

install: $(STAMP)

test: $(STAMP)
	$(PY) -m pytest tests notebooks --ignore=tests/ui --nbval-lax --nbval-current-env -p no:cacheprovider
	$(PY) -m pytest --doctest-modules gcalib -p no:cacheprovider

test-fast: $(STAMP)
	$(PY) -m pytest tests -x -q -m "not slow"

bench: $(STAMP)
	$(PY) -m benchmarks

demo: $(STAMP)
	$(PY) -m gcalib compare --dataset clutter_digits --out runs/demo

notebooks: $(STAMP)
	mkdir -p notebooks/_executed
	$(PY) -m jupyter nbconvert --to notebook --execute --ExecutePreprocessor.timeout=600 \
		--output-dir notebooks/_executed notebooks/[0-9]*.ipynb

test-headless: $(STAMP)
	$(PY) tests/notebook/headless.py

clean:
	rm -rf notebooks/_executed benchmarks/results runs .pytest_cache
