#define _GNU_SOURCE
#include "tls.h"
#include "log.h"

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#define CACHE_SLOTS 64

/* Sessions for resumption, one per domain, replaced by the newest ticket. */
struct cached_session {
	char domain[256];
	SSL_SESSION *sess;
	unsigned long used;
};

static SSL_CTX *ctx;
static int domain_index = -1;
static struct cached_session cache[CACHE_SLOTS];
static unsigned long cache_clock;

const char *tls_error(char *buf, size_t len)
{
	unsigned long e = ERR_get_error();
	if (!e)
		snprintf(buf, len, "no further detail");
	else
		ERR_error_string_n(e, buf, len);
	ERR_clear_error();
	return buf;
}

static struct cached_session *cache_slot(const char *domain, int for_store)
{
	struct cached_session *oldest = &cache[0];
	for (int i = 0; i < CACHE_SLOTS; i++) {
		if (cache[i].sess && strcasecmp(cache[i].domain, domain) == 0)
			return &cache[i];
		if (cache[i].used < oldest->used)
			oldest = &cache[i];
	}
	return for_store ? oldest : NULL;
}

/* OpenSSL hands us each new session (TLS 1.3: each ticket, after the handshake). */
static int on_new_session(SSL *ssl, SSL_SESSION *sess)
{
	const char *domain = SSL_get_ex_data(ssl, domain_index);
	if (!domain || strlen(domain) >= sizeof cache[0].domain)
		return 0;
	struct cached_session *c = cache_slot(domain, 1);
	if (c->sess)
		SSL_SESSION_free(c->sess);
	snprintf(c->domain, sizeof c->domain, "%s", domain);
	c->sess = sess;
	c->used = ++cache_clock;
	return 1; /* we keep the reference */
}

static void free_domain(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx, long argl, void *argp)
{
	(void)parent, (void)ad, (void)idx, (void)argl, (void)argp;
	free(ptr);
}

int tls_init(const char *ca_file)
{
	char err[256];
	ctx = SSL_CTX_new(TLS_client_method());
	domain_index = SSL_get_ex_new_index(0, NULL, NULL, NULL, free_domain);
	if (!ctx || domain_index < 0) {
		log_error("TLS: cannot make a context: %s", tls_error(err, sizeof err));
		return -1;
	}
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	/* Idle sessions are the common case: no read/write buffers while idle. */
	SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS | SSL_MODE_ENABLE_PARTIAL_WRITE |
	                      SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
	SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL); /* checked by tls_check_peer() */
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
	SSL_CTX_sess_set_new_cb(ctx, on_new_session);
	int ok = ca_file && *ca_file ? SSL_CTX_load_verify_locations(ctx, ca_file, NULL)
	                             : SSL_CTX_set_default_verify_paths(ctx);
	if (ok != 1) {
		log_error("TLS: cannot load the CA certificates%s%s: %s", ca_file && *ca_file ? " from " : "",
		          ca_file ? ca_file : "", tls_error(err, sizeof err));
		return -1;
	}
	return 0;
}

void tls_shutdown(void)
{
	for (int i = 0; i < CACHE_SLOTS; i++)
		if (cache[i].sess)
			SSL_SESSION_free(cache[i].sess);
	memset(cache, 0, sizeof cache);
	SSL_CTX_free(ctx);
	ctx = NULL;
}

SSL *tls_new(int fd, const char *domain)
{
	char err[256];
	SSL *ssl = SSL_new(ctx);
	char *d = strdup(domain);
	if (!ssl || !d || SSL_set_fd(ssl, fd) != 1 || SSL_set_ex_data(ssl, domain_index, d) != 1) {
		log_error("TLS: cannot start a connection for %s: %s", domain, tls_error(err, sizeof err));
		free(d);
		SSL_free(ssl);
		return NULL;
	}
	SSL_set_connect_state(ssl);
	SSL_set_tlsext_host_name(ssl, domain);
	struct cached_session *c = cache_slot(domain, 0);
	if (c && SSL_SESSION_is_resumable(c->sess)) {
		SSL_set_session(ssl, c->sess);
		c->used = ++cache_clock;
	}
	return ssl;
}

/* RFC 6125 SRV-ID ("_xmpp-client.example.org") or RFC 6120 XmppAddr. */
static int other_name_matches(X509 *cert, const char *domain)
{
	GENERAL_NAMES *names = X509_get_ext_d2i(cert, NID_subject_alt_name, NULL, NULL);
	int found = 0;
	ASN1_OBJECT *srv = OBJ_txt2obj("1.3.6.1.5.5.7.8.7", 1), *xmpp = OBJ_txt2obj("1.3.6.1.5.5.7.8.5", 1);
	for (int i = 0; names && srv && xmpp && !found && i < sk_GENERAL_NAME_num(names); i++) {
		const GENERAL_NAME *gn = sk_GENERAL_NAME_value(names, i);
		if (gn->type != GEN_OTHERNAME)
			continue;
		const OTHERNAME *on = gn->d.otherName;
		const ASN1_TYPE *v = on->value;
		char want[300];
		if (OBJ_cmp(on->type_id, srv) == 0 && v->type == V_ASN1_IA5STRING) {
			const ASN1_STRING *s = v->value.ia5string;
			for (int k = 0; k < 2 && !found; k++) {
				snprintf(want, sizeof want, "%s.%s", k ? "_xmpps-client" : "_xmpp-client", domain);
				found = (size_t)ASN1_STRING_length(s) == strlen(want) &&
				        strncasecmp((const char *)ASN1_STRING_get0_data(s), want, strlen(want)) == 0;
			}
		} else if (OBJ_cmp(on->type_id, xmpp) == 0 && v->type == V_ASN1_UTF8STRING) {
			const ASN1_STRING *s = v->value.utf8string;
			found = (size_t)ASN1_STRING_length(s) == strlen(domain) &&
			        strncasecmp((const char *)ASN1_STRING_get0_data(s), domain, strlen(domain)) == 0;
		}
	}
	ASN1_OBJECT_free(srv);
	ASN1_OBJECT_free(xmpp);
	GENERAL_NAMES_free(names);
	return found;
}

static int pin_matches(X509 *cert, const char *pin)
{
	unsigned char *der = NULL, md[SHA256_DIGEST_LENGTH];
	int len = i2d_X509_PUBKEY(X509_get_X509_PUBKEY(cert), &der);
	if (len <= 0)
		return 0;
	SHA256(der, (size_t)len, md);
	OPENSSL_free(der);
	unsigned char b64[64];
	EVP_EncodeBlock(b64, md, sizeof md);
	return strcmp((const char *)b64, pin) == 0;
}

int tls_check_peer(SSL *ssl, const char *domain, const char *pin, char *why, size_t whylen)
{
	X509 *cert = SSL_get1_peer_certificate(ssl);
	int rc = -1;
	if (!cert) {
		snprintf(why, whylen, "the server sent no certificate");
		return -1;
	}
	long vr = SSL_get_verify_result(ssl);
	if (pin && *pin && !pin_matches(cert, pin))
		snprintf(why, whylen, "the server's key does not match the configured pin");
	else if ((!pin || !*pin) && vr != X509_V_OK)
		snprintf(why, whylen, "certificate not trusted: %s", X509_verify_cert_error_string(vr));
	else if (X509_check_host(cert, domain, 0, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS, NULL) != 1 &&
	         !other_name_matches(cert, domain))
		snprintf(why, whylen, "certificate is not valid for %s", domain);
	else
		rc = 0;
	X509_free(cert);
	return rc;
}
