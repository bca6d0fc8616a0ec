/* ingest_load.c -- a load generator for mtasts-collector, and a decode bench.
 */

/*
 * Usage:
 *   ingest_load load ENDPOINT COLLECTOR_PUBLIC_KEYFILE AGENT_SECRET_KEYFILE N
 *   ingest_load decode N
 *   ingest_load transport N
 *
 * Both first build N synthetic but realistic ProbeResults the way a probe
 * fills them (struct probe_result, certificates made in memory with
 * tests/lib/testcert.h: an RSA-2048 intermediate and, per domain, an EC
 * P-256 policy-host leaf and an MX leaf; 1 to 3 MX, 0 to 3 findings) and
 * encode each with result_pb_encode(), seq 1..N, before any timing starts.
 * The results cycle over DOMAINS domains, one round per cycle, so that each
 * certificate is new once and then repeats, as it does in production.
 *
 * load: connects a DEALER over CURVE as the agent whose secret key file is
 * given (zcert, as `mtasts-agent keygen` writes it), says Hello, then sends
 * the results in seq order, never more than the Ack's credit beyond the
 * Ack's committed_seq, until an Ack says committed_seq >= N.  Then it
 * decodes the same N frames in-process with wire_agent_decode().  Prints
 * one line of key=value figures on stdout:
 *
 *   load results=N elapsed_s=T results_per_s=X peak_in_flight=P acks=A
 *        mean_bytes=B decode_per_s=D
 *
 * The clock runs from the first result sent to the Ack that covers N, so
 * key loading, connecting, the Hello and encoding are not in it.
 *
 * decode: only the in-process decode of the N frames:
 *
 *   decode results=N passes=K elapsed_s=T decode_per_s=D mb_per_s=M
 *
 * transport: the collector's receive path with the database left out,
 * against raw ZeroMQ: the N frames go PUSH -> PULL over tcp://127.0.0.1,
 * (a) with CURVE on both ends and every frame decoded with
 * wire_agent_decode() as ingest does, (b) plain, only received.  The two
 * alternate TRANSPORT_RUNS times; each prints a line and the last line
 * has the median rates and their ratio:
 *
 *   transport curve_decode_per_s=A raw_per_s=B ratio=R runs=K
 *
 * Exit status: 0, 1 when the collector rejected us or stopped answering
 * (STALL_MS without progress), 2 on bad usage or setup failure.
 */
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <czmq.h>
#include <openssl/evp.h>

#include "finding.h"
#include "policy_parse.h"
#include "probe.h"
#include "result_pb.h"
#include "testcert.h"
#include "wire.h"

#define DOMAINS	       64      /* distinct domains the results cycle over */
#define INTERVAL_S     300     /* round length the results pretend to use */
#define N_MAX	       1000000 /* results one run may ask for */
#define HELLO_MS       10000   /* wait for the Ack to our Hello */
#define STALL_MS       30000   /* no Ack progress for this long: give up */
#define DECODE_MIN_NS  1000000000LL /* decode passes run at least 1 s */
#define TRANSPORT_RUNS 5	    /* A/B pairs of the transport bench */
#define ZMQ_HB_IVL_MS  5000
#define ZMQ_HB_TTL_MS  15000
#define DAY	       86400L

/* The certificates shared by every result: made once. */
struct pki {
	EVP_PKEY *k_root, *k_inter;
	X509 *root, *inter;
};

/* The N encoded frames. */
struct frames {
	unsigned char **buf;
	size_t *len;
	size_t n;
	size_t bytes;
};

static int64_t
s_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void
usage(void)
{
	fprintf(stderr,
	    "usage: ingest_load load ENDPOINT COLLECTOR_PUBLIC_KEYFILE "
	    "AGENT_SECRET_KEYFILE N\n"
	    "       ingest_load decode N\n"
	    "       ingest_load transport N\n");
}

