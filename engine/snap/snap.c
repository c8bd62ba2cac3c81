/* snap.c: mapping and validating snapshot files (contract in snap.h, layout
 * in snap_format.h).
 *
 * Theory of operation: the bytes are untrusted until snap_validate returns
 * 0; after that, readers index without any checks, so the validator must
 * prove every bound a reader relies on. It goes from cheap to expensive:
 *  1. header: size, magic, version, checksum, file size, counts, dims;
 *  2. section table: known ids, no duplicates, alignment, in range, no
 *     overlap, then each section's checksum (a damaged file is reported as
 *     damaged, not as whatever inconsistency the damage produced);
 *  3. contents: every length matches the counts, string offsets are
 *     monotonic, every index stored in the file (hash slots, categories,
 *     popular list) is in range, every id is reachable by the lookup probe
 *     and unique, every float a reader may score with is finite.
 * Everything is O(file size): one checksum pass, one pass over each
 * section, and the hash index checks are linear in the slot count.
 */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>
#include "snap/snap.h"

_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__,
	       "snapshots are little-endian and mapped as-is");

/* A well-built index (load <= 0.5, XXH3) averages well under one probe
 * step per key; refusing heavy clustering keeps lookups O(1) and bounds
 * the duplicate-id scan below. */
#define INDEX_MAX_AVG_PROBE 16u
#define ID_MAX_LEN 255u

static const char *const section_names[SNAP_SEC__MAX_ID + 1] = {
	[SNAP_SEC_ITEM_IDS] = "ITEM_IDS",
	[SNAP_SEC_ITEM_INDEX] = "ITEM_INDEX",
	[SNAP_SEC_ITEM_TITLES] = "ITEM_TITLES",
	[SNAP_SEC_ITEM_CATEGORY] = "ITEM_CATEGORY",
	[SNAP_SEC_ITEM_PRICE] = "ITEM_PRICE",
	[SNAP_SEC_ITEM_POPULARITY] = "ITEM_POPULARITY",
	[SNAP_SEC_ITEM_STOCK] = "ITEM_STOCK",
	[SNAP_SEC_ITEM_FLAGS] = "ITEM_FLAGS",
	[SNAP_SEC_ITEM_EMB] = "ITEM_EMB",
	[SNAP_SEC_POPULAR] = "POPULAR",
	[SNAP_SEC_USER_IDS] = "USER_IDS",
	[SNAP_SEC_USER_INDEX] = "USER_INDEX",
	[SNAP_SEC_USER_EMB] = "USER_EMB",
	[SNAP_SEC_CATEGORY_NAMES] = "CATEGORY_NAMES",
	[SNAP_SEC_ANN_PARAMS] = "ANN_PARAMS",
	[SNAP_SEC_ANN_CENTROIDS] = "ANN_CENTROIDS",
	[SNAP_SEC_ANN_LIST_OFFSETS] = "ANN_LIST_OFFSETS",
	[SNAP_SEC_ANN_LIST_ITEMS] = "ANN_LIST_ITEMS",
	[SNAP_SEC_ANN_CODES] = "ANN_CODES",
	[SNAP_SEC_ANN_CODE_SCALES] = "ANN_CODE_SCALES",
	[SNAP_SEC_ITEM_NEIGHBORS] = "ITEM_NEIGHBORS",
	[SNAP_SEC_CATEGORY_POPULAR] = "CATEGORY_POPULAR",
};

#define ITEM_SECTIONS                                                        \
	((1u << SNAP_SEC_ITEM_IDS) | (1u << SNAP_SEC_ITEM_INDEX) |           \
	 (1u << SNAP_SEC_ITEM_TITLES) | (1u << SNAP_SEC_ITEM_CATEGORY) |     \
	 (1u << SNAP_SEC_ITEM_PRICE) | (1u << SNAP_SEC_ITEM_POPULARITY) |    \
	 (1u << SNAP_SEC_ITEM_STOCK) | (1u << SNAP_SEC_ITEM_FLAGS) |         \
	 (1u << SNAP_SEC_ITEM_EMB) | (1u << SNAP_SEC_POPULAR) |              \
	 (1u << SNAP_SEC_CATEGORY_NAMES))
/* The index is all of these or none; CODE_SCALES goes with the quantiser. */
#define ANN_SECTIONS                                                         \
	((1u << SNAP_SEC_ANN_PARAMS) | (1u << SNAP_SEC_ANN_CENTROIDS) |      \
	 (1u << SNAP_SEC_ANN_LIST_OFFSETS) | (1u << SNAP_SEC_ANN_LIST_ITEMS) | \
	 (1u << SNAP_SEC_ANN_CODES))
#define OPTIONAL_SECTIONS                                                    \
	(ANN_SECTIONS | (1u << SNAP_SEC_ANN_CODE_SCALES) |                   \
	 (1u << SNAP_SEC_ITEM_NEIGHBORS) | (1u << SNAP_SEC_CATEGORY_POPULAR))
#define NEIGHBORS_MAX_K 1024u
#define USER_SECTIONS                                                        \
	((1u << SNAP_SEC_USER_IDS) | (1u << SNAP_SEC_USER_INDEX) |           \
	 (1u << SNAP_SEC_USER_EMB))

