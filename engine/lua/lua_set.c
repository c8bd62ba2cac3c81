/* lua_set.c: staged copies and fingerprints of policy sets (lua_set.h). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>
#include "lua/lua_set.h"

#define LUA_SET_PREFIX "recd-policies-"

/* Where staged copies go: `base`, else $RUNTIME_DIRECTORY (its first
 * entry: systemd may list several), $TMPDIR or /tmp. */
static void staging_base(const char *base, char *out, size_t len)
{
	if (!base)
		base = getenv("RUNTIME_DIRECTORY");
	if (!base || !*base)
		base = getenv("TMPDIR");
	if (!base || !*base)
		base = "/tmp";
	snprintf(out, len, "%s", base);
	out[strcspn(out, ":")] = 0;
}

/* Remove a staged copy's directory tree: parent/sub/files. */
static void remove_tree(int parent_fd, const char *name)
{
	int fd = openat(parent_fd, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
	DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
	struct dirent *e;
	while (d && (e = readdir(d))) {
		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
			continue;
		if (e->d_type == DT_DIR)
			remove_tree(dirfd(d), e->d_name);
		else
			unlinkat(dirfd(d), e->d_name, 0);
	}
	if (d)
		closedir(d);
	else if (fd >= 0)
		close(fd);
	unlinkat(parent_fd, name, AT_REMOVEDIR);
}

void lua_set_sweep(const char *base)
{
	char b[PATH_MAX];
	staging_base(base, b, sizeof(b));
	DIR *d = opendir(b);
	struct dirent *e;
	while (d && (e = readdir(d))) {
		int pid;
		if (strncmp(e->d_name, LUA_SET_PREFIX, strlen(LUA_SET_PREFIX)) ||
		    sscanf(e->d_name + strlen(LUA_SET_PREFIX), "%d-", &pid) != 1 || pid <= 0)
			continue;
		/* Left by a process that is gone (killed before it could clean
		 * up): ours only if the owner is us, i.e. the same user. */
		struct stat st;
		if (fstatat(dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) || !S_ISDIR(st.st_mode) ||
		    st.st_uid != getuid())
			continue;
		if (kill(pid, 0) == 0 || errno != ESRCH)
			continue;
		remove_tree(dirfd(d), e->d_name);
	}
	if (d)
		closedir(d);
}

static bool is_plugin_file(const char *name)
{
	size_t l = strlen(name);
	return l > 4 && name[0] != '.' && !strcmp(name + l - 4, ".lua");
}

static int cmp_name(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The plugin file names of an open directory, sorted; returns how many
 * (at most LUA_SET_MAX_FILES), -errno on failure. The caller frees. */
static int list_files(int dfd, char **names)
{
	DIR *d = fdopendir(dup(dfd));
	if (!d)
		return -errno;
	int n = 0;
	struct dirent *e;
	while ((e = readdir(d)) && n < LUA_SET_MAX_FILES) {
		if (is_plugin_file(e->d_name) && (names[n] = strdup(e->d_name)))
			n++;
	}
	closedir(d);
	qsort(names, (size_t)n, sizeof(*names), cmp_name);
	return n;
}

uint64_t lua_set_fingerprint(const char *dir)
{
	int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0)
		return 0;
	char *names[LUA_SET_MAX_FILES];
	int n = list_files(dfd, names);
	XXH3_state_t *st = XXH3_createState();
	uint64_t h = 0;
	if (n >= 0 && st && XXH3_64bits_reset(st) == XXH_OK) {
		char buf[16384];
		for (int i = 0; i < n; i++) {
			XXH3_64bits_update(st, names[i], strlen(names[i]) + 1);
			int fd = openat(dfd, names[i], O_RDONLY | O_CLOEXEC);
			ssize_t r;
			while (fd >= 0 && (r = read(fd, buf, sizeof(buf))) > 0)
				XXH3_64bits_update(st, buf, (size_t)r);
			if (fd >= 0)
				close(fd);
		}
		h = XXH3_64bits_digest(st) | 1;   /* never 0 */
	}
	XXH3_freeState(st);
	for (int i = 0; i < n; i++)
		free(names[i]);
	close(dfd);
	return h;
}

/* Copy one regular file of at most LUA_SET_MAX_FILE_BYTES. */
static int copy_file(int sfd, int dfd, const char *name, char *err, size_t errlen, const char *src)
{
	int in = openat(sfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW), out = -1, rc = 0;
	struct stat st;
	if (in < 0 || fstat(in, &st)) {
		rc = -errno;
		snprintf(err, errlen, "%s/%s: %s", src, name, strerror(-rc));
		goto done;
	}
	if (!S_ISREG(st.st_mode) || st.st_size > LUA_SET_MAX_FILE_BYTES) {
		rc = -EINVAL;
		snprintf(err, errlen, "%s/%s: not a regular file of at most %u bytes", src, name,
			 LUA_SET_MAX_FILE_BYTES);
		goto done;
	}
	out = openat(dfd, name, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0444);
	if (out < 0) {
		rc = -errno;
		snprintf(err, errlen, "staging %s: %s", name, strerror(-rc));
		goto done;
	}
	char buf[16384];
	ssize_t r;
	while ((r = read(in, buf, sizeof(buf))) > 0) {
		for (ssize_t off = 0; off < r;) {
			ssize_t w = write(out, buf + off, (size_t)(r - off));
			if (w < 0) {
				rc = -errno;
				snprintf(err, errlen, "staging %s: %s", name, strerror(-rc));
				goto done;
			}
			off += w;
		}
	}
	if (r < 0) {
		rc = -errno;
		snprintf(err, errlen, "%s/%s: %s", src, name, strerror(-rc));
	}
done:
	if (in >= 0)
		close(in);
	if (out >= 0)
		close(out);
	return rc;
}

int lua_set_stage(const char *src, const char *base, struct lua_set *out, char *err, size_t errlen)
{
	out->dir[0] = 0;
	out->print = 0;
	char b[PATH_MAX];
	staging_base(base, b, sizeof(b));
	if (snprintf(out->dir, sizeof(out->dir), "%s/" LUA_SET_PREFIX "%d-XXXXXX", b, (int)getpid()) >=
	    (int)sizeof(out->dir)) {
		out->dir[0] = 0;
		snprintf(err, errlen, "%s: path too long", b);
		return -ENAMETOOLONG;
	}
	if (!mkdtemp(out->dir)) {
		int rc = -errno;
		snprintf(err, errlen, "staging the policies under %s: %s", b, strerror(-rc));
		out->dir[0] = 0;
		return rc;
	}
	/* The copy sits in a folder named like the source, so messages and
	 * the set's default name read ".../plugins/rules.lua:3". */
	char name[NAME_MAX + 1];
	size_t end = strlen(src), beg;
	while (end > 1 && src[end - 1] == '/')
		end--;
	for (beg = end; beg > 0 && src[beg - 1] != '/'; beg--)
		;
	snprintf(name, sizeof(name), "%.*s", (int)(end - beg), src + beg);
	size_t dl = strlen(out->dir);
	if (!name[0] || !strcmp(name, ".") || !strcmp(name, "..") ||
	    snprintf(out->dir + dl, sizeof(out->dir) - dl, "/%s", name) >= (int)(sizeof(out->dir) - dl) ||
	    mkdir(out->dir, 0700)) {
		int rc = errno ? -errno : -EINVAL;
		snprintf(err, errlen, "staging the policies in %s: %s", out->dir, strerror(-rc));
		out->dir[dl] = 0;
		rmdir(out->dir);
		out->dir[0] = 0;
		return rc;
	}
	int sfd = open(src, O_RDONLY | O_DIRECTORY | O_CLOEXEC), dfd = open(out->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	char *names[LUA_SET_MAX_FILES];
	int n = 0, rc = 0;
	if (sfd < 0 || dfd < 0) {
		rc = -errno;
		snprintf(err, errlen, "%s: %s", sfd < 0 ? src : out->dir, strerror(-rc));
		goto done;
	}
	n = list_files(sfd, names);
	if (n < 0) {
		rc = n;
		n = 0;
		snprintf(err, errlen, "%s: %s", src, strerror(-rc));
		goto done;
	}
	for (int i = 0; i < n && !rc; i++)
		rc = copy_file(sfd, dfd, names[i], err, errlen, src);
done:
	for (int i = 0; i < n; i++)
		free(names[i]);
	if (sfd >= 0)
		close(sfd);
	if (dfd >= 0)
		close(dfd);
	if (rc) {
		lua_set_remove(out);
		return rc;
	}
	out->print = lua_set_fingerprint(out->dir);
	return 0;
}

void lua_set_unstage_msg(const struct lua_set *s, const char *src, char *msg, size_t len)
{
	size_t dl = strlen(s->dir), sl = strlen(src);
	if (!dl || !len)
		return;
	char out[1024];
	size_t o = 0;
	for (const char *p = msg; *p && o + 1 < sizeof(out);) {
		if (!strncmp(p, s->dir, dl)) {
			size_t k = MIN(sl, sizeof(out) - 1 - o);
			memcpy(out + o, src, k);
			o += k;
			p += dl;
		} else {
			out[o++] = *p++;
		}
	}
	out[o] = 0;
	snprintf(msg, len, "%s", out);
}

void lua_set_remove(struct lua_set *s)
{
	if (!s->dir[0])
		return;
	int dfd = open(s->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd >= 0) {
		DIR *d = fdopendir(dfd);
		struct dirent *e;
		while (d && (e = readdir(d)))
			if (e->d_name[0] != '.')
				unlinkat(dirfd(d), e->d_name, 0);
		if (d)
			closedir(d);
		else
			close(dfd);
	}
	rmdir(s->dir);
	char *slash = strrchr(s->dir, '/');   /* the recd-policies-XXXXXX parent */
	if (slash && slash != s->dir) {
		*slash = 0;
		rmdir(s->dir);
	}
	s->dir[0] = 0;
	s->print = 0;
}
