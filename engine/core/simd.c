/* simd.c: scoring kernels and their run-time dispatch (see simd.h).
 *
 * Float sums keep several independent vector accumulators: the compiler
 * will not reassociate a float sum, so the lanes are spelled out with
 * intrinsics. The int8 kernel uses the maddubs trick: maddubs multiplies
 * unsigned by signed bytes, so |code| is the unsigned operand and the
 * query takes the code's sign (sign_epi8); each pair sum is at most
 * 2 * 128 * 127 < 32767, so the int16 step never saturates.
 */
#include <ck_pr.h>
#include <immintrin.h>
#include "core/simd.h"

/* ---- AVX2 + FMA ---- */

__attribute__((target("avx2,fma")))
static void score_rows_avx2(const float *q, const float *rows, uint32_t stride, uint32_t count, float *out)
{
	for (uint32_t r = 0; r < count; r++) {
		const float *row = rows + (size_t)r * stride;
		__m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();
		for (uint32_t i = 0; i < stride; i += 16) {
			a0 = _mm256_fmadd_ps(_mm256_loadu_ps(q + i), _mm256_load_ps(row + i), a0);
			a1 = _mm256_fmadd_ps(_mm256_loadu_ps(q + i + 8), _mm256_load_ps(row + i + 8), a1);
		}
		__m256 a = _mm256_add_ps(a0, a1);
		__m128 t = _mm_add_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
		t = _mm_add_ps(t, _mm_movehl_ps(t, t));
		t = _mm_add_ss(t, _mm_shuffle_ps(t, t, 1));
		out[r] = _mm_cvtss_f32(t);
	}
}

__attribute__((target("avx2,fma")))
static void score_blocks8_avx2(const float *q, const float *blocks, uint32_t dim, uint32_t nblocks, float *out)
{
	size_t bs = (size_t)dim * 8;
	uint32_t b = 0;
	/* Four blocks at once: four independent FMA chains hide the latency. */
	for (; b + 4 <= nblocks; b += 4) {
		const float *p = blocks + b * bs;
		__m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
		for (uint32_t d = 0; d < dim; d++) {
			__m256 qd = _mm256_broadcast_ss(q + d);
			a0 = _mm256_fmadd_ps(qd, _mm256_loadu_ps(p + d * 8), a0);
			a1 = _mm256_fmadd_ps(qd, _mm256_loadu_ps(p + bs + d * 8), a1);
			a2 = _mm256_fmadd_ps(qd, _mm256_loadu_ps(p + 2 * bs + d * 8), a2);
			a3 = _mm256_fmadd_ps(qd, _mm256_loadu_ps(p + 3 * bs + d * 8), a3);
		}
		_mm256_storeu_ps(out + (size_t)b * 8, a0);
		_mm256_storeu_ps(out + (size_t)b * 8 + 8, a1);
		_mm256_storeu_ps(out + (size_t)b * 8 + 16, a2);
		_mm256_storeu_ps(out + (size_t)b * 8 + 24, a3);
	}
	for (; b < nblocks; b++) {
		const float *p = blocks + b * bs;
		__m256 a0 = _mm256_setzero_ps();
		for (uint32_t d = 0; d < dim; d++)
			a0 = _mm256_fmadd_ps(_mm256_broadcast_ss(q + d), _mm256_loadu_ps(p + d * 8), a0);
		_mm256_storeu_ps(out + (size_t)b * 8, a0);
	}
}

__attribute__((target("avx2")))
static inline __m256i dot_i8_step(__m256i acc, __m256i qv, __m256i cv, __m256i ones)
{
	__m256i p = _mm256_maddubs_epi16(_mm256_abs_epi8(cv), _mm256_sign_epi8(qv, cv));
	return _mm256_add_epi32(acc, _mm256_madd_epi16(p, ones));
}

