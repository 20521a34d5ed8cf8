/* What a web server (or anything that reaches fcgi_socket) can send on a
 * FastCGI connection sessiond reads itself: the input is cut into writes
 * (a 0xff byte ends one), each followed by a turn of the loop; a byte after
 * the cut says what the stand-in session layer and the peer do next
 * (answer what is held, read the answers, half-close). The harness
 * (tests/fcgi_conn_harness.h) answers, holds or drops each request. */
#define _GNU_SOURCE
#include "../fcgi_conn_harness.h"

#include <sys/socket.h>
#include <unistd.h>

static struct loop *l;
static struct config cfg;

static void drain_answers(int fd)
{
	static char sink[65536];
	while (recv(fd, sink, sizeof sink, MSG_DONTWAIT) > 0)
		;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (!l) {
		harness_config(&cfg);
		l = loop_new();
		reply_init(l, &cfg);
		if (!l || fcgi_conn_start(l, -1, &cfg) < 0)
			abort();
	}
	int sv[2];
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
		abort();
	/* sessiond's end comes the way a kept connection a handler passed does */
	struct responder r = { .fd = sv[0], .kind = RESP_FCGI };
	reply_keep_conn(&r);
	if (r.kind != RESP_DIRECT)
		abort();
	struct reply first = { .status = 200, .body = "<body/>", .body_len = 7 };
	reply_send(&r, &first);
	size_t start = 0;
	for (size_t i = 0; i <= size; i++) {
		if (i < size && data[i] != 0xff)
			continue;
		if (i > start && send(sv[1], data + start, i - start, MSG_DONTWAIT | MSG_NOSIGNAL) < 0)
			break;
		loop_run_once(l, 0);
		uint8_t act = i + 1 < size ? data[i + 1] : 0;
		if (act & 1)
			harness_answer_held();
		if (act & 2)
			drain_answers(sv[1]);
		if ((act & 0x0c) == 0x0c)
			shutdown(sv[1], SHUT_WR);
		loop_run_once(l, 0);
		start = i + 1;
	}
	drain_answers(sv[1]);
	close(sv[1]);
	for (int k = 0; k < 3; k++)
		loop_run_once(l, 0);
	harness_answer_held();
	for (int k = 0; k < 3; k++)
		loop_run_once(l, 0);
	/* the web server gone: nothing of its connection may stay */
	struct fcgi_conn_stats st;
	fcgi_conn_stats(&st);
	if (st.open != 0 || harness_nheld != 0 || reply_pending_count() != 0)
		abort();
	return 0;
}
