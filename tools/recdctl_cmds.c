/* recdctl_cmds.c: recdctl explain, user, item, experiments, quality and
 * events send (see recdctl.h). Each command prints the daemon's JSON as is with --json,
 * else a table for people. */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "core/common.h"
#include "recdctl.h"

/* ------------------------------------------------------------ helpers */

/* Percent-encode all but [A-Za-z0-9._~-]; false when it does not fit. */
static bool url_enc(const char *s, char *out, size_t len)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t o = 0;
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		bool plain = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
			     *p == '.' || *p == '_' || *p == '~' || *p == '-';
		if (o + (plain ? 1 : 3) >= len)
			return false;
		if (plain) {
			out[o++] = (char)*p;
		} else {
			out[o++] = '%';
			out[o++] = hex[*p >> 4];
			out[o++] = hex[*p & 15];
		}
	}
	out[o] = 0;
	return true;
}

/* The number at key, or NAN (absent, null, not a number). */
static double doc_f64(const struct doc *d, int obj, const char *key)
{
	double x;
	int v = doc_get(d, obj, key);
	if (v < 0 || json_get_double(d->s, &d->t[v], &x))
		return NAN;
	return x;
}

/* 1 true, 0 false, -1 absent or anything else. */
static int doc_bool(const struct doc *d, int obj, const char *key)
{
	int v = doc_get(d, obj, key);
	return v < 0 ? -1 : d->t[v].type == JSON_TRUE ? 1 : d->t[v].type == JSON_FALSE ? 0 : -1;
}

/* A string token (or "-" for null / anything else). */
static const char *tok_str(const struct doc *d, int t, char *out, size_t len)
{
	if (t < 0 || d->t[t].type != JSON_STRING || json_str_decode(d->s, &d->t[t], out, len) < 0)
		snprintf(out, len, "-");
	return out;
}

static const char *fmt_num(double x, char *out, size_t len)
{
	if (isnan(x))
		snprintf(out, len, "-");
	else
		snprintf(out, len, "%.4f", x);
	return out;
}

/* Prices and counts: "12.5", "68", "-". */
static const char *fmt_g(double x, char *out, size_t len)
{
	if (isnan(x))
		snprintf(out, len, "-");
	else
		snprintf(out, len, "%g", x);
	return out;
}

/* GET target. -1: a JSON object is in *d (human output to do); else the
 * exit code, with the body printed (--json) or the error reported. */
static int get_doc(const struct ctl *c, const char *target, struct response *rsp, struct doc *d)
{
	d->t = NULL;
	int rc = ctl_request(c, "GET", target, rsp);
	if (rc)
		return rc;
	if (rsp->status != 200) {
		rc = c->json ? (print_body(rsp), EXIT_ERROR) : report_http_error(rsp);
		free(rsp->data);
		return rc;
	}
	if (c->json) {
		print_body(rsp);
		free(rsp->data);
		return EXIT_OK;
	}
	if (doc_parse(d, rsp->body, rsp->body_len) || d->t[0].type != JSON_OBJECT) {
		fprintf(stderr, "recdctl: %s: the answer is not a JSON object\n", target);
		free(d->t);
		free(rsp->data);
		return EXIT_ERROR;
	}
	return -1;
}

/* -------------------------------------------------------------- explain */

static void explain_route(const struct doc *d)
{
	char name[128], tier[32], by[16], hook[16], err[512], cands[32];
	int rt = doc_get(d, 0, "route");
	doc_str(d, rt, "name", name, sizeof(name));
	doc_str(d, rt, "chosen_by", by, sizeof(by));
	doc_str(d, rt, "hook", hook, sizeof(hook));
	printf("  route        %s, tier %s, chosen by %s", name, doc_str(d, rt, "tier", tier, sizeof(tier)),
	       strcmp(by, "lua") ? "the built-in route" : "route.lua");
	if (!strcmp(hook, "failed"))
		printf(" (route.lua failed: %s)", doc_str(d, rt, "error", err, sizeof(err)));
	if (doc_get(d, 0, "candidates") >= 0)
		printf("; personal candidates: %s", doc_str(d, 0, "candidates", cands, sizeof(cands)));
	printf("\n");
	int src = doc_get(d, rt, "sources");
	if (src < 0 || d->t[src].type != JSON_ARRAY)
		return;
	printf("               %-14s %6s  %s\n", "source", "n", "weight");
	for (int e = src + 1; e < (int)d->t[src].next; e = (int)d->t[e].next) {
		char s[32], w[32];
		printf("               %-14s %6" PRId64 "  %s\n", doc_str(d, e, "source", s, sizeof(s)), doc_i64(d, e, "n"),
		       fmt_g(doc_f64(d, e, "weight"), w, sizeof(w)));
	}
}

