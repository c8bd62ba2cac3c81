/* fuzz_snap.c: snapshot validator fuzzer.
 *
 * Runs snap_validate over the input; when it accepts, reads everything a
 * reader may read (every id, title, category, column, embedding row, the
 * popular list, every user) and checks lookups by id give back the same
 * index. A hole in the validator then shows up as an ASan report or a trap.
 *
 * Every section is checksummed, so random mutations mostly stop at the
 * checksum; the seed corpus holds damaged files with recomputed checksums
 * to start past that gate (see tests/unit/test_snap.c --write-corpus).
 */
#include <stdlib.h>
#include <string.h>
#include "snap/snap.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static volatile float sink;

static float touch_row(const float *v, uint32_t stride)
{
	float acc = 0;
	for (uint32_t j = 0; j < stride; j++)
		acc += v[j];
	return acc;
}

static void walk(const struct snap *s)
{
	float acc = 0;
	for (uint32_t i = 0; i < s->n_items; i++) {
		struct str id = snap_item_id(s, i);
		if (snap_item_find(s, id.p, id.len) != (int64_t)i)
			__builtin_trap();
		struct str title = snap_strtab_get(&s->item_titles, i);
		if (title.len)
			acc += (float)(unsigned char)title.p[title.len - 1];
		struct str cat = snap_strtab_get(&s->category_names, s->item_category[i]);
		acc += (float)cat.len;
		acc += s->item_price[i] + s->item_popularity[i];
		acc += (float)snap_item_servable(s, i);
		acc += touch_row(snap_item_vec(s, i), s->stride);
	}
	for (uint32_t k = 0; k < s->n_popular; k++)
		acc += (float)snap_item_servable(s, s->popular[k]);
	for (uint32_t u = 0; u < s->n_users; u++) {
		struct str id = snap_user_id(s, u);
		if (snap_user_find(s, id.p, id.len) != (int64_t)u)
			__builtin_trap();
		acc += touch_row(snap_user_vec(s, u), s->stride);
	}
	acc += (float)snap_item_find(s, "no-such-item", 12);
	acc += (float)snap_user_find(s, "no-such-user", 12);
	sink = acc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* The validator wants the image 64-byte aligned, as mmap gives it. */
	uint8_t *buf = aligned_alloc(64, (size + 63) & ~(size_t)63 ? (size + 63) & ~(size_t)63 : 64);
	if (!buf)
		return 0;
	memcpy(buf, data, size);
	struct snap s;
	char err[256];
	if (snap_validate(buf, size, &s, err, sizeof(err)) == 0)
		walk(&s);
	free(buf);
	return 0;
}
