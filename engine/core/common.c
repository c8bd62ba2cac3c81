/* common.c: clocks (clock_gettime is served by the vDSO: no syscall) and
 * the priority of background threads. */
#include <dirent.h>
#include <errno.h>
#include <sched.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>
#include "core/common.h"

int thread_background(int nice_inc)
{
	int rc = 0, pol = sched_getscheduler(0);
	if (pol == SCHED_FIFO || pol == SCHED_RR) {
		struct sched_param sp = { 0 };
		if (sched_setscheduler(0, SCHED_OTHER, &sp))
			rc = -errno;
	}
	/* Linux: per thread (the tid); lowers only, so no privilege needed. */
	if (nice_inc > 0 && setpriority(PRIO_PROCESS, (id_t)gettid(), nice_inc) && !rc)
		rc = -errno;
	return rc;
}

uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

uint64_t now_wall_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000ull + (uint64_t)ts.tv_nsec / 1000000ull;
}

int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

int dir_list_numbers(int dir_fd, bool (*parse)(const char *name, uint64_t *num, void *ctx), void *ctx,
		     uint64_t **out, size_t *n_out)
{
	int fd = dup(dir_fd);
	if (fd < 0)
		return -errno;
	DIR *d = fdopendir(fd);
	if (!d) {
		int e = -errno;
		close(fd);
		return e;
	}
	rewinddir(d);
	uint64_t *v = NULL;
	size_t n = 0, cap = 0;
	int r = 0;
	struct dirent *de;
	while ((de = readdir(d))) {
		uint64_t num;
		if (!parse(de->d_name, &num, ctx))
			continue;
		if (n == cap) {
			cap = cap ? cap * 2 : 16;
			uint64_t *nv = realloc(v, cap * sizeof(*v));
			if (!nv) {
				r = -ENOMEM;
				break;
			}
			v = nv;
		}
		v[n++] = num;
	}
	closedir(d);
	if (r) {
		free(v);
		return r;
	}
	if (n)
		qsort(v, n, sizeof(*v), cmp_u64);
	*out = v;
	*n_out = n;
	return 0;
}

int fd_write_all(int fd, const void *p, size_t n)
{
	const uint8_t *c = p;
	while (n) {
		ssize_t w = write(fd, c, n);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (w == 0)
			return -EIO;
		c += w;
		n -= (size_t)w;
	}
	return 0;
}
