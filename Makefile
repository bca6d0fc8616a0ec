# mtasts-watch -- top-level build.  `make` builds bin/mtasts-agent,
# `make test` runs the suite, `make asan` runs it under ASan+UBSan,
# `make fuzz` / `make fuzz-smoke` build and briefly run the fuzz targets,
# `make check` is all three (what CI runs).

CC	?= cc
BUILD	?= build
BINDIR	?= bin
PKGS	:= openssl libcurl libunbound libevent jansson
TESTPKGS := cmocka

OPT	?= -O2
CFLAGS_W := -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -Wshadow \
	    -Wstrict-prototypes -Wmissing-prototypes -Wpointer-arith \
	    -Wformat=2 -Wno-format-nonliteral -Wno-format-truncation
# Truncation by snprintf into fixed buffers is how this code bounds every
# string it reports, so gcc's guesses about it are noise.
CPPFLAGS_P := -Icommon -Iagent $(shell pkg-config --cflags $(PKGS))
LIBS	:= $(shell pkg-config --libs $(PKGS)) -lresolv
TESTLIBS := $(shell pkg-config --libs $(TESTPKGS))

ifeq ($(SAN),1)
SANFLAGS := -fsanitize=address,undefined -fno-omit-frame-pointer \
	    -fno-sanitize-recover=all
endif

ALL_CFLAGS = $(CFLAGS_W) $(OPT) -g $(SANFLAGS) $(CPPFLAGS_P) $(CFLAGS)
ALL_LDFLAGS = $(SANFLAGS) $(LDFLAGS)

COMMON_SRC := $(wildcard common/*.c)
AGENT_SRC  := $(filter-out agent/main.c,$(wildcard agent/*.c))
LIB_OBJ	   := $(patsubst %.c,$(BUILD)/obj/%.o,$(COMMON_SRC) $(AGENT_SRC))
UNIT_SRC   := $(wildcard tests/unit/test_*.c)
UNIT_BIN   := $(patsubst tests/unit/%.c,$(BUILD)/tests/%,$(UNIT_SRC))
FUZZ_SRC   := $(wildcard tests/fuzz/fuzz_*.c)
FUZZ_BIN   := $(patsubst tests/fuzz/%.c,build-fuzz/%,$(FUZZ_SRC))
FUZZ_SECS  ?= 15

.PHONY: all test unit integration asan fuzz fuzz-smoke check clean format \
	check-format

all: $(BINDIR)/mtasts-agent

$(BUILD)/obj/%.o: %.c $(wildcard common/*.h agent/*.h)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -c -o $@ $<

$(BUILD)/libmtasts.a: $(LIB_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(BINDIR)/mtasts-agent: $(BUILD)/obj/agent/main.o $(BUILD)/libmtasts.a
	@mkdir -p $(dir $@)
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(LIBS)

$(BUILD)/tests/%: tests/unit/%.c $(BUILD)/libmtasts.a
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $(ALL_LDFLAGS) -Itests/lib -o $@ $< \
	    $(BUILD)/libmtasts.a $(LIBS) $(TESTLIBS)

unit: $(UNIT_BIN)

test: all unit
	BUILD=$(BUILD) AGENT=$(BINDIR)/mtasts-agent sh tests/run.sh

# A distinct exit code, so a sanitizer report never passes for "exit 1:
# error findings"; tests also look for the report text.
asan:
	ASAN_OPTIONS=detect_leaks=1:exitcode=86 \
	UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	    $(MAKE) BUILD=build-asan BINDIR=build-asan/bin SAN=1 OPT=-O1 test

fuzz: $(FUZZ_BIN)

build-fuzz/%: tests/fuzz/%.c $(COMMON_SRC) $(wildcard common/*.h)
	@mkdir -p $(dir $@)
	clang $(CFLAGS_W) -Wno-unknown-warning-option -O1 -g \
	    -fsanitize=fuzzer,address,undefined \
	    $(CPPFLAGS_P) -o $@ $< $(COMMON_SRC) $(LIBS)

fuzz-smoke: fuzz
	@set -e; for f in $(FUZZ_BIN); do \
		echo "fuzz: $$f for $(FUZZ_SECS)s"; \
		mkdir -p build-fuzz/corpus/$$(basename $$f); \
		$$f -max_total_time=$(FUZZ_SECS) -max_len=8192 \
		    -print_final_stats=0 build-fuzz/corpus/$$(basename $$f) \
		    tests/fuzz/seeds/$$(basename $$f) 2>build-fuzz/$$(basename $$f).log \
		    || { tail -50 build-fuzz/$$(basename $$f).log; exit 1; }; \
	done; echo "fuzz-smoke: no crash"

check: test asan fuzz-smoke

clean:
	rm -rf build build-asan build-fuzz bin

format:
	clang-format -i common/*.[ch] agent/*.[ch] tests/unit/*.[ch] \
	    tests/fuzz/*.c

check-format:
	clang-format --dry-run --Werror common/*.[ch] agent/*.[ch] \
	    tests/unit/*.[ch] tests/fuzz/*.c
