/* mini_client.c -- the minimal epoll + OpenSSL handshake client (baseline). */
/*
 * What a TLS scanner that only wants certificates needs and nothing more:
 * one SSL_CTX, non-blocking connect, SSL_connect driven by epoll, the peer
 * chain taken, SSL_free, close.  No verification, no session cache, no
 * timers beyond one overall bound.  The agent's per-handshake CPU is
 * compared with this (bench/probe/README.md).
 *
 *   mini_client IP PORT SNI_FMT M N CONC
 *   mini_client pending IP PORT N
 *
 * SNI_FMT holds one %d replaced by 1 + i mod M.  Prints one JSON object
 * like agent_load's.  Gives up after 120 s in all.
 *
 * pending: the memory floor of a handshake that waits.  Opens N
 * connections to a server that accepts and never answers (the farm's
 * tarpit), sends each ClientHello and keeps them waiting for the
 * ServerHello; prints RSS with one such handshake and with N, in KiB.
 * Same SSL_CTX settings as the agent's (release buffers included).
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#define DEADLINE_S 120

struct conn {
	int fd;
	SSL *ssl;
};

static double
s_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static double
s_tv(struct timeval tv)
{
	return (double)tv.tv_sec + tv.tv_usec / 1e6;
}

static struct conn *
s_open(SSL_CTX *ctx, int ep, const struct sockaddr_in *sa, const char *sni)
{
	struct conn *c = calloc(1, sizeof(*c));
	struct epoll_event ev;

	if (c == NULL)
		return NULL;
	c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
	if (c->fd == -1)
		goto fail;
	if (connect(c->fd, (const struct sockaddr *)sa, sizeof(*sa)) == -1 &&
	    errno != EINPROGRESS)
		goto fail;
	if ((c->ssl = SSL_new(ctx)) == NULL || SSL_set_fd(c->ssl, c->fd) != 1 ||
	    SSL_set_tlsext_host_name(c->ssl, sni) != 1)
		goto fail;
	SSL_set_connect_state(c->ssl);
	memset(&ev, 0, sizeof(ev));
	ev.events = EPOLLOUT;
	ev.data.ptr = c;
	if (epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev) == -1)
		goto fail;
	return c;
fail:
	SSL_free(c->ssl);
	if (c->fd != -1)
		close(c->fd);
	free(c);
	return NULL;
}

static void
s_close(struct conn *c)
{
	SSL_free(c->ssl);
	close(c->fd); /* also drops it from the epoll set */
	free(c);
}

/* 1 finished well, 0 still running, -1 failed. */
static int
s_step(struct conn *c, int ep)
{
	struct epoll_event ev;
	int rc = SSL_connect(c->ssl), err;

	if (rc == 1) {
		STACK_OF(X509) *chain = SSL_get_peer_cert_chain(c->ssl);
		return chain != NULL && sk_X509_num(chain) > 0 ? 1 : -1;
	}
	err = SSL_get_error(c->ssl, rc);
	if (err != SSL_ERROR_WANT_READ && err != SSL_ERROR_WANT_WRITE) {
		ERR_clear_error();
		return -1;
	}
	memset(&ev, 0, sizeof(ev));
	ev.events = err == SSL_ERROR_WANT_READ ? EPOLLIN : EPOLLOUT;
	ev.data.ptr = c;
	return epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev) == -1 ? -1 : 0;
}

static long
s_rss_kib(void)
{
	char line[256];
	long kib = -1;
	FILE *f = fopen("/proc/self/status", "r");

	if (f == NULL)
		return -1;
	while (fgets(line, sizeof(line), f) != NULL)
		if (strncmp(line, "VmRSS:", 6) == 0)
			kib = atol(line + 6);
	fclose(f);
	return kib;
}

/*
 * The client context both modes use: no verification, no session cache, no
 * tickets; release_buffers as the agent's shared context has it.
 */
static SSL_CTX *
s_ctx_new(int release_buffers)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());

	if (ctx == NULL)
		return NULL;
	SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
	SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
	if (release_buffers)
		SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
	return ctx;
}

/*
 * Opens one connection and drives it until its ClientHello is out; it is
 * then kept until the process exits, since the point is to hold it.
 */
static int
s_pending_one(SSL_CTX *ctx, const struct sockaddr_in *sa)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0), rc;
	SSL *ssl = NULL;

	if (fd == -1)
		return -1;
	if (connect(fd, (const struct sockaddr *)sa, sizeof(*sa)) == -1 ||
	    fcntl(fd, F_SETFL, O_NONBLOCK) == -1 ||
	    (ssl = SSL_new(ctx)) == NULL || SSL_set_fd(ssl, fd) != 1 ||
	    SSL_set_tlsext_host_name(ssl, "pending.bench.test") != 1)
		goto fail;
	rc = SSL_connect(ssl);
	if (rc <= 0 && SSL_get_error(ssl, rc) == SSL_ERROR_WANT_READ)
		return 0;
