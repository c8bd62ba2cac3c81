/* common.c: clocks (clock_gettime is served by the vDSO: no syscall) and
 * the priority of background threads. */
#include <errno.h>
#include <sched.h>
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
