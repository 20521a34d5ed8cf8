# BOSH connection manager: sessiond (the session daemon) and bosh-handler
# (the FastCGI/CGI request handler).
#
#   make          build into build/
#   make run      start nginx + sessiond + handlers (+ a local Prosody) on loopback,
#                 with a demo web chat at /; your own bosh.conf lines in run/local.conf
#                 or CONF=path
#   make test     unit tests (plain and with ASan/UBSan), fuzzers, end-to-end tests,
#                 the Debian package, the systemd unit and the man pages
#   make cluster  NODES (3) nodes behind HAProxy, sessions routed by their sid
#   make deb      build/bosh-cm_VERSION_ARCH.deb (dpkg-buildpackage), checked by lintian
#   make bench    side-by-side benchmark against Prosody's mod_bosh and mod_websocket
#   make continuity  restarts sessiond (and nginx, a handler) under load: what is lost
#   make fuzz     the fuzzers, FUZZ_SECONDS each (make test runs them briefly)
#   make install PREFIX=/usr/local [DESTDIR=...]   programs, SQL, examples, man pages
#   make install-cgi DIR=~/public_html/chat          a shared-hosting folder (CGI)
#
# `make run` and `make test` install missing Debian packages when run as
# root, and say exactly which are missing otherwise.

CC      ?= cc
CFLAGS  ?= -O2 -g
WARN    := -std=c11 -Wall -Wextra -Wshadow -Wformat=2 -Wstrict-prototypes
PKGS    := fcgi sqlite3 expat openssl libcares
B       := build

# Debian packages: to build, to test, to run the demo.
BUILD_DEBS := gcc make pkg-config libfcgi-dev libsqlite3-dev libexpat1-dev libssl-dev libc-ares-dev \
	libwslay-dev
RUN_DEBS   := nginx prosody sqlite3 python3 nodejs
TEST_DEBS  := $(RUN_DEBS) spawn-fcgi nodejs apache2 libapache2-mod-fcgid chromium libpurple-dev clang \
	g++ libgloox-dev ruby-xmpp4r procps iproute2 prometheus haproxy
BENCH_DEBS := $(RUN_DEBS) wrk haproxy ejabberd
# make deb: the package build (dpkg-buildpackage, dh), lintian, systemd-analyze
DEB_DEBS   := debhelper dpkg-dev fakeroot lintian systemd python3

COMMON_SRC  := common/log.c common/log_syslog.c common/frame.c common/config.c common/netmatch.c
HANDLER_SRC := fcgi/handler.c fcgi/request.c fcgi/body.c common/xmlscan.c fcgi/query.c fcgi/autostart.c $(COMMON_SRC)
SESSIOND_SRC := sessiond/main.c sessiond/loop.c sessiond/reply.c sessiond/xmpp.c \
	sessiond/splitter.c common/xmlscan.c sessiond/session.c sessiond/sesstable.c sessiond/sesssnap.c \
	sessiond/bosh_rules.c sessiond/bosh_new.c sessiond/bosh_save.c sessiond/ridwin.c sessiond/store.c \
	sessiond/front.c sessiond/pool.c sessiond/jsonattrs.c sessiond/resolver.c \
	sessiond/dial.c sessiond/tls.c sessiond/snapshot.c sessiond/restart.c \
	sessiond/stream.c sessiond/route.c sessiond/attrs.c sessiond/budget.c \
	sessiond/ws_handshake.c sessiond/ws_conn.c sessiond/xmpp_framing.c sessiond/ws_session.c \
	sessiond/ws_accept.c sessiond/ws_save.c \
	sessiond/metrics.c sessiond/metrics_report.c sessiond/control.c sessiond/status_page.c \
	sessiond/fcgi_conn.c sessiond/fcgi_listen.c sessiond/fdpark.c common/fcgi_rec.c fcgi/request.c fcgi/body.c fcgi/query.c \
	$(COMMON_SRC)
UNIT_TESTS := body splitter frame ridwin config query jsonattrs dial route attrs reply store log netmatch \
	snapshot restore ws_handshake ws_conn xmpp_framing xmpp fcgi_rec fcgi_conn fdpark oom
# test_oom replaces malloc for its whole binary, which ASan's allocator forbids.
UNIT_ASAN_TESTS := $(filter-out oom,$(UNIT_TESTS))