static void explain_hooks(const struct doc *d)
{
	char st[16], err[512], by[16];
	int g = doc_get(d, 0, "gathered"), ru = doc_get(d, 0, "rules"), re = doc_get(d, 0, "rerank");
	printf("  gathered     %" PRId64 " candidates\n", doc_i64(d, g, "count"));
	printf("  rules        %s", doc_str(d, ru, "status", st, sizeof(st)));
	if (!strcmp(st, "ok")) {
		int dr = doc_get(d, ru, "dropped");
		printf(": %" PRId64 " kept, %u dropped", doc_i64(d, ru, "count"),
		       dr >= 0 && d->t[dr].type == JSON_ARRAY ? d->t[dr].count : 0);
	}
	if (doc_get(d, ru, "error") >= 0)
		printf(": %s", doc_str(d, ru, "error", err, sizeof(err)));
	printf("\n  rerank       %s", doc_str(d, re, "status", st, sizeof(st)));
	if (doc_get(d, re, "error") >= 0)
		printf(": %s", doc_str(d, re, "error", err, sizeof(err)));
	printf("\n  ranked by    %s", strcmp(doc_str(d, 0, "ranked_by", by, sizeof(by)), "rerank") ? "the built-in C ranking"
												  : "rerank.lua");
	if (doc_get(d, 0, "fallback") >= 0)
		printf(" (fallback: the %s hook failed)", doc_str(d, 0, "fallback", st, sizeof(st)));
	printf("\n");
}

static void explain_items(const struct doc *d)
{
	int items = doc_get(d, 0, "items");
	if (items < 0 || d->t[items].type != JSON_ARRAY)
		return;
	int idw = 4;
	char id[256], src[32], a[32], b[32], f[32];
	for (int e = items + 1; e < (int)d->t[items].next; e = (int)d->t[e].next)
		idw = MAX(idw, MIN(40, (int)strlen(doc_str(d, e, "id", id, sizeof(id)))));
	printf("\n  %4s  %-*s  %-12s %9s %9s %9s  %s\n", "pos", idw, "item", "source", "gathered", "rules", "final",
	       "reason");
	int pos = 0;
	for (int e = items + 1; e < (int)d->t[items].next; e = (int)d->t[e].next) {
		char reason[300];
		doc_str(d, e, "reason", reason, sizeof(reason));
		printf("  %4d  %-*s  %-12s %9s %9s %9s  %s\n", ++pos, idw, doc_str(d, e, "id", id, sizeof(id)),
		       doc_str(d, e, "source", src, sizeof(src)), fmt_num(doc_f64(d, e, "score_gathered"), a, sizeof(a)),
		       fmt_num(doc_f64(d, e, "score_after_rules"), b, sizeof(b)), fmt_num(doc_f64(d, e, "score"), f, sizeof(f)),
		       reason[0] ? reason : "-");
	}
	if (!pos)
		printf("  (no items)\n");
	int ru = doc_get(d, 0, "rules"), dr = doc_get(d, ru, "dropped");
	if (dr >= 0 && d->t[dr].type == JSON_ARRAY && d->t[dr].count) {
		printf("\n  dropped by rules (%u):", d->t[dr].count);
		int shown = 0;
		for (int e = dr + 1; e < (int)d->t[dr].next && shown < 20; e = (int)d->t[e].next, shown++)
			printf("%s %s", shown ? "," : "", tok_str(d, e, id, sizeof(id)));
		printf("%s\n", d->t[dr].count > 20 ? ", ..." : "");
	}
}

int cmd_explain(const struct ctl *c, const char *user)
{
	char target[2048], enc[800];
	size_t o = (size_t)snprintf(target, sizeof(target), "/admin/explain?");
	const char *keys[] = { "user_id", "item_id", "placement", "device", "region" };
	const char *vals[] = { strcmp(user, "-") ? user : NULL, c->item, c->placement, c->device, c->region };
	for (int i = 0; i < 5; i++) {
		if (!vals[i])
			continue;
		if (!url_enc(vals[i], enc, sizeof(enc))) {
			fprintf(stderr, "recdctl: %s is too long\n", keys[i]);
			return EXIT_USAGE;
		}
		o += (size_t)snprintf(target + o, sizeof(target) - o, "%s=%s&", keys[i], enc);
	}
	if (c->n)
		o += (size_t)snprintf(target + o, sizeof(target) - o, "n=%ld&", c->n);
	target[o - 1] = 0;   /* the last '&' or the '?' */

	struct response rsp;
	struct doc d;
	int rc = get_doc(c, target, &rsp, &d);
	if (rc >= 0)
		return rc;
	char uid[256], pl[80], pol[128], snap[160], tier[32];
	int rq = doc_get(&d, 0, "request");
	printf("explain %s", tok_str(&d, doc_get(&d, rq, "user_id"), uid, sizeof(uid)));
	if (strcmp(tok_str(&d, doc_get(&d, rq, "user_id"), uid, sizeof(uid)), "-") == 0)
		printf(" (anonymous)");
	if (doc_get(&d, rq, "placement") >= 0 && strcmp(tok_str(&d, doc_get(&d, rq, "placement"), pl, sizeof(pl)), "-"))
		printf(", placement %s", pl);
	if (strcmp(tok_str(&d, doc_get(&d, rq, "item_id"), pl, sizeof(pl)), "-"))
		printf(", item %s", pl);
	printf(", n %" PRId64 "\n", doc_i64(&d, rq, "n"));
	printf("  policy       %s on the admin worker, snapshot %s, took %" PRId64 " us\n",
	       doc_str(&d, 0, "policy", pol, sizeof(pol)), doc_str(&d, 0, "snapshot", snap, sizeof(snap)),
	       doc_i64(&d, 0, "took_us"));
	int known = doc_bool(&d, rq, "known"), emb = doc_bool(&d, rq, "snapshot_user");
	printf("  request      tier %s, %s%s, interactions %" PRId64 ", recent %" PRId64 ", cart %" PRId64
	       ", purchased %" PRId64 "%s\n",
	       doc_str(&d, 0, "tier", tier, sizeof(tier)), known == 1 ? "known" : "unknown",
	       emb == 1 ? " (snapshot embedding)" : "", doc_i64(&d, rq, "interactions"), doc_i64(&d, rq, "recent"),
	       doc_i64(&d, rq, "cart"), doc_i64(&d, rq, "purchased"),
	       doc_bool(&d, rq, "personalize") == 0 ? ", not personalised" : "");
	explain_route(&d);
	explain_hooks(&d);
	explain_items(&d);
	free(d.t);
	free(rsp.data);
	return EXIT_OK;
}

