/* zmq_forge.c -- a test client that sends the collector what no agent would. */

/*
 * Usage: zmq_forge ENDPOINT COLLECTOR_PUBLIC_KEYFILE AGENT_SECRET_KEYFILE
 *                  MODE [TIMEOUT_MS]
 *
 * Connects a DEALER over CURVE as the agent whose secret key file is given
 * (zcert, as `mtasts-agent keygen` writes it), sends one message shaped by
 * MODE and prints what the collector answered within TIMEOUT_MS (default
 * 3000) as one line on stdout:
 *
 *   reply=ack committed=N credit=C
 *   reply=reject reason=...
 *   reply=none
 *
 * Modes:
 *   garbage    a frame of random bytes that is not protobuf
 *   oversized  a frame of WIRE_MAX + 1 bytes
 *   empty      a frame of zero bytes
 *   multipart  a well-formed Hello split over two frames
 *   badresult  a well-formed ProbeResult with seq 0
 *   badchain   a well-formed ProbeResult whose chain names a certificate
 *              the result does not carry
 *   hello      a Hello; the answer is the watermark and credit
 *   duplicate  a Hello, then (when the watermark is 0) a valid result with
 *              seq 1 until it is acknowledged, then that acknowledged seq
 *              again; the line printed is the answer to the resend, with
 *              " before=B seq=S" appended (B: the watermark before it)
 *
 * A TaskSet the collector sends after an Ack is skipped.  Exit status is 0
 * whatever the collector did, 2 on bad usage or when the keys or the socket
 * could not be set up.  Diagnostics go to stderr.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <czmq.h>

#include "wire.h"

#define TIMEOUT_DEFAULT_MS 3000
#define GARBAGE_LEN	   64

struct answer {
	int kind; /* 0 none, 1 ack, 2 reject */
	uint64_t committed;
	uint32_t credit;
	char reason[256];
};

static int64_t
s_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void
usage(void)
{
	fprintf(stderr,
	    "usage: zmq_forge ENDPOINT COLLECTOR_PUBLIC_KEYFILE "
	    "AGENT_SECRET_KEYFILE MODE [TIMEOUT_MS]\n"
	    "  MODE: garbage oversized empty multipart badresult badchain "
	    "hello duplicate\n");
}

/* Sends buf as one frame (more: another follows); 0 or -1. */
static int
s_send(void *sock, const void *buf, size_t len, int more)
{
	if (zmq_send(sock, buf, len, more ? ZMQ_SNDMORE : 0) == -1) {
		fprintf(stderr, "zmq_forge: send: %s\n", zmq_strerror(errno));
		return -1;
	}
	return 0;
}

/*
 * Waits until deadline for an Ack or a Reject; TaskSets are skipped, and
 * anything the wire decoder refuses is reported on stderr and skipped.
 */
static void
s_await(void *sock, int64_t deadline, struct answer *ans)
{
	memset(ans, 0, sizeof(*ans));
	for (;;) {
		zmq_pollitem_t item = {sock, 0, ZMQ_POLLIN, 0};
		int64_t left = deadline - s_now_ms();
		Mtastswatch__V1__CollectorMessage *m;
		char err[160];
		zmq_msg_t msg;

		if (left <= 0)
			return;
		if (zmq_poll(&item, 1, (long)left) <= 0 ||
		    !(item.revents & ZMQ_POLLIN))
			continue;
		zmq_msg_init(&msg);
		if (zmq_msg_recv(&msg, sock, ZMQ_DONTWAIT) == -1) {
			zmq_msg_close(&msg);
			continue;
		}
		m = wire_collector_decode(
		    zmq_msg_data(&msg), zmq_msg_size(&msg), err, sizeof(err));
		zmq_msg_close(&msg);
		if (m == NULL) {
			fprintf(
			    stderr, "zmq_forge: undecodable answer: %s\n", err);
			continue;
		}
		switch (m->body_case) {
		case MTASTSWATCH__V1__COLLECTOR_MESSAGE__BODY_ACK:
			ans->kind = 1;
			ans->committed = m->ack->committed_seq;
			ans->credit = m->ack->credit;
			break;
		case MTASTSWATCH__V1__COLLECTOR_MESSAGE__BODY_REJECT:
			ans->kind = 2;
			snprintf(ans->reason, sizeof(ans->reason), "%s",
			    m->reject->reason);
			break;
		default:
			fprintf(stderr, "zmq_forge: skipped body %d\n",
			    (int)m->body_case);
			break;
		}
		wire_collector_free(&m);
		if (ans->kind != 0)
			return;
	}
}

