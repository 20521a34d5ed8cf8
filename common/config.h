/* config.h - the one configuration file, read by sessiond and the handler.
 *
 * Format: "key = value" lines; '#' starts a comment line; blank lines are
 * ignored. "backend.DOMAIN = HOST:PORT" serves the XMPP domain DOMAIN from
 * that server (repeatable, one per domain). "header = Name: value" adds a
 * header to every response (repeatable). Relative paths are taken
 * relative to the directory of the configuration file. Every key, its
 * default and its bounds are in the table in config.c and in README.md.
 */
#ifndef BOSH_CONFIG_H
#define BOSH_CONFIG_H

#include <limits.h>
#include <stddef.h>

#define CONFIG_MAX_BACKENDS 64

struct config_backend {
	char domain[256];
	char host[256];
	char port[8];
};

struct config {
	char path[PATH_MAX];            /* the file read, "" for built-in defaults */
	char fcgi_socket[PATH_MAX];     /* where handlers accept FastCGI: path or HOST:PORT; "" none */
	char control_socket[PATH_MAX];  /* sessiond's Unix socket for handlers */
	char database[PATH_MAX];
	char log_file[PATH_MAX];        /* "-" is stderr */
	char handler_log_file[PATH_MAX];
	char handler_path[PATH_MAX];    /* handler binary sessiond starts; "" = next to sessiond */
	char sessiond_path[PATH_MAX];   /* sessiond binary a handler starts (autostart); "" = next to it */
	char pid_file[PATH_MAX];        /* sessiond writes its PID here; "" = none */
	char user[64];                  /* drop to this user when started as root */
	char group[64];                 /* sockets are 0660 with this group */
	int log_level;
	long handlers;                  /* handler processes to supervise; 0 = none */
	long max_data_held;             /* largest request body, bytes */
	long max_xmpp_stanza_size;      /* largest stanza from the XMPP server, bytes */
	long max_client_buffer;         /* bytes queued for a client not polling */
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
	struct config_backend backends[CONFIG_MAX_BACKENDS];
	size_t nbackends;
	char cors_origins[2048];        /* space-separated origins allowed, "*" for any; "" none */
	long cors_max_age;              /* seconds a browser may cache a preflight */
	long allow_get;                 /* serve bodies in GET query strings (JSONP, _BOSH_ script) */
	long autostart;                 /* a handler that finds no sessiond starts one */
	char extra_headers[2048];       /* "Name: value\r\n" lines sent with every response */
	/* protocol options */
	long window_size;               /* rids accepted ahead (and 'requests'); 0 = hold + 1 */
	long pidgin_compatible;         /* no multiple streams: libpurple sends 'to' on every request */
};

/* Fills *c with the defaults. */
void config_defaults(struct config *c);

/* Reads path over the defaults. On error returns -1 with
 * "FILE:LINE: key 'KEY': reason" in err. */
int config_load(struct config *c, const char *path, char *err, size_t errlen);

/* The backend serving domain (case-insensitive), or NULL. */
const struct config_backend *config_backend(const struct config *c, const char *domain);

#endif