static X509 *
s_cert(const char *cn, const char *san, const char *aia, EVP_PKEY *key,
    X509 *issuer, EVP_PKEY *ikey, int ca, long serial)
{
	time_t now = time(NULL);
	struct tc_opts o = {.cn = cn,
	    .san = san,
	    .aia = aia,
	    .eku = ca ? NULL : "serverAuth",
	    .key = key,
	    .issuer = issuer,
	    .issuer_key = ikey,
	    .ca = ca,
	    .serial = serial,
	    .not_before = now - 30 * DAY,
	    .not_after = now + 60 * DAY};

	return tc_cert(&o);
}

static int
s_pki_new(struct pki *p)
{
	memset(p, 0, sizeof(*p));
	/* A Let's Encrypt-like shape: RSA-2048 intermediate, EC leaves. */
	if ((p->k_root = tc_key_rsa(2048)) == NULL ||
	    (p->k_inter = tc_key_rsa(2048)) == NULL)
		return -1;
	p->root =
	    s_cert("Bench Root X1", NULL, NULL, p->k_root, NULL, NULL, 1, 1);
	if (p->root == NULL)
		return -1;
	p->inter = s_cert("Bench Intermediate R3", NULL,
	    "caIssuers;URI:http://x1.i.bench.example/", p->k_inter, p->root,
	    p->k_root, 1, 2);
	return p->inter != NULL ? 0 : -1;
}

static void
s_pki_free(struct pki *p)
{
	X509_free(p->root);
	X509_free(p->inter);
	EVP_PKEY_free(p->k_root);
	EVP_PKEY_free(p->k_inter);
}

static char **
s_strv(size_t n, const char *a, const char *b, const char *c)
{
	const char *v[3] = {a, b, c};
	char **out = calloc(n + 1, sizeof(*out));

	if (out == NULL)
		return NULL;
	for (size_t i = 0; i < n && i < 3; i++)
		if ((out[i] = strdup(v[i])) == NULL)
			return out; /* probe_result_free frees what is there */
	return out;
}

static char *s_printf(const char *fmt, ...)
    __attribute__((format(printf, 1, 2)));

static char *
s_printf(const char *fmt, ...)
{
	va_list ap;
	char *s;

	va_start(ap, fmt);
	if (vasprintf(&s, fmt, ap) == -1)
		s = NULL;
	va_end(ap);
	return s;
}

/* One host as a probe leaves it after a good TLS session. */
static int
s_host(struct host_result *h, char *name, const char *ip4, const char *ip6,
    X509 *leaf, X509 *inter, const char *version, const char *cipher,
    long handshake_ms)
{
	h->host = name;
	h->n_addrs = ip6 != NULL ? 2 : 1;
	h->addrs = s_strv(h->n_addrs, ip4, ip6, NULL);
	snprintf(h->ip, sizeof(h->ip), "%s", ip4);
	h->tls_ok = 1;
	snprintf(h->tls_version, sizeof(h->tls_version), "%s", version);
	snprintf(h->cipher, sizeof(h->cipher), "%s", cipher);
	h->handshake_ms = handshake_ms;
	h->chain = tc_stack(leaf, inter, NULL, NULL);
	h->evaluated = 1;
	h->eval.verified = 1;
	h->eval.ocsp_checked = 1;
	h->eval.ocsp = OCSP_STATUS_GOOD;
	return h->host != NULL && h->addrs != NULL && h->chain != NULL &&
		       sk_X509_num(h->chain) == 2
		   ? 0
		   : -1;
}

/*
 * The result of probing domain number d, as a probe fills it (without
 * seq, round and start time, which the caller sets per frame).  Free with
 * probe_result_free.  NULL on failure.
 */
