/* The whole request path in one process: a BOSH body as the handler parses
 * it (fcgi/body.c), the frame it sends with the web server's connection
 * attached, sessiond's front (frame decoding, dispatch), the session rules,
 * the XMPP connection and its stream header, and the answers written back.
 * The XMPP server is this fuzzer too: it greets every connection sessiond
 * makes and sends what the input says.
 *
 * Input: a list of operations, each an op byte and a 2-byte length:
 *   0 POST   body text; "$S" becomes the newest sid, "$R" its next rid
 *   1 SERVER bytes for the newest server connection
 *   2 GET    body text as a script-form GET (allow_get)
 *   3 OTHER  an OPTIONS or PUT request with no body
 * Every answer must be well-formed: FastCGI records, a Status line,
 * header lines of printable bytes (no header a client could inject),
 * and a <body/> answer that parses as XML.
 */
#define _GNU_SOURCE
#include "body.h"
#include "config.h"
#include "frame.h"
#include "front.h"
#include "log.h"
#include "loop.h"
#include "reply.h"
#include "resolver.h"
#include "session.h"
#include "store.h"
#include "tls.h"

#include <errno.h>
#include <expat.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#define MAX_OPEN 64
#define GREETING "<?xml version='1.0'?><stream:stream xmlns='jabber:client' " \
	"xmlns:stream='http://etherx.jabber.org/streams' id='fz1' from='fuzz.test' version='1.0'>" \
	"<stream:features><mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>" \
	"<mechanism>PLAIN</mechanism></mechanisms></stream:features>"

static struct config cfg;
static struct loop *loop;
static int handler_fd = -1, server_listener = -1;

/* An answer on its way: our end of the "web server's" connection. */
struct answer {
	int fd;
	char *data;
	size_t len;
};
static struct answer answers[MAX_OPEN];
static int nanswers;
static int servers[MAX_OPEN], nservers;
static char sid[64];                /* the newest session's */
static char sids[MAX_OPEN][64];     /* every session this input made */
static int nsids;
static long long next_rid;

static void die(const char *what)
{
	fprintf(stderr, "fuzz_session: %s\n", what);
	abort();
}

static int listen_unix(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	snprintf(sa.sun_path, sizeof sa.sun_path, "%s", path);
	int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0 || listen(fd, 16) < 0)
		die("control socket");
	return fd;
}

static int connect_unix(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	snprintf(sa.sun_path, sizeof sa.sun_path, "%s", path);
	int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0)
		die("connect to the control socket");
	return fd;
}

static unsigned listen_tcp(void)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof sa;
	server_listener = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (server_listener < 0 || bind(server_listener, (struct sockaddr *)&sa, sizeof sa) < 0 ||
	    listen(server_listener, 64) < 0 || getsockname(server_listener, (struct sockaddr *)&sa, &len) < 0)
		die("server listener");
	return ntohs(sa.sin_port);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc, (void)argv;
	char dir[] = "/tmp/fuzz-session-XXXXXX", path[256], control[256];
	if (!mkdtemp(dir))
		die("mkdtemp");
	unsigned port = listen_tcp();
	snprintf(path, sizeof path, "%s/bosh.conf", dir);
	snprintf(control, sizeof control, "%s/control.sock", dir);
	FILE *f = fopen(path, "w");
	if (!f)
		die("config");
	fprintf(f, "database = %s/sessions.db\nbackend.fuzz.test = 127.0.0.1:%u\nallow_get = 1\n"
	           "cors_origins = https://a.example\nmax_data_held = 65536\ndb_flush_ms = 0\n",
	        dir, port);
	fclose(f);
	char err[512];
	config_defaults(&cfg);
	if (config_load(&cfg, path, err, sizeof err) < 0)
		die(err);
	log_open("fuzz", "/dev/null", LOG_ERROR);
	if (!(loop = loop_new()) || resolver_init(loop, "", 1000) < 0 || tls_init(NULL) < 0 ||
	    store_open(cfg.database, err, sizeof err) < 0)
		die("sessiond's modules");
	reply_init(loop, &cfg);
	if (sessions_init(loop, &cfg) < 0 || front_start(loop, listen_unix(control), &cfg) < 0)
		die("sessions");
	loop_set_idle(loop, sessions_idle, NULL);
	handler_fd = connect_unix(control);
	return 0;
}

/* ---- what sessiond writes back ---- */

