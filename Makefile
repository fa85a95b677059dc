# The two commands a new user needs: `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
HOME_DIR ?= data
JOBS ?= $(shell nproc 2>/dev/null || echo 2)

.PHONY: demo test test-fast bench install clean-demo i18n

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# Reinstall when the project's dependencies change.
$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	@if [ ! -f $(HOME_DIR)/portal.duckdb ]; then $(BIN)/dossync --home $(HOME_DIR) demo; fi
	$(BIN)/dossync --home $(HOME_DIR) tui

# The whole suite, on every core (what CI runs).
test: $(STAMP)
	$(BIN)/python -m pytest -q -n $(JOBS) --dist worksteal

# The fast tier: everything but the slow files (tests/conftest.py: SLOW_FILES).
test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -n $(JOBS) --dist worksteal -m "not slow"

# Every benchmark measures its ratios side by side in one run (the machine is shared).
# A missed target is reported, and the other benchmarks still run.
bench: $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[dev,bench]'
	-$(BIN)/python bench/run.py
	-$(BIN)/python bench/nightly_bench.py
	-$(BIN)/python bench/reconcile_bench.py
	-$(BIN)/python bench/beancount_activation.py
	-$(BIN)/python bench/tui_startup.py
	-$(BIN)/python bench/tui_responsiveness.py
	-$(BIN)/python bench/queue_bench.py
	-$(BIN)/python bench/pg_bench.py
	-$(BIN)/python bench/queue_bench.py --postgres --dossiers 1000

# The messages' catalogs, with Babel's standard tooling: extract what core/ and tui/ mark
# with _() or N_() into the template, bring every language's .po up to date (translators
# work there), and compile them (dossync also compiles a .po in memory when no .mo is there).
i18n: $(STAMP)
	$(BIN)/pybabel extract -F babel.cfg -k _ -k N_ -k ngettext:1,2 --no-location \
	    --sort-output --project dossync \
	    --version $(shell sed -n 's/^version = "\(.*\)"/\1/p' pyproject.toml) \
	    -o core/locale/dossync.pot .
	$(BIN)/pybabel update -i core/locale/dossync.pot -d core/locale -D dossync \
	    --ignore-obsolete --no-fuzzy-matching --width 100
	$(BIN)/pybabel compile -d core/locale -D dossync --statistics

clean-demo:
	rm -rf $(HOME_DIR)/portal.duckdb $(HOME_DIR)/portal.duckdb.wal $(HOME_DIR)/ledgers \
	       $(HOME_DIR)/staging $(HOME_DIR)/locks $(HOME_DIR)/logs $(HOME_DIR)/outbox \
	       $(HOME_DIR)/verdicts