.PHONY: FORCE all check-build deps-run deps-test deps-bench deps-cluster cluster run test unit unit-asan e2e bench clean \
	continuity continuity-small fuzz fuzz-short \
	install install-cgi man deb deps-deb packaging-test
all: $(B)/sessiond $(B)/bosh-handler $(B)/bosh-prebind $(B)/boshctl

# ---- dependencies ---------------------------------------------------------
# npm ci in a folder again whenever its pinned packages changed (npm writes
# node_modules/.package-lock.json); some nodejs builds carry their own npm.
npm_ci = command -v npm >/dev/null || sh tools/deps.sh npm; \
	cd $(1) && { [ node_modules/.package-lock.json -nt package-lock.json ] || npm ci --no-audit --no-fund; }

# The web chat's Strophe.js (www/chat/package-lock.json): fetched with npm ci
# like the test clients', so that what make run serves is pinned and nothing
# is loaded from another host. Its own folder, not tests/e2e/strophe: the
# demo needs the browser build only, none of the test clients' Node packages.
deps-run:
	@sh tools/deps.sh $(BUILD_DEBS) $(RUN_DEBS)
	@$(call npm_ci,www/chat)
deps-test:
	@sh tools/deps.sh $(BUILD_DEBS) $(TEST_DEBS)
	@$(call npm_ci,tests/e2e/strophe)
	@$(call npm_ci,www/chat)
deps-cluster:
	@sh tools/deps.sh $(BUILD_DEBS) $(RUN_DEBS) haproxy
deps-bench:
	@sh tools/deps.sh $(BUILD_DEBS) $(BENCH_DEBS)

# ---- build ----------------------------------------------------------------
# A plain `make` (and `make install`) never installs anything and needs no
# dpkg: it asks pkg-config, and names the -dev packages that are missing.
# Only `make run`, `make test` and `make bench` install packages (as root).
check-build:
	@pkg-config --version >/dev/null 2>&1 || { echo "pkg-config is missing (Debian: apt-get install pkg-config)" >&2; exit 1; }
	@miss=""; for m in fcgi:libfcgi-dev sqlite3:libsqlite3-dev expat:libexpat1-dev openssl:libssl-dev \
	    libcares:libc-ares-dev; do pkg-config --exists $${m%%:*} || miss="$$miss $${m#*:}"; done; \
	  pkg-config --exists libwslay || printf '#include <wslay/wslay.h>\n' | $(CC) -E -x c - >/dev/null 2>&1 || \
	    miss="$$miss libwslay-dev"; \
	  [ -z "$$miss" ] || { echo "missing libraries; on Debian: apt-get install$$miss (or make test / make run as root)" >&2; exit 1; }
pc_cflags = $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
pc_libs   = $(shell pkg-config --libs $(PKGS) 2>/dev/null)
# wslay (WebSocket framing, sessiond only): Debian's libwslay-dev ships no
# libwslay.pc, so pkg-config is asked first and -lwslay is the fallback.
ws_cflags = $(shell pkg-config --cflags libwslay 2>/dev/null)
ws_libs   = $(or $(shell pkg-config --libs libwslay 2>/dev/null),-lwslay)

$(B)/sql_text.h: sql/schema.sql sql/views.sql
	@mkdir -p $(B)
	{ echo "/* generated from sql/schema.sql and sql/views.sql */"; \
	  for f in schema views; do printf 'static const char %s_sql[] =\n' $$f; \
	  sed 's/\\/\\\\/g; s/"/\\"/g; s/^/\t"/; s/$$/\\n"/' sql/$$f.sql; echo ';'; done; } > $@

INC := -Icommon -Ifcgi -Isessiond -I$(B)

# What the installed libraries can do, probed by linking (never from their
# version macros: Debian backports features without changing them). Probed
# on every build, rewritten only when the answer changes.
$(B)/probed.h: FORCE | check-build
	@mkdir -p $(B)
	@sh tools/probe/features.sh "$(CC)" "$(pc_cflags)" "$(pc_libs)" > $@.new && \
	  { cmp -s $@.new $@ && rm -f $@.new || mv -f $@.new $@; }
FORCE:
GEN := $(B)/sql_text.h $(B)/probed.h

