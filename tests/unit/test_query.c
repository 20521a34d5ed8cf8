/* Bodies in GET query strings: node-xmpp-bosh's data/callback, Openfire's script form. */
#include "check.h"
#include "query.h"

static void test_data_and_callback(void)
{
	char out[256];
	struct query_body q;
	const char *why = NULL;
	CHECK(query_body("data=%3Cbody%20rid%3D'1'%2F%3E&callback=cb_1.x", out, sizeof out, &q, &why) == 0);
	CHECK_MEM(out, q.len, "<body rid='1'/>");
	CHECK_STR(q.callback, "cb_1.x");
	CHECK(q.script == 0);
	CHECK(query_body("callback=f&data=a+b%2b", out, sizeof out, &q, &why) == 0);
	CHECK_MEM(out, q.len, "a b+");
	CHECK_STR(q.callback, "f");
	CHECK(query_body("data=x", out, sizeof out, &q, &why) == 0 && q.callback[0] == 0);
}

static void test_script_form(void)
{
	char out[256];
	struct query_body q;
	const char *why = NULL;
	CHECK(query_body("%3Cbody%20sid%3D'abc'%2F%3E", out, sizeof out, &q, &why) == 0);
	CHECK_MEM(out, q.len, "<body sid='abc'/>");
	CHECK(q.script == 1);
}

static void test_hostile(void)
{
	char out[8];
	struct query_body q;
	const char *why = NULL;
	static const char *const bad[] = {
		"data=%zz", "data=%4", "data=%", "data=123456789",  /* bad escapes, too long */
		"data=x&callback=alert(1)", "data=x&callback=9a", "data=x&callback=",
		"data=x&callback=a%3Cb", "%4", "123456789",
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		why = NULL;
		if (query_body(bad[i], out, sizeof out, &q, &why) == 0 || !why) {
			check_failed++;
			fprintf(stderr, "accepted: %s\n", bad[i]);
		} else {
			check_passed++;
		}
	}
	char cb[80];
	memset(cb, 'a', sizeof cb);
	memcpy(cb, "data=x&callback=", 16);
	cb[sizeof cb - 1] = 0; /* a 63-character name fits */
	char big[256];
	CHECK(query_body(cb, big, sizeof big, &q, &why) == 0);
	char cb2[120];
	memset(cb2, 'a', sizeof cb2);
	memcpy(cb2, "data=x&callback=", 16);
	cb2[sizeof cb2 - 1] = 0; /* 103 characters: too long */
	CHECK(query_body(cb2, big, sizeof big, &q, &why) < 0);
}

int main(void)
{
	test_data_and_callback();
	test_script_form();
	test_hostile();
	return check_summary("query");
}
