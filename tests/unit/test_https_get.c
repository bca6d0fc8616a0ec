/* test_https_get.c -- https_get end to end against TLS servers on loopback. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/socket.h>
#include <time.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "engine.h"
#include "https_get.h"
#include "testcert.h"

/*
 * Each server is a thread that accepts one connection on a socket the test
 * bound and listened on before starting it (so it is up before the client
 * connects), completes TLS with SSL_accept on a blocking socket, reads the
 * request and plays a script: a reply written in pieces, then an ending.
 * Every socket has a 3 s timeout so that no thread outlives a failed test
 * by more than that; the teardown joins them all.
 */

#define HOST	    "mta-sts.example.test"
#define PATH	    "/.well-known/mta-sts.txt"
#define SRV_WAIT_MS 3000
#define RUN_MAX_MS  5000
#define MAX_SRV	    8
#define POLICY                                                                 \
	"version: STSv1\r\nmode: enforce\r\nmx: mail.example.test\r\n"         \
	"max_age: 86400\r\n"

enum srv_end {
	END_NOTIFY, /* close_notify, then close */
	END_BARE,   /* close without close_notify */
	END_RESET,  /* SO_LINGER 0: an RST */
	END_HANG    /* wait, silent, until the client closes */
};

struct srv {
	int lfd;
	int port;
	int plain; /* no TLS: answer HTTP in the clear */
	int tls12; /* at most TLS 1.2 */
	const char *reply;
	size_t reply_len;
	size_t piece; /* 0: the reply in one write */
	int piece_sleep_ms;
	int end_sleep_ms; /* between the reply and the ending */
	enum srv_end end;
	pthread_t th;
	int running;
	atomic_int got_request;
	atomic_int peer_closed;
	char request[2048];
	char sni[256];
};

struct got {
	atomic_int done;
	enum https_get_error kind;
	char error[320];
	long status;
	char *content_type;
	char *location;
	unsigned char *body;
	size_t body_len;
	int too_large;
	char ip[64];
	struct tls_result tls;
	long long ms; /* from the start to the callback */
};

static struct {
	struct event_base *base;
	struct engine *engine;
	SSL_CTX *srv_ctx;
	X509 *cert;
	int baseline_events;
	int baseline_fds;
	int have_v6;
	struct srv *srv[MAX_SRV];
	int n_srv;
	int extra_fd[8]; /* listeners without a thread, closed by teardown */
	int n_extra;
	struct got got;
	long long started_ms;
} fx;

static void
s_sleep_ms(int ms)
{
	struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};

	while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
		;
}

static int
s_count_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;
	int n = 0;

	if (d == NULL)
		return -1;
	while ((e = readdir(d)) != NULL)
		if (e->d_name[0] != '.')
			n++;
	closedir(d);
	return n - 1; /* the directory's own */
}

/* A socket bound to ip:port (0: any port), listening when backlog >= 0;
 * -1 when the address cannot be bound. */
static int
s_bind(const char *ip, int port, int backlog, int *port_out)
{
	struct sockaddr_storage ss;
	socklen_t len;
	int fd, one = 1;

	memset(&ss, 0, sizeof(ss));
	if (strchr(ip, ':') != NULL) {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons((unsigned short)port);
		if (inet_pton(AF_INET6, ip, &s6->sin6_addr) != 1)
			return -1;
		len = sizeof(*s6);
	} else {
		struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
		s4->sin_family = AF_INET;
		s4->sin_port = htons((unsigned short)port);
		if (inet_pton(AF_INET, ip, &s4->sin_addr) != 1)
			return -1;
		len = sizeof(*s4);
	}
	if ((fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0)) == -1)
		return -1;
	(void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *)&ss, len) == -1 ||
	    (backlog >= 0 && listen(fd, backlog) == -1) ||
	    getsockname(fd, (struct sockaddr *)&ss, &len) == -1) {
		close(fd);
		return -1;
	}
	if (port_out != NULL)
		*port_out = ntohs(ss.ss_family == AF_INET6
				      ? ((struct sockaddr_in6 *)&ss)->sin6_port
				      : ((struct sockaddr_in *)&ss)->sin_port);
	return fd;
}

static void
s_extra_fd(int fd)
{
	assert_true(fd != -1);
	assert_true(fx.n_extra < 8);
	fx.extra_fd[fx.n_extra++] = fd;
}

