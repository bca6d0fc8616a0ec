/* collector_config.h -- the collector's configuration file, parsed and checked.
 */
#ifndef MTASTS_COLLECTOR_CONFIG_H
#define MTASTS_COLLECTOR_CONFIG_H

#include <stddef.h>

#include <czmq.h>

#define COLLECTOR_MIGRATIONS_DEFAULT "deploy/sql"
#define COLLECTOR_INTERVAL_DEFAULT   300
#define COLLECTOR_INTERVAL_MIN	     10
#define COLLECTOR_INTERVAL_MAX	     86400
#define COLLECTOR_CREDIT_DEFAULT     64
#define COLLECTOR_CREDIT_MAX	     10000
#define COLLECTOR_BATCH_DEFAULT	     100
#define COLLECTOR_BATCH_MAX	     10000
#define COLLECTOR_RETENTION_DEFAULT  90
#define COLLECTOR_RETENTION_MAX	     36500
#define COLLECTOR_Z85_KEY_LEN	     40

/*
 * Everything in [collector].  Strings are owned by the config.  The key
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
/* Frees *cfg and NULLs it; NULL is fine. */
void collector_config_free(struct collector_config **cfg);
void collector_config_errors_free(struct collector_config_errors *errs);

#endif
