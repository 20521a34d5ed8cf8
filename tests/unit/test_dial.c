/* SRV target order (RFC 2782): priority first, then weighted random. */
#define _DEFAULT_SOURCE
#include "check.h"
#include "dial.h"

#include <stdlib.h>
#include <string.h>

static struct dial_target t(const char *host, unsigned prio, unsigned weight)
{
	struct dial_target d = { .priority = (uint16_t)prio, .weight = (uint16_t)weight };
	strcpy(d.host, host);
	return d;
}

static void test_priority(void)
{
	struct dial_target v[] = { t("c", 20, 5), t("a", 10, 0), t("b", 10, 0), t("d", 30, 1), t("z", 0, 0) };
	dial_order_targets(v, 5, random);
	CHECK_STR(v[0].host, "z");
	CHECK(v[1].priority == 10 && v[2].priority == 10);
	CHECK_STR(v[3].host, "c");
	CHECK_STR(v[4].host, "d");
	/* weight 0 everywhere: the order given stays */
	CHECK_STR(v[1].host, "a");
	CHECK_STR(v[2].host, "b");
}

static void test_weights(void)
{
	int heavy_first = 0, zero_first = 0;
	srandom(1);
	for (int i = 0; i < 10000; i++) {
		struct dial_target v[] = { t("light", 5, 10), t("heavy", 5, 90) };
		dial_order_targets(v, 2, random);
		heavy_first += strcmp(v[0].host, "heavy") == 0;
		struct dial_target w[] = { t("weighted", 5, 100), t("zero", 5, 0) };
		dial_order_targets(w, 2, random);
		zero_first += strcmp(w[0].host, "zero") == 0;
	}
	/* 90 of 100 (RFC 2782's running sum over 0..total: 90/101) */
	CHECK(heavy_first > 8500 && heavy_first < 9300);
	/* a zero weight is first only when the draw is 0: about 1 in 101 */
	CHECK(zero_first > 30 && zero_first < 250);
}

static void test_empty_and_one(void)
{
	struct dial_target v[] = { t("only", 3, 7) };
	dial_order_targets(v, 0, random);
	dial_order_targets(v, 1, random);
	CHECK_STR(v[0].host, "only");
}

int main(void)
{
	test_priority();
	test_weights();
	test_empty_and_one();
	return check_summary("dial");
}
