# kvstore - one non-recursive Makefile.
#
#   make            build/kvstored, build/kvctl, build/libkvc.{a,so}
#   make test       build and run every test (tests/run.sh)
#   make run        run the daemon in the foreground with its embedded defaults
#   make asan       the tests under ASan + UBSan (in build-asan/)
#   make fuzz       the libFuzzer harnesses (clang), make fuzz-run runs them
#   make bench      build and run the benchmarks
#   make soak       the kill -9 soak with 1000 kills (SOAK_KILLS=N)
#
# Knobs: O=DIR (build directory), CUDA=auto|0|1, DEVELOPER=1 (-Werror and
# more warnings), DEBUG=1 (-O0, kv_trace on), SANITIZE=address,undefined,
# V=1 (show command lines).
#
# Missing Debian packages are installed by scripts/deps.sh the first time a
# build directory is configured ($(O)/deps.mk).

O ?= build
.DEFAULT_GOAL := all
CUDA ?= auto
CUDA_HOME ?= /usr/local/cuda
NVCC ?= $(shell command -v nvcc 2>/dev/null || ls $(CUDA_HOME)/bin/nvcc 2>/dev/null)
ifeq ($(CUDA),auto)
override CUDA := $(if $(NVCC),1,0)
endif
ifeq ($(CUDA),1)
ifeq ($(NVCC),)
$(error CUDA=1 but nvcc was not found: install the CUDA toolkit or build with CUDA=0)
endif
endif

ifeq ($(V),1)
Q :=
else
Q := @
endif

CC ?= cc
CFLAGS_BASE := -std=gnu11 -D_GNU_SOURCE -fPIC -g -pthread -I. -Wall -Wextra \
	-Wno-unused-parameter -Wno-missing-field-initializers
ifeq ($(DEBUG),1)
CFLAGS_BASE += -O0 -DKV_TRACE=1
else
CFLAGS_BASE += -O2
endif
ifeq ($(DEVELOPER),1)
CFLAGS_BASE += -Werror -Wshadow -Wstrict-prototypes -Wmissing-prototypes \
	-Wpointer-arith -Wformat=2 -Wvla
endif
ifneq ($(SANITIZE),)
CFLAGS_BASE += -fsanitize=$(SANITIZE) -fno-omit-frame-pointer -fno-sanitize-recover=all
LDFLAGS += -fsanitize=$(SANITIZE)
endif

# ---- dependencies: install what is missing, then ask pkg-config ----------
NODEPS_GOALS := clean distclean help check-style fuzz fuzz-run
ifneq ($(filter-out $(NODEPS_GOALS),$(or $(MAKECMDGOALS),all)),)
-include $(O)/deps.mk
endif

$(O)/deps.mk: scripts/deps.sh
	@mkdir -p $(O)
	$(Q)scripts/deps.sh build test
	$(Q)for p in libevent_core libevent_extra liburing lmdb libzstd libxxhash inih jansson hiredis openssl cmocka; do \
		pkg-config --exists $$p || { echo "pkg-config cannot find $$p: run scripts/deps.sh build test" >&2; exit 1; }; \
	done
	$(Q){ echo "DEP_CFLAGS := $$(pkg-config --cflags libevent_core liburing lmdb libzstd libxxhash inih jansson hiredis openssl)"; \
	  echo "EVENT_LIBS := $$(pkg-config --libs libevent_core libevent_extra)"; \
	  echo "URING_LIBS := $$(pkg-config --libs liburing)"; \
	  echo "LMDB_LIBS := $$(pkg-config --libs lmdb 2>/dev/null || echo -llmdb)"; \
	  echo "ZSTD_LIBS := $$(pkg-config --libs libzstd)"; \
	  echo "XXH_LIBS := $$(pkg-config --libs libxxhash)"; \
	  echo "INI_LIBS := $$(pkg-config --libs inih)"; \
	  echo "JSON_LIBS := $$(pkg-config --libs jansson)"; \
	  echo "HIREDIS_LIBS := $$(pkg-config --libs hiredis)"; \
	  echo "SSL_LIBS := $$(pkg-config --libs openssl)"; \
	  echo "CMOCKA_LIBS := $$(pkg-config --libs cmocka)"; } > $@.tmp && mv $@.tmp $@

