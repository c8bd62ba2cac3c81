/* recd_import_retail.c: `recd-import-retail`, turns the UCI Online Retail
 * invoice lines (data/online-retail/online_retail.csv.gz) into the files
 * `recd-snapshot build` and `recd-train` read: items.jsonl, users.txt,
 * interactions.csv (user_id,item_id,type,ts) and regions.csv. With
 * --before / --after it keeps one side of a temporal split.
 *
 * Everything it writes is a pure function of the input and the options
 * (sorted outputs, documented tie-breaks), so two runs give the same bytes.
 */
#include <errno.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>
#include "core/common.h"
#include "quality_util.h"

static const char usage_text[] =
	"usage: recd-import-retail [options] [FILE]\n"
	"Read Online Retail invoice lines (CSV, gzipped or not; default\n"
	"data/online-retail/online_retail.csv.gz) and write into --out DIR:\n"
	"  items.jsonl       id = StockCode, title = its most frequent Description\n"
	"                    (ties: bytewise smallest), category (below), price =\n"
	"                    the lower median UnitPrice of its kept rows, stock = --stock\n"
	"  users.txt         CustomerID, sorted\n"
	"  interactions.csv  user_id,item_id,type,ts: one 'purchase' per kept row,\n"
	"                    ts = InvoiceDate read as UTC, in ms; sorted by ts (stable)\n"
	"  regions.csv       user_id,region: the customer's most frequent Country\n"
	"                    (ties: bytewise smallest)\n"
	"Only items and users with a kept row in the window are written.\n"
	"Rows are skipped, each under the first rule that applies, when: the\n"
	"InvoiceNo starts with 'C' (cancellation); Quantity <= 0; CustomerID is empty;\n"
	"the StockCode does not start with 5 digits (POST, M, C2, DOT, BANK CHARGES,\n"
	"PADS...: postage, fees and adjustments; --all-codes keeps them); the\n"
	"InvoiceDate is outside [--after, --before).\n"
	"Category of a title: upper-case it, delete apostrophes, split into runs of\n"
	"ASCII letters (anything else separates words), make each word singular\n"
	"(-IES -> -Y; -XES, -SHES, -CHES, -SSES lose -ES; else a final S goes\n"
	"unless the word ends in SS, US, IS or AS or has under 4 letters), drop\n"
	"one-letter words and the words of the drop list (as written or singular:\n"
	"colours, sizes, patterns, VINTAGE, SET, OF, ...: --list-drop-words prints\n"
	"it), take the LAST remaining word and lower-case it:\n"
	"'SET OF 3 CAKE TINS PANTRY DESIGN' -> 'pantry', 'JUMBO BAG PINK VINTAGE\n"
	"PAISLEY' -> 'bag'. Nothing left: 'other'. Titles are trimmed first.\n"
	"options:\n"
	"  --out DIR          output directory (created; required)\n"
	"  --after DATE       keep rows with InvoiceDate >= DATE\n"
	"  --before DATE      keep rows with InvoiceDate < DATE\n"
	"                     DATE: YYYY-MM-DD[ HH:MM[:SS]], UTC like the ts\n"
	"  --stock N          stock of every item (default 100)\n"
	"  --all-codes        keep non-product stock codes\n"
	"  --list-drop-words  print the drop list and exit\n"
	"  -h, --help         this text\n";

/* ---- categories ---- */

