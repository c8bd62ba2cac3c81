/* test_snap.c: snapshot builder and validator: round trip, builder
 * refusals, and one refusal per corruption class with its message.
 *
 * Corruptions that sit behind a checksum are patched and then the
 * checksums are recomputed, so the deeper check is the one that fires.
 *
 * `test_snap --write-corpus DIR` writes the fuzz seed corpus instead
 * (tests/fuzz/corpus/snap is produced that way).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>
#include "snap/snap.h"
#include "snap/snapb.h"

static int failures;
#define CHECK(cond)                                                          \
	do {                                                                 \
		if (!(cond)) {                                               \
			fprintf(stderr, "%s:%d: CHECK failed: %s\n",         \
				__FILE__, __LINE__, #cond);                  \
			failures++;                                          \
		}                                                            \
	} while (0)

static char dir[64];

#define DIM 5
#define N_ITEMS 7
#define N_USERS 3

static const struct snapb_item items[N_ITEMS] = {
	{ "sku-a", "Alpha", "books", 9.5f, 3, true },
	{ "sku-b", "Beta", "music", 1.25f, 0, true },       /* out of stock */
	{ "sku-c", "", "books", 3.0f, 5, true },
	{ "sku-d", "Delta", "", 4.0f, 1, false },            /* unavailable */
	{ "sku-e", "Echo", "toys", 5.0f, 2, true },
	{ "sku-f", "Foxtrot", "music", 6.0f, 9, true },
	{ "x", "A longer title, with punctuation", "toys", 7.0f, 1, true },
};
static const float popularity[N_ITEMS] = { 10, 50, 20, 100, 20, 5, 20 };
static const char *const user_ids[N_USERS] = { "u1", "u2", "user-three" };
static float item_emb[N_ITEMS * DIM];
static float user_emb[N_USERS * DIM];

static struct snapb_input base_input(void)
{
	for (int i = 0; i < N_ITEMS * DIM; i++)
		item_emb[i] = (float)(i / DIM) * 10.0f + (float)(i % DIM) + 0.5f;
	for (int i = 0; i < N_USERS * DIM; i++)
		user_emb[i] = -(float)i - 0.25f;
	struct snapb_input in = {
		.model_version = "test-v1",
		.build_time = 1700000000,
		.dim = DIM,
		.n_items = N_ITEMS,
		.items = items,
		.item_emb = item_emb,
		.n_users = N_USERS,
		.user_ids = user_ids,
		.user_emb = user_emb,
		.item_popularity = popularity,
	};
	return in;
}

static void path_of(char *out, size_t n, const char *name)
{
	snprintf(out, n, "%s/%s", dir, name);
}

static bool contains(const char *hay, const char *needle)
{
	if (!strstr(hay, needle)) {
		fprintf(stderr, "  expected \"%s\" in \"%s\"\n", needle, hay);
		return false;
	}
	return true;
}

/* ---- file image helpers ---- */

struct img {
	uint8_t *p;
	size_t size;
};

static struct img img_dup(const struct img *src)
{
	struct img r = { aligned_alloc(64, (src->size + 63) & ~(size_t)63), src->size };
	memcpy(r.p, src->p, src->size);
	return r;
}

static struct img img_read(const char *path)
{
	struct img r = { NULL, 0 };
	FILE *f = fopen(path, "rb");
	if (!f)
		return r;
	fseek(f, 0, SEEK_END);
	r.size = (size_t)ftell(f);
	fseek(f, 0, SEEK_SET);
	r.p = aligned_alloc(64, (r.size + 63) & ~(size_t)63);
	if (fread(r.p, 1, r.size, f) != r.size)
		r.size = 0;
	fclose(f);
	return r;
}

static int img_write(const char *path, const uint8_t *p, size_t size)
{
	FILE *f = fopen(path, "wb");
	if (!f)
		return -1;
	size_t n = size ? fwrite(p, 1, size, f) : 0;
	return (fclose(f) == 0 && n == size) ? 0 : -1;
}

static struct snap_header *hdr(struct img *m) { return (struct snap_header *)m->p; }

static struct snap_section_entry *sec(struct img *m, uint32_t id)
{
	struct snap_header *h = hdr(m);
	for (uint32_t i = 0; i < h->n_sections && i < SNAP_MAX_SECTIONS; i++)
		if (h->sections[i].id == id)
			return &h->sections[i];
	return NULL;
}

static void *sec_ptr(struct img *m, uint32_t id) { return m->p + sec(m, id)->offset; }

/* Recomputes every in-range section checksum, then the header's. */
static void fix_sums(struct img *m)
{
	struct snap_header *h = hdr(m);
	for (uint32_t i = 0; i < h->n_sections && i < SNAP_MAX_SECTIONS; i++) {
		struct snap_section_entry *e = &h->sections[i];
		if (e->offset <= m->size && e->length <= m->size - e->offset)
			e->checksum = XXH3_64bits(m->p + e->offset, e->length);
	}
	h->header_checksum = 0;
	h->header_checksum = XXH3_64bits(h, sizeof(*h));
}

/* Rebuilds a hash index from the (patched) id table, the way a correct
 * builder would, duplicates included. */
static void rebuild_index(struct img *m, uint32_t ids_id, uint32_t index_id, uint32_t count)
{
	const uint32_t *off = sec_ptr(m, ids_id);
	const char *pool = (const char *)(off + count + 1);
	struct snap_hash_slot *slots = sec_ptr(m, index_id);
	uint64_t cap = sec(m, index_id)->length / sizeof(*slots);
	for (uint64_t p = 0; p < cap; p++)
		slots[p] = (struct snap_hash_slot){ 0, SNAP_EMPTY_SLOT, 0 };
	for (uint32_t i = 0; i < count; i++) {
		uint64_t h = XXH3_64bits(pool + off[i], off[i + 1] - off[i]);
		uint64_t p = h & (cap - 1);
		while (slots[p].index != SNAP_EMPTY_SLOT)
			p = (p + 1) & (cap - 1);
		slots[p].hash = h;
		slots[p].index = i;
	}
}

/* Writes the image to a file and checks snap_open refuses it with a
 * message containing `want`. */
static bool expect_bad_at(const struct img *m, const char *want, int line)
{
	char path[128], err[256] = "";
	struct snap *s = (struct snap *)1;
	path_of(path, sizeof(path), "bad.snap");
	if (img_write(path, m->p, m->size)) {
		fprintf(stderr, "%s:%d: cannot write %s\n", __FILE__, line, path);
		return false;
	}
	int rc = snap_open(path, &s, err, sizeof(err));
	unlink(path);
	bool ok = rc == -EINVAL && s == NULL && strstr(err, want);
	if (!ok)
		fprintf(stderr, "%s:%d: wanted refusal \"%s\", got rc %d err \"%s\"\n",
			__FILE__, line, want, rc, err);
	if (rc == 0)
		snap_close(s);
	return ok;
}
#define EXPECT_BAD(m, want) CHECK(expect_bad_at((m), (want), __LINE__))

/* ---- tests ---- */

