/* The handler-sessiond frame codec: round trips and hostile frames. */
#include "check.h"
#include "frame.h"

#include <stdint.h>
#include <stdlib.h>

static uint8_t buf[FRAME_MAX];

static size_t sample(void)
{
	struct frame_request r = { .fcgi_id = 513, .flags = FRAME_F_FD_PASSED, .client = "127.0.0.1",
	                           .method = "POST", .origin = "https://chat.example" };
	r.attrs[0] = (struct frame_attr){ "rid", "4242" };
	r.attrs[1] = (struct frame_attr){ "xmpp:version", "1.0" };
	r.nattrs = 2;
	r.payload = (const uint8_t *)"<message/>";
	r.payload_len = 10;
	return frame_encode_request(buf, sizeof buf, &r);
}

static void test_round_trip(void)
{
	size_t n = sample();
	struct frame_request d;
	char err[128];
	CHECK(n > FRAME_HEADER_LEN);
	CHECK(frame_decode_request(buf, n, &d, err, sizeof err) == 0);
	CHECK(d.fcgi_id == 513);
	CHECK(d.flags == FRAME_F_FD_PASSED);
	CHECK_STR(d.client, "127.0.0.1");
	CHECK_STR(d.method, "POST");
	CHECK_STR(d.origin, "https://chat.example");
	CHECK(d.user_agent == NULL && d.error == NULL);
	CHECK(d.nattrs == 2);
	CHECK_STR(frame_attr(&d, "rid"), "4242");
	CHECK_STR(frame_attr(&d, "xmpp:version"), "1.0");
	CHECK(frame_attr(&d, "sid") == NULL);
	CHECK_MEM(d.payload, d.payload_len, "<message/>");
}

static void test_every_truncation_fails(void)
{
	size_t n = sample();
	struct frame_request d;
	char err[128];
	int all_failed = 1;
	for (size_t cut = 0; cut < n; cut++)
		if (frame_decode_request(buf, cut, &d, err, sizeof err) == 0)
			all_failed = 0;
	CHECK(all_failed);
}

static void test_header_checks(void)
{
	size_t n = sample();
	struct frame_request d;
	char err[128];
	buf[2] = FRAME_VERSION + 1;
	CHECK(frame_decode_request(buf, n, &d, err, sizeof err) < 0);
	CHECK(strstr(err, "version") != NULL);
	n = sample();
	buf[0] = 'X';
	CHECK(frame_decode_request(buf, n, &d, err, sizeof err) < 0);
	n = sample();
	buf[3] = FRAME_CGI_DATA;
	CHECK(frame_decode_request(buf, n, &d, err, sizeof err) < 0);
	n = sample();
	buf[7]++; /* length disagrees with the message */
	CHECK(frame_decode_request(buf, n, &d, err, sizeof err) < 0);
}

/* Builds a frame from raw fields to try what an encoder would never make. */
static size_t raw(const uint8_t *fields, size_t len)
{
	memcpy(buf, "BF\x01\x01", 4);
	buf[4] = (uint8_t)(len >> 24);
	buf[5] = (uint8_t)(len >> 16);
	buf[6] = (uint8_t)(len >> 8);
	buf[7] = (uint8_t)len;
	memcpy(buf + 8, fields, len);
	return 8 + len;
}

