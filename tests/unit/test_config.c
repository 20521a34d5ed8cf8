/* The configuration file: defaults, keys, and errors naming file, line and key. */
#define _POSIX_C_SOURCE 200809L
#include "check.h"
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

static char path[64];

static int load(const char *text, struct config *c, char *err, size_t errlen)
{
	snprintf(path, sizeof path, "/tmp/bosh-config-test-%d.conf", (int)getpid());
	FILE *f = fopen(path, "w");
	fputs(text, f);
	fclose(f);
	config_defaults(c);
	err[0] = 0;
	int rc = config_load(c, path, err, errlen);
	unlink(path);
	return rc;
}

static void test_defaults(void)
{
	struct config c;
	config_defaults(&c);
	CHECK(c.default_inactivity == 70);
	CHECK(c.max_inactivity == 160);
	CHECK(c.max_wait == 60);
	CHECK(c.max_hold == 1);
	CHECK(c.max_data_held == 100000);
	CHECK(c.window_size == 0); /* hold + 1 */
	CHECK(c.max_sessions_per_client == 200); /* a NAT's browsers fit, one address cannot take all */
	CHECK(c.max_memory == 256L * 1024 * 1024);
	CHECK(c.xmpp_keepalive_idle == 60 && c.xmpp_keepalive_interval == 10 &&
	      c.xmpp_keepalive_count == 6);
}

static void test_limits_and_keepalive(void)
{
	struct config c;
	char err[256];
	CHECK(load("max_memory = 8388608\nxmpp_keepalive = 30 5 3\n", &c, err, sizeof err) == 0);
	CHECK(c.max_memory == 8388608);
	CHECK(c.xmpp_keepalive_idle == 30 && c.xmpp_keepalive_interval == 5 && c.xmpp_keepalive_count == 3);
	CHECK(load("xmpp_keepalive = 0\n", &c, err, sizeof err) == 0);
	CHECK(c.xmpp_keepalive_idle == 0);
	CHECK(load("xmpp_keepalive = 120\n", &c, err, sizeof err) == 0);
	CHECK(c.xmpp_keepalive_idle == 120 && c.xmpp_keepalive_interval == 10 && c.xmpp_keepalive_count == 6);
	static const struct { const char *text, *want; } bad[] = {
		{ "max_memory = 1000\n", "key 'max_memory': out of range" },
		{ "xmpp_keepalive = 30 5\n", "key 'xmpp_keepalive': expected IDLE [INTERVAL COUNT]" },
		{ "xmpp_keepalive = 30 5 3 1\n", "key 'xmpp_keepalive': expected" },
		{ "xmpp_keepalive = soon\n", "key 'xmpp_keepalive': expected" },
		{ "xmpp_keepalive = 30 0 3\n", "key 'xmpp_keepalive': out of range" },
		{ "xmpp_keepalive = -1\n", "key 'xmpp_keepalive': out of range" },
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		CHECK(load(bad[i].text, &c, err, sizeof err) < 0);
		if (!strstr(err, bad[i].want)) {
			check_failed++;
			fprintf(stderr, "case %zu: got \"%s\", want \"%s\"\n", i, err, bad[i].want);
		}
	}
}

static void test_good(void)
{
	struct config c;
	char err[256];
	int rc = load("# comment\n\nmax_wait = 30\ndefault_wait=20\n"
	              "backend.example.org = 127.0.0.1:5222\nbackend.v6.example = [::1]:5223\n"
	              "database = db/sessions.db\nlog_file = /var/log/bosh.log\nlog_level = debug\n"
	              "fcgi_socket = 127.0.0.1:9000\n", &c, err, sizeof err);
	CHECK(rc == 0);
	CHECK(c.max_wait == 30 && c.default_wait == 20);
	CHECK(c.nbackends == 2);
	const struct config_backend *b = config_backend(&c, "EXAMPLE.org");
	CHECK(b != NULL);
	if (b) {
		CHECK_STR(b->host, "127.0.0.1");
		CHECK_STR(b->port, "5222");
	}
	b = config_backend(&c, "v6.example");
	CHECK(b && strcmp(b->host, "::1") == 0 && strcmp(b->port, "5223") == 0);
	CHECK(config_backend(&c, "other.org") == NULL);
	CHECK_STR(c.database, "/tmp/db/sessions.db"); /* relative to the file's folder */
	CHECK_STR(c.log_file, "/var/log/bosh.log");
	CHECK_STR(c.fcgi_socket, "127.0.0.1:9000");
	CHECK_STR(c.control_socket, "/tmp/sessiond.sock");
	CHECK(c.log_level == 3);
}

