/* Where a session may connect: the domain's backend, or an allowed route. */
#define _POSIX_C_SOURCE 200809L
#include "check.h"
#include "route.h"

static struct config_backend backend(const char *host, const char *port)
{
	struct config_backend b = { .tls = TLS_DEFAULT };
	strcpy(b.domain, "example.org");
	strcpy(b.host, host);
	strcpy(b.port, port);
	return b;
}

static const char *choose(const char *route, const struct config_backend *be, const char *allowed,
                          char *host, unsigned *port)
{
	*port = 0;
	return route_choose(route, be, allowed, host, 256, port);
}

static void test_no_route(void)
{
	char host[256];
	unsigned port;
	struct config_backend be = backend("10.0.0.5", "5222"), srv = backend("", "");
	CHECK(choose(NULL, &be, "", host, &port) == NULL);
	CHECK_STR(host, "10.0.0.5");
	CHECK(port == 5222);
	CHECK(choose("", &srv, "", host, &port) == NULL);
	CHECK_STR(host, ""); /* SRV lookup of the domain */
}

static void test_routes(void)
{
	char host[256];
	unsigned port;
	struct config_backend be = backend("10.0.0.5", "5222");
	const char *allowed = "xmpp:xmpp2.example.org:5222, 10.0.0.9:5269 [::1]:5222";
	/* the domain's own backend is always allowed */
	CHECK(choose("xmpp:10.0.0.5:5222", &be, "", host, &port) == NULL && port == 5222);
	/* listed targets, with or without the xmpp: prefix in the list, any case */
	CHECK(choose("xmpp:XMPP2.example.org:5222", &be, allowed, host, &port) == NULL);
	CHECK_STR(host, "XMPP2.example.org");
	CHECK(choose("xmpp:10.0.0.9:5269", &be, allowed, host, &port) == NULL && port == 5269);
	/* anything else: host-unknown, never a connection (no SSRF) */
	static const char *const refused[] = { "xmpp:169.254.169.254:80", "xmpp:10.0.0.5:22",
	                                       "xmpp:xmpp2.example.org:5223", "xmpp:localhost:5222" };
	for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++)
		CHECK_STR(choose(refused[i], &be, allowed, host, &port), "host-unknown");
	/* malformed: improper-addressing */
	static const char *const bad[] = { "10.0.0.5:5222", "xmpp:", "xmpp:host", "xmpp:host:", "xmpp:host:0",
	                                   "xmpp:host:70000", "xmpp::5222", "xmpp:a b:5222", "http:host:80",
	                                   "xmpp:a:b:5222", "xmpp:host:52x" };
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
		CHECK_STR(choose(bad[i], &be, allowed, host, &port), "improper-addressing");
}

/* XEP-0124 §7.1: a manager serving a defined list of domains may ignore
 * 'route'. One naming the 'to' domain itself (gloox sends xmpp:DOMAIN:5222)
 * gets the domain's backend; nothing else widens where we connect. */
static void test_route_naming_the_domain(void)
{
	char host[256];
	unsigned port;
	struct config_backend be = backend("10.0.0.5", "5999"), srv = backend("", "");
	static const char *const same[] = { "xmpp:example.org:5222", "xmpp:EXAMPLE.org:5222",
	                                    "xmpp:example.org:5269", "xmpp:example.org:1" };
	for (size_t i = 0; i < sizeof same / sizeof same[0]; i++) {
		CHECK(choose(same[i], &be, "", host, &port) == NULL);
		CHECK_STR(host, "10.0.0.5"); /* the backend, never the route's port */
		CHECK(port == 5999);
	}
	CHECK(choose("xmpp:example.org:5222", &srv, "", host, &port) == NULL);
	CHECK_STR(host, ""); /* an SRV backend stays an SRV lookup */
	/* allowed_routes naming the domain at a port still means that target */
	CHECK(choose("xmpp:example.org:5223", &be, "example.org:5223", host, &port) == NULL);
	CHECK_STR(host, "example.org");
	CHECK(port == 5223);
	/* other names, however close, are refused */
	static const char *const refused[] = { "xmpp:sub.example.org:5222", "xmpp:example.org.evil.test:5222",
	                                       "xmpp:example.or:5222", "xmpp:xexample.org:5222",
	                                       "xmpp:example.org.:5222", "xmpp:[::1]:5222" };
	for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++)
		CHECK_STR(choose(refused[i], &be, "", host, &port), "host-unknown");
	/* malformed stays malformed */
	static const char *const bad[] = { "xmpp:example.org:", "xmpp:example.org:0", "xmpp:example.org:70000",
	                                   "example.org:5222", "xmpp:example.org" };
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
		CHECK_STR(choose(bad[i], &be, "", host, &port), "improper-addressing");
}

static void test_domains(void)
{
	CHECK(route_valid_domain("example.org"));
	CHECK(route_valid_domain("xn--bcher-kva.example"));
	CHECK(route_valid_domain("b\xc3\xbc" "cher.example"));
	CHECK(!route_valid_domain(""));
	CHECK(!route_valid_domain(NULL));
	CHECK(!route_valid_domain("a/b"));
	CHECK(!route_valid_domain("a b"));
	CHECK(!route_valid_domain("user@example.org"));
	char long_name[300];
	memset(long_name, 'a', 299);
	long_name[299] = 0;
	CHECK(!route_valid_domain(long_name));
}

int main(void)
{
	test_no_route();
	test_routes();
	test_route_naming_the_domain();
	test_domains();
	return check_summary("route");
}
