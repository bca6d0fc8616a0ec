/* fuzz_wire.c -- libFuzzer target for the agent and collector decoders. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "wire.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	Mtastswatch__V1__AgentMessage *am;
	Mtastswatch__V1__CollectorMessage *cm;
	unsigned char *buf;
	size_t len;
	char err[128];

	am = wire_agent_decode(data, size, err, sizeof(err));
	/* Refused always says why; accepted never does. */
	if ((am == NULL) != (err[0] != '\0') ||
	    memchr(err, '\0', sizeof(err)) == NULL)
		abort();
	if (am != NULL) {
		/* What was accepted re-encodes and is accepted again. */
		if (wire_pack(&am->base, &buf, &len) == -1)
			abort();
		wire_agent_free(&am);
		am = wire_agent_decode(buf, len, err, sizeof(err));
		free(buf);
		if (am == NULL)
			abort();
		wire_agent_free(&am);
	}

	cm = wire_collector_decode(data, size, err, sizeof(err));
	if ((cm == NULL) != (err[0] != '\0'))
		abort();
	wire_collector_free(&cm);
	return 0;
}