/* ------------------------------------------------------------ user, item */

static int target_for(const char *prefix, const char *id, char *out, size_t len)
{
	char enc[800];
	if (!id[0] || !url_enc(id, enc, sizeof(enc))) {
		fprintf(stderr, "recdctl: the id must be 1..127 bytes\n");
		return EXIT_USAGE;
	}
	snprintf(out, len, "%s%s", prefix, enc);
	return 0;
}

int cmd_user(const struct ctl *c, const char *id)
{
	char target[1024];
	int rc = target_for("/admin/users/", id, target, sizeof(target));
	if (rc)
		return rc;
	struct response rsp;
	struct doc d;
	if ((rc = get_doc(c, target, &rsp, &d)) >= 0)
		return rc;
	char first[32], last[32], l[4096];
	fmt_time_ms(doc_i64(&d, 0, "first_seen_ms"), first, sizeof(first));
	fmt_time_ms(doc_i64(&d, 0, "last_seen_ms"), last, sizeof(last));
	printf("user %s\n", id);
	printf("  interactions %" PRId64 "\n", doc_i64(&d, 0, "interactions"));
	printf("  first seen   %s\n  last seen    %s\n", first, last);
	printf("  cart         %s\n", doc_list(&d, doc_get(&d, 0, "cart"), l, sizeof(l)));
	printf("  purchased    %s\n", doc_list(&d, doc_get(&d, 0, "purchased"), l, sizeof(l)));
	int r = doc_get(&d, 0, "recent");
	if (r >= 0 && d.t[r].type == JSON_ARRAY && d.t[r].count) {
		printf("  recent (newest first)\n    %-20s  %-16s  %s\n", "when", "type", "item");
		for (int e = r + 1; e < (int)d.t[r].next; e = (int)d.t[e].next) {
			char when[32], type[32], item[256];
			fmt_time_ms(doc_i64(&d, e, "ts_ms"), when, sizeof(when));
			printf("    %-20s  %-16s  %s\n", when, doc_str(&d, e, "type", type, sizeof(type)),
			       doc_str(&d, e, "item_id", item, sizeof(item)));
		}
	} else {
		printf("  recent       -\n");
	}
	free(d.t);
	free(rsp.data);
	return EXIT_OK;
}

static const char *yes_no(int b)
{
	return b == 1 ? "yes" : b == 0 ? "no" : "-";
}

int cmd_item(const struct ctl *c, const char *id)
{
	char target[1024];
	int rc = target_for("/admin/items/", id, target, sizeof(target));
	if (rc)
		return rc;
	struct response rsp;
	struct doc d;
	if ((rc = get_doc(c, target, &rsp, &d)) >= 0)
		return rc;
	char a[64], b[64], t[512], l[4096];
	printf("item %s\n  servable     %s\n", id, yes_no(doc_bool(&d, 0, "servable")));
	int s = doc_get(&d, 0, "snapshot");
	if (s >= 0 && d.t[s].type == JSON_OBJECT) {
		int64_t pr = doc_i64(&d, s, "popular_rank");
		printf("  snapshot     index %" PRId64 ", category %s, title \"%s\"\n", doc_i64(&d, s, "index"),
		       doc_str(&d, s, "category", a, sizeof(a)), doc_str(&d, s, "title", t, sizeof(t)));
		printf("               price %s, stock %" PRId64 ", available %s, servable %s\n",
		       fmt_g(doc_f64(&d, s, "price"), b, sizeof(b)), doc_i64(&d, s, "stock"),
		       yes_no(doc_bool(&d, s, "available")), yes_no(doc_bool(&d, s, "servable")));
		printf("               popularity %s, popular rank %s\n", fmt_g(doc_f64(&d, s, "popularity"), b, sizeof(b)),
		       pr >= 0 ? (snprintf(a, sizeof(a), "%" PRId64, pr + 1), a) : "-");
	} else {
		printf("  snapshot     not in the served snapshot\n");
	}
	int lv = doc_get(&d, 0, "live");
	if (lv >= 0 && d.t[lv].type == JSON_OBJECT) {
		int stv = doc_get(&d, lv, "stock");
		int64_t stock = stv >= 0 && d.t[stv].type == JSON_NUMBER ? doc_i64(&d, lv, "stock") : -1;
		char when[32], st[32], pr[32], bo[32];
		fmt_time_ms(doc_i64(&d, lv, "updated_ms"), when, sizeof(when));
		printf("  live         stock %s, price %s, available %s, boost %s, updated %s%s\n",
		       stock >= 0 ? (snprintf(st, sizeof(st), "%" PRId64, stock), st) : "-",
		       fmt_g(doc_f64(&d, lv, "price"), pr, sizeof(pr)), yes_no(doc_bool(&d, lv, "available")),
		       fmt_g(doc_f64(&d, lv, "boost"), bo, sizeof(bo)), when,
		       doc_bool(&d, lv, "blocked") == 1 ? " (hides the item)" : "");
	} else {
		printf("  live         -\n");
	}
	int tr = doc_get(&d, 0, "trending");
	if (tr >= 0 && d.t[tr].type == JSON_OBJECT)
		printf("  trending     rank %" PRId64 ", score %s\n", doc_i64(&d, tr, "rank") + 1,
		       fmt_g(doc_f64(&d, tr, "score"), b, sizeof(b)));
	else
		printf("  trending     not listed\n");
	printf("  neighbors    %s\n", doc_list(&d, doc_get(&d, 0, "neighbors"), l, sizeof(l)));
	free(d.t);
	free(rsp.data);
	return EXIT_OK;
}