fail:
	SSL_free(ssl);
	close(fd);
	return -1;
}

static int
s_pending(int argc, char **argv)
{
	struct sockaddr_in sa;
	SSL_CTX *ctx;
	long n, rss1, rssn;

	if (argc != 5) {
		fprintf(stderr, "usage: mini_client pending IP PORT N\n");
		return 2;
	}
	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_port = htons((unsigned short)atoi(argv[3]));
	n = atol(argv[4]);
	if (inet_pton(AF_INET, argv[2], &sa.sin_addr) != 1 || n < 2 ||
	    n > 100000) {
		fprintf(stderr, "mini_client: bad arguments\n");
		return 2;
	}
	signal(SIGPIPE, SIG_IGN);
	if ((ctx = s_ctx_new(1)) == NULL)
		return 2;
	if (s_pending_one(ctx, &sa) == -1)
		return 1;
	rss1 = s_rss_kib();
	for (long i = 1; i < n; i++)
		if (s_pending_one(ctx, &sa) == -1) {
			fprintf(stderr,
			    "mini_client: handshake %ld did not "
			    "wait\n",
			    i + 1);
			return 1;
		}
	rssn = s_rss_kib();
	printf("{\"mode\": \"pending\", \"n\": %ld, \"ok\": %ld, "
	       "\"rss1_kib\": %ld, "
	       "\"rss_kib\": %ld, \"kib_per_handshake\": %.2f}\n",
	    n, n, rss1, rssn, (double)(rssn - rss1) / (double)(n - 1));
	return 0;
}

int
main(int argc, char **argv)
{
	struct sockaddr_in sa;
	struct epoll_event evs[256];
	struct rusage ru0, ru1;
	SSL_CTX *ctx;
	long names, n, conc, started = 0, done = 0, ok = 0, running = 0;
	double t0, t1;
	char sni[256];
	int ep;

	if (argc > 1 && strcmp(argv[1], "pending") == 0)
		return s_pending(argc, argv);
	if (argc != 7) {
		fprintf(
		    stderr, "usage: mini_client IP PORT SNI_FMT M N CONC\n");
		return 2;
	}
	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_port = htons((unsigned short)atoi(argv[2]));
	names = atol(argv[4]);
	n = atol(argv[5]);
	conc = atol(argv[6]);
	if (inet_pton(AF_INET, argv[1], &sa.sin_addr) != 1 || names < 1 ||
	    n < 1 || n > 10000000 || conc < 1 || conc > 100000 ||
	    strstr(argv[3], "%d") == NULL) {
		fprintf(stderr, "mini_client: bad arguments\n");
		return 2;
	}
	signal(SIGPIPE, SIG_IGN);
	if ((ctx = s_ctx_new(0)) == NULL)
		return 2;
	if ((ep = epoll_create1(0)) == -1)
		return 2;
	getrusage(RUSAGE_SELF, &ru0);
	t0 = s_now();
	while (done < n && s_now() - t0 < DEADLINE_S) {
		while (running < conc && started < n) {
			snprintf(sni, sizeof(sni), argv[3],
			    (int)(1 + started % names));
			started++;
			if (s_open(ctx, ep, &sa, sni) == NULL)
				done++;
			else
				running++;
		}
		int k = epoll_wait(ep, evs, 256, 1000);
		for (int i = 0; i < k; i++) {
			struct conn *c = evs[i].data.ptr;
			int r = s_step(c, ep);
			if (r == 0)
				continue;
			if (r == 1)
				ok++;
			s_close(c);
			running--;
			done++;
		}
	}
	t1 = s_now();
	getrusage(RUSAGE_SELF, &ru1);
	{
		double wall = t1 - t0;
		double user = s_tv(ru1.ru_utime) - s_tv(ru0.ru_utime);
		double sys = s_tv(ru1.ru_stime) - s_tv(ru0.ru_stime);
		printf("{\"mode\": \"mini\", \"n\": %ld, \"ok\": %ld, "
		       "\"conc\": %ld, \"wall_s\": %.4f, \"rate\": %.1f, "
		       "\"cpu_user_s\": %.4f, \"cpu_sys_s\": %.4f, "
		       "\"cpu_us_per_op\": %.1f}\n",
		    n, ok, conc, wall, wall > 0 ? ok / wall : 0, user, sys,
		    (user + sys) * 1e6 / (double)n);
	}
	/* Connections still open at the deadline die with the process. */
	close(ep);
	SSL_CTX_free(ctx);
	return ok == n ? 0 : 1;
}
