# fulcrum: hand-written GNU Makefile (one OS, one binary). `make help` lists the targets.
#   make            release build: build/fulcrum
#   make test       install missing packages, build release + ASan/UBSan, run unit and integration tests,
#                   then each fuzz target for TEST_FUZZ_SECONDS (default 15)
#   make run        install missing packages, build, start the demo (two backends + fulcrum on :8080)
#   make fuzz       build the libFuzzer targets (tests/fuzz) and run each FUZZ_SECONDS (default 30);
#                   make fuzz-long runs each for 10 minutes
#   V=1             show the full commands
.DEFAULT_GOAL := all
SHELL := /bin/bash

CC ?= cc
PKGS := libuv openssl zlib yaml-0.1 libbrotlienc libzstd libcares hiredis
LLHTTP_SRC ?= /usr/share/llhttp
LLHTTP_INC ?= /usr/share/include/llhttp
PYTHON ?= /usr/bin/python3

# BUILD is the output directory; SAN=1 makes the sanitizer build (used for build/asan).
BUILD ?= build
SAN ?= 0
WERROR ?= $(if $(filter true,$(CI)),1,0)

# The unit tests and fuzz targets also decode what fulcrum compresses (brotli's decoder).
TEST_LIBS = $(shell pkg-config --libs libbrotlidec 2>/dev/null)
PKG_CFLAGS = $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS = $(shell pkg-config --libs $(PKGS) 2>/dev/null)

WARN := -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes -Wno-unused-parameter
CFLAGS_BASE := -std=c11 -D_GNU_SOURCE -DLLHTTP_STRICT_MODE=1 -g -MMD -MP -Iinclude -I$(LLHTTP_INC) $(PKG_CFLAGS)
ifeq ($(SAN),1)
  OPT := -O1 -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=undefined -DFC_DEBUG
  LDSAN := -fsanitize=address,undefined
else
  OPT := -O2
  LDSAN :=
endif
ifeq ($(WERROR),1)
  WARN += -Werror
endif
ALL_CFLAGS = $(CFLAGS_BASE) $(OPT) $(WARN) $(CFLAGS)
ALL_LDFLAGS = $(LDSAN) $(LDFLAGS)
LIBS = $(PKG_LIBS) -lm

ifeq ($(V),1)
  Q :=
  say = @true
else
  Q := @
  say = @printf '  %-6s %s\n' $(1) $(2)
endif

