# spectra: plain GNU Makefile.
#   make          build bin/spectrad and bin/spectra
#   make test     everything CI runs: unit, node and fuzz-smoke tests
#   make check    the same tests built with AddressSanitizer + UBSan
#   make fuzz     a long libFuzzer run of every parser target
#   make bench    spectrad vs redis-server with redis-benchmark, side by side
#   make bench-raft  spectra's Raft vs libraft 0.15: commits/s, latency, failover
#   make bench-strong  5-node cluster: writes and linearizable reads, 100/1000 clients
#   make bench-causal  5-node causal keyspace beside eventual ONE, 100/1000 clients
#   make bench-eventual  5-node eventual keyspace (QUORUM/ONE) vs Redis primary + 4 replicas
#   make bench-sampler  stale-read sampler off vs 1 in 100 (default) vs 1 in 10: 3-node clusters
#   make bench-table  the design's table at 1,000 and 10,000 clients beside etcd and Redis
#   make bench-ml  feature store beside Redis, model registry beside etcd, 100/1000 clients
#   make deps     install the Debian packages (scripts/deps.sh)
#   make demo     5 nodes, 40 s: model registry (strong) + feature store (causal) + serving fleet, a leader kill, a report

CC      ?= cc
BUILD   ?= build
PKGS    := libuv lmdb zlib jansson libxxhash libmicrohttpd
OPT     ?= -O2
SAN     ?=
CFLAGS  := -std=c11 $(OPT) -g -Wall -Wextra -Werror -D_GNU_SOURCE -pthread \
           -Isrc $(shell pkg-config --cflags $(PKGS) 2>/dev/null) $(SAN) $(EXTRA_CFLAGS)
LDLIBS  := $(shell pkg-config --libs $(PKGS) 2>/dev/null || echo -luv -llmdb -lz -ljansson -lxxhash -lmicrohttpd) -pthread
LDFLAGS := $(SAN)
HIREDIS := $(shell pkg-config --libs hiredis 2>/dev/null || echo -lhiredis)
CMOCKA  := $(shell pkg-config --libs cmocka 2>/dev/null || echo -lcmocka)

