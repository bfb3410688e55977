# caddy-keymanager. `make run` starts the demo gateway; `make test` runs
# everything CI runs.
SHELL := /bin/bash
GO ?= go

.PHONY: build run test bench lint deps fmt

## build: bin/caddy with this plugin, per xcaddy.json (xcaddy through the Go module proxy)
build:
	$(GO) run ./tools/xbuild

## run: the gateway on Caddyfile.example with local IdPs and a demo upstream
run: deps-oidc build
	scripts/run.sh

## test: go vet, unit + integration tests with -race against real IdPs, short fuzz runs
test:
	scripts/test.sh

## bench: the Go benchmarks (bench/go-bench.txt), then a wrk load run against bin/caddy (bench/RESULTS.md)
bench: build
	mkdir -p bench
	$(GO) test -run='^$$' -bench=. -benchmem -count=1 ./... | tee bench/go-bench.txt
	scripts/bench.sh

## lint: formatting and vet
lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...

deps: deps-oidc deps-hydra

deps-oidc:
	@[ -d tools/oidc/node_modules/oidc-provider ] || npm ci --prefix tools/oidc --no-audit --no-fund

deps-hydra:
	tools/hydra/build.sh

fmt:
	gofmt -w $$(git ls-files '*.go')
