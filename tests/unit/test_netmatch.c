/* Addresses against trusted_proxies-style lists. */
#define _DEFAULT_SOURCE
#include "check.h"
#include "netmatch.h"

#include <arpa/inet.h>
#include <netinet/in.h>

static struct sockaddr_storage addr(const char *text)
{
	struct sockaddr_storage sa = { 0 };
	struct sockaddr_in *v4 = (struct sockaddr_in *)&sa;
	struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)&sa;
	if (inet_pton(AF_INET, text, &v4->sin_addr) == 1)
		v4->sin_family = AF_INET;
	else if (inet_pton(AF_INET6, text, &v6->sin6_addr) == 1)
		v6->sin6_family = AF_INET6;
	return sa;
}

static int match(const char *list, const char *a)
{
	struct sockaddr_storage sa = addr(a);
	return netlist_match(list, &sa);
}

static void test_valid(void)
{
	CHECK(netlist_valid("") == 0);
	CHECK(netlist_valid("127.0.0.0/8 ::1") == 0);
	CHECK(netlist_valid(" 10.1.2.3, 2001:db8::/32\t192.168.0.0/16 ") == 0);
	CHECK(netlist_valid("0.0.0.0/0 ::/0") == 0);
	CHECK(netlist_valid("10.0.0.0/33") == -1);
	CHECK(netlist_valid("::/129") == -1);
	CHECK(netlist_valid("10.0.0.0/") == -1);
	CHECK(netlist_valid("10.0.0.0/-1") == -1);
	CHECK(netlist_valid("10.0.0.0/8x") == -1);
	CHECK(netlist_valid("localhost") == -1);
	CHECK(netlist_valid("10.0.0.256") == -1);
	CHECK(netlist_valid("127.0.0.1 nonsense") == -1);
	char longest[200];
	memset(longest, '1', sizeof longest - 1);
	longest[sizeof longest - 1] = 0;
	CHECK(netlist_valid(longest) == -1);
}

static void test_match(void)
{
	const char *def = "127.0.0.0/8 ::1";
	CHECK(match(def, "127.0.0.1") == 1);
	CHECK(match(def, "127.255.0.9") == 1);
	CHECK(match(def, "128.0.0.1") == 0);
	CHECK(match(def, "::1") == 1);
	CHECK(match(def, "::2") == 0);
	CHECK(match(def, "::ffff:127.0.0.1") == 1); /* IPv4-mapped */
	CHECK(match(def, "::ffff:10.0.0.1") == 0);
	CHECK(match("10.1.2.3", "10.1.2.3") == 1);
	CHECK(match("10.1.2.3", "10.1.2.4") == 0);
	CHECK(match("192.168.0.0/23", "192.168.1.200") == 1);
	CHECK(match("192.168.0.0/23", "192.168.2.1") == 0);
	CHECK(match("2001:db8::/32", "2001:db8:ffff::1") == 1);
	CHECK(match("2001:db8::/33", "2001:db8:8000::1") == 0);
	CHECK(match("0.0.0.0/0", "203.0.113.9") == 1);
	CHECK(match("0.0.0.0/0", "2001:db8::1") == 0); /* IPv4 networks match IPv4 only */
	CHECK(match("", "127.0.0.1") == 0);
	CHECK(match("bogus 10.0.0.1", "10.0.0.1") == 1); /* a bad entry matches nothing */
	struct sockaddr_storage unix_sa = { .ss_family = AF_UNIX };
	CHECK(netlist_match("0.0.0.0/0 ::/0", &unix_sa) == 0);
}

int main(void)
{
	test_valid();
	test_match();
	return check_summary("netmatch");
}
