/* frame.h - the messages between the request handler and sessiond.
 *
 * Transport: a Unix SOCK_SEQPACKET connection, one frame per message, so
 * a passed file descriptor (SCM_RIGHTS) always travels with the frame that
 * explains it. Every frame:
 *
 *   offset 0  'B' 'F'          magic
 *          2  version          FRAME_VERSION
 *          3  type             enum frame_type
 *          4  length           u32 big-endian, bytes of fields that follow
 *          8  fields           tag u8, len u32 big-endian, len bytes
 *
 * String fields end in one NUL and contain no other. Decoders check every
 * length against the message and FRAME_MAX; a frame that fails any check
 * is rejected whole. Unknown tags are skipped (newer senders of the same
 * version may add optional fields); a changed meaning needs a new version.
 *
 * Bump FRAME_VERSION if the meaning of any type or tag changes.
 */
#ifndef BOSH_FRAME_H
#define BOSH_FRAME_H

#include <stddef.h>
#include <stdint.h>

#define FRAME_VERSION    1
#define FRAME_HEADER_LEN 8
#define FRAME_MAX        (1024 * 1024 + 65536) /* largest message, header included */
#define FRAME_MAX_ATTRS  32

enum frame_type {
	FRAME_REQUEST = 1,  /* handler -> sessiond: one HTTP request */
	FRAME_CGI_DATA = 2, /* sessiond -> CGI handler: response bytes (CGI output) */
};

enum frame_tag {
	TAG_FCGI_ID = 1,   /* u16: FastCGI request id on the passed connection */
	TAG_FLAGS = 2,     /* u32: FRAME_F_* */
	TAG_CLIENT = 3,    /* string: client address (REMOTE_ADDR) */
	TAG_METHOD = 4,    /* string: HTTP method */
	TAG_ORIGIN = 5,    /* string: Origin header, if any */
	TAG_ATTR = 6,      /* name NUL value NUL: one <body/> attribute */
	TAG_PAYLOAD = 7,   /* bytes: the payload inside <body/>, as sent */
	TAG_ERROR = 8,     /* string: the handler rejected the body; why */
	TAG_DATA = 9,      /* bytes: FRAME_CGI_DATA content */
	TAG_USER_AGENT = 10, /* string: User-Agent header, if any */
	TAG_WRAP = 11,     /* string: a GET body's answer form: "xml", "script" (_BOSH_), "jsonp:NAME" */
	TAG_PAGE = 12,     /* string: not BOSH but a page of sessiond's (control.h): "metrics", ... */
	TAG_COMMAND = 13,  /* string: boshctl's command (method "CONTROL"; control.h) */
};

/* The web server's connection came with the frame (SCM_RIGHTS). Without
 * it (plain CGI), sessiond answers with FRAME_CGI_DATA frames on the same
 * socket and then closes it. */
#define FRAME_F_FD_PASSED 0x1u
/* Sent only by bosh-prebind over the local socket, never by a handler:
 * answer this request at once, and the page's next request too (it takes
 * the session over; it must not wait out 'wait'). */
#define FRAME_F_HANDOVER 0x2u

/* The web server keeps the connection for its next request (FCGI_KEEP_CONN,
 * nginx's fastcgi_keep_conn on): after the answer sessiond reads that
 * request itself (fcgi_conn.h) instead of closing under the web server. */
#define FRAME_F_KEEP_CONN 0x4u

struct frame_attr {
	const char *name;
	const char *value;
};

/* A decoded request. Pointers aim into the decoded message buffer. */
struct frame_request {
	uint16_t fcgi_id;
	uint32_t flags;
	const char *client;
	const char *method;
	const char *origin;
	const char *user_agent;
	const char *error; /* non-NULL: answer bad-request, log this */
	const char *wrap;  /* GET forms: "xml", "script" or "jsonp:NAME"; NULL for POST */
	const char *page;  /* a page of sessiond's, or NULL */
	const char *command; /* boshctl's command, or NULL */
	struct frame_attr attrs[FRAME_MAX_ATTRS];
	size_t nattrs;
	const uint8_t *payload;
	size_t payload_len;
};

/* Encodes r into buf[0..cap). Returns the frame length, 0 if it does not fit. */
size_t frame_encode_request(uint8_t *buf, size_t cap, const struct frame_request *r);

/* Decodes one whole message. Returns 0, or -1 with a reason in err. */
int frame_decode_request(const uint8_t *buf, size_t len, struct frame_request *out,
                         char *err, size_t errlen);

/* A FRAME_CGI_DATA frame: header and TAG_DATA field around len bytes.
 * Writes FRAME_HEADER_LEN + 5 header bytes to hdr; the data follows. */
#define FRAME_CGI_HDR_LEN (FRAME_HEADER_LEN + 5)
void frame_cgi_data_header(uint8_t hdr[FRAME_CGI_HDR_LEN], size_t len);

/* Decodes a FRAME_CGI_DATA message; data and dlen aim into buf. 0 or -1. */
int frame_decode_cgi_data(const uint8_t *buf, size_t len, const uint8_t **data, size_t *dlen,
                          char *err, size_t errlen);

const char *frame_attr(const struct frame_request *r, const char *name);

#endif