/* ---------------------------------------------------- experiments, quality */

/* A share (0..1) as a percentage: "5.20%"; "-" when unknown. */
static const char *fmt_pct(double x, int decimals, char *out, size_t len)
{
	if (isnan(x))
		snprintf(out, len, "-");
	else
		snprintf(out, len, "%.*f%%", decimals, x * 100);
	return out;
}

/* x with `decimals` decimals; "-" when unknown. */
static const char *fmt_fix(double x, int decimals, char *out, size_t len)
{
	if (isnan(x))
		snprintf(out, len, "-");
	else
		snprintf(out, len, "%.*f", decimals, x);
	return out;
}

/* A counter at key: "40211"; "-" when absent. */
static const char *fmt_count(const struct doc *d, int obj, const char *key, char *out, size_t len)
{
	int64_t x = doc_i64(d, obj, key);
	if (x < 0)
		snprintf(out, len, "-");
	else
		snprintf(out, len, "%" PRId64, x);
	return out;
}

/* {"value":..,"lo":..,"hi":..} at key: "5.20% [4.99-5.42]" (95% Wilson). */
static const char *fmt_rate(const struct doc *d, int obj, const char *key, char *out, size_t len)
{
	int r = doc_get(d, obj, key);
	double v = doc_f64(d, r, "value"), lo = doc_f64(d, r, "lo"), hi = doc_f64(d, r, "hi");
	if (isnan(v) || isnan(lo) || isnan(hi))
		return fmt_pct(v, 2, out, len);
	snprintf(out, len, "%.2f%% [%.2f-%.2f]", v * 100, lo * 100, hi * 100);
	return out;
}

/* {"diff":..,"p_value":..,"significant":..,"valid":..} at key: "+0.31pp
 * p=0.049*" ('*': significant at the experiment's alpha; *sig set), "n/a"
 * while the test is not valid (no lists, or no click anywhere), "-" when
 * absent (control). */
static const char *fmt_vs_control(const struct doc *d, int obj, const char *key, bool *sig, char *out, size_t len)
{
	int t = doc_get(d, obj, key);
	double diff = doc_f64(d, t, "diff"), p = doc_f64(d, t, "p_value");
	char pv[32];
	if (t < 0) {
		snprintf(out, len, "-");
	} else if (doc_bool(d, t, "valid") != 1 || isnan(diff) || isnan(p)) {
		snprintf(out, len, "n/a");
	} else {
		bool s = doc_bool(d, t, "significant") == 1;
		if (p < 0.001)
			snprintf(pv, sizeof(pv), "p<0.001");
		else
			snprintf(pv, sizeof(pv), "p=%.3f", p);
		snprintf(out, len, "%+.2fpp %s%s", diff * 100, pv, s ? "*" : "");
		*sig |= s;
	}
	return out;
}

/* One row per variant, 120 columns wide for names up to 10 bytes:
 *   variant  weight|share  impr  clicks  CTR [95%]  vs control  conversion [95%]  revenue  needed  status
 * A shadow variant is never served, so it has no figures of its own: its
 * row says how many lists were computed and how much they overlapped. */
#define EXP_ROW "  %-*s %6s %8s %6s  %-18s  %-16s  %-18s %9s %7s"

static void experiment_variant(const struct doc *d, int v, int w, bool thompson, bool *sig)
{
	char name[64], share[32], model[64], a[32], b[32], c[32], e[32], f[32], h[48], r[48];
	doc_str(d, v, "name", name, sizeof(name));
	bool holdout = doc_bool(d, v, "holdout") == 1, shadow = doc_bool(d, v, "shadow") == 1,
	     off = doc_bool(d, v, "disabled") == 1, has_model = doc_get(d, v, "model") >= 0;
	if (holdout || shadow)
		snprintf(share, sizeof(share), "-");
	else if (thompson)
		fmt_pct(doc_f64(d, v, "allocation"), 1, share, sizeof(share));
	else
		fmt_g(doc_f64(d, v, "weight"), share, sizeof(share));
	doc_str(d, v, "model", model, sizeof(model));
	if (shadow) {
		printf("  %-*s %6s  shadow%s%s%s%s: %s lists, mean overlap %s, %s us per list\n", w, name, share,
		       off ? ", disabled" : "", has_model ? " (model " : "", has_model ? model : "", has_model ? ")" : "",
		       fmt_count(d, v, "shadow_lists", a, sizeof(a)), fmt_pct(doc_f64(d, v, "mean_overlap"), 1, b, sizeof(b)),
		       fmt_fix(doc_f64(d, v, "mean_took_us"), 0, c, sizeof(c)));
	} else {
		printf(EXP_ROW, w, name, share, fmt_count(d, v, "impressions", a, sizeof(a)),
		       fmt_count(d, v, "clicks", b, sizeof(b)), fmt_rate(d, v, "ctr", c, sizeof(c)),
		       fmt_vs_control(d, v, "ctr_vs_control", sig, h, sizeof(h)), fmt_rate(d, v, "conversion", e, sizeof(e)),
		       fmt_fix(doc_f64(d, v, "revenue"), 2, r, sizeof(r)),
		       fmt_count(d, v, "samples_still_needed", f, sizeof(f)));
		if (holdout)
			printf("  holdout");
		else if (off)
			printf("  disabled");
		else if (has_model)
			printf("  model %s", model);
		printf("\n");
	}
	if (off) {
		char why[512];
		printf("  %-*s   disabled by a guardrail: %s%s%s%s\n", w, "", doc_str(d, v, "disabled_reason", why, sizeof(why)),
		       has_model && !shadow ? " (model " : "", has_model && !shadow ? model : "", has_model && !shadow ? ")" : "");
	}
}

