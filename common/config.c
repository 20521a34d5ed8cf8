#define _POSIX_C_SOURCE 200809L
#include "config.h"
#include "netmatch.h"
#include "log.h"

#include <ctype.h>
#include <errno.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

enum key_kind { K_PATH, K_STRING, K_NUMBER, K_LEVEL };

struct key {
	const char *name;
	enum key_kind kind;
	size_t offset;
	size_t size;      /* for strings */
	long min, max;    /* for numbers */
	int reload;       /* a running sessiond applies a new value on SIGHUP */
};

#define PATHKEY(n, f) { n, K_PATH, offsetof(struct config, f), sizeof(((struct config *)0)->f), 0, 0, 0 }
#define STRKEY(n, f) { n, K_STRING, offsetof(struct config, f), sizeof(((struct config *)0)->f), 0, 0, 0 }
#define NUMKEY(n, f, lo, hi) { n, K_NUMBER, offsetof(struct config, f), 0, lo, hi, 0 }
/* The same, for keys SIGHUP applies (config_reload). */
#define RSTRKEY(n, f) { n, K_STRING, offsetof(struct config, f), sizeof(((struct config *)0)->f), 0, 0, 1 }
#define RNUMKEY(n, f, lo, hi) { n, K_NUMBER, offsetof(struct config, f), 0, lo, hi, 1 }

static const struct key keys[] = {
	PATHKEY("fcgi_socket", fcgi_socket),
	PATHKEY("control_socket", control_socket),
	PATHKEY("ws_socket", ws_socket),
	PATHKEY("database", database),
	PATHKEY("log_file", log_file),
	PATHKEY("handler_log_file", handler_log_file),
	PATHKEY("handler_path", handler_path),
	PATHKEY("sessiond_path", sessiond_path),
	PATHKEY("pid_file", pid_file),
	NUMKEY("autostart", autostart, 0, 1),
	NUMKEY("idle_exit", idle_exit, 0, 30L * 86400),
	STRKEY("user", user),
	STRKEY("group", group),
	RSTRKEY("handler_users", handler_users),
	{ "log_level", K_LEVEL, offsetof(struct config, log_level), 0, 0, 0, 1 },
	NUMKEY("handlers", handlers, 0, 64),
	NUMKEY("fcgi_direct", fcgi_direct, 0, 1),
	RNUMKEY("max_data_held", max_data_held, 1024, 1024 * 1024),
	RNUMKEY("max_xmpp_stanza_size", max_xmpp_stanza_size, 1024, 16 * 1024 * 1024),
	RNUMKEY("max_client_buffer", max_client_buffer, 4096, 64 * 1024 * 1024),
	RNUMKEY("ws_ping_interval", ws_ping_interval, 0, 3600),
	NUMKEY("max_memory", max_memory, 1024 * 1024, LONG_MAX),
	RNUMKEY("max_wait", max_wait, 1, 3600),
	RNUMKEY("default_wait", default_wait, 1, 3600),
	RNUMKEY("default_inactivity", default_inactivity, 1, 3600),
	RNUMKEY("max_inactivity", max_inactivity, 1, 86400),
	RNUMKEY("max_hold", max_hold, 1, 8),
	RNUMKEY("polling", polling, 0, 3600),
	RNUMKEY("strict_polling", strict_polling, 0, 1),
	RNUMKEY("max_sessions", max_sessions, 1, 1000000),
	RNUMKEY("max_sessions_per_client", max_sessions_per_client, 0, 1000000),
	/* node-xmpp-bosh's name for the largest hold */
	RNUMKEY("max_bosh_connections", max_hold, 1, 8),
	NUMKEY("connect_timeout", connect_timeout, 1, 600),
	RNUMKEY("ended_retention", ended_retention, 0, 365L * 86400),
	RNUMKEY("db_flush_ms", db_flush_ms, 0, 10000),
	RNUMKEY("db_activity_ms", db_activity_ms, 0, 60000),
	RNUMKEY("batch_scheduling", batch_scheduling, 0, 1),
	RSTRKEY("cors_origins", cors_origins),
	RNUMKEY("cors_max_age", cors_max_age, 0, 86400 * 7),
	RNUMKEY("allow_get", allow_get, 0, 1),
	RSTRKEY("no_tls_domains", no_tls_domains),
	RSTRKEY("allowed_routes", allowed_routes),
	/* ejabberd's name; a peer on the Unix ws_socket is always the web server */
	RSTRKEY("trusted_proxies", trusted_proxies),
	STRKEY("node_id", node_id),
	STRKEY("dns_servers", dns_servers),
	PATHKEY("tls_ca_file", tls_ca_file),
	RNUMKEY("stanza_timeout", stanza_timeout, 1, 3600),
	RNUMKEY("drain_time", drain_time, 0, 7 * 86400),
	/* protocol options; window_size is node-xmpp-bosh's name (at most RIDWIN_MAX) */
	RNUMKEY("window_size", window_size, 0, 9),
	RNUMKEY("pidgin_compatible", pidgin_compatible, 0, 1),
};

