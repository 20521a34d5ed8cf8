/* fcgi_conn.h - the web server's FastCGI connections, read by sessiond itself.
 *
 * With fcgi_direct (the default), sessiond accepts on fcgi_socket
 * (fcgi_listen.h) and reads each request in its own loop: FastCGI records
 * (fcgi_rec.h), the <body/> checks the handler makes (request.h), then the
 * session layer (front_route). No handler process, no descriptor passing,
 * and with FCGI_KEEP_CONN (nginx's fastcgi_keep_conn on) no connect,
 * accept or close per request: after the answer the connection carries
 * the next request. A held request stays what it was: a descriptor in the loop,
 * watched for the web server giving up at no extra system call
 * (reply_watch).
 *
 * Each connection is one of: reading a request (bytes of a request read
 * in part are kept, bounded by max_data_held and FCGI_CONN_MAX_PARAMS),
 * in flight (the session layer has it; nothing more is read), or, after
 * the web server closed it while in flight with nobody watching, out of
 * the loop until its answer comes and closes it. A body over
 * max_data_held is read to its end and thrown away, and answered
 * bad-request, as the handler does.
 */
#ifndef BOSH_FCGI_CONN_H
#define BOSH_FCGI_CONN_H

#include "loop.h"

#include <stdint.h>

#define FCGI_CONN_MAX_PARAMS (64 * 1024) /* bytes of FastCGI parameters (HTTP headers) */

struct config;

/* Serves the listening socket listen_fd (-1: none; handlers read it, and
 * pass on connections the web server keeps: reply_keep_conn); cfg must
 * outlive the module. */
int fcgi_conn_start(struct loop *l, int listen_fd, const struct config *cfg);
/* Closes the listener and every connection. */
void fcgi_conn_stop(void);
/* For the metrics: connections open now and waiting past the descriptor
 * budget (fdpark.h), and since the first start (a graceful restart carries
 * the counts) connections taken and requests read. */
struct fcgi_conn_stats {
	uint64_t open, waiting, accepted, requests;
};
void fcgi_conn_stats(struct fcgi_conn_stats *out);

/* Graceful restart (snapshot.h): every connection goes over, with the
 * bytes of a request read in part, and the park with those waiting in it
 * (snapshot version 5 on); in-flight ones are named again by the held
 * requests that restore (reply_watch). */
struct snap_w;
struct snap_r;
void fcgi_conn_snapshot(struct snap_w *w, void (*keep)(void *ctx, int fd), void *ctx);
int fcgi_conn_restore(struct loop *l, struct snap_r *r, int listen_fd, const struct config *cfg, int version);
/* In the process that drains TLS sessions after a restart: the listener and
 * every connection but those its held requests watch are the successor's;
 * those are closed after their answer. */
void fcgi_conn_become_drainer(void);

#endif