static struct probe_result *
s_result(const struct pki *p, int d)
{
	struct probe_result *r = calloc(1, sizeof(*r));
	EVP_PKEY *k_policy = NULL, *k_mx = NULL;
	X509 *policy_leaf = NULL, *mx_leaf = NULL;
	unsigned char md[32];
	char dom[64], host[96], san[512], aia[256], body[512], ip4[32], ip6[64],
	    err[128];
	size_t n_mx = 1 + (size_t)d % 3, o = 0;
	int ok = 0;

	if (r == NULL)
		return NULL;
	snprintf(dom, sizeof(dom), "shop-%03d.example.org", d);
	r->domain = strdup(dom);
	r->vantage = strdup("bench-1");
	r->resolver = strdup("127.0.0.53:53");
	r->duration_ms = 350 + 37 * (d % 40);
	r->completed = 1;

	r->sts_records = s_strv(1, "v=STSv1; id=20240611T120000", NULL, NULL);
	r->n_sts_records = 1;
	snprintf(r->sts_id, sizeof(r->sts_id), "20240611T120000");
	r->sts_valid = 1;

	/* The policy body, its digest and its parse, as the probe does. */
	o += (size_t)snprintf(body + o, sizeof(body) - o,
	    "version: STSv1\r\nmode: %s\r\n",
	    d % 4 == 1 ? "testing" : "enforce");
	for (size_t i = 0; i < n_mx; i++)
		o += (size_t)snprintf(
		    body + o, sizeof(body) - o, "mx: mx%zu.%s\r\n", i + 1, dom);
	snprintf(body + o, sizeof(body) - o, "max_age: 604800\r\n");
	r->policy_url =
	    s_printf("https://mta-sts.%s/.well-known/mta-sts.txt", dom);
	r->http_status = 200;
	r->content_type = strdup("text/plain; charset=utf-8");
	r->policy_raw = strdup(body);
	r->policy_raw_len = strlen(body);
	if (EVP_Digest(body, strlen(body), md, NULL, EVP_sha256(), NULL) != 1)
		goto out;
	for (size_t i = 0; i < sizeof(md); i++)
		snprintf(r->policy_sha256 + 2 * i, 3, "%02x", md[i]);
	r->policy_parsed = 1;
	r->policy_valid =
	    policy_parse(body, strlen(body), &r->policy, err, sizeof(err)) == 0;

	/* Two leaves of the domain's own, under the shared intermediate. */
	if ((k_policy = tc_key_ec("P-256")) == NULL ||
	    (k_mx = tc_key_ec("P-256")) == NULL)
		goto out;
	snprintf(host, sizeof(host), "mta-sts.%s", dom);
	snprintf(san, sizeof(san), "DNS:mta-sts.%s", dom);
	snprintf(aia, sizeof(aia),
	    "OCSP;URI:http://r3.o.bench.example,"
	    "caIssuers;URI:http://r3.i.bench.example/");
	policy_leaf = s_cert(
	    host, san, aia, k_policy, p->inter, p->k_inter, 0, 1000 + 2L * d);
	snprintf(san, sizeof(san), "DNS:mx1.%s,DNS:mx2.%s,DNS:mx3.%s", dom, dom,
	    dom);
	snprintf(host, sizeof(host), "mx1.%s", dom);
	mx_leaf = s_cert(
	    host, san, aia, k_mx, p->inter, p->k_inter, 0, 1001 + 2L * d);
	if (policy_leaf == NULL || mx_leaf == NULL)
		goto out;

	snprintf(ip4, sizeof(ip4), "198.51.100.%d", 1 + d % 250);
	snprintf(ip6, sizeof(ip6), "2001:db8:%x::443", d);
	if (s_host(&r->policy_host, s_printf("mta-sts.%s", dom), ip4, ip6,
		policy_leaf, p->inter, "TLSv1.3", "TLS_AES_256_GCM_SHA384",
		40 + d % 60) == -1)
		goto out;
	if ((r->mx = calloc(n_mx, sizeof(*r->mx))) == NULL)
		goto out;
	r->n_mx = n_mx;
	for (size_t i = 0; i < n_mx; i++) {
		snprintf(ip4, sizeof(ip4), "203.0.113.%d",
		    1 + (d * 3 + (int)i) % 250);
		if (s_host(&r->mx[i].h, s_printf("mx%zu.%s", i + 1, dom), ip4,
			i == 0 ? ip6 : NULL, mx_leaf, p->inter,
			i == 2 ? "TLSv1.2" : "TLSv1.3",
			i == 2 ? "ECDHE-ECDSA-AES128-GCM-SHA256"
			       : "TLS_AES_128_GCM_SHA256",
			25 + (long)i * 10) == -1)
			goto out;
		r->mx[i].preference = 10 * ((int)i + 1);
		r->mx[i].connected = 1;
		r->mx[i].starttls = 1;
		r->mx[i].policy_match = 1;
	}

	if (d % 5 != 4) {
		r->tlsrpt_records = s_strv(1,
		    "v=TLSRPTv1; rua=mailto:tlsrpt@reports.example.net", NULL,
		    NULL);
		r->n_tlsrpt_records = 1;
		r->rua =
		    s_strv(1, "mailto:tlsrpt@reports.example.net", NULL, NULL);
		r->n_rua = 1;
		r->tlsrpt_valid = 1;
	}

	/* 0 to 3 findings, about 1.2 per result over the domains. */
	if (d % 4 == 1 &&
	    finding_add(&r->findings, F_POLICY_MODE_TESTING, ROLE_DOMAIN, dom,
		"policy mode is testing: "
		"senders report but deliver") == -1)
		goto out;
	if (d % 5 == 4 &&
	    finding_add(&r->findings, F_TLSRPT_MISSING, ROLE_DOMAIN, dom,
		"no TLS-RPT record at _smtp._tls.%s", dom) == -1)
		goto out;
	if (d % 3 == 2 &&
	    (finding_add(&r->findings, F_TLS_VERSION_WEAK, ROLE_MX,
		 r->mx[2].h.host, "negotiated TLSv1.2 only") == -1 ||
		finding_add(&r->findings, F_POLICY_MAX_AGE_LOW, ROLE_DOMAIN,
		    dom,
		    "max_age 604800 is below the recommended 1209600") == -1))
		goto out;
	if (d % 7 == 3 && finding_add(&r->findings, F_CERT_EXPIRING, ROLE_MX,
			      r->mx[0].h.host, "leaf expires in 12 days") == -1)
		goto out;
	ok = r->domain != NULL && r->vantage != NULL && r->resolver != NULL &&
	     r->sts_records != NULL && r->policy_url != NULL &&
	     r->content_type != NULL && r->policy_raw != NULL &&
	     (d % 5 == 4 || (r->tlsrpt_records != NULL && r->rua != NULL));
out:
	/* The host chains hold their own references. */
	X509_free(policy_leaf);
	X509_free(mx_leaf);
	EVP_PKEY_free(k_policy);
	EVP_PKEY_free(k_mx);
	if (!ok)
		probe_result_free(&r);
	return r;
}

