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
 * A graceful restart does not carry WebSocket sessions over: they are
 * closed with code 1012 (service restart) before the exec; the listener
 * itself is handed over.
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

/* Starts serving the listening socket fd (from ws_listen(), or handed over
 * by a restart). -1 on failure (logged). */
int ws_start(struct loop *l, const struct config *cfg, int fd);

/* The listener's descriptor, -1 if none. */
int ws_listener_fd(void);
/* Stops accepting and closes the listener (a restart's drainer: it is the
 * successor's). */
void ws_drop_listener(void);

/* Before a graceful restart's exec: every WebSocket connection is closed
 * (1012, the session's end logged and its row written), the incomplete
 * handshakes dropped. The listener stays. */
void ws_close_all_for_restart(void);

/* sessiond stops: the listener closes, every connection is closed (1001). */
void ws_stop(void);

#endif
