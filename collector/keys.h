/* keys.h -- the collector's CURVE key pair and its allowlist of agent keys. */
#ifndef MTASTS_KEYS_H
#define MTASTS_KEYS_H

#include <stddef.h>

#include <czmq.h>

/*
 * Writes a new key pair into dir: dir/collector.key (public zcert, to give
 * to agents) and dir/collector.key_secret (mode 0600).  Refuses to
 * overwrite either file.  0, or -1 with the reason in err.
 */
int keys_generate(const char *dir, char *err, size_t errlen);

/*
 * Loads the zcert secret file at path after checking that it is a regular
 * file that neither group nor others may access, and that it holds a
 * secret key.  Returns the certificate (free with zcert_destroy) or NULL
 * with the reason in err.  Calls malloc.
 */
zcert_t *keys_load_secret(const char *path, char *err, size_t errlen);

/* One allowed agent: what the metadata of its certificate file says. */
struct keys_agent {
	char *name;   /* "" when the certificate has none */
	char *region; /* "" when the certificate has none */
	char *file;   /* the certificate file, for the log */
};

struct keys_allow;

/*
 * Loads every public certificate in dir (files ending in "_secret" and
 * hidden files are skipped; files that do not load are logged and
 * skipped).  Returns the allowlist (free with keys_allow_free), or NULL
 * with the reason in err when dir cannot be read.  Calls malloc.
 */
struct keys_allow *keys_allow_load(const char *dir, char *err, size_t errlen);
/* Frees *a and NULLs it; NULL is fine. */
void keys_allow_free(struct keys_allow **a);
/* The agent with this Z85 public key, borrowed from a; NULL when absent. */
const struct keys_agent *keys_allow_lookup(
    const struct keys_allow *a, const char *public_key);
size_t keys_allow_count(const struct keys_allow *a);

#endif