static void test_event_weight(void)
{
	CHECK(snapb_event_weight("view", 4) == 1.0f);
	CHECK(snapb_event_weight("click", 5) == 1.0f);
	CHECK(snapb_event_weight("rating", 6) == 1.0f);
	CHECK(snapb_event_weight("add_to_cart", 11) == 3.0f);
	CHECK(snapb_event_weight("purchase", 8) == 5.0f);
	CHECK(snapb_event_weight("purchase", 7) == -1.0f);   /* prefix only */
	CHECK(snapb_event_weight("refund", 6) == -1.0f);
	CHECK(snapb_event_weight("", 0) == -1.0f);
}

static void test_round_trip(void)
{
	struct snapb_input in = base_input();
	char path[128], err[256] = "";
	path_of(path, sizeof(path), "good.snap");
	CHECK(snapb_write(&in, path, err, sizeof(err)) == 0);

	struct snap *s = NULL;
	int rc = snap_open(path, &s, err, sizeof(err));
	CHECK(rc == 0);
	if (rc) {
		fprintf(stderr, "  snap_open: %s\n", err);
		return;
	}
	CHECK(s->mapped);
	CHECK(strcmp(s->path, path) == 0);
	CHECK(s->loaded_at_ms > 1600000000000ull);
	CHECK(s->hdr->file_size == s->size);
	CHECK(strcmp(s->hdr->model_version, "test-v1") == 0);
	CHECK(s->hdr->build_time == 1700000000);
	CHECK(s->dim == DIM && s->stride == 16);
	CHECK(s->n_items == N_ITEMS && s->n_users == N_USERS);

	/* Categories interned in first-seen order. */
	CHECK(s->n_categories == 4);
	static const char *const cats[] = { "books", "music", "", "toys" };
	for (uint32_t c = 0; c < 4 && c < s->n_categories; c++) {
		struct str n = snap_strtab_get(&s->category_names, c);
		CHECK(n.len == strlen(cats[c]) && !memcmp(n.p, cats[c], n.len));
	}
	static const uint32_t want_cat[N_ITEMS] = { 0, 1, 0, 2, 3, 1, 3 };

	for (uint32_t i = 0; i < N_ITEMS; i++) {
		struct str id = snap_item_id(s, i);
		struct str title = snap_strtab_get(&s->item_titles, i);
		CHECK(id.len == strlen(items[i].id) && !memcmp(id.p, items[i].id, id.len));
		CHECK(title.len == strlen(items[i].title) && !memcmp(title.p, items[i].title, title.len));
		CHECK(s->item_category[i] == want_cat[i]);
		CHECK(s->item_price[i] == items[i].price);
		CHECK(s->item_popularity[i] == popularity[i]);
		CHECK(s->item_stock[i] == items[i].stock);
		CHECK(s->item_flags[i] == (items[i].available ? SNAP_ITEM_AVAILABLE : 0u));
		CHECK(snap_item_find(s, items[i].id, strlen(items[i].id)) == (int64_t)i);
		const float *v = snap_item_vec(s, i);
		CHECK(((uintptr_t)v & 63) == 0);
		for (uint32_t j = 0; j < DIM; j++)
			CHECK(v[j] == item_emb[i * DIM + j]);
		for (uint32_t j = DIM; j < s->stride; j++)
			CHECK(v[j] == 0.0f && !signbit(v[j]));
	}
	CHECK(!snap_item_servable(s, 1));   /* stock 0 */
	CHECK(!snap_item_servable(s, 3));   /* unavailable */
	CHECK(snap_item_servable(s, 0));

	CHECK(snap_item_find(s, "sku-z", 5) == -1);
	CHECK(snap_item_find(s, "sku", 3) == -1);
	CHECK(snap_item_find(s, "sku-a ", 6) == -1);
	CHECK(snap_item_find(s, "", 0) == -1);
	CHECK(snap_item_find(s, "u1", 2) == -1);

	/* Popular: servable only, score desc, ties by lower index. */
	static const uint32_t want_pop[] = { 2, 4, 6, 0, 5 };
	CHECK(s->n_popular == ARRAY_SIZE(want_pop));
	for (uint32_t k = 0; k < s->n_popular && k < ARRAY_SIZE(want_pop); k++)
		CHECK(s->popular[k] == want_pop[k]);

	for (uint32_t u = 0; u < N_USERS; u++) {
		struct str id = snap_user_id(s, u);
		CHECK(id.len == strlen(user_ids[u]) && !memcmp(id.p, user_ids[u], id.len));
		CHECK(snap_user_find(s, user_ids[u], strlen(user_ids[u])) == (int64_t)u);
		const float *v = snap_user_vec(s, u);
		for (uint32_t j = 0; j < DIM; j++)
			CHECK(v[j] == user_emb[u * DIM + j]);
		for (uint32_t j = DIM; j < s->stride; j++)
			CHECK(v[j] == 0.0f);
	}
	CHECK(snap_user_find(s, "u3", 2) == -1);
	CHECK(snap_user_find(s, "sku-a", 5) == -1);

	CHECK(strcmp(snap_section_name(SNAP_SEC_ITEM_EMB), "ITEM_EMB") == 0);
	CHECK(strcmp(snap_section_name(SNAP_SEC_CATEGORY_NAMES), "CATEGORY_NAMES") == 0);
	CHECK(strcmp(snap_section_name(0), "UNKNOWN") == 0);
	CHECK(strcmp(snap_section_name(99), "UNKNOWN") == 0);
	snap_warm(s);
	snap_close(s);
	snap_close(NULL);

	/* The in-memory validator agrees and borrows the buffer. */
	struct img m = img_read(path);
	struct snap v;
	CHECK(m.size > 0 && snap_validate(m.p, m.size, &v, err, sizeof(err)) == 0);
	CHECK(!v.mapped && v.base == m.p && v.n_items == N_ITEMS);
	free(m.p);
	unlink(path);
}

static void test_variants(void)
{
	struct snapb_input in = base_input();
	char path[128], err[256] = "";
	struct snap *s = NULL;
	path_of(path, sizeof(path), "var.snap");

	/* popular_k caps the list; no users means no user sections. */
	in.popular_k = 2;
	in.n_users = 0;
	in.user_ids = NULL;
	in.user_emb = NULL;
	in.model_version = NULL;
	CHECK(snapb_write(&in, path, err, sizeof(err)) == 0);
	CHECK(snap_open(path, &s, err, sizeof(err)) == 0);
	if (s) {
		CHECK(s->n_popular == 2 && s->popular[0] == 2 && s->popular[1] == 4);
		CHECK(s->n_users == 0 && s->user_emb == NULL);
		CHECK(snap_user_find(s, "u1", 2) == -1);
		CHECK(strcmp(s->hdr->model_version, "unversioned") == 0);
		snap_close(s);
		s = NULL;
	}

	/* No popularity: all ties, so servable items in index order. Dim 16
	 * needs no padding. Overwriting an existing file works. */
	static float emb16[N_ITEMS * 16];
	for (int i = 0; i < N_ITEMS * 16; i++)
		emb16[i] = (float)i;
	in.item_popularity = NULL;
	in.popular_k = 0;
	in.dim = 16;
	in.item_emb = emb16;
	CHECK(snapb_write(&in, path, err, sizeof(err)) == 0);
	CHECK(snap_open(path, &s, err, sizeof(err)) == 0);
	if (s) {
		static const uint32_t want[] = { 0, 2, 4, 5, 6 };
		CHECK(s->n_popular == 5);
		for (uint32_t k = 0; k < s->n_popular && k < 5; k++)
			CHECK(s->popular[k] == want[k]);
		CHECK(s->stride == 16 && snap_item_vec(s, 6)[15] == 6 * 16 + 15);
		snap_close(s);
	}
	unlink(path);
}