static void check_headers(const char *h, size_t len)
{
	if (len < 8 || memcmp(h, "Status: ", 8) != 0)
		die("an answer without a Status line");
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)h[i];
		if (c == '\r' && !(i + 1 < len && h[i + 1] == '\n'))
			die("a bare CR in the headers");
		if (c == '\n' && !(i > 0 && h[i - 1] == '\r'))
			die("a bare LF in the headers");
		if (c != '\r' && c != '\n' && c != '\t' && (c < 0x20 || c == 0x7f))
			die("a control byte in the headers");
	}
}

static void check_xml(const char *body, size_t len)
{
	XML_Parser p = XML_ParserCreate("UTF-8");
	if (!p)
		return;
	if (XML_Parse(p, body, (int)len, 1) != XML_STATUS_OK) {
		fprintf(stderr, "answer body: %.*s\n", (int)(len > 2000 ? 2000 : len), body);
		die("an answer whose XML body does not parse");
	}
	XML_ParserFree(p);
}

static void remember_sid(const char *body)
{
	const char *s = strstr(body, " sid='");
	if (!s || strstr(body, "type='terminate'"))
		return;
	s += 6;
	size_t n = strcspn(s, "'");
	if (n >= sizeof sid)
		return;
	memcpy(sid, s, n);
	sid[n] = 0;
	for (int i = 0; i < nsids; i++)
		if (strcmp(sids[i], sid) == 0)
			return;
	if (nsids < MAX_OPEN)
		memcpy(sids[nsids++], sid, n + 1);
}

/* The CGI-style answer inside the FastCGI records. */
static void check_answer(struct answer *a)
{
	char *out = malloc(a->len + 1);
	size_t olen = 0, o = 0;
	int ended = 0;
	if (!out)
		return;
	while (o + 8 <= a->len) {
		const unsigned char *r = (const unsigned char *)a->data + o;
		size_t clen = (size_t)r[4] << 8 | r[5], pad = r[6];
		if (r[0] != 1 || o + 8 + clen + pad > a->len)
			die("a malformed FastCGI record");
		if (r[1] == 6)
			memcpy(out + olen, r + 8, clen), olen += clen;
		ended |= r[1] == 3;
		o += 8 + clen + pad;
	}
	if (a->len && (!ended || o != a->len))
		die("FastCGI records cut short");
	out[olen] = 0;
	char *sep = a->len ? strstr(out, "\r\n\r\n") : NULL;
	if (a->len && !sep)
		die("an answer without the blank line after its headers");
	if (sep) {
		check_headers(out, (size_t)(sep - out) + 2);
		char *body = sep + 4;
		if (*body == '<') /* the <body/> answers; plain-text refusals are not XML */
			check_xml(body, olen - (size_t)(body - out));
		remember_sid(body);
	}
	free(out);
}

static void read_answers(void)
{
	for (int i = 0; i < nanswers; i++) {
		struct answer *a = &answers[i];
		char buf[16384];
		ssize_t n;
		while ((n = recv(a->fd, buf, sizeof buf, MSG_DONTWAIT)) > 0) {
			char *d = realloc(a->data, a->len + (size_t)n);
			if (!d)
				die("out of memory");
			memcpy(d + a->len, buf, (size_t)n);
			a->data = d;
			a->len += (size_t)n;
		}
		if (n == 0) { /* sessiond closed it: the answer is whole */
			check_answer(a);
			close(a->fd);
			free(a->data);
			answers[i--] = answers[--nanswers];
		}
	}
}

/* ---- the XMPP server's side ---- */

