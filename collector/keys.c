/* keys.c -- the collector's CURVE key pair and its allowlist of agent keys. */
#include "keys.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "errbuf.h"
#include "log.h"

struct keys_allow {
	zhashx_t *agents; /* Z85 public key -> struct keys_agent */
};

/*
 * Makes path as an empty file that did not exist, so that two keygens
 * racing or an operator's existing key are never overwritten; zcert_save_*
 * then truncates and fills it.  The mode is set here because zcert only
 * tightens the umask while it writes.
 */
static int
s_reserve(const char *path, mode_t mode, char *err, size_t errlen)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);

	if (fd == -1) {
		if (errno == EEXIST)
			errbuf_set(err, errlen,
			    "%s exists; refusing to overwrite", path);
		else
			errbuf_set(
			    err, errlen, "%s: %s", path, strerror(errno));
		return -1;
	}
	if (fchmod(fd, mode) == -1) {
		errbuf_set(err, errlen, "%s: %s", path, strerror(errno));
		close(fd);
		unlink(path);
		return -1;
	}
	close(fd);
	return 0;
}

int
keys_generate(const char *dir, char *err, size_t errlen)
{
	char pub[PATH_MAX], sec[PATH_MAX];
	zcert_t *cert;
	int rc = -1;

	if (snprintf(pub, sizeof(pub), "%s/collector.key", dir) >=
		(int)sizeof(pub) ||
	    snprintf(sec, sizeof(sec), "%s/collector.key_secret", dir) >=
		(int)sizeof(sec)) {
		errbuf_set(err, errlen, "%s: path too long", dir);
		return -1;
	}
	/* Check both first so that a refusal leaves nothing behind. */
	if (access(pub, F_OK) == 0 || access(sec, F_OK) == 0) {
		errbuf_set(err, errlen, "%s exists; refusing to overwrite",
		    access(pub, F_OK) == 0 ? pub : sec);
		return -1;
	}
	if (s_reserve(sec, 0600, err, errlen) == -1)
		return -1;
	if (s_reserve(pub, 0644, err, errlen) == -1) {
		unlink(sec);
		return -1;
	}
	if ((cert = zcert_new()) == NULL) {
		errbuf_set(err, errlen, "cannot make a key pair");
		goto out;
	}
	zcert_set_meta(cert, "name", "%s", "mtasts-collector");
	if (zcert_save_secret(cert, sec) == -1) {
		errbuf_set(err, errlen, "%s: cannot write", sec);
		goto out;
	}
	if (zcert_save_public(cert, pub) == -1) {
		errbuf_set(err, errlen, "%s: cannot write", pub);
		goto out;
	}
	if (chmod(sec, 0600) == -1) {
		errbuf_set(err, errlen, "%s: %s", sec, strerror(errno));
		goto out;
	}
	rc = 0;
out:
	if (rc == -1) {
		unlink(pub);
		unlink(sec);
	}
	zcert_destroy(&cert);
	return rc;
}

zcert_t *
keys_load_secret(const char *path, char *err, size_t errlen)
{
	struct stat st;
	zcert_t *cert;
	const byte *key;
	int zero = 1;

	if (stat(path, &st) == -1) {
		errbuf_set(err, errlen, "%s", strerror(errno));
		return NULL;
	}
	if (!S_ISREG(st.st_mode)) {
		errbuf_set(err, errlen, "not a regular file");
		return NULL;
	}
	if ((st.st_mode & (S_IRWXG | S_IRWXO)) != 0) {
		errbuf_set(err, errlen,
		    "group or others may access it (mode %04o); chmod 600 it",
		    (unsigned)(st.st_mode & 07777));
		return NULL;
	}
	/*
	 * zcert_load tries "path_secret" before path; that file would be a
	 * secret certificate too, so either answer has our keys.
	 */
	if ((cert = zcert_load(path)) == NULL) {
		errbuf_set(err, errlen, "not a zcert certificate");
		return NULL;
	}
	key = zcert_secret_key(cert);
	for (size_t i = 0; i < 32; i++)
		if (key[i] != 0)
			zero = 0;
	if (zero) {
		errbuf_set(
		    err, errlen, "holds no secret key (a public certificate?)");
		zcert_destroy(&cert);
		return NULL;
	}
	return cert;
}

static void
s_agent_free(void **item)
{
	struct keys_agent *a = *item;

	if (a == NULL)
		return;
	free(a->name);
	free(a->region);
	free(a->file);
	free(a);
	*item = NULL;
}

static int
s_skip(const char *name)
{
	size_t n = strlen(name), s = strlen("_secret");

	return name[0] == '.' ||
	       (n >= s && strcmp(name + n - s, "_secret") == 0);
}

struct keys_allow *
keys_allow_load(const char *dir, char *err, size_t errlen)
{
	struct keys_allow *a;
	struct dirent *de;
	DIR *d;

	if ((d = opendir(dir)) == NULL) {
		errbuf_set(err, errlen, "%s: %s", dir, strerror(errno));
		return NULL;
	}
	if ((a = calloc(1, sizeof(*a))) == NULL ||
	    (a->agents = zhashx_new()) == NULL) {
		errbuf_set(err, errlen, "out of memory");
		free(a);
		closedir(d);
		return NULL;
	}
	zhashx_set_destructor(a->agents, s_agent_free);
	while ((de = readdir(d)) != NULL) {
		char path[PATH_MAX];
		struct keys_agent *ag;
		struct stat st;
		const char *name, *region;
		zcert_t *cert;

		if (s_skip(de->d_name))
			continue;
		if (snprintf(path, sizeof(path), "%s/%s", dir, de->d_name) >=
		    (int)sizeof(path))
			continue;
		if (stat(path, &st) == -1 || !S_ISREG(st.st_mode))
			continue;
		if ((cert = zcert_load(path)) == NULL) {
			log_warnx("allowlist skipped file=%s reason=\"not a "
				  "zcert certificate\"",
			    path);
			continue;
		}
		name = zcert_meta(cert, "name");
		region = zcert_meta(cert, "region");
		ag = calloc(1, sizeof(*ag));
		if (ag == NULL ||
		    (ag->name = strdup(name ? name : "")) == NULL ||
		    (ag->region = strdup(region ? region : "")) == NULL ||
		    (ag->file = strdup(path)) == NULL) {
			void *p = ag;
			s_agent_free(&p);
			zcert_destroy(&cert);
			errbuf_set(err, errlen, "out of memory");
			keys_allow_free(&a);
			closedir(d);
			return NULL;
		}
		if (zhashx_lookup(a->agents, zcert_public_txt(cert)) != NULL)
			log_warnx("allowlist duplicate key=%s file=%s",
			    zcert_public_txt(cert), path);
		zhashx_update(a->agents, zcert_public_txt(cert), ag);
		zcert_destroy(&cert);
	}
	closedir(d);
	return a;
}

void
keys_allow_free(struct keys_allow **a)
{
	if (a == NULL || *a == NULL)
		return;
	zhashx_destroy(&(*a)->agents);
	free(*a);
	*a = NULL;
}

const struct keys_agent *
keys_allow_lookup(const struct keys_allow *a, const char *public_key)
{
	if (a == NULL || public_key == NULL)
		return NULL;
	return zhashx_lookup(a->agents, public_key);
}

size_t
keys_allow_count(const struct keys_allow *a)
{
	return a == NULL ? 0 : zhashx_size(a->agents);
}