static bool dir_is_empty(void)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	int n = 0;
	while (d && (e = readdir(d)))
		if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
			n++;
	if (d)
		closedir(d);
	return n == 0;
}

static void expect_build_fails_at(const struct snapb_input *in, const char *want, int line)
{
	char path[128], err[256] = "";
	path_of(path, sizeof(path), "refused.snap");
	int rc = snapb_write(in, path, err, sizeof(err));
	if (rc != -EINVAL || !strstr(err, want)) {
		fprintf(stderr, "%s:%d: wanted build refusal \"%s\", got rc %d err \"%s\"\n",
			__FILE__, line, want, rc, err);
		failures++;
	}
	/* Neither the target nor a temporary file is left behind. */
	if (access(path, F_OK) == 0 || !dir_is_empty()) {
		fprintf(stderr, "%s:%d: refused build left files behind\n", __FILE__, line);
		failures++;
	}
}
#define EXPECT_BUILD_FAILS(in, want) expect_build_fails_at((in), (want), __LINE__)

static void test_builder_refusals(void)
{
	struct snapb_input in;
	struct snapb_item bad[N_ITEMS];
	char long_id[300];

	in = base_input();
	memcpy(bad, items, sizeof(bad));
	bad[5].id = "sku-c";
	in.items = bad;
	EXPECT_BUILD_FAILS(&in, "duplicate item id \"sku-c\" (rows 2 and 5)");

	memcpy(bad, items, sizeof(bad));
	bad[4].id = "";
	EXPECT_BUILD_FAILS(&in, "item 4: empty id");
	bad[4].id = NULL;
	EXPECT_BUILD_FAILS(&in, "item 4: empty id");
	memset(long_id, 'a', 256);
	long_id[256] = 0;
	bad[4].id = long_id;
	EXPECT_BUILD_FAILS(&in, "item 4: id of 256 bytes");
	long_id[255] = 0;   /* 255 bytes is allowed */
	char path[128], err[256];
	path_of(path, sizeof(path), "long.snap");
	CHECK(snapb_write(&in, path, err, sizeof(err)) == 0);
	unlink(path);

	in = base_input();
	item_emb[3 * DIM + 2] = NAN;
	EXPECT_BUILD_FAILS(&in, "item 3 (\"sku-d\"): embedding[2] is NaN or infinite");
	in = base_input();
	user_emb[1 * DIM + 4] = -INFINITY;
	EXPECT_BUILD_FAILS(&in, "user 1 (\"u2\"): embedding[4] is NaN or infinite");

	in = base_input();
	const char *dup_users[N_USERS] = { "u1", "u2", "u1" };
	in.user_ids = dup_users;
	EXPECT_BUILD_FAILS(&in, "duplicate user id \"u1\" (rows 0 and 2)");

	in = base_input();
	in.dim = 0;
	EXPECT_BUILD_FAILS(&in, "dim 0 out of range");
	in.dim = SNAP_MAX_DIM + 1;
	EXPECT_BUILD_FAILS(&in, "dim 4097 out of range");

	in = base_input();
	in.model_version = "0123456789012345678901234567890123456789012345678901234567890123";
	EXPECT_BUILD_FAILS(&in, "model_version of 64 bytes");

	in = base_input();
	in.n_items = 0;
	EXPECT_BUILD_FAILS(&in, "no items");

	in = base_input();
	memcpy(bad, items, sizeof(bad));
	bad[6].price = NAN;
	in.items = bad;
	EXPECT_BUILD_FAILS(&in, "item 6: price is NaN");

	in = base_input();
	float pop_bad[N_ITEMS];
	memcpy(pop_bad, popularity, sizeof(pop_bad));
	pop_bad[0] = INFINITY;
	in.item_popularity = pop_bad;
	EXPECT_BUILD_FAILS(&in, "item 0: popularity is NaN");

	/* An unwritable destination is an I/O error, not EINVAL. */
	in = base_input();
	path_of(path, sizeof(path), "no/such/dir.snap");
	CHECK(snapb_write(&in, path, err, sizeof(err)) == -ENOENT);
	CHECK(dir_is_empty());
}