void config_defaults(struct config *c)
{
	memset(c, 0, sizeof *c);
	snprintf(c->control_socket, sizeof c->control_socket, "sessiond.sock");
	snprintf(c->fcgi_socket, sizeof c->fcgi_socket, "handler.sock");
	snprintf(c->database, sizeof c->database, "sessions.db");
	snprintf(c->log_file, sizeof c->log_file, "-");
	snprintf(c->handler_log_file, sizeof c->handler_log_file, "-");
	c->log_level = LOG_INFO;
	c->handlers = 2;
	c->fcgi_direct = 1;
	c->max_data_held = 100000;
	c->max_xmpp_stanza_size = 262144;
	c->max_client_buffer = 524288;
	c->ws_ping_interval = 30;
	c->max_wait = 60;
	c->default_wait = 60;
	c->default_inactivity = 70;
	c->max_inactivity = 160;
	c->max_hold = 1;
	c->polling = 2;
	c->max_sessions = 10000;
	/* Generous for a NAT or a company proxy (many users, one address), yet
	 * one address cannot take every session. */
	c->max_sessions_per_client = 200;
	c->max_memory = 256L * 1024 * 1024;
	c->xmpp_keepalive_idle = 60;
	c->xmpp_keepalive_interval = 10;
	c->xmpp_keepalive_count = 6;
	c->connect_timeout = 10;
	c->ended_retention = 86400;
	c->db_flush_ms = 50;
	c->db_activity_ms = 1000;
	c->batch_scheduling = 1;
	c->cors_max_age = 86400;
	c->stanza_timeout = 60;
	c->drain_time = 900;
	snprintf(c->trusted_proxies, sizeof c->trusted_proxies, "127.0.0.0/8 ::1");
}

static char *trim(char *s)
{
	while (isspace((unsigned char)*s))
		s++;
	char *e = s + strlen(s);
	while (e > s && isspace((unsigned char)e[-1]))
		*--e = 0;
	return s;
}

/* The account's own home, not $HOME: web servers run CGI programs without it. */
static const char *home_dir(void)
{
	const struct passwd *pw = getpwuid(geteuid());
	if (pw && pw->pw_dir && pw->pw_dir[0])
		return pw->pw_dir;
	const char *home = getenv("HOME");
	return home && *home ? home : "/";
}

/* Relative paths are relative to the config file, so one folder holds a
 * deployment; "~/" is the user's home (shared hosting, no system folders). */
static int set_path(char *dst, size_t size, const char *dir, const char *value)
{
	int n;
	if (strncmp(value, "~/", 2) == 0)
		n = snprintf(dst, size, "%s/%s", home_dir(), value + 2);
	else if (value[0] == '/' || strcmp(value, "-") == 0 || strcmp(value, "syslog") == 0 || value[0] == 0 ||
	         !dir[0] ||
	    (strchr(value, ':') && value[0] != '.'))
		n = snprintf(dst, size, "%s", value);
	else
		n = snprintf(dst, size, "%s/%s", dir, value);
	return n < 0 || (size_t)n >= size ? -1 : 0;
}

static int parse_number(const char *s, long *out)
{
	char *end;
	errno = 0;
	long v = strtol(s, &end, 10);
	if (errno || end == s || *end)
		return -1;
	*out = v;
	return 0;
}

static int parse_host_port(struct config_backend *b, const char *value, size_t len)
{
	char buf[300];
	long port;
	if (len >= sizeof buf)
		return -1;
	memcpy(buf, value, len);
	buf[len] = 0;
	char *colon = strrchr(buf, ':');
	if (!colon || colon == buf || (size_t)(colon - buf) >= sizeof b->host ||
	    parse_number(colon + 1, &port) < 0 || port < 1 || port > 65535)
		return -1;
	*colon = 0;
	char *host = buf;
	if (host[0] == '[' && colon[-1] == ']') { /* [::1]:5222 */
		host++;
		colon[-1] = 0;
	}
	size_t hlen = strlen(host);
	if (hlen == 0 || hlen >= sizeof b->host)
		return -1;
	memcpy(b->host, host, hlen + 1);
	snprintf(b->port, sizeof b->port, "%ld", port);
	return 0;
}