static const char *const drop_words[] = {
	/* colours */
	"RED", "BLUE", "GREEN", "PINK", "WHITE", "BLACK", "CREAM", "IVORY", "GOLD", "SILVER", "PURPLE",
	"ORANGE", "YELLOW", "BROWN", "GREY", "GRAY", "TURQUOISE", "LILAC", "NAVY", "AQUA", "TEAL", "BEIGE",
	"MAUVE", "LAVENDER", "COLOUR", "COLOURS", "COLOURED", "COLOURFUL", "MULTICOLOUR", "PASTEL",
	/* sizes */
	"SMALL", "LARGE", "MEDIUM", "MINI", "JUMBO", "BIG", "GIANT", "TALL", "TINY", "CM", "MM", "SIZE",
	"SIZES", "LGE", "SML", "MED", "XL", "XXL",
	/* patterns */
	"DESIGN", "DESIGNS", "RETROSPOT", "POLKADOT", "POLKA", "DOT", "DOTS", "DOTTY", "SPOT", "SPOTS",
	"SPOTTY", "STRIPE", "STRIPES", "STRIPED", "STRIPEY", "PAISLEY", "FLORAL", "ASSORTED",
	"VINTAGE", "RETRO",
	/* grammar and counts */
	"OF", "SET", "SETS", "AND", "WITH", "IN", "THE", "FOR", "TO", "ON", "OR", "PACK", "PCS", "PIECE",
	"PIECES",
	NULL,
};

static bool dropped(const char *w, size_t n)
{
	if (n < 2)
		return true;
	for (size_t k = 0; drop_words[k]; k++)
		if (strlen(drop_words[k]) == n && !memcmp(drop_words[k], w, n))
			return true;
	return false;
}

static bool ends(const char *w, size_t n, const char *suf)
{
	size_t l = strlen(suf);
	return n >= l && !memcmp(w + n - l, suf, l);
}

/* The singular of an upper-case word, in place; returns its length. */
static size_t singular(char *w, size_t l)
{
	if (l >= 5 && ends(w, l, "IES")) {
		w[l - 3] = 'Y';
		return l - 2;
	}
	if (ends(w, l, "XES") || ends(w, l, "SHES") || ends(w, l, "CHES") || ends(w, l, "SSES"))
		return l - 2;
	if (l >= 4 && w[l - 1] == 'S' && !ends(w, l, "SS") && !ends(w, l, "US") && !ends(w, l, "IS") &&
	    !ends(w, l, "AS"))
		return l - 1;
	return l;
}

/* The category of a title into out (lower case, NUL-terminated). */
static void category_of(const char *title, char *out, size_t outlen)
{
	char up[1024];
	size_t n = 0;
	for (const char *p = title; *p && n < sizeof(up) - 1; p++) {
		unsigned char c = (unsigned char)*p;
		if (c == '\'')
			continue;
		if (c >= 'a' && c <= 'z')
			c = (unsigned char)(c - 'a' + 'A');
		up[n++] = (c >= 'A' && c <= 'Z') ? (char)c : ' ';
	}
	up[n] = 0;
	char best[1024];
	size_t best_len = 0;
	for (size_t i = 0; i < n;) {
		while (i < n && up[i] == ' ')
			i++;
		size_t j = i;
		while (j < n && up[j] != ' ')
			j++;
		if (j > i && !dropped(up + i, j - i)) {
			char w[1024];
			memcpy(w, up + i, j - i);
			size_t l = singular(w, j - i);
			if (!dropped(w, l))
				memcpy(best, w, l), best_len = l;
		}
		i = j;
	}
	if (!best_len) {
		snprintf(out, outlen, "other");
		return;
	}
	size_t m = MIN(best_len, outlen - 1);
	for (size_t k = 0; k < m; k++)
		out[k] = (char)(best[k] - 'A' + 'a');
	out[m] = 0;
}

/* ---- input ---- */