static void test_corruptions(void)
{
	struct snapb_input in = base_input();
	char path[128], err[256] = "", want[128];
	path_of(path, sizeof(path), "base.snap");
	CHECK(snapb_write(&in, path, err, sizeof(err)) == 0);
	struct img good = img_read(path);
	unlink(path);
	CHECK(good.size > sizeof(struct snap_header));
	if (good.size <= sizeof(struct snap_header))
		return;
	struct img m;
	struct snap_section_entry *e;
	const size_t hsz = sizeof(struct snap_header);

	/* Recomputing the checksums of an untouched image changes nothing. */
	m = img_dup(&good);
	fix_sums(&m);
	CHECK(memcmp(m.p, good.p, good.size) == 0);
	free(m.p);

	/* Missing file, empty file, truncations, trailing bytes. */
	struct snap *s = (struct snap *)1;
	path_of(path, sizeof(path), "absent.snap");
	CHECK(snap_open(path, &s, err, sizeof(err)) == -ENOENT && s == NULL);
	const size_t cuts[] = { 0, 1, 8, 100, hsz - 1, hsz, hsz + 64, good.size / 2, good.size - 1 };
	for (size_t i = 0; i < ARRAY_SIZE(cuts); i++) {
		m = img_dup(&good);
		m.size = cuts[i];
		EXPECT_BAD(&m, "file truncated");
		free(m.p);
	}
	m = img_dup(&good);
	m.size = hsz + 64;
	snprintf(want, sizeof(want), "file truncated: header says %zu bytes, file has %zu",
		 good.size, m.size);
	EXPECT_BAD(&m, want);
	free(m.p);
	m.p = aligned_alloc(64, good.size + 64);
	memcpy(m.p, good.p, good.size);
	m.p[good.size] = 0;
	m.size = good.size + 1;
	EXPECT_BAD(&m, "file size mismatch");
	free(m.p);

	/* In-memory image not aligned. */
	m.p = aligned_alloc(64, good.size + 64);
	memcpy(m.p + 8, good.p, good.size);
	struct snap v;
	CHECK(snap_validate(m.p + 8, good.size, &v, err, sizeof(err)) == -EINVAL &&
	      contains(err, "not 64-byte aligned"));
	free(m.p);

	/* Header. */
	m = img_dup(&good);
	m.p[3] ^= 0x20;
	EXPECT_BAD(&m, "header: bad magic");
	free(m.p);

	m = img_dup(&good);
	hdr(&m)->format_version = 2;
	fix_sums(&m);
	EXPECT_BAD(&m, "header: format version 2");
	free(m.p);

	m = img_dup(&good);
	hdr(&m)->header_size = (uint32_t)hsz + 64;
	fix_sums(&m);
	EXPECT_BAD(&m, "header: header_size");
	free(m.p);

	m = img_dup(&good);
	hdr(&m)->model_version[1] ^= 1;
	EXPECT_BAD(&m, "header: checksum mismatch");
	free(m.p);
	m = img_dup(&good);
	hdr(&m)->header_checksum ^= 1ull << 40;
	EXPECT_BAD(&m, "header: checksum mismatch");
	free(m.p);
	m = img_dup(&good);
	hdr(&m)->file_size -= 64;   /* damage, not truncation */
	EXPECT_BAD(&m, "header: checksum mismatch");
	free(m.p);

	m = img_dup(&good);
	memset(hdr(&m)->model_version, 'v', SNAP_MODEL_VERSION_LEN);
	fix_sums(&m);
	EXPECT_BAD(&m, "header: model_version not NUL-terminated");
	free(m.p);

	m = img_dup(&good);
	hdr(&m)->dim = 0;
	fix_sums(&m);
	EXPECT_BAD(&m, "header: dim 0 out of range");
	free(m.p);
	m = img_dup(&good);
	hdr(&m)->dim = SNAP_MAX_DIM + 1;
	fix_sums(&m);
	EXPECT_BAD(&m, "header: dim 4097 out of range");
	free(m.p);
	m = img_dup(&good);
	hdr(&m)->emb_stride = DIM;
	fix_sums(&m);
	EXPECT_BAD(&m, "header: emb_stride 5, dim 5 needs 16");
	free(m.p);
	m = img_dup(&good);
	hdr(&m)->n_items = 0;
	fix_sums(&m);
	EXPECT_BAD(&m, "header: no items");
	free(m.p);
	m = img_dup(&good);
	hdr(&m)->n_popular = N_ITEMS + 1;
	fix_sums(&m);
	EXPECT_BAD(&m, "header: n_popular 8 > n_items 7");
	free(m.p);
	m = img_dup(&good);
	hdr(&m)->n_sections = SNAP_MAX_SECTIONS + 1;
	fix_sums(&m);
	EXPECT_BAD(&m, "header: 33 sections");
	free(m.p);

	/* A byte flipped in each section in turn. */
	uint32_t nsec = hdr(&good)->n_sections;
	CHECK(nsec == 15);   /* the 14 required ones and CATEGORY_POPULAR */
	for (uint32_t i = 0; i < nsec; i++) {
		m = img_dup(&good);
		e = &hdr(&m)->sections[i];
		CHECK(e->length > 0);
		m.p[e->offset + e->length / 2] ^= 0x01;
		snprintf(want, sizeof(want), "section %s: checksum mismatch", snap_section_name(e->id));
		EXPECT_BAD(&m, want);
		free(m.p);
	}

	/* Section table. */
	m = img_dup(&good);
	hdr(&m)->sections[4].id = 99;
	fix_sums(&m);
	EXPECT_BAD(&m, "section table entry 4: unknown section id 99");
	free(m.p);

	m = img_dup(&good);
	sec(&m, SNAP_SEC_POPULAR)->id = SNAP_SEC_ITEM_PRICE;
	fix_sums(&m);
	EXPECT_BAD(&m, "section ITEM_PRICE: listed twice");
	free(m.p);

	m = img_dup(&good);
	e = sec(&m, SNAP_SEC_POPULAR);
	e->offset += 4;
	fix_sums(&m);
	snprintf(want, sizeof(want), "section POPULAR: offset %llu not 64-byte aligned",
		 (unsigned long long)e->offset);
	EXPECT_BAD(&m, want);
	free(m.p);

	m = img_dup(&good);
	sec(&m, SNAP_SEC_ITEM_IDS)->offset = 0;
	fix_sums(&m);
	EXPECT_BAD(&m, "section ITEM_IDS: offset 0 inside the header");
	free(m.p);

	m = img_dup(&good);
	sec(&m, SNAP_SEC_ITEM_EMB)->offset = (good.size + 63) & ~(size_t)63;
	fix_sums(&m);
	EXPECT_BAD(&m, "section ITEM_EMB: offset");
	EXPECT_BAD(&m, "past end of file");
	free(m.p);

	m = img_dup(&good);
	sec(&m, SNAP_SEC_ITEM_STOCK)->length = UINT64_MAX - 8;   /* offset + length wraps */
	fix_sums(&m);
	EXPECT_BAD(&m, "section ITEM_STOCK: offset");
	EXPECT_BAD(&m, "past end of file");
	free(m.p);

	m = img_dup(&good);
	sec(&m, SNAP_SEC_ITEM_PRICE)->offset = sec(&m, SNAP_SEC_ITEM_CATEGORY)->offset;
	fix_sums(&m);
	EXPECT_BAD(&m, "overlaps section");
	free(m.p);
	m = img_dup(&good);
	sec(&m, SNAP_SEC_ITEM_IDS)->length += 64;   /* runs into the next section */
	fix_sums(&m);
	EXPECT_BAD(&m, "section ITEM_INDEX: overlaps section ITEM_IDS");
	free(m.p);

	/* Required sections. */
	m = img_dup(&good);
	{
		struct snap_header *h = hdr(&m);
		struct snap_section_entry *pop = sec(&m, SNAP_SEC_POPULAR);
		*pop = h->sections[h->n_sections - 1];
		memset(&h->sections[--h->n_sections], 0, sizeof(*pop));
	}
	fix_sums(&m);
	EXPECT_BAD(&m, "section POPULAR: missing");
	free(m.p);
	m = img_dup(&good);
	{
		struct snap_header *h = hdr(&m);
		struct snap_section_entry *ue = sec(&m, SNAP_SEC_USER_EMB);
		*ue = h->sections[h->n_sections - 1];
		memset(&h->sections[--h->n_sections], 0, sizeof(*ue));
	}
	fix_sums(&m);
	EXPECT_BAD(&m, "section USER_EMB: missing");
	free(m.p);
	m = img_dup(&good);
	hdr(&m)->n_users = 0;
	fix_sums(&m);
	EXPECT_BAD(&m, "section USER_IDS: present but n_users is 0");
	free(m.p);

	/* Lengths inconsistent with the counts. */
	m = img_dup(&good);
	sec(&m, SNAP_SEC_ITEM_PRICE)->length -= 4;
	fix_sums(&m);
	EXPECT_BAD(&m, "section ITEM_PRICE: length 24, counts imply 28");
	free(m.p);
	m = img_dup(&good);
	hdr(&m)->n_popular -= 1;
	fix_sums(&m);
	EXPECT_BAD(&m, "section POPULAR: length 20, counts imply 16");
	free(m.p);
	m = img_dup(&good);
	sec(&m, SNAP_SEC_ITEM_EMB)->length -= 64;
	fix_sums(&m);
	EXPECT_BAD(&m, "section ITEM_EMB: length");
	free(m.p);
	m = img_dup(&good);
	hdr(&m)->n_users = 2;
	fix_sums(&m);
	EXPECT_BAD(&m, "section USER_IDS: strings end at");
	free(m.p);
	m = img_dup(&good);
	sec(&m, SNAP_SEC_ITEM_TITLES)->length -= 1;
	fix_sums(&m);
	EXPECT_BAD(&m, "section ITEM_TITLES: strings end at");
	free(m.p);
	m = img_dup(&good);
	sec(&m, SNAP_SEC_CATEGORY_NAMES)->length = 8;
	fix_sums(&m);
	EXPECT_BAD(&m, "section CATEGORY_NAMES: length 8 too short for 5 string offsets");
	free(m.p);
	m = img_dup(&good);
	sec(&m, SNAP_SEC_ITEM_INDEX)->length -= 16;
	fix_sums(&m);
	EXPECT_BAD(&m, "section ITEM_INDEX: length 240 is not a power-of-two number of slots");
	free(m.p);
	m = img_dup(&good);
	sec(&m, SNAP_SEC_USER_INDEX)->length = 64;   /* 4 slots < 2 * 3 users */
	rebuild_index(&m, SNAP_SEC_USER_IDS, SNAP_SEC_USER_INDEX, N_USERS);
	fix_sums(&m);
	EXPECT_BAD(&m, "section USER_INDEX: length 64 is not a power-of-two number of slots >= 2 * 3");
	free(m.p);

	/* String tables. */
	m = img_dup(&good);
	{
		uint32_t *off = sec_ptr(&m, SNAP_SEC_ITEM_IDS);
		off[2] = off[3] + 1;
	}
	fix_sums(&m);
	EXPECT_BAD(&m, "section ITEM_IDS: string offsets not monotonic at string 3");
	free(m.p);
	m = img_dup(&good);
	((uint32_t *)sec_ptr(&m, SNAP_SEC_ITEM_TITLES))[0] = 1;
	fix_sums(&m);
	EXPECT_BAD(&m, "section ITEM_TITLES: first string offset 1");
	free(m.p);

	/* Hash index. */
	m = img_dup(&good);
	{
		struct snap_hash_slot *sl = sec_ptr(&m, SNAP_SEC_ITEM_INDEX);
		while (sl->index == SNAP_EMPTY_SLOT)
			sl++;
		sl->index = N_ITEMS;
	}
	fix_sums(&m);
	EXPECT_BAD(&m, "section ITEM_INDEX: slot");
	EXPECT_BAD(&m, "points to entry 7 past count 7");
	free(m.p);
	m = img_dup(&good);
	{
		struct snap_hash_slot *sl = sec_ptr(&m, SNAP_SEC_USER_INDEX);
		while (sl->index != SNAP_EMPTY_SLOT)
			sl++;
		sl->index = 1;
	}
	fix_sums(&m);
	EXPECT_BAD(&m, "section USER_INDEX: 4 slots used, expected 3");
	free(m.p);
	m = img_dup(&good);
	{   /* one entry twice, another not at all: drop an entry that ends its
	     * run (nothing else depends on it), then copy entry 1 to the end of
	     * its own run, so both copies are reachable */
		struct snap_hash_slot *sl = sec_ptr(&m, SNAP_SEC_ITEM_INDEX);
		uint32_t a = 16, x = 16, q;
		for (uint32_t p = 0; p < 16; p++)
			if (sl[p].index == 1)
				a = p;
		for (uint32_t p = 0; p < 16 && x == 16; p++)
			if (sl[p].index != SNAP_EMPTY_SLOT && sl[p].index != 1 &&
			    sl[(p + 1) & 15].index == SNAP_EMPTY_SLOT)
				x = p;
		CHECK(a < 16 && x < 16);
		if (a < 16 && x < 16) {
			sl[x] = (struct snap_hash_slot){ 0, SNAP_EMPTY_SLOT, 0 };
			for (q = a; sl[q].index != SNAP_EMPTY_SLOT; q = (q + 1) & 15)
				;
			sl[q] = sl[a];
		}
	}
	fix_sums(&m);
	EXPECT_BAD(&m, "section ITEM_INDEX: entry 1 indexed twice");
	free(m.p);
	m = img_dup(&good);
	{
		struct snap_hash_slot *sl = sec_ptr(&m, SNAP_SEC_ITEM_INDEX);
		while (sl->index == SNAP_EMPTY_SLOT)
			sl++;
		sl->hash ^= 1ull << 63;   /* same home slot, wrong hash */
	}
	fix_sums(&m);
	EXPECT_BAD(&m, "hash does not match the id of entry");
	free(m.p);
	m = img_dup(&good);
	{   /* move an entry to the free slot just before its home: the probe
	     * would never get there */
		struct snap_hash_slot *sl = sec_ptr(&m, SNAP_SEC_ITEM_INDEX);
		bool moved = false;
		for (uint32_t p = 0; p < 16 && !moved; p++) {
			uint32_t before = (uint32_t)((sl[p].hash - 1) & 15);
			if (sl[p].index == SNAP_EMPTY_SLOT || sl[before].index != SNAP_EMPTY_SLOT)
				continue;
			sl[before] = sl[p];
			sl[p] = (struct snap_hash_slot){ 0, SNAP_EMPTY_SLOT, 0 };
			moved = true;
		}
		CHECK(moved);
	}
	fix_sums(&m);
	EXPECT_BAD(&m, "not reachable from its home slot");
	free(m.p);
	m = img_dup(&good);
	/* "sku-e" (pool bytes 20..25) becomes "sku-a"; the index is rebuilt so
	 * both copies are properly hashed and reachable. */
	memcpy((char *)sec_ptr(&m, SNAP_SEC_ITEM_IDS) + 4 * (N_ITEMS + 1) + 24, "a", 1);
	rebuild_index(&m, SNAP_SEC_ITEM_IDS, SNAP_SEC_ITEM_INDEX, N_ITEMS);
	fix_sums(&m);
	EXPECT_BAD(&m, "section ITEM_IDS: duplicate id at entries");
	free(m.p);
	m = img_dup(&good);
	((uint32_t *)sec_ptr(&m, SNAP_SEC_USER_IDS))[1] = 0;   /* u1 -> "", u2 -> "u1u2" */
	rebuild_index(&m, SNAP_SEC_USER_IDS, SNAP_SEC_USER_INDEX, N_USERS);
	fix_sums(&m);
	EXPECT_BAD(&m, "section USER_IDS: entry 0: empty id");
	free(m.p);

	/* Columns. */
	m = img_dup(&good);
	((uint32_t *)sec_ptr(&m, SNAP_SEC_ITEM_CATEGORY))[3] = 4;
	fix_sums(&m);
	EXPECT_BAD(&m, "section ITEM_CATEGORY: item 3 has category 4, only 4 categories");
	free(m.p);
	m = img_dup(&good);
	((float *)sec_ptr(&m, SNAP_SEC_ITEM_PRICE))[1] = NAN;
	fix_sums(&m);
	EXPECT_BAD(&m, "section ITEM_PRICE: item 1 is NaN or infinite");
	free(m.p);
	m = img_dup(&good);
	((float *)sec_ptr(&m, SNAP_SEC_ITEM_POPULARITY))[6] = -INFINITY;
	fix_sums(&m);
	EXPECT_BAD(&m, "section ITEM_POPULARITY: item 6 is NaN or infinite");
	free(m.p);
	m = img_dup(&good);
	((uint32_t *)sec_ptr(&m, SNAP_SEC_POPULAR))[1] = N_ITEMS;
	fix_sums(&m);
	EXPECT_BAD(&m, "section POPULAR: entry 1 is item 7, only 7 items");
	free(m.p);
	m = img_dup(&good);
	((uint32_t *)sec_ptr(&m, SNAP_SEC_POPULAR))[4] = 2;
	fix_sums(&m);
	EXPECT_BAD(&m, "section POPULAR: item 2 listed twice");
	free(m.p);

	/* Embeddings. */
	m = img_dup(&good);
	((float *)sec_ptr(&m, SNAP_SEC_ITEM_EMB))[2 * 16 + 1] = NAN;
	fix_sums(&m);
	EXPECT_BAD(&m, "section ITEM_EMB: row 2 dim 1 is NaN or infinite");
	free(m.p);
	m = img_dup(&good);
	((float *)sec_ptr(&m, SNAP_SEC_USER_EMB))[1 * 16 + 0] = INFINITY;
	fix_sums(&m);
	EXPECT_BAD(&m, "section USER_EMB: row 1 dim 0 is NaN or infinite");
	free(m.p);
	m = img_dup(&good);
	((float *)sec_ptr(&m, SNAP_SEC_ITEM_EMB))[6 * 16 + 15] = 1e-30f;
	fix_sums(&m);
	EXPECT_BAD(&m, "section ITEM_EMB: row 6 padding not zero");
	free(m.p);

	free(good.p);
}