$(B)/sessiond: $(SESSIOND_SRC) $(wildcard */*.h) $(GEN) | check-build
	$(CC) $(WARN) $(CFLAGS) $(INC) $(pc_cflags) $(ws_cflags) $(SESSIOND_SRC) -o $@ $(pc_libs) $(ws_libs)

$(B)/bosh-handler: $(HANDLER_SRC) $(wildcard */*.h) $(GEN) | check-build
	$(CC) $(WARN) $(CFLAGS) $(INC) $(pc_cflags) $(HANDLER_SRC) -o $@ $(pc_libs)

BOSHCTL_SRC := tools/boshctl.c common/frame.c common/config.c common/netmatch.c common/log.c common/log_syslog.c
$(B)/boshctl: $(BOSHCTL_SRC) $(wildcard */*.h) $(GEN) | check-build
	$(CC) $(WARN) $(CFLAGS) $(INC) $(BOSHCTL_SRC) -o $@

PREBIND_SRC := tools/prebind.c common/frame.c common/config.c common/netmatch.c common/log.c common/log_syslog.c
$(B)/bosh-prebind: $(PREBIND_SRC) $(wildcard */*.h) $(GEN) | check-build
	$(CC) $(WARN) $(CFLAGS) $(INC) $(pc_cflags) $(PREBIND_SRC) -o $@ $(pc_libs)

# Man pages: bosh.conf(5) is made from the parser's own key table (config-keys
# prints it) and the descriptions in man/bosh.conf.keys, so it lists exactly
# the keys the parser takes. build/man is a MANPATH: man5/, man8/.
$(B)/config-keys: tools/config_keys.c common/config.c common/netmatch.c common/log.c common/log_syslog.c common/config.h \
		common/log.h common/netmatch.h | check-build
	$(CC) $(WARN) -O1 -g $(INC) tools/config_keys.c common/netmatch.c common/log.c common/log_syslog.c -o $@

$(B)/man/man5/bosh.conf.5: $(B)/config-keys man/bosh.conf.keys man/bosh.conf.5.in tools/mkconfman.py
	@mkdir -p $(@D)
	$(B)/config-keys > $(B)/config-keys.tsv
	python3 tools/mkconfman.py $(B)/config-keys.tsv man/bosh.conf.keys man/bosh.conf.5.in $@

$(B)/man/man8/%.8: man/%.8
	@mkdir -p $(@D)
	cp $< $@

man: $(B)/man/man5/bosh.conf.5 $(B)/man/man8/sessiond.8 $(B)/man/man8/bosh-handler.8 $(B)/man/man8/boshctl.8

# Unit test binaries: tests/unit/test_NAME.c with the module sources they need.
src_body     := fcgi/body.c common/xmlscan.c
src_fcgi_rec := common/fcgi_rec.c
src_fdpark := sessiond/fdpark.c
# the connections with a stand-in session layer (tests/fcgi_conn_harness.h)
src_fcgi_conn := sessiond/fcgi_conn.c sessiond/fcgi_listen.c sessiond/fdpark.c sessiond/reply.c sessiond/loop.c sessiond/metrics.c \
	sessiond/snapshot.c sessiond/splitter.c common/xmlscan.c sessiond/budget.c common/fcgi_rec.c fcgi/request.c \
	fcgi/body.c fcgi/query.c common/frame.c common/config.c common/netmatch.c common/log.c \
	common/log_syslog.c
src_splitter := sessiond/splitter.c common/xmlscan.c sessiond/snapshot.c sessiond/budget.c common/log.c common/log_syslog.c
# out of memory at every allocation: the splitter, the <body/> parser, the WebSocket classifier
src_oom      := $(src_splitter) fcgi/body.c sessiond/xmpp_framing.c
src_frame    := common/frame.c
src_ridwin   := sessiond/ridwin.c
src_config   := common/config.c common/netmatch.c common/log.c common/log_syslog.c
src_log      := common/log.c common/log_syslog.c
src_query    := fcgi/query.c
src_jsonattrs := sessiond/jsonattrs.c
src_dial     := sessiond/dial.c sessiond/resolver.c sessiond/metrics.c sessiond/loop.c common/log.c common/log_syslog.c
src_route    := sessiond/route.c
src_netmatch := common/netmatch.c
src_attrs    := sessiond/attrs.c common/frame.c
src_reply    := sessiond/reply.c sessiond/metrics.c sessiond/loop.c common/frame.c common/config.c common/netmatch.c common/log.c common/log_syslog.c
src_store    := sessiond/store.c common/log.c common/log_syslog.c
src_snapshot := sessiond/snapshot.c sessiond/splitter.c common/xmlscan.c sessiond/budget.c common/log.c common/log_syslog.c
src_restore  := $(filter-out sessiond/main.c,$(SESSIOND_SRC))
src_xmpp     := $(filter-out sessiond/main.c,$(SESSIOND_SRC))
src_ws_handshake := sessiond/ws_handshake.c
src_ws_conn  := sessiond/ws_conn.c
src_xmpp_framing := sessiond/xmpp_framing.c sessiond/splitter.c common/xmlscan.c sessiond/snapshot.c sessiond/budget.c \
	common/log.c common/log_syslog.c

