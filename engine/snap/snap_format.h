/* snap_format.h: the on-disk layout of a recd snapshot (format version 1).
 *
 * A snapshot is one file: a fixed header, then sections, each starting on a
 * 64-byte boundary. Everything is little-endian, offsets are from the start
 * of the file, there are no pointers. Every section carries an XXH3-64
 * checksum of its bytes and the header carries one of itself (computed with
 * the header_checksum field set to 0).
 *
 * Section payloads:
 *  - string table (ITEM_IDS, ITEM_TITLES, USER_IDS, CATEGORY_NAMES):
 *      uint32 offsets[count + 1], then the pool bytes; string i is
 *      pool[offsets[i] .. offsets[i+1]), offsets start at 0 and never
 *      decrease, offsets[count] == pool length. Not NUL-terminated.
 *  - hash index (ITEM_INDEX, USER_INDEX): struct snap_hash_slot[capacity],
 *      capacity a power of two >= 2 * count; slot.index == SNAP_EMPTY_SLOT
 *      marks a free slot; linear probing from XXH3_64(id) & (capacity-1).
 *  - columns: ITEM_CATEGORY uint32[n_items] (< n_categories), ITEM_PRICE
 *      float[n_items], ITEM_POPULARITY float[n_items], ITEM_STOCK
 *      uint32[n_items], ITEM_FLAGS uint32[n_items] (SNAP_ITEM_*).
 *  - embeddings (ITEM_EMB, USER_EMB): float[count][emb_stride], emb_stride
 *      = dim rounded up to 16 floats so every row is 64-byte aligned; the
 *      padding floats are 0.
 *  - POPULAR: uint32 item indexes, most popular first, n_popular of them.
 *
 * Optional sections (ids 15..22; a file without them loads, and the engine
 * falls back to the exact scan / the global popular list). A reader older
 * than these ids refuses a file that has them ("unknown section id").
 *  - the ANN index (engine/ann/ann.h), all of ANN_PARAMS, ANN_CENTROIDS,
 *    ANN_LIST_OFFSETS, ANN_LIST_ITEMS and ANN_CODES or none of them;
 *    ANN_CODE_SCALES exactly when the quantiser is SNAP_ANN_QUANT_VECTOR:
 *    - ANN_PARAMS: struct snap_ann_params, then float scale[code_dim],
 *      float offset[code_dim] (per-dimension quantiser; padding 0);
 *    - ANN_CENTROIDS: float[ceil(nlist/8)][dim][8]: centroids eight to a
 *      block, transposed (centroid 8b+l, dimension d at [b][d][l]); the
 *      lanes past nlist are 0;
 *    - ANN_LIST_OFFSETS: uint32[nlist + 1], list l holds positions
 *      offsets[l] .. offsets[l+1]; 0 first, monotonic, n_items last;
 *    - ANN_LIST_ITEMS: uint32[n_items], the item at each position (every
 *      item exactly once, ascending within a list);
 *    - ANN_CODES: int8[n_items][code_dim] in position order, code_dim =
 *      dim rounded up to 32; the residual (vector - its list's centroid)
 *      quantised: x[d] ~ centroid[d] + offset[d] + scale[d] * code[d]
 *      (QUANT_DIM) or centroid[d] + vscale * code[d] (QUANT_VECTOR);
 *      padding bytes 0;
 *    - ANN_CODE_SCALES: float[n_items] in position order (QUANT_VECTOR).
 *  - ITEM_NEIGHBORS: struct snap_neighbors_header (k), then struct
 *    snap_neighbor[n_items][k]: row i lists item i's neighbours best first
 *    (co-visited items by count, then embedding neighbours by inner
 *    product); score = inner product of the two embeddings; a row shorter
 *    than k is padded at its end with item SNAP_EMPTY_SLOT, score 0; never
 *    the item itself, never twice in a row.
 *  - CATEGORY_POPULAR: uint32 offsets[n_categories + 1], then uint32 item
 *    indexes: category c's most popular servable items, best first, at
 *    items[offsets[c] .. offsets[c+1]); every item in its own category.
 */
#ifndef RECD_SNAP_FORMAT_H
#define RECD_SNAP_FORMAT_H

#include <stdint.h>

#define SNAP_MAGIC "RECDSNAP"
#define SNAP_MAGIC_LEN 8
#define SNAP_FORMAT_VERSION 1u
#define SNAP_ALIGN 64u
#define SNAP_MAX_SECTIONS 32u
#define SNAP_EMPTY_SLOT UINT32_MAX
#define SNAP_MAX_DIM 4096u
#define SNAP_MODEL_VERSION_LEN 64u