static int backend_option(struct config_backend *b, const char *opt, size_t len, const char **why)
{
	static const char *const modes[] = { [TLS_STARTTLS] = "starttls", [TLS_DIRECT] = "directtls",
	                                     [TLS_NONE] = "plain" };
	for (int m = TLS_STARTTLS; m <= TLS_NONE; m++)
		if (len == strlen(modes[m]) && strncmp(opt, modes[m], len) == 0) {
			b->tls = (enum backend_tls)m;
			return 0;
		}
	if (len > 11 && strncmp(opt, "pin-sha256=", 11) == 0 && len - 11 == 44) {
		snprintf(b->pin, sizeof b->pin, "%.*s", 44, opt + 11);
		return 0;
	}
	return *why = "unknown option (expected starttls, directtls, plain or pin-sha256=BASE64)", -1;
}

/* "HOST:PORT [OPTION...]" or "srv [OPTION...]". */
static int set_backend(struct config *c, const char *domain, const char *value, const char **why)
{
	if (!*domain || strlen(domain) >= sizeof c->backends[0].domain)
		return *why = "domain missing or too long", -1;
	if (config_backend(c, domain))
		return *why = "domain given twice", -1;
	if (c->nbackends == CONFIG_MAX_BACKENDS)
		return *why = "too many backends", -1;
	struct config_backend b = { .tls = TLS_DEFAULT };
	snprintf(b.domain, sizeof b.domain, "%s", domain);
	size_t len = strcspn(value, " \t");
	if (!(len == 3 && strncmp(value, "srv", 3) == 0) && parse_host_port(&b, value, len) < 0)
		return *why = "expected HOST:PORT or srv", -1;
	for (const char *p = value + len; *p;) {
		p += strspn(p, " \t");
		len = strcspn(p, " \t");
		if (len && backend_option(&b, p, len, why) < 0)
			return -1;
		p += len;
	}
	if (b.tls == TLS_DIRECT && !b.host[0])
		return *why = "directtls needs HOST:PORT (SRV says which targets use TLS)", -1;
	c->backends[c->nbackends++] = b;
	return 0;
}

/* "Name: value": a header token, then printable text (no CR or LF). */
static int add_header(struct config *c, const char *value, const char **why)
{
	const char *colon = strchr(value, ':');
	if (!colon || colon == value)
		return *why = "expected 'Name: value'", -1;
	for (const char *p = value; p < colon; p++)
		if (!isalnum((unsigned char)*p) && !strchr("!#$%&'*+-.^_`|~", *p))
			return *why = "header name has a character not allowed there", -1;
	for (const char *p = colon + 1; *p; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			return *why = "header value has a control character", -1;
	size_t used = strlen(c->extra_headers);
	if (used + strlen(value) + 3 > sizeof c->extra_headers)
		return *why = "too many extra headers", -1;
	snprintf(c->extra_headers + used, sizeof c->extra_headers - used, "%s\r\n", value);
	return 0;
}

/* "IDLE [INTERVAL COUNT]": seconds of quiet before TCP keepalive probes
 * start, seconds between probes, probes unanswered before the connection
 * is dead. 0 turns keepalive off. */
static int set_keepalive(struct config *c, const char *value, const char **why)
{
	long v[3] = { 0, c->xmpp_keepalive_interval, c->xmpp_keepalive_count };
	static const long lo[3] = { 0, 1, 1 }, hi[3] = { 86400, 3600, 100 };
	char copy[64], *save = NULL, *tok;
	int n = 0;
	if (strlen(value) >= sizeof copy)
		return *why = "value too long", -1;
	snprintf(copy, sizeof copy, "%s", value);
	for (tok = strtok_r(copy, " \t,", &save); tok; tok = strtok_r(NULL, " \t,", &save)) {
		if (n == 3 || parse_number(tok, &v[n]) < 0)
			return *why = "expected IDLE [INTERVAL COUNT] (seconds, seconds, probes)", -1;
		if (v[n] < lo[n] || v[n] > hi[n])
			return *why = "out of range", -1;
		n++;
	}
	if (n != 1 && n != 3)
		return *why = "expected IDLE [INTERVAL COUNT] (seconds, seconds, probes)", -1;
	c->xmpp_keepalive_idle = v[0];
	c->xmpp_keepalive_interval = v[1];
	c->xmpp_keepalive_count = v[2];
	return 0;
}

static int set_key(struct config *c, const char *dir, const char *key, const char *value,
                   const char **why)
{
	if (strcmp(key, "xmpp_keepalive") == 0)
		return set_keepalive(c, value, why);
	if (strncmp(key, "backend.", 8) == 0)
		return set_backend(c, key + 8, value, why);
	if (strcmp(key, "header") == 0)
		return add_header(c, value, why);
	for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
		const struct key *k = &keys[i];
		if (strcmp(k->name, key) != 0)
			continue;
		char *field = (char *)c + k->offset;
		long n;
		switch (k->kind) {
		case K_PATH:
			if (set_path(field, k->size, dir, value) < 0)
				return *why = "path too long", -1;
			return 0;
		case K_STRING:
			if (strlen(value) >= k->size)
				return *why = "value too long", -1;
			memcpy(field, value, strlen(value) + 1);
			return 0;
		case K_NUMBER:
			if (parse_number(value, &n) < 0)
				return *why = "not a number", -1;
			if (n < k->min || n > k->max)
				return *why = "out of range", -1;
			*(long *)(void *)field = n;
			return 0;
		case K_LEVEL:
			if ((n = log_level_parse(value)) < 0)
				return *why = "expected error, warn, info or debug", -1;
			*(int *)(void *)field = (int)n;
			return 0;
		}
	}
	return *why = "unknown key", -1;
}

