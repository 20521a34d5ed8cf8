/* bosh-prebind - log in on the server side and hand the session to a page.
 *
 *   echo "$PASSWORD" | bosh-prebind [-c CONFIG] [-r RESOURCE] [-w WAIT] user@domain
 *   {"jid":"user@domain/RESOURCE","sid":"...","rid":123}
 *
 * It speaks BOSH to sessiond over sessiond's own Unix socket (the frames a
 * plain-CGI handler sends), so it is reachable only on this machine: a PHP
 * or Python page runs it and passes jid, sid and rid to its web client
 * (Strophe.js attach), which continues the session with rid. The password
 * is read from standard input, never from the command line (ps shows that).
 */
#define _GNU_SOURCE
#include "bosh.h"
#include "config.h"
#include "frame.h"
#include "xmlparser.h"

#include <errno.h>
#include <expat.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#define SASL_NS "urn:ietf:params:xml:ns:xmpp-sasl"
#define BIND_NS "urn:ietf:params:xml:ns:xmpp-bind"
#define STREAMS_NS "http://etherx.jabber.org/streams"
#define TRIES 8

static struct config cfg;
static uint8_t frame[FRAME_MAX];

/* What one answer said. */
struct answer {
	char sid[64], type[32], condition[64];
	int features, bind_offered, success, failure;
	char jid[1024];
	int depth, in_jid;
};

static void die(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fprintf(stderr, "bosh-prebind: ");
	vfprintf(stderr, fmt, ap);
	fprintf(stderr, "\n");
	va_end(ap);
	exit(1);
}

static int is(const char *name, const char *ns, const char *local)
{
	size_t n = strlen(ns);
	return strncmp(name, ns, n) == 0 && name[n] == '|' && strcmp(name + n + 1, local) == 0;
}

static void on_start(void *ud, const char *name, const char **atts)
{
	struct answer *a = ud;
	if (a->depth == 0)
		for (int i = 0; atts[i]; i += 2) {
			const char *n = strrchr(atts[i], '|') ? strrchr(atts[i], '|') + 1 : atts[i];
			if (strcmp(n, "sid") == 0)
				snprintf(a->sid, sizeof a->sid, "%s", atts[i + 1]);
			else if (strcmp(n, "type") == 0)
				snprintf(a->type, sizeof a->type, "%s", atts[i + 1]);
			else if (strcmp(n, "condition") == 0)
				snprintf(a->condition, sizeof a->condition, "%s", atts[i + 1]);
		}
	a->features |= is(name, STREAMS_NS, "features");
	a->bind_offered |= is(name, BIND_NS, "bind") && a->depth == 2;
	a->success |= is(name, SASL_NS, "success");
	a->failure |= is(name, SASL_NS, "failure");
	a->in_jid = is(name, BIND_NS, "jid");
	a->depth++;
}

static void on_end(void *ud, const char *name)
{
	struct answer *a = ud;
	(void)name;
	a->in_jid = 0;
	a->depth--;
}

static void on_text(void *ud, const char *s, int len)
{
	struct answer *a = ud;
	size_t have = strlen(a->jid);
	if (a->in_jid && have + (size_t)len < sizeof a->jid)
		memcpy(a->jid + have, s, (size_t)len), a->jid[have + (size_t)len] = 0;
}

/* sessiond answers with CGI output: headers, blank line, body. */
static void parse_answer(const char *out, size_t len, struct answer *a)
{
	const char *body = memmem(out, len, "\r\n\r\n", 4);
	if (!body)
		die("sessiond sent no answer body");
	body += 4;
	memset(a, 0, sizeof *a);
	XML_Parser p = xml_parser_new('|');
	XML_SetUserData(p, a);
	XML_SetElementHandler(p, on_start, on_end);
	XML_SetCharacterDataHandler(p, on_text);
	if (XML_Parse(p, body, (int)(out + len - body), 1) != XML_STATUS_OK)
		die("sessiond's answer is not XML: %s", XML_ErrorString(XML_GetErrorCode(p)));
	XML_ParserFree(p);
	if (strcmp(a->type, "terminate") == 0)
		die("the session ended: %s", a->condition[0] ? a->condition : "terminate");
}

