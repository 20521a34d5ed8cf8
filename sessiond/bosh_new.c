/* bosh_new.c - a BOSH session created (XEP-0124 §7, XEP-0206 §3), or a
 * stream added to one (§16.3): the request checked, its limits, the backend
 * and route chosen, the XMPP connection opened. */
#define _GNU_SOURCE
#include "bosh_int.h"
#include "control.h"
#include "attrs.h"
#include "bosh.h"
#include "log.h"
#include "metrics.h"
#include "route.h"
#include "xmpp.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char *dup_or_null(const char *s) { return s ? strdup(s) : NULL; }

static long clamp(long v, long lo, long hi) { return v < lo ? lo : v > hi ? hi : v; }

/* The client's ver, if it is lower than ours (XEP-0124 §7.1). */
static const char *choose_ver(const char *ver)
{
	unsigned major, minor;
	if (!ver || sscanf(ver, "%u.%u", &major, &minor) != 2)
		return BOSH_VERSION;
	return major < 1 || (major == 1 && minor < 11) ? ver : BOSH_VERSION;
}

/* At most max bytes of s, cut where a UTF-8 sequence begins. */
static char *dup_bounded(const char *s, size_t max)
{
	if (!s)
		return NULL;
	size_t n = strlen(s);
	if (n > max)
		for (n = max; n > 0 && ((unsigned char)s[n] & 0xc0) == 0x80; n--)
			;
	return strndup(s, n);
}

static int fill_session(struct session *s, const struct frame_request *fr, int64_t rid)
{
	const char *wait = frame_attr(fr, "wait"), *hold = frame_attr(fr, "hold");
	const char *content = frame_attr(fr, "content");
	/* attrs_check_creation() has made sure these are small decimals */
	s->wait = (int)clamp(wait ? attr_number(wait) : bosh_cfg->default_wait, 1, bosh_cfg->max_wait);
	/* hold 0 is a polling session: every request is answered at once. */
	s->hold = (int)clamp(hold ? attr_number(hold) : 1, 0, bosh_cfg->max_hold);
	/* The rid window (§14.1) is the number of simultaneous requests, so a
	 * wider window_size is what 'requests' advertises. */
	s->requests = (int)(bosh_cfg->window_size > s->hold + 1 ? bosh_cfg->window_size : s->hold + 1);
	s->inactivity = (int)bosh_cfg->default_inactivity;
	s->next_rid = rid + 1;
	s->to = strdup(frame_attr(fr, "to"));
	s->route = dup_or_null(frame_attr(fr, "route"));
	s->ver = strdup(choose_ver(frame_attr(fr, "ver")));
	s->lang = dup_or_null(frame_attr(fr, "xml:lang"));
	s->content = dup_or_null(content);
	s->legacy = frame_attr(fr, "ver") == NULL;
	s->acks = frame_attr(fr, "ack") != NULL;
	copy_key(s->key, frame_attr(fr, "newkey")); /* checked by create_session() */
	s->c.client = dup_or_null(fr->client);
	s->client_from = dup_or_null(frame_attr(fr, "from"));
	s->sender = sender_of(fr);
	s->ua = dup_bounded(frame_attr(fr, "ua") ? frame_attr(fr, "ua") : fr->user_agent, ATTR_UA_MAX);
	/* libpurple (Pidgin, Finch) puts 'to' on every request, its empty polls
	 * included: offered multiple streams, each poll would add one. */
	s->one_stream = bosh_cfg->pidgin_compatible ||
	                (fr->user_agent && strstr(fr->user_agent, "libpurple"));
	s->created_at = s->last_seen = loop_wallclock();
	s->last_answer = loop_now(bosh_loop);
	s->c.ops = &bosh_ops;
	s->timer = (struct timer){ .cb = session_timer, .ctx = s };
	/* With acks the client says what it got: keep answers until then (bounded). */
	ridwin_init(&s->sent, s->acks ? RIDWIN_MAX : s->requests);
	return s->to && s->ver ? 0 : -1;
}

static struct stream *open_stream(struct session *s, const struct config_backend *be,
                                  const char *host, unsigned port, const char *domain,
                                  const char *lang)
{
	struct xmpp_params p = {
		.domain = domain, .host = host[0] ? host : NULL, .port = (uint16_t)port,
		.tls = be->tls, .pin = be->pin, .lang = lang,
		.max_stanza = (size_t)bosh_cfg->max_xmpp_stanza_size,
		.max_output = (size_t)bosh_cfg->max_data_held * 4,
		.connect_timeout_ms = (unsigned)bosh_cfg->connect_timeout * 1000,
		.stanza_timeout_ms = (unsigned)bosh_cfg->stanza_timeout * 1000,
		.keepalive = { (unsigned)bosh_cfg->xmpp_keepalive_idle,
		               (unsigned)bosh_cfg->xmpp_keepalive_interval,
		               (unsigned)bosh_cfg->xmpp_keepalive_count },
	};
	struct stream *st = stream_open(bosh_loop, &p, s->c.sid, (size_t)bosh_cfg->max_client_buffer,
	                                &bosh_stream_events, s);
	if (st && streams_add(&s->streams, st) < 0) {
		stream_free(st); /* callers check for room first */
		return NULL;
	}
	return st;
}