static void experiment(const struct doc *d, int x)
{
	char name[64], alloc[16], ctl[64], a[32], b[32], c[32], l[1024];
	int pl = doc_get(d, x, "placements");
	bool thompson = !strcmp(doc_str(d, x, "allocation", alloc, sizeof(alloc)), "thompson");
	double exposure = doc_f64(d, x, "exposure"), holdout = doc_f64(d, x, "holdout");
	printf("experiment %s: exposure %s%%, holdout %s%%, allocation %s, control %s, placements %s\n",
	       doc_str(d, x, "name", name, sizeof(name)), fmt_g(exposure * 100, a, sizeof(a)),
	       fmt_g(holdout * 100, b, sizeof(b)), alloc, doc_str(d, x, "control", ctl, sizeof(ctl)),
	       pl >= 0 && d->t[pl].type == JSON_ARRAY && d->t[pl].count ? doc_list(d, pl, l, sizeof(l)) : "all");
	int64_t n = doc_i64(d, x, "sample_size_per_variant");
	printf("  baseline CTR %s, sample size ", fmt_pct(doc_f64(d, x, "baseline_ctr"), 2, a, sizeof(a)));
	if (n > 0)
		printf("%" PRId64 " per variant", n);
	else
		printf("- (no click on control yet)");
	printf(" (MDE %s, alpha %s, power %s)\n", fmt_pct(doc_f64(d, x, "min_detectable_effect"), 0, a, sizeof(a)),
	       fmt_g(doc_f64(d, x, "alpha"), b, sizeof(b)), fmt_g(doc_f64(d, x, "power"), c, sizeof(c)));

	int vs = doc_get(d, x, "variants");
	if (vs < 0 || d->t[vs].type != JSON_ARRAY)
		return;
	int w = 7;
	for (int v = vs + 1; v < (int)d->t[vs].next; v = (int)d->t[v].next)
		w = MAX(w, MIN(20, (int)strlen(doc_str(d, v, "name", name, sizeof(name)))));
	printf(EXP_ROW "  status\n", w, "variant", thompson ? "share" : "weight", "impr", "clicks", "CTR [95%]",
	       "CTR vs control", "conversion [95%]", "revenue", "needed");
	bool sig = false;
	for (int v = vs + 1; v < (int)d->t[vs].next; v = (int)d->t[v].next)
		experiment_variant(d, v, w, thompson, &sig);
	if (sig)
		printf("  * significant at alpha %s (two-sided two-proportion z-test against control)\n",
		       fmt_g(doc_f64(d, x, "alpha"), a, sizeof(a)));
}

int cmd_experiments(const struct ctl *c)
{
	struct response rsp;
	struct doc d;
	int rc = get_doc(c, "/admin/experiments", &rsp, &d);
	if (rc >= 0)
		return rc;
	int xs = doc_get(&d, 0, "experiments"), k = 0;
	if (xs >= 0 && d.t[xs].type == JSON_ARRAY)
		for (int x = xs + 1; x < (int)d.t[xs].next; x = (int)d.t[x].next) {
			if (k++)
				printf("\n");
			experiment(&d, x);
		}
	if (!k)
		printf("no experiments declared (plugins_dir/experiments.lua)\n");
	int lg = doc_get(&d, 0, "ledger");
	if (lg >= 0) {
		char a[32], b[32], o[32], od[32], u[32], ws[32];
		printf("\nledger: %s impressions (%s dropped), %s outcomes (%s dropped), %s unattributed, "
		       "attribution window %s s\n",
		       fmt_count(&d, lg, "impressions", a, sizeof(a)), fmt_count(&d, lg, "impressions_dropped", b, sizeof(b)),
		       fmt_count(&d, lg, "outcomes", o, sizeof(o)), fmt_count(&d, lg, "outcomes_dropped", od, sizeof(od)),
		       fmt_count(&d, lg, "unattributed", u, sizeof(u)), fmt_count(&d, lg, "attribution_window_s", ws, sizeof(ws)));
	}
	free(d.t);
	free(rsp.data);
	return EXIT_OK;
}

struct qcell {
	int tok;
	char placement[64], name[112];   /* experiment/variant, or none */
};

static int qcell_cmp(const void *a, const void *b)
{
	const struct qcell *x = a, *y = b;
	int r = strcmp(x->placement, y->placement);
	return r ? r : strcmp(x->name, y->name);
}