static void
s_frames_free(struct frames *f)
{
	for (size_t i = 0; f->buf != NULL && i < f->n; i++)
		free(f->buf[i]);
	free(f->buf);
	free(f->len);
	memset(f, 0, sizeof(*f));
}

/*
 * Encodes results seq 1..n into f.  Domain (seq - 1) % DOMAINS, round
 * (seq - 1) / DOMAINS counted back from now, so the last round is the
 * current one and the start times are in the past.  0 or -1.
 */
static int
s_frames_build(struct frames *f, size_t n)
{
	struct probe_result *r[DOMAINS] = {0};
	struct pki p;
	time_t now = time(NULL);
	uint64_t rounds = (n + DOMAINS - 1) / DOMAINS;
	uint64_t round0 = (uint64_t)now / INTERVAL_S - rounds;
	int rc = -1;

	memset(f, 0, sizeof(*f));
	if (s_pki_new(&p) == -1) {
		fprintf(stderr, "ingest_load: cannot make certificates\n");
		goto out;
	}
	for (int d = 0; d < DOMAINS; d++)
		if ((r[d] = s_result(&p, d)) == NULL) {
			fprintf(stderr, "ingest_load: cannot build result\n");
			goto out;
		}
	if ((f->buf = calloc(n, sizeof(*f->buf))) == NULL ||
	    (f->len = calloc(n, sizeof(*f->len))) == NULL)
		goto out;
	for (size_t i = 0; i < n; i++) {
		struct probe_result *pr = r[i % DOMAINS];
		uint64_t round = round0 + i / DOMAINS;

		/* A fixed jitter per domain inside the first quarter. */
		pr->started_at.tv_sec =
		    (time_t)(round * INTERVAL_S) +
		    (time_t)((i % DOMAINS) * (INTERVAL_S / 4) / DOMAINS);
		pr->started_at.tv_nsec = (long)(i % 1000) * 1000000L;
		if (result_pb_encode(
			pr, i + 1, round, &f->buf[i], &f->len[i]) == -1) {
			fprintf(stderr, "ingest_load: encode seq %zu failed\n",
			    i + 1);
			goto out;
		}
		f->n = i + 1;
		f->bytes += f->len[i];
	}
	rc = 0;
out:
	for (int d = 0; d < DOMAINS; d++)
		probe_result_free(&r[d]);
	s_pki_free(&p);
	if (rc == -1)
		s_frames_free(f);
	return rc;
}

