/* exp_report.c: /admin/experiments, /admin/quality and their metrics (see
 * exp_report.h). */
#include "exp/exp_report.h"

#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <ck_pr.h>
#include "exp/exp_stats.h"
#include "lua/lua_host.h"
#include "metrics/metrics.h"

/* `"k":` for the next member of the object being written: the comma
 * comes by itself unless the member is the object's first. */
static void key(struct buf *b, const char *k)
{
	if (b->len && b->data[b->len - 1] != '{' && b->data[b->len - 1] != '[')
		buf_putc(b, ',');
	buf_putc(b, '"');
	buf_puts(b, k);
	buf_puts_lit(b, "\":");
}

static void key_str(struct buf *b, const char *k, const char *v)
{
	key(b, k);
	buf_put_json_str(b, v, strlen(v));
}

static void key_u64(struct buf *b, const char *k, uint64_t v)
{
	key(b, k);
	buf_put_u64(b, v);
}

static void key_dbl(struct buf *b, const char *k, double v)
{
	key(b, k);
	if (isfinite(v))
		buf_put_double(b, v);
	else
		buf_puts_lit(b, "null");
}

static void key_bool(struct buf *b, const char *k, bool v)
{
	key(b, k);
	buf_puts(b, v ? "true" : "false");
}

/* {"value":..,"lo":..,"hi":..} of successes / trials. */
static void proportion(struct buf *b, const char *k, uint64_t s, uint64_t n)
{
	struct exp_interval ci = exp_wilson_interval(s, n, 0.95);
	key(b, k);
	buf_putc(b, '{');
	key_dbl(b, "value", n ? (double)s / (double)n : 0);
	key_dbl(b, "lo", ci.lo);
	key_dbl(b, "hi", ci.hi);
	buf_putc(b, '}');
}

static void vs_control(struct buf *b, const char *k, uint64_t cs, uint64_t cn, uint64_t vs, uint64_t vn, double alpha)
{
	struct exp_ztest z = exp_two_proportion_ztest(cs, cn, vs, vn);
	key(b, k);
	buf_putc(b, '{');
	key_dbl(b, "diff", z.diff);
	key_dbl(b, "z", z.z);
	key_dbl(b, "p_value", z.p_value);
	key_bool(b, "significant", z.valid && z.p_value < alpha);
	key_bool(b, "valid", z.valid);
	buf_putc(b, '}');
}