__attribute__((target("avx2")))
static void dot_i8_rows_avx2(const int8_t *q, const int8_t *codes, uint32_t code_dim, uint32_t count,
			     int32_t *out)
{
	const __m256i ones = _mm256_set1_epi16(1);
	uint32_t r = 0;
	/* Four rows at once, reduced together with two rounds of hadd. */
	for (; r + 4 <= count; r += 4) {
		const int8_t *c = codes + (size_t)r * code_dim;
		__m256i a0 = _mm256_setzero_si256(), a1 = a0, a2 = a0, a3 = a0;
		for (uint32_t j = 0; j < code_dim; j += 32) {
			__m256i qv = _mm256_loadu_si256((const __m256i *)(q + j));
			a0 = dot_i8_step(a0, qv, _mm256_loadu_si256((const __m256i *)(c + j)), ones);
			a1 = dot_i8_step(a1, qv, _mm256_loadu_si256((const __m256i *)(c + code_dim + j)), ones);
			a2 = dot_i8_step(a2, qv, _mm256_loadu_si256((const __m256i *)(c + 2 * code_dim + j)), ones);
			a3 = dot_i8_step(a3, qv, _mm256_loadu_si256((const __m256i *)(c + 3 * code_dim + j)), ones);
		}
		__m256i h = _mm256_hadd_epi32(_mm256_hadd_epi32(a0, a1), _mm256_hadd_epi32(a2, a3));
		__m128i s = _mm_add_epi32(_mm256_castsi256_si128(h), _mm256_extracti128_si256(h, 1));
		_mm_storeu_si128((__m128i *)(out + r), s);
	}
	for (; r < count; r++) {
		const int8_t *c = codes + (size_t)r * code_dim;
		__m256i a0 = _mm256_setzero_si256();
		for (uint32_t j = 0; j < code_dim; j += 32)
			a0 = dot_i8_step(a0, _mm256_loadu_si256((const __m256i *)(q + j)),
					 _mm256_loadu_si256((const __m256i *)(c + j)), ones);
		__m128i s = _mm_add_epi32(_mm256_castsi256_si128(a0), _mm256_extracti128_si256(a0, 1));
		s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4e));
		s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xb1));
		out[r] = _mm_cvtsi128_si32(s);
	}
}

/* ---- portable (SSE2, the x86-64 baseline) ---- */

static void score_rows_sse(const float *q, const float *rows, uint32_t stride, uint32_t count, float *out)
{
	for (uint32_t r = 0; r < count; r++) {
		const float *row = rows + (size_t)r * stride;
		__m128 a0 = _mm_setzero_ps(), a1 = _mm_setzero_ps(), a2 = _mm_setzero_ps(), a3 = _mm_setzero_ps();
		for (uint32_t i = 0; i < stride; i += 16) {
			a0 = _mm_add_ps(a0, _mm_mul_ps(_mm_loadu_ps(q + i), _mm_load_ps(row + i)));
			a1 = _mm_add_ps(a1, _mm_mul_ps(_mm_loadu_ps(q + i + 4), _mm_load_ps(row + i + 4)));
			a2 = _mm_add_ps(a2, _mm_mul_ps(_mm_loadu_ps(q + i + 8), _mm_load_ps(row + i + 8)));
			a3 = _mm_add_ps(a3, _mm_mul_ps(_mm_loadu_ps(q + i + 12), _mm_load_ps(row + i + 12)));
		}
		__m128 t = _mm_add_ps(_mm_add_ps(a0, a1), _mm_add_ps(a2, a3));
		t = _mm_add_ps(t, _mm_movehl_ps(t, t));
		t = _mm_add_ss(t, _mm_shuffle_ps(t, t, 1));
		out[r] = _mm_cvtss_f32(t);
	}
}

static void score_blocks8_sse(const float *q, const float *blocks, uint32_t dim, uint32_t nblocks, float *out)
{
	for (uint32_t b = 0; b < nblocks; b++) {
		const float *p = blocks + (size_t)b * dim * 8;
		__m128 lo = _mm_setzero_ps(), hi = _mm_setzero_ps();
		for (uint32_t d = 0; d < dim; d++) {
			__m128 qd = _mm_set1_ps(q[d]);
			lo = _mm_add_ps(lo, _mm_mul_ps(qd, _mm_loadu_ps(p + d * 8)));
			hi = _mm_add_ps(hi, _mm_mul_ps(qd, _mm_loadu_ps(p + d * 8 + 4)));
		}
		_mm_storeu_ps(out + (size_t)b * 8, lo);
		_mm_storeu_ps(out + (size_t)b * 8 + 4, hi);
	}
}

static void dot_i8_rows_sse(const int8_t *q, const int8_t *codes, uint32_t code_dim, uint32_t count,
			    int32_t *out)
{
	for (uint32_t r = 0; r < count; r++) {
		const int8_t *c = codes + (size_t)r * code_dim;
		int32_t s = 0;
		for (uint32_t j = 0; j < code_dim; j++)
			s += (int32_t)q[j] * c[j];
		out[r] = s;
	}
}

static const struct simd_ops ops_avx2 = { "avx2+fma", score_rows_avx2, score_blocks8_avx2, dot_i8_rows_avx2 };
static const struct simd_ops ops_sse = { "sse", score_rows_sse, score_blocks8_sse, dot_i8_rows_sse };

const struct simd_ops *simd_portable(void)
{
	return &ops_sse;
}

const struct simd_ops *simd_get(void)
{
	/* Racing first calls store the same value: benign. */
	static const struct simd_ops *ops;
	const struct simd_ops *o = ck_pr_load_ptr(&ops);
	if (unlikely(!o)) {
		__builtin_cpu_init();
		o = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") ? &ops_avx2 : &ops_sse;
		ck_pr_store_ptr(&ops, (void *)o);
	}
	return o;
}
