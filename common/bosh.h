/* bosh.h - protocol constants shared by the handler and sessiond. */
#ifndef BOSH_PROTO_H
#define BOSH_PROTO_H

#define BOSH_NS        "http://jabber.org/protocol/httpbind"
#define XBOSH_NS       "urn:xmpp:xbosh"
#define BOSH_VERSION   "1.11"

/* A terminate body with condition c, as sent when no session is at hand
 * (the handler's own answers) and by sessiond. */
#define BOSH_TERMINATE_BODY(c) \
	"<body xmlns='" BOSH_NS "' type='terminate' condition='" c "'/>"

/* Headers on every HTTP answer, errors included. A client may choose the
 * Content-Type (the 'content' attribute, XEP-0124 §7.1), text/html too, and
 * a page on any origin can make a browser open an answer as a document (a
 * form POST with a sid and rid it owns): the sandbox keeps script in the
 * stanzas from running there, nosniff keeps a browser from taking an answer
 * for another type. fetch() and XMLHttpRequest readers are not affected;
 * the GET script forms are served as text/javascript, which nosniff allows. */
#define BOSH_INERT_HEADERS \
	"Content-Security-Policy: sandbox; default-src 'none'\r\n" \
	"X-Content-Type-Options: nosniff\r\n"

#endif
