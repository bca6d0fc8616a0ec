/* result_text.h -- the readable summary of a probe result. */
#ifndef MTASTS_RESULT_TEXT_H
#define MTASTS_RESULT_TEXT_H

#include <stdio.h>

#include "probe.h"

/* Writes the summary of res to fp; colour codes only when colour is set. */
void result_text_print(FILE *fp, const struct probe_result *res, int colour);

#endif
