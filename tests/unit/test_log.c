/* The log: bytes from outside cannot forge a line, a link is not followed,
 * a rotated file is reopened, a flood is cut down to a count. */
#define _POSIX_C_SOURCE 200809L
#include "check.h"
#include "log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char dir[64], path[128];

static char *slurp(const char *p)
{
	static char buf[65536];
	FILE *f = fopen(p, "r");
	size_t n = f ? fread(buf, 1, sizeof buf - 1, f) : 0;
	if (f)
		fclose(f);
	buf[n] = 0;
	return buf;
}

static int count(const char *hay, const char *needle)
{
	int n = 0;
	for (const char *p = hay; (p = strstr(p, needle)); p++)
		n++;
	return n;
}

static void test_escaping(void)
{
	unlink(path);
	CHECK(log_open("test", path, LOG_DEBUG) == 0);
	log_info("to '%s' ua '%s'", "evil\n2026-01-01T00:00:00Z test[1] error: forged", "\x1b[31m\x7f\t\r");
	const char *text = slurp(path);
	CHECK(count(text, "\n") == 1);
	CHECK(strstr(text, "to 'evil\\x0a2026-01-01T00:00:00Z test[1] error: forged' ua '\\x1b[31m\\x7f\\x09\\x0d'\n") != NULL);
	/* a long message full of control bytes is cut, still one line */
	char big[3000];
	memset(big, '\n', sizeof big - 1);
	big[sizeof big - 1] = 0;
	log_info("%s", big);
	text = slurp(path);
	CHECK(count(text, "\n") == 2);
}

static void test_link_not_followed(void)
{
	char victim[160], link[160];
	snprintf(victim, sizeof victim, "%s/victim", dir);
	snprintf(link, sizeof link, "%s/link.log", dir);
	FILE *f = fopen(victim, "w");
	fputs("precious\n", f);
	fclose(f);
	CHECK(symlink(victim, link) == 0);
	CHECK(log_open("test", link, LOG_INFO) == -1); /* the reason goes to stderr */
	log_info("must not reach the victim");
	CHECK_STR(slurp(victim), "precious\n");
	unlink(link);
	unlink(victim);
}

static void test_reopen(void)
{
	char rotated[160];
	snprintf(rotated, sizeof rotated, "%s.1", path);
	unlink(path);
	CHECK(log_open("test", path, LOG_INFO) == 0);
	log_info("before");
	CHECK(rename(path, rotated) == 0);
	CHECK(log_reopen() > 2);
	log_info("after");
	CHECK(strstr(slurp(rotated), "before") && !strstr(slurp(rotated), "after"));
	CHECK(strstr(slurp(path), "after") && !strstr(slurp(path), "before"));
	unlink(rotated);
	/* stderr: nothing to reopen */
	CHECK(log_open("test", "-", LOG_INFO) == 0);
	CHECK(log_reopen() == 2);
}

static int suppress_calls;
static void on_suppress(void) { suppress_calls++; }

static void test_rate_limit(void)
{
	unlink(path);
	CHECK(log_open("test", path, LOG_INFO) == 0);
	log_on_suppress(on_suppress);
	for (int i = 0; i < 100; i++)
		log_limited(LOG_INFO, "unknown sid", "unknown session '%d'", i);
	log_flush_suppressed();
	const char *text = slurp(path);
	int lines = count(text, "unknown session '");
	CHECK(lines >= LOG_LIMIT_BURST && lines <= LOG_LIMIT_BURST + 1); /* a refill during the loop */
	char want[96];
	snprintf(want, sizeof want, "suppressed %d similar lines (unknown sid)", 100 - lines);
	CHECK(strstr(text, want) != NULL);
	CHECK(suppress_calls == 1);
	/* nothing more to report: no second line */
	log_flush_suppressed();
	CHECK(count(slurp(path), "suppressed") == 1);
	/* below the threshold: not even counted */
	log_open("test", path, LOG_WARN);
	for (int i = 0; i < 100; i++)
		log_limited(LOG_INFO, "quiet", "never %d", i);
	log_flush_suppressed();
	CHECK(count(slurp(path), "quiet") == 0);
}

int main(void)
{
	snprintf(dir, sizeof dir, "/tmp/bosh-log-test-XXXXXX");
	if (!mkdtemp(dir))
		return 1;
	snprintf(path, sizeof path, "%s/test.log", dir);
	test_escaping();
	test_link_not_followed();
	test_reopen();
	test_rate_limit();
	unlink(path);
	rmdir(dir);
	return check_summary("log");
}
