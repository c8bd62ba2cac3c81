/* api_access.c: the sampled access log (see api_access.h). */
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>
#include <xxhash.h>
#include "api/api_access.h"
#include "core/log.h"

static const char *const ep_names[] = { "recommendations", "events", "health", "ready", "metrics", "admin", "other" };
_Static_assert(ARRAY_SIZE(ep_names) == MEP__COUNT, "one name per metrics endpoint");

static __thread uint64_t access_rng;
/* Salts the user hash: drawn once per process, never logged. */
static uint64_t access_salt;
static pthread_once_t access_salt_once = PTHREAD_ONCE_INIT;

static void access_salt_init(void)
{
	if (getrandom(&access_salt, sizeof(access_salt), GRND_NONBLOCK) != (ssize_t)sizeof(access_salt))
		access_salt = XXH3_64bits_withSeed(&access_salt, sizeof(access_salt), now_ns() ^ (uint64_t)getpid());
}

bool api_access_roll(uint64_t ppm)
{
	if (ppm >= 1000000)
		return true;
	uint64_t x = access_rng;
	if (unlikely(!x))
		x = (now_ns() ^ (uint64_t)(uintptr_t)&access_rng) | 1;
	x ^= x << 13;   /* xorshift64 */
	x ^= x >> 7;
	x ^= x << 17;
	access_rng = x;
	return x % 1000000 < ppm;
}

/* The shopper of a recommendation request into out: the id's length, or
 * -1 (anonymous, personalize false, another endpoint). */
static int access_user(struct api_worker *w, const struct http_request *req, enum metrics_endpoint ep, char *out,
		       size_t len)
{
	if (ep != MEP_RECOMMENDATIONS)
		return -1;
	if (req->method == HTTP_M_GET) {
		char tmp[8];
		int r = http_query_get(req->query, "personalize", tmp, sizeof(tmp));
		if (r >= 0 && (!strcmp(tmp, "false") || !strcmp(tmp, "0")))
			return -1;
		r = http_query_get(req->query, "user_id", out, len);
		return r > 0 ? r : -1;
	}
	if (req->method != HTTP_M_POST || !req->body.len)
		return -1;
	/* The body was parsed by the endpoint already; the tokens are free again. */
	struct json_err je;
	const char *s = req->body.p;
	int nt = json_parse(s, req->body.len, w->toks, MIN(w->n_toks, (uint32_t)API_MAX_JSON_TOKENS), &je);
	if (nt <= 0 || w->toks[0].type != JSON_OBJECT)
		return -1;
	int pv = json_obj_get(s, w->toks, 0, "personalize");
	if (pv >= 0 && w->toks[pv].type == JSON_FALSE)
		return -1;
	int v = json_obj_get(s, w->toks, 0, "user_id");
	if (v < 0 || w->toks[v].type != JSON_STRING)
		return -1;
	int r = json_str_decode(s, &w->toks[v], out, len);
	return r > 0 ? r : -1;
}

void api_access_log(struct api_worker *w, const struct http_request *req, int status, enum metrics_endpoint ep,
		    uint64_t took_ns)
{
	pthread_once(&access_salt_once, access_salt_init);
	char path[97], qpath[200], user[API_MAX_ID_LEN + 1], uh[12], rid[48] = "";
	size_t pl = MIN(req->path.len, sizeof(path) - 1);
	memcpy(path, req->path.p, pl);
	path[pl] = 0;
	int ul = access_user(w, req, ep, user, sizeof(user));
	if (ul > 0)
		snprintf(uh, sizeof(uh), "%08x", (unsigned)XXH3_64bits_withSeed(user, (size_t)ul, access_salt));
	else
		snprintf(uh, sizeof(uh), "-");
	if (ep == MEP_RECOMMENDATIONS && status == 200)   /* the id api_recommend just sent */
		snprintf(rid, sizeof(rid), " request_id=%08llx-%02x-%08llx",
			 (unsigned long long)(w->srv->start_time_ms / 1000) & 0xffffffffull, w->id,
			 (unsigned long long)w->seq);
	log_emit_always(LOG_LVL_INFO, "access", "method=%.*s path=%s status=%d took_us=%llu endpoint=%s worker=%u user=%s%s",
			(int)MIN(req->method_str.len, 16u), req->method_str.p, log_quote(qpath, sizeof(qpath), path),
			status, (unsigned long long)(took_ns / 1000), ep < MEP__COUNT ? ep_names[ep] : "other", w->id,
			uh, rid);
}
