# BOSH connection manager: sessiond (the session daemon) and bosh-handler
# (the FastCGI/CGI request handler).
#
#   make          build into build/
#   make run      start nginx + sessiond + handlers (+ a local Prosody) on loopback
#   make test     unit tests (plain and with ASan/UBSan) and end-to-end tests
#   make bench    side-by-side benchmark against Prosody's mod_bosh
#
# `make run` and `make test` install missing Debian packages when run as
# root, and say exactly which are missing otherwise.

CC      ?= cc
CFLAGS  ?= -O2 -g
WARN    := -std=c11 -Wall -Wextra -Wshadow -Wformat=2 -Wstrict-prototypes
PKGS    := fcgi sqlite3 expat openssl
B       := build

# Debian packages: to build, to test, to run the demo.
BUILD_DEBS := gcc make pkg-config libfcgi-dev libsqlite3-dev libexpat1-dev libssl-dev
RUN_DEBS   := nginx prosody sqlite3 python3
TEST_DEBS  := $(RUN_DEBS) spawn-fcgi nodejs chromium libpurple-dev
BENCH_DEBS := $(RUN_DEBS) wrk

COMMON_SRC  := common/log.c common/frame.c common/config.c
HANDLER_SRC := fcgi/handler.c fcgi/body.c fcgi/query.c fcgi/autostart.c $(COMMON_SRC)
SESSIOND_SRC := sessiond/main.c sessiond/loop.c sessiond/reply.c sessiond/xmpp.c \
	sessiond/splitter.c sessiond/session.c sessiond/ridwin.c sessiond/store.c \
	sessiond/front.c sessiond/pool.c sessiond/jsonattrs.c sessiond/stream.c $(COMMON_SRC)
UNIT_TESTS := body splitter frame ridwin config query jsonattrs

.PHONY: all deps-build deps-run deps-test deps-bench run test unit unit-asan e2e bench clean
all: $(B)/sessiond $(B)/bosh-handler $(B)/bosh-prebind

# ---- dependencies ---------------------------------------------------------
deps-build:
	@sh tests/deps.sh $(BUILD_DEBS)
deps-run:
	@sh tests/deps.sh $(BUILD_DEBS) $(RUN_DEBS)
deps-test:
	@sh tests/deps.sh $(BUILD_DEBS) $(TEST_DEBS)
	@command -v npm >/dev/null || sh tests/deps.sh npm  # some nodejs builds carry their own npm
	@[ -d tests/e2e/strophe/node_modules/strophe.js ] || npm ci --prefix tests/e2e/strophe --no-audit --no-fund
deps-bench:
	@sh tests/deps.sh $(BUILD_DEBS) $(BENCH_DEBS)

# ---- build ----------------------------------------------------------------
# pkg-config is asked only when a build needs it, so a missing package is
# reported by deps.sh rather than as a compiler error.
pc_cflags = $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
pc_libs   = $(shell pkg-config --libs $(PKGS) 2>/dev/null)

$(B)/sql_text.h: sql/schema.sql sql/views.sql
	@mkdir -p $(B)
	{ echo "/* generated from sql/schema.sql and sql/views.sql */"; \
	  for f in schema views; do printf 'static const char %s_sql[] =\n' $$f; \
	  sed 's/\\/\\\\/g; s/"/\\"/g; s/^/\t"/; s/$$/\\n"/' sql/$$f.sql; echo ';'; done; } > $@

INC := -Icommon -Ifcgi -Isessiond -I$(B)

$(B)/sessiond: $(SESSIOND_SRC) $(wildcard */*.h) $(B)/sql_text.h | deps-build
	$(CC) $(WARN) $(CFLAGS) $(INC) $(pc_cflags) $(SESSIOND_SRC) -o $@ $(pc_libs)

$(B)/bosh-handler: $(HANDLER_SRC) $(wildcard */*.h) | deps-build
	$(CC) $(WARN) $(CFLAGS) $(INC) $(pc_cflags) $(HANDLER_SRC) -o $@ $(pc_libs)

PREBIND_SRC := tools/prebind.c common/frame.c common/config.c common/log.c
$(B)/bosh-prebind: $(PREBIND_SRC) $(wildcard */*.h) | deps-build
	$(CC) $(WARN) $(CFLAGS) $(INC) $(pc_cflags) $(PREBIND_SRC) -o $@ $(pc_libs)

# Unit test binaries: tests/unit/test_NAME.c with the module sources they need.
src_body     := fcgi/body.c
src_splitter := sessiond/splitter.c
src_frame    := common/frame.c
src_ridwin   := sessiond/ridwin.c
src_config   := common/config.c common/log.c
src_query    := fcgi/query.c
src_jsonattrs := sessiond/jsonattrs.c

$(B)/unit/test_%: tests/unit/test_%.c $(wildcard */*.h) | deps-build
	@mkdir -p $(B)/unit
	$(CC) $(WARN) -O1 -g $(INC) -Itests/unit $(pc_cflags) $< $(src_$*) -o $@ $(pc_libs)

SAN := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all
$(B)/asan/test_%: tests/unit/test_%.c $(wildcard */*.h) | deps-build
	@mkdir -p $(B)/asan
	$(CC) $(WARN) -O1 -g $(SAN) $(INC) -Itests/unit $(pc_cflags) $< $(src_$*) -o $@ $(pc_libs)

$(B)/asan/sessiond: $(SESSIOND_SRC) $(wildcard */*.h) $(B)/sql_text.h | deps-build
	@mkdir -p $(B)/asan
	$(CC) $(WARN) -O1 -g $(SAN) $(INC) $(pc_cflags) $(SESSIOND_SRC) -o $@ $(pc_libs)

$(B)/asan/bosh-handler: $(HANDLER_SRC) $(wildcard */*.h) | deps-build
	@mkdir -p $(B)/asan
	$(CC) $(WARN) -O1 -g $(SAN) $(INC) $(pc_cflags) $(HANDLER_SRC) -o $@ $(pc_libs)

# ---- tests ----------------------------------------------------------------
unit: $(addprefix $(B)/unit/test_,$(UNIT_TESTS))
	@sh tests/unit/run.sh $^

unit-asan: $(addprefix $(B)/asan/test_,$(UNIT_TESTS))
	@ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 sh tests/unit/run.sh $^

# libpurple (Pidgin's library) as a test client
$(B)/purple_chat: tests/e2e/purple/purple_chat.c | deps-build
	$(CC) $(WARN) -O1 -g $(shell pkg-config --cflags purple glib-2.0) $< -o $@ \
		$(shell pkg-config --libs purple glib-2.0)

e2e: all $(B)/asan/sessiond $(B)/asan/bosh-handler $(B)/purple_chat
	python3 tests/e2e/run.py --build $(B)

test: deps-test
	@$(MAKE) --no-print-directory all unit unit-asan e2e

# ---- running --------------------------------------------------------------
PORT ?= 5280
XMPP_DOMAIN ?= localhost
XMPP_SERVER ?=
RUN_DIR ?= $(CURDIR)/run

run: deps-run all
	@PORT=$(PORT) XMPP_DOMAIN=$(XMPP_DOMAIN) XMPP_SERVER=$(XMPP_SERVER) RUN_DIR=$(RUN_DIR) \
		python3 tests/e2e/stack.py run

bench: deps-bench all
	sh tests/bench.sh

clean:
	rm -rf $(B)
