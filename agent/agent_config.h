/* agent_config.h -- the agent daemon's configuration file, parsed and checked.
 */
#ifndef MTASTS_AGENT_CONFIG_H
#define MTASTS_AGENT_CONFIG_H

#include <stddef.h>
#include <stdint.h>

#include <czmq.h>

#define AGENT_ENDPOINTS_MAX	  16
#define AGENT_CONCURRENCY_DEFAULT 64
#define AGENT_TIMEOUT_DEFAULT	  30
#define AGENT_SPOOL_CAP_DEFAULT	  (256ull * 1024 * 1024)
#define AGENT_SPOOL_CAP_MIN	  (1024ull * 1024)
#define AGENT_HEARTBEAT_DEFAULT	  10
#define AGENT_ACK_TIMEOUT_DEFAULT 30
#define AGENT_Z85_KEY_LEN	  40

/*
 * Everything in [agent].  Strings are owned by the config.  The keys are
 * loaded while the file is checked, so a configuration that passes `-n`
 * also has keys the daemon can use.
 */
struct agent_config {
	char *path;
	char *name;	     /* informational; the collector uses the key */
	char *region;	     /* informational; "" when not set */
	char *secret_key;    /* zcert secret file */
	char *collector_key; /* collector's public zcert file */
	char *endpoints[AGENT_ENDPOINTS_MAX];
	size_t n_endpoints;
	char *resolver; /* NULL: /etc/resolv.conf */
	char *ca_file;	/* NULL: the system store */
	char *spool_dir;
	uint64_t spool_cap;
	int concurrency;
	int timeout_s;
	int heartbeat_s;
	int ack_timeout_s;
	int https_port; /* 443; other values for test labs only */
	int smtp_port;	/* 25; likewise */

	zcert_t *cert; /* our key pair, from secret_key */
	char public_txt[AGENT_Z85_KEY_LEN + 1];		  /* ours, Z85 */
	char collector_public_txt[AGENT_Z85_KEY_LEN + 1]; /* theirs, Z85 */
};

/* Every problem found in one file, each "FILE:LINE: message". */
struct agent_config_errors {
	char **v;
	size_t n;
};

/*
 * Parses and checks path.  Every error is collected, not just the first:
 * syntax, unknown section or key, duplicate key, bad value, missing
 * required key, key files that cannot be loaded, a secret key that group
 * or others can read.  Returns the config (free with agent_config_free), or
 * NULL with at least one message in errs (free with
 * agent_config_errors_free).  Calls malloc.
 */
struct agent_config *agent_config_load(
    const char *path, struct agent_config_errors *errs);
/* Frees *cfg and NULLs it; NULL is fine. */
void agent_config_free(struct agent_config **cfg);
void agent_config_errors_free(struct agent_config_errors *errs);

/*
 * Parses a byte count: digits with an optional K, M or G suffix (powers of
 * 1024, either case).  Returns 0, or -1 on bad syntax or overflow.
 */
int agent_config_parse_size(const char *s, uint64_t *out);

#endif
