/* pgconn.h -- the database connections of the collector's threads. */
#ifndef MTASTS_PGCONN_H
#define MTASTS_PGCONN_H

#include <stddef.h>

#include <libpq-fe.h>

/* Seconds a connection attempt may take: a database host that does not
 * answer must not hold a thread (and so a reload or a stop) for the
 * minutes of TCP retries. */
#define PGCONN_CONNECT_TIMEOUT "10"

/*
 * Opens a connection to conninfo (a conninfo string or URI) named
 * application_name in pg_stat_activity, with connect_timeout and, when
 * statement_timeout_ms > 0, a statement_timeout set for the session so
 * that a query stuck behind a lock fails instead of holding the thread.
 * Returns the connection (the caller's, PQfinish it), or NULL with the
 * reason in err.
 */
PGconn *pgconn_open(const char *conninfo, const char *application_name,
    int statement_timeout_ms, char *err, size_t errlen);

/*
 * PQexecParams with text parameters and results.  A result that is not
 * TUPLES_OK or COMMAND_OK is logged as "WHAT failed: message" and cleared,
 * and NULL returned; else the result, which the caller PQclears.
 */
PGresult *pgconn_query(PGconn *conn, const char *what, const char *sql, int n,
    const char *const *params);

/* pgconn_query with the failure, "WHAT: message", in err instead of the
 * log. */
PGresult *pgconn_query_err(PGconn *conn, const char *what, const char *sql,
    int n, const char *const *params, char *err, size_t errlen);

/* pgconn_query for a statement whose rows are not needed.  0, or -1. */
int pgconn_exec(PGconn *conn, const char *what, const char *sql, int n,
    const char *const *params);

#endif