/* ---- fuzz seed corpus ---- */

static int write_seed(const char *out, const char *name, const struct img *m)
{
	char path[512];
	snprintf(path, sizeof(path), "%s/%s", out, name);
	if (m->size > 8192)
		fprintf(stderr, "warning: seed %s is %zu bytes\n", name, m->size);
	return img_write(path, m->p, m->size);
}

static int build_seed(const struct snapb_input *in, struct img *out)
{
	char path[128], err[256];
	path_of(path, sizeof(path), "seed.snap");
	if (snapb_write(in, path, err, sizeof(err))) {
		fprintf(stderr, "seed: %s\n", err);
		return -1;
	}
	*out = img_read(path);
	unlink(path);
	return out->size ? 0 : -1;
}

static struct snapb_input ann_input(uint32_t quant);

static int write_corpus(const char *out)
{
	struct img m, c;
	int rc = 0;

	/* With the optional sections (ANN index, neighbours, category lists). */
	struct snapb_input ain = ann_input(SNAP_ANN_QUANT_DIM);
	if (build_seed(&ain, &m))
		return 1;
	rc |= write_seed(out, "valid-ann", &m);
	c = img_dup(&m);
	((uint32_t *)sec_ptr(&c, SNAP_SEC_ANN_LIST_ITEMS))[1] = 1000;
	fix_sums(&c);
	rc |= write_seed(out, "bad-ann-items-fixedsum", &c);
	free(c.p);
	free(m.p);

	/* 1 item, dim 1, no users. */
	static const struct snapb_item one[] = { { "only", "The one", "c", 1.0f, 1, true } };
	static const float one_emb[] = { 0.5f };
	struct snapb_input in = { .model_version = "seed-1", .build_time = 1, .dim = 1,
				  .n_items = 1, .items = one, .item_emb = one_emb };
	if (build_seed(&in, &m))
		return 1;
	rc |= write_seed(out, "valid-1item", &m);
	free(m.p);

	/* The unit test catalogue, with users. */
	in = base_input();
	if (build_seed(&in, &m))
		return 1;
	rc |= write_seed(out, "valid-catalogue", &m);

	/* Corrupt variants of it, checksums recomputed where the damage is
	 * behind one so the fuzzer starts past the checksum gate. */
	c = img_dup(&m);
	c.size = m.size - 100;
	rc |= write_seed(out, "bad-truncated", &c);
	free(c.p);
	c = img_dup(&m);
	c.p[0] = 'X';
	rc |= write_seed(out, "bad-magic", &c);
	free(c.p);
	c = img_dup(&m);
	c.p[sec(&c, SNAP_SEC_ITEM_EMB)->offset + 7] ^= 0x40;
	rc |= write_seed(out, "bad-emb-checksum", &c);
	free(c.p);
	c = img_dup(&m);
	((uint32_t *)sec_ptr(&c, SNAP_SEC_ITEM_CATEGORY))[0] = 1000;
	fix_sums(&c);
	rc |= write_seed(out, "bad-category-fixedsum", &c);
	free(c.p);
	c = img_dup(&m);
	((uint32_t *)sec_ptr(&c, SNAP_SEC_POPULAR))[0] = 1000;
	fix_sums(&c);
	rc |= write_seed(out, "bad-popular-fixedsum", &c);
	free(c.p);
	c = img_dup(&m);
	{
		struct snap_hash_slot *sl = sec_ptr(&c, SNAP_SEC_ITEM_INDEX);
		while (sl->index == SNAP_EMPTY_SLOT)
			sl++;
		sl->index = 1000;
	}
	fix_sums(&c);
	rc |= write_seed(out, "bad-index-fixedsum", &c);
	free(c.p);
	c = img_dup(&m);
	((uint32_t *)sec_ptr(&c, SNAP_SEC_ITEM_IDS))[3] = 1000;
	fix_sums(&c);
	rc |= write_seed(out, "bad-stroff-fixedsum", &c);
	free(c.p);
	c = img_dup(&m);
	sec(&c, SNAP_SEC_ITEM_PRICE)->offset = sec(&c, SNAP_SEC_ITEM_CATEGORY)->offset;
	fix_sums(&c);
	rc |= write_seed(out, "bad-overlap-fixedsum", &c);
	free(c.p);
	free(m.p);

	/* No popularity, dim 17 (stride 32, 15 padding floats), popular_k 3. */
	in = base_input();
	static float emb17[N_ITEMS * 17];
	for (int i = 0; i < N_ITEMS * 17; i++)
		emb17[i] = (float)(i % 13) - 6.0f;
	in.dim = 17;
	in.item_emb = emb17;
	in.n_users = 0;
	in.item_popularity = NULL;
	in.popular_k = 3;
	if (build_seed(&in, &m))
		return 1;
	rc |= write_seed(out, "valid-dim17", &m);
	free(m.p);
	return rc ? 1 : 0;
}

