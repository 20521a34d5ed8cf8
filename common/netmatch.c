/* netmatch.c - addresses against a list of networks (see netmatch.h). */
#define _DEFAULT_SOURCE
#include "netmatch.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* An address as 16 bytes (IPv4 mapped into ::ffff:0:0/96) and the prefix
 * length that applies to it, so one comparison serves both families. */
struct net {
	uint8_t a[16];
	unsigned bits;
};

static void map4(uint8_t out[16], const void *v4)
{
	memset(out, 0, 10);
	out[10] = out[11] = 0xff;
	memcpy(out + 12, v4, 4);
}

/* One entry, at most len bytes of s; -1 if it is not an address or network. */
static int parse_entry(const char *s, size_t len, struct net *n)
{
	char text[INET6_ADDRSTRLEN + 8];
	if (len == 0 || len >= sizeof text)
		return -1;
	memcpy(text, s, len);
	text[len] = 0;
	char *slash = strchr(text, '/');
	long bits = -1;
	if (slash) {
		char *end;
		*slash = 0;
		if (!slash[1] || slash[1] == '-' || slash[1] == '+')
			return -1;
		bits = strtol(slash + 1, &end, 10);
		if (*end)
			return -1;
	}
	uint8_t v4[4];
	if (inet_pton(AF_INET, text, v4) == 1) {
		if (bits > 32)
			return -1;
		map4(n->a, v4);
		n->bits = 96 + (unsigned)(bits < 0 ? 32 : bits);
		return 0;
	}
	if (inet_pton(AF_INET6, text, n->a) == 1) {
		if (bits > 128)
			return -1;
		n->bits = (unsigned)(bits < 0 ? 128 : bits);
		return 0;
	}
	return -1;
}

static int in_net(const uint8_t a[16], const struct net *n)
{
	unsigned full = n->bits / 8, rest = n->bits % 8;
	if (memcmp(a, n->a, full) != 0)
		return 0;
	if (rest == 0)
		return 1;
	uint8_t mask = (uint8_t)(0xff << (8 - rest));
	return (a[full] & mask) == (n->a[full] & mask);
}

static const char SEP[] = " \t,";

int netlist_valid(const char *list)
{
	for (const char *p = list + strspn(list, SEP); *p; p += strspn(p, SEP)) {
		size_t len = strcspn(p, SEP);
		struct net n;
		if (parse_entry(p, len, &n) < 0)
			return -1;
		p += len;
	}
	return 0;
}

int netlist_match(const char *list, const struct sockaddr_storage *sa)
{
	uint8_t a[16];
	if (sa->ss_family == AF_INET)
		map4(a, &((const struct sockaddr_in *)sa)->sin_addr);
	else if (sa->ss_family == AF_INET6)
		memcpy(a, &((const struct sockaddr_in6 *)sa)->sin6_addr, 16);
	else
		return 0;
	for (const char *p = list + strspn(list, SEP); *p; p += strspn(p, SEP)) {
		size_t len = strcspn(p, SEP);
		struct net n;
		if (parse_entry(p, len, &n) == 0 && in_net(a, &n))
			return 1;
		p += len;
	}
	return 0;
}