/* Everything about one served variant (or the holdout). */
static void put_variant(struct buf *b, const struct exp_ledger *l, const struct exp_experiment *e,
			const struct exp_variant *v, uint32_t slot, const char *name, const struct exp_counts *ctl,
			uint64_t needed)
{
	struct exp_counts c;
	exp_ledger_counts_read(l, slot, &c);
	buf_putc(b, '{');
	key_str(b, "name", name);
	if (v) {
		key_u64(b, "weight", v->weight / 100);
		if (v->weight % 100)
			buf_printf(b, ".%02u", v->weight % 100);
		if (e->thompson && !v->shadow) {
			key_dbl(b, "allocation", (double)ck_pr_load_32(&exp_slots[slot].alloc_bp) / EXP_BUCKETS);
		}
		if (v->model[0]) {
			key_str(b, "model", v->model);
		}
		static const char *const hook_names[LUA_HOOK_SLOTS] = { "route", "rules", "rerank" };
		bool any = false;
		for (uint32_t h = 0; h < LUA_HOOK_SLOTS; h++) {
			if (!v->hooks[h][0])
				continue;
			if (!any) {
				key(b, "hooks");
				buf_putc(b, '{');
			}
			key_str(b, hook_names[h], v->hooks[h]);
			any = true;
		}
		if (any)
			buf_putc(b, '}');
		key_bool(b, "shadow", v->shadow);
		bool off = ck_pr_load_32(&exp_slots[slot].disabled) != 0;
		key_bool(b, "disabled", off);
		if (off) {
			key_str(b, "disabled_reason", c.disabled_reason);
		}
	} else {
		key_bool(b, "holdout", true);
	}
	if (v && v->shadow) {
		key_u64(b, "shadow_lists", c.shadow_lists);
		key_dbl(b, "mean_overlap", c.shadow_items ? (double)c.shadow_overlap / (double)c.shadow_items : 0);
		key_dbl(b, "mean_took_us", c.shadow_lists ? (double)c.shadow_took_us / (double)c.shadow_lists : 0);
		buf_putc(b, '}');
		return;
	}
	key_u64(b, "impressions", c.lists);
	key_u64(b, "items_shown", c.items);
	key_u64(b, "clicks", c.clicks);
	key_u64(b, "add_to_carts", c.add_to_carts);
	key_u64(b, "purchases", c.purchases);
	key_dbl(b, "revenue", c.revenue);
	key_u64(b, "clicked_lists", c.clicked_lists);
	key_u64(b, "converted_lists", c.converted_lists);
	key_u64(b, "attributed_by_request_id", c.by_request);
	key_u64(b, "attributed_by_window", c.by_window);
	proportion(b, "ctr", c.clicked_lists, c.lists);
	proportion(b, "conversion", c.converted_lists, c.lists);
	proportion(b, "add_to_cart_rate", c.carted_lists, c.lists);
	key_dbl(b, "error_rate", c.lists ? (double)c.errors / (double)c.lists : 0);
	key_dbl(b, "fallback_rate", c.lists ? (double)c.fallbacks / (double)c.lists : 0);
	key_u64(b, "p50_us", exp_ledger_latency_quantile(l, slot, 0.5));
	key_u64(b, "p99_us", exp_ledger_latency_quantile(l, slot, 0.99));
	key(b, "clicks_by_position");
	buf_putc(b, '[');
	for (uint32_t i = 0; i < EXP_POSITIONS; i++)
		buf_printf(b, "%s%llu", i ? "," : "", (unsigned long long)c.clicks_at[i]);
	buf_putc(b, ']');
	if (ctl) {
		vs_control(b, "ctr_vs_control", ctl->clicked_lists, ctl->lists, c.clicked_lists, c.lists, e->alpha);
		vs_control(b, "conversion_vs_control", ctl->converted_lists, ctl->lists, c.converted_lists, c.lists,
			   e->alpha);
	}
	if (needed) {
		key_u64(b, "samples_still_needed", exp_samples_still_needed(needed, c.lists));
	}
	buf_putc(b, '}');
}

void exp_report_json(const struct exp_ledger *l, struct buf *b)
{
	const struct exp_set *set = exp_set_current();
	buf_puts_lit(b, "{\"experiments\":[");
	for (uint32_t x = 0; set && x < set->n; x++) {
		const struct exp_experiment *e = &set->e[x];
		struct exp_counts ctl;
		exp_ledger_counts_read(l, e->v[e->control].slot, &ctl);
		/* The seed's sample size, from control's observed CTR. */
		double base = ctl.lists ? (double)ctl.clicked_lists / (double)ctl.lists : 0;
		uint64_t needed = base > 0 && base < 1 ? exp_sample_size(base, e->min_detectable_effect, e->alpha, e->power) : 0;
		if (x)
			buf_putc(b, ',');
		buf_putc(b, '{');
		key_str(b, "name", e->name);
		key_str(b, "salt", e->salt);
		key_dbl(b, "exposure", e->exposure);
		key_dbl(b, "holdout", (double)e->holdout_bp / EXP_BUCKETS);
		key_str(b, "allocation", e->thompson ? "thompson" : "fixed");
		key_str(b, "control", e->v[e->control].name);
		key(b, "placements");
		buf_putc(b, '[');
		for (uint32_t p = 0; p < e->n_placements; p++) {
			if (p)
				buf_putc(b, ',');
			buf_put_json_str(b, e->placements[p], strlen(e->placements[p]));
		}
		buf_putc(b, ']');
		key_dbl(b, "min_detectable_effect", e->min_detectable_effect);
		key_dbl(b, "alpha", e->alpha);
		key_dbl(b, "power", e->power);
		key_dbl(b, "baseline_ctr", base);
		key_u64(b, "sample_size_per_variant", needed);
		key(b, "variants");
		buf_putc(b, '[');
		for (uint32_t i = 0; i < e->n_variants; i++) {
			const struct exp_variant *v = &e->v[i];
			if (i)
				buf_putc(b, ',');
			put_variant(b, l, e, v, v->slot, v->name, i == e->control || v->shadow ? NULL : &ctl,
				    v->shadow ? 0 : needed);
		}
		if (e->holdout_slot != EXP_NO_SLOT) {
			buf_putc(b, ',');
			put_variant(b, l, e, NULL, e->holdout_slot, "holdout", &ctl, 0);
		}
		buf_puts_lit(b, "]}");
	}
	struct exp_ledger_stats st;
	exp_ledger_stats_read(l, &st);
	buf_puts_lit(b, "],\"ledger\":{");
	key_u64(b, "impressions", st.impressions);
	key_u64(b, "impressions_dropped", st.dropped);
	key_u64(b, "outcomes", st.outcomes);
	key_u64(b, "outcomes_dropped", st.outcomes_dropped);
	key_u64(b, "unattributed", st.unattributed);
	key_u64(b, "attribution_window_s", l->o.window_s);
	buf_puts_lit(b, "}}\n");
}