/*
 * Decodes every frame of f, pass after pass, for at least DECODE_MIN_NS.
 * Returns frames per second (0 when one did not decode).
 */
static double
s_decode_rate(const struct frames *f, int *passes, double *elapsed_s)
{
	int64_t t0 = s_now_ns(), t;
	size_t done = 0;

	*passes = 0;
	do {
		for (size_t i = 0; i < f->n; i++) {
			char err[160];
			Mtastswatch__V1__AgentMessage *m = wire_agent_decode(
			    f->buf[i], f->len[i], err, sizeof(err));
			if (m == NULL) {
				fprintf(stderr,
				    "ingest_load: seq %zu does not decode: "
				    "%s\n",
				    i + 1, err);
				return 0;
			}
			wire_agent_free(&m);
		}
		done += f->n;
		(*passes)++;
		t = s_now_ns();
	} while (t - t0 < DECODE_MIN_NS);
	*elapsed_s = (double)(t - t0) / 1e9;
	return (double)done / *elapsed_s;
}

/* ---- transport: PUSH -> PULL, with CURVE and decode or raw ---- */

struct pusher {
	const struct frames *f;
	const char *endpoint;
	zcert_t *client, *server; /* NULL: plain */
	int rc;
};

static void *
s_push_main(void *arg)
{
	struct pusher *p = arg;
	zsock_t *push = zsock_new(ZMQ_PUSH);

	p->rc = -1;
	if (push == NULL)
		return NULL;
	zsock_set_sndhwm(push, 0);
	if (p->client != NULL) {
		zcert_apply(p->client, push);
		zsock_set_curve_serverkey(push, zcert_public_txt(p->server));
	}
	if (zsock_connect(push, "%s", p->endpoint) == -1)
		goto out;
	for (size_t i = 0; i < p->f->n; i++)
		if (zmq_send(zsock_resolve(push), p->f->buf[i], p->f->len[i],
			0) == -1)
			goto out;
	p->rc = 0;
out:
	zsock_set_linger(push, 5000);
	zsock_destroy(&push);
	return NULL;
}

/* Frames per second through one PUSH -> PULL pair; 0 on failure. */
static double
s_transport_once(const struct frames *f, int curve)
{
	zsock_t *pull = zsock_new(ZMQ_PULL);
	zcert_t *server = curve ? zcert_new() : NULL;
	zcert_t *client = curve ? zcert_new() : NULL;
	struct pusher p = {f, NULL, client, server, -1};
	char endpoint[64];
	unsigned char *buf = malloc(WIRE_MAX);
	pthread_t th;
	int64_t t0 = 0;
	double rate = 0;
	int port;

	if (pull == NULL || buf == NULL || (curve && (!server || !client)))
		goto out;
	zsock_set_rcvhwm(pull, 0);
	zsock_set_rcvtimeo(pull, STALL_MS);
	if (curve) {
		zcert_apply(server, pull);
		zsock_set_curve_server(pull, 1);
	}
	if ((port = zsock_bind(pull, "tcp://127.0.0.1:*")) == -1)
		goto out;
	snprintf(endpoint, sizeof(endpoint), "tcp://127.0.0.1:%d", port);
	p.endpoint = endpoint;
	if (pthread_create(&th, NULL, s_push_main, &p) != 0)
		goto out;
	for (size_t i = 0; i < f->n; i++) {
		int len = zmq_recv(zsock_resolve(pull), buf, WIRE_MAX, 0);

		if (i == 0)
			t0 = s_now_ns(); /* the connection and handshake are up
					  */
		if (len < 0 || (size_t)len > WIRE_MAX)
			break;
		if (curve) {
			char err[160];
			Mtastswatch__V1__AgentMessage *m = wire_agent_decode(
			    buf, (size_t)len, err, sizeof(err));

			if (m == NULL)
				break;
			wire_agent_free(&m);
		}
		if (i + 1 == f->n && f->n > 1)
			rate = (double)(f->n - 1) /
			       ((double)(s_now_ns() - t0) / 1e9);
	}
	pthread_join(th, NULL);
	if (p.rc != 0)
		rate = 0;
out:
	free(buf);
	zsock_destroy(&pull);
	zcert_destroy(&server);
	zcert_destroy(&client);
	return rate;
}