static void test_headers_and_cors(void)
{
	struct config c;
	char err[256];
	CHECK(load("header = X-A: one\nheader = X-B:two\ncors_origins = https://a.example *\n",
	           &c, err, sizeof err) == 0);
	CHECK_STR(c.extra_headers, "X-A: one\r\nX-B:two\r\n");
	CHECK_STR(c.cors_origins, "https://a.example *");
	CHECK(c.cors_max_age == 86400);
}

static void test_backend_options(void)
{
	struct config c;
	char err[256];
	static const char pin[] = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";
	char text[512];
	snprintf(text, sizeof text,
	         "backend.a.org = srv\nbackend.b.org = h:5223 directtls\n"
	         "backend.c.org = srv starttls pin-sha256=%s\nbackend.d.org = h:1\n"
	         "no_tls_domains = d.org\n", pin);
	CHECK(load(text, &c, err, sizeof err) == 0);
	const struct config_backend *a = config_backend(&c, "a.org"), *b = config_backend(&c, "b.org");
	const struct config_backend *cc = config_backend(&c, "c.org"), *d = config_backend(&c, "d.org");
	CHECK(a && a->host[0] == 0 && a->tls == TLS_DEFAULT);
	CHECK(b && strcmp(b->host, "h") == 0 && b->tls == TLS_DIRECT);
	CHECK(cc && cc->tls == TLS_STARTTLS && strcmp(cc->pin, pin) == 0);
	CHECK(d && d->tls == TLS_NONE); /* no_tls_domains applies whatever the order */
	CHECK(c.stanza_timeout == 60);
	CHECK(load("max_bosh_connections = 3\n", &c, err, sizeof err) == 0 && c.max_hold == 3);
}

static void test_errors(void)
{
	struct config c;
	char err[256];
	static const struct { const char *text, *want; } bad[] = {
		{ "max_wait = 30\nbogus = 1\n", ":2: key 'bogus': unknown key" },
		{ "max_wait = soon\n", ":1: key 'max_wait': not a number" },
		{ "max_wait = 0\n", ":1: key 'max_wait': out of range" },
		{ "max_hold = 9\n", ":1: key 'max_hold': out of range" },
		{ "window_size = 10\n", ":1: key 'window_size': out of range" },
		{ "\n\njust words\n", ":3: expected 'key = value'" },
		{ "log_level = loud\n", "key 'log_level'" },
		{ "backend.x.org = nohost\n", "key 'backend.x.org': expected HOST:PORT" },
		{ "backend.x.org = h:70000\n", "expected HOST:PORT" },
		{ "backend.x.org = h:1\nbackend.X.org = h:2\n", ":2: key 'backend.X.org': domain given twice" },
		{ "max_wait = 10\ndefault_wait = 20\n", "key 'default_wait': larger than max_wait" },
		{ "header = NoColon\n", "key 'header': expected 'Name: value'" },
		{ "header = Bad Name: x\n", "key 'header': header name" },
		{ "header = X-Ok: a\x01b\n", "key 'header': header value" },
		{ "backend.x.org = srv fast\n", "key 'backend.x.org': unknown option" },
		{ "backend.x.org = srv directtls\n", "directtls needs HOST:PORT" },
		{ "backend.x.org = h:1 pin-sha256=short\n", "unknown option" },
		{ "no_tls_domains = y.org\n", "key 'no_tls_domains': names a domain with no backend line" },
		{ "trusted_proxies = 127.0.0.1 localhost\n", "key 'trusted_proxies': expected addresses" },
		{ "trusted_proxies = 10.0.0.0/40\n", "key 'trusted_proxies': expected addresses" },
		{ "node_id = N1\n", "key 'node_id': expected 1 to 8 of a-z and 0-9" },
		{ "node_id = node12345\n", "key 'node_id': expected 1 to 8" },
		{ "node_id = n-1\n", "key 'node_id': expected" },
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		CHECK(load(bad[i].text, &c, err, sizeof err) < 0);
		if (!strstr(err, bad[i].want) || !strstr(err, "bosh-config-test-")) {
			check_failed++;
			fprintf(stderr, "case %zu: got \"%s\", want \"%s\"\n", i, err, bad[i].want);
		}
	}
	config_defaults(&c);
	CHECK(config_load(&c, "/nonexistent/bosh.conf", err, sizeof err) < 0);
	CHECK(strstr(err, "/nonexistent/bosh.conf") != NULL);
}

