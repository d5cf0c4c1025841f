# toutiao-reco — `make run` starts the suite on its embedded default;
# `make test` runs every test against real Redis and HBase, which it starts.

SHELL := bash
.DEFAULT_GOAL := help

BIN     := $(CURDIR)/.cache/bin
GOBIN_ENV := GOBIN=$(BIN)

# Pinned tool versions (all install through the Go module proxy).
BUF_VERSION              := v1.70.0
PROTOC_GEN_GO_VERSION    := v1.36.11
PROTOC_GEN_GO_GRPC_VERSION := v1.5.1
GRPCURL_VERSION          := v1.9.3
GRPC_GATEWAY_VERSION     := v2.33.0
STATICCHECK_VERSION      := v0.8.2
GOLANGCI_LINT_VERSION    := v2.15.0

# What `reco --version` and reco_build_info report; a build without these flags
# (go build, go install) falls back to the module's build information.
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT  ?= $(shell git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)
LDFLAGS := -X github.com/toutiao-reco/toutiao-reco/pkg/buildinfo.version=$(VERSION) -X github.com/toutiao-reco/toutiao-reco/pkg/buildinfo.commit=$(COMMIT)

# The generated code: buf writes it, check-generated fails when it is stale.
GENERATED := pkg/pb docs/openapi
PROTOC_PLUGINS := $(BIN)/protoc-gen-go $(BIN)/protoc-gen-go-grpc $(BIN)/protoc-gen-grpc-gateway $(BIN)/protoc-gen-openapiv2

.PHONY: help
help: ## list the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

.PHONY: build
build: ## build bin/reco
	go build -ldflags '$(LDFLAGS)' -o bin/reco ./cmd/reco

.PHONY: run
run: build ## serve all six services on 127.0.0.1:9999, embedded storage, in the foreground (demo data if empty)
	mkdir -p .cache
	bin/reco admin demo --models .cache/models
	@echo "make run: README's grpcurl examples need make tools and export PATH=$(BIN):\$$PATH"
	RECO_SERVER_LAME_DUCK=0s bin/reco serve --target=all

.PHONY: test
test: $(BIN)/grpcurl ## run every test; starts real Redis, HBase and Kafka (installing them, promtool and grpcurl if missing)
	scripts/promtool.sh install >/dev/null
	scripts/integration.sh scripts/gotest.sh

.PHONY: chaos
chaos: ## the chaos test, long: minutes of outage per fault and a soak (RECOTEST_CHAOS=long), its own servers
	scripts/integration.sh env RECOTEST_CHAOS=long go test -count=1 -v -timeout 90m -run '^TestChaos$$' ./test/chaos/

.PHONY: bench
bench: ## run the benchmarks against real Redis and HBase and print their numbers
	scripts/integration.sh scripts/bench.sh

.PHONY: lint
lint: $(BIN)/buf $(BIN)/staticcheck $(BIN)/golangci-lint ## buf lint, buf breaking against the original protobuf and the previous commit, gofmt, go vet, staticcheck and golangci-lint (of the code not generated)
	$(BIN)/buf lint
	$(BIN)/buf breaking proto --against internal/originalclient/proto
	@if git rev-parse -q --verify HEAD~1 >/dev/null; then $(BIN)/buf breaking proto --against '.git#ref=HEAD~1,subdir=proto'; \
	else echo "buf breaking against the previous commit: skipped, this clone has none"; fi
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [[ -n "$$out" ]]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	go vet ./...
	$(BIN)/staticcheck $$(go list ./... | grep -v -e /internal/thrift2 -e /pkg/pb/)
	$(BIN)/golangci-lint run ./...

.PHONY: generate
generate: $(BIN)/buf $(PROTOC_PLUGINS) ## regenerate the Go code of proto/, the HTTP gateway and its OpenAPI document
	$(BIN)/buf generate

.PHONY: check-generated
check-generated: generate ## fail if the committed generated code (protobuf, HTTP gateway, HBase Thrift2 client) is stale
	@git diff --exit-code --stat -- $(GENERATED) || { echo "generated code is stale: run make generate and commit"; exit 1; }
	@test -z "$$(git status --porcelain -- $(GENERATED))" || { echo "untracked generated files:"; git status --porcelain -- $(GENERATED); exit 1; }
	scripts/gen-thrift.sh --check

.PHONY: tools
tools: $(BIN)/buf $(PROTOC_PLUGINS) $(BIN)/grpcurl ## install the pinned tools into .cache/bin

$(BIN)/buf:
	$(GOBIN_ENV) go install github.com/bufbuild/buf/cmd/buf@$(BUF_VERSION)
$(BIN)/staticcheck:
	$(GOBIN_ENV) go install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)
$(BIN)/golangci-lint:
	$(GOBIN_ENV) go install github.com/golangci/golangci-lint/v2/cmd/golangci-lint@$(GOLANGCI_LINT_VERSION)
$(BIN)/protoc-gen-go:
	$(GOBIN_ENV) go install google.golang.org/protobuf/cmd/protoc-gen-go@$(PROTOC_GEN_GO_VERSION)
$(BIN)/protoc-gen-go-grpc:
	$(GOBIN_ENV) go install google.golang.org/grpc/cmd/protoc-gen-go-grpc@$(PROTOC_GEN_GO_GRPC_VERSION)
$(BIN)/protoc-gen-grpc-gateway:
	$(GOBIN_ENV) go install github.com/grpc-ecosystem/grpc-gateway/v2/protoc-gen-grpc-gateway@$(GRPC_GATEWAY_VERSION)
$(BIN)/protoc-gen-openapiv2:
	$(GOBIN_ENV) go install github.com/grpc-ecosystem/grpc-gateway/v2/protoc-gen-openapiv2@$(GRPC_GATEWAY_VERSION)
$(BIN)/grpcurl:
	$(GOBIN_ENV) go install github.com/fullstorydev/grpcurl/cmd/grpcurl@$(GRPCURL_VERSION)

.PHONY: clean
clean: ## stop test servers and delete build output and local data (keeps ~/.m2)
	-scripts/redis.sh stop
	-scripts/hbase.sh stop
	-scripts/kafka.sh stop
	rm -rf bin .cache/reco.db .cache/reco.db.pid .cache/log .cache/hbase/data .cache/kafka/data .cache/redis

# kubernetes-validate (PyPI) checks deploy/k8s against the API's OpenAPI schemas,
# rejecting unknown fields, for the oldest Kubernetes the manifests support
# (1.30) and the package's newest. It needs the network to install, so it is not
# part of `make test` (test/deploy decodes the same files strictly into the Go
# API types). The ServiceMonitors of deploy/k8s/monitoring are a CRD: no schema.
KUBERNETES_VALIDATE_VERSION := 1.37.0
K8S_MANIFESTS = $(filter-out %/kustomization.yaml,$(wildcard deploy/k8s/*.yaml))

.PHONY: validate-k8s
validate-k8s: .cache/kv/bin/kubernetes-validate ## validate deploy/k8s with kubernetes-validate --strict (installs it from PyPI)
	.cache/kv/bin/kubernetes-validate --strict --quiet -k 1.30.0 $(K8S_MANIFESTS)
	.cache/kv/bin/kubernetes-validate --strict --quiet $(K8S_MANIFESTS)

.cache/kv/bin/kubernetes-validate:
	python3 -m venv .cache/kv
	.cache/kv/bin/pip install --quiet kubernetes-validate==$(KUBERNETES_VALIDATE_VERSION)
