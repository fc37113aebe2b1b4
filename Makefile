# Every target creates what it needs: a fresh clone needs only python3.11 and npm (and, for
# the PostgreSQL suites, apt as root: `make test` installs Debian's postgresql if missing).
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
BUF_DIR := $(VENV)/buf
BUF := $(BUF_DIR)/node_modules/.bin/buf
BUF_VERSION := 1.75.0
# npm tools and the scratch copy live in .venv; the stubs themselves go to STUBS_OUT,
# which `make clean` leaves alone (override it: make stubs STUBS_OUT=../client/gen).
STUBS_TOOLS := $(VENV)/stubs-tools
STUBS_SCRATCH := $(STUBS_TOOLS)/gen
STUBS_OUT ?= build/stubs/typescript
DATA_DIR ?= .keyway
PROTO_FILES := $(wildcard proto/keyway/v1/*.proto)

.PHONY: all run demo test lint proto proto-check stubs openapi bench screenshots chromium clean postgresql

all: test

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	touch $@

$(BUF):
	mkdir -p $(BUF_DIR)
	npm install --silent --no-audit --no-fund --prefix $(BUF_DIR) @bufbuild/buf@$(BUF_VERSION)

# The tests start their own PostgreSQL server (initdb in a temp dir, a free loopback port);
# they only need the binaries.
postgresql:
	@ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql)

# Flags pass through: make run ARGS="--mock-upstream --proxy-listen 127.0.0.1:9080"
run: $(STAMP)
	$(BIN)/keyway up --data-dir $(DATA_DIR) $(ARGS)

demo: $(STAMP)
	$(BIN)/keyway demo $(ARGS)

# google/api comes from proto/vendor (a buf module of its own); its Python from the
# googleapis-common-protos package, so only keyway's files are generated. The descriptor
# set keeps the comments, which the OpenAPI document uses as descriptions.
proto: $(STAMP)
	$(BIN)/python -m grpc_tools.protoc -Iproto -Iproto/vendor \
		--descriptor_set_out=proto/keyway/v1/contract.binpb --include_source_info \
		--python_out=proto --grpc_python_out=proto \
		--mypy_out=proto --mypy_grpc_out=proto \
		--plugin=protoc-gen-mypy=$(BIN)/protoc-gen-mypy \
		--plugin=protoc-gen-mypy_grpc=$(BIN)/protoc-gen-mypy_grpc \
		$(PROTO_FILES:proto/%=%)

# Fails when the committed generated code is not what `make proto` produces.
proto-check: proto
	git diff --exit-code --stat -- proto/ || \
		(echo "generated code is stale: run 'make proto' and commit" >&2; exit 1)

# TypeScript stubs from the same contract, type-checked with tsc: proof that
# other languages can call the admin API (tools from the npm registry only).
stubs: $(BUF)
	mkdir -p $(STUBS_TOOLS)
	npm install --silent --no-audit --no-fund --prefix $(STUBS_TOOLS) \
		@bufbuild/protoc-gen-es@2.17.0 @bufbuild/protobuf@2.17.0 typescript@5.9
	rm -rf $(STUBS_SCRATCH)
	$(BUF) generate proto --template '{"version":"v2","plugins":[{"local":"$(abspath $(STUBS_TOOLS))/node_modules/.bin/protoc-gen-es","out":"$(abspath $(STUBS_SCRATCH))","opt":["target=ts"]}]}'
	cd $(STUBS_TOOLS) && ./node_modules/.bin/tsc --noEmit --strict --target es2022 \
		--module nodenext --moduleResolution nodenext gen/keyway/v1/*.ts
	rm -rf $(STUBS_OUT)/keyway && mkdir -p $(STUBS_OUT)
	cp -R $(STUBS_SCRATCH)/. $(STUBS_OUT)/
	@echo "TypeScript stubs (type-checked) in $(STUBS_OUT)/keyway/v1"

# The admin REST API's OpenAPI 3.1 document, as the control plane serves it at /openapi.json.
OPENAPI_OUT ?= build/openapi.json
openapi: $(STAMP)
	mkdir -p $(dir $(OPENAPI_OUT))
	$(BIN)/python -m control_plane.http > $(OPENAPI_OUT)
	@echo "OpenAPI document in $(OPENAPI_OUT)"

# buf breaking compares images of keyway's own files: the workspace has a second module
# (the vendored googleapis), and a commit before it had one module.
lint: $(STAMP) $(BUF)
	$(BUF) lint
	@if git cat-file -e HEAD~1:proto 2>/dev/null; then \
		$(BUF) build '.git#ref=HEAD~1' --path proto/keyway -o $(VENV)/contract-before.binpb && \
		$(BUF) build --path proto/keyway -o $(VENV)/contract-now.binpb && \
		$(BUF) breaking $(VENV)/contract-now.binpb --against $(VENV)/contract-before.binpb; \
	else echo "buf breaking: no previous commit with proto/, skipped"; fi
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

# Line coverage of both planes is printed and must stay at or above COVERAGE_FLOOR (the
# whole) and tests.pure.FLOOR (each pure module, checked by `python -m tests.pure`).
COVERAGE_FLOOR ?= 94
# The web console's browser tests drive Debian's Chromium through Playwright (from PyPI; it
# downloads no browser of its own).
chromium:
	command -v chromium >/dev/null || (apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium)

# The README's REST quickstart is run by a test with real curl and jq.
test: $(STAMP) postgresql chromium proto-check lint
	command -v curl >/dev/null && command -v jq >/dev/null || (apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq curl jq)
	$(BIN)/pytest --cov --cov-report=term --cov-fail-under=$(COVERAGE_FLOOR)
	$(BIN)/python -m tests.pure

bench: $(STAMP) postgresql
	command -v wrk >/dev/null || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk)
	$(BIN)/pytest tests/bench -p no:randomly -s --timeout=900

# A PNG of each console page, taken in Chromium against a real stack (the README shows them).
SCREENSHOTS_OUT ?= control_plane/console/screenshots
screenshots: $(STAMP) chromium
	$(BIN)/python -m tests.e2e.screenshots $(SCREENSHOTS_OUT)

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache
