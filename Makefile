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

.PHONY: help
help: ## list the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

.PHONY: build
build: ## build bin/reco
	go build -o bin/reco ./cmd/reco

.PHONY: run
run: build ## serve all five services on 127.0.0.1:9999, embedded storage, in the foreground (demo data if empty)
	mkdir -p .cache
	bin/reco admin demo --models .cache/models
	RECO_SERVER_LAME_DUCK=0s bin/reco serve --target=all

.PHONY: test
test: ## run every test; starts real Redis, HBase and Kafka (installing them if missing)
	scripts/integration.sh scripts/gotest.sh

.PHONY: chaos
chaos: ## the chaos test, long: minutes of outage per fault and a soak (RECOTEST_CHAOS=long), its own servers
	scripts/integration.sh env RECOTEST_CHAOS=long go test -count=1 -v -timeout 90m -run '^TestChaos$$' ./test/chaos/

.PHONY: bench
bench: ## run the benchmarks against real Redis and HBase and print their numbers
	scripts/integration.sh scripts/bench.sh

.PHONY: lint
lint: $(BIN)/buf ## buf lint, gofmt, go vet
	$(BIN)/buf lint
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [[ -n "$$out" ]]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	go vet ./...

.PHONY: generate
generate: $(BIN)/buf $(BIN)/protoc-gen-go $(BIN)/protoc-gen-go-grpc ## regenerate the Go code of proto/
	$(BIN)/buf generate

.PHONY: check-generated
check-generated: generate ## fail if the committed generated code is stale
	@git diff --exit-code --stat -- pkg/pb || { echo "generated code is stale: run make generate and commit"; exit 1; }
	@test -z "$$(git status --porcelain -- pkg/pb)" || { echo "untracked generated files:"; git status --porcelain -- pkg/pb; exit 1; }

.PHONY: tools
tools: $(BIN)/buf $(BIN)/protoc-gen-go $(BIN)/protoc-gen-go-grpc $(BIN)/grpcurl ## install the pinned tools into .cache/bin

$(BIN)/buf:
	$(GOBIN_ENV) go install github.com/bufbuild/buf/cmd/buf@$(BUF_VERSION)
$(BIN)/protoc-gen-go:
	$(GOBIN_ENV) go install google.golang.org/protobuf/cmd/protoc-gen-go@$(PROTOC_GEN_GO_VERSION)
$(BIN)/protoc-gen-go-grpc:
	$(GOBIN_ENV) go install google.golang.org/grpc/cmd/protoc-gen-go-grpc@$(PROTOC_GEN_GO_GRPC_VERSION)
$(BIN)/grpcurl:
	$(GOBIN_ENV) go install github.com/fullstorydev/grpcurl/cmd/grpcurl@$(GRPCURL_VERSION)

.PHONY: clean
clean: ## stop test servers and delete build output and local data (keeps ~/.m2)
	-scripts/redis.sh stop
	-scripts/hbase.sh stop
	-scripts/kafka.sh stop
	rm -rf bin .cache/reco.db .cache/log .cache/hbase/data .cache/kafka/data .cache/redis
