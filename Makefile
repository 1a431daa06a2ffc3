# gcalib developer commands. `make test` is the one CI runs (.ci/run).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
DOCS_STAMP := $(VENV)/.docs-installed-stamp
UI_STAMP := $(VENV)/.ui-installed-stamp
SITE := docs/_build/html
SPHINXOPTS ?=

.PHONY: install test test-fast test-headless bench demo notebooks docs test-ui clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -e '.[dev,notebooks]'
	touch $(STAMP)

$(DOCS_STAMP): $(STAMP)
	$(PY) -m pip install -e '.[dev,notebooks,docs]'
	touch $(DOCS_STAMP)

$(UI_STAMP): $(DOCS_STAMP)
	$(PY) -m pip install -e '.[dev,notebooks,docs,ui]'
	touch $(UI_STAMP)

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

# The site: README, the notebooks executed (figures included), the API reference, results; offline.
# A fresh build every time (-E), so that the notebooks run against the current code.
docs: $(DOCS_STAMP)
	rm -rf docs/api docs/_generated
	mkdir -p docs/_build
	$(PY) -m sphinx -b html -E -w docs/_build/warnings.txt $(SPHINXOPTS) docs $(SITE)
	$(PY) docs/check_site.py $(SITE) docs/_build/warnings.txt

$(SITE)/index.html:
	$(MAKE) docs

# Browser tests of the site and of the widgets in JupyterLab (Chromium from the distribution's packages).
test-ui: $(UI_STAMP) $(SITE)/index.html
	@if ! command -v chromium >/dev/null 2>&1 || ! command -v chromedriver >/dev/null 2>&1; then \
		if [ "$$(id -u)" = 0 ]; then sudo=; else sudo=sudo; fi; \
		echo "installing chromium and chromium-driver with apt-get"; \
		$$sudo apt-get update && DEBIAN_FRONTEND=noninteractive $$sudo apt-get install -y chromium chromium-driver; \
	fi
	$(PY) -m pytest tests/ui -v -p no:cacheprovider

clean:
	rm -rf notebooks/_executed benchmarks/results runs .pytest_cache docs/_build docs/_generated docs/api