/* Defaults are relative names; anchor them in the config file's folder. */
static void anchor_default_paths(struct config *c, const char *dir)
{
	char tmp[PATH_MAX];
	char *paths[] = { c->control_socket, c->fcgi_socket, c->ws_socket, c->database }; /* each PATH_MAX long */
	for (size_t i = 0; i < sizeof paths / sizeof paths[0]; i++) {
		if (paths[i][0] == '/' || !paths[i][0] || strchr(paths[i], ':'))
			continue;
		if (set_path(tmp, sizeof tmp, dir, paths[i]) == 0)
			snprintf(paths[i], PATH_MAX, "%s", tmp);
	}
}

/* BOSH_DATABASE=... and the like, from SetEnv or FcgidInitialEnv. sessiond
 * started by a handler inherits its environment, so both see the same paths. */
static int apply_env(struct config *c, const char *dir, char *err, size_t errlen)
{
	for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
		if (keys[i].kind != K_PATH)
			continue;
		char name[64] = "BOSH_";
		for (size_t j = 0; keys[i].name[j] && j + 6 < sizeof name; j++)
			name[5 + j] = (char)toupper((unsigned char)keys[i].name[j]);
		const char *value = getenv(name);
		if (value && *value && set_path((char *)c + keys[i].offset, keys[i].size, dir, value) < 0) {
			snprintf(err, errlen, "environment %s: path too long", name);
			return -1;
		}
	}
	return 0;
}

static int check_consistency(struct config *c, const char **why, const char **key)
{
	if (c->default_wait > c->max_wait)
		return *key = "default_wait", *why = "larger than max_wait", -1;
	if (c->default_inactivity > c->max_inactivity)
		return *key = "default_inactivity", *why = "larger than max_inactivity", -1;
	size_t idlen = strspn(c->node_id, "abcdefghijklmnopqrstuvwxyz0123456789");
	if (c->node_id[idlen] || idlen > 8)
		return *key = "node_id", *why = "expected 1 to 8 of a-z and 0-9", -1;
	if (netlist_valid(c->trusted_proxies) < 0)
		return *key = "trusted_proxies", *why = "expected addresses or networks (127.0.0.0/8 ::1)", -1;
	/* Applied after the whole file is read, so the order of lines does not matter. */
	char names[sizeof c->no_tls_domains];
	snprintf(names, sizeof names, "%s", c->no_tls_domains);
	for (char *save = NULL, *d = strtok_r(names, " \t,", &save); d; d = strtok_r(NULL, " \t,", &save)) {
		struct config_backend *b = (struct config_backend *)config_backend(c, d);
		if (!b)
			return *key = "no_tls_domains", *why = "names a domain with no backend line", -1;
		b->tls = TLS_NONE;
	}
	return 0;
}