/* ------------------------------------------------------------ quality */

struct cell_names {
	char placement[EXP_PLACEMENT_LEN];
	char experiment[EXP_NAME_LEN], variant[EXP_NAME_LEN];
};

static void cell_names(uint32_t key, char placements[][EXP_PLACEMENT_LEN], uint32_t n_placements,
		       struct cell_names *out)
{
	uint32_t p = key >> 16, slot1 = key & 0xffff;
	if (!p)
		snprintf(out->placement, sizeof(out->placement), "none");
	else if (p <= n_placements)
		snprintf(out->placement, sizeof(out->placement), "%s", placements[p - 1]);
	else
		snprintf(out->placement, sizeof(out->placement), "other");
	if (slot1 && slot1 - 1 < exp_slot_count()) {
		snprintf(out->experiment, sizeof(out->experiment), "%s", exp_slots[slot1 - 1].experiment);
		snprintf(out->variant, sizeof(out->variant), "%s", exp_slots[slot1 - 1].variant);
	} else {
		out->experiment[0] = 0;
		snprintf(out->variant, sizeof(out->variant), "none");
	}
}

static __thread struct exp_gauge_view tl_views[EXP_GAUGE_MAX_CELLS];
static __thread uint32_t tl_keys[EXP_GAUGE_MAX_CELLS];

void exp_report_quality_json(struct exp_ledger *l, struct buf *b)
{
	char placements[EXP_GAUGE_PLACEMENTS][EXP_PLACEMENT_LEN];
	uint32_t np = 0, n = exp_ledger_views(l, tl_views, tl_keys, EXP_GAUGE_MAX_CELLS, placements, &np);
	buf_printf(b, "{\"window_s\":%u,\"cells\":[", l->o.gauge_window_s);
	for (uint32_t i = 0; i < n; i++) {
		const struct exp_gauge_view *v = &tl_views[i];
		struct cell_names cn;
		cell_names(tl_keys[i], placements, np, &cn);
		if (i)
			buf_putc(b, ',');
		buf_putc(b, '{');
		key_str(b, "placement", cn.placement);
		if (cn.experiment[0]) {
			key_str(b, "experiment", cn.experiment);
		}
		key_str(b, "variant", cn.variant);
		key_u64(b, "lists", v->lists);
		key_u64(b, "items", v->items);
		key_dbl(b, "distinct_items", v->distinct_items);
		key_dbl(b, "coverage", v->coverage);
		key_dbl(b, "categories_per_list", v->mean_categories_per_list);
		key_dbl(b, "pairwise_distance", v->mean_pairwise_distance);
		key_dbl(b, "popularity_percentile", v->mean_popularity_percentile);
		key_dbl(b, "popular_head_share", v->popular_head_share);
		key(b, "strategies");
		buf_putc(b, '{');
		bool first = true;
		for (uint32_t s = 0; s < EXP_GAUGE_MAX_STRATEGIES && s < LUA_SRC__COUNT; s++) {
			if (!v->strategy[s])
				continue;
			buf_printf(b, "%s\"%s\":%llu", first ? "" : ",", lua_source_names[s],
				   (unsigned long long)v->strategy[s]);
			first = false;
		}
		buf_puts_lit(b, "}}");
	}
	buf_puts_lit(b, "]}\n");
}

/* ------------------------------------------------------------ metrics */

