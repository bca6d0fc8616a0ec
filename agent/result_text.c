/* result_text.c -- the readable summary of a probe result. */
#include "result_text.h"

#include <string.h>

#include "policy_parse.h"

#define C_RED "\033[31m"
#define C_YEL "\033[33m"
#define C_CYA "\033[36m"
#define C_GRN "\033[32m"
#define C_BLD "\033[1m"
#define C_OFF "\033[0m"

/* Prints s with control characters replaced, so hostile DNS or HTTP
 * content cannot drive the terminal. */
static void
s_safe(FILE *fp, const char *s)
{
	for (; s != NULL && *s; s++) {
		unsigned char c = (unsigned char)*s;
		fputc(c < 0x20 || c == 0x7f ? '?' : c, fp);
	}
}

static void
s_host(FILE *fp, const char *label, const struct host_result *h, int colour)
{
	fprintf(fp, "  %-12s ", label);
	s_safe(fp, h->host);
	if (h->ip[0])
		fprintf(fp, " [%s]", h->ip);
	if (h->tls_ok) {
		fprintf(fp, " %s %s", h->tls_version, h->cipher);
		if (h->evaluated && h->eval.verified)
			fprintf(fp, " %sverified%s", colour ? C_GRN : "",
			    colour ? C_OFF : "");
		else
			fprintf(fp, " %snot verified%s", colour ? C_RED : "",
			    colour ? C_OFF : "");
	} else if (h->error[0]) {
		fprintf(fp, " (");
		s_safe(fp, h->error);
		fprintf(fp, ")");
	}
	fputc('\n', fp);
}

void
result_text_print(FILE *fp, const struct probe_result *r, int colour)
{
	size_t nerr = 0, nwarn = 0;

	for (size_t i = 0; i < r->findings.n; i++) {
		if (r->findings.v[i].severity == SEV_ERROR)
			nerr++;
		else if (r->findings.v[i].severity == SEV_WARNING)
			nwarn++;
	}
	fprintf(fp, "%s", colour ? C_BLD : "");
	s_safe(fp, r->domain);
	fprintf(fp, "%s  vantage=%s %ldms%s: ", colour ? C_OFF : "", r->vantage,
	    r->duration_ms, r->completed ? "" : " (timed out)");
	if (nerr)
		fprintf(fp, "%s%zu error%s%s", colour ? C_RED : "", nerr,
		    nerr == 1 ? "" : "s", colour ? C_OFF : "");
	else
		fprintf(fp, "%sOK%s", colour ? C_GRN : "", colour ? C_OFF : "");
	if (nwarn)
		fprintf(fp, ", %zu warning%s", nwarn, nwarn == 1 ? "" : "s");
	fputc('\n', fp);

	fprintf(fp, "  %-12s ", "sts txt");
	if (r->sts_id[0]) {
		fprintf(fp, "id=");
		s_safe(fp, r->sts_id);
		fprintf(fp, "%s", r->sts_valid ? "" : " (invalid)");
	} else {
		fprintf(fp, "-");
	}
	fputc('\n', fp);
	fprintf(fp, "  %-12s ", "policy");
	if (r->policy_parsed) {
		fprintf(fp,
		    "mode=%s max_age=%ld mx=", policy_mode_name(r->policy.mode),
		    r->policy.max_age);
		for (size_t i = 0; i < r->policy.n_mx; i++) {
			if (i)
				fputc(',', fp);
			s_safe(fp, r->policy.mx[i]);
		}
	} else if (r->http_status) {
		fprintf(fp, "HTTP %ld", r->http_status);
	} else {
		fprintf(fp, "-");
	}
	fputc('\n', fp);
	s_host(fp, "policy host", &r->policy_host, colour);
	for (size_t i = 0; i < r->n_mx; i++) {
		char label[32];
		if (r->mx[i].h.host == NULL)
			continue;
		snprintf(label, sizeof(label), "mx %d", r->mx[i].preference);
		s_host(fp, label, &r->mx[i].h, colour);
	}
	fprintf(fp, "  %-12s ", "tls-rpt");
	for (size_t i = 0; i < r->n_rua; i++) {
		if (i)
			fputc(',', fp);
		s_safe(fp, r->rua[i]);
	}
	fprintf(fp, "%s\n", r->n_rua ? "" : "-");
	for (size_t i = 0; i < r->findings.n; i++) {
		const struct finding *f = &r->findings.v[i];
		const char *c = f->severity == SEV_ERROR     ? C_RED
				: f->severity == SEV_WARNING ? C_YEL
							     : C_CYA;
		fprintf(fp, "  %s%-7s%s %s ", colour ? c : "",
		    finding_severity_name(f->severity), colour ? C_OFF : "",
		    finding_code_name(f->code));
		s_safe(fp, f->subject);
		fprintf(fp, ": ");
		s_safe(fp, f->detail);
		fputc('\n', fp);
	}
}
