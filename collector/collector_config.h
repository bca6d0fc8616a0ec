/* collector_config.h -- the collector's configuration file, parsed and checked.
 */
#ifndef MTASTS_COLLECTOR_CONFIG_H
#define MTASTS_COLLECTOR_CONFIG_H

#include <stddef.h>

#include <czmq.h>

/* The packages build with -DCOLLECTOR_MIGRATIONS_DEFAULT=
 * '"/usr/share/mtasts-watch/sql"' (Makefile, target deb). */
#ifndef COLLECTOR_MIGRATIONS_DEFAULT
#define COLLECTOR_MIGRATIONS_DEFAULT "deploy/sql"
#endif
#define COLLECTOR_INTERVAL_DEFAULT	  300
#define COLLECTOR_INTERVAL_MIN		  10
#define COLLECTOR_INTERVAL_MAX		  86400
#define COLLECTOR_CREDIT_DEFAULT	  64
#define COLLECTOR_CREDIT_MAX		  10000
#define COLLECTOR_BATCH_DEFAULT		  100
#define COLLECTOR_BATCH_MAX		  10000
#define COLLECTOR_RETENTION_DEFAULT	  90
#define COLLECTOR_RETENTION_MAX		  36500
#define COLLECTOR_Z85_KEY_LEN		  40
#define COLLECTOR_PROPAGATION_WINDOW_MAX  (7U * 86400)
#define COLLECTOR_QUORUM_MAX		  1000
#define COLLECTOR_WEBHOOK_TIMEOUT_DEFAULT 10
#define COLLECTOR_WEBHOOK_TIMEOUT_MAX	  300
#define COLLECTOR_SYSLOG_FACILITY_DEFAULT 16 /* local0 */
#define COLLECTOR_TOKEN_MIN		  16
#define COLLECTOR_TOKEN_MAX		  256

/*
 * Everything in [collector], [http] and [notify].  Strings are owned by
 * the config.  The key
 * pair is loaded while the file is checked, so that a configuration that
 * passes `-n` also has a key the daemon can use.
 */
struct collector_config {
	char *path;
	char *bind;	  /* ZeroMQ endpoint of the ROUTER socket */
	char *secret_key; /* zcert secret file, mode 0600 or stricter */
	char *allow_dir;  /* agents' public zcert files */
	char *database;	  /* libpq conninfo */
	char *migrations; /* deploy/sql by default */
	unsigned interval_s;
	unsigned credit;
	unsigned batch;
	unsigned retention_days; /* 0: keep everything */
	unsigned quorum;	 /* 0: compare.h's default */
	/* Seconds a STS id or policy change may take to reach every vantage
	 * (plus one interval); 0: compare.h's default. */
	unsigned propagation_window_s;

	/* [http]: the API is off when http_bind is NULL. */
	char *http_bind; /* "IP:PORT" or "[IPv6]:PORT" */
	char *http_token_file;
	char *http_token; /* read from http_token_file, NULL: none */

	/* [notify]: each sink is off when its key is NULL. */
	char *webhook_url;
	char *webhook_token_file;
	char *webhook_token; /* read from webhook_token_file */
	char *webhook_ca_file;
	unsigned webhook_timeout_s;
	char *external_url;  /* links in notifications, NULL: none */
	char *syslog;	     /* udp://H:P, tcp://H:P or unix:PATH */
	char *syslog_format; /* rfc5424 (NULL) or cef */
	char *syslog_facility_name;
	int syslog_facility; /* 0..23, local0 by default */

	zcert_t *cert;				    /* ours, from secret_key */
	char public_txt[COLLECTOR_Z85_KEY_LEN + 1]; /* ours, Z85 */
};

/* Every problem found in one file, each "FILE:LINE: message". */
struct collector_config_errors {
	char **v;
	size_t n;
};

/*
 * Parses and checks path.  Every error is collected, not only the first:
 * syntax, lines too long for inih (at most 199 bytes), unknown section or
 * key, duplicate key, empty value, number out of range, missing required
 * key (reported at the [collector] line), a secret key file that cannot be
 * loaded or that group or others may read, an allow_dir or migrations
 * that is not a directory.  Returns the config (free with
 * collector_config_free), or NULL with at least one message in errs (free
 * with collector_config_errors_free).  Calls malloc.
 */
struct collector_config *collector_config_load(
    const char *path, struct collector_config_errors *errs);
/*
 * Splits "IP:PORT" or "[IPv6]:PORT" (numeric addresses only) into host
 * and port.  0, or -1 when in is not of that form.
 */
int collector_config_split_hostport(
    const char *in, char *host, size_t hostlen, unsigned *port);

/* Frees *cfg and NULLs it; NULL is fine. */
void collector_config_free(struct collector_config **cfg);
void collector_config_errors_free(struct collector_config_errors *errs);

#endif