static void
s_srv_write(struct srv *s, SSL *ssl, int fd)
{
	size_t off = 0;

	while (off < s->reply_len) {
		size_t n = s->reply_len - off;
		int w;

		if (s->piece > 0 && n > s->piece)
			n = s->piece;
		if (ssl != NULL)
			w = SSL_write(ssl, s->reply + off, (int)n);
		else
			w = (int)write(fd, s->reply + off, n);
		if (w <= 0)
			return;
		off += (size_t)w;
		if (s->piece > 0 && s->piece_sleep_ms > 0)
			s_sleep_ms(s->piece_sleep_ms);
	}
}

static void *
s_srv_main(void *arg)
{
	struct srv *s = arg;
	struct pollfd pfd = {s->lfd, POLLIN, 0};
	struct timeval tv = {SRV_WAIT_MS / 1000, 0};
	struct linger lg = {1, 0};
	SSL *ssl = NULL;
	size_t have = 0;
	int fd;

	if (poll(&pfd, 1, SRV_WAIT_MS) != 1 ||
	    (fd = accept(s->lfd, NULL, NULL)) == -1)
		return NULL;
	(void)setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	(void)setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	if (s->plain) {
		/* Whatever the client says (its ClientHello), HTTP back. */
		if (read(fd, s->request, sizeof(s->request) - 1) > 0)
			atomic_store(&s->got_request, 1);
		s_srv_write(s, NULL, fd);
		s_sleep_ms(s->end_sleep_ms);
		close(fd);
		return NULL;
	}
	if ((ssl = SSL_new(fx.srv_ctx)) == NULL || SSL_set_fd(ssl, fd) != 1)
		goto out;
	if (s->tls12)
		SSL_set_max_proto_version(ssl, TLS1_2_VERSION);
	if (SSL_accept(ssl) != 1)
		goto out;
	if (SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name) != NULL)
		snprintf(s->sni, sizeof(s->sni), "%s",
		    SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name));
	while (strstr(s->request, "\r\n\r\n") == NULL &&
	       have < sizeof(s->request) - 1) {
		int n = SSL_read(ssl, s->request + have,
		    (int)(sizeof(s->request) - 1 - have));
		if (n <= 0)
			goto out;
		have += (size_t)n;
		s->request[have] = '\0';
	}
	atomic_store(&s->got_request, 1);
	s_srv_write(s, ssl, fd);
	s_sleep_ms(s->end_sleep_ms);
	switch (s->end) {
	case END_NOTIFY:
		(void)SSL_shutdown(ssl);
		break;
	case END_BARE:
		break;
	case END_RESET:
		(void)setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
		break;
	case END_HANG: {
		char c;
		int n;

		errno = 0;
		n = SSL_read(ssl, &c, 1);
		if (n <= 0 && errno != EAGAIN && errno != EWOULDBLOCK)
			atomic_store(&s->peer_closed, 1);
		break;
	}
	}
out:
	SSL_free(ssl);
	ERR_clear_error();
	close(fd);
	return NULL;
}

/* A server on ip (port 0: any) with its script, running; NULL when ip
 * cannot be bound. */
static struct srv *
s_srv_new(const char *ip, int port, const char *reply, enum srv_end end)
{
	struct srv *s;

	assert_true(fx.n_srv < MAX_SRV);
	s = calloc(1, sizeof(*s));
	assert_non_null(s);
	if ((s->lfd = s_bind(ip, port, 8, &s->port)) == -1) {
		free(s);
		return NULL;
	}
	s->reply = reply;
	s->reply_len = reply != NULL ? strlen(reply) : 0;
	s->end = end;
	fx.srv[fx.n_srv++] = s;
	return s;
}

static void
s_srv_run(struct srv *s)
{
	assert_int_equal(pthread_create(&s->th, NULL, s_srv_main, s), 0);
	s->running = 1;
}

static void
s_srv_join(struct srv *s)
{
	if (s->running) {
		pthread_join(s->th, NULL);
		s->running = 0;
	}
}

static void
s_cb(struct https_get_result *res, void *arg)
{
	struct got *g = arg;

	g->kind = res->kind;
	snprintf(g->error, sizeof(g->error), "%s", res->error);
	g->status = res->status;
	g->content_type = res->content_type;
	res->content_type = NULL;
	g->location = res->location;
	res->location = NULL;
	g->body = res->body;
	res->body = NULL;
	g->body_len = res->body_len;
	g->too_large = res->too_large;
	snprintf(g->ip, sizeof(g->ip), "%s", res->ip);
	g->tls = res->tls;
	memset(&res->tls, 0, sizeof(res->tls));
	g->ms = engine_now_ms() - fx.started_ms;
	atomic_fetch_add(&g->done, 1);
}

static void
s_got_clear(struct got *g)
{
	free(g->content_type);
	free(g->location);
	free(g->body);
	tls_result_clear(&g->tls);
	memset(g, 0, sizeof(*g));
}

