/* netmatch.h - is an address in a list of addresses and networks?
 *
 * A list is addresses or CIDR networks (IPv4 or IPv6) separated by spaces
 * or commas: "127.0.0.0/8 ::1 10.1.2.3 2001:db8::/32". An IPv4-mapped IPv6
 * address (::ffff:a.b.c.d) matches as the IPv4 address it carries.
 */
#ifndef BOSH_NETMATCH_H
#define BOSH_NETMATCH_H

#include <sys/socket.h>

/* 0 if every entry of list parses, else -1. */
int netlist_valid(const char *list);

/* 1 if sa (AF_INET or AF_INET6) is in list, else 0 (malformed entries
 * match nothing). */
int netlist_match(const char *list, const struct sockaddr_storage *sa);

#endif
