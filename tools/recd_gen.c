/* recd_gen.c: `recd-gen`, writes a synthetic dataset (engine/gen) as the
 * plain files an ML pipeline would hand over: items.jsonl, users.txt,
 * interactions.csv and float32 .npy embeddings — exactly what
 * `recd-snapshot build` reads, so demo data and real data take one path.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include "gen/gen.h"
#include "snap/snap_format.h"

_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, ".npy '<f4' is written from memory as is");

static const char usage_text[] =
	"usage: recd-gen --out DIR [options]\n"
	"Write a deterministic synthetic e-commerce dataset into DIR:\n"
	"  items.jsonl, item_embeddings.npy, users.txt, user_embeddings.npy,\n"
	"  interactions.csv (user_id,item_id,type,ts in ms)\n"
	"options:\n"
	"  --items N                  catalogue size (default 10000)\n"
	"  --users N                  known users (default 1000)\n"
	"  --categories N             categories (default max(4, items/500), <= 1000)\n"
	"  --dim D                    embedding dimension (default 64)\n"
	"  --seed S                   PRNG seed (default 1); same seed, same bytes\n"
	"  --interactions-per-user K  mean events per user (default 20)\n"
	"  --text-embeddings          also write item_embeddings.txt and\n"
	"                             user_embeddings.txt (\"id v1 ... vD\" lines)\n"
	"  -h, --help                 this text\n";

static char errbuf[512];

/* Parse an unsigned decimal option value within [lo, hi]. */
static int parse_u64(const char *opt, const char *s, uint64_t lo, uint64_t hi, uint64_t *out)
{
	char *end;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno || end == s || *end || s[0] == '-' || v < lo || v > hi) {
		fprintf(stderr, "recd-gen: %s: expected an integer in %llu..%llu, got '%s'\n", opt,
			(unsigned long long)lo, (unsigned long long)hi, s);
		return -EINVAL;
	}
	*out = v;
	return 0;
}

static void json_put_str(FILE *f, const char *s)
{
	fputc('"', f);
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		if (c == '"' || c == '\\')
			fprintf(f, "\\%c", c);
		else if (c < 0x20)
			fprintf(f, "\\u%04x", c);
		else
			fputc(c, f);
	}
	fputc('"', f);
}

static FILE *open_out(const char *dir, const char *name, char *path, size_t pathlen)
{
	snprintf(path, pathlen, "%s/%s", dir, name);
	FILE *f = fopen(path, "w");
	if (!f)
		fprintf(stderr, "recd-gen: %s: %s\n", path, strerror(errno));
	else
		setvbuf(f, NULL, _IOFBF, 1 << 20);
	return f;
}

static int close_out(FILE *f, const char *path)
{
	bool bad = ferror(f);
	if (fclose(f) != 0 || bad) {
		fprintf(stderr, "recd-gen: %s: write failed: %s\n", path, strerror(errno));
		return -EIO;
	}
	return 0;
}

/* NPY v1.0: magic, version, u16 header length, a Python dict literal
 * padded with spaces and ended by '\n' so the data starts on a 64-byte
 * boundary, then the raw little-endian floats. */
static int write_npy(const char *dir, const char *name, const float *v, uint64_t rows, uint32_t cols)
{
	char path[4096], dict[128];
	FILE *f = open_out(dir, name, path, sizeof(path));
	if (!f)
		return -EIO;
	int n = snprintf(dict, sizeof(dict),
			 "{'descr': '<f4', 'fortran_order': False, 'shape': (%llu, %u), }",
			 (unsigned long long)rows, cols);
	size_t total = 10 + (size_t)n + 1;
	size_t pad = (64 - total % 64) % 64;
	uint16_t hlen = (uint16_t)(n + pad + 1);
	fwrite("\x93NUMPY\x01\x00", 1, 8, f);
	fputc(hlen & 0xff, f);
	fputc(hlen >> 8, f);
	fwrite(dict, 1, (size_t)n, f);
	for (size_t k = 0; k < pad; k++)
		fputc(' ', f);
	fputc('\n', f);
	if (rows)
		fwrite(v, sizeof(float) * cols, rows, f);
	return close_out(f, path);
}

static int write_text_emb(const char *dir, const char *name, const float *v, uint64_t rows,
			  uint32_t cols, const char *(*id_of)(const struct gen_data *, uint64_t),
			  const struct gen_data *d)
{
	char path[4096];
	FILE *f = open_out(dir, name, path, sizeof(path));
	if (!f)
		return -EIO;
	for (uint64_t r = 0; r < rows; r++) {
		fputs(id_of(d, r), f);
		for (uint32_t k = 0; k < cols; k++)
			fprintf(f, " %.9g", v[r * cols + k]);  /* 9 digits: float round-trips */
		fputc('\n', f);
	}
	return close_out(f, path);
}

static const char *item_id_of(const struct gen_data *d, uint64_t r) { return d->items[r].id; }
static const char *user_id_of(const struct gen_data *d, uint64_t r) { return d->user_ids[r]; }