/* Runs the loop until *flag is set or max_ms have passed. */
static void
s_loop_until(atomic_int *flag, int max_ms)
{
	long long end = engine_now_ms() + max_ms;

	while ((flag == NULL || !atomic_load(flag)) && engine_now_ms() < end) {
		struct timeval tv = {0, 5000};

		event_base_loopexit(fx.base, &tv);
		event_base_dispatch(fx.base);
	}
}

static struct https_get_req
s_req(int port, char *const *addrs, size_t n_addrs)
{
	struct https_get_req r = {
	    .host = HOST,
	    .port = port,
	    .path = PATH,
	    .addrs = addrs,
	    .n_addrs = n_addrs,
	    .max_body = 64 * 1024,
	    .connect_timeout_ms = 1000,
	    .io_timeout_ms = 1000,
	    .timeout_ms = 3000,
	};
	return r;
}

static struct https_get *
s_start(const struct https_get_req *req)
{
	struct https_get *g;

	s_got_clear(&fx.got);
	fx.started_ms = engine_now_ms();
	g = https_get_start(fx.engine, req, s_cb, &fx.got);
	assert_non_null(g);
	return g;
}

/* One GET to completion: the callback came exactly once. */
static struct got *
s_run(const struct https_get_req *req)
{
	(void)s_start(req);
	s_loop_until(&fx.got.done, RUN_MAX_MS);
	assert_int_equal(atomic_load(&fx.got.done), 1);
	return &fx.got;
}

/* One GET to the server s, on ip. */
static struct got *
s_get(struct srv *s, const char *ip)
{
	char *addrs[1] = {(char *)ip};
	struct https_get_req req = s_req(s->port, addrs, 1);

	s_srv_run(s);
	return s_run(&req);
}

static void
s_assert_tls(const struct got *g, int version)
{
	assert_true(g->tls.ok);
	assert_int_equal(g->tls.version_num, version);
	assert_string_equal(
	    g->tls.version, version == TLS1_3_VERSION ? "TLSv1.3" : "TLSv1.2");
	assert_non_null(g->tls.chain);
	assert_int_equal(sk_X509_num(g->tls.chain), 1);
	assert_int_equal(X509_cmp(sk_X509_value(g->tls.chain, 0), fx.cert), 0);
	assert_null(g->tls.ssl);
}

static void
s_assert_ok(const struct got *g, long status)
{
	if (g->kind != HTTPS_OK)
		fail_msg("kind %d: %s", g->kind, g->error);
	assert_string_equal(g->error, "");
	assert_int_equal(g->status, status);
}

static int
s_group_setup(void **state)
{
	struct engine_config cfg;
	struct tc_opts o;
	EVP_PKEY *key;
	char err[256];
	int fd;

	(void)state;
	signal(SIGPIPE, SIG_IGN);
	memset(&o, 0, sizeof(o));
	if ((key = tc_key_ec("P-256")) == NULL)
		return -1;
	o.cn = HOST;
	o.san = "DNS:" HOST;
	o.eku = "serverAuth";
	o.key = key;
	o.not_before = time(NULL) - 3600;
	o.not_after = time(NULL) + 86400;
	if ((fx.cert = tc_cert(&o)) == NULL)
		return -1;
	if ((fx.srv_ctx = SSL_CTX_new(TLS_server_method())) == NULL ||
	    SSL_CTX_use_certificate(fx.srv_ctx, fx.cert) != 1 ||
	    SSL_CTX_use_PrivateKey(fx.srv_ctx, key) != 1)
		return -1;
	EVP_PKEY_free(key);

	memset(&cfg, 0, sizeof(cfg));
	cfg.resolver = "127.0.0.1:53"; /* never asked */
	cfg.vantage = "test";
	cfg.timeout_s = 5;
	if ((fx.base = event_base_new()) == NULL)
		return -1;
	if ((fx.engine = engine_new(fx.base, &cfg, err, sizeof(err))) == NULL) {
		fprintf(stderr, "engine_new: %s\n", err);
		return -1;
	}
	fx.baseline_events =
	    event_base_get_num_events(fx.base, EVENT_BASE_COUNT_ADDED);
	if ((fd = s_bind("::1", 0, 1, NULL)) != -1) {
		fx.have_v6 = 1;
		close(fd);
	}
	return 0;
}

static int
s_group_teardown(void **state)
{
	(void)state;
	engine_free(&fx.engine);
	if (fx.base != NULL)
		event_base_free(fx.base);
	SSL_CTX_free(fx.srv_ctx);
	X509_free(fx.cert);
	return 0;
}

