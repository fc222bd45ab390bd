# Two commands matter on a fresh machine: `make demo` and `make test`.
# Both create the virtual environment when it is missing and install what they need.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell cat pyproject.toml | sha1sum | cut -c1-12)

.PHONY: demo test bench faults lint scan clean venv browser

$(STAMP): pyproject.toml
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	rm -f $(VENV)/.installed-*; touch $(STAMP)

venv: $(STAMP)

# Page tests drive the distribution's Chromium through Playwright (Playwright's own browser
# download is not used). Installed once with apt-get when missing; CHROMIUM names another one.
CHROMIUM ?= /usr/bin/chromium
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
browser:
	@test -x "$(CHROMIUM)" || command -v chromium >/dev/null || { \
	  echo "installing Debian's chromium for the page tests"; \
	  $(SUDO) apt-get install -y -q chromium >/dev/null 2>&1 || \
	  { $(SUDO) apt-get update -q >/dev/null && $(SUDO) apt-get install -y -q chromium >/dev/null; }; }

demo: $(STAMP)
	$(BIN)/alertprod demo

# The suite runs on TEST_WORKERS processes (pytest-xdist), a test file's tests on one of them
# (module fixtures, such as a replayed survey, are built once); TEST_WORKERS=0 runs in one.
TEST_WORKERS ?= 2
test: $(STAMP) browser
	$(BIN)/python -m pytest -m 'not bench' -n $(TEST_WORKERS) --dist loadfile $(PYTEST_ARGS)

bench: $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[bench]'
	$(BIN)/python -m pytest tests/benchmarks -m bench -s -p no:cacheprovider $(PYTEST_ARGS); \
	status=$$?; $(BIN)/python tests/benchmarks/summary.py; exit $$status

# The whole fault-injection matrix (docs/reliability.md): the ingest function killed at every
# AWS call of a CCD, every AWS error rule, the clock jump. `make test` runs a reduced matrix.
faults: $(STAMP)
	ALERTPROD_FAULTS=full $(BIN)/python -m pytest tests/integration/test_fault_matrix.py -s -p no:cacheprovider $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check layers functions tests
	$(BIN)/cfn-lint infra/template.yaml

# checkov pins its own boto3: it gets a virtual environment of its own.
scan:
	test -d .venv-scan || $(PYTHON) -m venv .venv-scan
	.venv-scan/bin/python -m pip install --quiet checkov
	.venv-scan/bin/checkov -f infra/template.yaml --framework cloudformation --quiet

clean:
	rm -rf $(VENV) .venv-scan build *.egg-info .pytest_cache