/* One BOSH request over sessiond's socket, as a plain-CGI handler sends it. */
static void request(struct frame_request *fr, struct answer *a)
{
	size_t n = frame_encode_request(frame, sizeof frame, fr);
	int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	if (strlen(cfg.control_socket) >= sizeof sa.sun_path)
		die("control_socket path too long: %s", cfg.control_socket);
	memcpy(sa.sun_path, cfg.control_socket, strlen(cfg.control_socket) + 1);
	if (!n || fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0 ||
	    send(fd, frame, n, MSG_NOSIGNAL) != (ssize_t)n)
		die("cannot reach sessiond at %s: %s", cfg.control_socket, strerror(errno));
	static char out[FRAME_MAX];
	size_t got = 0;
	for (;;) {
		ssize_t m = recv(fd, frame, sizeof frame, 0);
		if (m <= 0)
			break;
		const uint8_t *data;
		size_t dlen;
		char err[128];
		if (frame_decode_cgi_data(frame, (size_t)m, &data, &dlen, err, sizeof err) < 0)
			die("bad answer from sessiond: %s", err);
		if (got + dlen > sizeof out)
			die("answer too large");
		memcpy(out + got, data, dlen);
		got += dlen;
	}
	close(fd);
	parse_answer(out, got, a);
}

struct client {
	char sid[64];
	long long rid;
	char rid_s[32];
};

static uint32_t post_flags;

static void post(struct client *c, const char *payload, const char *extra_name, const char *extra_value,
                 struct answer *a)
{
	struct frame_request fr = { .method = "POST", .client = "local:bosh-prebind", .flags = post_flags,
	                            .payload = (const uint8_t *)payload,
	                            .payload_len = payload ? strlen(payload) : 0 };
	snprintf(c->rid_s, sizeof c->rid_s, "%lld", ++c->rid);
	fr.attrs[fr.nattrs++] = (struct frame_attr){ "sid", c->sid };
	fr.attrs[fr.nattrs++] = (struct frame_attr){ "rid", c->rid_s };
	if (extra_name)
		fr.attrs[fr.nattrs++] = (struct frame_attr){ extra_name, extra_value };
	request(&fr, a);
}

/* Posts payload, then polls until the answer has what want() looks for. */
static void until(struct client *c, const char *payload, int (*want)(const struct answer *),
                  struct answer *a)
{
	post(c, payload, NULL, NULL, a);
	for (int i = 0; !want(a) && i < TRIES; i++)
		post(c, NULL, NULL, NULL, a);
	if (!want(a))
		die("no answer from the XMPP server in time");
}

static int got_features(const struct answer *a) { return a->features; }
static int got_sasl(const struct answer *a) { return a->success || a->failure; }
static int got_jid(const struct answer *a) { return a->jid[0] != 0; }

static void create(struct client *c, const char *domain, const char *wait, struct answer *a)
{
	unsigned char r[6];
	RAND_bytes(r, sizeof r);
	c->rid = 1 + ((long long)r[0] << 40 | (long long)r[1] << 32 | (long long)r[2] << 24 |
	              (long long)r[3] << 16 | r[4] << 8 | r[5]);
	snprintf(c->rid_s, sizeof c->rid_s, "%lld", c->rid);
	struct frame_request fr = { .method = "POST", .client = "local:bosh-prebind" };
	struct frame_attr attrs[] = { { "to", domain }, { "rid", c->rid_s }, { "wait", wait },
	                              { "hold", "1" }, { "ver", BOSH_VERSION }, { "xml:lang", "en" },
	                              { "xmpp:version", "1.0" } };
	memcpy(fr.attrs, attrs, sizeof attrs);
	fr.nattrs = sizeof attrs / sizeof attrs[0];
	request(&fr, a);
	snprintf(c->sid, sizeof c->sid, "%s", a->sid);
	if (!c->sid[0])
		die("no session id in sessiond's answer");
	if (!a->features)
		until(c, NULL, got_features, a);
}

