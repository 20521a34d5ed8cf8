/* The rid window (XEP-0124 §14.1) and the answer cache for repeated rids. */
#include "check.h"
#include "ridwin.h"

static void test_check(void)
{
	/* window 2 (hold 1): next and next+1 are acceptable */
	CHECK(rid_check(100, 100, 2) == RID_NEXT);
	CHECK(rid_check(100, 101, 2) == RID_AHEAD);
	CHECK(rid_check(100, 102, 2) == RID_OUTSIDE);
	CHECK(rid_check(100, 99, 2) == RID_REPEAT);
	CHECK(rid_check(100, 98, 2) == RID_REPEAT);
	CHECK(rid_check(100, 97, 2) == RID_OUTSIDE);
	CHECK(rid_check(100, 1, 2) == RID_OUTSIDE);
	/* window 1: nothing ahead */
	CHECK(rid_check(100, 101, 1) == RID_OUTSIDE);
	CHECK(rid_check(100, 99, 1) == RID_REPEAT);
	/* far values must not overflow */
	CHECK(rid_check(1, ((int64_t)1 << 53) - 1, 5) == RID_OUTSIDE);
	CHECK(rid_check(((int64_t)1 << 53) - 1, 1, 5) == RID_OUTSIDE);
}

static void test_parse(void)
{
	CHECK(rid_parse("1") == 1);
	CHECK(rid_parse("9007199254740991") == 9007199254740991LL);
	CHECK(rid_parse("9007199254740992") == -1);
	CHECK(rid_parse("0") == -1);
	CHECK(rid_parse("") == -1);
	CHECK(rid_parse(NULL) == -1);
	CHECK(rid_parse("-5") == -1);
	CHECK(rid_parse("12a") == -1);
	CHECK(rid_parse(" 12") == -1);
	CHECK(rid_parse("99999999999999999999") == -1);
}

static void test_cache(void)
{
	struct ridwin w;
	const char *body;
	size_t len;
	ridwin_init(&w, 2);
	CHECK(ridwin_get(&w, 5, &body, &len) == 0);
	CHECK(ridwin_put(&w, 5, "<a/>", 4, 0) == 0);
	CHECK(ridwin_put(&w, 6, NULL, 0, 0) == 0);
	CHECK(ridwin_get(&w, 5, &body, &len) == 1);
	CHECK_MEM(body, len, "<a/>");
	CHECK(ridwin_get(&w, 6, &body, &len) == 1 && body == NULL);
	/* the third answer pushes out the first */
	CHECK(ridwin_put(&w, 7, "<c/>", 4, 0) == 0);
	CHECK(ridwin_get(&w, 5, &body, &len) == 0);
	CHECK(ridwin_get(&w, 6, &body, &len) == 1);
	CHECK(ridwin_get(&w, 7, &body, &len) == 1);
	CHECK_MEM(body, len, "<c/>");
	for (int i = 8; i < 100; i++)
		CHECK(ridwin_put(&w, i, "<x/>", 4, (uint64_t)i) == 0);
	CHECK(ridwin_get(&w, 99, &body, &len) == 1);
	CHECK(ridwin_get(&w, 98, &body, &len) == 1);
	CHECK(ridwin_get(&w, 97, &body, &len) == 0);
	const struct ridwin_entry *e = ridwin_find(&w, 99);
	CHECK(e && e->sent_at == 99);
	ridwin_clear(&w);
	CHECK(ridwin_get(&w, 99, &body, &len) == 0);
	/* acknowledged answers are forgotten, oldest first */
	ridwin_init(&w, 5);
	for (int i = 10; i < 15; i++)
		CHECK(ridwin_put(&w, i, "<y/>", 4, 0) == 0);
	ridwin_ack(&w, 12);
	CHECK(w.n == 2 && !ridwin_find(&w, 12) && ridwin_find(&w, 13) && ridwin_find(&w, 14));
	ridwin_ack(&w, 100);
	CHECK(w.n == 0);
	CHECK(ridwin_put(&w, 20, "<z/>", 4, 0) == 0 && ridwin_find(&w, 20));
	ridwin_clear(&w);
	ridwin_init(&w, 1000); /* clamped to RIDWIN_MAX */
	CHECK(w.cap == RIDWIN_MAX);
	ridwin_clear(&w);
}

int main(void)
{
	test_check();
	test_parse();
	test_cache();
	return check_summary("ridwin");
}