static void cleanup_dir(void)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	char path[512];
	while (d && (e = readdir(d))) {
		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
		unlink(path);
	}
	if (d)
		closedir(d);
	rmdir(dir);
}

/* ---- optional sections: ANN index, neighbours, category popularity ---- */

static const struct snapb_event events[] = {
	{ 1, 1000, 0 }, { 1, 2000, 2 },                  /* user 1: a, c */
	{ 2, 5000, 0 }, { 2, 5500, 2 }, { 2, 6000, 4 },  /* user 2: a, c, e */
	{ 3, 0, 0 }, { 3, 99000000, 5 },                 /* user 3: a ... f, far apart */
};

static struct snapb_input ann_input(uint32_t quant)
{
	struct snapb_input in = base_input();
	in.ann_enabled = true;
	in.ann = (struct ann_build_params){ .nlist = 2, .seed = 3, .quant = quant };
	in.neighbors_k = 8;    /* more than the 6 other items: rows end in padding */
	in.events = events;
	in.n_events = ARRAY_SIZE(events);
	return in;
}

/* Drops section `id` from the table (its bytes stay, unreferenced). */
static void drop_section(struct img *m, uint32_t id)
{
	struct snap_header *h = hdr(m);
	struct snap_section_entry *e = sec(m, id);
	*e = h->sections[h->n_sections - 1];
	memset(&h->sections[--h->n_sections], 0, sizeof(*e));
}

