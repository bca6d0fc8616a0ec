/* log.h -- one-line key=value logging to stderr (syslog once daemonized). */
#ifndef MTASTS_LOG_H
#define MTASTS_LOG_H

enum log_level {
	LOG_LEVEL_ERROR,
	LOG_LEVEL_WARN,
	LOG_LEVEL_INFO,
	LOG_LEVEL_DEBUG
};

/* Messages above level are dropped; the default is LOG_LEVEL_WARN. */
void log_set_level(enum log_level level);
void log_set_name(const char *name);

void log_warnx(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Like log_warnx with ": strerror(errno)" appended. */
void log_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_debug(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