LIB_SRCS  := $(sort $(wildcard src/common/*.c src/net/*.c src/store/*.c src/crdt/*.c \
               src/engine/strong/*.c src/engine/strong/raft/*.c src/engine/eventual/*.c src/engine/causal/*.c src/check/*.c \
               src/obs/*.c $(filter-out src/server/main.c,$(wildcard src/server/*.c))))
LIB_OBJS  := $(LIB_SRCS:%.c=$(BUILD)/%.o) $(BUILD)/gen/dashboard.o
TOOL_SRCS := $(sort $(wildcard tools/*.c))
TOOL_OBJS := $(TOOL_SRCS:%.c=$(BUILD)/%.o)
UNIT_SRCS := $(sort $(wildcard tests/unit/test_*.c))
UNIT_BINS := $(UNIT_SRCS:tests/unit/%.c=$(BUILD)/tests/unit/%)
NODE_SRCS := $(sort $(wildcard tests/cluster/test_*.c))
NODE_BINS := $(NODE_SRCS:tests/cluster/%.c=$(BUILD)/tests/cluster/%)
TESTLIB   := $(sort $(wildcard tests/lib/*.c))
TESTLIB_OBJS := $(TESTLIB:%.c=$(BUILD)/%.o)
FUZZ_SRCS := $(sort $(wildcard tests/fuzz/fuzz_*.c))

BIN := bin
ifneq ($(BUILD),build)
BIN := $(BUILD)/bin
endif

.PHONY: all test check fuzz bench bench-raft bench-strong bench-eventual bench-causal bench-sampler bench-table bench-ml deps clean format tests-build
# Keep the objects of test binaries (make would delete them as intermediate).
.SECONDARY:
all: $(BIN)/spectrad $(BIN)/spectra

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -MMD -MP -c $< -o $@

# The dashboard page (src/obs/dashboard.html) is compiled in as a byte
# array, so a node serves it with no file to find at run time.
$(BUILD)/gen/dashboard.c: src/obs/dashboard.html
	@mkdir -p $(dir $@)
	{ echo '#include <stddef.h>'; \
	  echo 'const unsigned char obs_dashboard_html[] = {'; \
	  od -An -v -tx1 $< | sed 's/ *\([0-9a-f][0-9a-f]\)/0x\1,/g'; \
	  echo '};'; \
	  echo 'const size_t obs_dashboard_html_len = sizeof(obs_dashboard_html);'; } >$@.tmp
	mv $@.tmp $@

$(BUILD)/gen/%.o: $(BUILD)/gen/%.c
	$(CC) $(CFLAGS) -c $< -o $@

$(BUILD)/libspectra.a: $(LIB_OBJS)
	@rm -f $@
	ar rcs $@ $^

$(BIN)/spectrad: $(BUILD)/src/server/main.o $(BUILD)/libspectra.a
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BIN)/spectra: $(TOOL_OBJS) $(BUILD)/libspectra.a
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(HIREDIS) $(LDLIBS)

$(BUILD)/tests/unit/%: $(BUILD)/tests/unit/%.o $(TESTLIB_OBJS) $(BUILD)/libspectra.a
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(CMOCKA) $(HIREDIS) $(LDLIBS)

# The chaos tool's pure planner is unit-tested on its own object.
$(BUILD)/tests/unit/test_chaos_plan: $(BUILD)/tools/chaos_plan.o
$(BUILD)/tests/unit/test_trace_model: $(BUILD)/tools/trace_model.o
# ... and so are the benchmark tool's histogram, key distributions and RESP driver.
$(BUILD)/tests/unit/test_bench_hist: $(BUILD)/tools/bench_hist.o $(BUILD)/tools/bench_keys.o \
                                     $(BUILD)/tools/bench_resp.o $(BUILD)/tools/bench_tmpl.o
$(BUILD)/tests/unit/test_bench_http: $(BUILD)/tools/bench_http.o $(BUILD)/tools/bench_tmpl.o

$(BUILD)/tests/cluster/%: $(BUILD)/tests/cluster/%.o $(TESTLIB_OBJS) $(BUILD)/libspectra.a
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(CMOCKA) $(HIREDIS) $(LDLIBS)

tests-build: all $(UNIT_BINS) $(NODE_BINS) $(BUILD)/sim/raft_sim

# The fuzz targets are built with clang's libFuzzer plus ASan and UBSan.
FUZZ_CFLAGS := -std=c11 -O1 -g -D_GNU_SOURCE -Isrc -fsanitize=fuzzer,address,undefined \
               -fno-sanitize-recover=undefined -fno-omit-frame-pointer
# Each target links the sources listed in FUZZ_DEPS_<target>; a target
# without its own list links FUZZ_DEPS.
FUZZ_DEPS   := src/net/resp.c src/common/buf.c src/common/alloc.c src/common/err.c src/common/num.c
FUZZ_DEPS_fuzz_resp     := $(FUZZ_DEPS)
FUZZ_DEPS_fuzz_raft_msg := src/engine/strong/raft/codec.c src/common/buf.c src/common/alloc.c \
                           src/common/err.c
FUZZ_DEPS_fuzz_frame    := src/net/frame.c src/common/buf.c src/common/alloc.c src/common/err.c
FUZZ_DEPS_fuzz_entry    := src/server/entry.c src/common/buf.c src/common/alloc.c src/common/err.c
FUZZ_DEPS_fuzz_crdt     := $(wildcard src/crdt/*.c) src/common/buf.c src/common/alloc.c src/common/err.c
FUZZ_DEPS_fuzz_ev_msg   := src/engine/eventual/msg.c src/common/buf.c src/common/alloc.c \
                           src/common/err.c
FUZZ_DEPS_fuzz_vclock   := src/engine/causal/vclock.c src/common/buf.c src/common/alloc.c src/common/err.c
FUZZ_DEPS_fuzz_causal_msg := src/engine/causal/causal.c src/engine/causal/vclock.c \
                           src/common/held.c src/common/hlc.c src/common/log.c src/common/clock.c \
                           src/common/fileio.c src/store/store.c src/store/wal.c src/common/buf.c \
                           src/common/alloc.c src/common/err.c $(wildcard src/crdt/*.c)
FUZZ_DEPS_fuzz_model    := src/server/model.c src/common/buf.c src/common/alloc.c src/common/err.c
FUZZ_DEPS_fuzz_bench_http := tools/bench_http.c tools/bench_tmpl.c src/common/buf.c src/common/alloc.c src/common/err.c
# Libraries a target links besides libFuzzer's runtime: FUZZ_LIBS_<target>.
FUZZ_LIBS_fuzz_frame    := -lz
FUZZ_LIBS_fuzz_causal_msg := -llmdb -lz
fuzz_deps = $(or $(FUZZ_DEPS_$(1)),$(FUZZ_DEPS))
.SECONDEXPANSION:
$(BUILD)/fuzz/%: tests/fuzz/%.c $$(call fuzz_deps,$$*)
	@mkdir -p $(dir $@)
	clang $(FUZZ_CFLAGS) -o $@ $^ $(FUZZ_LIBS_$*)

FUZZ_BINS := $(FUZZ_SRCS:tests/fuzz/%.c=$(BUILD)/fuzz/%)
FUZZ_RUNS ?= 200000

# SIM_SEEDS: seeds of the Raft simulator in make test (check runs fewer:
# the sanitizers slow it down; CI also runs make sim's 1,000 at -O2).
SIM_SEEDS       ?= 1000
CHECK_SIM_SEEDS ?= 100
test: tests-build $(FUZZ_BINS)
	BUILD=$(BUILD) BIN=$(BIN) FUZZ_RUNS=$(FUZZ_RUNS) SIM_SEEDS=$(SIM_SEEDS) scripts/run-tests.sh

check:
	@$(MAKE) --no-print-directory BUILD=build/san OPT=-O1 \
	  SAN="-fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer" \
	  SIM_SEEDS=$(CHECK_SIM_SEEDS) test

fuzz: $(FUZZ_BINS)
	@for f in $(FUZZ_BINS); do \
	  n=$$(basename $$f); mkdir -p $(BUILD)/fuzz/corpus-$$n; \
	  echo "fuzz: $$n, $(or $(FUZZ_LONG_RUNS),2000000) runs"; \
	  $$f -runs=$(or $(FUZZ_LONG_RUNS),2000000) -max_len=4096 \
	     $(BUILD)/fuzz/corpus-$$n tests/fuzz/corpus/$${n#fuzz_} || exit 1; \
	done

bench: all
	bench/redis_compare.sh

# bench-raft: one node program per Raft implementation, same command line
# (bench/raft/README.md); spectra's is built once its source exists.
RAFT_LIBS  := $(shell pkg-config --libs raft 2>/dev/null || echo -lraft)
RAFT_NODES := $(BUILD)/bench/libraft_node \
              $(if $(wildcard bench/raft/spectra_raft_node.c),$(BUILD)/bench/spectra_raft_node)

$(BUILD)/bench/libraft_node: $(BUILD)/bench/raft/libraft_node.o
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(RAFT_LIBS) $(LDLIBS)

$(BUILD)/bench/spectra_raft_node: $(BUILD)/bench/raft/spectra_raft_node.o $(BUILD)/libspectra.a
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

bench-raft: $(RAFT_NODES)
	BUILD=$(BUILD) bench/raft_compare.sh

# bench-strong: a 5-node cluster, SET and linearizable GET from 100 and
# 1000 clients spread over every node (redis-benchmark).
bench-strong: all
	bench/strong.sh

# bench-eventual: spectra's eventual keyspace (QUORUM writes, ONE and QUORUM
# reads) beside Redis with 4 replicas (SET + WAIT 2, SET, GET), spectra bench.
bench-eventual: all
	bench/eventual.sh

# bench-causal: causal keyspace writes and reads beside eventual ONE, spectra bench.
bench-causal: all
	bench/causal.sh

# bench-sampler: eventual ONE and strong stale reads with the stale-read
# sampler off, at its default rate and at 1 in 10, spectra bench; fails if
# the default rate costs 5% of throughput or more.
bench-sampler: all
	bench/sampler.sh

# bench-table: spectra (strong, causal, eventual), etcd and Redis, one after
# the other on this machine, at 1,000 and 10,000 clients, with a node killed
# in the availability runs; a table, bench/results/table-<date>.{json,svg}.
bench-table: all
	bench/table.sh

# bench-ml: FEATURE.* (causal and eventual views) beside Redis hashes, MODEL.*
# beside etcd, spectra bench; a table, bench/results/ml-<date>.json.
bench-ml: all
	bench/ml.sh

# sim: the deterministic simulation of the Raft core (tests/sim), SEEDS
# seeds of SIM_SECONDS simulated seconds each. sim-canaries builds the core
# once per planted bug (-DRAFT_CANARY=k, into $(BUILD)/sim-canary-k) and
# requires the simulator to catch each within 200 seeds.
SEEDS       ?= 1000
SIM_SECONDS ?= 60
SIM_JOBS    ?= 2
SIM_SRCS    := $(sort $(wildcard tests/sim/*.c))
SIM_CORE    := $(sort $(wildcard src/engine/strong/raft/*.c))
SIM_DEPS    := $(patsubst %.c,$(BUILD)/%.o,$(sort $(wildcard src/common/*.c src/check/*.c)))
CANARIES    := 1 2 3 4
.PHONY: sim sim-canaries

$(BUILD)/sim/raft_sim: $(SIM_SRCS:%.c=$(BUILD)/%.o) $(BUILD)/libspectra.a
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS) -lm

sim: $(BUILD)/sim/raft_sim
	$(BUILD)/sim/raft_sim --seeds 1..$(SEEDS) --sim-seconds $(SIM_SECONDS) -j $(SIM_JOBS)

define sim_canary
$(BUILD)/sim-canary-$(1)/%.o: %.c
	@mkdir -p $$(dir $$@)
	$$(CC) $$(CFLAGS) -DRAFT_CANARY=$(1) -MMD -MP -c $$< -o $$@
$(BUILD)/sim-canary-$(1)/raft_sim: $(patsubst %.c,$(BUILD)/sim-canary-$(1)/%.o,$(SIM_CORE) $(SIM_SRCS)) $(SIM_DEPS)
	$$(CC) $$(LDFLAGS) -o $$@ $$^ $$(LDLIBS) -lm
endef
$(foreach k,$(CANARIES),$(eval $(call sim_canary,$(k))))

sim-canaries: $(BUILD)/sim/raft_sim $(foreach k,$(CANARIES),$(BUILD)/sim-canary-$(k)/raft_sim)
	BUILD=$(BUILD) SIM_SECONDS=$(SIM_SECONDS) SIM_JOBS=$(SIM_JOBS) tests/sim/run-canaries.sh
	@echo "sim-canaries: again with only the end-to-end checks (no durable-before-send probe)"
	BUILD=$(BUILD) SIM_SECONDS=$(SIM_SECONDS) SIM_JOBS=$(SIM_JOBS) NO_CONTRACT=1 tests/sim/run-canaries.sh

deps:
	scripts/deps.sh

.PHONY: demo
demo:
	scripts/demo.sh

format:
	clang-format -i $$(git ls-files '*.c' '*.h')

clean:
	rm -rf build bin

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