/* s as JSON string content. */
static void print_json(const char *s)
{
	for (; *s; s++) {
		unsigned char ch = (unsigned char)*s;
		if (ch == '"' || ch == '\\')
			printf("\\%c", ch);
		else if (ch < 0x20)
			printf("\\u%04x", ch);
		else
			putchar(ch);
	}
}

/* s escaped for XML text. */
static void xml_text(char *dst, size_t cap, const char *s)
{
	size_t o = 0;
	for (; *s && o + 6 < cap; s++) {
		const char *e = *s == '<' ? "&lt;" : *s == '&' ? "&amp;" : *s == '>' ? "&gt;" : NULL;
		size_t n = e ? strlen(e) : 1;
		memcpy(dst + o, e ? e : s, n);
		o += n;
	}
	dst[o] = 0;
}

static void read_password(char *pw, size_t size)
{
	if (!fgets(pw, (int)size, stdin))
		die("give the password on standard input");
	pw[strcspn(pw, "\r\n")] = 0;
}

int main(int argc, char **argv)
{
	const char *config = "bosh.conf", *resource = NULL, *wait = "10";
	int opt;
	while ((opt = getopt(argc, argv, "c:r:w:")) != -1) {
		switch (opt) {
		case 'c': config = optarg; break;
		case 'r': resource = optarg; break;
		case 'w': wait = optarg; break;
		default: die("usage: bosh-prebind [-c CONFIG] [-r RESOURCE] [-w WAIT] user@domain < password");
		}
	}
	if (optind != argc - 1 || !strchr(argv[optind], '@'))
		die("usage: bosh-prebind [-c CONFIG] [-r RESOURCE] [-w WAIT] user@domain < password");
	char err[512], user[512], password[1024];
	config_defaults(&cfg);
	if (config_load(&cfg, config, err, sizeof err) < 0)
		die("%s", err);
	snprintf(user, sizeof user, "%s", argv[optind]);
	char *domain = strchr(user, '@');
	*domain++ = 0;
	read_password(password, sizeof password);

	struct client c = { 0 };
	struct answer a;
	create(&c, domain, wait, &a);
	/* SASL PLAIN: authzid empty, authcid, password */
	char plain[1600];
	int plen = snprintf(plain, sizeof plain, "%c%s%c%s", 0, user, 0, password);
	unsigned char b64[2200];
	EVP_EncodeBlock(b64, (const unsigned char *)plain, plen);
	char auth[2400];
	snprintf(auth, sizeof auth, "<auth xmlns='" SASL_NS "' mechanism='PLAIN'>%s</auth>", b64);
	until(&c, auth, got_sasl, &a);
	if (!a.success)
		die("authentication failed for %s@%s", user, domain);
	post(&c, NULL, "xmpp:restart", "true", &a);
	if (!a.features)
		until(&c, NULL, got_features, &a);
	char bind[2000], res[1200] = "";
	if (resource)
		xml_text(res, sizeof res, resource);
	snprintf(bind, sizeof bind, "<iq xmlns='jabber:client' type='set' id='prebind1'><bind xmlns='" BIND_NS "'>"
	         "%s%s%s</bind></iq>", resource ? "<resource>" : "", res, resource ? "</resource>" : "");
	until(&c, bind, got_jid, &a);
	/* Hand the session over: sessiond answers this at once, and the page's
	 * first request (the next rid) at once too, with whatever is queued. */
	struct answer last;
	post_flags = FRAME_F_HANDOVER;
	post(&c, NULL, NULL, NULL, &last);
	printf("{\"jid\":\"");
	print_json(a.jid);
	printf("\",\"sid\":\"%s\",\"rid\":%lld}\n", c.sid, c.rid + 1);
	return 0;
}
