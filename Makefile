# Two commands on a fresh machine:  `make demo` (install + open the app on the sample data)
# and `make test` (install + run the tests). Each creates the virtual environment it needs.
PYTHON ?= python3
VENV ?= .venv
TORCH_SPEC ?= torch>=2.1
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test install bench sample-data package wheel-check clean lint mutation

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q "$(TORCH_SPEC)"
	$(BIN)/python -m pip install -q -e ".[dev,ann,cluster]"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/embedding-explorer --demo

test: $(STAMP)
	QT_QPA_PLATFORM=offscreen $(BIN)/python -m pytest -q -p no:cacheprovider
	$(BIN)/lint-imports

bench: $(STAMP)
	for f in benchmarks/bench_*.py; do QT_QPA_PLATFORM=offscreen $(BIN)/python $$f || exit 1; done

# Mutation testing of the Qt-free core with mutmut (configured in pyproject.toml); slow, not
# in CI. MUTANTS narrows the run to some mutant names (globs), e.g.
#   make mutation MUTANTS='explorer.metrics.sigreg*'
# Results are kept in mutants/ (a rerun only tests what changed); scores per module follow.
MUTANTS ?=
MUTATION_JOBS ?= 2
mutation: $(STAMP)
	$(BIN)/python -m pip install -q -e ".[mutation]"
	mkdir -p mutants/.numba-cache
	QT_QPA_PLATFORM=offscreen NUMBA_CACHE_DIR=$(CURDIR)/mutants/.numba-cache $(BIN)/mutmut run --max-children $(MUTATION_JOBS) $(MUTANTS)
	$(BIN)/python scripts/mutation_scores.py

sample-data: $(STAMP)
	$(BIN)/python scripts/make_sample_data.py

# one-folder bundle in dist/embedding-explorer/ (+ dist/Embedding Explorer.app on macOS), then
# the smoke test: --demo --screenshot offscreen, picture not blank, size and start-up time.
# (-e keeps the development install editable; the extra only adds PyInstaller.)
package: $(STAMP)
	$(BIN)/python -m pip install -q -e ".[package]"
	$(BIN)/pyinstaller --noconfirm --clean packaging/embedding-explorer.spec --distpath dist --workpath build/pyinstaller
	PYTHON=$(BIN)/python packaging/smoke_test.sh dist/embedding-explorer

clean:
	rm -rf build dist *.egg-info .pytest_cache mutants
