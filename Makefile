# splitpv — the one, non-recursive Makefile.
#
#   make                 build everything (libraries, daemons, shim, tests, benchmarks)
#   make check           run every test that needs no Xen (unit, integration on the shim)
#   make SANITIZE=1 check   the same under ASan + UBSan (no recovery)
#   make fuzz-smoke      every libFuzzer target for a bounded time on its corpus (clang)
#   make bench           benchmarks; each prints ratios against an in-run baseline
#   make demo            simulated guests with a disk and a NIC, served by splitpv
#   make e2e             real Xen in QEMU (tests/e2e); skips loudly where it can't run
#   make install         PREFIX=/usr/local DESTDIR=
#   make deps            install the Debian packages the goals need
#
# Conventions (so a new file needs no Makefile edit):
#   * every .c under ring/ xenbus/ backends/blk/ backends/net/ frontend-shim/ is library
#     code of its layer, except the program entry files listed under "Programs";
#   * tests/unit/*.c form one CUnit binary; tests/integration/*.c are one binary each;
#     tests/integration/*.sh are test scripts; tests/fuzz/fuzz_*.c are libFuzzer targets;
#     bench/*.c are one binary each.

.DEFAULT_GOAL := all
BUILD_ROOT ?= build
SANITIZE ?= 0
PREFIX ?= /usr/local
DESTDIR ?=
FUZZ_SECONDS ?= 20

# V=1 shows full command lines.
ifeq ($(V),1)
Q :=
else
Q := @
endif

ifeq ($(SANITIZE),1)
BUILD ?= $(BUILD_ROOT)/san
else
BUILD ?= $(BUILD_ROOT)/default
endif

# ---------------------------------------------------------------------------
# Debian packages first: pkg-config below must see them. Skipped for goals that
# don't compile anything.
NOCOMPILE_GOALS := clean distclean help
ifneq ($(filter-out $(NOCOMPILE_GOALS),$(or $(MAKECMDGOALS),all)),)
DEPS_GOALS := build
ifneq ($(filter check demo,$(MAKECMDGOALS)),)
DEPS_GOALS += check
endif
ifneq ($(filter fuzz-smoke fuzz,$(MAKECMDGOALS)),)
DEPS_GOALS += fuzz
endif
ifneq ($(filter e2e,$(MAKECMDGOALS)),)
DEPS_GOALS += e2e
endif
DEPS_RC := $(shell tools/deps.sh $(DEPS_GOALS) >&2; echo $$?)
ifneq ($(DEPS_RC),0)
$(error missing Debian packages (see the message above))
endif
endif

# ---------------------------------------------------------------------------
# Toolchain and flags (warning set from ../shared/docs/STYLE.md; -Werror by default).
CC ?= gcc
FUZZ_CC ?= clang
PKGS := xenstore xengnttab xenevtchn cunit liburing libnbd
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS := $(shell pkg-config --libs $(PKGS) 2>/dev/null)

WARN := -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes -Wformat=2 \
        -Wno-unused-parameter
WERROR ?= -Werror
CPPFLAGS += -I. -D_GNU_SOURCE -D__XEN_INTERFACE_VERSION__=0x00040e00 $(PKG_CFLAGS)
CFLAGS ?= -O2 -g
CFLAGS += -std=gnu11 -pthread -fno-strict-aliasing $(WARN) $(WERROR) -MMD -MP
LDLIBS += $(PKG_LIBS) -lev -lpthread -lm

ifeq ($(SANITIZE),1)
CFLAGS += -O1 -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=all
LDFLAGS += -fsanitize=address,undefined
endif

FUZZ_CFLAGS := -std=gnu11 -g -O1 -fno-omit-frame-pointer $(WARN) -Wno-unused-command-line-argument \
               -fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=all
FUZZ_LDFLAGS := -fsanitize=fuzzer,address,undefined