static void
s_print(const struct answer *ans, const char *extra)
{
	switch (ans->kind) {
	case 1:
		printf("reply=ack committed=%llu credit=%u%s\n",
		    (unsigned long long)ans->committed, ans->credit, extra);
		break;
	case 2:
		/* One line whatever the reason holds. */
		for (char *p = (char *)ans->reason; *p != '\0'; p++)
			if (*p == '\n' || *p == '\r')
				*p = ' ';
		printf("reply=reject reason=%s%s\n", ans->reason, extra);
		break;
	default:
		printf("reply=none%s\n", extra);
		break;
	}
	fflush(stdout);
}

static int
s_send_hello(void *sock)
{
	struct wire_hello h = {.name = "zmq_forge",
	    .region = "forge",
	    .version = "zmq_forge",
	    .clock_ms = (int64_t)time(NULL) * 1000};
	unsigned char *buf;
	size_t len;
	int rc;

	if (wire_agent_encode_hello(&h, &buf, &len) == -1)
		return -1;
	rc = s_send(sock, buf, len, 0);
	free(buf);
	return rc;
}

/*
 * A result that passes every wire check when seq > 0 and bad_chain is 0:
 * a domain, a start time and nothing else.  With bad_chain its policy host
 * names a chain certificate (32 bytes) that the result does not carry.
 */
static int
s_send_result(void *sock, uint64_t seq, int bad_chain)
{
	Mtastswatch__V1__AgentMessage msg =
	    MTASTSWATCH__V1__AGENT_MESSAGE__INIT;
	Mtastswatch__V1__ProbeResult r = MTASTSWATCH__V1__PROBE_RESULT__INIT;
	Mtastswatch__V1__HostObservation h =
	    MTASTSWATCH__V1__HOST_OBSERVATION__INIT;
	unsigned char sha[WIRE_SHA256_LEN];
	ProtobufCBinaryData ref = {sizeof(sha), sha};
	unsigned char *buf;
	size_t len;
	int rc;

	memset(sha, 0xab, sizeof(sha));
	r.seq = seq;
	r.domain = "forged.test";
	r.started_at_ms = (int64_t)time(NULL) * 1000;
	r.completed = 1;
	r.round = (uint64_t)time(NULL) / 10;
	r.vantage = "zmq_forge";
	if (bad_chain) {
		h.host = "mta-sts.forged.test";
		h.n_chain_sha256 = 1;
		h.chain_sha256 = &ref;
		r.policy_host = &h;
	}
	msg.body_case = MTASTSWATCH__V1__AGENT_MESSAGE__BODY_RESULT;
	msg.result = &r;
	if (wire_pack(&msg.base, &buf, &len) == -1)
		return -1;
	rc = s_send(sock, buf, len, 0);
	free(buf);
	return rc;
}

/* The duplicate mode; see the top of the file. */
static int
s_duplicate(void *sock, int timeout_ms)
{
	struct answer ans;
	uint64_t before, seq;
	char extra[96];

	if (s_send_hello(sock) == -1)
		return -1;
	s_await(sock, s_now_ms() + timeout_ms, &ans);
	if (ans.kind != 1) {
		fprintf(stderr, "zmq_forge: hello got no ack\n");
		s_print(&ans, " stage=hello");
		return 0;
	}
	if (ans.committed == 0) {
		/* Nothing stored for this key yet: store seq 1 first. */
		if (s_send_result(sock, 1, 0) == -1)
			return -1;
		s_await(sock, s_now_ms() + timeout_ms, &ans);
		if (ans.kind != 1 || ans.committed < 1) {
			fprintf(stderr, "zmq_forge: seq 1 not acknowledged\n");
			s_print(&ans, " stage=first");
			return 0;
		}
	}
	before = ans.committed;
	seq = before;
	if (s_send_result(sock, seq, 0) == -1)
		return -1;
	s_await(sock, s_now_ms() + timeout_ms, &ans);
	snprintf(extra, sizeof(extra), " before=%llu seq=%llu",
	    (unsigned long long)before, (unsigned long long)seq);
	s_print(&ans, extra);
	return 0;
}