void connect_first_stream(struct session *s, const struct config_backend *be,
                                 const char *host, unsigned port)
{
	mark_dirty(s);
	if (!open_stream(s, be, host, port, s->to, s->lang))
		session_end(s, "remote-connection-failed");
	else
		session_schedule(s);
}

void create_session(struct responder *resp, const struct frame_request *fr)
{
	int64_t rid = rid_parse(frame_attr(fr, "rid"));
	const char *to = frame_attr(fr, "to");
	char newkey[KEY_HEX + 1], why[160];
	if (control_draining()) {
		static const char body[] = "draining: this server takes no new sessions; try another\n";
		struct reply r = { .status = 503, .content_type = "text/plain; charset=utf-8",
		                   .headers = "Retry-After: 5\r\n", .body = body, .body_len = sizeof body - 1 };
		log_limited(LOG_INFO, "drain refusals", "session request from %s refused: draining (503)",
		            fr->client ? fr->client : "-");
		reply_send(resp, &r);
		return;
	}
	if (rid < 0 || copy_key(newkey, frame_attr(fr, "newkey")) < 0) {
		log_info("session request from %s with a malformed rid or newkey",
		         fr->client ? fr->client : "-");
		answer_terminate(resp, "bad-request");
		return;
	}
	if (attrs_check_creation(fr, why, sizeof why) < 0) {
		log_info("session request from %s refused: %s", fr->client ? fr->client : "-", why);
		answer_terminate(resp, "bad-request");
		return;
	}
	if (!to || !*to) {
		log_info("session request from %s without 'to'", fr->client);
		answer_terminate(resp, "improper-addressing");
		return;
	}
	const struct config_backend *be = route_valid_domain(to) ? config_backend(bosh_cfg, to) : NULL;
	if (!be) {
		log_info("session request from %s for unknown domain '%.100s'", fr->client, to);
		answer_terminate(resp, "host-unknown");
		return;
	}
	char host[256];
	unsigned port = 0;
	const char *route = frame_attr(fr, "route");
	const char *refused = route_choose(route, be, bosh_cfg->allowed_routes, host, sizeof host, &port);
	if (refused) {
		log_info("session request from %s: route '%.100s' refused (%s): not allowed by allowed_routes",
		         fr->client, route, refused);
		answer_terminate(resp, refused);
		return;
	}
	if ((refused = sesstable_refuse(fr->client))) {
		answer_terminate(resp, refused);
		return;
	}
	struct session *s = calloc(1, sizeof *s);
	if (!s || fill_session(s, fr, rid) < 0) {
		log_error("out of memory creating a session");
		if (s)
			session_free(s);
		answer_terminate(resp, "internal-server-error");
		return;
	}
	if (sesstable_add(&s->c, 1) < 0) { /* logged */
		session_free(s);
		answer_terminate(resp, "internal-server-error");
		return;
	}
	M.sessions_created[MT_BOSH]++;
	char ua[128];
	log_info("session %s created: domain=%s transport=bosh client=%s user_agent=%s", s->c.sid, s->to,
	         s->c.client ? s->c.client : "-", log_quoted(ua, sizeof ua, fr->user_agent));
	hold_request(s, resp, rid, 1);
	connect_first_stream(s, be, host, port);
}

/* §16.3: a request with 'to' on a live session opens another stream. Its
 * answer names the stream at once (and carries nothing else); the stream's
 * features come in a later answer that names it. */
void add_stream(struct session *s, struct responder *resp, const struct req *r)
{
	const struct config_backend *be =
		route_valid_domain(r->to) ? config_backend(bosh_cfg, r->to) : NULL;
	char host[256];
	unsigned port = 0;
	if (!be) {
		log_info("session %s: a stream for unknown domain '%.100s'", s->c.sid, r->to);
		fail_request(s, resp, "host-unknown");
		return;
	}
	const char *refused =
		route_choose(r->route, be, bosh_cfg->allowed_routes, host, sizeof host, &port);
	if (refused) {
		log_info("session %s: a stream's route '%.100s' refused (%s): not allowed by allowed_routes",
		         s->c.sid, r->route, refused);
		fail_request(s, resp, refused);
		return;
	}
	if (s->streams.n == STREAMS_MAX) {
		log_info("session %s: no more than %d streams in a session", s->c.sid, STREAMS_MAX);
		fail_request(s, resp, "policy-violation");
		return;
	}
	struct stream *st = open_stream(s, be, host, port, r->to, r->lang ? r->lang : s->lang);
	if (!st) {
		fail_request(s, resp, "remote-connection-failed");
		return;
	}
	s->multi = 1;
	log_info("session %s: stream %s added for %s", s->c.sid, st->name, st->to);
	if (hold_request(s, resp, r->rid, 0) < 0)
		return;
	while (s->nheld > 1)
		answer_held(s, 0, NULL, NULL);
	struct answer a = { .added = st };
	answer_held_with(s, 0, &a);
	session_schedule(s);
}