static int
s_cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static int
s_transport(const struct frames *f)
{
	double a[TRANSPORT_RUNS], b[TRANSPORT_RUNS], r[TRANSPORT_RUNS];

	for (int k = 0; k < TRANSPORT_RUNS; k++) {
		a[k] = s_transport_once(f, 1);
		b[k] = s_transport_once(f, 0);
		if (a[k] <= 0 || b[k] <= 0) {
			fprintf(stderr, "ingest_load: transport run failed\n");
			return 1;
		}
		r[k] = a[k] / b[k];
		printf("transport run=%d curve_decode_per_s=%.1f "
		       "raw_per_s=%.1f ratio=%.3f\n",
		    k + 1, a[k], b[k], r[k]);
	}
	qsort(a, TRANSPORT_RUNS, sizeof(a[0]), s_cmp_double);
	qsort(b, TRANSPORT_RUNS, sizeof(b[0]), s_cmp_double);
	qsort(r, TRANSPORT_RUNS, sizeof(r[0]), s_cmp_double);
	printf("transport curve_decode_per_s=%.1f raw_per_s=%.1f ratio=%.3f "
	       "runs=%d\n",
	    a[TRANSPORT_RUNS / 2], b[TRANSPORT_RUNS / 2], r[TRANSPORT_RUNS / 2],
	    TRANSPORT_RUNS);
	return 0;
}

struct ack {
	int kind; /* 0 nothing, 1 Ack, 2 Reject */
	uint64_t committed;
	uint32_t credit;
};

/*
 * Reads what the collector sent within timeout_ms; an Ack or a Reject is
 * returned in *a, anything else (a TaskSet) is skipped.  0, or -1 on a
 * socket failure.
 */
static int
s_recv(void *sock, long timeout_ms, struct ack *a)
{
	zmq_pollitem_t item = {sock, 0, ZMQ_POLLIN, 0};

	a->kind = 0;
	if (zmq_poll(&item, 1, timeout_ms) == -1)
		return errno == EINTR ? 0 : -1;
	while (item.revents & ZMQ_POLLIN) {
		Mtastswatch__V1__CollectorMessage *m;
		zmq_msg_t msg;
		char err[160];

		zmq_msg_init(&msg);
		if (zmq_msg_recv(&msg, sock, ZMQ_DONTWAIT) == -1) {
			zmq_msg_close(&msg);
			return errno == EAGAIN ? 0 : -1;
		}
		m = wire_collector_decode(
		    zmq_msg_data(&msg), zmq_msg_size(&msg), err, sizeof(err));
		zmq_msg_close(&msg);
		if (m == NULL) {
			fprintf(stderr, "ingest_load: bad answer: %s\n", err);
			continue;
		}
		if (m->body_case ==
		    MTASTSWATCH__V1__COLLECTOR_MESSAGE__BODY_ACK) {
			/* Acks only move forward; keep the newest. */
			if (a->kind != 1 ||
			    m->ack->committed_seq > a->committed)
				a->committed = m->ack->committed_seq;
			a->credit = m->ack->credit;
			a->kind = 1;
		} else if (m->body_case ==
			   MTASTSWATCH__V1__COLLECTOR_MESSAGE__BODY_REJECT) {
			fprintf(stderr, "ingest_load: rejected: %s\n",
			    m->reject->reason);
			a->kind = 2;
			wire_collector_free(&m);
			return 0;
		}
		wire_collector_free(&m);
	}
	return 0;
}

