# Two commands for a newcomer (see README.md):
#   make run    set everything up and serve on the embedded local store
#   make test   set everything up and run every check and test tier
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
TOOLS_STAMP := tools/node_modules/.installed

.PHONY: run test setup lint protos pytest bench clean

run: $(STAMP)
	$(BIN)/sessiond serve

test: $(STAMP) $(TOOLS_STAMP) lint pytest

setup: $(STAMP) $(TOOLS_STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test,dev]'
	touch $@

$(TOOLS_STAMP): tools/package.json tools/package-lock.json
	# `npm install` rather than `npm ci`: the registry mirror lacks some of buf's
	# other-platform optional packages, which `npm ci` insists on.
	cd tools && npm install --no-audit --no-fund --loglevel=error
	touch $@

# Contract and code checks: buf STANDARD lint, format and breaking changes
# against the released contract, committed stubs and API reference match the
# protos, ruff.
lint: $(STAMP) $(TOOLS_STAMP)
	scripts/check_contract.sh
	PYTHON=$(BIN)/python scripts/gen_protos.sh --check
	$(BIN)/python scripts/gen_api_reference.py --check
	$(BIN)/ruff check server client tests bench scripts
	$(BIN)/ruff format --check server client tests bench scripts

protos: $(STAMP)
	PYTHON=$(BIN)/python scripts/gen_protos.sh

pytest: $(STAMP)
	$(BIN)/pytest $(PYTEST_ARGS)

bench: $(STAMP)
	$(BIN)/python -m bench $(BENCH_ARGS)

clean:
	rm -rf $(VENV) tools/node_modules .pytest_cache client/node/node_modules client/node/dist