int config_load(struct config *c, const char *path, char *err, size_t errlen)
{
	FILE *f = fopen(path, "r");
	if (!f) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return -1;
	}
	snprintf(c->path, sizeof c->path, "%s", path);
	char dir[PATH_MAX];
	snprintf(dir, sizeof dir, "%s", path);
	char *slash = strrchr(dir, '/');
	if (slash)
		*slash = 0;
	else
		snprintf(dir, sizeof dir, ".");
	anchor_default_paths(c, dir);

	char line[4096];
	int lineno = 0, rc = 0;
	while (rc == 0 && fgets(line, sizeof line, f)) {
		lineno++;
		char *s = trim(line);
		if (!*s || *s == '#')
			continue;
		char *eq = strchr(s, '=');
		const char *why = NULL;
		if (!eq) {
			snprintf(err, errlen, "%s:%d: expected 'key = value'", path, lineno);
			rc = -1;
			break;
		}
		*eq = 0;
		char *key = trim(s), *value = trim(eq + 1);
		if (set_key(c, dir, key, value, &why) < 0) {
			snprintf(err, errlen, "%s:%d: key '%s': %s", path, lineno, key, why);
			rc = -1;
		}
	}
	fclose(f);
	if (rc == 0)
		rc = apply_env(c, dir, err, errlen);
	const char *why, *key;
	if (rc == 0 && check_consistency(c, &why, &key) < 0) {
		snprintf(err, errlen, "%s: key '%s': %s", path, key, why);
		rc = -1;
	}
	return rc;
}

/* Appends " name" to list, bounded; a full list ends in " ...". */
static void name_in(char *list, size_t cap, const char *prefix, const char *name)
{
	size_t used = strlen(list);
	if (used + strlen(prefix) + strlen(name) + 6 >= cap) {
		if (used + 5 < cap && (used < 4 || strcmp(list + used - 4, " ...") != 0))
			snprintf(list + used, cap - used, " ...");
		return;
	}
	snprintf(list + used, cap - used, "%s%s%s", used ? " " : "", prefix, name);
}

static int key_differs(const struct key *k, const struct config *a, const struct config *b)
{
	const char *fa = (const char *)a + k->offset, *fb = (const char *)b + k->offset;
	switch (k->kind) {
	case K_PATH:
	case K_STRING: return strcmp(fa, fb) != 0;
	case K_NUMBER: return *(const long *)(const void *)fa != *(const long *)(const void *)fb;
	case K_LEVEL: return *(const int *)(const void *)fa != *(const int *)(const void *)fb;
	}
	return 0;
}

static int backend_differs(const struct config_backend *a, const struct config_backend *b)
{
	return !b || strcmp(a->host, b->host) || strcmp(a->port, b->port) || a->tls != b->tls ||
	       strcmp(a->pin, b->pin);
}

void config_reload(struct config *cur, const struct config *next, char *changed, size_t clen,
                   char *restart, size_t rlen)
{
	changed[0] = restart[0] = 0;
	for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
		const struct key *k = &keys[i];
		int alias = 0; /* another name of a field already seen (max_bosh_connections) */
		for (size_t j = 0; j < i; j++)
			alias |= keys[j].offset == k->offset;
		if (alias || !key_differs(k, cur, next))
			continue;
		name_in(changed, clen, "", k->name);
		if (!k->reload) {
			name_in(restart, rlen, "", k->name);
			continue;
		}
		size_t size = k->kind == K_NUMBER ? sizeof(long) : k->kind == K_LEVEL ? sizeof(int) : k->size;
		memcpy((char *)cur + k->offset, (const char *)next + k->offset, size);
	}
	for (size_t i = 0; i < next->nbackends; i++)
		if (backend_differs(&next->backends[i], config_backend(cur, next->backends[i].domain)))
			name_in(changed, clen, "backend.", next->backends[i].domain);
	for (size_t i = 0; i < cur->nbackends; i++)
		if (!config_backend(next, cur->backends[i].domain))
			name_in(changed, clen, "backend.", cur->backends[i].domain);
	/* No session keeps a pointer into the table past one loop turn
	 * (sessions look their domain up each time), so it is replaced whole. */
	memcpy(cur->backends, next->backends, sizeof cur->backends);
	cur->nbackends = next->nbackends;
	if (strcmp(cur->extra_headers, next->extra_headers) != 0) {
		name_in(changed, clen, "", "header");
		memcpy(cur->extra_headers, next->extra_headers, sizeof cur->extra_headers);
	}
}

const struct config_backend *config_backend(const struct config *c, const char *domain)
{
	for (size_t i = 0; i < c->nbackends; i++)
		if (strcasecmp(c->backends[i].domain, domain) == 0)
			return &c->backends[i];
	return NULL;
}
