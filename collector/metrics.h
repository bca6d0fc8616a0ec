/* metrics.h -- the collector's state in the Prometheus text exposition
 * format (version 0.0.4), for GET /metrics. */
#ifndef MTASTS_METRICS_H
#define MTASTS_METRICS_H

#include <stddef.h>
#include <time.h>

#include <libpq-fe.h>

#include "ingest.h"

/*
 * Renders every metric into a malloc'd, NUL-terminated buffer that the
 * caller frees: per (domain, vantage) of each agent's latest result,
 * probe success, earliest certificate expiry (unix time) and policy mode;
 * per domain, the latest compared round; per code and severity, open
 * incidents; per agent, last seen; the collector's ingest counters (ic
 * may be NULL: then they are left out).  Names, labels and help texts are
 * in docs/metrics.md.  conn is a connection of the caller's (same
 * database and search_path as the store); the function runs read-only
 * queries on it, in a transaction of its own when conn is idle.  now
 * bounds what counts as recent: results received in the 3 days before it.
 *
 * A database failure does not fail the exposition, so that Prometheus
 * still gets the counters while the database is away: the function then
 * returns 0 with only the families not read from the database,
 * mtastswatch_metrics_database_success 0, and the reason in err (err is
 * "" after a full success).  The caller resets conn when PQstatus says it
 * is gone.  Returns -1, with the reason in err and nothing allocated, only
 * when out is NULL, memory runs out or the exposition would pass 64 MiB.
 */
int metrics_render(PGconn *conn, const struct ingest_counters *ic, time_t now,
    char **out, size_t *outlen, char *err, size_t errlen);

#endif
