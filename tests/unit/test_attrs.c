/* The checks a request's attributes pass before sessiond uses them, and the
 * bounded buffer every answer and stream header is built in. */
#define _POSIX_C_SOURCE 200809L
#include "attrs.h"
#include "buf.h"
#include "check.h"

#include <stdlib.h>

static char *repeat(char c, size_t n)
{
	char *s = malloc(n + 1);
	memset(s, c, n);
	s[n] = 0;
	return s;
}

static void test_lang(void)
{
	static const char *const good[] = { "en", "EN", "de-CH", "zh-Hant-TW", "x-klingon", "sgn-BE-FR",
	                                     "en-US-x-twain", "i-klingon", "es-419" };
	static const char *const bad[] = { "", "-en", "en-", "en--US", "e n", "en_US", "'en'", "en\n",
	                                   "1en", "toolongsubtag-en", "en-abcdefghi", "\xc3\xa9n" };
	for (size_t i = 0; i < sizeof good / sizeof good[0]; i++)
		CHECK(attr_lang_ok(good[i]));
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
		if (attr_lang_ok(bad[i]))
			check_failed++, fprintf(stderr, "xml:lang '%s' taken\n", bad[i]);
	CHECK(!attr_lang_ok(NULL));
	/* the crash of old: a 3,000 byte xml:lang; now refused well before */
	char *big = repeat('a', 3000);
	for (size_t i = 8; i < 3000; i += 9)
		big[i] = '-';
	CHECK(!attr_lang_ok(big));
	free(big);
	char *edge = repeat('a', ATTR_LANG_MAX);
	for (size_t i = 8; i < ATTR_LANG_MAX; i += 9)
		edge[i] = '-';
	CHECK(attr_lang_ok(edge)); /* 64 bytes, subtags of 8 and 1 */
	free(edge);
}

static void test_ver_and_numbers(void)
{
	CHECK(attr_ver_ok("1.6"));
	CHECK(attr_ver_ok("1.11"));
	CHECK(attr_ver_ok("9999.9999"));
	CHECK(!attr_ver_ok("1"));
	CHECK(!attr_ver_ok("1."));
	CHECK(!attr_ver_ok(".6"));
	CHECK(!attr_ver_ok("1.6.1"));
	CHECK(!attr_ver_ok("1.6 "));
	CHECK(!attr_ver_ok("+1.6"));
	CHECK(!attr_ver_ok("10000.1"));
	CHECK(!attr_ver_ok(NULL));

	CHECK(attr_number("0") == 0);
	CHECK(attr_number("60") == 60);
	CHECK(attr_number("999999999") == 999999999);
	CHECK(attr_number("1000000000") == -1); /* 10 digits */
	CHECK(attr_number("99999999999999999999999") == -1); /* atol() overflowed here */
	CHECK(attr_number("-1") == -1);
	CHECK(attr_number("+1") == -1);
	CHECK(attr_number(" 1") == -1);
	CHECK(attr_number("1x") == -1);
	CHECK(attr_number("") == -1);
	CHECK(attr_number(NULL) == -1);
}

static void test_header_safe(void)
{
	CHECK(attr_header_safe("text/xml; charset=utf-8", ATTR_CONTENT_MAX));
	CHECK(!attr_header_safe("text/xml\r\nSet-Cookie: a=b", ATTR_CONTENT_MAX));
	CHECK(!attr_header_safe("text/\x7fxml", ATTR_CONTENT_MAX));
	CHECK(!attr_header_safe("text/\xc3\xa9", ATTR_CONTENT_MAX));
	char *big = repeat('a', ATTR_CONTENT_MAX + 1);
	CHECK(!attr_header_safe(big, ATTR_CONTENT_MAX));
	big[ATTR_CONTENT_MAX] = 0;
	CHECK(attr_header_safe(big, ATTR_CONTENT_MAX));
	free(big);
}

static struct frame_request with(const char *name, const char *value)
{
	struct frame_request fr = { .nattrs = 2 };
	fr.attrs[0] = (struct frame_attr){ "rid", "1000" };
	fr.attrs[1] = (struct frame_attr){ name, value };
	return fr;
}

static void test_creation(void)
{
	char why[160];
	struct frame_request fr = with("to", "example.org");
	CHECK(attrs_check_creation(&fr, why, sizeof why) == 0);
	static const char *const refused[][2] = {
		{ "xml:lang", "en US" }, { "ver", "1.6'" }, { "wait", "99999999999999999999" },
		{ "hold", "-1" }, { "pause", "10s" }, { "content", "text/html\r\nX: y" },
		{ "from", "\xff@example.org" },
	};
	for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++) {
		fr = with(refused[i][0], refused[i][1]);
		why[0] = 0;
		if (attrs_check_creation(&fr, why, sizeof why) == 0)
			check_failed++, fprintf(stderr, "%s='%s' taken\n", refused[i][0], refused[i][1]);
		else
			CHECK(strstr(why, refused[i][0]) != NULL); /* the log line names it */
	}
	char *from = repeat('a', ATTR_FROM_MAX + 1);
	fr = with("from", from);
	CHECK(attrs_check_creation(&fr, why, sizeof why) < 0);
	free(from);
	/* a request on a session checks what it may use */
	fr = with("xml:lang", "en\"");
	CHECK(attrs_check_request(&fr, why, sizeof why) < 0);
	fr = with("ver", "junk"); /* meaningless after creation: not looked at */
	CHECK(attrs_check_request(&fr, why, sizeof why) == 0);
}

static void test_buf(void)
{
	struct buf b = { 0 };
	char *big = repeat('x', 5000);
	CHECK(buf_printf(&b, "<a%s", "") == 0);
	CHECK(buf_attr(&b, "v", big) == 0);            /* longer than any old fixed buffer */
	CHECK(buf_printf(&b, " n='%d'/>", 42) == 0);
	CHECK(b.len == 2 + 4 + 5000 + 1 + 9);
	CHECK(memcmp(b.data + b.len - 9, " n='42'/>", 9) == 0);
	buf_free(&b);
	CHECK(buf_printf(&b, "%s", big) == 0 && b.len == 5000); /* from empty, in one call */
	buf_free(&b);
	CHECK(buf_attr(&b, "q", "a'b\"c<d>e&f") == 0);
	CHECK_MEM(b.data, b.len, " q='a&apos;b&quot;c&lt;d>e&amp;f'");
	CHECK(buf_attr(&b, "none", NULL) == 0);
	CHECK(b.len == strlen(" q='a&apos;b&quot;c&lt;d>e&amp;f'"));
	buf_free(&b);
	/* numbers without printf, the extremes included */
	CHECK(buf_u64(&b, 0) == 0 && buf_lit(&b, " ") == 0 && buf_u64(&b, 18446744073709551615ull) == 0 &&
	      buf_lit(&b, " ") == 0 && buf_u64(&b, 200) == 0);
	CHECK_MEM(b.data, b.len, "0 18446744073709551615 200");
	buf_free(&b);
	free(big);
}

int main(void)
{
	test_lang();
	test_ver_and_numbers();
	test_header_safe();
	test_creation();
	test_buf();
	return check_summary("attrs");
}
