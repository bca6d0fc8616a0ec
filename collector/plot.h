/* plot.h -- a picture of one domain, as a self-contained SVG document:
 * certificate expiry over time per host, and the vantage agreement matrix
 * of the latest compared round. */
#ifndef MTASTS_PLOT_H
#define MTASTS_PLOT_H

#include <stddef.h>

#include <libpq-fe.h>

/*
 * Renders domain (stored form: lower case, no trailing dot) into a
 * malloc'd, NUL-terminated SVG document that the caller frees.  Every
 * text taken from the database is XML-escaped.  Returns 0, 1 when the
 * domain is unknown (neither in the watch list nor with a result in the
 * last 90 days; nothing allocated, *out NULL), or -1 with the reason in
 * err.  conn is a connection of the caller's on the store's database and
 * search_path; the queries are read-only, in one transaction of their own
 * when conn is idle.
 *
 * The document holds no script and refers to nothing outside itself.
 * Bounded: 90 days, at most 180 points per host, 12 hosts (the others
 * counted in a note), 16 vantages, 4 MiB.  docs/metrics.md describes what
 * is drawn and what it costs.
 */
int plot_domain_svg(PGconn *conn, const char *domain, char **out,
    size_t *outlen, char *err, size_t errlen);

#endif
