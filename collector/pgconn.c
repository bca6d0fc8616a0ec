/* pgconn.c -- the database connections of the collector's threads. */
#include "pgconn.h"

#include <stdio.h>
#include <string.h>

#include "errbuf.h"
#include "log.h"

/* libpq's messages end with a newline, which a key=value log line must not
 * carry. */
static void
s_reason(char *err, size_t errlen, const char *what, PGconn *conn)
{
	size_t n;

	errbuf_set(err, errlen, "%s: %s", what,
	    conn != NULL ? PQerrorMessage(conn) : "out of memory");
	n = strlen(err);
	while (n > 0 && (err[n - 1] == '\n' || err[n - 1] == '\r'))
		err[--n] = '\0';
	for (size_t i = 0; i < n; i++)
		if (err[i] == '\n' || err[i] == '"')
			err[i] = ' ';
}

PGconn *
pgconn_open(const char *conninfo, const char *application_name,
    int statement_timeout_ms, char *err, size_t errlen)
{
	/* dbname expands conninfo; the keywords after it win over its own. */
	const char *const keys[] = {
	    "dbname", "connect_timeout", "application_name", NULL};
	const char *vals[] = {
	    conninfo, PGCONN_CONNECT_TIMEOUT, application_name, NULL};
	char set[64];
	PGconn *conn;
	PGresult *res;

	conn = PQconnectdbParams(keys, vals, 1);
	if (conn == NULL || PQstatus(conn) != CONNECTION_OK) {
		s_reason(err, errlen, "connect", conn);
		PQfinish(conn);
		return NULL;
	}
	if (statement_timeout_ms <= 0)
		return conn;
	snprintf(set, sizeof(set), "SET statement_timeout = %d",
	    statement_timeout_ms);
	res = PQexec(conn, set);
	if (PQresultStatus(res) != PGRES_COMMAND_OK) {
		s_reason(err, errlen, "statement_timeout", conn);
		PQclear(res);
		PQfinish(conn);
		return NULL;
	}
	PQclear(res);
	return conn;
}

PGresult *
pgconn_query_err(PGconn *conn, const char *what, const char *sql, int n,
    const char *const *params, char *err, size_t errlen)
{
	PGresult *res = PQexecParams(conn, sql, n, NULL, params, NULL, NULL, 0);
	ExecStatusType st = PQresultStatus(res);
	const char *msg;
	size_t len;

	if (st == PGRES_TUPLES_OK || st == PGRES_COMMAND_OK)
		return res;
	/* No result at all (out of memory, connection gone): the
	 * connection's message says why. */
	msg = PQresultErrorMessage(res);
	if (msg[0] == '\0')
		msg = PQerrorMessage(conn);
	len = strlen(msg);
	while (len > 0 && msg[len - 1] == '\n')
		len--;
	errbuf_set(err, errlen, "%s: %.*s", what, (int)len, msg);
	PQclear(res);
	return NULL;
}

PGresult *
pgconn_query(PGconn *conn, const char *what, const char *sql, int n,
    const char *const *params)
{
	char whatf[128], err[1024];
	PGresult *res;

	snprintf(whatf, sizeof(whatf), "%s failed", what);
	res = pgconn_query_err(conn, whatf, sql, n, params, err, sizeof(err));
	if (res == NULL)
		log_warnx("%s", err);
	return res;
}

int
pgconn_exec(PGconn *conn, const char *what, const char *sql, int n,
    const char *const *params)
{
	PGresult *res = pgconn_query(conn, what, sql, n, params);

	PQclear(res);
	return res == NULL ? -1 : 0;
}