static void read_gz(struct qu_input *in, const char *path)
{
	gzFile g = gzopen(path, "rb");
	if (!g)
		qu_die_at(path, 0, "%s", errno ? strerror(errno) : "cannot open");
	gzbuffer(g, 1 << 20);
	size_t cap = 1 << 24, len = 0;
	char *buf = qu_malloc(cap + 1);
	for (;;) {
		if (cap - len < (1 << 20)) {
			cap *= 2;
			buf = qu_realloc(buf, cap + 1);
		}
		int n = gzread(g, buf + len, (unsigned)MIN(cap - len, (size_t)1 << 30));
		if (n < 0) {
			int e;
			const char *msg = gzerror(g, &e);
			qu_die_at(path, 0, "gzip: %s", msg);
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	gzclose(g);
	buf[len] = 0;
	in->path = path;
	in->buf = buf;
	in->len = len;
}

/* ---- kept rows ---- */

struct row {
	uint32_t item, user;
	int64_t ts;
	double price;
	const char *price_s;
	const char *desc;
	const char *country;
	uint64_t seq;              /* file order */
};

struct pair {                  /* (key, string) for the per-item / per-user votes */
	uint32_t key;
	const char *s;
	double v;
	uint64_t seq;
};

static int cmp_pair_str(const void *a, const void *b)
{
	const struct pair *x = a, *y = b;
	if (x->key != y->key)
		return x->key < y->key ? -1 : 1;
	int c = strcmp(x->s, y->s);
	if (c)
		return c;
	return x->seq < y->seq ? -1 : x->seq > y->seq;
}

static int cmp_pair_num(const void *a, const void *b)
{
	const struct pair *x = a, *y = b;
	if (x->key != y->key)
		return x->key < y->key ? -1 : 1;
	if (x->v != y->v)
		return x->v < y->v ? -1 : 1;
	return x->seq < y->seq ? -1 : x->seq > y->seq;
}

/* For each key, the string with the most pairs (ties: smallest); pairs
 * sorted by cmp_pair_str. Empty strings count only when all are empty. */
static void vote(const struct pair *p, size_t n, uint32_t n_keys, const char **out)
{
	for (uint32_t k = 0; k < n_keys; k++)
		out[k] = "";
	size_t i = 0;
	while (i < n) {
		uint32_t key = p[i].key;
		const char *best = NULL;
		size_t best_n = 0;
		while (i < n && p[i].key == key) {
			size_t j = i;
			while (j < n && p[j].key == key && !strcmp(p[j].s, p[i].s))
				j++;
			if (p[i].s[0] && j - i > best_n)
				best = p[i].s, best_n = j - i;
			i = j;
		}
		if (best)
			out[key] = best;
	}
}

static int cmp_str_ptr(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static struct row *sort_rows;
static int cmp_row_ts(const void *a, const void *b)
{
	const struct row *x = &sort_rows[*(const uint32_t *)a], *y = &sort_rows[*(const uint32_t *)b];
	if (x->ts != y->ts)
		return x->ts < y->ts ? -1 : 1;
	return x->seq < y->seq ? -1 : x->seq > y->seq;
}

static void json_str(FILE *f, const char *s)
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

/* A CSV field, quoted when it needs to be. */
static void csv_str(FILE *f, const char *s)
{
	if (!strpbrk(s, ",\"\r\n")) {
		fputs(s, f);
		return;
	}
	fputc('"', f);
	for (; *s; s++) {
		if (*s == '"')
			fputc('"', f);
		fputc(*s, f);
	}
	fputc('"', f);
}

static bool product_code(const char *s)
{
	for (int k = 0; k < 5; k++)
		if (s[k] < '0' || s[k] > '9')
			return false;
	return true;
}

int main(int argc, char **argv)
{
	qu_prog = "recd-import-retail";
	static const struct option opts[] = {
		{ "out", required_argument, NULL, 'o' },
		{ "after", required_argument, NULL, 'a' },
		{ "before", required_argument, NULL, 'b' },
		{ "stock", required_argument, NULL, 's' },
		{ "all-codes", no_argument, NULL, 'A' },
		{ "list-drop-words", no_argument, NULL, 'L' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	const char *out = NULL, *path = "data/online-retail/online_retail.csv.gz";
	int64_t after = INT64_MIN, before = INT64_MAX;
	uint64_t stock = 100;
	bool all_codes = false;
	int c;
	while ((c = getopt_long(argc, argv, "o:h", opts, NULL)) != -1) {
		switch (c) {
		case 'o': out = optarg; break;
		case 'a':
		case 'b':
			if (!qu_parse_date(optarg, strlen(optarg), c == 'a' ? &after : &before)) {
				fprintf(stderr, "recd-import-retail: --%s: expected YYYY-MM-DD[ HH:MM[:SS]], got '%s'\n",
					c == 'a' ? "after" : "before", optarg);
				return QU_EXIT_USAGE;
			}
			break;
		case 's': stock = qu_opt_u64("--stock", optarg, 0, UINT32_MAX); break;
		case 'A': all_codes = true; break;
		case 'L':
			for (size_t k = 0; drop_words[k]; k++)
				printf("%s%s", drop_words[k], drop_words[k + 1] ? " " : "\n");
			return 0;
		case 'h': fputs(usage_text, stdout); return 0;
		default: fputs(usage_text, stderr); return QU_EXIT_USAGE;
		}
	}
	if (optind + 1 < argc) {
		fprintf(stderr, "recd-import-retail: one input FILE at most\n");
		return QU_EXIT_USAGE;
	}
	if (optind < argc)
		path = argv[optind];
	if (!out) {
		fprintf(stderr, "recd-import-retail: --out DIR is required\n(see --help)\n");
		return QU_EXIT_USAGE;
	}
	if (after >= before) {
		fprintf(stderr, "recd-import-retail: --after must be before --before\n");
		return QU_EXIT_USAGE;
	}

	uint64_t t0 = now_ns();
	struct qu_input in;
	read_gz(&in, path);
	struct qu_csv cv;
	qu_csv_init(&cv, path, in.buf, in.len);
	char *f[QU_CSV_MAX_FIELDS];
	size_t fl[QU_CSV_MAX_FIELDS];
	uint64_t line;
	int nh = qu_csv_next(&cv, f, fl, &line);
	if (nh <= 0)
		qu_die_at(path, 0, "empty file");
	static const char *const cols[] = { "InvoiceNo", "StockCode", "Description", "Quantity", "InvoiceDate",
					    "UnitPrice", "CustomerID", "Country" };
	int k[8];
	for (int j = 0; j < 8; j++)
		if ((k[j] = qu_csv_col(f, fl, nh, cols[j])) < 0)
			qu_die_at(path, line, "header has no '%s' column", cols[j]);
	enum { INV, CODE, DESC, QTY, DATE, PRICE, CUST, COUNTRY };

	uint64_t rows = 0, sk_cancel = 0, sk_qty = 0, sk_cust = 0, sk_code = 0, sk_before = 0, sk_after = 0;
	size_t cap = 1 << 16, n = 0;
	struct row *kept = qu_malloc(sizeof(*kept) * cap);
	struct qu_idx items, users;
	qu_idx_init(&items, 8192);
	qu_idx_init(&users, 8192);
	int nf;
	while ((nf = qu_csv_next(&cv, f, fl, &line)) > 0) {
		if (nf != nh)
			qu_die_at(path, line, "%d fields, the header has %d", nf, nh);
		rows++;
		if (f[k[INV]][0] == 'C') {
			sk_cancel++;
			continue;
		}
		char *end;
		errno = 0;
		long long q = strtoll(f[k[QTY]], &end, 10);
		if (errno || end == f[k[QTY]] || *end)
			qu_die_at(path, line, "Quantity '%s' is not an integer", f[k[QTY]]);
		if (q <= 0) {
			sk_qty++;
			continue;
		}
		if (!fl[k[CUST]]) {
			sk_cust++;
			continue;
		}
		if (!all_codes && !product_code(f[k[CODE]])) {
			sk_code++;
			continue;
		}
		int64_t ts;
		if (!qu_parse_date(f[k[DATE]], fl[k[DATE]], &ts))
			qu_die_at(path, line, "InvoiceDate '%s' is not YYYY-MM-DD HH:MM[:SS]", f[k[DATE]]);
		if (ts < after) {
			sk_before++;
			continue;
		}
		if (ts >= before) {
			sk_after++;
			continue;
		}
		errno = 0;
		double price = strtod(f[k[PRICE]], &end);
		if (errno || end == f[k[PRICE]] || *end || !(price == price))
			qu_die_at(path, line, "UnitPrice '%s' is not a number", f[k[PRICE]]);
		if (!fl[k[CODE]] || fl[k[CODE]] > 255 || fl[k[CUST]] > 255)
			qu_die_at(path, line, "StockCode or CustomerID empty or longer than 255 bytes");
		char *desc = f[k[DESC]], *de = desc + fl[k[DESC]];
		while (desc < de && (*desc == ' ' || *desc == '\t'))
			desc++;
		while (de > desc && (de[-1] == ' ' || de[-1] == '\t'))
			*--de = 0;
		if (n == cap)
			kept = qu_realloc(kept, sizeof(*kept) * (cap *= 2));
		kept[n] = (struct row){
			.item = qu_idx_add(&items, f[k[CODE]], fl[k[CODE]], NULL),
			.user = qu_idx_add(&users, f[k[CUST]], fl[k[CUST]], NULL),
			.ts = ts,
			.price = price < 0 ? 0 : price,
			.price_s = price < 0 ? "0" : f[k[PRICE]],
			.desc = desc,
			.country = f[k[COUNTRY]],
			.seq = n,
		};
		n++;
	}

	uint32_t ni = items.n, nu = users.n;
	/* Output orders: items and users sorted by id. */
	const char **item_ids = qu_malloc(sizeof(char *) * ni), **user_ids = qu_malloc(sizeof(char *) * nu);
	memcpy(item_ids, items.key, sizeof(char *) * ni);
	memcpy(user_ids, users.key, sizeof(char *) * nu);
	qsort(item_ids, ni, sizeof(char *), cmp_str_ptr);
	qsort(user_ids, nu, sizeof(char *), cmp_str_ptr);
	uint32_t *item_rank = qu_malloc(sizeof(uint32_t) * ni), *user_rank = qu_malloc(sizeof(uint32_t) * nu);
	for (uint32_t i = 0; i < ni; i++)
		item_rank[qu_idx_find(&items, item_ids[i], strlen(item_ids[i]))] = i;
	for (uint32_t u = 0; u < nu; u++)
		user_rank[qu_idx_find(&users, user_ids[u], strlen(user_ids[u]))] = u;

	struct pair *pp = qu_malloc(sizeof(*pp) * (n ? n : 1));
	const char **title = qu_malloc(sizeof(char *) * ni), **country = qu_malloc(sizeof(char *) * nu);
	const char **price = qu_malloc(sizeof(char *) * ni);
	for (size_t r = 0; r < n; r++)
		pp[r] = (struct pair){ item_rank[kept[r].item], kept[r].desc, 0, r };
	qsort(pp, n, sizeof(*pp), cmp_pair_str);
	vote(pp, n, ni, title);
	for (size_t r = 0; r < n; r++)
		pp[r] = (struct pair){ user_rank[kept[r].user], kept[r].country, 0, r };
	qsort(pp, n, sizeof(*pp), cmp_pair_str);
	vote(pp, n, nu, country);
	for (size_t r = 0; r < n; r++)
		pp[r] = (struct pair){ item_rank[kept[r].item], kept[r].price_s, kept[r].price, r };
	qsort(pp, n, sizeof(*pp), cmp_pair_num);
	for (size_t i = 0; i < n;) {
		size_t j = i;
		while (j < n && pp[j].key == pp[i].key)
			j++;
		price[pp[i].key] = pp[i + (j - i - 1) / 2].s;   /* lower median */
		i = j;
	}

	qu_mkdir(out);
	char fpath[4096];
	FILE *fo = qu_create(out, "items.jsonl", fpath, sizeof(fpath));
	uint32_t n_cat = 0;
	const char **cats = qu_malloc(sizeof(char *) * (ni ? ni : 1));
	char *cat_buf = qu_malloc((size_t)ni * 64 + 1);
	for (uint32_t i = 0; i < ni; i++) {
		char *cat = cat_buf + (size_t)i * 64;
		category_of(title[i], cat, 64);
		cats[i] = cat;
		fputs("{\"id\":", fo);
		json_str(fo, item_ids[i]);
		fputs(",\"title\":", fo);
		json_str(fo, title[i]);
		fputs(",\"category\":", fo);
		json_str(fo, cat);
		fprintf(fo, ",\"price\":%s,\"stock\":%llu}\n", price[i], (unsigned long long)stock);
	}
	qu_close(fo, fpath);
	qsort(cats, ni, sizeof(char *), cmp_str_ptr);
	for (uint32_t i = 0; i < ni; i++)
		n_cat += i == 0 || strcmp(cats[i], cats[i - 1]) != 0;

	fo = qu_create(out, "users.txt", fpath, sizeof(fpath));
	for (uint32_t u = 0; u < nu; u++)
		fprintf(fo, "%s\n", user_ids[u]);
	qu_close(fo, fpath);

	fo = qu_create(out, "regions.csv", fpath, sizeof(fpath));
	fputs("user_id,region\n", fo);
	for (uint32_t u = 0; u < nu; u++) {
		csv_str(fo, user_ids[u]);
		fputc(',', fo);
		csv_str(fo, country[u]);
		fputc('\n', fo);
	}
	qu_close(fo, fpath);
	uint32_t n_countries = 0;
	qsort(country, nu, sizeof(char *), cmp_str_ptr);
	for (uint32_t u = 0; u < nu; u++)
		n_countries += u == 0 || strcmp(country[u], country[u - 1]) != 0;

	uint32_t *order = qu_malloc(sizeof(uint32_t) * (n ? n : 1));
	for (size_t r = 0; r < n; r++)
		order[r] = (uint32_t)r;
	sort_rows = kept;
	qsort(order, n, sizeof(*order), cmp_row_ts);
	fo = qu_create(out, "interactions.csv", fpath, sizeof(fpath));
	fputs("user_id,item_id,type,ts\n", fo);
	for (size_t r = 0; r < n; r++) {
		const struct row *x = &kept[order[r]];
		csv_str(fo, users.key[x->user]);
		fputc(',', fo);
		csv_str(fo, items.key[x->item]);
		fprintf(fo, ",purchase,%lld\n", (long long)x->ts);
	}
	qu_close(fo, fpath);

	char t_first[32] = "-", t_last[32] = "-";
	if (n) {
		qu_format_ms(kept[order[0]].ts, t_first);
		qu_format_ms(kept[order[n - 1]].ts, t_last);
	}
	printf("recd-import-retail: %s: %llu rows; kept %zu; skipped %llu cancellations, %llu with Quantity <= 0, "
	       "%llu without CustomerID, %llu non-product codes, %llu before --after, %llu from --before on\n",
	       path, (unsigned long long)rows, n, (unsigned long long)sk_cancel, (unsigned long long)sk_qty,
	       (unsigned long long)sk_cust, (unsigned long long)sk_code, (unsigned long long)sk_before,
	       (unsigned long long)sk_after);
	printf("recd-import-retail: wrote %s: %u items (%u categories), %u users (%u regions), %zu interactions, "
	       "%s .. %s UTC (%.2f s)\n",
	       out, ni, n_cat, nu, n_countries, n, t_first, t_last, qu_since(t0));

	free(order);
	free(cats);
	free(cat_buf);
	free(title);
	free(country);
	free(price);
	free(pp);
	free(item_rank);
	free(user_rank);
	free(item_ids);
	free(user_ids);
	qu_idx_free(&items);
	qu_idx_free(&users);
	free(kept);
	free(in.buf);
	return 0;
}