static void *
s_connect(void *ctx, const char *endpoint, const char *server_file,
    const char *client_file)
{
	zcert_t *server = NULL, *client = NULL;
	void *sock = NULL;
	int64_t maxmsg = WIRE_MAX;
	int linger = 0, hb_ivl = ZMQ_HB_IVL_MS, hb_ttl = ZMQ_HB_TTL_MS, ok = 0;

	if ((server = zcert_load(server_file)) == NULL) {
		fprintf(stderr, "ingest_load: cannot load %s\n", server_file);
		goto out;
	}
	if ((client = zcert_load(client_file)) == NULL) {
		fprintf(stderr, "ingest_load: cannot load %s\n", client_file);
		goto out;
	}
	if ((sock = zmq_socket(ctx, ZMQ_DEALER)) == NULL)
		goto out;
	/* As the agent does (agent/sender.c): the routing id is the key. */
	if (zmq_setsockopt(sock, ZMQ_ROUTING_ID, zcert_public_txt(client),
		strlen(zcert_public_txt(client))) == -1 ||
	    zmq_setsockopt(sock, ZMQ_CURVE_SERVERKEY, zcert_public_txt(server),
		strlen(zcert_public_txt(server))) == -1 ||
	    zmq_setsockopt(sock, ZMQ_CURVE_PUBLICKEY, zcert_public_txt(client),
		strlen(zcert_public_txt(client))) == -1 ||
	    zmq_setsockopt(sock, ZMQ_CURVE_SECRETKEY, zcert_secret_txt(client),
		strlen(zcert_secret_txt(client))) == -1 ||
	    zmq_setsockopt(sock, ZMQ_HEARTBEAT_IVL, &hb_ivl, sizeof(hb_ivl)) ==
		-1 ||
	    zmq_setsockopt(
		sock, ZMQ_HEARTBEAT_TIMEOUT, &hb_ttl, sizeof(hb_ttl)) == -1 ||
	    zmq_setsockopt(sock, ZMQ_MAXMSGSIZE, &maxmsg, sizeof(maxmsg)) ==
		-1 ||
	    zmq_setsockopt(sock, ZMQ_LINGER, &linger, sizeof(linger)) == -1 ||
	    zmq_connect(sock, endpoint) == -1)
		goto out;
	ok = 1;
out:
	if (!ok && sock != NULL) {
		fprintf(stderr, "ingest_load: socket setup: %s\n",
		    zmq_strerror(errno));
		zmq_close(sock);
		sock = NULL;
	}
	zcert_destroy(&client);
	zcert_destroy(&server);
	return sock;
}

static int
s_send(void *sock, const void *buf, size_t len)
{
	if (zmq_send(sock, buf, len, 0) == -1) {
		fprintf(stderr, "ingest_load: send: %s\n", zmq_strerror(errno));
		return -1;
	}
	return 0;
}

