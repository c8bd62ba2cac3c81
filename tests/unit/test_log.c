/* test_log.c: logfmt lines and the repeat limit (core/log.h): the same msg
 * more than LOG_REPEAT_MAX times in a window is dropped and counted, the
 * next line after the window says repeated=N, other msgs and other
 * threads are not affected, log_emit_always is never limited, and a msg
 * pushed out of the table reports its drops on a line of its own. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "core/log.h"

static int failures;
#define CHECK(cond) do { \
	if (!(cond)) { fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); failures++; } \
} while (0)

static char path[] = "/tmp/test_log.XXXXXX";
static int fd;

/* Everything logged since the last call, NUL-terminated (caller frees). */
static char *take_output(void)
{
	off_t end = lseek(fd, 0, SEEK_END);
	char *s = calloc(1, (size_t)end + 1);
	if (pread(fd, s, (size_t)end, 0) != end)
		CHECK(!"read back the log");
	if (ftruncate(fd, 0))
		CHECK(!"truncate the log");
	lseek(fd, 0, SEEK_SET);
	return s;
}

static int count(const char *s, const char *needle)
{
	int n = 0;
	for (const char *p = s; (p = strstr(p, needle)); p += strlen(needle))
		n++;
	return n;
}

static void wait_window(void)
{
	usleep((LOG_REPEAT_WINDOW_MS + 100) * 1000);
}

static void test_repeats(void)
{
	for (int i = 0; i < 1000; i++)
		log_warn("test_repeat", "i=%d", i);
	char *s = take_output();
	CHECK(count(s, "msg=test_repeat ") == LOG_REPEAT_MAX);
	CHECK(count(s, "\n") == LOG_REPEAT_MAX);
	CHECK(strstr(s, "level=warn msg=test_repeat i=0\n") != NULL);
	CHECK(count(s, "repeated=") == 0);
	free(s);

	/* The next line after the window carries the count, once. */
	wait_window();
	log_warn("test_repeat", "i=%d", 1000);
	log_warn("test_repeat", "i=%d", 1001);
	s = take_output();
	CHECK(count(s, "\n") == 2);
	CHECK(strstr(s, "msg=test_repeat i=1000 repeated=990\n") != NULL);
	CHECK(count(s, "repeated=") == 1);
	free(s);
}

static void test_other_msgs(void)
{
	wait_window();
	for (int i = 0; i < 100; i++) {
		log_info("test_noisy", "i=%d", i);
		if (i % 10 == 0)
			log_info("test_quiet", "i=%d", i);
	}
	for (int i = 0; i < 30; i++)
		log_emit_always(LOG_LVL_INFO, "test_noisy", "always=%d", i);
	char *s = take_output();
	CHECK(count(s, "msg=test_quiet ") == 10);
	CHECK(count(s, "msg=test_noisy i=") == LOG_REPEAT_MAX);
	CHECK(count(s, "msg=test_noisy always=") == 30);
	free(s);
}

static void *other_thread(void *arg)
{
	(void)arg;
	for (int i = 0; i < 50; i++)
		log_info("test_threads", "thread=2 i=%d", i);
	return NULL;
}

static void test_threads(void)
{
	for (int i = 0; i < 50; i++)
		log_info("test_threads", "thread=1 i=%d", i);
	pthread_t t;
	CHECK(pthread_create(&t, NULL, other_thread, NULL) == 0);
	pthread_join(t, NULL);
	char *s = take_output();
	CHECK(count(s, "thread=1 ") == LOG_REPEAT_MAX);
	CHECK(count(s, "thread=2 ") == LOG_REPEAT_MAX);
	free(s);
}

static void test_evicted(void)
{
	static const char *const keys[] = {
		"test_k00", "test_k01", "test_k02", "test_k03", "test_k04", "test_k05", "test_k06", "test_k07",
		"test_k08", "test_k09", "test_k10", "test_k11", "test_k12", "test_k13", "test_k14", "test_k15",
		"test_k16", "test_k17", "test_k18", "test_k19",
	};
	_Static_assert(ARRAY_SIZE(keys) > LOG_REPEAT_SLOTS, "enough keys to push one out");
	wait_window();
	for (int i = 0; i < LOG_REPEAT_MAX + 7; i++)
		log_info("test_evict", "i=%d", i);
	usleep(2000);   /* test_evict is now the least recently seen */
	for (size_t k = 0; k < ARRAY_SIZE(keys); k++)
		log_emit(LOG_LVL_INFO, keys[k], "k=%zu", k);
	char *s = take_output();
	CHECK(count(s, "msg=test_evict i=") == LOG_REPEAT_MAX);
	CHECK(strstr(s, "level=info msg=test_evict repeated=7\n") != NULL);
	CHECK(count(s, "msg=test_k") == (int)ARRAY_SIZE(keys));
	free(s);
}

int main(void)
{
	unsetenv("JOURNAL_STREAM");
	log_init();
	fd = mkstemp(path);
	if (fd < 0) {
		perror("mkstemp");
		return 1;
	}
	unlink(path);
	int old = log_set_fd(fd);
	CHECK(old == 2);
	test_repeats();
	test_other_msgs();
	test_threads();
	test_evicted();
	log_set_fd(old);
	close(fd);
	if (failures)
		fprintf(stderr, "%d check(s) failed\n", failures);
	return failures ? 1 : 0;
}