static int
s_setup(void **state)
{
	(void)state;
	fx.baseline_fds = s_count_fds();
	return 0;
}

/* Joins every server, and checks that https_get left no event, no socket
 * and (under ASan) no allocation behind. */
static int
s_teardown(void **state)
{
	int events, fds;

	(void)state;
	for (int i = 0; i < fx.n_srv; i++) {
		s_srv_join(fx.srv[i]);
		if (fx.srv[i]->lfd != -1)
			close(fx.srv[i]->lfd);
		free(fx.srv[i]);
		fx.srv[i] = NULL;
	}
	fx.n_srv = 0;
	for (int i = 0; i < fx.n_extra; i++)
		close(fx.extra_fd[i]);
	fx.n_extra = 0;
	s_got_clear(&fx.got);
	events = event_base_get_num_events(fx.base, EVENT_BASE_COUNT_ADDED);
	fds = s_count_fds();
	if (events != fx.baseline_events || fds != fx.baseline_fds) {
		fprintf(stderr,
		    "left behind: %d events (%d before), %d fds (%d "
		    "before)\n",
		    events, fx.baseline_events, fds, fx.baseline_fds);
		return -1;
	}
	return 0;
}

/* A listener on ip:port (0: any) whose accept queue is full, so that a
 * connect to it waits for a SYN-ACK that never comes; its port. */