/* The load mode; returns the exit status. */
static int
s_load(const char *endpoint, const char *server_file, const char *client_file,
    const struct frames *f)
{
	struct wire_hello h = {.name = "ingest_load",
	    .region = "bench",
	    .version = "ingest_load",
	    .clock_ms = (int64_t)time(NULL) * 1000,
	    .spool_first = 1,
	    .spool_last = f->n};
	struct ack a;
	void *ctx, *sock = NULL;
	unsigned char *buf;
	size_t len;
	uint64_t n = f->n, committed = 0, start, next, peak = 0, acks = 0;
	uint32_t credit = 0;
	int64_t t0, t1, deadline, last_progress;
	double decode_s = 0, decode_per_s, el;
	int passes = 0, rc = 2;

	if ((ctx = zmq_ctx_new()) == NULL)
		return 2;
	if ((sock = s_connect(ctx, endpoint, server_file, client_file)) == NULL)
		goto out;
	if (wire_agent_encode_hello(&h, &buf, &len) == -1)
		goto out;
	rc = s_send(sock, buf, len);
	free(buf);
	if (rc == -1) {
		rc = 2;
		goto out;
	}
	rc = 1;
	/* The answer to Hello: where this key stands and the credit. */
	deadline = s_now_ns() + (int64_t)HELLO_MS * 1000000;
	do {
		if (s_recv(sock, 100, &a) == -1 || a.kind == 2)
			goto out;
	} while (a.kind != 1 && s_now_ns() < deadline);
	if (a.kind != 1) {
		fprintf(stderr, "ingest_load: no Ack to Hello within %d ms\n",
		    HELLO_MS);
		goto out;
	}
	committed = a.committed;
	credit = a.credit;
	if (committed != 0)
		fprintf(stderr,
		    "ingest_load: this key already has committed_seq=%" PRIu64
		    "; sending from there on\n",
		    committed);
	if (committed >= n) {
		fprintf(stderr, "ingest_load: nothing left to send\n");
		goto out;
	}
	start = committed;
	next = committed + 1;
	t0 = last_progress = s_now_ns();
	while (committed < n) {
		while (next <= n && next - committed <= credit) {
			if (s_send(sock, f->buf[next - 1], f->len[next - 1]) ==
			    -1)
				goto out;
			if (next - committed > peak)
				peak = next - committed;
			next++;
		}
		if (s_recv(sock, 100, &a) == -1 || a.kind == 2)
			goto out;
		if (a.kind == 1) {
			acks++;
			credit = a.credit;
			if (a.committed > committed) {
				committed = a.committed;
				last_progress = s_now_ns();
			}
		}
		if (s_now_ns() - last_progress > (int64_t)STALL_MS * 1000000) {
			fprintf(stderr,
			    "ingest_load: no progress for %d ms at "
			    "committed_seq=%" PRIu64 " sent=%" PRIu64 "\n",
			    STALL_MS, committed, next - 1);
			goto out;
		}
	}
	t1 = s_now_ns();
	decode_per_s = s_decode_rate(f, &passes, &decode_s);
	el = (double)(t1 - t0) / 1e9;
	printf("load results=%" PRIu64 " elapsed_s=%.3f results_per_s=%.1f "
	       "peak_in_flight=%" PRIu64 " credit=%" PRIu32 " acks=%" PRIu64
	       " mean_bytes=%zu decode_per_s=%.1f\n",
	    n - start, el, (double)(n - start) / el, peak, credit, acks,
	    f->bytes / f->n, decode_per_s);
	rc = 0;
out:
	if (sock != NULL)
		zmq_close(sock);
	zmq_ctx_term(ctx);
	return rc;
}

int
main(int argc, char **argv)
{
	struct frames f;
	const char *nstr;
	char *end;
	unsigned long long n;
	int rc;

	if (argc < 2) {
		usage();
		return 2;
	}
	if (strcmp(argv[1], "load") == 0 && argc == 6)
		nstr = argv[5];
	else if ((strcmp(argv[1], "decode") == 0 ||
		     strcmp(argv[1], "transport") == 0) &&
		 argc == 3)
		nstr = argv[2];
	else {
		usage();
		return 2;
	}
	errno = 0;
	n = strtoull(nstr, &end, 10);
	if (errno != 0 || *end != '\0' || n == 0 || n > N_MAX) {
		fprintf(stderr, "ingest_load: N must be 1..%d\n", N_MAX);
		return 2;
	}
	zsys_handler_set(NULL);
	if (s_frames_build(&f, (size_t)n) == -1)
		return 2;
	if (strcmp(argv[1], "load") == 0) {
		rc = s_load(argv[2], argv[3], argv[4], &f);
	} else if (strcmp(argv[1], "transport") == 0) {
		rc = s_transport(&f);
	} else {
		int passes = 0;
		double el = 0, rate = s_decode_rate(&f, &passes, &el);

		rc = rate > 0 ? 0 : 1;
		if (rc == 0)
			printf(
			    "decode results=%zu passes=%d elapsed_s=%.3f "
			    "decode_per_s=%.1f mb_per_s=%.1f mean_bytes=%zu\n",
			    f.n, passes, el, rate,
			    rate * (double)f.bytes / (double)f.n / 1e6,
			    f.bytes / f.n);
	}
	s_frames_free(&f);
	return rc;
}
