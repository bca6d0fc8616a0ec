/* pgschema.h -- a private PostgreSQL schema per test, on the cluster that
 * tests/run.sh starts (tests/lib/pg_start.sh).  Header-only, like
 * testcert.h: each test program that talks to the database includes it. */
#ifndef MTASTS_TEST_PGSCHEMA_H
#define MTASTS_TEST_PGSCHEMA_H

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <libpq-fe.h>

/*
 * admin runs the checks; conninfo is the base conninfo with search_path set
 * to schema, for the code under test.  Tests therefore neither see nor
 * depend on each other.
 */
struct pgschema {
	PGconn *admin;
	char schema[64];
	char conninfo[1024];
	char ring[8][4096]; /* answers of pgschema_q() */
	int next;
};

/* DROP SCHEMA ... CASCADE lists every object; the tests need none of it. */
static void
pgschema_quiet(void *arg, const char *message)
{
	(void)arg;
	(void)message;
}

/* Runs SQL on the admin connection, failing the test on an error. */
static void __attribute__((format(printf, 2, 3), unused))
pgschema_sql(struct pgschema *ps, const char *fmt, ...)
{
	char buf[2048];
	va_list ap;
	PGresult *res;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	res = PQexec(ps->admin, buf);
	if (PQresultStatus(res) != PGRES_COMMAND_OK &&
	    PQresultStatus(res) != PGRES_TUPLES_OK) {
		print_error("%s: %s\n", buf, PQresultErrorMessage(res));
		PQclear(res);
		fail();
	}
	PQclear(res);
}

/*
 * The first column of the first row of a query, as text; "<null>" for SQL
 * NULL and "<none>" when there is no row.  Good until 8 more calls.
 */
static const char *__attribute__((format(printf, 2, 3), unused))
pgschema_q(struct pgschema *ps, const char *fmt, ...)
{
	char buf[2048], *out = ps->ring[ps->next++ % 8];
	va_list ap;
	PGresult *res;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	res = PQexec(ps->admin, buf);
	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		print_error("%s: %s\n", buf, PQresultErrorMessage(res));
		PQclear(res);
		fail();
	}
	if (PQntuples(res) == 0)
		snprintf(out, sizeof(ps->ring[0]), "<none>");
	else if (PQgetisnull(res, 0, 0))
		snprintf(out, sizeof(ps->ring[0]), "<null>");
	else
		snprintf(out, sizeof(ps->ring[0]), "%s", PQgetvalue(res, 0, 0));
	PQclear(res);
	return out;
}

static long __attribute__((unused))
pgschema_qn(struct pgschema *ps, const char *query)
{
	return strtol(pgschema_q(ps, "%s", query), NULL, 10);
}

/*
 * Connects the admin connection to base and makes a fresh schema named
 * prefix_PID_N.  0, or -1 with the reason printed.
 */
static int __attribute__((unused))
pgschema_open(struct pgschema *ps, const char *base, const char *prefix)
{
	static int counter;

	snprintf(ps->schema, sizeof(ps->schema), "%s_%ld_%d", prefix,
	    (long)getpid(), ++counter);
	snprintf(ps->conninfo, sizeof(ps->conninfo),
	    "%s options='-csearch_path=%s'", base, ps->schema);
	ps->admin = PQconnectdb(base);
	if (PQstatus(ps->admin) != CONNECTION_OK) {
		print_error("admin connect: %s", PQerrorMessage(ps->admin));
		return -1;
	}
	PQsetNoticeProcessor(ps->admin, pgschema_quiet, NULL);
	pgschema_sql(ps, "DROP SCHEMA IF EXISTS %s CASCADE", ps->schema);
	pgschema_sql(ps, "CREATE SCHEMA %s", ps->schema);
	pgschema_sql(ps, "SET search_path = %s", ps->schema);
	return 0;
}

/* Drops the schema (reconnecting first: a restart test leaves the admin
 * connection dead) and closes the connection. */
static void __attribute__((unused)) pgschema_close(struct pgschema *ps)
{
	if (ps->admin == NULL)
		return;
	if (PQstatus(ps->admin) != CONNECTION_OK)
		PQreset(ps->admin);
	if (PQstatus(ps->admin) == CONNECTION_OK) {
		char buf[128];

		snprintf(buf, sizeof(buf), "DROP SCHEMA IF EXISTS %s CASCADE",
		    ps->schema);
		PQclear(PQexec(ps->admin, buf));
	}
	PQfinish(ps->admin);
	ps->admin = NULL;
}

#endif
