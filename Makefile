MAKEFLAGS += --no-print-directory
SHELL := /bin/bash
# ledger: the two commands of the quick start.
#   make cluster   install what is missing, build, start a 3-node cluster
#   make test      install what is missing, build (plain and ASan+UBSan),
#                  run every test on the sanitizer build
#   make install   build, then install under PREFIX (default /usr/local),
#                  staged under DESTDIR if given (docs/operations.md)
#   make chaos     chaos run on the plain build (docs/chaos.md); override
#                  with CHAOS_ARGS="--nodes 3 --duration 60 --seed 7"
BUILD      ?= build
ASAN_BUILD ?= build-asan
JOBS       ?= $(shell nproc 2>/dev/null || echo 2)
DIR        ?= ./ledger-data
PREFIX     ?= /usr/local
DESTDIR    ?=

.PHONY: all deps build build-asan cluster cluster-down test chaos unit format clean bench install

all: build

deps:
	@bash scripts/deps.sh

build: deps
	@cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
	@cmake --build $(BUILD) -j $(JOBS)

build-asan: deps
	@cmake -S . -B $(ASAN_BUILD) -DCMAKE_BUILD_TYPE=Debug -DLEDGER_SANITIZE=ON >/dev/null
	@cmake --build $(ASAN_BUILD) -j $(JOBS)

# Binaries, ledgerd(8), ledgerctl(1), ledgerd@.service, sysusers.d entry,
# bash completion and an example config, under $(DESTDIR)$(PREFIX).
install: build
	@DESTDIR="$(if $(DESTDIR),$(abspath $(DESTDIR)))" \
	  cmake --install $(BUILD) --prefix "$(PREFIX)"

cluster: build
	@$(BUILD)/ledgerctl cluster up --dir $(DIR)

cluster-down: build
	@$(BUILD)/ledgerctl cluster down --dir $(DIR)

# The last line printed is CTest's summary ("100% tests passed, ...").
test: build build-asan
	@cd $(ASAN_BUILD) && set -o pipefail && \
	  ctest --output-on-failure --timeout 600 -j 2 2>&1 | tee ctest.log; \
	  rc=$$?; grep -E "tests passed|tests failed" ctest.log | tail -n 1; \
	  exit $$rc

# Faults against a real 5-node cluster for 5 minutes, all faults, then the
# checker; exit 0 only when it passes. Report in chaos-report-SEED/.
CHAOS_ARGS ?= --nodes 5 --duration 300 --faults all
chaos: build
	@/usr/bin/python3 chaos/run $(CHAOS_ARGS)

# ledger against etcd on this machine (installs etcd-server if missing);
# prints one table and the targets of docs/performance.md. About 2 minutes.
bench: build
	@/usr/bin/python3 bench/vs-etcd

format:
	@clang-format -i $$(git ls-files '*.c' '*.h')

clean:
	rm -rf $(BUILD) $(ASAN_BUILD)
