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

#endif
