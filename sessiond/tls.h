/* tls.h - OpenSSL for the connections to XMPP servers.
 *
 * One client context for the process: TLS 1.2 or later, the system's CA
 * store or tls_ca_file, and a cache of TLS sessions per XMPP domain so a
 * new connection to the same server resumes instead of a full handshake.
 * The peer is checked after the handshake, not during it, so that a refusal
 * can be logged with its reason: the chain (unless pinned), the name
 * against the XMPP domain (RFC 6120 §13.7.2, RFC 6125: DNS-ID, SRV-ID,
 * XmppAddr), and the SPKI pin when one is configured.
 */
#ifndef BOSH_TLS_H
#define BOSH_TLS_H

#include <openssl/ssl.h>
#include <stddef.h>

/* ca_file: PEM bundle, or "" for the system's store. */
int tls_init(const char *ca_file);
void tls_shutdown(void);

/* A client SSL on fd for domain (SNI, resumption). NULL on failure (logged). */
SSL *tls_new(int fd, const char *domain);

/* 0 if the server may be trusted as domain; -1 with the reason in why.
 * pin: base64 SHA-256 of the server key's SubjectPublicKeyInfo, or "". */
int tls_check_peer(SSL *ssl, const char *domain, const char *pin, char *why, size_t whylen);

/* The last OpenSSL error as text (and clears the queue), for logs. */
const char *tls_error(char *buf, size_t len);

#endif