static int
s_hanging_listener(const char *ip, int port)
{
	struct sockaddr_in sin;
	int filler;

	/* Backlog 0 holds one connection, which the filler takes. */
	s_extra_fd(s_bind(ip, port, 0, &port));
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_port = htons((unsigned short)port);
	assert_int_equal(inet_pton(AF_INET, ip, &sin.sin_addr), 1);
	s_extra_fd(filler = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
	assert_int_equal(
	    connect(filler, (struct sockaddr *)&sin, sizeof(sin)), 0);
	s_sleep_ms(10);
	return port;
}

/* 1. 200 with Content-Length over TLS 1.3; the request as sent. */
static void
test_content_length(void **state)
{
	char reply[512], host[64];
	struct srv *s;
	struct got *g;

	(void)state;
	snprintf(reply, sizeof(reply),
	    "HTTP/1.1 200 OK\r\n"
	    "Content-Type: text/plain\r\n"
	    "Location: /not-a-redirect\r\n"
	    "Content-Length: %zu\r\n"
	    "\r\n" POLICY,
	    strlen(POLICY));
	s = s_srv_new("127.0.0.1", 0, reply, END_NOTIFY);
	assert_non_null(s);
	g = s_get(s, "127.0.0.1");
	s_assert_ok(g, 200);
	assert_string_equal(g->content_type, "text/plain");
	assert_null(g->location); /* only a 3xx has one */
	assert_int_equal(g->body_len, strlen(POLICY));
	assert_memory_equal(g->body, POLICY, strlen(POLICY));
	assert_int_equal(g->body[g->body_len], '\0');
	assert_int_equal(g->too_large, 0);
	assert_string_equal(g->ip, "127.0.0.1");
	s_assert_tls(g, TLS1_3_VERSION);

	s_srv_join(s);
	assert_string_equal(s->sni, HOST);
	snprintf(host, sizeof(host), "\r\nHost: %s:%d\r\n", HOST, s->port);
	assert_true(strncmp(s->request, "GET " PATH " HTTP/1.1\r\n",
			strlen("GET " PATH " HTTP/1.1\r\n")) == 0);
	assert_non_null(strstr(s->request, host));
	assert_non_null(strstr(s->request, "\r\nConnection: close\r\n"));
}

/* 1b. The same over IPv6 and TLS 1.2, skipped without ::1. */
static void
test_ipv6_tls12(void **state)
{
	static const char reply[] =
	    "HTTP/1.1 200 OK\r\n"
	    "Content-Type: text/plain; charset=utf-8\r\n"
	    "Content-Length: 5\r\n"
	    "\r\n"
	    "hello";
	struct srv *s;
	struct got *g;

	(void)state;
	if (!fx.have_v6 ||
	    (s = s_srv_new("::1", 0, reply, END_NOTIFY)) == NULL) {
		skip();
		return;
	}
	s->tls12 = 1;
	g = s_get(s, "::1");
	s_assert_ok(g, 200);
	assert_string_equal(g->content_type, "text/plain; charset=utf-8");
	assert_int_equal(g->body_len, 5);
	assert_string_equal((char *)g->body, "hello");
	assert_string_equal(g->ip, "::1");
	s_assert_tls(g, TLS1_2_VERSION);
}

/* A body much larger than one read and the socket buffers. */
static void
test_large_body(void **state)
{
	const size_t n = 300 * 1024;
	char head[128];
	char *reply;
	struct srv *s;
	struct got *g;
	size_t hl;

	(void)state;
	hl = (size_t)snprintf(head, sizeof(head),
	    "HTTP/1.1 200 OK\r\nContent-Length: %zu\r\n\r\n", n);
	reply = malloc(hl + n + 1);
	assert_non_null(reply);
	memcpy(reply, head, hl);
	for (size_t i = 0; i < n; i++)
		reply[hl + i] = (char)('a' + i % 26);
	reply[hl + n] = '\0';
	s = s_srv_new("127.0.0.1", 0, reply, END_NOTIFY);
	assert_non_null(s);
	{
		char *addrs[1] = {"127.0.0.1"};
		struct https_get_req req = s_req(s->port, addrs, 1);

		req.max_body = n;
		s_srv_run(s);
		g = s_run(&req);
	}
	s_srv_join(s);
	s_assert_ok(g, 200);
	assert_null(g->content_type);
	assert_int_equal(g->too_large, 0);
	assert_int_equal(g->body_len, n);
	assert_memory_equal(g->body, reply + hl, n);
	free(reply);
}

/* 2. A chunked body, written three bytes at a time. */
static void
test_chunked_trickle(void **state)
{
	static const char reply[] = "HTTP/1.1 200 OK\r\n"
				    "Transfer-Encoding: chunked\r\n"
				    "Content-Type: text/plain\r\n"
				    "\r\n"
				    "10\r\nversion: STSv1\r\n\r\n"
				    "f;ext=1\r\nmode: enforce\r\n\r\n"
				    "0\r\n"
				    "X-Trailer: t\r\n"
				    "\r\n";
	struct srv *s;
	struct got *g;

	(void)state;
	s = s_srv_new("127.0.0.1", 0, reply, END_NOTIFY);
	assert_non_null(s);
	s->piece = 3;
	s->piece_sleep_ms = 2;
	g = s_get(s, "127.0.0.1");
	s_assert_ok(g, 200);
	assert_string_equal(g->content_type, "text/plain");
	assert_int_equal(
	    g->body_len, strlen("version: STSv1\r\nmode: enforce\r\n"));
	assert_string_equal(
	    (char *)g->body, "version: STSv1\r\nmode: enforce\r\n");
	assert_int_equal(g->too_large, 0);
	s_assert_tls(g, TLS1_3_VERSION);
}

/* 3. A 3xx's Location made absolute against https://HOST:PORT/PATH. */
static void
test_redirect_location(void **state)
{
	static const struct {
		const char *sent;
		const char *want; /* %d: the port */
	} cases[] = {
	    {"policy.txt", "https://" HOST ":%d/.well-known/policy.txt"},
	    {"/elsewhere?x=1", "https://" HOST ":%d/elsewhere?x=1"},
	    {"//other.example.test/p", "https://other.example.test/p"},
	    {"https://mta-sts.other.test/.well-known/mta-sts.txt",
		"https://mta-sts.other.test/.well-known/mta-sts.txt"},
	};
	char reply[512], want[256];

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct srv *s;
		struct got *g;

		snprintf(reply, sizeof(reply),
		    "HTTP/1.1 301 Moved Permanently\r\n"
		    "Location: %s\r\n"
		    "Content-Type: text/html\r\n"
		    "Content-Length: 5\r\n"
		    "\r\n"
		    "moved",
		    cases[i].sent);
		s = s_srv_new("127.0.0.1", 0, reply, END_NOTIFY);
		assert_non_null(s);
		g = s_get(s, "127.0.0.1");
		s_assert_ok(g, 301);
		snprintf(want, sizeof(want), cases[i].want, s->port);
		assert_non_null(g->location);
		assert_string_equal(g->location, want);
		assert_string_equal(g->content_type, "text/html");
		assert_string_equal((char *)g->body, "moved");
		s_srv_join(s);
		close(s->lfd);
		free(s);
		fx.srv[--fx.n_srv] = NULL;
	}
}

/* 4. A 100 Continue, a pause, then the response. */
static void
test_continue_then_200(void **state)
{
	static const char reply[] = "HTTP/1.1 100 Continue\r\n"
				    "X-Interim: yes\r\n"
				    "\r\n"
				    "HTTP/1.1 200 OK\r\n"
				    "Content-Length: 2\r\n"
				    "\r\n"
				    "ok";
	struct srv *s;
	struct got *g;

	(void)state;
	s = s_srv_new("127.0.0.1", 0, reply, END_NOTIFY);
	assert_non_null(s);
	s->piece = 41; /* the interim response, then the rest */
	s->piece_sleep_ms = 20;
	g = s_get(s, "127.0.0.1");
	s_assert_ok(g, 200);
	assert_null(g->content_type);
	assert_int_equal(g->body_len, 2);
	assert_string_equal((char *)g->body, "ok");
}