/* Shared hosting: paths from SetEnv/FcgidInitialEnv win over the file; ~/ is the user's home. */
static void test_env_and_home(void)
{
	struct config c;
	char err[256];
	setenv("BOSH_DATABASE", "data/env.db", 1);
	setenv("BOSH_CONTROL_SOCKET", "/srv/x/sessiond.sock", 1);
	setenv("BOSH_LOG_FILE", "", 1); /* empty: the file's value stays */
	CHECK(load("database = file.db\nlog_file = ~/logs/sessiond.log\nidle_exit = 600\n",
	           &c, err, sizeof err) == 0);
	CHECK_STR(c.database, "/tmp/data/env.db");
	CHECK_STR(c.control_socket, "/srv/x/sessiond.sock");
	CHECK(c.log_file[0] == '/' && strstr(c.log_file, "/logs/sessiond.log") != NULL &&
	      strncmp(c.log_file, "/tmp/", 5) != 0);
	CHECK(c.idle_exit == 600);
	unsetenv("BOSH_DATABASE");
	unsetenv("BOSH_CONTROL_SOCKET");
	unsetenv("BOSH_LOG_FILE");
	CHECK(load("idle_exit = -1\n", &c, err, sizeof err) < 0);
	config_defaults(&c);
	CHECK(c.idle_exit == 0);
}

/* SIGHUP: the reloadable keys change, the others are named and wait. */
static void test_reload(void)
{
	struct config cur, next;
	char err[256], changed[512], later[512];
	CHECK(load("log_level = debug\nmax_wait = 90\ndatabase = /var/lib/a.db\n"
	           "backend.a.test = 127.0.0.1:5222\nbackend.b.test = 127.0.0.1:5223\n", &cur, err,
	           sizeof err) == 0);
	CHECK(load("log_level = info\nmax_wait = 90\ndatabase = /var/lib/b.db\nmax_bosh_connections = 2\n"
	           "backend.a.test = 127.0.0.1:5222 plain\nbackend.c.test = 127.0.0.1:5224\n"
	           "header = X-New: 1\ncors_origins = https://x.example\n", &next, err, sizeof err) == 0);
	config_reload(&cur, &next, changed, sizeof changed, later, sizeof later);
	CHECK_STR(changed, "database log_level max_hold cors_origins backend.a.test backend.c.test "
	                   "backend.b.test header");
	CHECK_STR(later, "database");
	CHECK(cur.log_level == 2 && cur.max_hold == 2);
	CHECK_STR(cur.database, "/var/lib/a.db");
	CHECK_STR(cur.cors_origins, "https://x.example");
	CHECK_STR(cur.extra_headers, "X-New: 1\r\n");
	CHECK(cur.nbackends == 2 && config_backend(&cur, "c.test") && !config_backend(&cur, "b.test"));
	CHECK(config_backend(&cur, "a.test")->tls == TLS_NONE);
	config_reload(&cur, &next, changed, sizeof changed, later, sizeof later);
	CHECK_STR(changed, "database"); /* still waiting for a restart */
	/* a long list is cut, never overflowed */
	char small[24], small2[24];
	CHECK(load("database = /x\n", &next, err, sizeof err) == 0);
	config_defaults(&cur);
	config_reload(&cur, &next, small, sizeof small, small2, sizeof small2);
	CHECK(strlen(small) < sizeof small);
}

int main(void)
{
	test_reload();
	test_env_and_home();
	test_defaults();
	test_good();
	test_errors();
	test_limits_and_keepalive();
	test_headers_and_cors();
	test_backend_options();
	return check_summary("config");
}