# A test is rebuilt when the module sources it links change too.
.SECONDEXPANSION:
$(B)/unit/test_%: tests/unit/test_%.c $$(src_$$*) $(wildcard */*.h) $(GEN) | check-build
	@mkdir -p $(B)/unit
	$(CC) $(WARN) -O1 -g $(INC) -Itests/unit $(pc_cflags) $(ws_cflags) $< $(src_$*) -o $@ $(pc_libs) $(ws_libs)

SAN := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all
$(B)/asan/test_%: tests/unit/test_%.c $$(src_$$*) $(wildcard */*.h) $(GEN) | check-build
	@mkdir -p $(B)/asan
	$(CC) $(WARN) -O1 -g $(SAN) $(INC) -Itests/unit $(pc_cflags) $(ws_cflags) $< $(src_$*) -o $@ $(pc_libs) $(ws_libs)

$(B)/asan/sessiond: $(SESSIOND_SRC) $(wildcard */*.h) $(GEN) | check-build
	@mkdir -p $(B)/asan
	$(CC) $(WARN) -O1 -g $(SAN) $(INC) $(pc_cflags) $(ws_cflags) $(SESSIOND_SRC) -o $@ $(pc_libs) $(ws_libs)

$(B)/asan/bosh-handler: $(HANDLER_SRC) $(wildcard */*.h) $(GEN) | check-build
	@mkdir -p $(B)/asan
	$(CC) $(WARN) -O1 -g $(SAN) $(INC) $(pc_cflags) $(HANDLER_SRC) -o $@ $(pc_libs)