/* 5. More than max_body: the first max_body bytes, too_large, and OK. */
static void
test_too_large(void **state)
{
	static const char reply[] = "HTTP/1.1 200 OK\r\n"
				    "Content-Type: text/plain\r\n"
				    "Content-Length: 40\r\n"
				    "\r\n"
				    "0123456789abcdefghijklmnopqrstuvwxyzABCD";
	static const char close_reply[] =
	    "HTTP/1.1 200 OK\r\n"
	    "\r\n"
	    "0123456789abcdefghijklmnopqrstuvwxyz";
	char *addrs[1] = {"127.0.0.1"};
	struct https_get_req req;
	struct srv *s;
	struct got *g;

	(void)state;
	s = s_srv_new("127.0.0.1", 0, reply, END_NOTIFY);
	assert_non_null(s);
	req = s_req(s->port, addrs, 1);
	req.max_body = 16;
	s_srv_run(s);
	g = s_run(&req);
	s_assert_ok(g, 200);
	assert_int_equal(g->too_large, 1);
	assert_int_equal(g->body_len, 16);
	assert_string_equal((char *)g->body, "0123456789abcdef");
	assert_string_equal(g->content_type, "text/plain");

	/* A body delimited by the close, that never closes: the byte past
	 * max_body ends the read, without waiting for the close. */
	s = s_srv_new("127.0.0.1", 0, close_reply, END_HANG);
	assert_non_null(s);
	req = s_req(s->port, addrs, 1);
	req.max_body = 10;
	s_srv_run(s);
	g = s_run(&req);
	s_assert_ok(g, 200);
	assert_int_equal(g->too_large, 1);
	assert_int_equal(g->body_len, 10);
	assert_string_equal((char *)g->body, "0123456789");
	assert_true(g->ms < 900); /* not the io timeout */
}

/* 6. The close ends a body: too early for Content-Length, on time for a
 * body that has no other delimiter, with or without close_notify. */
static void
test_closed_early_or_on_time(void **state)
{
	static const char short_reply[] = "HTTP/1.1 200 OK\r\n"
					  "Content-Type: text/plain\r\n"
					  "Content-Length: 100\r\n"
					  "\r\n"
					  "only ten b";
	static const char close_reply[] = "HTTP/1.1 200 OK\r\n"
					  "Content-Type: text/plain\r\n"
					  "\r\n" POLICY;
	static const enum srv_end ends[] = {END_NOTIFY, END_BARE};

	(void)state;
	for (size_t i = 0; i < 2; i++) {
		struct srv *s;
		struct got *g;

		s = s_srv_new("127.0.0.1", 0, short_reply, ends[i]);
		assert_non_null(s);
		g = s_get(s, "127.0.0.1");
		assert_int_equal(g->kind, HTTPS_INCOMPLETE);
		assert_non_null(strstr(g->error, "before the end of the body"));
		assert_int_equal(g->status, 200);
		assert_string_equal(g->content_type, "text/plain");
		assert_int_equal(g->body_len, 10);
		assert_string_equal((char *)g->body, "only ten b");
		assert_true(g->tls.ok);

		s = s_srv_new("127.0.0.1", 0, close_reply, ends[i]);
		assert_non_null(s);
		g = s_get(s, "127.0.0.1");
		s_assert_ok(g, 200);
		assert_string_equal(g->content_type, "text/plain");
		assert_string_equal((char *)g->body, POLICY);
		assert_int_equal(g->body_len, strlen(POLICY));
	}
}

/*
 * 7. An RST.  After the headers it is HTTPS_INCOMPLETE: https_get reads
 * SSL_ERROR_SYSCALL with ECONNRESET and, the parser having seen the whole
 * head, calls it a broken body (the status and the partial body are
 * kept).  Before any response byte it is HTTPS_RECV, with no status.  The
 * server pauses before the reset so that the client has read what came
 * before it.
 */