static void test_optional_round_trip(void)
{
	char path[128], err[256] = "";
	path_of(path, sizeof(path), "ann.snap");
	struct snapb_input in = ann_input(SNAP_ANN_QUANT_DIM);
	CHECK(snapb_write(&in, path, err, sizeof(err)) == 0);
	struct snap *s = NULL;
	CHECK(snap_open(path, &s, err, sizeof(err)) == 0);
	unlink(path);
	if (!s) {
		fprintf(stderr, "snap_open: %s\n", err);
		return;
	}
	CHECK(s->ann.nlist == 2 && s->ann.dim == DIM && s->ann.code_dim == 32);
	CHECK(s->ann.list_off[0] == 0 && s->ann.list_off[2] == N_ITEMS);
	/* Categories: books {a, c}, music {b, f}, "" {d}, toys {e, x}; only
	 * servable items, by popularity, ties by index. */
	CHECK(s->cat_popular_off != NULL);
	static const uint32_t off[] = { 0, 2, 3, 3, 5 }, items_want[] = { 2, 0, 5, 4, 6 };
	for (uint32_t c = 0; c <= 4 && s->cat_popular_off; c++)
		CHECK(s->cat_popular_off[c] == off[c]);
	for (uint32_t j = 0; j < 5 && s->cat_popular_off; j++)
		CHECK(s->cat_popular[j] == items_want[j]);
	/* Neighbours of a (0): c twice co-visited, e once; f is outside the
	 * window; then embedding neighbours; never a itself. */
	CHECK(s->neighbors_k == 8);
	if (s->neighbors_k == 8) {
		const struct snap_neighbor *r = snap_item_neighbors(s, 0);
		CHECK(r[0].item == 2 && r[1].item == 4);
		uint32_t used = 0;
		for (uint32_t j = 0; j < 8; j++) {
			if (r[j].item == SNAP_EMPTY_SLOT)
				break;
			CHECK(r[j].item != 0 && r[j].item < N_ITEMS);
			used++;
		}
		CHECK(used == 6);
		CHECK(r[6].item == SNAP_EMPTY_SLOT && r[7].item == SNAP_EMPTY_SLOT);
		/* The embedding top-up is by inner product, best first. */
		for (uint32_t j = 3; j < used; j++)
			CHECK(r[j - 1].score >= r[j].score);
		/* e (4): a and c once each (user 2), a first by index. */
		const struct snap_neighbor *re = snap_item_neighbors(s, 4);
		CHECK(re[0].item == 0 && re[1].item == 2);
	}
	snap_close(s);
}

