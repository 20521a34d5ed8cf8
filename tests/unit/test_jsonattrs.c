/* stream_attrs: a flat JSON object of strings, made into XML attributes. */
#include "check.h"
#include "jsonattrs.h"

static void test_good(void)
{
	char out[256];
	const char *why = NULL;
	CHECK(json_attrs("{}", out, sizeof out, &why) == 0);
	CHECK_STR(out, "");
	CHECK(json_attrs(" { \"a\" : \"1\" , \"b-c.d\":\"x'y<z&\\\"w\" } ", out, sizeof out, &why) == 0);
	CHECK_STR(out, " a='1' b-c.d='x&apos;y&lt;z&amp;&quot;w'");
	CHECK(json_attrs("{\"u\":\"\\u00e9\\ud83d\\ude00\\n\"}", out, sizeof out, &why) == 0);
	CHECK_STR(out, " u='\xc3\xa9\xf0\x9f\x98\x80&#10;'");
	/* raw UTF-8 passes as it is */
	CHECK(json_attrs("{\"r\":\"\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\"}", out, sizeof out, &why) == 0);
	CHECK_STR(out, " r='\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80'");
}

static void test_bad(void)
{
	char out[32];
	static const char *const bad[] = {
		"", "[]", "{", "{\"a\":1}", "{\"a\":\"b\"", "{\"a\" \"b\"}", "{\"a\":\"b\",}x",
		"{\"to\":\"x\"}", "{\"version\":\"2\"}", "{\"xmlns\":\"x\"}", "{\"xml:lang\":\"x\"}",
		"{\"a:b\":\"x\"}", "{\"1a\":\"x\"}", "{\"a\":\"\\u0000\"}", "{\"a\":\"\\ud800\"}",
		"{\"a\":\"\\x\"}", "{\"a\":\"\x01\"}", "{\"a\":{\"b\":\"c\"}}", "{\"a\":\"b\"} x",
		"{\"a\":\"0123456789012345678901234567890123456789\"}", /* longer than out */
		/* raw bytes that are not UTF-8 an XML parser would take */
		"{\"a\":\"\xff\"}", "{\"a\":\"\xc4\xc4\"}", "{\"a\":\"\xc0\xaf\"}",
		"{\"a\":\"\xed\xa0\x80\"}", "{\"a\":\"\xef\xbf\xbf\"}", "{\"a\":\"\xf4\x90\x80\x80\"}",
		"{\"a\":\"\\uffff\"}", "{\"a\":\"\\ufffe\"}", /* escaped non-characters too */
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		const char *why = NULL;
		if (json_attrs(bad[i], out, sizeof out, &why) == 0 || !why) {
			check_failed++;
			fprintf(stderr, "accepted: %s\n", bad[i]);
		} else {
			check_passed++;
		}
	}
}

int main(void)
{
	test_good();
	test_bad();
	return check_summary("jsonattrs");
}