const char *snap_section_name(uint32_t id)
{
	if (id == 0 || id > SNAP_SEC__MAX_ID)
		return "UNKNOWN";
	return section_names[id];
}

struct vctx {
	const uint8_t *base;
	size_t size;
	const struct snap_header *hdr;
	const struct snap_section_entry *sec[SNAP_SEC__MAX_ID + 1];
	uint8_t *seen;          /* scratch bitmap, max(n_items, n_users) bits */
	char *err;
	size_t errlen;
};

__attribute__((format(printf, 2, 3)))
static int verr(struct vctx *v, const char *fmt, ...)
{
	if (v->err && v->errlen) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(v->err, v->errlen, fmt, ap);
		va_end(ap);
	}
	return -EINVAL;
}

#define SECERR(v, id, fmt, ...) \
	verr((v), "section %s: " fmt, snap_section_name(id), ##__VA_ARGS__)

static inline const void *sec_data(const struct vctx *v, uint32_t id)
{
	return v->base + v->sec[id]->offset;
}

/* Tests and sets bit i; returns its previous value. */
static inline bool seen_set(uint8_t *bm, uint32_t i)
{
	uint8_t bit = (uint8_t)(1u << (i & 7));
	bool was = bm[i >> 3] & bit;
	bm[i >> 3] |= bit;
	return was;
}

static int check_header(struct vctx *v)
{
	const size_t hsz = sizeof(struct snap_header);
	if (v->size < hsz)
		return verr(v, "file truncated: %zu bytes, the header alone needs %zu",
			    v->size, hsz);
	/* Columns are read in place as uint32/float/uint64. */
	if ((uintptr_t)v->base % SNAP_ALIGN)
		return verr(v, "image not %u-byte aligned in memory", SNAP_ALIGN);

	const struct snap_header *h = v->hdr = (const void *)v->base;
	if (memcmp(h->magic, SNAP_MAGIC, SNAP_MAGIC_LEN))
		return verr(v, "header: bad magic");
	if (h->format_version != SNAP_FORMAT_VERSION)
		return verr(v, "header: format version %u, this build reads %u",
			    h->format_version, SNAP_FORMAT_VERSION);
	if (h->header_size != hsz)
		return verr(v, "header: header_size %u, expected %zu", h->header_size, hsz);

	/* Checksum before trusting file_size: a flipped size field is damage,
	 * not truncation. */
	struct snap_header copy;
	memcpy(&copy, h, hsz);
	copy.header_checksum = 0;
	if (XXH3_64bits(&copy, hsz) != h->header_checksum)
		return verr(v, "header: checksum mismatch");

	if (h->file_size > v->size)
		return verr(v, "file truncated: header says %llu bytes, file has %zu",
			    (unsigned long long)h->file_size, v->size);
	if (h->file_size < v->size)
		return verr(v, "file size mismatch: header says %llu bytes, file has %zu",
			    (unsigned long long)h->file_size, v->size);
	if (!memchr(h->model_version, 0, SNAP_MODEL_VERSION_LEN))
		return verr(v, "header: model_version not NUL-terminated");
	if (h->dim == 0 || h->dim > SNAP_MAX_DIM)
		return verr(v, "header: dim %u out of range 1..%u", h->dim, SNAP_MAX_DIM);
	if (h->emb_stride != snap_stride_for_dim(h->dim))
		return verr(v, "header: emb_stride %u, dim %u needs %u",
			    h->emb_stride, h->dim, snap_stride_for_dim(h->dim));
	if (h->n_items == 0)
		return verr(v, "header: no items");
	if (h->n_popular > h->n_items)
		return verr(v, "header: n_popular %u > n_items %u", h->n_popular, h->n_items);
	if (h->n_sections > SNAP_MAX_SECTIONS)
		return verr(v, "header: %u sections, at most %u", h->n_sections,
			    SNAP_MAX_SECTIONS);
	return 0;
}

static int check_section_table(struct vctx *v)
{
	const struct snap_header *h = v->hdr;
	const struct snap_section_entry *sorted[SNAP_MAX_SECTIONS];
	uint32_t n = 0, present = 0;

	for (uint32_t i = 0; i < h->n_sections; i++) {
		const struct snap_section_entry *e = &h->sections[i];
		if (e->id == 0 || e->id > SNAP_SEC__MAX_ID)
			return verr(v, "section table entry %u: unknown section id %u", i, e->id);
		if (v->sec[e->id])
			return SECERR(v, e->id, "listed twice");
		if (e->offset % SNAP_ALIGN)
			return SECERR(v, e->id, "offset %llu not %u-byte aligned",
				      (unsigned long long)e->offset, SNAP_ALIGN);
		if (e->offset < sizeof(struct snap_header))
			return SECERR(v, e->id, "offset %llu inside the header",
				      (unsigned long long)e->offset);
		if (e->offset > v->size || e->length > v->size - e->offset)
			return SECERR(v, e->id, "offset %llu + length %llu past end of file (%zu bytes)",
				      (unsigned long long)e->offset,
				      (unsigned long long)e->length, v->size);
		v->sec[e->id] = e;
		present |= 1u << e->id;

		/* Insertion sort by offset: at most 32 entries. */
		uint32_t j = n++;
		while (j > 0 && sorted[j - 1]->offset > e->offset) {
			sorted[j] = sorted[j - 1];
			j--;
		}
		sorted[j] = e;
	}
	for (uint32_t i = 1; i < n; i++) {
		const struct snap_section_entry *a = sorted[i - 1], *b = sorted[i];
		if (a->offset + a->length > b->offset)
			return SECERR(v, b->id, "overlaps section %s", snap_section_name(a->id));
	}
	/* In file order, so the first pass over a cold file reads sequentially. */
	for (uint32_t i = 0; i < n; i++) {
		const struct snap_section_entry *e = sorted[i];
		if (XXH3_64bits(v->base + e->offset, e->length) != e->checksum)
			return SECERR(v, e->id, "checksum mismatch");
	}

	uint32_t required = ITEM_SECTIONS | (h->n_users ? USER_SECTIONS : 0);
	for (uint32_t id = 1; id <= SNAP_SEC__MAX_ID; id++) {
		if (OPTIONAL_SECTIONS & (1u << id))
			continue;   /* checked with their contents */
		bool want = required & (1u << id), have = present & (1u << id);
		if (want && !have)
			return SECERR(v, id, "missing");
		if (!want && have)
			return SECERR(v, id, "present but n_users is 0");
	}
	return 0;
}

static int check_length(struct vctx *v, uint32_t id, uint64_t want)
{
	uint64_t len = v->sec[id]->length;
	if (len != want)
		return SECERR(v, id, "length %llu, counts imply %llu",
			      (unsigned long long)len, (unsigned long long)want);
	return 0;
}

static int check_strtab(struct vctx *v, uint32_t id, uint32_t count, struct snap_strtab *t)
{
	uint64_t len = v->sec[id]->length;
	uint64_t head = 4 * ((uint64_t)count + 1);
	if (len < head)
		return SECERR(v, id, "length %llu too short for %llu string offsets",
			      (unsigned long long)len, (unsigned long long)count + 1);
	const uint32_t *off = sec_data(v, id);
	if (off[0] != 0)
		return SECERR(v, id, "first string offset %u, expected 0", off[0]);
	for (uint32_t i = 0; i < count; i++)
		if (off[i + 1] < off[i])
			return SECERR(v, id, "string offsets not monotonic at string %u", i + 1);
	if (off[count] != len - head)
		return SECERR(v, id, "strings end at %u, pool is %llu bytes (length inconsistent)",
			      off[count], (unsigned long long)(len - head));
	t->offsets = off;
	t->pool = (const char *)(off + count + 1);
	t->count = count;
	return 0;
}

/* The index must make snap_*_find return i for the id of every entry i:
 * exactly `count` used slots, each pointing to a distinct entry, holding
 * that entry's hash, reachable from its home slot without crossing a free
 * slot, and no other entry with the same id before it on the probe path.
 * Linear in capacity: reachability uses the length of the run of used
 * slots ending at each slot, and the duplicate scan walks back at most the
 * probe distance, whose total is capped. */
static int check_index(struct vctx *v, uint32_t id, uint32_t ids_id,
		       const struct snap_strtab *ids, struct snap_hindex *ix)
{
	uint64_t len = v->sec[id]->length;
	uint64_t cap = len / sizeof(struct snap_hash_slot);
	uint32_t count = ids->count;
	if (len % sizeof(struct snap_hash_slot) || cap == 0 || (cap & (cap - 1)) ||
	    cap < 2 * (uint64_t)count)
		return SECERR(v, id, "length %llu is not a power-of-two number of slots >= 2 * %u",
			      (unsigned long long)len, count);
	const struct snap_hash_slot *slots = sec_data(v, id);
	uint64_t mask = cap - 1;

	uint64_t used = 0, empty = cap;
	for (uint64_t p = 0; p < cap; p++) {
		uint32_t i = slots[p].index;
		if (i == SNAP_EMPTY_SLOT) {
			empty = p;
			continue;
		}
		if (i >= count)
			return SECERR(v, id, "slot %llu points to entry %u past count %u",
				      (unsigned long long)p, i, count);
		used++;
	}
	if (used != count)
		return SECERR(v, id, "%llu slots used, expected %u", (unsigned long long)used, count);
	if (count == 0)
		goto done;

	memset(v->seen, 0, ((size_t)count + 7) / 8);
	uint64_t run = 0, probes = 0;
	uint64_t probe_cap = (uint64_t)INDEX_MAX_AVG_PROBE * count + 64;
	/* Start just after a free slot so every run is seen from its start,
	 * including one that wraps around the end of the table. */
	for (uint64_t k = 1; k <= cap; k++) {
		uint64_t p = (empty + k) & mask;
		const struct snap_hash_slot *sl = &slots[p];
		if (sl->index == SNAP_EMPTY_SLOT) {
			run = 0;
			continue;
		}
		run++;
		uint32_t i = sl->index;
		if (seen_set(v->seen, i))
			return SECERR(v, id, "entry %u indexed twice", i);
		struct str s = snap_strtab_get(ids, i);
		if (s.len == 0)
			return SECERR(v, ids_id, "entry %u: empty id", i);
		if (s.len > ID_MAX_LEN)
			return SECERR(v, ids_id, "entry %u: id of %zu bytes, at most %u",
				      i, s.len, ID_MAX_LEN);
		uint64_t h = XXH3_64bits(s.p, s.len);
		if (sl->hash != h)
			return SECERR(v, id, "slot %llu: hash does not match the id of entry %u",
				      (unsigned long long)p, i);
		uint64_t dist = (p - (h & mask)) & mask;
		if (dist >= run)
			return SECERR(v, id, "entry %u not reachable from its home slot", i);
		probes += dist;
		if (probes > probe_cap)
			return SECERR(v, id, "too clustered (more than %u probes per id on average)",
				      INDEX_MAX_AVG_PROBE);
		for (uint64_t d = 1; d <= dist; d++) {
			const struct snap_hash_slot *o = &slots[(p - d) & mask];
			if (o->hash != h)
				continue;
			struct str os = snap_strtab_get(ids, o->index);
			if (os.len == s.len && !memcmp(os.p, s.p, s.len))
				return SECERR(v, ids_id, "duplicate id at entries %u and %u",
					      o->index, i);
		}
	}
done:
	ix->slots = slots;
	ix->mask = mask;
	return 0;
}

/* Finite values only (a NaN would poison every score it touches) and zero
 * padding (scoring runs over the whole stride). */
static int check_emb(struct vctx *v, uint32_t id, uint32_t count, const float **out)
{
	uint32_t dim = v->hdr->dim, stride = v->hdr->emb_stride;
	int rc = check_length(v, id, (uint64_t)count * stride * sizeof(float));
	if (rc)
		return rc;
	const uint32_t *w = sec_data(v, id);
	for (uint32_t r = 0; r < count; r++, w += stride) {
		uint32_t bad = 0, pad = 0;
		for (uint32_t j = 0; j < dim; j++)
			bad |= (w[j] & 0x7f800000u) == 0x7f800000u;
		for (uint32_t j = dim; j < stride; j++)
			pad |= w[j] & 0x7fffffffu;
		if (unlikely(bad)) {
			uint32_t j = 0;
			while ((w[j] & 0x7f800000u) != 0x7f800000u)
				j++;
			return SECERR(v, id, "row %u dim %u is NaN or infinite", r, j);
		}
		if (unlikely(pad))
			return SECERR(v, id, "row %u padding not zero", r);
	}
	*out = sec_data(v, id);
	return 0;
}

static int check_float_col(struct vctx *v, uint32_t id, uint32_t n, const float **out)
{
	int rc = check_length(v, id, (uint64_t)n * sizeof(float));
	if (rc)
		return rc;
	const uint32_t *w = sec_data(v, id);
	for (uint32_t i = 0; i < n; i++)
		if ((w[i] & 0x7f800000u) == 0x7f800000u)
			return SECERR(v, id, "item %u is NaN or infinite", i);
	*out = sec_data(v, id);
	return 0;
}

/* Bit patterns: finite is exponent not all ones. */
static inline bool word_finite(uint32_t w)
{
	return (w & 0x7f800000u) != 0x7f800000u;
}

static int check_floats(struct vctx *v, uint32_t id, const void *p, uint64_t count, const char *what)
{
	const uint32_t *w = p;
	for (uint64_t i = 0; i < count; i++)
		if (!word_finite(w[i]))
			return SECERR(v, id, "%s %llu is NaN or infinite", what, (unsigned long long)i);
	return 0;
}

static int check_ann(struct vctx *v, struct snap *s)
{
	const struct snap_header *h = v->hdr;
	uint32_t n = h->n_items, dim = h->dim;
	static const uint32_t group[] = { SNAP_SEC_ANN_PARAMS, SNAP_SEC_ANN_CENTROIDS, SNAP_SEC_ANN_LIST_OFFSETS,
					  SNAP_SEC_ANN_LIST_ITEMS, SNAP_SEC_ANN_CODES };
	uint32_t have = 0;
	int rc;
	for (size_t g = 0; g < ARRAY_SIZE(group); g++)
		have += v->sec[group[g]] != NULL;
	if (have == 0) {
		if (v->sec[SNAP_SEC_ANN_CODE_SCALES])
			return SECERR(v, SNAP_SEC_ANN_CODE_SCALES, "present without the ANN index");
		return 0;
	}
	for (size_t g = 0; g < ARRAY_SIZE(group); g++)
		if (!v->sec[group[g]])
			return SECERR(v, group[g], "missing (the other ANN sections are present)");

	/* Parameters and the per-dimension quantiser. */
	const uint32_t pid = SNAP_SEC_ANN_PARAMS;
	if (v->sec[pid]->length < sizeof(struct snap_ann_params))
		return SECERR(v, pid, "length %llu, shorter than its header",
			      (unsigned long long)v->sec[pid]->length);
	const struct snap_ann_params *ap = sec_data(v, pid);
	uint32_t nlist = ap->nlist, cd = ap->code_dim;
	if (nlist == 0 || nlist > n || nlist > SNAP_ANN_MAX_LISTS)
		return SECERR(v, pid, "nlist %u out of range 1..%u", nlist, MIN(n, SNAP_ANN_MAX_LISTS));
	if (cd != snap_code_dim_for_dim(dim))
		return SECERR(v, pid, "code_dim %u, dim %u needs %u", cd, dim, snap_code_dim_for_dim(dim));
	if (ap->quant != SNAP_ANN_QUANT_DIM && ap->quant != SNAP_ANN_QUANT_VECTOR)
		return SECERR(v, pid, "unknown quantiser %u", ap->quant);
	if ((rc = check_length(v, pid, sizeof(*ap) + 2 * (uint64_t)cd * sizeof(float))))
		return rc;
	const float *dq = (const float *)(ap + 1);
	if ((rc = check_floats(v, pid, dq, 2 * (uint64_t)cd, "quantiser value")))
		return rc;
	for (uint32_t d = 0; d < cd; d++) {
		if (dq[d] < 0)
			return SECERR(v, pid, "dimension %u has a negative scale", d);
		if (d >= dim && (dq[d] != 0 || dq[cd + d] != 0))
			return SECERR(v, pid, "padding dimension %u not zero", d);
	}
	bool per_vec = ap->quant == SNAP_ANN_QUANT_VECTOR;
	if (per_vec && !v->sec[SNAP_SEC_ANN_CODE_SCALES])
		return SECERR(v, SNAP_SEC_ANN_CODE_SCALES, "missing (the quantiser is per-vector)");
	if (!per_vec && v->sec[SNAP_SEC_ANN_CODE_SCALES])
		return SECERR(v, SNAP_SEC_ANN_CODE_SCALES, "present but the quantiser is per-dimension");

	/* Centroids: finite, lanes past nlist zero. */
	const uint32_t cid = SNAP_SEC_ANN_CENTROIDS;
	uint64_t nb = (nlist + 7) / 8;
	if ((rc = check_length(v, cid, nb * dim * 8 * sizeof(float))))
		return rc;
	const float *cent = sec_data(v, cid);
	if ((rc = check_floats(v, cid, cent, nb * dim * 8, "value")))
		return rc;
	for (uint32_t l = nlist; l < nb * 8; l++)
		for (uint32_t d = 0; d < dim; d++)
			if (cent[((size_t)(l / 8) * dim + d) * 8 + l % 8] != 0)
				return SECERR(v, cid, "padding lane %u not zero", l);

	/* Lists: offsets 0 .. n_items, monotonic; every item once. */
	const uint32_t oid = SNAP_SEC_ANN_LIST_OFFSETS, iid = SNAP_SEC_ANN_LIST_ITEMS;
	if ((rc = check_length(v, oid, ((uint64_t)nlist + 1) * 4)) || (rc = check_length(v, iid, (uint64_t)n * 4)))
		return rc;
	const uint32_t *off = sec_data(v, oid), *items = sec_data(v, iid);
	uint32_t max_list = 0;
	if (off[0] != 0)
		return SECERR(v, oid, "first offset %u, expected 0", off[0]);
	for (uint32_t l = 0; l < nlist; l++) {
		if (off[l + 1] < off[l])
			return SECERR(v, oid, "offsets not monotonic at list %u", l + 1);
		max_list = MAX(max_list, off[l + 1] - off[l]);
	}
	if (off[nlist] != n)
		return SECERR(v, oid, "lists end at %u, expected n_items %u", off[nlist], n);
	if (max_list != ap->max_list)
		return SECERR(v, pid, "max_list %u, the longest list has %u", ap->max_list, max_list);
	memset(v->seen, 0, ((size_t)n + 7) / 8);
	for (uint32_t l = 0; l < nlist; l++) {
		for (uint32_t p = off[l]; p < off[l + 1]; p++) {
			uint32_t i = items[p];
			if (i >= n)
				return SECERR(v, iid, "position %u is item %u, only %u items", p, i, n);
			if (seen_set(v->seen, i))
				return SECERR(v, iid, "item %u listed twice", i);
			if (p > off[l] && items[p - 1] >= i)
				return SECERR(v, iid, "list %u not in ascending item order at position %u", l, p);
		}
	}

	/* Codes: the kernel reads whole rows, so the padding must be 0. */
	const uint32_t kid = SNAP_SEC_ANN_CODES;
	if ((rc = check_length(v, kid, (uint64_t)n * cd)))
		return rc;
	const int8_t *codes = sec_data(v, kid);
	if (cd > dim)
		for (uint32_t p = 0; p < n; p++)
			for (uint32_t d = dim; d < cd; d++)
				if (codes[(size_t)p * cd + d])
					return SECERR(v, kid, "position %u padding byte %u not zero", p, d);

	const float *cs = NULL;
	if (per_vec) {
		const uint32_t sid = SNAP_SEC_ANN_CODE_SCALES;
		if ((rc = check_length(v, sid, (uint64_t)n * 4)))
			return rc;
		cs = sec_data(v, sid);
		if ((rc = check_floats(v, sid, cs, n, "position")))
			return rc;
		for (uint32_t p = 0; p < n; p++)
			if (cs[p] < 0)
				return SECERR(v, sid, "position %u has a negative scale", p);
	}
	s->ann = (struct ann_index){
		.nlist = nlist, .dim = dim, .code_dim = cd, .quant = ap->quant, .max_list = max_list,
		.centroids = cent, .list_off = off, .list_items = items, .codes = codes, .code_scale = cs,
		.dim_scale = dq, .dim_offset = dq + cd,
	};
	return 0;
}

static int check_neighbors(struct vctx *v, struct snap *s)
{
	const uint32_t id = SNAP_SEC_ITEM_NEIGHBORS;
	uint32_t n = v->hdr->n_items;
	int rc;
	if (!v->sec[id])
		return 0;
	if (v->sec[id]->length < sizeof(struct snap_neighbors_header))
		return SECERR(v, id, "length %llu, shorter than its header",
			      (unsigned long long)v->sec[id]->length);
	const struct snap_neighbors_header *nh = sec_data(v, id);
	uint32_t k = nh->k;
	if (k == 0 || k > NEIGHBORS_MAX_K)
		return SECERR(v, id, "k %u out of range 1..%u", k, NEIGHBORS_MAX_K);
	if ((rc = check_length(v, id, sizeof(*nh) + (uint64_t)n * k * sizeof(struct snap_neighbor))))
		return rc;
	const struct snap_neighbor *rows = (const void *)(nh + 1);
	memset(v->seen, 0, ((size_t)n + 7) / 8);
	for (uint32_t i = 0; i < n; i++) {
		const struct snap_neighbor *r = rows + (size_t)i * k;
		uint32_t j = 0;
		for (; j < k && r[j].item != SNAP_EMPTY_SLOT; j++) {
			uint32_t it = r[j].item;
			if (it >= n)
				return SECERR(v, id, "item %u neighbour %u is item %u, only %u items", i, j, it, n);
			if (it == i)
				return SECERR(v, id, "item %u is its own neighbour", i);
			if (!isfinite(r[j].score))
				return SECERR(v, id, "item %u neighbour %u score is NaN or infinite", i, j);
			if (seen_set(v->seen, it))
				return SECERR(v, id, "item %u lists neighbour %u twice", i, it);
		}
		for (uint32_t t = 0; t < j; t++)
			v->seen[r[t].item >> 3] = 0;
		for (; j < k; j++)
			if (r[j].item != SNAP_EMPTY_SLOT || r[j].score != 0)
				return SECERR(v, id, "item %u: entry %u after the padding", i, j);
	}
	s->neighbors_k = k;
	s->neighbors = rows;
	return 0;
}

static int check_cat_popular(struct vctx *v, struct snap *s)
{
	const uint32_t id = SNAP_SEC_CATEGORY_POPULAR;
	uint32_t n = v->hdr->n_items, nc = v->hdr->n_categories;
	if (!v->sec[id])
		return 0;
	uint64_t len = v->sec[id]->length, head = ((uint64_t)nc + 1) * 4;
	if (len < head)
		return SECERR(v, id, "length %llu too short for %llu offsets", (unsigned long long)len,
			      (unsigned long long)nc + 1);
	const uint32_t *off = sec_data(v, id), *items = off + nc + 1;
	if (off[0] != 0)
		return SECERR(v, id, "first offset %u, expected 0", off[0]);
	for (uint32_t c = 0; c < nc; c++)
		if (off[c + 1] < off[c])
			return SECERR(v, id, "offsets not monotonic at category %u", c + 1);
	if (len != head + (uint64_t)off[nc] * 4)
		return SECERR(v, id, "length %llu, offsets imply %llu", (unsigned long long)len,
			      (unsigned long long)(head + (uint64_t)off[nc] * 4));
	memset(v->seen, 0, ((size_t)n + 7) / 8);
	for (uint32_t c = 0; c < nc; c++) {
		for (uint32_t p = off[c]; p < off[c + 1]; p++) {
			uint32_t i = items[p];
			if (i >= n)
				return SECERR(v, id, "category %u entry %u is item %u, only %u items", c, p - off[c], i, n);
			if (s->item_category[i] != c)
				return SECERR(v, id, "category %u lists item %u of category %u", c, i,
					      s->item_category[i]);
			if (seen_set(v->seen, i))
				return SECERR(v, id, "item %u listed twice", i);
		}
	}
	s->cat_popular_off = off;
	s->cat_popular = items;
	return 0;
}

static int check_contents(struct vctx *v, struct snap *s)
{
	const struct snap_header *h = v->hdr;
	uint32_t n = h->n_items;
	int rc;

	if ((rc = check_strtab(v, SNAP_SEC_ITEM_IDS, n, &s->item_ids)) ||
	    (rc = check_strtab(v, SNAP_SEC_ITEM_TITLES, n, &s->item_titles)) ||
	    (rc = check_strtab(v, SNAP_SEC_CATEGORY_NAMES, h->n_categories, &s->category_names)) ||
	    (rc = check_index(v, SNAP_SEC_ITEM_INDEX, SNAP_SEC_ITEM_IDS, &s->item_ids, &s->item_index)))
		return rc;

	if ((rc = check_length(v, SNAP_SEC_ITEM_CATEGORY, (uint64_t)n * 4)))
		return rc;
	s->item_category = sec_data(v, SNAP_SEC_ITEM_CATEGORY);
	for (uint32_t i = 0; i < n; i++)
		if (s->item_category[i] >= h->n_categories)
			return SECERR(v, SNAP_SEC_ITEM_CATEGORY, "item %u has category %u, only %u categories",
				      i, s->item_category[i], h->n_categories);

	if ((rc = check_float_col(v, SNAP_SEC_ITEM_PRICE, n, &s->item_price)) ||
	    (rc = check_float_col(v, SNAP_SEC_ITEM_POPULARITY, n, &s->item_popularity)) ||
	    (rc = check_length(v, SNAP_SEC_ITEM_STOCK, (uint64_t)n * 4)) ||
	    (rc = check_length(v, SNAP_SEC_ITEM_FLAGS, (uint64_t)n * 4)))
		return rc;
	s->item_stock = sec_data(v, SNAP_SEC_ITEM_STOCK);
	s->item_flags = sec_data(v, SNAP_SEC_ITEM_FLAGS);

	if ((rc = check_length(v, SNAP_SEC_POPULAR, (uint64_t)h->n_popular * 4)))
		return rc;
	s->popular = sec_data(v, SNAP_SEC_POPULAR);
	memset(v->seen, 0, ((size_t)n + 7) / 8);
	for (uint32_t k = 0; k < h->n_popular; k++) {
		uint32_t i = s->popular[k];
		if (i >= n)
			return SECERR(v, SNAP_SEC_POPULAR, "entry %u is item %u, only %u items", k, i, n);
		if (seen_set(v->seen, i))
			return SECERR(v, SNAP_SEC_POPULAR, "item %u listed twice", i);
	}

	if ((rc = check_emb(v, SNAP_SEC_ITEM_EMB, n, &s->item_emb)) || (rc = check_ann(v, s)) ||
	    (rc = check_neighbors(v, s)) || (rc = check_cat_popular(v, s)))
		return rc;

	if (h->n_users) {
		if ((rc = check_strtab(v, SNAP_SEC_USER_IDS, h->n_users, &s->user_ids)) ||
		    (rc = check_index(v, SNAP_SEC_USER_INDEX, SNAP_SEC_USER_IDS, &s->user_ids, &s->user_index)) ||
		    (rc = check_emb(v, SNAP_SEC_USER_EMB, h->n_users, &s->user_emb)))
			return rc;
	}
	return 0;
}

int snap_validate(const void *base, size_t size, struct snap *s, char *err, size_t errlen)
{
	struct vctx v = { .base = base, .size = size, .err = err, .errlen = errlen };
	int rc;

	memset(s, 0, sizeof(*s));
	if ((rc = check_header(&v)) || (rc = check_section_table(&v)))
		return rc;

	const struct snap_header *h = v.hdr;
	v.seen = malloc(((size_t)MAX(h->n_items, h->n_users) + 7) / 8);
	if (!v.seen) {
		verr(&v, "out of memory");
		return -ENOMEM;
	}
	rc = check_contents(&v, s);
	free(v.seen);
	if (rc) {
		memset(s, 0, sizeof(*s));
		return rc;
	}
	s->base = base;
	s->size = size;
	s->hdr = h;
	s->dim = h->dim;
	s->stride = h->emb_stride;
	s->n_items = h->n_items;
	s->n_users = h->n_users;
	s->n_categories = h->n_categories;
	s->n_popular = h->n_popular;
	return 0;
}

#define SNAP_HUGE (2u << 20)
#define SNAP_MAP_SLICE ((size_t)16 << 20)   /* a multiple of SNAP_HUGE */

/* Map the file shared and read-only. With huge pages asked for, at a
 * 2 MiB-aligned address (reserve, then map over the aligned part) and
 * MADV_HUGEPAGE, so the page cache's large folios can be mapped a PMD at
 * a time: fewer TLB misses when a scan walks hundreds of MiB. */
static void *map_file(int fd, size_t size, bool huge)
{
	if (!huge)
		return mmap(NULL, size, PROT_READ, MAP_SHARED, fd, 0);
	size_t span = size + SNAP_HUGE;
	uint8_t *r = mmap(NULL, span, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (r == MAP_FAILED)
		return MAP_FAILED;
	uint8_t *a = (uint8_t *)(((uintptr_t)r + SNAP_HUGE - 1) & ~(uintptr_t)(SNAP_HUGE - 1));
	void *m = mmap(a, size, PROT_READ, MAP_SHARED | MAP_FIXED, fd, 0);
	if (m == MAP_FAILED) {
		int e = errno;
		munmap(r, span);
		errno = e;
		return MAP_FAILED;
	}
	/* Give back the reservation around the file mapping. */
	if (a > r)
		munmap(r, (size_t)(a - r));
	long page = sysconf(_SC_PAGESIZE);
	uint8_t *end = (uint8_t *)(((uintptr_t)(a + size) + (uintptr_t)page - 1) & ~(uintptr_t)(page - 1));
	if (end < r + span)
		munmap(end, (size_t)((r + span) - end));
#ifdef MADV_HUGEPAGE
	madvise(a, size, MADV_HUGEPAGE);   /* advice: refused on kernels without THP, harmlessly */
#endif
	return a;
}

int snap_open(const char *path, struct snap **out, char *err, size_t errlen)
{
	return snap_open_opts(path, NULL, out, err, errlen);
}

int snap_open_opts(const char *path, const struct snap_open_opts *opts, struct snap **out, char *err,
		   size_t errlen)
{
	struct snap *s = NULL;
	void *base = MAP_FAILED;
	size_t size = 0;
	int fd, rc;

	*out = NULL;
	if (strlen(path) >= sizeof(s->path)) {
		rc = -ENAMETOOLONG;
		snprintf(err, errlen, "%s: path too long", path);
		return rc;
	}
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		rc = -errno;
		snprintf(err, errlen, "open %s: %s", path, strerror(-rc));
		return rc;
	}
	struct stat st;
	if (fstat(fd, &st)) {
		rc = -errno;
		snprintf(err, errlen, "stat %s: %s", path, strerror(-rc));
		goto fail;
	}
	if (!S_ISREG(st.st_mode)) {
		rc = -EINVAL;
		snprintf(err, errlen, "%s: not a regular file", path);
		goto fail;
	}
	size = (size_t)st.st_size;
	s = malloc(sizeof(*s));
	if (!s) {
		rc = -ENOMEM;
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	/* An empty file cannot be mapped; let the validator word the refusal. */
	if (size) {
		base = map_file(fd, size, opts && opts->hugepages);
		if (base == MAP_FAILED) {
			rc = -errno;
			snprintf(err, errlen, "mmap %s: %s", path, strerror(-rc));
			goto fail;
		}
	}
	rc = snap_validate(base == MAP_FAILED ? NULL : base, size, s, err, errlen);
	if (rc)
		goto fail;
	close(fd);
	s->mapped = true;
	s->loaded_at_ms = now_wall_ms();
	memcpy(s->path, path, strlen(path) + 1);
	*out = s;
	return 0;
fail:
	if (base != MAP_FAILED)
		munmap(base, size);
	free(s);
	close(fd);
	return rc;
}

void snap_close(struct snap *s)
{
	if (!s)
		return;
	/* Unmapped a slice at a time, for the same reason as the warm-up:
	 * tearing down one large mapping holds the mmap lock throughout. */
	if (s->mapped && s->base)
		for (size_t off = 0; off < s->size; off += SNAP_MAP_SLICE)
			munmap((void *)(s->base + off), MIN(SNAP_MAP_SLICE, s->size - off));
	free(s);
}

static void warm_section(const struct snap *s, uint32_t id)
{
	const struct snap_header *h = s->hdr;
	long page = sysconf(_SC_PAGESIZE);
	for (uint32_t i = 0; i < h->n_sections; i++) {
		const struct snap_section_entry *e = &h->sections[i];
		if (e->id != id || e->length == 0)
			continue;
		/* madvise wants a page-aligned start; sections are only 64-aligned. */
		uint64_t start = e->offset & ~((uint64_t)page - 1);
		void *p = (void *)(s->base + start);
		size_t len = e->offset + e->length - start;
		/* Map the pages now, not on a request's first touch (a minor fault
		 * per 4 KiB page costs more than scoring the rows on it); older
		 * kernels only get the read-ahead. */
#ifdef MADV_POPULATE_READ
		/* In slices: the call holds the process's mmap lock, and a
		 * worker that needs it (an allocator's mmap, a fault) must not
		 * wait for the whole file. */
		bool done = true;
		for (size_t off = 0; off < len && done; off += SNAP_MAP_SLICE)
			done = madvise((uint8_t *)p + off, MIN(SNAP_MAP_SLICE, len - off), MADV_POPULATE_READ) == 0;
		if (done)
			continue;
#endif
		madvise(p, len, MADV_WILLNEED);
	}
}

void snap_warm(const struct snap *s)
{
	if (!s->mapped)
		return;
	warm_section(s, SNAP_SEC_ITEM_EMB);
	warm_section(s, SNAP_SEC_USER_EMB);
	warm_section(s, SNAP_SEC_ITEM_FLAGS);
	warm_section(s, SNAP_SEC_ITEM_STOCK);
	warm_section(s, SNAP_SEC_ANN_CENTROIDS);
	warm_section(s, SNAP_SEC_ANN_LIST_ITEMS);
	warm_section(s, SNAP_SEC_ANN_CODES);
	warm_section(s, SNAP_SEC_ANN_CODE_SCALES);
}

static int64_t hindex_find(const struct snap_hindex *ix, const struct snap_strtab *ids,
			   const char *id, size_t len)
{
	if (!ix->slots)
		return -1;
	uint64_t h = XXH3_64bits(id, len);
	/* Terminates: the validator guarantees free slots (capacity >= 2 * count). */
	for (uint64_t p = h & ix->mask;; p = (p + 1) & ix->mask) {
		const struct snap_hash_slot *sl = &ix->slots[p];
		if (sl->index == SNAP_EMPTY_SLOT)
			return -1;
		if (sl->hash != h)
			continue;
		struct str s = snap_strtab_get(ids, sl->index);
		if (s.len == len && !memcmp(s.p, id, len))
			return sl->index;
	}
}

int64_t snap_item_find(const struct snap *s, const char *id, size_t len)
{
	return hindex_find(&s->item_index, &s->item_ids, id, len);
}

int64_t snap_user_find(const struct snap *s, const char *id, size_t len)
{
	return hindex_find(&s->user_index, &s->user_ids, id, len);
}

int64_t snap_item_find_key(const struct snap *s, uint64_t key)
{
	const struct snap_hindex *ix = &s->item_index;
	if (!ix->slots)
		return -1;
	for (uint64_t p = key & ix->mask;; p = (p + 1) & ix->mask) {
		const struct snap_hash_slot *sl = &ix->slots[p];
		if (sl->index == SNAP_EMPTY_SLOT)
			return -1;
		if (sl->hash == key)
			return sl->index;
	}
}
