/* rb_rng.h: the load generator's deterministic PRNG (xoshiro256** seeded
 * through splitmix64). One generator per thread and per purpose, so a run
 * with the same seed and thread count draws the same workload.
 */
#ifndef RB_RNG_H
#define RB_RNG_H

#include <stdint.h>

struct rb_rng {
	uint64_t s[4];
};

static inline uint64_t rb_splitmix(uint64_t *x)
{
	uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

/* Streams differ by `stream` (thread index, purpose) under one seed. */
static inline void rb_rng_seed(struct rb_rng *r, uint64_t seed, uint64_t stream)
{
	uint64_t x = seed ^ (stream * 0xd1b54a32d192ed03ull);
	for (int i = 0; i < 4; i++)
		r->s[i] = rb_splitmix(&x);
}

static inline uint64_t rb_rotl(uint64_t v, int k)
{
	return (v << k) | (v >> (64 - k));
}

static inline uint64_t rb_rng_next(struct rb_rng *r)
{
	uint64_t *s = r->s;
	uint64_t out = rb_rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
	s[2] ^= s[0];
	s[3] ^= s[1];
	s[1] ^= s[2];
	s[0] ^= s[3];
	s[2] ^= t;
	s[3] = rb_rotl(s[3], 45);
	return out;
}

/* Uniform double in [0, 1) with 53 random bits. */
static inline double rb_rng_unit(struct rb_rng *r)
{
	return (double)(rb_rng_next(r) >> 11) * 0x1.0p-53;
}

/* Uniform integer in [0, n), n > 0 (multiply-shift; bias < n / 2^64). */
static inline uint64_t rb_rng_below(struct rb_rng *r, uint64_t n)
{
	return (uint64_t)(((unsigned __int128)rb_rng_next(r) * n) >> 64);
}

#endif