static int write_dataset(const struct gen_data *d, const char *dir, bool text)
{
	char path[4096];
	FILE *f;

	if (!(f = open_out(dir, "items.jsonl", path, sizeof(path))))
		return -EIO;
	for (uint32_t i = 0; i < d->n_items; i++) {
		const struct snapb_item *it = &d->items[i];
		fputs("{\"id\":", f);
		json_put_str(f, it->id);
		fputs(",\"title\":", f);
		json_put_str(f, it->title);
		fputs(",\"category\":", f);
		json_put_str(f, it->category);
		fprintf(f, ",\"price\":%.2f,\"stock\":%u}\n", it->price, it->stock);
	}
	if (close_out(f, path))
		return -EIO;

	if (!(f = open_out(dir, "users.txt", path, sizeof(path))))
		return -EIO;
	for (uint32_t u = 0; u < d->n_users; u++) {
		fputs(d->user_ids[u], f);
		fputc('\n', f);
	}
	if (close_out(f, path))
		return -EIO;

	if (!(f = open_out(dir, "interactions.csv", path, sizeof(path))))
		return -EIO;
	fputs("user_id,item_id,type,ts\n", f);
	for (uint64_t k = 0; k < d->n_events; k++) {
		const struct gen_event *e = &d->events[k];
		fprintf(f, "%s,%s,%s,%llu\n", d->user_ids[e->user], d->items[e->item].id,
			gen_event_type_name(e->type), (unsigned long long)e->ts_ms);
	}
	if (close_out(f, path))
		return -EIO;

	if (write_npy(dir, "item_embeddings.npy", d->item_emb, d->n_items, d->dim) ||
	    write_npy(dir, "user_embeddings.npy", d->user_emb, d->n_users, d->dim))
		return -EIO;
	if (text && (write_text_emb(dir, "item_embeddings.txt", d->item_emb, d->n_items, d->dim,
				    item_id_of, d) ||
		     write_text_emb(dir, "user_embeddings.txt", d->user_emb, d->n_users, d->dim,
				    user_id_of, d)))
		return -EIO;
	return 0;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "out", required_argument, NULL, 'o' },
		{ "items", required_argument, NULL, 'i' },
		{ "users", required_argument, NULL, 'u' },
		{ "categories", required_argument, NULL, 'c' },
		{ "dim", required_argument, NULL, 'd' },
		{ "seed", required_argument, NULL, 's' },
		{ "interactions-per-user", required_argument, NULL, 'k' },
		{ "text-embeddings", no_argument, NULL, 't' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	struct gen_params p = {
		.seed = 1, .n_items = 10000, .n_users = 1000, .dim = 64, .out_of_stock_share = -1,
	};
	const char *dir = NULL;
	bool text = false;
	uint64_t v;
	int c;

	while ((c = getopt_long(argc, argv, "o:h", opts, NULL)) != -1) {
		switch (c) {
		case 'o': dir = optarg; break;
		case 'i':
			if (parse_u64("--items", optarg, 1, UINT32_MAX / 2, &v))
				return 2;
			p.n_items = (uint32_t)v;
			break;
		case 'u':
			if (parse_u64("--users", optarg, 0, UINT32_MAX / 2, &v))
				return 2;
			p.n_users = (uint32_t)v;
			break;
		case 'c':
			if (parse_u64("--categories", optarg, 1, UINT32_MAX / 2, &v))
				return 2;
			p.n_categories = (uint32_t)v;
			break;
		case 'd':
			if (parse_u64("--dim", optarg, 1, SNAP_MAX_DIM, &v))
				return 2;
			p.dim = (uint32_t)v;
			break;
		case 's':
			if (parse_u64("--seed", optarg, 0, UINT64_MAX, &v))
				return 2;
			p.seed = v;
			break;
		case 'k':
			if (parse_u64("--interactions-per-user", optarg, 1, 100000, &v))
				return 2;
			p.interactions_per_user = (uint32_t)v;
			break;
		case 't': text = true; break;
		case 'h': fputs(usage_text, stdout); return 0;
		default: fputs(usage_text, stderr); return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "recd-gen: unexpected argument '%s'\n%s", argv[optind], usage_text);
		return 2;
	}
	if (!dir) {
		fprintf(stderr, "recd-gen: --out DIR is required\n%s", usage_text);
		return 2;
	}
	if (mkdir(dir, 0755) != 0 && errno != EEXIST) {
		fprintf(stderr, "recd-gen: %s: %s\n", dir, strerror(errno));
		return 1;
	}

	uint64_t t0 = now_ns();
	struct gen_data d;
	if (gen_generate(&p, &d, errbuf, sizeof(errbuf)) != 0) {
		fprintf(stderr, "recd-gen: %s\n", errbuf);
		return 1;
	}
	int rc = write_dataset(&d, dir, text);
	if (rc == 0)
		printf("recd-gen: %u items in %u categories, %u users, %llu interactions, dim %u, "
		       "seed %llu -> %s (%.1f s)\n",
		       d.n_items, d.n_categories, d.n_users, (unsigned long long)d.n_events, d.dim,
		       (unsigned long long)d.params.seed, dir, (double)(now_ns() - t0) / 1e9);
	gen_free(&d);
	return rc ? 1 : 0;
}