# ---------------------------------------------------------------------------
# Programs: name, entry file, layer libraries it needs (in link order).
PROGRAMS :=
MAINS :=
define program
PROGRAMS += $(BUILD)/bin/$(1)
MAINS += $(2)
$(BUILD)/bin/$(1): $(BUILD)/obj/$(2:.c=.o) $(3)
	@mkdir -p $$(@D)
	@$(if $(Q),echo "  LD      $$@")
	$(Q)$$(CC) $$(LDFLAGS) -o $$@ $$(call link_inputs,$$^) $$(LDLIBS)
endef

# Link inputs: objects, then the layer archives as one group (xenbus/hv.c and the
# shim's hv_shim.c refer to each other).
link_inputs = $(filter-out %.a,$(1)) -Wl,--start-group $(filter %.a,$(1)) -Wl,--end-group

LIBRING   := $(BUILD)/lib/libring.a
LIBXENBUS := $(BUILD)/lib/libxenbus.a
LIBSHIM   := $(BUILD)/lib/libshim.a
LIBBLK    := $(BUILD)/lib/libblk.a
LIBNET    := $(BUILD)/lib/libnet.a
# Everything, in link order (higher layers first).
LIBS_ALL  := $(LIBBLK) $(LIBNET) $(LIBSHIM) $(LIBXENBUS) $(LIBRING)

