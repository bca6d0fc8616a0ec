/* smtp_starttls.h -- ESMTP dialogue up to a STARTTLS handshake. */
#ifndef MTASTS_SMTP_STARTTLS_H
#define MTASTS_SMTP_STARTTLS_H

#include "engine.h"
#include "tls_conn.h"

enum smtp_stage {
	SMTP_STAGE_CONNECT,	/* no TCP connection to any address */
	SMTP_STAGE_GREETING,	/* connected; no usable 220 greeting */
	SMTP_STAGE_EHLO,	/* EHLO refused or malformed */
	SMTP_STAGE_NO_STARTTLS, /* EHLO fine, STARTTLS not offered */
	SMTP_STAGE_STARTTLS,	/* STARTTLS refused */
	SMTP_STAGE_TLS		/* reached the TLS handshake (see tls.ok) */
};

struct smtp_result {
	enum smtp_stage stage;
	char ip[64];	       /* the address the dialogue ran on */
	char error[320];       /* what went wrong at stage, "" when fine */
	int starttls;	       /* STARTTLS was offered */
	struct tls_result tls; /* owned; filled at SMTP_STAGE_TLS */
};

/* Called once from the event loop; r is freed after it returns. */
typedef void (*smtp_starttls_cb)(struct smtp_result *r, void *arg);

struct smtp_starttls;

/*
 * Connects to each of the n addresses of host in turn until one answers,
 * speaks ESMTP and runs a STARTTLS handshake with SNI host.  addrs are
 * copied.  Returns NULL when it could not start.
 */
struct smtp_starttls *smtp_starttls_start(struct engine *engine,
    const char *host, char *const *addrs, size_t n, smtp_starttls_cb cb,
    void *arg);
/* Abandons the dialogue; the callback is not called.  NULLs *s. */
void smtp_starttls_cancel(struct smtp_starttls **s);

#endif
