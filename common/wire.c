/* wire.c -- bounded encoding, decoding and checking of the agent wire. */
#include "wire.h"

#include "digest_set.h"
#include "errbuf.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/x509.h>

/* Certificates whose DER is known to parse (s_parsed_known). */
#define WIRE_PARSED_CACHE 16384

/* Nesting of wire.proto is three deep; anything deeper is a schema bug. */
#define WIRE_DEPTH_MAX 8

size_t
wire_utf8_seq(const void *p, size_t n, uint32_t *cp_out)
{
	const unsigned char *s = p;
	size_t need;
	uint32_t cp;

	if (n == 0)
		return 0;
	if (s[0] < 0x80) {
		need = 1;
		cp = s[0];
		goto out;
	}
	if ((s[0] & 0xe0) == 0xc0) {
		need = 2;
		cp = s[0] & 0x1f;
	} else if ((s[0] & 0xf0) == 0xe0) {
		need = 3;
		cp = s[0] & 0x0f;
	} else if ((s[0] & 0xf8) == 0xf0) {
		need = 4;
		cp = s[0] & 0x07;
	} else {
		return 0;
	}
	if (n < need)
		return 0;
	for (size_t i = 1; i < need; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (s[i] & 0x3f);
	}
	if ((need == 2 && cp < 0x80) || (need == 3 && cp < 0x800) ||
	    (need == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
	    (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
out:
	if (cp_out != NULL)
		*cp_out = cp;
	return need;
}

int
wire_utf8_valid(const char *s, size_t len)
{
	const unsigned char *u = (const unsigned char *)s;

	for (size_t i = 0; i < len;) {
		size_t l = wire_utf8_seq(u + i, len - i, NULL);
		if (l == 0)
			return 0;
		i += l;
	}
	return 1;
}

char *
wire_utf8_clean(const char *s, size_t len)
{
	const unsigned char *u = (const unsigned char *)s;
	char *out;
	size_t o = 0;

	/* Each bad byte becomes the three bytes of U+FFFD. */
	if (len > (SIZE_MAX - 1) / 3 || (out = malloc(len * 3 + 1)) == NULL)
		return NULL;
	for (size_t i = 0; i < len;) {
		size_t l = u[i] == 0 ? 0 : wire_utf8_seq(u + i, len - i, NULL);
		if (l == 0) {
			memcpy(out + o, "\xef\xbf\xbd", 3);
			o += 3;
			i++;
		} else {
			memcpy(out + o, u + i, l);
			o += l;
			i += l;
		}
	}
	out[o] = '\0';
	return out;
}

int
wire_host_valid(const char *name)
{
	size_t len, label = 0, dots = 0;

	if (name == NULL || (len = strlen(name)) == 0 || len > 253)
		return 0;
	for (size_t i = 0; i <= len; i++) {
		char c = name[i];
		if (c == '.' || c == '\0') {
			if (label == 0 || label > 63 || name[i - 1] == '-')
				return 0;
			if (c == '.')
				dots++;
			label = 0;
			continue;
		}
		if (label == 0 && c == '-')
			return 0;
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
			(c >= '0' && c <= '9') || c == '-'))
			return 0;
		label++;
	}
	return dots > 0;
}

/*
 * protobuf-c 1.4 does not check that string fields are UTF-8, so every
 * string of the message is walked through its descriptor: fields added to
 * wire.proto later are covered without touching this.  The same walk
 * bounds the nesting and refuses unknown fields numbered 0.
 */
static int
s_fields_ok(const ProtobufCMessage *m, int depth, char *err, size_t errlen)
{
	const ProtobufCMessageDescriptor *d = m->descriptor;
	const char *base = (const char *)m;

	if (depth > WIRE_DEPTH_MAX) {
		errbuf_set(err, errlen, "message nested too deep");
		return -1;
	}
	/*
	 * protobuf-c keeps field number 0 as an unknown field when its tag
	 * is spelled as a long varint, then writes a tag it refuses itself:
	 * refuse it here so that what we accept, we can also forward.
	 */
	for (size_t i = 0; i < m->n_unknown_fields; i++) {
		if (m->unknown_fields[i].tag == 0) {
			errbuf_set(
			    err, errlen, "field number 0 in %s", d->short_name);
			return -1;
		}
	}
	for (unsigned i = 0; i < d->n_fields; i++) {
		const ProtobufCFieldDescriptor *f = &d->fields[i];
		const void *const *v;
		size_t n;

		if (f->type != PROTOBUF_C_TYPE_STRING &&
		    f->type != PROTOBUF_C_TYPE_MESSAGE)
			continue;
		if ((f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) &&
		    *(const uint32_t *)(base + f->quantifier_offset) != f->id)
			continue;
		if (f->label == PROTOBUF_C_LABEL_REPEATED) {
			n = *(const size_t *)(base + f->quantifier_offset);
			v = *(const void *const *const *)(base + f->offset);
		} else {
			n = 1;
			v = (const void *const *)(base + f->offset);
		}
		for (size_t k = 0; k < n; k++) {
			if (v[k] == NULL)
				continue;
			if (f->type == PROTOBUF_C_TYPE_MESSAGE) {
				if (s_fields_ok(v[k], depth + 1, err, errlen) ==
				    -1)
					return -1;
			} else if (!wire_utf8_valid(v[k], strlen(v[k]))) {
				errbuf_set(err, errlen,
				    "invalid UTF-8 in %s.%s", d->short_name,
				    f->name);
				return -1;
			}
		}
	}
	return 0;
}

/* Length and size discipline shared by both decoders. */
static int
s_size_ok(const void *buf, size_t len, char *err, size_t errlen)
{
	if (buf == NULL || len == 0) {
		errbuf_set(err, errlen, "empty message");
		return -1;
	}
	if (len > WIRE_MAX) {
		errbuf_set(err, errlen, "oversized message: %zu bytes", len);
		return -1;
	}
	return 0;
}

static int
s_code_ok(const char *code)
{
	size_t n = strlen(code);

	if (n == 0 || n > WIRE_CODE_MAX)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (!((code[i] >= 'A' && code[i] <= 'Z') ||
			(code[i] >= '0' && code[i] <= '9') || code[i] == '_'))
			return 0;
	return 1;
}

/*
 * The digests of certificate DER that parsed.  Agents send the same
 * certificates round after round (every chain ends in one of a few
 * intermediates), and parsing one is most of the cost of decoding a
 * result; whether bytes parse depends on nothing but the bytes.  Shared
 * by the threads of the process under the lock; when it cannot be made,
 * every certificate is parsed as before.
 */
static pthread_mutex_t parsed_lock = PTHREAD_MUTEX_INITIALIZER;
static struct digest_set *parsed_set;
static int parsed_failed;

static int
s_parsed_known(const unsigned char *digest)
{
	int known = 0;

	if (pthread_mutex_lock(&parsed_lock) != 0)
		return 0;
	if (parsed_set != NULL)
		known = digest_set_has(parsed_set, digest);
	pthread_mutex_unlock(&parsed_lock);
	return known;
}

static void
s_parsed_add(const unsigned char *digest)
{
	if (pthread_mutex_lock(&parsed_lock) != 0)
		return;
	if (parsed_set == NULL && !parsed_failed &&
	    (parsed_set = digest_set_new(WIRE_PARSED_CACHE)) == NULL)
		parsed_failed = 1;
	if (parsed_set != NULL)
		digest_set_add(parsed_set, digest);
	pthread_mutex_unlock(&parsed_lock);
}

/* Every chain reference of h names one of the n digests. */
static int
s_chain_ok(const Mtastswatch__V1__HostObservation *h,
    const unsigned char (*digest)[WIRE_SHA256_LEN], size_t n, const char *who,
    char *err, size_t errlen)
{
	if (h == NULL)
		return 0;
	for (size_t i = 0; i < h->n_chain_sha256; i++) {
		const ProtobufCBinaryData *ref = &h->chain_sha256[i];
		size_t k;

		if (ref->len != WIRE_SHA256_LEN) {
			errbuf_set(err, errlen, "%s chain ref %zu: %zu bytes",
			    who, i, ref->len);
			return -1;
		}
		for (k = 0; k < n; k++)
			if (memcmp(ref->data, digest[k], WIRE_SHA256_LEN) == 0)
				break;
		if (k == n) {
			errbuf_set(err, errlen,
			    "%s chain ref %zu without certificate", who, i);
			return -1;
		}
	}
	return 0;
}

static int
s_result_ok(const Mtastswatch__V1__ProbeResult *r, char *err, size_t errlen)
{
	unsigned char digest[WIRE_CERTS_MAX][WIRE_SHA256_LEN];
	char who[32];

	if (r->seq == 0) {
		errbuf_set(err, errlen, "result without seq");
		return -1;
	}
	if (!wire_host_valid(r->domain)) {
		errbuf_set(err, errlen, "bad domain");
		return -1;
	}
	if (r->n_mx > WIRE_MX_MAX || r->n_findings > WIRE_FINDINGS_MAX ||
	    r->n_certificates > WIRE_CERTS_MAX) {
		errbuf_set(err, errlen,
		    "too many: %zu mx, %zu findings, %zu certificates", r->n_mx,
		    r->n_findings, r->n_certificates);
		return -1;
	}
	for (size_t i = 0; i < r->n_certificates; i++) {
		const ProtobufCBinaryData *der = &r->certificates[i]->der;
		const unsigned char *p = der->data;
		X509 *x;
		int parsed;

		if (der->len == 0 || der->len > WIRE_CERT_DER_MAX) {
			errbuf_set(err, errlen, "certificate %zu: %zu bytes", i,
			    der->len);
			return -1;
		}
		if (!EVP_Digest(der->data, der->len, digest[i], NULL,
			EVP_sha256(), NULL)) {
			errbuf_set(
			    err, errlen, "certificate %zu: no digest", i);
			return -1;
		}
		if (s_parsed_known(digest[i]))
			continue;
		x = d2i_X509(NULL, &p, (long)der->len);
		parsed = x != NULL && p == der->data + der->len;
		X509_free(x);
		if (!parsed) {
			errbuf_set(err, errlen, "certificate %zu: not DER", i);
			return -1;
		}
		s_parsed_add(digest[i]);
	}
	if (r->policy != NULL) {
		if (r->policy->raw.len > WIRE_POLICY_RAW_MAX) {
			errbuf_set(err, errlen, "policy body: %zu bytes",
			    r->policy->raw.len);
			return -1;
		}
		if (r->policy->sha256.len != 0 &&
		    r->policy->sha256.len != WIRE_SHA256_LEN) {
			errbuf_set(err, errlen, "policy sha256: %zu bytes",
			    r->policy->sha256.len);
			return -1;
		}
	}
	if (s_chain_ok(r->policy_host, (const void *)digest, r->n_certificates,
		"policy host", err, errlen) == -1)
		return -1;
	for (size_t i = 0; i < r->n_mx; i++) {
		if (r->mx[i]->host == NULL) {
			errbuf_set(err, errlen, "mx %zu without host", i);
			return -1;
		}
		snprintf(who, sizeof(who), "mx %zu", i);
		if (s_chain_ok(r->mx[i]->host, (const void *)digest,
			r->n_certificates, who, err, errlen) == -1)
			return -1;
	}
	for (size_t i = 0; i < r->n_findings; i++) {
		if (!s_code_ok(r->findings[i]->code)) {
			errbuf_set(err, errlen, "finding %zu: bad code", i);
			return -1;
		}
	}
	return 0;
}

/* A spool range is empty (0, 0) or 1 <= first <= last. */
static int
s_range_ok(uint64_t first, uint64_t last)
{
	if (first == 0 || last == 0)
		return first == last;
	return first <= last;
}

static int
s_agent_ok(const Mtastswatch__V1__AgentMessage *m, char *err, size_t errlen)
{
	switch (m->body_case) {
	case MTASTSWATCH__V1__AGENT_MESSAGE__BODY_HELLO:
		if (!s_range_ok(m->hello->spool_first, m->hello->spool_last)) {
			errbuf_set(err, errlen, "hello with bad spool range");
			return -1;
		}
		break;
	case MTASTSWATCH__V1__AGENT_MESSAGE__BODY_HEARTBEAT:
		if (!s_range_ok(
			m->heartbeat->spool_first, m->heartbeat->spool_last)) {
			errbuf_set(
			    err, errlen, "heartbeat with bad spool range");
			return -1;
		}
		break;
	case MTASTSWATCH__V1__AGENT_MESSAGE__BODY_RESULT:
		if (s_result_ok(m->result, err, errlen) == -1)
			return -1;
		break;
	case MTASTSWATCH__V1__AGENT_MESSAGE__BODY_GAP:
		if (m->gap->first == 0 || m->gap->first > m->gap->last) {
			errbuf_set(err, errlen, "gap with bad range");
			return -1;
		}
		break;
	default:
		/* Also a body this build does not know (a newer peer). */
		errbuf_set(err, errlen, "message without known body");
		return -1;
	}
	return s_fields_ok(&m->base, 0, err, errlen);
}

/*
 * Size check, unpack and check, shared by both directions; a message that
 * fails the check is freed here.
 */
static ProtobufCMessage *
s_decode(const ProtobufCMessageDescriptor *desc,
    int (*ok)(const ProtobufCMessage *, char *, size_t), const void *buf,
    size_t len, char *err, size_t errlen)
{
	ProtobufCMessage *m;

	errbuf_set(err, errlen, "%s", "");
	if (s_size_ok(buf, len, err, errlen) == -1)
		return NULL;
	m = protobuf_c_message_unpack(desc, NULL, len, buf);
	if (m == NULL) {
		errbuf_set(err, errlen, "malformed protobuf");
		return NULL;
	}
	if (ok(m, err, errlen) == -1) {
		protobuf_c_message_free_unpacked(m, NULL);
		return NULL;
	}
	return m;
}

static int
s_agent_check(const ProtobufCMessage *m, char *err, size_t errlen)
{
	return s_agent_ok(
	    (const Mtastswatch__V1__AgentMessage *)m, err, errlen);
}

Mtastswatch__V1__AgentMessage *
wire_agent_decode(const void *buf, size_t len, char *err, size_t errlen)
{
	return (Mtastswatch__V1__AgentMessage *)s_decode(
	    &mtastswatch__v1__agent_message__descriptor, s_agent_check, buf,
	    len, err, errlen);
}

void
wire_agent_free(Mtastswatch__V1__AgentMessage **msg)
{
	if (*msg == NULL)
		return;
	protobuf_c_message_free_unpacked(&(*msg)->base, NULL);
	*msg = NULL;
}

static int
s_collector_ok(
    const Mtastswatch__V1__CollectorMessage *m, char *err, size_t errlen)
{
	const Mtastswatch__V1__TaskSet *t;

	switch (m->body_case) {
	case MTASTSWATCH__V1__COLLECTOR_MESSAGE__BODY_ACK:
	case MTASTSWATCH__V1__COLLECTOR_MESSAGE__BODY_REJECT:
		break;
	case MTASTSWATCH__V1__COLLECTOR_MESSAGE__BODY_TASKS:
		t = m->tasks;
		if (t->interval_s == 0) {
			errbuf_set(err, errlen, "task set without interval");
			return -1;
		}
		if (t->n_domains > WIRE_TASKS_MAX) {
			errbuf_set(err, errlen, "task set of %zu domains",
			    t->n_domains);
			return -1;
		}
		for (size_t i = 0; i < t->n_domains; i++) {
			if (!wire_host_valid(t->domains[i])) {
				errbuf_set(
				    err, errlen, "task %zu: bad domain", i);
				return -1;
			}
		}
		break;
	default:
		errbuf_set(err, errlen, "message without known body");
		return -1;
	}
	return s_fields_ok(&m->base, 0, err, errlen);
}

static int
s_collector_check(const ProtobufCMessage *m, char *err, size_t errlen)
{
	return s_collector_ok(
	    (const Mtastswatch__V1__CollectorMessage *)m, err, errlen);
}

Mtastswatch__V1__CollectorMessage *
wire_collector_decode(const void *buf, size_t len, char *err, size_t errlen)
{
	return (Mtastswatch__V1__CollectorMessage *)s_decode(
	    &mtastswatch__v1__collector_message__descriptor, s_collector_check,
	    buf, len, err, errlen);
}

void
wire_collector_free(Mtastswatch__V1__CollectorMessage **msg)
{
	if (*msg == NULL)
		return;
	protobuf_c_message_free_unpacked(&(*msg)->base, NULL);
	*msg = NULL;
}

int
wire_pack(const ProtobufCMessage *m, unsigned char **buf, size_t *len)
{
	size_t size = protobuf_c_message_get_packed_size(m);

	*buf = NULL;
	*len = 0;
	if (size == 0 || size > WIRE_MAX || (*buf = malloc(size)) == NULL)
		return -1;
	*len = protobuf_c_message_pack(m, *buf);
	return 0;
}

/* s itself when it is UTF-8 (or "" for NULL), else a clean copy in *copy. */
static const char *
s_text(const char *s, char **copy)
{
	*copy = NULL;
	if (s == NULL)
		return "";
	if (wire_utf8_valid(s, strlen(s)))
		return s;
	*copy = wire_utf8_clean(s, strlen(s));
	return *copy;
}

int
wire_agent_encode_hello(
    const struct wire_hello *hello, unsigned char **buf, size_t *len)
{
	Mtastswatch__V1__AgentMessage m = MTASTSWATCH__V1__AGENT_MESSAGE__INIT;
	Mtastswatch__V1__Hello h = MTASTSWATCH__V1__HELLO__INIT;
	char *copy[4];
	int rc = -1;

	*buf = NULL;
	*len = 0;
	h.name = (char *)s_text(hello->name, &copy[0]);
	h.region = (char *)s_text(hello->region, &copy[1]);
	h.version = (char *)s_text(hello->version, &copy[2]);
	h.build = (char *)s_text(hello->build, &copy[3]);
	h.clock_ms = hello->clock_ms;
	h.spool_first = hello->spool_first;
	h.spool_last = hello->spool_last;
	h.proto_minor = WIRE_PROTO_MINOR;
	m.body_case = MTASTSWATCH__V1__AGENT_MESSAGE__BODY_HELLO;
	m.hello = &h;
	if (h.name != NULL && h.region != NULL && h.version != NULL &&
	    h.build != NULL && s_range_ok(h.spool_first, h.spool_last))
		rc = wire_pack(&m.base, buf, len);
	for (size_t i = 0; i < 4; i++)
		free(copy[i]);
	return rc;
}

int
wire_agent_encode_heartbeat(int64_t clock_ms, uint64_t spool_first,
    uint64_t spool_last, uint32_t in_flight, unsigned char **buf, size_t *len)
{
	Mtastswatch__V1__AgentMessage m = MTASTSWATCH__V1__AGENT_MESSAGE__INIT;
	Mtastswatch__V1__Heartbeat hb = MTASTSWATCH__V1__HEARTBEAT__INIT;

	*buf = NULL;
	*len = 0;
	if (!s_range_ok(spool_first, spool_last))
		return -1;
	hb.clock_ms = clock_ms;
	hb.spool_first = spool_first;
	hb.spool_last = spool_last;
	hb.in_flight = in_flight;
	m.body_case = MTASTSWATCH__V1__AGENT_MESSAGE__BODY_HEARTBEAT;
	m.heartbeat = &hb;
	return wire_pack(&m.base, buf, len);
}

int
wire_agent_encode_gap(uint64_t first, uint64_t last, const char *reason,
    unsigned char **buf, size_t *len)
{
	Mtastswatch__V1__AgentMessage m = MTASTSWATCH__V1__AGENT_MESSAGE__INIT;
	Mtastswatch__V1__Gap g = MTASTSWATCH__V1__GAP__INIT;
	char *copy;
	int rc = -1;

	*buf = NULL;
	*len = 0;
	if (first == 0 || first > last)
		return -1;
	g.first = first;
	g.last = last;
	g.reason = (char *)s_text(reason, &copy);
	m.body_case = MTASTSWATCH__V1__AGENT_MESSAGE__BODY_GAP;
	m.gap = &g;
	if (g.reason != NULL)
		rc = wire_pack(&m.base, buf, len);
	free(copy);
	return rc;
}

int
wire_collector_encode_ack(
    uint64_t committed_seq, uint32_t credit, unsigned char **buf, size_t *len)
{
	Mtastswatch__V1__CollectorMessage m =
	    MTASTSWATCH__V1__COLLECTOR_MESSAGE__INIT;
	Mtastswatch__V1__Ack ack = MTASTSWATCH__V1__ACK__INIT;

	ack.committed_seq = committed_seq;
	ack.credit = credit;
	m.body_case = MTASTSWATCH__V1__COLLECTOR_MESSAGE__BODY_ACK;
	m.ack = &ack;
	return wire_pack(&m.base, buf, len);
}

int
wire_collector_encode_tasks(uint64_t version, uint32_t interval_s,
    char *const *domains, size_t n, unsigned char **buf, size_t *len)
{
	Mtastswatch__V1__CollectorMessage m =
	    MTASTSWATCH__V1__COLLECTOR_MESSAGE__INIT;
	Mtastswatch__V1__TaskSet t = MTASTSWATCH__V1__TASK_SET__INIT;

	*buf = NULL;
	*len = 0;
	if (interval_s == 0 || n > WIRE_TASKS_MAX)
		return -1;
	for (size_t i = 0; i < n; i++)
		if (!wire_host_valid(domains[i]))
			return -1;
	t.version = version;
	t.interval_s = interval_s;
	/* protobuf-c only reads the array when packing. */
	t.n_domains = n;
	t.domains = (char **)domains;
	m.body_case = MTASTSWATCH__V1__COLLECTOR_MESSAGE__BODY_TASKS;
	m.tasks = &t;
	return wire_pack(&m.base, buf, len);
}

int
wire_collector_encode_reject(
    const char *reason, unsigned char **buf, size_t *len)
{
	Mtastswatch__V1__CollectorMessage m =
	    MTASTSWATCH__V1__COLLECTOR_MESSAGE__INIT;
	Mtastswatch__V1__Reject rj = MTASTSWATCH__V1__REJECT__INIT;
	char *copy;
	int rc = -1;

	*buf = NULL;
	*len = 0;
	rj.reason = (char *)s_text(reason, &copy);
	m.body_case = MTASTSWATCH__V1__COLLECTOR_MESSAGE__BODY_REJECT;
	m.reject = &rj;
	if (rj.reason != NULL)
		rc = wire_pack(&m.base, buf, len);
	free(copy);
	return rc;
}
