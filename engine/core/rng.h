/* rng.h: the one pseudo-random generator of the engine — xoshiro256**
 * seeded through splitmix64 (Blackman & Vigna) — for the synthetic data
 * generator (gen) and Thompson sampling (exp_stats).
 *
 * Written out rather than taken from a library: a few lines of published
 * algorithm, the stream must be deterministic and seedable per caller
 * (tests and replays compare outputs), and rand()/random() are neither.
 * The state is four words the caller owns: one per thread, no locks.
 */
#ifndef RECD_RNG_H
#define RECD_RNG_H

#include <stdint.h>

/* Advances *x; a bijection of the counter, so consecutive outputs seed
 * xoshiro with a state that is never all zero. */
static inline uint64_t rng_splitmix64(uint64_t *x)
{
	uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static inline uint64_t rng_rotl(uint64_t x, int k)
{
	return (x << k) | (x >> (64 - k));
}

/* xoshiro256**: the next 64 bits of state s[4]. */
static inline uint64_t rng_xoshiro_next(uint64_t *s)
{
	uint64_t out = rng_rotl(s[1] * 5, 7) * 9;
	uint64_t t = s[1] << 17;
	s[2] ^= s[0];
	s[3] ^= s[1];
	s[1] ^= s[2];
	s[0] ^= s[3];
	s[2] ^= t;
	s[3] = rng_rotl(s[3], 45);
	return out;
}

/* Uniform in [0, 1) from the top 53 bits. */
static inline double rng_uniform53(uint64_t *s)
{
	return (double)(rng_xoshiro_next(s) >> 11) * 0x1.0p-53;
}

#endif