static void test_hostile_fields(void)
{
	struct frame_request d;
	char err[128];
	static const uint8_t method[] = { TAG_METHOD, 0, 0, 0, 5, 'P', 'O', 'S', 'T', 0 };
	uint8_t f[64];
	/* a string without its NUL */
	static const uint8_t nonul[] = { TAG_METHOD, 0, 0, 0, 4, 'P', 'O', 'S', 'T' };
	CHECK(frame_decode_request(buf, raw(nonul, sizeof nonul), &d, err, sizeof err) < 0);
	/* an embedded NUL */
	static const uint8_t inner[] = { TAG_METHOD, 0, 0, 0, 5, 'P', 0, 'S', 'T', 0 };
	CHECK(frame_decode_request(buf, raw(inner, sizeof inner), &d, err, sizeof err) < 0);
	/* a field longer than the frame */
	static const uint8_t longer[] = { TAG_METHOD, 0, 0, 1, 0, 'P', 0 };
	CHECK(frame_decode_request(buf, raw(longer, sizeof longer), &d, err, sizeof err) < 0);
	/* a field length near 2^32 must not wrap */
	static const uint8_t huge[] = { TAG_PAYLOAD, 0xff, 0xff, 0xff, 0xfc, 'x' };
	CHECK(frame_decode_request(buf, raw(huge, sizeof huge), &d, err, sizeof err) < 0);
	/* a repeated field */
	memcpy(f, method, sizeof method);
	memcpy(f + sizeof method, method, sizeof method);
	CHECK(frame_decode_request(buf, raw(f, 2 * sizeof method), &d, err, sizeof err) < 0);
	/* attribute without value, or with an empty name */
	static const uint8_t attr1[] = { TAG_METHOD, 0, 0, 0, 5, 'P', 'O', 'S', 'T', 0,
	                                 TAG_ATTR, 0, 0, 0, 4, 'r', 'i', 'd', 0 };
	CHECK(frame_decode_request(buf, raw(attr1, sizeof attr1), &d, err, sizeof err) < 0);
	static const uint8_t attr2[] = { TAG_METHOD, 0, 0, 0, 5, 'P', 'O', 'S', 'T', 0,
	                                 TAG_ATTR, 0, 0, 0, 3, 0, 'x', 0 };
	CHECK(frame_decode_request(buf, raw(attr2, sizeof attr2), &d, err, sizeof err) < 0);
	/* fcgi id of the wrong size */
	static const uint8_t id3[] = { TAG_METHOD, 0, 0, 0, 5, 'P', 'O', 'S', 'T', 0,
	                               TAG_FCGI_ID, 0, 0, 0, 3, 1, 2, 3 };
	CHECK(frame_decode_request(buf, raw(id3, sizeof id3), &d, err, sizeof err) < 0);
	/* no method at all */
	static const uint8_t nomethod[] = { TAG_CLIENT, 0, 0, 0, 2, 'a', 0 };
	CHECK(frame_decode_request(buf, raw(nomethod, sizeof nomethod), &d, err, sizeof err) < 0);
	/* an unknown tag is skipped */
	static const uint8_t unknown[] = { 200, 0, 0, 0, 1, 'z', TAG_METHOD, 0, 0, 0, 5, 'P', 'O', 'S', 'T', 0 };
	CHECK(frame_decode_request(buf, raw(unknown, sizeof unknown), &d, err, sizeof err) == 0);
	CHECK_STR(d.method, "POST");
}

static void test_too_many_attrs(void)
{
	struct frame_request r = { .method = "POST" };
	for (int i = 0; i < FRAME_MAX_ATTRS; i++)
		r.attrs[i] = (struct frame_attr){ "a", "b" };
	r.nattrs = FRAME_MAX_ATTRS;
	size_t n = frame_encode_request(buf, sizeof buf, &r);
	struct frame_request d;
	char err[128];
	CHECK(frame_decode_request(buf, n, &d, err, sizeof err) == 0);
	/* one more attribute field than the decoder keeps */
	static const uint8_t extra[] = { TAG_ATTR, 0, 0, 0, 4, 'a', 0, 'b', 0 };
	memcpy(buf + n, extra, sizeof extra);
	size_t len = n - 8 + sizeof extra;
	buf[4] = (uint8_t)(len >> 24);
	buf[5] = (uint8_t)(len >> 16);
	buf[6] = (uint8_t)(len >> 8);
	buf[7] = (uint8_t)len;
	CHECK(frame_decode_request(buf, n + sizeof extra, &d, err, sizeof err) < 0);
}

static void test_encode_bounds(void)
{
	struct frame_request r = { .method = "POST" };
	static uint8_t big[FRAME_MAX];
	r.payload = big;
	r.payload_len = sizeof big; /* cannot fit with the header */
	CHECK(frame_encode_request(buf, sizeof buf, &r) == 0);
	uint8_t small[16];
	r.payload_len = 100;
	CHECK(frame_encode_request(small, sizeof small, &r) == 0);
}

static void test_cgi_data(void)
{
	uint8_t m[FRAME_CGI_HDR_LEN + 5];
	frame_cgi_data_header(m, 5);
	memcpy(m + FRAME_CGI_HDR_LEN, "hello", 5);
	const uint8_t *data;
	size_t len;
	char err[128];
	CHECK(frame_decode_cgi_data(m, sizeof m, &data, &len, err, sizeof err) == 0);
	CHECK_MEM(data, len, "hello");
	CHECK(frame_decode_cgi_data(m, sizeof m - 1, &data, &len, err, sizeof err) < 0);
	m[8] = TAG_PAYLOAD;
	CHECK(frame_decode_cgi_data(m, sizeof m, &data, &len, err, sizeof err) < 0);
}

int main(void)
{
	test_round_trip();
	test_every_truncation_fails();
	test_header_checks();
	test_hostile_fields();
	test_too_many_attrs();
	test_encode_bounds();
	test_cgi_data();
	return check_summary("frame");
}
