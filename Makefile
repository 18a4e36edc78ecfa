# One entry point for every task. `make serve` and `make test` are the two commands of the
# README; both set up the virtual environment first when it is missing or stale.

VENV ?= .venv
PYTHON := $(VENV)/bin/python
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup serve test test-fast lint typecheck generate check-generated clients bench soak clean

$(STAMP): pyproject.toml clients/python/pyproject.toml
	python3 -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ./clients/python -e '.[dev]'
	touch $(STAMP)

setup: $(STAMP)

## Start the service on its embedded default (SQLite file ./assistants.db, port 50051).
serve: $(STAMP)
	$(BIN)/assistants-grpc serve

## Run every test. PostgreSQL tests use ASSISTANTS_TEST_POSTGRES_URL
## (default postgresql://postgres@127.0.0.1:5432/postgres) and are skipped without a server
## outside CI; client tests need `make clients` (skipped without their toolchains outside CI).
test: $(STAMP)
	$(BIN)/pytest

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/buf lint protos
	$(BIN)/buf format --diff --exit-code protos
	$(BIN)/hadolint Dockerfile
	scripts/check-breaking.sh

typecheck: $(STAMP)
	$(BIN)/mypy

generate: $(STAMP)
	scripts/generate.sh

check-generated: $(STAMP)
	scripts/check-generated.sh

## Toolchains and builds of the TypeScript and Go clients (apt-get and npm; needs root).
clients:
	scripts/install-client-toolchains.sh
	cd clients/typescript && npm run build
	scripts/go-gopath-build.sh

bench: $(STAMP)
	$(PYTHON) bench/crud.py
	$(PYTHON) bench/conversation.py
	$(PYTHON) bench/replicas.py

soak: $(STAMP)
	$(PYTHON) bench/soak.py

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