static void
test_reset(void **state)
{
	static const char reply[] = "HTTP/1.1 200 OK\r\n"
				    "Content-Length: 1000\r\n"
				    "\r\n"
				    "partial";
	struct srv *s;
	struct got *g;

	(void)state;
	s = s_srv_new("127.0.0.1", 0, reply, END_RESET);
	assert_non_null(s);
	s->end_sleep_ms = 100;
	g = s_get(s, "127.0.0.1");
	assert_int_equal(g->kind, HTTPS_INCOMPLETE);
	assert_non_null(strstr(g->error, "receiving the body"));
	assert_non_null(strstr(g->error, "reset"));
	assert_int_equal(g->status, 200);
	assert_int_equal(g->body_len, 7);
	assert_string_equal((char *)g->body, "partial");

	s = s_srv_new("127.0.0.1", 0, NULL, END_RESET);
	assert_non_null(s);
	g = s_get(s, "127.0.0.1");
	assert_int_equal(g->kind, HTTPS_RECV);
	assert_non_null(strstr(g->error, "receiving the response"));
	assert_int_equal(g->status, 0);
	assert_null(g->body);
	assert_true(g->tls.ok);
}

/* 8. Not HTTP after the handshake. */
static void
test_garbage(void **state)
{
	static const char reply[] = "SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n"
				    "\r\n";
	struct srv *s;
	struct got *g;

	(void)state;
	s = s_srv_new("127.0.0.1", 0, reply, END_NOTIFY);
	assert_non_null(s);
	g = s_get(s, "127.0.0.1");
	assert_int_equal(g->kind, HTTPS_PROTOCOL);
	assert_non_null(strstr(g->error, "bad HTTP response"));
	assert_int_equal(g->status, 0);
	assert_null(g->body);
	assert_null(g->content_type);
	assert_true(g->tls.ok);
}

/*
 * 9. Silence after the handshake ends with the io timeout, and a server
 * that trickles bytes forever with the whole request's deadline; a server
 * that never speaks TLS (a listener nobody accepts on) with the io
 * timeout during the handshake.
 */
static void
test_timeouts(void **state)
{
	static char slow[2048];
	char *addrs[1] = {"127.0.0.1"};
	struct https_get_req req;
	struct srv *s;
	struct got *g;
	int port, fd;

	(void)state;
	s = s_srv_new("127.0.0.1", 0, NULL, END_HANG);
	assert_non_null(s);
	req = s_req(s->port, addrs, 1);
	req.io_timeout_ms = 300;
	s_srv_run(s);
	g = s_run(&req);
	assert_int_equal(g->kind, HTTPS_TIMEOUT);
	assert_non_null(strstr(g->error, "nothing received for 300 ms"));
	assert_int_equal(g->status, 0);
	assert_true(g->tls.ok);
	assert_true(g->ms >= 290 && g->ms < 1000);
	s_srv_join(s);
	assert_int_equal(atomic_load(&s->peer_closed), 1);

	snprintf(slow, sizeof(slow),
	    "HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n%01000d", 0);
	s = s_srv_new("127.0.0.1", 0, slow, END_NOTIFY);
	assert_non_null(s);
	s->piece = 1;
	s->piece_sleep_ms = 20;
	req = s_req(s->port, addrs, 1);
	req.io_timeout_ms = 300;
	req.timeout_ms = 600;
	s_srv_run(s);
	g = s_run(&req);
	assert_int_equal(g->kind, HTTPS_TIMEOUT);
	assert_non_null(strstr(g->error, "timed out after 600 ms"));
	assert_true(g->ms >= 590 && g->ms < 1200);

	s_extra_fd(fd = s_bind("127.0.0.1", 0, 8, &port));
	req = s_req(port, addrs, 1);
	req.io_timeout_ms = 300;
	g = s_run(&req);
	assert_int_equal(g->kind, HTTPS_TIMEOUT);
	assert_false(g->tls.ok);
	assert_true(g->tls.timed_out);
	assert_string_equal(g->ip, "127.0.0.1");
	assert_true(g->ms >= 290 && g->ms < 1000);
}

/* 10. The first address refuses (bound, not listening), the second
 * serves; then all of them refuse; then the first never answers the SYN
 * (a full accept queue) and the second serves after the connect timeout. */