# Fuzzers (libFuzzer with ASan+UBSan) for everything that parses what a
# client, a handler or an XMPP server sends: make fuzz runs each for
# FUZZ_SECONDS; make test for a few seconds each.
FUZZERS := body frame query jsonattrs splitter session ws_handshake xmpp_framing ws_conn fcgi_rec fcgi_conn
fsrc_body      := fcgi/body.c common/xmlscan.c
fsrc_fcgi_rec  := common/fcgi_rec.c
fsrc_fcgi_conn := $(src_fcgi_conn)
fsrc_frame     := common/frame.c
fsrc_query     := fcgi/query.c
fsrc_jsonattrs := sessiond/jsonattrs.c
fsrc_splitter  := sessiond/splitter.c common/xmlscan.c sessiond/snapshot.c sessiond/budget.c common/log.c common/log_syslog.c
fsrc_ws_handshake := sessiond/ws_handshake.c
fsrc_xmpp_framing := sessiond/xmpp_framing.c
fsrc_ws_conn   := sessiond/ws_conn.c
# the whole request path: every sessiond module but main.c (the body parser is one)
fsrc_session   := $(filter-out sessiond/main.c,$(SESSIOND_SRC))
FUZZ_SECONDS ?= 60
$(B)/fuzz/fuzz_%: tests/fuzz/fuzz_%.c $$(fsrc_$$*) $(wildcard */*.h) $(GEN) | check-build
	@mkdir -p $(B)/fuzz
	clang -std=c11 -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all \
		$(INC) $(pc_cflags) $(ws_cflags) $< $(fsrc_$*) -o $@ $(pc_libs) $(ws_libs)

fuzz: $(addprefix $(B)/fuzz/fuzz_,$(FUZZERS))
	@sh tests/fuzz/run.sh $(FUZZ_SECONDS) $^

fuzz-short: $(addprefix $(B)/fuzz/fuzz_,$(FUZZERS))
	@sh tests/fuzz/run.sh 4 $^

# ---- tests ----------------------------------------------------------------
unit: $(addprefix $(B)/unit/test_,$(UNIT_TESTS))
	@sh tests/unit/run.sh $^

unit-asan: $(addprefix $(B)/asan/test_,$(UNIT_ASAN_TESTS))
	@ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 sh tests/unit/run.sh $^

# libpurple (Pidgin's library) as a test client
$(B)/purple_chat: tests/e2e/purple/purple_chat.c | check-build
	$(CC) $(WARN) -O1 -g $(shell pkg-config --cflags purple glib-2.0) $< -o $@ \
		$(shell pkg-config --libs purple glib-2.0)

# gloox (C++) as a test client
$(B)/gloox_chat: tests/e2e/gloox/gloox_chat.cpp | check-build
	$(CXX) -std=c++11 -Wall -Wextra -O1 -g $(shell pkg-config --cflags gloox) $< -o $@ \
		$(shell pkg-config --libs gloox)

e2e: all $(B)/asan/sessiond $(B)/asan/bosh-handler $(B)/purple_chat $(B)/gloox_chat
	python3 tests/e2e/run.py --build $(B)

# Restarts under load (tests/continuity.py): make continuity measures; make
# test runs it small. boshload is the shared bench's load generator.
BOSHLOAD_SRC ?= ../shared/bench/boshload.c
$(B)/boshload: $(wildcard $(BOSHLOAD_SRC))
	@[ -f "$(BOSHLOAD_SRC)" ] || { echo "missing $(BOSHLOAD_SRC) (the shared bench folder; BOSHLOAD_SRC=)" >&2; exit 1; }
	$(CC) -O2 -o $@ $(BOSHLOAD_SRC)

continuity: deps-test
	@$(MAKE) --no-print-directory all $(B)/boshload
	python3 tests/continuity.py $(B)/boshload --sessions $(or $(SESSIONS),50) \
		--duration $(or $(DURATION),30) --restarts $(or $(RESTARTS),5) --nginx-reload

# Our own client, not boshload: make test needs nothing outside the repository.
continuity-small: all
	python3 tests/continuity.py python --sessions 8 --duration 8 --restarts 3

test: deps-test
	@$(MAKE) --no-print-directory all unit unit-asan fuzz-short e2e continuity-small packaging-test

# ---- running --------------------------------------------------------------
PORT ?= 5280
XMPP_DOMAIN ?= localhost
XMPP_SERVER ?=
RUN_DIR ?= $(CURDIR)/run
# Your own bosh.conf lines, applied after make run's: RUN_DIR/local.conf, or CONF=path.
CONF ?=

run: deps-run
	@$(MAKE) --no-print-directory all
	@PORT=$(PORT) XMPP_DOMAIN=$(XMPP_DOMAIN) XMPP_SERVER=$(XMPP_SERVER) RUN_DIR=$(RUN_DIR) \
		CONF=$(if $(CONF),$(abspath $(CONF))) BUILD=$(B) python3 tools/stack.py run

# Several nodes behind HAProxy (tools/cluster.py): NODES (3), PORT, XMPP_DOMAIN,
# XMPP_SERVER as for make run; RUN_DIR (default run-cluster) holds n1, n2, ...
NODES ?= 3
cluster: deps-cluster
	@$(MAKE) --no-print-directory all
	@NODES=$(NODES) PORT=$(PORT) XMPP_DOMAIN=$(XMPP_DOMAIN) XMPP_SERVER=$(XMPP_SERVER) \
		RUN_DIR=$(if $(filter command line environment,$(origin RUN_DIR)),$(RUN_DIR),$(CURDIR)/run-cluster) \
		python3 tools/cluster.py run

bench: deps-bench
	@$(MAKE) --no-print-directory all
	BENCH_DIR=$(dir $(BOSHLOAD_SRC)) sh tests/bench.sh

# ---- the Debian package ------------------------------------------------------
# build/bosh-cm_VERSION_ARCH.deb, from debian/ (dpkg-buildpackage in a copy of
# the source under build/deb/), checked by lintian (errors fail).
deps-deb:
	@sh tools/deps.sh $(BUILD_DEBS) $(DEB_DEBS)

deb: deps-deb
	@sh tools/mkdeb.sh $(B)

# The package, the unit, the man pages and sessiond's readiness protocol,
# tested the way an admin meets them (tests/packaging).
packaging-test: deb all man $(B)/asan/sessiond
	python3 tests/packaging/run.py --build $(B)

# ---- installing -------------------------------------------------------------
# sessiond and bosh-handler go side by side (sessiond finds the handler
# beside itself, and the handler finds sessiond there for autostart).
PREFIX  ?= /usr/local
DESTDIR ?=
SBINDIR := $(PREFIX)/sbin
BINDIR  := $(PREFIX)/bin
DATADIR := $(PREFIX)/share/bosh-cm
DOCDIR  := $(PREFIX)/share/doc/bosh-cm
MANDIR  := $(PREFIX)/share/man

install: all man
	install -d $(DESTDIR)$(SBINDIR) $(DESTDIR)$(BINDIR) $(DESTDIR)$(DATADIR)/sql \
		$(DESTDIR)$(DOCDIR)/examples/nginx $(DESTDIR)$(DOCDIR)/examples/apache \
		$(DESTDIR)$(DOCDIR)/examples/logrotate $(DESTDIR)$(DOCDIR)/examples/systemd \
		$(DESTDIR)$(MANDIR)/man8 $(DESTDIR)$(MANDIR)/man5 $(DESTDIR)$(MANDIR)/man1
	install -m 755 $(B)/sessiond $(B)/bosh-handler $(B)/boshctl $(DESTDIR)$(SBINDIR)/
	install -m 755 $(B)/bosh-prebind tools/bosh-discovery $(DESTDIR)$(BINDIR)/
	install -m 644 sql/schema.sql sql/views.sql $(DESTDIR)$(DATADIR)/sql/
	install -m 644 conf/bosh.conf.example $(DESTDIR)$(DOCDIR)/examples/
	install -m 644 conf/nginx/*.conf $(DESTDIR)$(DOCDIR)/examples/nginx/
	install -m 644 conf/apache/* $(DESTDIR)$(DOCDIR)/examples/apache/
	install -m 644 conf/logrotate/bosh-sessiond $(DESTDIR)$(DOCDIR)/examples/logrotate/
	install -m 644 README.md $(DESTDIR)$(DOCDIR)/
	install -m 644 conf/systemd/bosh-sessiond.service conf/systemd/web-server-batch.conf \
		$(DESTDIR)$(DOCDIR)/examples/systemd/
	install -m 644 man/sessiond.8 man/bosh-handler.8 man/boshctl.8 $(DESTDIR)$(MANDIR)/man8/
	install -m 644 $(B)/man/man5/bosh.conf.5 $(DESTDIR)$(MANDIR)/man5/
	install -m 644 man/bosh-prebind.1 man/bosh-discovery.1 $(DESTDIR)$(MANDIR)/man1/

# A folder a web host serves, laid out for plain CGI: the handler as
# `http-bind`, sessiond beside it, a bosh.conf (kept if there is one) and
# .htaccess files that let the web reach http-bind and nothing else.
# CGI_HANDLER and CGI_SESSIOND pick other builds (the tests use the sanitizer ones).
CGI_HANDLER  ?= $(B)/bosh-handler
CGI_SESSIOND ?= $(B)/sessiond

install-cgi: $(CGI_HANDLER) $(CGI_SESSIOND)
	@[ -n "$(DIR)" ] || { echo "usage: make install-cgi DIR=~/public_html/chat" >&2; exit 2; }
	install -d $(DIR) $(DIR)/data
	install -m 755 $(CGI_HANDLER) $(DIR)/http-bind
	install -m 755 $(CGI_SESSIOND) $(DIR)/sessiond
	[ -e $(DIR)/bosh.conf ] || install -m 644 conf/apache/bosh-cgi.conf $(DIR)/bosh.conf
	[ -e $(DIR)/.htaccess ] || install -m 644 conf/apache/htaccess-cgi $(DIR)/.htaccess
	printf '# sessiond'"'"'s database, sockets and logs: not for the web\nRequire all denied\n' \
		> $(DIR)/data/.htaccess
	@echo "Now set backend.DOMAIN in $(DIR)/bosh.conf; the endpoint is that folder's URL + /http-bind."

clean:
	rm -rf $(B)
