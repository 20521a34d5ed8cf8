/* ws_session.h - XMPP over WebSocket (RFC 7395): the ws_socket listener,
 * the opening handshake, and WebSocket sessions.
 *
 * A connection is accepted on ws_socket (where the web server's proxy
 * sends the upgrade), its handshake read within WS_HS_DEADLINE_MS (at most
 * WS_HS_MAX_PENDING of them at once), and answered 101 or an error. The
 * first <open to=.../> makes it a session: counted in the shared table
 * (max_sessions, max_sessions_per_client), a row in `sessions` with
 * transport 'websocket', one XMPP stream (stream.c: STARTTLS, the splitter,
 * back-pressure) to the domain's backend. Every server element goes to the
 * client as one text message; every client message is one element for the
 * server. Pings every ws_ping_interval seconds; a client that does not
 * answer one before the next is due is ended.
 *
 * A graceful restart carries WebSocket sessions over (ws_save.c): the
 * connection with what wslay had half read and not yet written, the XMPP
 * stream as BOSH's move; one over TLS to the server stays with the process
 * that drains. Connections not yet a session are closed with 1012 (service
 * restart), which tells a client to come back. The listener is handed over.
 */
#ifndef BOSH_WS_SESSION_H
#define BOSH_WS_SESSION_H

#include "config.h"
#include "loop.h"

#define WS_HS_DEADLINE_MS 10000 /* to send the handshake, and then <open/> */
#define WS_HS_MAX_PENDING 256   /* connections whose handshake is not complete */
#define WS_CLOSE_WAIT_MS 5000   /* for the client's answer to our close */
#define WS_CLOSE_RESTART 1012   /* service restart (IANA registry) */
/* A restart's successor finds the listener's descriptor here. */
#define WS_FD_ENV "BOSH_WS_LISTEN_FD"

struct sess_ops;
/* WebSocket sessions, in the shared table (sesstable.h) and in a restart's
 * snapshot (sesssnap.h). */
extern const struct sess_ops ws_ops;

/* Before any session: sessions restored from a snapshot need it. -1 (logged) on OOM. */
int ws_init(struct loop *l, const struct config *cfg);

/* Starts serving the listening socket fd (opened by main.c, or handed
 * over by a restart). -1 on failure (logged). */
int ws_start(int fd);

/* The listener's descriptor, -1 if none. */
int ws_listener_fd(void);
/* Stops accepting and closes the listener (a restart's drainer: it is the
 * successor's). */
void ws_drop_listener(void);

/* Before a graceful restart's snapshot: every session that can move is
 * detached from its connection, ready for its record; incomplete
 * handshakes are dropped and connections not yet a session closed (1012).
 * ws_restart_abandoned() undoes it when the restart does not happen. */
void ws_restart_prepare(void);
void ws_restart_abandoned(void);

/* sessiond stops: the listener closes, every connection is closed (1001). */
void ws_stop(void);

#endif