static void serve(void)
{
	int fd;
	while (nservers < MAX_OPEN &&
	       (fd = accept4(server_listener, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0) {
		servers[nservers++] = fd;
		if (send(fd, GREETING, sizeof GREETING - 1, MSG_NOSIGNAL) < 0)
			continue;
	}
	char buf[16384];
	for (int i = 0; i < nservers; i++) /* what sessiond sends the server is read and dropped */
		while (recv(servers[i], buf, sizeof buf, MSG_DONTWAIT) > 0)
			;
}

static void pump(void)
{
	for (int quiet = 0, turns = 0; quiet < 4 && turns < 200; turns++) {
		int n = loop_run_once(loop, 0);
		serve();
		read_answers();
		quiet = n > 0 ? 0 : quiet + 1;
	}
}

/* ---- the handler's side ---- */

static void send_frame(const struct frame_request *fr)
{
	static uint8_t frame[FRAME_MAX];
	int sv[2];
	size_t len = frame_encode_request(frame, sizeof frame, fr);
	if (!len || nanswers == MAX_OPEN || socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
		return;
	union { struct cmsghdr h; char b[CMSG_SPACE(sizeof(int))]; } u = { 0 };
	struct iovec iov = { frame, len };
	struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.b,
	                    .msg_controllen = sizeof u.b };
	struct cmsghdr *c = CMSG_FIRSTHDR(&m);
	c->cmsg_level = SOL_SOCKET;
	c->cmsg_type = SCM_RIGHTS;
	c->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(c), &sv[1], sizeof(int));
	if (sendmsg(handler_fd, &m, MSG_NOSIGNAL) < 0)
		die("sendmsg to sessiond");
	close(sv[1]);
	answers[nanswers++] = (struct answer){ .fd = sv[0] };
}

/* "$S" and "$R" filled in, so that inputs reach existing sessions. */
static char *expand(const uint8_t *data, size_t len, size_t *outlen)
{
	char *out = malloc(len * 16 + 1), rid[24];
	size_t o = 0;
	if (!out)
		return NULL;
	for (size_t i = 0; i < len; i++) {
		if (data[i] == '$' && i + 1 < len && (data[i + 1] == 'S' || data[i + 1] == 'R')) {
			const char *v = data[i + 1] == 'S' ? sid : rid;
			if (data[i + 1] == 'R')
				snprintf(rid, sizeof rid, "%lld", ++next_rid);
			memcpy(out + o, v, strlen(v));
			o += strlen(v);
			i++;
		} else {
			out[o++] = (char)data[i];
		}
	}
	*outlen = o;
	return out;
}

static void request(const char *method, const char *wrap, const uint8_t *data, size_t len)
{
	struct frame_request fr = { .fcgi_id = 1, .flags = FRAME_F_FD_PASSED, .client = "192.0.2.1",
	                            .method = method, .origin = "https://a.example",
	                            .user_agent = "fuzz", .wrap = wrap };
	struct body b = { 0 };
	char why[256] = "";
	size_t blen = 0;
	char *text = data ? expand(data, len, &blen) : NULL;
	if (text && body_parse(text, blen, &b, why, sizeof why) == 0 && b.nattrs <= FRAME_MAX_ATTRS) {
		for (size_t i = 0; i < b.nattrs; i++)
			fr.attrs[i] = (struct frame_attr){ b.attrs[i].name, b.attrs[i].value };
		fr.nattrs = b.nattrs;
		fr.payload = (const uint8_t *)b.payload;
		fr.payload_len = b.payload_len;
		const char *rid = body_attr(&b, "rid");
		if (rid && !body_attr(&b, "sid"))
			next_rid = atoll(rid); /* a creation: its rids follow on */
	} else if (text) {
		fr.error = why[0] ? why : "bad body";
	}
	send_frame(&fr);
	body_free(&b);
	free(text);
	pump();
}

static void to_server(const uint8_t *data, size_t len)
{
	if (nservers && send(servers[nservers - 1], data, len, MSG_NOSIGNAL | MSG_DONTWAIT) < 0)
		return;
	pump();
}

/* Every session ends (and is told so), every connection closes: the next
 * input starts from nothing. */
static void reset(void)
{
	sessions_end_all("system-shutdown");
	pump();
	for (int i = 0; i < nservers; i++)
		close(servers[i]);
	nservers = 0;
	pump();
	for (int i = 0; i < nsids; i++) { /* an ended session goes once its client has heard why */
		char poll[160];
		int n = snprintf(poll, sizeof poll,
		                 "<body xmlns='http://jabber.org/protocol/httpbind' sid='%s' rid='1'/>", sids[i]);
		request("POST", NULL, (const uint8_t *)poll, (size_t)n);
	}
	nsids = 0;
	for (int i = 0; i < nanswers; i++) {
		close(answers[i].fd);
		free(answers[i].data);
	}
	nanswers = 0;
	pump();
	sid[0] = 0;
	next_rid = 0;
	if (getenv("FUZZ_SESSION_DEBUG"))
		fprintf(stderr, "sessions left: %zu, answers open: %d\n", sessions_count(), nanswers);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	size_t o = 0;
	while (o + 3 <= size) {
		int op = data[o] & 3;
		size_t len = (size_t)data[o + 1] << 8 | data[o + 2];
		o += 3;
		if (len > size - o)
			len = size - o;
		const uint8_t *d = data + o;
		o += len;
		if (op == 0)
			request("POST", NULL, d, len);
		else if (op == 1)
			to_server(d, len);
		else if (op == 2)
			request("GET", len % 2 ? "script" : "jsonp:cb", d, len);
		else
			request(len % 2 ? "OPTIONS" : "PUT", NULL, NULL, 0);
	}
	reset();
	return 0;
}
