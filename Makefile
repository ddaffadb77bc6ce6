# Everything runs from the project's own virtual environment, created on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed

.PHONY: install run test lint bench eval generate check-generated lock redis-server node chromium clean

$(INSTALLED): pyproject.toml clients/pyproject.toml requirements.lock
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements.lock
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps -e clients -e .
	touch $(INSTALLED)

install: $(INSTALLED)

## Start the server on its embedded defaults (PostgreSQL in .data/postgres, 127.0.0.1:50051,
## metrics on http://127.0.0.1:9464/metrics unless METRICS_ADDRESS says otherwise), and the
## edge beside it: the console and the API for browsers on http://127.0.0.1:8080/.
run: install
	@echo "gRPC on $${GRPC_ADDRESS:-127.0.0.1:50051}; console and browser API on http://$${WEB_ADDRESS:-127.0.0.1:8080}/;" \
	  "metrics on http://$${METRICS_ADDRESS:-127.0.0.1:9464}/metrics"
	METRICS_ADDRESS=$${METRICS_ADDRESS:-127.0.0.1:9464} $(BIN)/chatbot-server serve --edge

## Run the test suite against real PostgreSQL + pgvector and a real Redis.
test: install redis-server node chromium
	$(BIN)/python -m pytest

## ruff, mypy --strict, the import layers, buf lint, buf breaking against main, generated code
## up to date.
lint: install node
	$(BIN)/ruff check server clients tests scripts
	$(BIN)/ruff format --check server clients tests scripts
	$(BIN)/mypy
	$(BIN)/lint-imports
	$(BIN)/buf lint
	$(BIN)/buf breaking --against '.git#branch=main'
	$(BIN)/python scripts/generate_protos.py --check
	cd web && npm ci --no-audit --no-fund --loglevel=error && BUF=$(CURDIR)/$(BIN)/buf node scripts/build.mjs --check

## Benchmarks; each prints its figures.
bench: install redis-server
	$(BIN)/python scripts/bench_grpc_overhead.py
	$(BIN)/python scripts/bench_governance.py
	$(BIN)/python scripts/bench_documents.py
	$(BIN)/python scripts/bench_chat.py
	$(BIN)/python scripts/bench_edge.py
	$(BIN)/python scripts/bench_replicas.py
	$(BIN)/python scripts/bench_upload_memory.py

## Retrieval and grounding quality on eval/dev_set/ (fetches Debian's manuals once): the
## questions' pages verified against the manuals, then both halves by language and kind.
eval: install redis-server
	$(BIN)/python scripts/verify_dev_set.py --pdfs
	$(BIN)/python scripts/evaluate.py

## Regenerate clients/chatbot from proto/ (Python code, .pyi stubs, documented descriptor set).
generate: install
	$(BIN)/python scripts/generate_protos.py

check-generated: install
	$(BIN)/python scripts/generate_protos.py --check

## Rebuild the browser console from web/ (npm ci, TypeScript generated from proto/ by
## protoc-gen-es, bundled by esbuild) into server/chatbot_server/edge/console/, committed so
## that `make run` needs no npm.
.PHONY: console
console: install node
	cd web && npm ci --no-audit --no-fund && BUF=$(CURDIR)/$(BIN)/buf npm run generate && npm run build

## Re-resolve requirements.lock from pyproject.toml in a clean environment.
lock:
	rm -rf .lock-venv
	$(PYTHON) -m venv .lock-venv
	.lock-venv/bin/python -m pip install --quiet -e clients -e '.[dev]'
	{ echo "# Exact versions of every dependency (runtime and dev), resolved for Python 3.11."; \
	  echo "# Regenerate with \`make lock\` after changing pyproject.toml."; \
	  .lock-venv/bin/python -m pip freeze --exclude-editable; } > requirements.lock
	rm -rf .lock-venv

## The tests start their own redis-server unless REDIS_URL is set; install it if missing.
redis-server:
	@command -v redis-server >/dev/null || { \
	  echo "installing redis-server (Debian package)"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null; }

## The Node example's test needs node and npm; install Debian's if missing.
node:
	@command -v node >/dev/null && command -v npm >/dev/null || { \
	  echo "installing nodejs and npm (Debian packages)"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >/dev/null; }

## The console's tests drive Debian's Chromium through Playwright; install it if missing.
chromium:
	@command -v chromium >/dev/null || { \
	  echo "installing chromium (Debian package)"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache examples/node/node_modules