/* Sends what mode asks for and prints the answer; 0, or -1 on a failure. */
static int
s_run(void *sock, const char *mode, int timeout_ms)
{
	struct answer ans;
	unsigned char *buf;
	size_t len;
	int rc = 0;

	if (strcmp(mode, "garbage") == 0) {
		unsigned char junk[GARBAGE_LEN];

		for (size_t i = 0; i < sizeof(junk); i++)
			junk[i] = (unsigned char)random();
		/* Field number 0 with wire type 7: never valid protobuf. */
		junk[0] = 0x07;
		rc = s_send(sock, junk, sizeof(junk), 0);
	} else if (strcmp(mode, "oversized") == 0) {
		if ((buf = calloc(1, (size_t)WIRE_MAX + 1)) == NULL)
			return -1;
		rc = s_send(sock, buf, (size_t)WIRE_MAX + 1, 0);
		free(buf);
	} else if (strcmp(mode, "empty") == 0) {
		rc = s_send(sock, "", 0, 0);
	} else if (strcmp(mode, "multipart") == 0) {
		struct wire_hello h = {.name = "zmq_forge"};

		if (wire_agent_encode_hello(&h, &buf, &len) == -1)
			return -1;
		rc = s_send(sock, buf, len, 1);
		if (rc == 0)
			rc = s_send(sock, buf, len, 0);
		free(buf);
	} else if (strcmp(mode, "badresult") == 0) {
		rc = s_send_result(sock, 0, 0);
	} else if (strcmp(mode, "badchain") == 0) {
		rc = s_send_result(sock, 1, 1);
	} else if (strcmp(mode, "hello") == 0) {
		rc = s_send_hello(sock);
	} else if (strcmp(mode, "duplicate") == 0) {
		return s_duplicate(sock, timeout_ms);
	} else {
		usage();
		return -1;
	}
	if (rc == -1)
		return -1;
	s_await(sock, s_now_ms() + timeout_ms, &ans);
	s_print(&ans, "");
	return 0;
}

int
main(int argc, char **argv)
{
	zcert_t *server = NULL, *client = NULL;
	void *ctx = NULL, *sock = NULL;
	int timeout_ms = TIMEOUT_DEFAULT_MS, linger = 0, rc = 2;

	if (argc != 5 && argc != 6) {
		usage();
		return 2;
	}
	if (argc == 6 && (timeout_ms = atoi(argv[5])) <= 0) {
		usage();
		return 2;
	}
	zsys_handler_set(NULL);
	srandom((unsigned)time(NULL) ^ (unsigned)getpid());
	if ((server = zcert_load(argv[2])) == NULL) {
		fprintf(stderr, "zmq_forge: cannot load %s\n", argv[2]);
		goto out;
	}
	if ((client = zcert_load(argv[3])) == NULL) {
		fprintf(stderr, "zmq_forge: cannot load %s\n", argv[3]);
		goto out;
	}
	if ((ctx = zmq_ctx_new()) == NULL ||
	    (sock = zmq_socket(ctx, ZMQ_DEALER)) == NULL) {
		fprintf(stderr, "zmq_forge: socket: %s\n", zmq_strerror(errno));
		goto out;
	}
	/* As the agent does: the routing id is the public key. */
	if (zmq_setsockopt(sock, ZMQ_ROUTING_ID, zcert_public_txt(client),
		strlen(zcert_public_txt(client))) == -1 ||
	    zmq_setsockopt(sock, ZMQ_CURVE_SERVERKEY, zcert_public_txt(server),
		strlen(zcert_public_txt(server))) == -1 ||
	    zmq_setsockopt(sock, ZMQ_CURVE_PUBLICKEY, zcert_public_txt(client),
		strlen(zcert_public_txt(client))) == -1 ||
	    zmq_setsockopt(sock, ZMQ_CURVE_SECRETKEY, zcert_secret_txt(client),
		strlen(zcert_secret_txt(client))) == -1 ||
	    zmq_setsockopt(sock, ZMQ_LINGER, &linger, sizeof(linger)) == -1 ||
	    zmq_connect(sock, argv[1]) == -1) {
		fprintf(stderr, "zmq_forge: socket setup: %s\n",
		    zmq_strerror(errno));
		goto out;
	}
	if (s_run(sock, argv[4], timeout_ms) == 0)
		rc = 0;
out:
	if (sock != NULL)
		zmq_close(sock);
	if (ctx != NULL)
		zmq_ctx_term(ctx);
	zcert_destroy(&client);
	zcert_destroy(&server);
	return rc;
}
