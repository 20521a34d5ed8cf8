/* fcgi_conn_harness.h - sessiond's FastCGI connections (fcgi_conn.c) with
 * the session layer replaced: the unit test and the fuzz target drive a
 * connection from the web server's end of a socketpair.
 *
 * The stand-in for front_route() acts on the request by the second byte of
 * its payload (the name of its first element, "<a/>"): 'a' answers at once, 'h' holds it (watched, as a held request is)
 * until harness_answer_held(), 'd' drops it unanswered, 'b' answers with a
 * body of 1 MB (more than a socket takes at once: reply.c finishes it). */
#ifndef BOSH_FCGI_CONN_HARNESS_H
#define BOSH_FCGI_CONN_HARNESS_H

#include "config.h"
#include "fcgi_conn.h"
#include "frame.h"
#include "front.h"
#include "loop.h"
#include "reply.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define HARNESS_HELD_MAX 8

static struct {
	struct responder resp;
	struct io io;
	int dropped; /* the web server closed it while held */
} harness_held[HARNESS_HELD_MAX];
static int harness_nheld, harness_routed, harness_errors;
static char harness_last_error[256];

static void harness_held_io(void *ctx, uint32_t events)
{
	(void)events;
	int i = (int)(intptr_t)ctx;
	if (harness_held[i].resp.kind == RESP_NONE)
		return;
	reply_unwatch(&harness_held[i].resp, &harness_held[i].io);
	reply_drop(&harness_held[i].resp);
	harness_held[i].dropped = 1;
}

void front_route(struct responder *resp, const struct frame_request *fr)
{
	harness_routed++;
	if (fr->error) {
		harness_errors++;
		snprintf(harness_last_error, sizeof harness_last_error, "%s", fr->error);
	}
	char c = fr->payload_len > 1 ? (char)fr->payload[1] : 'a';
	if (c == 'h') {
		for (int i = 0; i < HARNESS_HELD_MAX; i++) {
			if (harness_held[i].resp.kind != RESP_NONE)
				continue;
			harness_held[i].resp = *resp;
			harness_held[i].dropped = 0;
			harness_held[i].io = (struct io){ .fd = resp->fd, .cb = harness_held_io,
			                                  .ctx = (void *)(intptr_t)i };
			if (reply_watch(&harness_held[i].resp, &harness_held[i].io) < 0) {
				reply_drop(&harness_held[i].resp);
				return;
			}
			harness_nheld++;
			return;
		}
	}
	if (c == 'd') {
		reply_drop(resp);
		return;
	}
	static char big[1000000];
	if (!big[0]) /* filled once, not for every request */
		memset(big, 'x', sizeof big);
	struct reply r = { .status = 200, .body = c == 'b' ? big : "<body/>",
	                   .body_len = c == 'b' ? sizeof big : 7 };
	reply_send(resp, &r);
}

int front_forward(int fd, const struct frame_request *fr)
{
	(void)fd;
	(void)fr;
	return 0;
}

/* Answers every request still held. */
static void harness_answer_held(void)
{
	for (int i = 0; i < HARNESS_HELD_MAX; i++) {
		if (harness_held[i].resp.kind == RESP_NONE)
			continue;
		reply_unwatch(&harness_held[i].resp, &harness_held[i].io);
		struct reply r = { .status = 200, .body = "<body/>", .body_len = 7 };
		reply_send(&harness_held[i].resp, &r);
		harness_held[i].resp.kind = RESP_NONE;
	}
	harness_nheld = 0;
}

static void harness_config(struct config *cfg)
{
	memset(cfg, 0, sizeof *cfg);
	cfg->max_data_held = 4096;
	cfg->allow_get = 1;
}

#endif