static size_t put_share(char *out, size_t len, bool first, const char *name, int64_t n, int64_t total)
{
	double pct = 100.0 * (double)n / (double)total;
	int w = pct < 0.5 ? snprintf(out, len, "%s%s <1%%", first ? "" : " ", name)
			  : snprintf(out, len, "%s%s %.0f%%", first ? "" : " ", name, pct);
	return w < 0 ? 0 : MIN((size_t)w, len ? len - 1 : 0);
}

/* Lists by the source of their first item, most first: "personalized 80%
 * popular 20%" ("<1%" for a few; "-" for none). Beyond `width` bytes the
 * smallest shares are summed up as "other". */
static const char *fmt_strategies(const struct doc *d, int obj, size_t width, char *out, size_t len)
{
	struct {
		char name[32];
		int64_t n;
	} st[16], tmp;
	int k = 0, s = doc_get(d, obj, "strategies");
	int64_t total = 0;
	if (s >= 0 && d->t[s].type == JSON_OBJECT)
		for (int key = s + 1, i = 0; (uint32_t)i < d->t[s].count && k < (int)ARRAY_SIZE(st); i++) {
			int v = key + 1;
			int64_t n;
			if (json_str_decode(d->s, &d->t[key], st[k].name, sizeof(st[k].name)) >= 0 &&
			    !json_get_i64(d->s, &d->t[v], &n) && n > 0) {
				st[k++].n = n;
				total += n;
			}
			key = (int)d->t[v].next;
		}
	for (int i = 1; i < k; i++)
		for (int j = i; j > 0 && st[j].n > st[j - 1].n; j--)
			tmp = st[j], st[j] = st[j - 1], st[j - 1] = tmp;
	snprintf(out, len, "-");
	for (int m = k; m > 0; m--) {   /* the first m by name, the rest as other */
		size_t o = 0;
		int64_t rest = 0;
		for (int i = 0; i < m; i++)
			o += put_share(out + o, len - o, i == 0, st[i].name, st[i].n, total);
		for (int i = m; i < k; i++)
			rest += st[i].n;
		if (rest)
			o += put_share(out + o, len - o, false, "other", rest, total);
		if (o <= width)
			break;
	}
	return out;
}

#define QUAL_ROW "  %-*s  %-*s%7s%9s%9s%9s%8s%7s  %s\n"

int cmd_quality(const struct ctl *c)
{
	struct response rsp;
	struct doc d;
	int rc = get_doc(c, "/admin/quality", &rsp, &d);
	if (rc >= 0)
		return rc;
	char ws[32];
	fmt_count(&d, 0, "window_s", ws, sizeof(ws));
	int cs = doc_get(&d, 0, "cells");
	uint32_t n = cs >= 0 && d.t[cs].type == JSON_ARRAY ? d.t[cs].count : 0;
	struct qcell *q = n ? calloc(n, sizeof(*q)) : NULL;
	if (n && !q) {
		fprintf(stderr, "recdctl: out of memory\n");
		free(d.t);
		free(rsp.data);
		return EXIT_ERROR;
	}
	int pw = 9, nw = 18;
	uint32_t k = 0;
	for (int e = cs + 1; k < n; e = (int)d.t[e].next, k++) {
		char x[64], v[64];
		q[k].tok = e;
		doc_str(&d, e, "placement", q[k].placement, sizeof(q[k].placement));
		doc_str(&d, e, "variant", v, sizeof(v));
		if (doc_get(&d, e, "experiment") >= 0)
			snprintf(q[k].name, sizeof(q[k].name), "%s/%s", doc_str(&d, e, "experiment", x, sizeof(x)), v);
		else
			snprintf(q[k].name, sizeof(q[k].name), "%s", v);
		pw = MAX(pw, MIN(24, (int)strlen(q[k].placement)));
		nw = MAX(nw, MIN(40, (int)strlen(q[k].name)));
	}
	qsort(q, n, sizeof(*q), qcell_cmp);
	printf("quality of the lists served in the last %s s, per placement and experiment variant\n", ws);
	if (!n) {
		printf("  no lists served in the window\n");
	} else {
		printf(QUAL_ROW, pw, "placement", nw, "experiment/variant", "lists", "coverage", "cat/list", "distance",
		       "pop pct", "head", "strategies");
		for (uint32_t i = 0; i < n; i++) {
			int e = q[i].tok;
			char l[32], cov[32], cat[32], dist[32], pop[32], head[32], st[256];
			printf(QUAL_ROW, pw, q[i].placement, nw, q[i].name, fmt_count(&d, e, "lists", l, sizeof(l)),
			       fmt_pct(doc_f64(&d, e, "coverage"), 2, cov, sizeof(cov)),
			       fmt_fix(doc_f64(&d, e, "categories_per_list"), 2, cat, sizeof(cat)),
			       fmt_fix(doc_f64(&d, e, "pairwise_distance"), 3, dist, sizeof(dist)),
			       fmt_fix(doc_f64(&d, e, "popularity_percentile"), 2, pop, sizeof(pop)),
			       fmt_pct(doc_f64(&d, e, "popular_head_share"), 1, head, sizeof(head)),
			       fmt_strategies(&d, e, (size_t)MAX(28, 120 - (pw + nw + 55)), st, sizeof(st)));
		}
		printf("  coverage: distinct items / catalogue; distance: mean pairwise 1 - cosine in a list; pop pct: mean\n"
		       "  popularity percentile (1 = most popular); head: items in the top 1%% by popularity; strategies:\n"
		       "  lists by the source of their first item\n");
	}
	free(q);
	free(d.t);
	free(rsp.data);
	return EXIT_OK;
}

