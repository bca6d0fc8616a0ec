/* notify.h -- delivers incident events to a webhook (Alertmanager
 * envelope) and to syslog (RFC 5424 or CEF), each sink on its own. */
#ifndef MTASTS_NOTIFY_H
#define MTASTS_NOTIFY_H

#include <stddef.h>
#include <stdint.h>

/*
 * The notifier walks incident_events (deploy/sql/003_incidents.sql) in id
 * order, one cursor per sink in notify_cursors, and moves a sink's cursor
 * after each event that sink accepted: at least once per sink, never
 * dropped, retried with exponential backoff (1 s doubling to 5 min).  A
 * sink seen for the first time starts at the newest event (no replay).
 *
 * Each enabled sink has a thread and a libpq connection of its own, so a
 * receiver that hangs delays neither the caller (the collector's ZeroMQ
 * loop) nor the other sink.  The connection is reopened when it is lost;
 * a session advisory lock per (schema, sink) keeps two collectors on one
 * database from delivering the same sink twice.  Every wait (database,
 * HTTP, syslog socket) is cut into slices that look at the stop flag, so
 * notify_stop returns within about 200 ms.  docs/notify.md has the
 * payloads and the crash window.
 */

/* Sinks; the names in notify_cursors.sink are "webhook" and "syslog". */
enum notify_sink { NOTIFY_SINK_WEBHOOK, NOTIFY_SINK_SYSLOG, NOTIFY_SINKS };

enum notify_syslog_format {
	NOTIFY_SYSLOG_RFC5424, /* structured data + free text */
	NOTIFY_SYSLOG_CEF      /* the CEF line as MSG */
};

#define NOTIFY_WEBHOOK_TIMEOUT_DEFAULT 10   /* seconds */
#define NOTIFY_WEBHOOK_TIMEOUT_MAX     300  /* seconds */
#define NOTIFY_POLL_DEFAULT_MS	       2000 /* between looks for events */
#define NOTIFY_BATCH		       100  /* events read per query */
#define NOTIFY_GAP_WAIT_DEFAULT_MS     60000
#define NOTIFY_BACKOFF_MIN_S	       1
#define NOTIFY_BACKOFF_MAX_S	       300
/* Longest detail (annotations.description) in a webhook payload, bytes. */
#define NOTIFY_DETAIL_MAX 4096
/* Response bodies are discarded; reading stops after this many bytes. */
#define NOTIFY_RESPONSE_MAX (64 * 1024)
/* Syslog message bounds: UDP per RFC 5426 section 3.2 guidance, the
 * stream transports at what rsyslog and journald take by default. */
#define NOTIFY_SYSLOG_UDP_MAX	 2048
#define NOTIFY_SYSLOG_STREAM_MAX 8192
/* Longest bearer token notify_new accepts (the config reads token files,
 * collector_config.c). */
#define NOTIFY_TOKEN_MAX 4096

/*
 * Strings are copied by notify_start; NULL or "" turns a sink off.  Zero
 * numbers take the defaults.
 */
struct notify_opts {
	const char *conninfo;	     /* libpq, same database and search_path as
					the store, after its migrations ran */
	const char *webhook_url;     /* http:// or https:// */
	unsigned webhook_timeout_s;  /* whole request, 1..300, default 10 */
	const char *webhook_token;   /* "Authorization: Bearer TOKEN" */
	const char *webhook_ca_file; /* PEM trust anchors; NULL: system */
	const char *syslog;	     /* udp://H:P, tcp://H:P, unix:/PATH */
	enum notify_syslog_format syslog_format;
	int syslog_facility;  /* 0..23 (16 = local0) */
	const char *hostname; /* syslog HOSTNAME; NULL: gethostname() */
	unsigned poll_ms;     /* default NOTIFY_POLL_DEFAULT_MS */
	/* Alertmanager externalURL, and generatorURL's base
	 * (EXTERNAL/incidents/ID); NULL: both empty. */
	const char *external_url;
	const char *receiver; /* envelope "receiver"; default mtasts-watch */
	/* identity values are handed out before commit, so event N can
	 * commit after N + 1 was delivered.  A sink that sees a hole in the
	 * ids waits this long for it to fill before it goes past it (a
	 * rolled-back insert leaves a hole for good).  Default 60 s. */
	unsigned gap_wait_ms;
};

/* Thread-safe snapshot, per sink (index enum notify_sink). */
struct notify_counters {
	int enabled[NOTIFY_SINKS];
	uint64_t delivered[NOTIFY_SINKS];    /* events accepted */
	uint64_t failed[NOTIFY_SINKS];	     /* failed delivery attempts */
	uint32_t attempts[NOTIFY_SINKS];     /* failures in a row, now */
	int64_t last_event_id[NOTIFY_SINKS]; /* cursor as last seen */
	int db_up[NOTIFY_SINKS];	     /* sink's connection is up */
};

struct notify;

/*
 * Checks opts (URL scheme, syslog target syntax and address, facility,
 * timeout), opens the syslog socket's address, and starts one thread per
 * enabled sink; the database is connected from those threads, so a
 * database that is down is not an error here.  With no sink enabled it
 * returns a notifier that does nothing.  Calls malloc; returns the
 * notifier (stopped with notify_stop), or NULL with the reason in err.
 * Call it from the main thread before any other thread uses libcurl
 * (it calls curl_global_init).
 */
struct notify *notify_start(
    const struct notify_opts *opts, char *err, size_t errlen);

/* Stops the threads (an HTTP request or a syslog write in progress is
 * abandoned; that event is sent again next time), frees *n and sets it to
 * NULL.  NULL and *n == NULL are fine. */
void notify_stop(struct notify **n);

/* Makes the threads look for new events now instead of at the next poll
 * (the incident code calls it after writing events).  Thread-safe. */
void notify_wake(struct notify *n);

/* Fills *out; thread-safe. */
void notify_counters(struct notify *n, struct notify_counters *out);

#endif