static void labels_ev(struct buf *b, const char *name, const char *experiment, const char *variant)
{
	buf_puts(b, name);
	buf_puts_lit(b, "{experiment=");
	metrics_label(b, experiment);
	buf_puts_lit(b, ",variant=");
	metrics_label(b, variant);
	buf_puts_lit(b, "} ");
}

struct exp_family {
	const char *name, *type, *help;
	size_t off;        /* offset of the uint64 counter in struct exp_counts; SIZE_MAX: computed */
};

void exp_report_metrics(struct exp_ledger *l, struct buf *b)
{
	static const struct exp_family fam[] = {
		{ "recd_experiment_impressions_total", "counter", "Lists served per experiment variant.",
		  offsetof(struct exp_counts, lists) },
		{ "recd_experiment_clicks_total", "counter", "Clicks attributed to the variant that showed the item.",
		  offsetof(struct exp_counts, clicks) },
		{ "recd_experiment_add_to_carts_total", "counter", "Add-to-carts attributed per variant.",
		  offsetof(struct exp_counts, add_to_carts) },
		{ "recd_experiment_purchases_total", "counter", "Purchases attributed per variant.",
		  offsetof(struct exp_counts, purchases) },
		{ "recd_experiment_clicked_lists_total", "counter", "Served lists with at least one attributed click.",
		  offsetof(struct exp_counts, clicked_lists) },
		{ "recd_experiment_converted_lists_total", "counter",
		  "Served lists with at least one attributed purchase.", offsetof(struct exp_counts, converted_lists) },
		{ "recd_experiment_fallbacks_total", "counter", "Lists of the variant served by the C fallback.",
		  offsetof(struct exp_counts, fallbacks) },
		{ "recd_experiment_shadow_lists_total", "counter", "Shadow lists computed (never served).",
		  offsetof(struct exp_counts, shadow_lists) },
	};
	uint32_t n = exp_slot_count();
	for (size_t f = 0; f < ARRAY_SIZE(fam); f++) {
		metrics_family(b, fam[f].name, fam[f].type, fam[f].help);
		for (uint32_t s = 0; s < n; s++) {
			labels_ev(b, fam[f].name, exp_slots[s].experiment, exp_slots[s].variant);
			buf_put_u64(b, ck_pr_load_64((uint64_t *)((char *)&l->counts[s] + fam[f].off)));
			buf_putc(b, '\n');
		}
	}
	metrics_family(b, "recd_experiment_revenue_total", "counter", "Revenue of attributed purchases per variant.");
	for (uint32_t s = 0; s < n; s++) {
		struct exp_counts c;
		exp_ledger_counts_read(l, s, &c);
		labels_ev(b, "recd_experiment_revenue_total", exp_slots[s].experiment, exp_slots[s].variant);
		buf_put_double(b, c.revenue);
		buf_putc(b, '\n');
	}
	metrics_family(b, "recd_experiment_variant_disabled", "gauge", "1 when a guardrail switched the variant off.");
	for (uint32_t s = 0; s < n; s++) {
		labels_ev(b, "recd_experiment_variant_disabled", exp_slots[s].experiment, exp_slots[s].variant);
		buf_put_u64(b, ck_pr_load_32(&exp_slots[s].disabled) ? 1 : 0);
		buf_putc(b, '\n');
	}
	metrics_family(b, "recd_experiment_p99_seconds", "gauge", "p99 server time of the variant's lists.");
	for (uint32_t s = 0; s < n; s++) {
		labels_ev(b, "recd_experiment_p99_seconds", exp_slots[s].experiment, exp_slots[s].variant);
		buf_put_double(b, (double)exp_ledger_latency_quantile(l, s, 0.99) / 1e6);
		buf_putc(b, '\n');
	}
	/* p-values against control: for the variants of the current set. */
	metrics_family(b, "recd_experiment_ctr_p_value", "gauge",
		       "Two-sided p-value of the variant's CTR against control (two-proportion z-test).");
	const struct exp_set *set = exp_set_current();
	for (uint32_t x = 0; set && x < set->n; x++) {
		const struct exp_experiment *e = &set->e[x];
		struct exp_counts ctl, c;
		exp_ledger_counts_read(l, e->v[e->control].slot, &ctl);
		for (uint32_t i = 0; i < e->n_variants; i++) {
			if (i == e->control || e->v[i].shadow)
				continue;
			exp_ledger_counts_read(l, e->v[i].slot, &c);
			struct exp_ztest z = exp_two_proportion_ztest(ctl.clicked_lists, ctl.lists, c.clicked_lists, c.lists);
			labels_ev(b, "recd_experiment_ctr_p_value", e->name, e->v[i].name);
			buf_put_double(b, z.p_value);
			buf_putc(b, '\n');
		}
	}
	struct exp_ledger_stats st;
	exp_ledger_stats_read(l, &st);
	metrics_family(b, "recd_experiment_unattributed_total", "counter",
		       "Click, add-to-cart and purchase events that matched no served list.");
	buf_puts_lit(b, "recd_experiment_unattributed_total ");
	buf_put_u64(b, st.unattributed);
	buf_puts_lit(b, "\n");
	metrics_family(b, "recd_experiment_ledger_dropped_total", "counter",
		       "Impressions and outcomes the ledger's queues could not take.");
	buf_puts_lit(b, "recd_experiment_ledger_dropped_total ");
	buf_put_u64(b, st.dropped + st.outcomes_dropped);
	buf_puts_lit(b, "\n");

	/* Quality gauges per placement and variant. */
	char placements[EXP_GAUGE_PLACEMENTS][EXP_PLACEMENT_LEN];
	uint32_t np = 0, nv = exp_ledger_views(l, tl_views, tl_keys, EXP_GAUGE_MAX_CELLS, placements, &np);
	static const struct { const char *name, *help; size_t off; } q[] = {
		{ "recd_quality_coverage", "Distinct items served in the window / catalogue size.",
		  offsetof(struct exp_gauge_view, coverage) },
		{ "recd_quality_categories_per_list", "Mean distinct categories per served list.",
		  offsetof(struct exp_gauge_view, mean_categories_per_list) },
		{ "recd_quality_pairwise_distance", "Mean pairwise embedding distance (1 - cosine) within lists.",
		  offsetof(struct exp_gauge_view, mean_pairwise_distance) },
		{ "recd_quality_popularity_percentile", "Mean popularity percentile of served items (1 = most popular).",
		  offsetof(struct exp_gauge_view, mean_popularity_percentile) },
		{ "recd_quality_popular_head_share", "Share of served items in the top 1% by popularity.",
		  offsetof(struct exp_gauge_view, popular_head_share) },
	};
	for (size_t f = 0; f < ARRAY_SIZE(q); f++) {
		metrics_family(b, q[f].name, "gauge", q[f].help);
		for (uint32_t i = 0; i < nv; i++) {
			struct cell_names cn;
			cell_names(tl_keys[i], placements, np, &cn);
			buf_puts(b, q[f].name);
			buf_puts_lit(b, "{placement=");
			metrics_label(b, cn.placement);
			buf_puts_lit(b, ",experiment=");
			metrics_label(b, cn.experiment);
			buf_puts_lit(b, ",variant=");
			metrics_label(b, cn.variant);
			buf_puts_lit(b, "} ");
			double v;
			memcpy(&v, (const char *)&tl_views[i] + q[f].off, sizeof(v));
			buf_put_double(b, v);
			buf_putc(b, '\n');
		}
	}
	metrics_family(b, "recd_quality_lists", "gauge", "Lists served in the window, by placement, variant and strategy.");
	for (uint32_t i = 0; i < nv; i++) {
		struct cell_names cn;
		cell_names(tl_keys[i], placements, np, &cn);
		for (uint32_t s = 1; s < EXP_GAUGE_MAX_STRATEGIES && s < LUA_SRC__COUNT; s++) {
			buf_puts_lit(b, "recd_quality_lists{placement=");
			metrics_label(b, cn.placement);
			buf_puts_lit(b, ",experiment=");
			metrics_label(b, cn.experiment);
			buf_puts_lit(b, ",variant=");
			metrics_label(b, cn.variant);
			buf_puts_lit(b, ",strategy=");
			metrics_label(b, lua_source_names[s]);
			buf_puts_lit(b, "} ");
			buf_put_u64(b, tl_views[i].strategy[s]);
			buf_putc(b, '\n');
		}
	}
}