/* ---------------------------------------------------------- events send */

#define EV_BATCH 500              /* events per request at first (halved on 413) */
#define EV_BATCH_BYTES (256u << 10)
#define EV_RETRIES 10             /* 503 overloaded: one second apart */

struct ev {
	const char *p;                /* its text in the file */
	size_t len;
	long line;                    /* 1-based line of its first byte */
};

struct rej {
	size_t index;                 /* among the events of the file, 0-based */
	char *error;
};

static char *read_file(const char *file, size_t *len)
{
	FILE *f = strcmp(file, "-") ? fopen(file, "re") : stdin;
	if (!f) {
		fprintf(stderr, "recdctl: %s: %s\n", file, strerror(errno));
		return NULL;
	}
	size_t cap = 1 << 16, n = 0;
	char *b = malloc(cap);
	for (size_t r; b; n += r) {
		if (n + 1 >= cap) {
			char *nb = cap < (1u << 30) ? realloc(b, cap * 2) : NULL;
			if (!nb) {
				free(b);
				b = NULL;
				break;
			}
			b = nb;
			cap *= 2;
		}
		r = fread(b + n, 1, cap - n - 1, f);
		if (!r)
			break;
	}
	if (b && ferror(f)) {
		fprintf(stderr, "recdctl: %s: read error\n", file);
		free(b);
		b = NULL;
	} else if (!b) {
		fprintf(stderr, "recdctl: %s: out of memory (or over 1 GiB)\n", file);
	}
	if (f != stdin)
		fclose(f);
	if (b) {
		b[n] = 0;
		*len = n;
	}
	return b;
}

static long line_of(const char *text, const char *p)
{
	long l = 1;
	for (const char *q = text; q < p; q++)
		l += *q == '\n';
	return l;
}

/* Split the file into events: a JSON array, one JSON value, or NDJSON
 * (blank lines skipped, as the daemon skips them). -1 on an array that
 * does not parse (message printed). */
static long split_events(const char *file, const char *text, size_t len, struct ev **out)
{
	size_t i = 0;
	while (i < len && (text[i] == ' ' || text[i] == '\t' || text[i] == '\r' || text[i] == '\n'))
		i++;
	struct doc d = { 0 };
	bool whole = i < len && (text[i] == '[' || text[i] == '{') && doc_parse(&d, text, len) == 0;
	if (i < len && text[i] == '[' && !whole) {
		struct json_tok t[1];
		struct json_err je = { 0 };
		json_parse(text, len, t, 1, &je);
		fprintf(stderr, "recdctl: %s: a JSON array that does not parse (near byte %u)\n", file, je.offset);
		return -1;
	}
	long n = 0, cap = 64;
	struct ev *e = malloc((size_t)cap * sizeof(*e));
	if (whole && d.t[0].type == JSON_ARRAY) {
		for (int k = 1; e && k < (int)d.t[0].next; k = (int)d.t[k].next) {
			if (n == cap && !(e = realloc(e, (size_t)(cap *= 2) * sizeof(*e))))
				break;
			bool quoted = d.t[k].type == JSON_STRING;   /* start/len exclude the quotes */
			const char *p = text + d.t[k].start - quoted;
			e[n++] = (struct ev){ p, d.t[k].len + 2 * quoted, line_of(text, p) };
		}
	} else if (whole && e) {
		e[n++] = (struct ev){ text + i, len - i, line_of(text, text + i) };
	} else {
		long line = 1;
		for (size_t s = 0; e && s < len; line++) {
			const char *nl = memchr(text + s, '\n', len - s);
			size_t end = nl ? (size_t)(nl - text) : len;
			bool blank = true;
			for (size_t j = s; j < end && blank; j++)
				blank = text[j] == ' ' || text[j] == '\t' || text[j] == '\r';
			if (!blank) {
				if (n == cap && !(e = realloc(e, (size_t)(cap *= 2) * sizeof(*e))))
					break;
				e[n++] = (struct ev){ text + s, end - s, line };
			}
			s = end + 1;
		}
	}
	free(d.t);
	if (!e) {
		fprintf(stderr, "recdctl: out of memory\n");
		return -1;
	}
	*out = e;
	return n;
}

/* One NDJSON line per event; the newlines of a pretty-printed array
 * element are only whitespace (JSON strings cannot hold raw ones). */
static size_t build_batch(const struct ev *e, long from, long k, char *body)
{
	size_t o = 0;
	for (long i = from; i < from + k; i++) {
		for (size_t j = 0; j < e[i].len; j++)
			body[o++] = e[i].p[j] == '\n' || e[i].p[j] == '\r' ? ' ' : e[i].p[j];
		body[o++] = '\n';
	}
	return o;
}

static void put_json_str(FILE *out, const char *s)
{
	fputc('"', out);
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		if (*p == '"' || *p == '\\')
			fprintf(out, "\\%c", *p);
		else if (*p < 0x20)
			fprintf(out, "\\u%04x", *p);
		else
			fputc(*p, out);
	}
	fputc('"', out);
}

