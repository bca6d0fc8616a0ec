/* net.h -- small socket helpers with an error buffer. */
#ifndef MTASTS_NET_H
#define MTASTS_NET_H

#include <stddef.h>

/*
 * Starts a non-blocking TCP connect to ip (IPv4 or IPv6 text) and port.
 * Returns the socket (the caller closes it), or -1 with the reason in err.
 * Completion is signalled by writability; check it with net_connect_result.
 */
int net_connect_start(const char *ip, int port, char *err, size_t errlen);
/* 0 when the connect of fd succeeded, -1 with the reason in err. */
int net_connect_result(int fd, char *err, size_t errlen);

#endif
