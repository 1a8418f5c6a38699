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
#   make fuzz      every libFuzzer target of tests/fuzz for FUZZ_S seconds
#                  (default 60) in the clang build dir build-fuzz;
#                  FUZZ_TARGETS="http tokens" picks some, FUZZ_JOBS=2 runs
#                  two at once (docs/security.md, "Fuzzing")
#   make failover  failover figures (scripts/gray.py; GRAY_ARGS)
#   make test-streams  the 300,000-stream list test
BUILD      ?= build
ASAN_BUILD ?= build-asan
FUZZ_BUILD ?= build-fuzz
FUZZ_S     ?= 60
FUZZ_JOBS  ?= 1
FUZZ_TARGETS ?=
JOBS       ?= $(shell nproc 2>/dev/null || echo 2)
DIR        ?= ./ledger-data
PREFIX     ?= /usr/local
DESTDIR    ?=

.PHONY: all deps build build-asan build-fuzz cluster cluster-down test chaos campaign unit format clean bench \
        failover test-streams fuzz install

all: build

deps:
	@bash scripts/deps.sh

build: deps
	@cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
	@cmake --build $(BUILD) -j $(JOBS)

build-asan: deps
	@cmake -S . -B $(ASAN_BUILD) -DCMAKE_BUILD_TYPE=Debug -DLEDGER_SANITIZE=ON \
	  -DLEDGER_FUZZ_BUILD=$(abspath $(FUZZ_BUILD)) >/dev/null
	@cmake --build $(ASAN_BUILD) -j $(JOBS)

# Binaries, ledgerd(8), ledgerctl(1), ledgerd@.service, sysusers.d entry,
# bash completion and an example config, under $(DESTDIR)$(PREFIX).
install: build
	@DESTDIR="$(if $(DESTDIR),$(abspath $(DESTDIR)))" \
	  cmake --install $(BUILD) --prefix "$(PREFIX)"

# libFuzzer targets (tests/fuzz): clang, ASan + UBSan, its own build dir.
build-fuzz: deps
	@cmake -S . -B $(FUZZ_BUILD) -DCMAKE_C_COMPILER=clang \
	  -DCMAKE_BUILD_TYPE=RelWithDebInfo -DLEDGER_FUZZ=ON >/dev/null
	@cmake --build $(FUZZ_BUILD) -j $(JOBS) --target fuzz_all

fuzz: build-fuzz
	@scripts/fuzz.sh --build $(FUZZ_BUILD) --seconds $(FUZZ_S) \
	  --jobs $(FUZZ_JOBS) --work $(FUZZ_BUILD)/work $(FUZZ_TARGETS)

cluster: build
	@$(BUILD)/ledgerctl cluster up --dir $(DIR)

cluster-down: build
	@$(BUILD)/ledgerctl cluster down --dir $(DIR)

# The last line printed is CTest's summary ("100% tests passed, ...").
test: build build-asan build-fuzz
	@cd $(ASAN_BUILD) && set -o pipefail && \
	  ctest --output-on-failure --timeout 600 -j 2 2>&1 | tee ctest.log; \
	  rc=$$?; grep -E "tests passed|tests failed" ctest.log | tail -n 1; \
	  exit $$rc

# Faults against a real 5-node cluster for 5 minutes, all faults, then the
# checker; exit 0 only when it passes. Report in chaos-report-SEED/.
CHAOS_ARGS ?= --nodes 5 --duration 300 --faults all
chaos: build
	@/usr/bin/python3 chaos/run $(CHAOS_ARGS)

# Many seeded chaos runs in a row, one summary table (docs/chaos.md,
# "Campaigns"): 30 runs of 120 s on 3 nodes take about 70 minutes.
CAMPAIGN_ARGS ?= --runs 30 --duration 120 --nodes 3 --faults all -- --gap-warn-only
campaign: build
	@/usr/bin/python3 chaos/campaign $(CAMPAIGN_ARGS)

# Failover as clients feel it (scripts/gray.py): SIGSTOP, cut-off (root:
# network namespaces) and kill -9 of the leader of a 3-node cluster under
# four writers; per fault the first acknowledgement, every client answered,
# the longest stretch without an acknowledgement (docs/operations.md,
# "Failover"). About 2 minutes with the default 3 rounds.
GRAY_ARGS ?= --repeat 3
failover: build
	@/usr/bin/python3 scripts/gray.py $(GRAY_ARGS)

# The full-size stream list test: 300,000 streams listed in full while
# appends run, on the RelWithDebInfo build (`make test` runs the same test
# with 100,000 streams on the sanitizer build). About 1 minute.
test-streams: build
	@cd tests/integration && LEDGER_TEST_STREAMS=300000 \
	  LEDGERD=$(CURDIR)/$(BUILD)/ledgerd LEDGERCTL=$(CURDIR)/$(BUILD)/ledgerctl \
	  /usr/bin/python3 -m unittest -v test_streams_list.ManyStreamsTest

# ledger against etcd on this machine (installs etcd-server if missing);
# prints one table and the targets of docs/performance.md. About 2 minutes.
bench: build
	@/usr/bin/python3 bench/vs-etcd

format:
	@clang-format -i $$(git ls-files '*.c' '*.h')

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) $(FUZZ_BUILD)