SRCS := $(wildcard src/*.c)
OBJS := $(patsubst src/%.c,$(BUILD)/obj/%.o,$(SRCS))
LIB_OBJS := $(filter-out $(BUILD)/obj/main.o,$(OBJS))
LLHTTP_OBJS := $(BUILD)/obj/llhttp/llhttp.o $(BUILD)/obj/llhttp/api.o $(BUILD)/obj/llhttp/http.o
UNIT_SRCS := $(wildcard tests/unit/*.c)
UNIT_OBJS := $(patsubst tests/unit/%.c,$(BUILD)/obj/unit/%.o,$(UNIT_SRCS))
UNIT_NAMES := $(patsubst tests/unit/test_%.c,%,$(wildcard tests/unit/test_*.c))
TOOL_SRCS := $(wildcard tests/tools/*.c)
TOOLS := $(patsubst tests/tools/%.c,$(BUILD)/tools/%,$(TOOL_SRCS))

.PHONY: deps-check all fulcrum tools unit asan test test-unit test-integration run bench loadtest check-config deps deps-test clean help lint
.PHONY: fuzz fuzz-long bench-tools

all: $(BUILD)/fulcrum tools
fulcrum: $(BUILD)/fulcrum
tools: $(TOOLS)

$(BUILD)/fulcrum: $(OBJS) $(LLHTTP_OBJS)
	$(call say,LINK,$@)
	$(Q)$(CC) $(ALL_LDFLAGS) -o $@ $^ $(LIBS)

$(BUILD)/obj/%.o: src/%.c Makefile | deps-check
	@mkdir -p $(@D)
	$(call say,CC,$<)
	$(Q)$(CC) $(ALL_CFLAGS) -c -o $@ $<

# llhttp ships as C sources (Debian node-llhttp): compiled here, never copied into the repo.
$(BUILD)/obj/llhttp/%.o: $(LLHTTP_SRC)/%.c Makefile | deps-check
	@mkdir -p $(@D)
	$(call say,CC,$<)
	$(Q)$(CC) $(CFLAGS_BASE) $(OPT) -w -c -o $@ $<

$(BUILD)/obj/unit/%.o: tests/unit/%.c $(BUILD)/unit_list.h
	@mkdir -p $(@D)
	$(call say,CC,$<)
	$(Q)$(CC) $(ALL_CFLAGS) -I$(BUILD) -Itests/unit -c -o $@ $<

# The unit runner calls test_<name>() for every tests/unit/test_<name>.c.
$(BUILD)/unit_list.h: $(wildcard tests/unit/test_*.c)
	@mkdir -p $(@D)
	$(Q)printf '%s\n' $(foreach n,$(UNIT_NAMES),'FC_UNIT($(n))') > $@

$(BUILD)/unit-tests: $(UNIT_OBJS) $(LIB_OBJS) $(LLHTTP_OBJS)
	$(call say,LINK,$@)
	$(Q)$(CC) $(ALL_LDFLAGS) -o $@ $^ $(LIBS) $(TEST_LIBS)

$(BUILD)/tools/%: tests/tools/%.c | deps-check
	@mkdir -p $(@D)
	$(call say,CC,$<)
	$(Q)$(CC) $(ALL_CFLAGS) $(ALL_LDFLAGS) -o $@ $< $(LIBS)

unit: $(BUILD)/unit-tests

# make bench-tools: the TLS handshake client of the TLS bench scenarios (bench/tools/tlsbench.c, OpenSSL only).
bench-tools: $(BUILD)/tlsbench
$(BUILD)/tlsbench: bench/tools/tlsbench.c Makefile | deps-check
	@mkdir -p $(@D)
	$(call say,CC,$<)
	$(Q)$(CC) $(CFLAGS_BASE) $(OPT) $(WARN) -Werror $(CFLAGS) $(ALL_LDFLAGS) -o $@ $< $(shell pkg-config --libs openssl) -lm

# Fails early with the exact apt-get line when a library is missing.
deps-check:
	@pkg-config --exists $(PKGS) && test -f $(LLHTTP_SRC)/llhttp.c || { \
	  echo "missing build dependencies: run scripts/install-deps.sh (as root), or make deps" >&2; exit 1; }

deps:
	@scripts/install-deps.sh build
deps-test:
	@scripts/install-deps.sh test

asan:
	@$(MAKE) --no-print-directory BUILD=build/asan SAN=1 all unit

# make test: every test, release build and sanitizer build. TESTS=... narrows pytest (-k expression).
# Its three builds (release, ASan/UBSan, the fuzz targets) are one parallel make of JOBS jobs (the
# CPUs), unless the caller gave -j: serially they took 128 s on 2 CPUs, most of it one compiler at a time.
TEST_FUZZ_SECONDS ?= 15
JOBS ?= $(shell nproc 2>/dev/null || echo 2)
PAR = $(if $(filter -j%,$(MAKEFLAGS)),,-j$(JOBS))
test: deps-test
	@$(MAKE) --no-print-directory $(PAR) test-build
	@$(MAKE) --no-print-directory test-unit test-integration
	@$(MAKE) --no-print-directory WERROR=1 fuzz FUZZ_SECONDS=$(TEST_FUZZ_SECONDS)

.PHONY: test-build test-build-release test-build-asan test-build-fuzz
test-build: test-build-release test-build-asan test-build-fuzz
test-build-release:
	@$(MAKE) --no-print-directory WERROR=1 all unit
test-build-asan:
	@$(MAKE) --no-print-directory WERROR=1 BUILD=build/asan SAN=1 all unit
test-build-fuzz:
	@$(MAKE) --no-print-directory WERROR=1 $(FUZZ_BINS) $(FUZZ_BUILD)/strict-test

test-unit:
	@echo "== unit tests (release)"
	@build/unit-tests
	@echo "== unit tests (ASan/UBSan)"
	@build/asan/unit-tests

PYTEST_ARGS ?= -q -p no:cacheprovider
test-integration:
	@echo "== integration tests (release build)"
	@FULCRUM_BUILD=build $(PYTHON) -m pytest $(PYTEST_ARGS) $(if $(TESTS),-k "$(TESTS)") tests/integration
	@echo "== integration tests (ASan/UBSan build)"
	@FULCRUM_BUILD=build/asan $(PYTHON) -m pytest $(PYTEST_ARGS) $(if $(TESTS),-k "$(TESTS)") tests/integration

# The demo: two backends of our own and fulcrum on :8080 in front of them (Ctrl-C stops all three).
run: deps
	@$(MAKE) --no-print-directory all
	@scripts/demo.sh

check-config: all
	@build/fulcrum -t -c $(or $(CONFIG),conf/fulcrum.yaml)

bench:
	@scripts/install-deps.sh bench
	@$(MAKE) --no-print-directory all bench-tools
	@bench/run.sh

loadtest:
	@$(MAKE) --no-print-directory all
	@bench/loadtest.sh

lint:
	@clang-tidy --quiet $(SRCS) -- $(CFLAGS_BASE) 2>/dev/null | grep -E 'warning|error' || true
	@cppcheck --quiet --std=c11 --enable=warning,performance,portability -Iinclude $(SRCS)

clean:
	rm -rf build

help:
	@sed -n '1,8p' Makefile

# make fuzz: clang libFuzzer + ASan/UBSan builds of tests/fuzz/fuzz_<name>.c against every src/*.c
# but main.c and llhttp, in build/fuzz; each runs FUZZ_SECONDS on build/fuzz/corpus-<name> (the seeds
# of tests/fuzz/corpus/<name> copied in, plus what earlier runs found). A crash, a sanitizer report
# or a leak fails the target and leaves the input in build/fuzz/<name>-crash-* (or -leak-, -timeout-, -oom-).
FUZZ_CC ?= clang
FUZZ_SECONDS ?= 30
FUZZ_BUILD ?= build/fuzz
FUZZ_NAMES := http config forward respond compress tls
FUZZ_MAXLEN_http := 65536
FUZZ_MAXLEN_config := 16384
FUZZ_MAXLEN_forward := 65536
FUZZ_MAXLEN_respond := 65536
FUZZ_MAXLEN_compress := 65536
FUZZ_MAXLEN_tls := 4096
# fuzz_forward and fuzz_respond check invariants with strict.c, the referee parser (tests/fuzz/strict.h);
# strict-test checks the referee itself on known-good and known-bad messages before they run.
FUZZ_STRICT_OBJ := $(FUZZ_BUILD)/obj/fuzz/strict.o
FUZZ_SAN := -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined
FUZZ_CFLAGS = $(CFLAGS_BASE) -O1 -fno-omit-frame-pointer -DFC_DEBUG $(FUZZ_SAN)
FUZZ_LIB_OBJS := $(patsubst src/%.c,$(FUZZ_BUILD)/obj/%.o,$(filter-out src/main.c,$(SRCS)))
FUZZ_LLHTTP_OBJS := $(FUZZ_BUILD)/obj/llhttp/llhttp.o $(FUZZ_BUILD)/obj/llhttp/api.o $(FUZZ_BUILD)/obj/llhttp/http.o
FUZZ_BINS := $(patsubst %,$(FUZZ_BUILD)/fuzz_%,$(FUZZ_NAMES))
FUZZ_ARGS ?= -max_total_time=$(FUZZ_SECONDS) -timeout=5 -rss_limit_mb=1024 -print_final_stats=1
# Pattern-rule objects are intermediate to make: kept, so a second `make fuzz` rebuilds nothing.
.SECONDARY: $(FUZZ_LIB_OBJS) $(FUZZ_LLHTTP_OBJS) $(patsubst %,$(FUZZ_BUILD)/obj/fuzz/fuzz_%.o,$(FUZZ_NAMES)) $(FUZZ_STRICT_OBJ)

# The targets run FUZZ_JOBS at a time (the CPUs; each libFuzzer process is one thread, so each still
# has a CPU of its own for its FUZZ_SECONDS): five targets of 15 s took 75 s one after the other, 45 s two at a time.
FUZZ_JOBS ?= $(JOBS)
FUZZ_RUNS := $(patsubst %,fuzz-run-%,$(FUZZ_NAMES))
.PHONY: $(FUZZ_RUNS)
fuzz: $(FUZZ_BINS) $(FUZZ_BUILD)/strict-test
	@$(FUZZ_BUILD)/strict-test
	@$(MAKE) --no-print-directory -k -Otarget -j$(FUZZ_JOBS) $(FUZZ_RUNS)

$(FUZZ_RUNS): fuzz-run-%: $(FUZZ_BUILD)/fuzz_%
	@corpus=$(FUZZ_BUILD)/corpus-$*; log=$(FUZZ_BUILD)/fuzz-$*.log; \
	mkdir -p $$corpus && cp tests/fuzz/corpus/$*/* $$corpus/; \
	for x in tests/fuzz/crashes/$*-*; do [ ! -e "$$x" ] || cp "$$x" $$corpus/; done; \
	echo "== fuzz_$*: $(FUZZ_SECONDS)s on $$corpus (log: $$log)"; \
	if UBSAN_OPTIONS=$${UBSAN_OPTIONS:-print_stacktrace=1} $(FUZZ_BUILD)/fuzz_$* $(FUZZ_ARGS) -max_len=$(FUZZ_MAXLEN_$*) \
	     -artifact_prefix=$(FUZZ_BUILD)/$*- $$corpus >$$log 2>&1; then \
	  grep -E '^#[0-9]+[[:space:]]+DONE|^Done ' $$log || tail -n 3 $$log; \
	else \
	  sed -n '/ERROR:\|runtime error:\|deadly signal/,$$p' $$log | head -n 80 | grep . || tail -n 40 $$log; \
	  echo "fuzz_$* FAILED: see $$log; the input is in $(FUZZ_BUILD)/$*-*" >&2; exit 1; \
	fi

$(FUZZ_BUILD)/fuzz_%: $(FUZZ_BUILD)/obj/fuzz/fuzz_%.o $(FUZZ_LIB_OBJS) $(FUZZ_LLHTTP_OBJS)
	$(call say,LINK,$@)
	$(Q)$(FUZZ_CC) $(FUZZ_SAN) $(LDFLAGS) -o $@ $^ $(LIBS) $(TEST_LIBS)

$(FUZZ_BUILD)/fuzz_forward $(FUZZ_BUILD)/fuzz_respond: $(FUZZ_STRICT_OBJ)

# make fuzz-long: every target for 10 minutes (CI keeps the short `make fuzz`).
fuzz-long:
	@$(MAKE) --no-print-directory fuzz FUZZ_SECONDS=600

$(FUZZ_BUILD)/strict-test: tests/fuzz/strict_test.c tests/fuzz/strict.c tests/fuzz/strict.h Makefile
	@mkdir -p $(@D)
	$(call say,LINK,$@)
	$(Q)$(FUZZ_CC) -std=c11 -g -O1 -fsanitize=address,undefined -fno-sanitize-recover=undefined $(WARN) -o $@ tests/fuzz/strict_test.c tests/fuzz/strict.c

$(FUZZ_BUILD)/obj/fuzz/%.o: tests/fuzz/%.c Makefile | deps-check
	@mkdir -p $(@D)
	$(call say,CC,$<)
	$(Q)$(FUZZ_CC) $(FUZZ_CFLAGS) $(WARN) $(CFLAGS) -c -o $@ $<

$(FUZZ_BUILD)/obj/%.o: src/%.c Makefile | deps-check
	@mkdir -p $(@D)
	$(call say,CC,$<)
	$(Q)$(FUZZ_CC) $(FUZZ_CFLAGS) $(WARN) $(CFLAGS) -c -o $@ $<

$(FUZZ_BUILD)/obj/llhttp/%.o: $(LLHTTP_SRC)/%.c Makefile | deps-check
	@mkdir -p $(@D)
	$(call say,CC,$<)
	$(Q)$(FUZZ_CC) $(FUZZ_CFLAGS) -w -c -o $@ $<

-include $(OBJS:.o=.d) $(UNIT_OBJS:.o=.d)
-include $(FUZZ_LIB_OBJS:.o=.d) $(FUZZ_LLHTTP_OBJS:.o=.d) $(patsubst %,$(FUZZ_BUILD)/obj/fuzz/fuzz_%.d,$(FUZZ_NAMES)) $(FUZZ_STRICT_OBJ:.o=.d)