CFLAGS := $(CFLAGS_BASE) $(DEP_CFLAGS) $(CFLAGS_EXTRA)

# STATIC_DEPS=1: link the non-CUDA libraries statically (make gpu-bundle),
# for GPU machines of another distribution that lack some of them.
ifeq ($(STATIC_DEPS),1)
static_libs = -Wl,-Bstatic $(1) -Wl,-Bdynamic
EVENT_LIBS := $(call static_libs,$(EVENT_LIBS))
URING_LIBS := $(call static_libs,$(URING_LIBS))
LMDB_LIBS := $(call static_libs,$(LMDB_LIBS))
ZSTD_LIBS := $(call static_libs,$(ZSTD_LIBS))
XXH_LIBS := $(call static_libs,$(XXH_LIBS))
INI_LIBS := $(call static_libs,$(INI_LIBS))
JSON_LIBS := $(call static_libs,$(JSON_LIBS))
HIREDIS_LIBS := $(call static_libs,$(HIREDIS_LIBS))
SSL_LIBS := $(call static_libs,$(SSL_LIBS)) -ldl -pthread
endif

# ---- GPU parts ----------------------------------------------------------
ifeq ($(CUDA),1)
NVCC_ARCH ?= -gencode arch=compute_90,code=sm_90 -gencode arch=compute_80,code=sm_80 \
	-gencode arch=compute_90,code=compute_90
