/* keygen.h -- `mtasts-agent keygen`: the agent's CURVE key pair. */
#ifndef MTASTS_KEYGEN_H
#define MTASTS_KEYGEN_H

#include <stddef.h>

#define KEYGEN_PUBLIC "agent.key"
#define KEYGEN_SECRET "agent.key_secret"

/*
 * Writes a new key pair as zcert files: dir/agent.key (public, with
 * metadata name and, unless NULL or empty, region; the operator copies it
 * into the collector's allow_dir) and dir/agent.key_secret (mode 0600).
 * Creates dir and its parents (0700) if missing.  Never overwrites: when
 * either file exists nothing is written.  Returns 0, or -1 with the reason
 * in err.
 */
int keygen_write(const char *dir, const char *name, const char *region,
    char *err, size_t errlen);

/* The `keygen` command: argv[0] is "keygen".  Returns the exit status. */
int keygen_cmd(int argc, char **argv);

#endif