/* Read the 202's {"accepted":N,"rejected":[{"index":i,"error":e}]} (or a
 * 400 bad_json: every event of the batch refused) into the totals. */
static int take_answer(const struct response *rsp, long from, long k, long *accepted, struct rej **rej, size_t *n_rej)
{
	struct doc d;
	if (doc_parse(&d, rsp->body, rsp->body_len) || d.t[0].type != JSON_OBJECT) {
		free(d.t);
		fprintf(stderr, "recdctl: POST /v1/events: the answer is not a JSON object\n");
		return -1;
	}
	char e[512];
	bool all_bad = rsp->status == 400 && !strcmp(doc_str(&d, 0, "error", e, sizeof(e)), "bad_json");
	int r = doc_get(&d, 0, "rejected");
	size_t more = all_bad ? (size_t)k : r >= 0 && d.t[r].type == JSON_ARRAY ? d.t[r].count : 0;
	struct rej *nr = more ? realloc(*rej, (*n_rej + more) * sizeof(**rej)) : *rej;
	if (more && !nr) {
		free(d.t);
		return -1;
	}
	*rej = nr;
	if (all_bad) {
		doc_str(&d, 0, "detail", e, sizeof(e));
		for (long i = 0; i < k; i++)
			nr[(*n_rej)++] = (struct rej){ (size_t)(from + i), strdup(e) };
	} else {
		*accepted += doc_i64(&d, 0, "accepted");
		for (int t = r + 1; more && t < (int)d.t[r].next; t = (int)d.t[t].next) {
			int64_t idx = doc_i64(&d, t, "index");
			nr[(*n_rej)++] = (struct rej){ (size_t)(from + (idx >= 0 && idx < k ? idx : 0)),
						       strdup(doc_str(&d, t, "error", e, sizeof(e))) };
		}
	}
	free(d.t);
	return 0;
}

static void print_events_result(const struct ctl *c, const struct ev *e, long n, long accepted, const struct rej *rej,
				size_t n_rej)
{
	if (c->json) {
		printf("{\"events\":%ld,\"accepted\":%ld,\"rejected\":[", n, accepted);
		for (size_t i = 0; i < n_rej; i++) {
			printf("%s{\"index\":%zu,\"line\":%ld,\"error\":", i ? "," : "", rej[i].index, e[rej[i].index].line);
			put_json_str(stdout, rej[i].error ? rej[i].error : "?");
			printf("}");
		}
		printf("]}\n");
		return;
	}
	printf("events     %ld\naccepted   %ld\nrejected   %zu\n", n, accepted, n_rej);
	for (size_t i = 0; i < n_rej; i++)
		printf("  line %ld (event %zu): %s\n", e[rej[i].index].line, rej[i].index, rej[i].error ? rej[i].error : "?");
}

int cmd_events_send(struct ctl *c, const char *file)
{
	size_t len;
	char *text = read_file(file, &len);
	if (!text)
		return EXIT_ERROR;
	struct ev *e = NULL;
	long n = split_events(file, text, len, &e);
	if (n <= 0) {
		if (n == 0)
			fprintf(stderr, "recdctl: %s: no events\n", file);
		free(e);
		free(text);
		return EXIT_ERROR;
	}
	char *body = malloc(len + (size_t)n + 1);
	struct rej *rej = NULL;
	size_t n_rej = 0;
	long accepted = 0, per = EV_BATCH, from = 0;
	int rc = body ? EXIT_OK : EXIT_ERROR, retries = 0;
	while (body && from < n) {
		long k = 0;
		size_t bytes = 0;
		while (from + k < n && k < per && (k == 0 || bytes + e[from + k].len + 1 <= EV_BATCH_BYTES))
			bytes += e[from + k++].len + 1;
		size_t bl = build_batch(e, from, k, body);
		/* Each request gets the whole --timeout-ms. */
		c->deadline_ms = mono_ms() + (uint64_t)c->timeout_ms;
		struct response rsp;
		rc = ctl_request_body(c, "POST", "/v1/events", "application/x-ndjson", body, bl, &rsp);
		if (rc)
			break;
		if ((rsp.status == 413 && k > 1) || (rsp.status == 503 && retries < EV_RETRIES)) {
			/* Too many for max_events_per_request (or max_body_bytes):
			 * smaller batches; a full queue: wait and send it again. */
			if (rsp.status == 413)
				per = MAX(k / 2, 1);
			else
				retries++, sleep(1);
			free(rsp.data);
			continue;
		}
		retries = 0;
		bool bad_json = rsp.status == 400 && strstr(rsp.body, "\"bad_json\"");
		if ((rsp.status != 202 && !bad_json) || take_answer(&rsp, from, k, &accepted, &rej, &n_rej)) {
			if (rsp.status != 202 && !bad_json)
				report_http_error(&rsp);
			fprintf(stderr, "recdctl: stopped at event %ld of %ld (line %ld)\n", from, n, e[from].line);
			free(rsp.data);
			rc = EXIT_ERROR;
			break;
		}
		free(rsp.data);
		from += k;
	}
	if (!body)
		fprintf(stderr, "recdctl: out of memory\n");
	else if (from == n)
		print_events_result(c, e, n, accepted, rej, n_rej);
	if (!rc && n_rej)
		rc = EXIT_ERROR;
	for (size_t i = 0; i < n_rej; i++)
		free(rej[i].error);
	free(rej);
	free(body);
	free(e);
	free(text);
	return rc;
}