# Entry points. Add one line per program.
PROGRAM_LIST := $(wildcard frontend-shim/cmd/*.c backends/blk/cmd/*.c backends/net/cmd/*.c \
                           xenbus/cmd/*.c tools/cmd/*.c)
$(foreach m,$(PROGRAM_LIST),$(eval $(call program,$(basename $(notdir $(m))),$(m),$(LIBS_ALL))))

# ---------------------------------------------------------------------------
# Layer libraries: every .c in the layer's directory (not in cmd/).
RING_SRCS   := $(wildcard ring/*.c)
XENBUS_SRCS := $(wildcard xenbus/*.c)
SHIM_SRCS   := $(wildcard frontend-shim/*.c)
BLK_SRCS    := $(wildcard backends/blk/*.c)
NET_SRCS    := $(wildcard backends/net/*.c)
LIB_SRCS    := $(RING_SRCS) $(XENBUS_SRCS) $(SHIM_SRCS) $(BLK_SRCS) $(NET_SRCS)

objs = $(addprefix $(BUILD)/obj/,$(1:.c=.o))

define library
$(1): $(call objs,$(2))
	@mkdir -p $$(@D)
	$(Q)rm -f $$@
	$(Q)$$(AR) rcs $$@ $$^
endef
$(eval $(call library,$(LIBRING),$(RING_SRCS)))
$(eval $(call library,$(LIBXENBUS),$(XENBUS_SRCS)))
$(eval $(call library,$(LIBSHIM),$(SHIM_SRCS)))
$(eval $(call library,$(LIBBLK),$(BLK_SRCS)))
$(eval $(call library,$(LIBNET),$(NET_SRCS)))

$(BUILD)/obj/%.o: %.c
	@mkdir -p $(@D)
	@$(if $(Q),echo "  CC      $<")
	$(Q)$(CC) $(CPPFLAGS) $(CFLAGS) -c -o $@ $<

# ---------------------------------------------------------------------------
# Tests.
UNIT_SRCS := $(wildcard tests/unit/*.c)
UNIT_BIN  := $(BUILD)/tests/unit
$(UNIT_BIN): $(call objs,$(UNIT_SRCS)) $(LIBS_ALL)
	@mkdir -p $(@D)
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(LDFLAGS) -o $@ $(call link_inputs,$^) $(LDLIBS)

INTEG_SRCS := $(wildcard tests/integration/*.c)
INTEG_BINS := $(patsubst tests/integration/%.c,$(BUILD)/tests/integration/%,$(INTEG_SRCS))
$(BUILD)/tests/integration/%: $(BUILD)/obj/tests/integration/%.o $(LIBS_ALL)
	@mkdir -p $(@D)
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(LDFLAGS) -o $@ $(call link_inputs,$^) $(LDLIBS)

BENCH_SRCS := $(wildcard bench/*.c)
BENCH_BINS := $(patsubst bench/%.c,$(BUILD)/bench/%,$(BENCH_SRCS))
$(BUILD)/bench/%: $(BUILD)/obj/bench/%.o $(LIBS_ALL)
	@mkdir -p $(@D)
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(LDFLAGS) -o $@ $(call link_inputs,$^) $(LDLIBS)

ALL_BINS := $(PROGRAMS) $(UNIT_BIN) $(INTEG_BINS) $(BENCH_BINS)

# Fuzz targets: library sources rebuilt with clang + libFuzzer instrumentation.
FUZZ_SRCS := $(wildcard tests/fuzz/fuzz_*.c)
FUZZ_BINS := $(patsubst tests/fuzz/%.c,$(BUILD_ROOT)/fuzz/bin/%,$(FUZZ_SRCS))
FUZZ_LIB_OBJS := $(addprefix $(BUILD_ROOT)/fuzz/obj/,$(LIB_SRCS:.c=.o))
$(BUILD_ROOT)/fuzz/obj/%.o: %.c
	@mkdir -p $(@D)
	@$(if $(Q),echo "  CC      $< (fuzz)")
	$(Q)$(FUZZ_CC) -I. -D_GNU_SOURCE -D__XEN_INTERFACE_VERSION__=0x00040e00 $(PKG_CFLAGS) \
		$(FUZZ_CFLAGS) -MMD -MP -c -o $@ $<
# One archive: a target pulls in only the objects it references.
FUZZ_LIB := $(BUILD_ROOT)/fuzz/lib/libsplitpv.a
$(FUZZ_LIB): $(FUZZ_LIB_OBJS)
	@mkdir -p $(@D)
	$(Q)rm -f $@
	$(Q)$(AR) rcs $@ $^
$(BUILD_ROOT)/fuzz/bin/%: $(BUILD_ROOT)/fuzz/obj/tests/fuzz/%.o $(FUZZ_LIB)
	@mkdir -p $(@D)
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(FUZZ_CC) $(FUZZ_LDFLAGS) -o $@ $^ $(LDLIBS)

# ---------------------------------------------------------------------------
# Goals.
.SECONDARY:
.PHONY: all check fuzz fuzz-smoke bench demo e2e install deps clean distclean help

all: $(ALL_BINS)

# SPLITPV_BUILD tells tests where the binaries are.
export SPLITPV_BUILD := $(abspath $(BUILD))

check: all
	@tests/run-tests.sh $(UNIT_BIN) $(INTEG_BINS) $(sort $(wildcard tests/integration/*.sh))

fuzz: $(FUZZ_BINS)

fuzz-smoke: $(FUZZ_BINS)
	@tests/fuzz/smoke.sh $(FUZZ_SECONDS) $(FUZZ_BINS)

bench: all
	@set -e; for b in $(BENCH_BINS); do echo "== $$b"; $$b; done

demo: all
	@tools/demo.sh

e2e: all
	@tests/e2e/run.sh

install: all
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/lib/splitpv
	install -m 755 $(PROGRAMS) $(DESTDIR)$(PREFIX)/bin/
	if [ -d tools/hotplug ]; then install -m 755 tools/hotplug/* $(DESTDIR)$(PREFIX)/lib/splitpv/; fi
	install -D -m 644 tools/systemd/splitpvd.service $(DESTDIR)/etc/systemd/system/splitpvd.service
	install -D -m 644 tools/modprobe.d/splitpv.conf $(DESTDIR)/etc/modprobe.d/splitpv.conf
	install -d $(DESTDIR)$(PREFIX)/share/doc/splitpv
	install -m 644 docs/TOOLSTACK.md docs/OPERATIONS.md $(DESTDIR)$(PREFIX)/share/doc/splitpv/

deps:
	@tools/deps.sh build check fuzz

clean:
	rm -rf $(BUILD_ROOT)

distclean: clean

help:
	@sed -n '2,12p' Makefile

-include $(shell find $(BUILD_ROOT) -name '*.d' 2>/dev/null)
