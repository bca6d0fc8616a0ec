/* keygen.c -- makes the agent's CURVE key pair as CZMQ zcert files. */
#include "keygen.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <czmq.h>

#include "errbuf.h"

#define META_MAX 64

/* Metadata values end up in a ZPL file: keep them to plain tokens. */
static int
s_meta_valid(const char *v)
{
	size_t n = strlen(v);

	return n > 0 && n <= META_MAX &&
	       strspn(v, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
			 "0123456789.-_") == n;
}

/* Creates path empty with mode, failing if it exists: O_EXCL makes the
 * "never overwrite" promise hold even against a concurrent keygen. */
static int
s_create(const char *path, mode_t mode, char *err, size_t errlen)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);

	if (fd == -1) {
		errbuf_set(err, errlen, "%s: %s%s", path, strerror(errno),
		    errno == EEXIST ? " (refusing to overwrite a key)" : "");
		return -1;
	}
	if (fchmod(fd, mode) == -1) {
		errbuf_set(err, errlen, "%s: %s", path, strerror(errno));
		close(fd);
		return -1;
	}
	if (close(fd) == -1) {
		errbuf_set(err, errlen, "%s: %s", path, strerror(errno));
		return -1;
	}
	return 0;
}

/* mkdir -p with mode 0700 for what it creates. */
static int
s_mkdir_p(const char *dir, char *err, size_t errlen)
{
	char path[PATH_MAX];
	size_t len = strlen(dir);

	if (len == 0 || len >= sizeof(path)) {
		errbuf_set(err, errlen, "%s: bad directory name", dir);
		return -1;
	}
	memcpy(path, dir, len + 1);
	for (char *p = path + 1; *p != '\0'; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(path, 0700) == -1 && errno != EEXIST) {
			errbuf_set(
			    err, errlen, "%s: %s", path, strerror(errno));
			return -1;
		}
		*p = '/';
	}
	if (mkdir(path, 0700) == -1 && errno != EEXIST) {
		errbuf_set(err, errlen, "%s: %s", path, strerror(errno));
		return -1;
	}
	return 0;
}

int
keygen_write(const char *dir, const char *name, const char *region, char *err,
    size_t errlen)
{
	char pub[PATH_MAX], sec[PATH_MAX];
	zcert_t *cert = NULL;
	int made_pub = 0, made_sec = 0;

	if (!s_meta_valid(name)) {
		errbuf_set(err, errlen,
		    "name '%s': use 1-%d of A-Z a-z 0-9 . - _", name, META_MAX);
		return -1;
	}
	if (region != NULL && region[0] != '\0' && !s_meta_valid(region)) {
		errbuf_set(err, errlen,
		    "region '%s': use 1-%d of A-Z a-z 0-9 . - _", region,
		    META_MAX);
		return -1;
	}
	if ((size_t)snprintf(pub, sizeof(pub), "%s/%s", dir, KEYGEN_PUBLIC) >=
		sizeof(pub) ||
	    (size_t)snprintf(sec, sizeof(sec), "%s/%s", dir, KEYGEN_SECRET) >=
		sizeof(sec)) {
		errbuf_set(err, errlen, "%s: path too long", dir);
		return -1;
	}
	if (s_mkdir_p(dir, err, errlen) == -1)
		return -1;
	/* The secret's file exists with mode 0600 before a byte is written. */
	if (s_create(sec, 0600, err, errlen) == -1)
		goto fail;
	made_sec = 1;
	if (s_create(pub, 0644, err, errlen) == -1)
		goto fail;
	made_pub = 1;
	if ((cert = zcert_new()) == NULL) {
		errbuf_set(err, errlen, "cannot make a key pair");
		goto fail;
	}
	zcert_set_meta(cert, "name", "%s", name);
	if (region != NULL && region[0] != '\0')
		zcert_set_meta(cert, "region", "%s", region);
	if (zcert_save_secret(cert, sec) == -1 ||
	    zcert_save_public(cert, pub) == -1) {
		errbuf_set(err, errlen, "cannot write %s or %s", sec, pub);
		goto fail;
	}
	/* zcert writes through fopen("w"), which keeps our mode; be sure. */
	if (chmod(sec, 0600) == -1) {
		errbuf_set(err, errlen, "%s: %s", sec, strerror(errno));
		goto fail;
	}
	zcert_destroy(&cert);
	return 0;
fail:
	zcert_destroy(&cert);
	if (made_sec)
		(void)unlink(sec);
	if (made_pub)
		(void)unlink(pub);
	return -1;
}

static void
s_usage(FILE *fp)
{
	fprintf(fp, "usage: mtasts-agent keygen DIR [--name NAME] "
		    "[--region REGION]\n");
}

int
keygen_cmd(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"name", required_argument, NULL, 'N'},
	    {"region", required_argument, NULL, 'R'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	char host[HOST_NAME_MAX + 1], err[PATH_MAX + 128];
	const char *name = NULL, *region = NULL;
	int c;

	optind = 1;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'N':
			name = optarg;
			break;
		case 'R':
			region = optarg;
			break;
		case 'h':
			s_usage(stdout);
			return 0;
		default:
			s_usage(stderr);
			return 2;
		}
	}
	if (optind != argc - 1) {
		s_usage(stderr);
		return 2;
	}
	if (name == NULL) {
		if (gethostname(host, sizeof(host)) == -1) {
			fprintf(stderr, "mtasts-agent: gethostname: %s\n",
			    strerror(errno));
			return 2;
		}
		host[HOST_NAME_MAX] = '\0';
		/* Only the first label: a short name reads better in reports.
		 */
		host[strcspn(host, ".")] = '\0';
		name = host;
	}
	if (keygen_write(argv[optind], name, region, err, sizeof(err)) == -1) {
		fprintf(stderr, "mtasts-agent: keygen: %s\n", err);
		return 1;
	}
	printf("%s/%s\n%s/%s\n", argv[optind], KEYGEN_PUBLIC, argv[optind],
	    KEYGEN_SECRET);
	return 0;
}
