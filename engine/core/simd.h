/* simd.h: the scoring kernels shared by the exact scan (rec) and the ANN
 * index (ann), each compiled twice (AVX2+FMA and the x86-64 baseline) and
 * picked once from CPUID (__builtin_cpu_supports), so callers pay one
 * indirect call per block of rows, never per row.
 *
 *  - rows:   inner products of a float query with float rows of `stride`
 *            floats (a multiple of 16, rows 64-byte aligned);
 *  - blocks: inner products of a float query with centroids stored eight
 *            to a block, transposed (block[d][lane]), so one vector FMA
 *            advances eight centroids by one dimension and no horizontal
 *            sum is needed;
 *  - i8:     int8 x int8 dot products of a query code with code rows of
 *            `code_dim` bytes (a multiple of 32), exact in int32.
 */
#ifndef RECD_SIMD_H
#define RECD_SIMD_H

#include "core/common.h"

struct simd_ops {
	const char *name;   /* "avx2+fma" or "sse" */
	/* out[r] = <q, rows[r]> for r < count. */
	void (*score_rows)(const float *q, const float *rows, uint32_t stride, uint32_t count, float *out);
	/* out[8b + l] = sum_d q[d] * blocks[b][d][l] for b < nblocks. */
	void (*score_blocks8)(const float *q, const float *blocks, uint32_t dim, uint32_t nblocks, float *out);
	/* out[r] = sum_j q[j] * codes[r][j] for r < count; |q[j]| <= 127. */
	void (*dot_i8_rows)(const int8_t *q, const int8_t *codes, uint32_t code_dim, uint32_t count,
			    int32_t *out);
};

/* The kernels for this CPU (picked on first use; thread-safe). */
const struct simd_ops *simd_get(void);
/* The portable kernels, whatever the CPU (tests compare the two). */
const struct simd_ops *simd_portable(void);

#endif