static void
test_next_address(void **state)
{
	static const char reply[] = "HTTP/1.1 200 OK\r\n"
				    "Content-Length: 3\r\n"
				    "\r\n"
				    "two";
	char *addrs[2] = {"127.0.0.1", "127.0.0.2"};
	struct https_get_req req;
	struct srv *s;
	struct got *g;

	(void)state;
	s = s_srv_new("127.0.0.2", 0, reply, END_NOTIFY);
	assert_non_null(s);
	s_extra_fd(s_bind("127.0.0.1", s->port, -1, NULL));
	req = s_req(s->port, addrs, 2);
	s_srv_run(s);
	g = s_run(&req);
	s_assert_ok(g, 200);
	assert_string_equal((char *)g->body, "two");
	assert_string_equal(g->ip, "127.0.0.2");
	s_srv_join(s);

	/* Nobody listens on either address now. */
	close(s->lfd);
	s->lfd = -1;
	g = s_run(&req);
	assert_int_equal(g->kind, HTTPS_CONNECT);
	assert_non_null(strstr(g->error, "127.0.0.1: connect"));
	assert_non_null(strstr(g->error, "127.0.0.2: connect"));
	assert_non_null(strstr(g->error, "refused"));
	assert_string_equal(g->ip, "");
	assert_false(g->tls.ok);
	assert_int_equal(g->status, 0);

	s = s_srv_new("127.0.0.2", 0, reply, END_NOTIFY);
	assert_non_null(s);
	s_hanging_listener("127.0.0.1", s->port);
	req = s_req(s->port, addrs, 2);
	req.connect_timeout_ms = 200;
	s_srv_run(s);
	g = s_run(&req);
	s_assert_ok(g, 200);
	assert_string_equal((char *)g->body, "two");
	assert_string_equal(g->ip, "127.0.0.2");
	assert_true(g->ms >= 190 && g->ms < 1000);
}

/* 11. Plain HTTP where TLS was expected. */
static void
test_plain_http(void **state)
{
	static const char reply[] = "HTTP/1.1 400 Bad Request\r\n"
				    "Content-Length: 0\r\n"
				    "\r\n";
	struct srv *s;
	struct got *g;

	(void)state;
	s = s_srv_new("127.0.0.1", 0, reply, END_BARE);
	assert_non_null(s);
	s->plain = 1;
	s->end_sleep_ms = 50;
	g = s_get(s, "127.0.0.1");
	assert_int_equal(g->kind, HTTPS_TLS);
	assert_false(g->tls.ok);
	assert_false(g->tls.timed_out);
	assert_true(g->error[0] != '\0');
	assert_string_equal(g->error, g->tls.error);
	assert_int_equal(g->status, 0);
	assert_string_equal(g->ip, "127.0.0.1");
}

/* Runs the loop for ms and checks that the callback did not come. */
static void
s_no_callback_for(int ms)
{
	s_loop_until(NULL, ms);
	assert_int_equal(atomic_load(&fx.got.done), 0);
}

/*
 * 12. Cancelled before it started, while connecting (the listener's accept
 * queue is full, so the SYN goes unanswered), during the handshake (a
 * listener nobody accepts on) and while waiting for the response: the
 * callback never comes and the teardown finds no event and no socket left
 * (ASan: no allocation).
 */
static void
test_cancel(void **state)
{
	char *addrs[1] = {"127.0.0.1"};
	struct https_get_req req;
	struct https_get *h;
	struct srv *s;
	int port;

	(void)state;
	/* Before the first loop turn, and while connecting. */
	port = s_hanging_listener("127.0.0.1", 0);
	req = s_req(port, addrs, 1);
	h = s_start(&req);
	https_get_cancel(&h);
	assert_null(h);
	s_no_callback_for(50);
	h = s_start(&req);
	s_no_callback_for(100);
	https_get_cancel(&h);
	s_no_callback_for(50);

	/* In the handshake. */
	s_extra_fd(s_bind("127.0.0.1", 0, 8, &port));
	req = s_req(port, addrs, 1);
	h = s_start(&req);
	s_no_callback_for(100);
	https_get_cancel(&h);
	s_no_callback_for(50);

	/* Waiting for the response: the server sees the socket close. */
	s = s_srv_new("127.0.0.1", 0, NULL, END_HANG);
	assert_non_null(s);
	req = s_req(s->port, addrs, 1);
	s_srv_run(s);
	h = s_start(&req);
	s_loop_until(&s->got_request, RUN_MAX_MS);
	assert_int_equal(atomic_load(&s->got_request), 1);
	s_no_callback_for(20);
	https_get_cancel(&h);
	s_no_callback_for(50);
	s_srv_join(s);
	assert_int_equal(atomic_load(&s->peer_closed), 1);

	/* A NULL is fine. */
	https_get_cancel(&h);
}

int
main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, s_setup, s_teardown)
	const struct CMUnitTest tests[] = {
	    T(test_content_length),
	    T(test_ipv6_tls12),
	    T(test_large_body),
	    T(test_chunked_trickle),
	    T(test_redirect_location),
	    T(test_continue_then_200),
	    T(test_too_large),
	    T(test_closed_early_or_on_time),
	    T(test_reset),
	    T(test_garbage),
	    T(test_timeouts),
	    T(test_next_address),
	    T(test_plain_http),
	    T(test_cancel),
	};
#undef T

	return cmocka_run_group_tests(tests, s_group_setup, s_group_teardown);
}