NVCCFLAGS := -std=c++17 -O2 -g -I. $(NVCC_ARCH) -Xcompiler -fPIC
GPU_OBJS := $(patsubst %.cu,$(O)/%.o,$(wildcard kernels/*.cu))
GPU_LIBS := -L$(CUDA_HOME)/lib64 -lcudart_static -lrt -ldl -lstdc++
else
GPU_OBJS := $(O)/kernels/gpu_stub.o
GPU_LIBS :=
endif
# Plain-C parts of kernels/ (the CPU references, argument checks): both builds.
GPU_OBJS += $(patsubst %.c,$(O)/%.o,$(filter-out kernels/gpu_stub.c,$(wildcard kernels/*.c)))

# ---- sources ------------------------------------------------------------
# common: what the daemon, the client library and the tests share (the rest
# of lib/, logging and the helpers, only the daemon uses).
COMMON_SRCS := lib/errors.c lib/proto.c
DAEMON_SRCS := $(filter-out $(COMMON_SRCS),$(wildcard lib/*.c)) \
	$(filter-out kvstore/main.c,$(wildcard kvstore/*.c)) \
	$(wildcard tiers/*.c) $(wildcard evict/*.c)
CLIENT_SRCS := $(filter-out client/kvctl.c,$(wildcard client/*.c))

COMMON_OBJS := $(COMMON_SRCS:%.c=$(O)/%.o)
DAEMON_OBJS := $(DAEMON_SRCS:%.c=$(O)/%.o)
CLIENT_OBJS := $(CLIENT_SRCS:%.c=$(O)/%.o)

DAEMON_LIBS := $(EVENT_LIBS) $(INI_LIBS) $(URING_LIBS) $(LMDB_LIBS) $(ZSTD_LIBS) \
	$(XXH_LIBS) $(HIREDIS_LIBS) $(SSL_LIBS) $(GPU_LIBS) -lm
CLIENT_LIBS := $(XXH_LIBS) $(GPU_LIBS)

# libkvd.a: every daemon module, so a unit test links just the ones it uses.
LIBKVD := $(O)/libkvd.a
LIBKVC_A := $(O)/libkvc.a
LIBKVC_SO := $(O)/libkvc.so

PROGS := $(O)/kvstored $(O)/kvctl $(LIBKVC_A) $(LIBKVC_SO)

UNIT_TESTS := $(patsubst tests/unit/%.c,$(O)/tests/unit/%,$(wildcard tests/unit/test_*.c))
INTEG_TESTS := $(patsubst tests/integration/%.c,$(O)/tests/integration/%,$(wildcard tests/integration/test_*.c))
REGRESS_TESTS := $(patsubst tests/regress/%.c,$(O)/tests/regress/%,$(wildcard tests/regress/issue_*.c))
GPU_TESTS := $(patsubst tests/gpu/%.c,$(O)/tests/gpu/%,$(wildcard tests/gpu/test_*.c))
HARNESS_OBJ := $(O)/tests/integration/harness.o
# tests/lib: helpers every test and benchmark may use (random numbers,
# sizes, scratch directories, the clock, KV-like data).
TESTLIB := $(O)/libkvtest.a
TESTLIB_OBJS := $(patsubst %.c,$(O)/%.o,$(wildcard tests/lib/*.c))
BENCHES := $(O)/kvbench $(O)/kvssdbench

.SECONDARY:
.PHONY: all test run asan tsan fuzz fuzz-run bench ssdbench soak trace clean distclean check-style help FORCE \
	gpu-bundle gpu-bins
all: $(PROGS)

# Rebuild everything when the flags change.
FLAGS_STR := $(CC) $(CFLAGS) $(LDFLAGS) CUDA=$(CUDA) $(NVCCFLAGS)
$(O)/.flags: FORCE
	@mkdir -p $(O)
	@echo '$(FLAGS_STR)' | cmp -s - $@ || echo '$(FLAGS_STR)' > $@

$(O)/%.o: %.c $(O)/.flags
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  CC      $<")
	$(Q)$(CC) $(CFLAGS) -MMD -MP -c -o $@ $<

$(O)/kernels/%.o: kernels/%.cu $(O)/.flags
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  NVCC    $<")
	$(Q)$(NVCC) $(NVCCFLAGS) -MMD -MP -c -o $@ $<

$(LIBKVD): $(DAEMON_OBJS) $(COMMON_OBJS) $(GPU_OBJS)
	@$(if $(Q),echo "  AR      $@")
	$(Q)rm -f $@ && ar rcs $@ $^

$(O)/kvstored: $(O)/kvstore/main.o $(LIBKVD)
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(LDFLAGS) -pthread -o $@ $^ $(DAEMON_LIBS)

$(LIBKVC_A): $(CLIENT_OBJS) $(COMMON_OBJS) $(GPU_OBJS)
	@$(if $(Q),echo "  AR      $@")
	$(Q)rm -f $@ && ar rcs $@ $^

$(LIBKVC_SO): $(CLIENT_OBJS) $(COMMON_OBJS) $(GPU_OBJS) client/libkvc.map
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(LDFLAGS) -shared -pthread -Wl,--version-script=client/libkvc.map \
		-Wl,-soname,libkvc.so -o $@ $(CLIENT_OBJS) $(COMMON_OBJS) $(GPU_OBJS) $(CLIENT_LIBS)

$(O)/kvctl: $(O)/client/kvctl.o $(LIBKVC_A)
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(LDFLAGS) -pthread -o $@ $^ $(CLIENT_LIBS) $(JSON_LIBS)

# ---- tests --------------------------------------------------------------
$(TESTLIB): $(TESTLIB_OBJS)
	@$(if $(Q),echo "  AR      $@")
	$(Q)rm -f $@ && ar rcs $@ $^

# A test program links its objects before the archives: the helpers that
# several programs of a split test share (<dir>/*_fx.c, gpu_child.c; never
# a test_*.c, which is a program) are extra prerequisites, listed below.
$(O)/tests/unit/%: $(O)/tests/unit/%.o $(TESTLIB) $(LIBKVD)
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(LDFLAGS) -pthread -o $@ $(filter %.o,$^) $(filter %.a,$^) $(CMOCKA_LIBS) \
		$(DAEMON_LIBS)

$(O)/tests/unit/test_keys: $(O)/tests/unit/test_keys.o $(TESTLIB) $(LIBKVC_A)
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(LDFLAGS) -pthread -o $@ $^ $(CMOCKA_LIBS) $(CLIENT_LIBS)

$(O)/tests/integration/%: $(O)/tests/integration/%.o $(HARNESS_OBJ) $(TESTLIB) $(LIBKVC_A)
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(LDFLAGS) -pthread -o $@ $(filter %.o,$^) $(filter %.a,$^) $(CMOCKA_LIBS) \
		$(CLIENT_LIBS)

$(O)/tests/regress/%: $(O)/tests/regress/%.o $(HARNESS_OBJ) $(TESTLIB) $(LIBKVC_A)
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(LDFLAGS) -pthread -o $@ $^ $(CMOCKA_LIBS) $(CLIENT_LIBS)

# issue 11's namespace test edits an SSD index behind the daemon's back.
$(O)/tests/regress/issue_11_ns: $(O)/tests/regress/issue_11_ns.o $(HARNESS_OBJ) $(TESTLIB) $(LIBKVC_A)
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(LDFLAGS) -pthread -o $@ $^ $(CMOCKA_LIBS) $(CLIENT_LIBS) $(LMDB_LIBS)

# The Redis Cluster client's tests drive tiers/rcluster*.c directly.
$(addprefix $(O)/tests/integration/,test_rcluster test_rcluster_tls): %: %.o $(TESTLIB) $(LIBKVD)
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(LDFLAGS) -pthread -o $@ $(filter %.o,$^) $(filter %.a,$^) $(CMOCKA_LIBS) \
		$(DAEMON_LIBS)

# GPU tests: libkvc (which holds kernels/) and the harness; each exits 77
# without a GPU.
$(O)/tests/gpu/%: $(O)/tests/gpu/%.o $(HARNESS_OBJ) $(TESTLIB) $(LIBKVC_A)
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(LDFLAGS) -pthread -o $@ $(filter %.o,$^) $(filter %.a,$^) $(CMOCKA_LIBS) \
		$(CLIENT_LIBS) -lm

# The helpers that the programs of a split test share, and who links them.
$(addprefix $(O)/tests/unit/,test_ssd_meta test_ssd_meta_disk test_lmdb_check): \
	$(O)/tests/unit/ssd_meta_fx.o
$(addprefix $(O)/tests/unit/,test_policies test_policy_order): $(O)/tests/unit/policy_fx.o
$(addprefix $(O)/tests/unit/,test_proto test_proto_attacks): $(O)/tests/unit/proto_fx.o
$(addprefix $(O)/tests/unit/,test_ssd_io test_ssd_io_faults): $(O)/tests/unit/ssd_io_fx.o
$(addprefix $(O)/tests/integration/,test_badinput test_badinput_conn): \
	$(O)/tests/integration/badinput_fx.o
$(addprefix $(O)/tests/integration/,test_cluster test_cluster_admin test_cluster_tls): \
	$(O)/tests/integration/cluster_fx.o
$(addprefix $(O)/tests/integration/,test_rcluster test_rcluster_tls): \
	$(O)/tests/integration/rc_client_fx.o
$(addprefix $(O)/tests/gpu/,test_gpu_client test_gpu_hbm test_gpu_paged test_gpu_ryw): \
	$(O)/tests/gpu/gpu_fx.o
$(addprefix $(O)/tests/gpu/,test_gpu_client test_gpu_hbm): $(O)/tests/gpu/gpu_child.o

# kvbench --gpu: tests/bench/gpubench*.c.
GPUBENCH_OBJS := $(patsubst %.c,$(O)/%.o,$(wildcard tests/bench/gpubench*.c))
$(O)/kvbench: $(O)/tests/bench/kvbench.o $(GPUBENCH_OBJS) $(HARNESS_OBJ) $(TESTLIB) $(LIBKVC_A)
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(LDFLAGS) -pthread -o $@ $^ $(CLIENT_LIBS) -lm

$(O)/kvssdbench: $(O)/tests/bench/ssdbench.o $(HARNESS_OBJ) $(TESTLIB) $(LIBKVC_A)
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(LDFLAGS) -pthread -o $@ $^ $(CLIENT_LIBS) -lm

# The trace replayer (tools/kvtrace/) runs the daemon's own store
# (simulation) or a live daemon through libkvc; the policy benchmark drives
# evict/ alone.
KVTRACE_OBJS := $(patsubst %.c,$(O)/%.o,$(wildcard tools/kvtrace/*.c))
$(O)/kvtrace: $(KVTRACE_OBJS) $(LIBKVD) $(LIBKVC_A)
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(LDFLAGS) -pthread -o $@ $^ $(DAEMON_LIBS) $(JSON_LIBS)

$(O)/kvpolicybench: $(O)/tests/bench/policybench.o $(LIBKVD)
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(LDFLAGS) -pthread -o $@ $^ $(DAEMON_LIBS)

$(O)/kvcodecbench: $(O)/tests/bench/codecbench.o $(TESTLIB) $(LIBKVD)
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(LDFLAGS) -pthread -o $@ $^ $(DAEMON_LIBS)

# The cluster tier's mover against redis-benchmark (docs/cluster.md).
$(O)/kvremotebench: $(O)/tests/bench/remotebench.o $(TESTLIB) $(LIBKVD)
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(LDFLAGS) -pthread -o $@ $^ $(DAEMON_LIBS)

TOOLS := \
	$(if $(wildcard tools/kvtrace/kvtrace.c),$(O)/kvtrace) \
	$(if $(wildcard tests/bench/remotebench.c),$(O)/kvremotebench) \
	$(if $(wildcard tests/bench/policybench.c),$(O)/kvpolicybench) \
	$(if $(wildcard tests/bench/codecbench.c),$(O)/kvcodecbench)
TEST_BINS := $(UNIT_TESTS) $(INTEG_TESTS) $(REGRESS_TESTS) $(GPU_TESTS) $(BENCHES) $(TOOLS)

test: $(PROGS) $(TEST_BINS)
	$(Q)O=$(O) tests/run.sh

run: $(O)/kvstored
	$(Q)mkdir -p var
	$(O)/kvstored $(ARGS)

# The sanitizer run does fewer consistency operations (KVT_OPS per client).
asan:
	KVT_OPS=$${KVT_OPS:-15000} $(MAKE) O=build-asan SANITIZE=address,undefined test

tsan:
	$(MAKE) O=build-tsan SANITIZE=thread test

# The kill -9 soak at full length (make test runs 20 kills).
SOAK_KILLS ?= 1000
soak: $(PROGS) $(O)/tests/integration/test_soak
	KVSTORED=$(O)/kvstored KVT_KILLS=$(SOAK_KILLS) $(O)/tests/integration/test_soak

bench: $(PROGS) $(BENCHES) $(TOOLS)
	$(O)/kvbench --daemon $(O)/kvstored $(BENCH_ARGS)
	$(O)/kvpolicybench
	$(O)/kvremotebench

# SSD-tier gets against fio O_DIRECT random reads, every size, depth and
# codec (tests/bench/ssdbench.sh; SSDBENCH_DIR: a directory on the disk
# under test, default /var/tmp).
ssdbench: $(O)/kvstored $(O)/kvssdbench
	KVSTORED=$(O)/kvstored KVSSDBENCH=$(O)/kvssdbench tests/bench/ssdbench.sh $(SSDBENCH_DIR)

# Hit ratio against capacity on the synthetic Mooncake trace (docs/eviction.md).
TRACE ?= ../shared/traces/mooncake_synthetic_trace.jsonl
trace: $(O)/kvtrace
	$(O)/kvtrace --trace $(TRACE) --capacity-tokens 500000,3000000,8000000,32000000 \
		--policies lru,gdsf,h2o,min

# ---- the GPU machine ------------------------------------------------------
# gpu-bundle: everything tests/gpu/run.sh runs, built here with CUDA, the
# non-CUDA libraries and cudart linked statically, into GPU_BUNDLE/ (cmocka,
# which Debian ships only shared, goes along in lib/). Copy or carry that
# folder to any x86-64 Linux with an NVIDIA driver and run
# GPU_BUNDLE/tests/gpu/run.sh there.
GPU_BUNDLE ?= gpu-bundle
GPU_BUNDLE_O := build-gpu
gpu-bundle:
	$(Q)$(MAKE) --no-print-directory O=$(GPU_BUNDLE_O) CUDA=1 STATIC_DEPS=1 gpu-bins
	$(Q)rm -rf $(GPU_BUNDLE) && mkdir -p $(GPU_BUNDLE)/tests/gpu $(GPU_BUNDLE)/lib
	$(Q)cp $(GPU_BUNDLE_O)/kvstored $(GPU_BUNDLE_O)/kvctl $(GPU_BUNDLE_O)/kvbench \
		$(GPU_BUNDLE_O)/libkvc.so $(GPU_BUNDLE)/
	$(Q)cp $(GPU_BUNDLE_O)/tests/gpu/test_* $(GPU_BUNDLE_O)/tests/gpu/pinbench \
		tests/gpu/run.sh tests/gpu/ttft.py tests/gpu/det_probe.py $(GPU_BUNDLE)/tests/gpu/
	$(Q)mkdir -p $(GPU_BUNDLE)/tests/gpu/python && \
		cp -r client/python/kvstore $(GPU_BUNDLE)/tests/gpu/python/ && \
		find $(GPU_BUNDLE)/tests/gpu/python -name __pycache__ -prune -exec rm -rf {} +
	$(Q)rm -f $(GPU_BUNDLE)/tests/gpu/*.o $(GPU_BUNDLE)/tests/gpu/*.d
	$(Q)for t in $(GPU_BUNDLE_O)/tests/gpu/test_*; do ldd $$t; done | \
		awk '/libcmocka/ {print $$3}' | sort -u | xargs -r -I{} cp -L {} $(GPU_BUNDLE)/lib/
	@echo "gpu bundle in $(GPU_BUNDLE)/: run $(GPU_BUNDLE)/tests/gpu/run.sh on the GPU machine"

gpu-bins: $(PROGS) $(GPU_TESTS) $(O)/kvbench $(O)/tests/gpu/pinbench

# ---- fuzzing (clang + libFuzzer) -----------------------------------------
FUZZ_O := build-fuzz
FUZZ_SECONDS ?= 60
FUZZ_CFLAGS := -std=gnu11 -D_GNU_SOURCE -g -O1 -I. \
	-fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all
FUZZERS := $(patsubst tests/fuzz/%.c,$(FUZZ_O)/%,$(wildcard tests/fuzz/fuzz_*.c))

fuzz:
	$(Q)scripts/deps.sh build fuzz
	$(Q)$(MAKE) --no-print-directory $(FUZZERS)

$(FUZZ_O)/fuzz_%: tests/fuzz/fuzz_%.c lib/proto.c lib/proto.h lib/errors.c
	@mkdir -p $(FUZZ_O)
	@$(if $(Q),echo "  FUZZ    $@")
	$(Q)clang $(FUZZ_CFLAGS) -o $@ $< lib/proto.c lib/errors.c

fuzz-run: fuzz
	$(Q)tests/fuzz/run.sh $(FUZZ_O) $(FUZZ_SECONDS)

check-style:
	$(Q)scripts/check-style.sh

clean:
	rm -rf $(O) build-asan build-tsan build-fuzz build-gpu gpu-bundle

distclean: clean
	rm -rf var fuzz-corpus

help:
	@sed -n '1,/^$$/p' Makefile

-include $(shell find $(O) -name '*.d' 2>/dev/null)