static void test_optional_corruptions(void)
{
	char path[128], err[256] = "";
	path_of(path, sizeof(path), "ann.snap");
	struct snapb_input in = ann_input(SNAP_ANN_QUANT_DIM);
	CHECK(snapb_write(&in, path, err, sizeof(err)) == 0);
	struct img good = img_read(path);
	in = ann_input(SNAP_ANN_QUANT_VECTOR);
	CHECK(snapb_write(&in, path, err, sizeof(err)) == 0);
	struct img vgood = img_read(path);
	unlink(path);
	if (!good.size || !vgood.size || !sec(&good, SNAP_SEC_ANN_PARAMS) || !sec(&vgood, SNAP_SEC_ANN_CODE_SCALES)) {
		CHECK(!"optional sections written");
		return;
	}
	struct img m;
	struct snap_ann_params *ap;
	uint32_t *u;

	/* A snapshot without the optional sections still loads. */
	m = img_dup(&good);
	static const uint32_t optional[] = { SNAP_SEC_ANN_PARAMS, SNAP_SEC_ANN_CENTROIDS, SNAP_SEC_ANN_LIST_OFFSETS,
					     SNAP_SEC_ANN_LIST_ITEMS, SNAP_SEC_ANN_CODES, SNAP_SEC_ITEM_NEIGHBORS,
					     SNAP_SEC_CATEGORY_POPULAR };
	for (size_t i = 0; i < ARRAY_SIZE(optional); i++)
		drop_section(&m, optional[i]);
	fix_sums(&m);
	struct snap sv;
	CHECK(snap_validate(m.p, m.size, &sv, err, sizeof(err)) == 0);
	CHECK(sv.ann.nlist == 0 && sv.neighbors_k == 0 && sv.cat_popular_off == NULL);
	free(m.p);

	/* The index is all or nothing. */
	m = img_dup(&good);
	drop_section(&m, SNAP_SEC_ANN_CODES);
	fix_sums(&m);
	EXPECT_BAD(&m, "section ANN_CODES: missing (the other ANN sections are present)");
	free(m.p);

#define PARAMS_CASE(stmt, msg)                                   \
	do {                                                     \
		m = img_dup(&good);                              \
		ap = sec_ptr(&m, SNAP_SEC_ANN_PARAMS);           \
		stmt;                                            \
		fix_sums(&m);                                    \
		EXPECT_BAD(&m, msg);                             \
		free(m.p);                                       \
	} while (0)
	PARAMS_CASE(ap->nlist = 0, "section ANN_PARAMS: nlist 0 out of range 1..7");
	PARAMS_CASE(ap->nlist = 8, "section ANN_PARAMS: nlist 8 out of range 1..7");
	PARAMS_CASE(ap->code_dim = 16, "section ANN_PARAMS: code_dim 16, dim 5 needs 32");
	PARAMS_CASE(ap->quant = 9, "section ANN_PARAMS: unknown quantiser 9");
	PARAMS_CASE(ap->max_list += 1, "section ANN_PARAMS: max_list");
	PARAMS_CASE(((float *)(ap + 1))[3] = NAN, "section ANN_PARAMS: quantiser value 3 is NaN or infinite");
	PARAMS_CASE(((float *)(ap + 1))[1] = -1.0f, "section ANN_PARAMS: dimension 1 has a negative scale");
	PARAMS_CASE(((float *)(ap + 1))[32 + 7] = 1.0f, "section ANN_PARAMS: padding dimension 7 not zero");
	PARAMS_CASE(ap->quant = SNAP_ANN_QUANT_VECTOR, "section ANN_CODE_SCALES: missing (the quantiser is per-vector)");

	/* Centroids: eight lanes per block, nlist 2 leaves lanes 2..7 padding. */
	m = img_dup(&good);
	((float *)sec_ptr(&m, SNAP_SEC_ANN_CENTROIDS))[3 * 8 + 1] = INFINITY;
	fix_sums(&m);
	EXPECT_BAD(&m, "section ANN_CENTROIDS: value 25 is NaN or infinite");
	free(m.p);
	m = img_dup(&good);
	((float *)sec_ptr(&m, SNAP_SEC_ANN_CENTROIDS))[4 * 8 + 2] = 0.5f;
	fix_sums(&m);
	EXPECT_BAD(&m, "section ANN_CENTROIDS: padding lane 2 not zero");
	free(m.p);
	m = img_dup(&good);
	sec(&m, SNAP_SEC_ANN_CENTROIDS)->length -= 64;
	fix_sums(&m);
	EXPECT_BAD(&m, "section ANN_CENTROIDS: length 96, counts imply 160");
	free(m.p);

	/* List offsets. */
#define LIST_CASE(sid, stmt, msg)                                \
	do {                                                     \
		m = img_dup(&good);                              \
		u = sec_ptr(&m, sid);                            \
		stmt;                                            \
		fix_sums(&m);                                    \
		EXPECT_BAD(&m, msg);                             \
		free(m.p);                                       \
	} while (0)
	LIST_CASE(SNAP_SEC_ANN_LIST_OFFSETS, u[0] = 1, "section ANN_LIST_OFFSETS: first offset 1, expected 0");
	LIST_CASE(SNAP_SEC_ANN_LIST_OFFSETS, u[1] = 9, "section ANN_LIST_OFFSETS: offsets not monotonic at list 2");
	LIST_CASE(SNAP_SEC_ANN_LIST_OFFSETS, u[2] = 6, "section ANN_LIST_OFFSETS: lists end at 6, expected n_items 7");
	/* List items: a permutation, ascending inside each list. */
	LIST_CASE(SNAP_SEC_ANN_LIST_ITEMS, u[0] = 99, "section ANN_LIST_ITEMS: position 0 is item 99, only 7 items");
	LIST_CASE(SNAP_SEC_ANN_LIST_ITEMS, u[6] = u[0], "listed twice");
	LIST_CASE(SNAP_SEC_ANN_LIST_ITEMS, { uint32_t t = u[0]; u[0] = u[1]; u[1] = t; },
		  "not in ascending item order");
	/* Codes: padding bytes are read by the kernel. */
	m = img_dup(&good);
	((int8_t *)sec_ptr(&m, SNAP_SEC_ANN_CODES))[2 * 32 + 20] = 1;
	fix_sums(&m);
	EXPECT_BAD(&m, "section ANN_CODES: position 2 padding byte 20 not zero");
	free(m.p);
	m = img_dup(&good);
	sec(&m, SNAP_SEC_ANN_CODES)->length = 6 * 32;
	fix_sums(&m);
	EXPECT_BAD(&m, "section ANN_CODES: length 192, counts imply 224");
	free(m.p);

	/* Per-vector codes: scales finite, non-negative; not with per-dim. */
	m = img_dup(&vgood);
	((float *)sec_ptr(&m, SNAP_SEC_ANN_CODE_SCALES))[3] = NAN;
	fix_sums(&m);
	EXPECT_BAD(&m, "section ANN_CODE_SCALES: position 3 is NaN or infinite");
	free(m.p);
	m = img_dup(&vgood);
	((float *)sec_ptr(&m, SNAP_SEC_ANN_CODE_SCALES))[1] = -2.0f;
	fix_sums(&m);
	EXPECT_BAD(&m, "section ANN_CODE_SCALES: position 1 has a negative scale");
	free(m.p);
	m = img_dup(&vgood);
	((struct snap_ann_params *)sec_ptr(&m, SNAP_SEC_ANN_PARAMS))->quant = SNAP_ANN_QUANT_DIM;
	fix_sums(&m);
	EXPECT_BAD(&m, "section ANN_CODE_SCALES: present but the quantiser is per-dimension");
	free(m.p);

	/* Neighbours: header k, then 8 entries per item. */
#define NB(mm) ((struct snap_neighbor *)((uint8_t *)sec_ptr(&(mm), SNAP_SEC_ITEM_NEIGHBORS) + 64))
	m = img_dup(&good);
	((struct snap_neighbors_header *)sec_ptr(&m, SNAP_SEC_ITEM_NEIGHBORS))->k = 0;
	fix_sums(&m);
	EXPECT_BAD(&m, "section ITEM_NEIGHBORS: k 0 out of range 1..1024");
	free(m.p);
	m = img_dup(&good);
	((struct snap_neighbors_header *)sec_ptr(&m, SNAP_SEC_ITEM_NEIGHBORS))->k = 9;
	fix_sums(&m);
	EXPECT_BAD(&m, "section ITEM_NEIGHBORS: length 512, counts imply 568");
	free(m.p);
	m = img_dup(&good);
	NB(m)[2 * 8 + 1].item = 2;
	fix_sums(&m);
	EXPECT_BAD(&m, "section ITEM_NEIGHBORS: item 2 is its own neighbour");
	free(m.p);
	m = img_dup(&good);
	NB(m)[3 * 8 + 0].item = 7;
	fix_sums(&m);
	EXPECT_BAD(&m, "section ITEM_NEIGHBORS: item 3 neighbour 0 is item 7, only 7 items");
	free(m.p);
	m = img_dup(&good);
	NB(m)[1 * 8 + 2].score = NAN;
	fix_sums(&m);
	EXPECT_BAD(&m, "section ITEM_NEIGHBORS: item 1 neighbour 2 score is NaN or infinite");
	free(m.p);
	m = img_dup(&good);
	NB(m)[5 * 8 + 3].item = NB(m)[5 * 8 + 1].item;
	fix_sums(&m);
	EXPECT_BAD(&m, "section ITEM_NEIGHBORS: item 5 lists neighbour");
	free(m.p);
	m = img_dup(&good);
	NB(m)[0 * 8 + 7].item = 1;
	fix_sums(&m);
	EXPECT_BAD(&m, "section ITEM_NEIGHBORS: item 0: entry 7 after the padding");
	free(m.p);

	/* Category popularity: offsets[5] then the items. */
	LIST_CASE(SNAP_SEC_CATEGORY_POPULAR, u[0] = 1, "section CATEGORY_POPULAR: first offset 1, expected 0");
	LIST_CASE(SNAP_SEC_CATEGORY_POPULAR, u[2] = 1, "section CATEGORY_POPULAR: offsets not monotonic at category 2");
	LIST_CASE(SNAP_SEC_CATEGORY_POPULAR, u[4] = 4, "section CATEGORY_POPULAR: length 40, offsets imply 36");
	LIST_CASE(SNAP_SEC_CATEGORY_POPULAR, u[5 + 1] = 70, "section CATEGORY_POPULAR: category 0 entry 1 is item 70");
	LIST_CASE(SNAP_SEC_CATEGORY_POPULAR, u[5 + 1] = 5, "section CATEGORY_POPULAR: category 0 lists item 5 of category 1");
	LIST_CASE(SNAP_SEC_CATEGORY_POPULAR, u[5 + 1] = 2, "section CATEGORY_POPULAR: item 2 listed twice");
#undef NB
#undef LIST_CASE
#undef PARAMS_CASE
	free(good.p);
	free(vgood.p);
}

int main(int argc, char **argv)
{
	snprintf(dir, sizeof(dir), "/tmp/test_snap.XXXXXX");
	if (!mkdtemp(dir)) {
		perror("mkdtemp");
		return 77;
	}
	if (argc == 3 && !strcmp(argv[1], "--write-corpus")) {
		int rc = write_corpus(argv[2]);
		cleanup_dir();
		return rc;
	}
	test_event_weight();
	test_round_trip();
	test_variants();
	test_builder_refusals();
	test_corruptions();
	test_optional_round_trip();
	test_optional_corruptions();
	cleanup_dir();
	if (failures) {
		fprintf(stderr, "%d check(s) failed\n", failures);
		return 1;
	}
	printf("test_snap: all checks passed\n");
	return 0;
}