enum snap_section_id {
	SNAP_SEC_ITEM_IDS = 1,
	SNAP_SEC_ITEM_INDEX = 2,
	SNAP_SEC_ITEM_TITLES = 3,
	SNAP_SEC_ITEM_CATEGORY = 4,
	SNAP_SEC_ITEM_PRICE = 5,
	SNAP_SEC_ITEM_POPULARITY = 6,
	SNAP_SEC_ITEM_STOCK = 7,
	SNAP_SEC_ITEM_FLAGS = 8,
	SNAP_SEC_ITEM_EMB = 9,
	SNAP_SEC_POPULAR = 10,
	SNAP_SEC_USER_IDS = 11,
	SNAP_SEC_USER_INDEX = 12,
	SNAP_SEC_USER_EMB = 13,
	SNAP_SEC_CATEGORY_NAMES = 14,
	SNAP_SEC_ANN_PARAMS = 15,
	SNAP_SEC_ANN_CENTROIDS = 16,
	SNAP_SEC_ANN_LIST_OFFSETS = 17,
	SNAP_SEC_ANN_LIST_ITEMS = 18,
	SNAP_SEC_ANN_CODES = 19,
	SNAP_SEC_ANN_CODE_SCALES = 20,
	SNAP_SEC_ITEM_NEIGHBORS = 21,
	SNAP_SEC_CATEGORY_POPULAR = 22,
	SNAP_SEC__MAX_ID = 22,
};

enum snap_item_flag {
	SNAP_ITEM_AVAILABLE = 1u << 0,  /* listed and sellable */
};

struct snap_section_entry {
	uint32_t id;
	uint32_t flags;      /* reserved, 0 */
	uint64_t offset;
	uint64_t length;
	uint64_t checksum;   /* XXH3_64bits of the section bytes */
};

struct snap_header {
	char magic[SNAP_MAGIC_LEN];
	uint32_t format_version;
	uint32_t header_size;          /* sizeof(struct snap_header) */
	uint64_t file_size;
	uint64_t build_time;           /* unix seconds */
	char model_version[SNAP_MODEL_VERSION_LEN]; /* NUL-terminated */
	uint32_t dim;
	uint32_t emb_stride;
	uint32_t n_items;
	uint32_t n_users;
	uint32_t n_categories;
	uint32_t n_popular;
	uint32_t n_sections;
	uint32_t reserved0;
	uint64_t header_checksum;
	uint8_t reserved[56];         /* pads the header to a multiple of 64 */
	struct snap_section_entry sections[SNAP_MAX_SECTIONS];
};

enum snap_ann_quant {
	SNAP_ANN_QUANT_DIM = 1,     /* per-dimension scale and offset */
	SNAP_ANN_QUANT_VECTOR = 2,  /* one scale per vector (ANN_CODE_SCALES) */
};

#define SNAP_ANN_MAX_LISTS 65536u  /* bounds the per-worker query scratch */
#define SNAP_ANN_CODE_ALIGN 32u

struct snap_ann_params {
	uint32_t nlist;        /* 1..min(n_items, SNAP_ANN_MAX_LISTS) */
	uint32_t code_dim;     /* dim rounded up to SNAP_ANN_CODE_ALIGN */
	uint32_t quant;        /* enum snap_ann_quant */
	uint32_t max_list;     /* length of the longest list */
	uint64_t seed;         /* build parameters, informational */
	uint32_t train_iters;
	uint32_t train_sample;
	uint32_t reserved[8];
};

struct snap_neighbors_header {
	uint32_t k;            /* entries per item, >= 1 */
	uint32_t reserved[15];
};

struct snap_neighbor {
	uint32_t item;         /* SNAP_EMPTY_SLOT = padding */
	float score;
};

struct snap_hash_slot {
	uint64_t hash;
	uint32_t index;
	uint32_t reserved;
};

_Static_assert(sizeof(struct snap_section_entry) == 32, "section entry layout");
_Static_assert(sizeof(struct snap_hash_slot) == 16, "hash slot layout");
_Static_assert(sizeof(struct snap_ann_params) == 64, "ann params layout");
_Static_assert(sizeof(struct snap_neighbors_header) == 64, "neighbours header layout");
_Static_assert(sizeof(struct snap_neighbor) == 8, "neighbour layout");
_Static_assert(SNAP_SEC__MAX_ID < 32, "section ids fit the presence bitmask");
_Static_assert(sizeof(struct snap_header) % SNAP_ALIGN == 0, "header keeps sections aligned");

static inline uint32_t snap_stride_for_dim(uint32_t dim)
{
	return (dim + 15u) & ~15u;
}

static inline uint32_t snap_code_dim_for_dim(uint32_t dim)
{
	return (dim + SNAP_ANN_CODE_ALIGN - 1) & ~(SNAP_ANN_CODE_ALIGN - 1);
}

#endif
