/* errbuf.h -- formatting a reason into a caller's error buffer. */
#ifndef MTASTS_ERRBUF_H
#define MTASTS_ERRBUF_H

#include <stddef.h>

/* printf into err; does nothing when err is NULL or errlen is 0. */
void errbuf_set(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
