/* result_json.h -- a probe result as the JSON object of the CLI and spool. */
#ifndef MTASTS_RESULT_JSON_H
#define MTASTS_RESULT_JSON_H

#include <jansson.h>

#include "probe.h"

/* Returns a new reference (caller json_decref()s it), or NULL. */
json_t *result_json(const struct probe_result *res);

/* A JSON string of len bytes of s, invalid UTF-8 replaced by U+FFFD and
 * NUL bytes by U+FFFD too, so hostile bytes never break the output. */
json_t *result_json_text(const char *s, size_t len);

#endif
