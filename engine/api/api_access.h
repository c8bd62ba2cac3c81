/* api_access.h: the sampled access log (access_log_sample; docs/operations.md).
 *
 * A share of the requests of the main listener is logged, one logfmt line
 * each, by the request worker that answered it (one write(2) to stderr,
 * on the request path, for the sampled requests only; the others cost a
 * load and a compare):
 *
 *   level=info msg=access method=GET path=/v1/recommendations status=200
 *   took_us=41 endpoint=recommendations worker=0 user=9c1d02fa
 *   request_id=6b0281e1-00-0000002a
 *
 * The user id is never logged: `user` is 32 bits of a hash salted with a
 * random value drawn at process start (lines of one shopper match within
 * one run; hashing guessed ids does not find them), `-` when anonymous or
 * personalize is false. The query string is never logged; the path is cut
 * to 96 bytes. Sampling: a per-thread xorshift generator. The lines are
 * not subject to the repeat limit (core/log.h) nor to log_level.
 */
#ifndef RECD_API_ACCESS_H
#define RECD_API_ACCESS_H

#include "api/api.h"

/* true with probability ppm / 1e6 (this thread's generator). */
bool api_access_roll(uint64_t ppm);

/* Is the request just answered by `w` to be logged? */
static inline bool api_access_sampled(const struct api_worker *w)
{
	int64_t ppm = __atomic_load_n(&w->srv->cfg.access_log_sample, __ATOMIC_RELAXED);
	return unlikely(ppm > 0) && !w->admin && api_access_roll((uint64_t)ppm);
}

/* Write its line; `req` is the request api_handle just answered. */
void api_access_log(struct api_worker *w, const struct http_request *req, int status, enum metrics_endpoint ep,
		    uint64_t took_ns);

#endif
