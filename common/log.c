/* log.c -- one-line key=value logging to stderr. */
#include "log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static enum log_level log_level = LOG_LEVEL_WARN;
static const char *log_name = "mtasts";

void
log_set_level(enum log_level level)
{
	log_level = level;
}

void
log_set_name(const char *name)
{
	log_name = name;
}

static void
s_vlog(enum log_level level, const char *tag, const char *suffix,
    const char *fmt, va_list ap)
{
	char line[1024];

	if (level > log_level)
		return;
	vsnprintf(line, sizeof(line), fmt, ap);
	/* One fprintf so that concurrent writers do not interleave a line. */
	fprintf(stderr, "%s: %s%s%s%s\n", log_name, tag, line,
	    suffix ? ": " : "", suffix ? suffix : "");
}

void
log_warnx(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	s_vlog(LOG_LEVEL_WARN, "", NULL, fmt, ap);
	va_end(ap);
}

void
log_warn(const char *fmt, ...)
{
	va_list ap;
	const char *err = strerror(errno);

	va_start(ap, fmt);
	s_vlog(LOG_LEVEL_WARN, "", err, fmt, ap);
	va_end(ap);
}

void
log_info(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	s_vlog(LOG_LEVEL_INFO, "", NULL, fmt, ap);
	va_end(ap);
}

void
log_debug(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	s_vlog(LOG_LEVEL_DEBUG, "debug: ", NULL, fmt, ap);
	va_end(ap);
}
