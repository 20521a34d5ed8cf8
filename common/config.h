/* config.h - the one configuration file, read by sessiond and the handler.
 *
 * Format: "key = value" lines; '#' starts a comment line; blank lines are
 * ignored. "backend.DOMAIN = HOST:PORT [OPTIONS]" serves the XMPP domain
 * DOMAIN from that server, "backend.DOMAIN = srv [OPTIONS]" from the servers
 * its SRV records name (repeatable, one per domain); OPTIONS are starttls,
 * directtls, plain and pin-sha256=BASE64. "header = Name: value" adds a
 * header to every response (repeatable). Relative paths are taken
 * relative to the directory of the configuration file; "~/" starts a path
 * in the home directory of the user running the program. A path key can
 * also come from the environment, BOSH_ and the key in capitals (e.g.
 * BOSH_DATABASE, set with SetEnv or FcgidInitialEnv), and wins over the
 * file. Every key, its default and its bounds are in the table in
 * config.c and in README.md.
 */
#ifndef BOSH_CONFIG_H
#define BOSH_CONFIG_H

#include <limits.h>
#include <stddef.h>

#define CONFIG_MAX_BACKENDS 64

/* How the connection to a domain's server is protected. */
enum backend_tls {
	TLS_DEFAULT,   /* STARTTLS required, except to a loopback address */
	TLS_STARTTLS,  /* STARTTLS required, loopback too */
	TLS_DIRECT,    /* TLS from the first byte (XEP-0368) */
	TLS_NONE,      /* never (no_tls_domains, or "plain") */
};

struct config_backend {
	char domain[256];
	char host[256];     /* "" when the server is found through SRV records */
	char port[8];
	enum backend_tls tls;
	char pin[48];       /* base64 SHA-256 of the server's SubjectPublicKeyInfo, or "" */
};

struct config {
	char path[PATH_MAX];            /* the file read, "" for built-in defaults */
	char fcgi_socket[PATH_MAX];     /* where handlers accept FastCGI: path or HOST:PORT; "" none */
	char control_socket[PATH_MAX];  /* sessiond's Unix socket for handlers */
	char ws_socket[PATH_MAX];       /* WebSocket (RFC 7395) listener: path or HOST:PORT; "" none */
	char database[PATH_MAX];
	char log_file[PATH_MAX];        /* "-" is stderr */
	char handler_log_file[PATH_MAX];
	char handler_path[PATH_MAX];    /* handler binary sessiond starts; "" = next to sessiond */
	char sessiond_path[PATH_MAX];   /* sessiond binary a handler starts (autostart); "" = next to it */
	char pid_file[PATH_MAX];        /* sessiond writes its PID here; "" = none */
	char user[64];                  /* drop to this user when started as root */
	char group[64];                 /* sockets are 0660 with this group */
	/* users (names or uids) whose processes may send requests on the control
	 * socket, besides sessiond's own user and root; "" = the user named like
	 * group, if there is one (www-data, apache, nginx) */
	char handler_users[512];
	int log_level;
	long handlers;                  /* handler processes to supervise; 0 = none */
	long fcgi_direct;               /* sessiond reads fcgi_socket itself (handlers > 0) */
	long max_data_held;             /* largest request body, bytes */
	long max_xmpp_stanza_size;      /* largest stanza from the XMPP server, bytes */
	long max_client_buffer;         /* bytes queued for a client not polling */
	long ws_ping_interval;          /* seconds between WebSocket pings; 0 = none */
	long max_memory;                /* bytes of queues, stanza buffers, kept answers, all sessions */
	long max_wait, default_wait;
	long default_inactivity, max_inactivity;
	long max_hold;
	long polling;
	long strict_polling;            /* enforce XEP-0124 §11's polling rule on held sessions too */
	long max_sessions;
	long max_sessions_per_client;   /* sessions from one client address; 0 = no limit */
	long connect_timeout;
	long ended_retention;           /* seconds an ended session's row is kept */
	long db_flush_ms;               /* longest delay of a database write */
	long db_activity_ms;            /* ... of one that only records requests (rid, held, last seen) */
	long batch_scheduling;          /* run as SCHED_BATCH: woken by I/O, do not preempt the writer */
	struct config_backend backends[CONFIG_MAX_BACKENDS];
	size_t nbackends;
	char cors_origins[2048];        /* space-separated origins allowed, "*" for any; "" none */
	long cors_max_age;              /* seconds a browser may cache a preflight */
	long allow_get;                 /* serve bodies in GET query strings (JSONP, _BOSH_ script) */
	long autostart;                 /* a handler that finds no sessiond starts one */
	long idle_exit;                 /* seconds with no session before sessiond exits; 0 never */
	char extra_headers[2048];       /* "Name: value\r\n" lines sent with every response */
	/* the connections to XMPP servers */
	char no_tls_domains[2048];      /* domains served without TLS (node-xmpp-bosh's name) */
	char allowed_routes[2048];      /* HOST:PORT targets a client's 'route' may name */
	char trusted_proxies[1024];
	char node_id[16];               /* [a-z0-9]{1,8}: the prefix of this node's sids; "" none */     /* peers whose X-Forwarded-For names the client (netmatch.h) */
	char dns_servers[512];          /* "" = resolv.conf; else c-ares' HOST[:PORT],... */
	char tls_ca_file[PATH_MAX];     /* "" = the system's CA store */
	long stanza_timeout;            /* seconds a server may take to finish a stanza */
	/* TCP keepalive on XMPP connections (xmpp_keepalive = IDLE [INTERVAL COUNT]) */
	long xmpp_keepalive_idle;       /* seconds quiet before probing; 0 = off */
	long xmpp_keepalive_interval, xmpp_keepalive_count;
	long drain_time;                /* after a graceful restart: seconds TLS sessions may stay */
	/* protocol options */
	long window_size;               /* rids accepted ahead (and 'requests'); 0 = hold + 1 */
	long pidgin_compatible;         /* no multiple streams: libpurple sends 'to' on every request */
};

/* Fills *c with the defaults. */
void config_defaults(struct config *c);

/* Reads path over the defaults. On error returns -1 with
 * "FILE:LINE: key 'KEY': reason" in err. */
int config_load(struct config *c, const char *path, char *err, size_t errlen);

/* SIGHUP: next is the file read again. Copies into *cur what a running
 * sessiond can take at once (the keys marked reload in config.c, the
 * backends, the headers); names in changed the keys whose value differs
 * and in restart those of them that wait for a restart. Lists are
 * space-separated, "" when empty; a backend is named backend.DOMAIN. */
void config_reload(struct config *cur, const struct config *next, char *changed, size_t clen,
                   char *restart, size_t rlen);

/* The backend serving domain (case-insensitive), or NULL. */
const struct config_backend *config_backend(const struct config *c, const char *domain);

#endif
