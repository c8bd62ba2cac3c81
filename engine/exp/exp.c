/* exp.c: experiment assignment, the runtime slots and the publication of
 * experiment sets (see exp.h for the formula and the threads). */
#include "exp/exp.h"

#include <stdio.h>
#include <string.h>
#include <xxhash.h>
#include <ck_pr.h>

struct exp_slot exp_slots[EXP_MAX_SLOTS];
static uint32_t n_slots;                 /* ck_pr: raised after a slot's names are written */
static struct exp_set *current;          /* ck_pr */

uint32_t exp_slot_count(void)
{
	return ck_pr_load_32(&n_slots);
}

uint32_t exp_slot_get(const char *experiment, const char *variant)
{
	uint32_t n = n_slots;
	for (uint32_t i = 0; i < n; i++)
		if (!strcmp(exp_slots[i].experiment, experiment) && !strcmp(exp_slots[i].variant, variant))
			return i;
	if (n == EXP_MAX_SLOTS)
		return EXP_NO_SLOT;
	struct exp_slot *s = &exp_slots[n];
	snprintf(s->experiment, sizeof(s->experiment), "%s", experiment);
	snprintf(s->variant, sizeof(s->variant), "%s", variant);
	ck_pr_fence_store();
	ck_pr_store_32(&n_slots, n + 1);
	return n;
}

uint32_t exp_bucket(const char *salt, size_t salt_len, const char *tag, const char *user, size_t user_len)
{
	/* salt (<= 64) + ':' + tag (<= 9) + user id (<= 127 at the API):
	 * one stack buffer and a one-shot hash beat a streaming state. */
	char buf[EXP_SALT_LEN + 16 + 256];
	size_t tl = strlen(tag);
	if (salt_len > EXP_SALT_LEN || user_len > 256)
		return 0;
	memcpy(buf, salt, salt_len);
	buf[salt_len] = ':';
	memcpy(buf + salt_len + 1, tag, tl);
	memcpy(buf + salt_len + 1 + tl, user, user_len);
	return (uint32_t)(XXH3_64bits(buf, salt_len + 1 + tl + user_len) % EXP_BUCKETS);
}

/* Ranges of `bucket` over the served variants, in declared order, each
 * sized weight / total (the last one ends at EXP_BUCKETS exactly). */
static uint32_t pick_by_weights(const struct exp_experiment *e, const uint32_t *w, uint64_t total, uint32_t bucket)
{
	uint64_t acc = 0;
	uint32_t last = e->control;
	for (uint32_t i = 0; i < e->n_variants; i++) {
		if (e->v[i].shadow || !w[i])
			continue;
		acc += w[i];
		last = i;
		if ((uint64_t)bucket * total < acc * EXP_BUCKETS)
			return i;
	}
	return last;
}

uint32_t exp_variant_for_bucket(const struct exp_experiment *e, uint32_t bucket)
{
	uint32_t w[EXP_MAX_VARIANTS];
	for (uint32_t i = 0; i < e->n_variants; i++)
		w[i] = e->v[i].shadow ? 0 : e->v[i].weight;
	return e->total_weight ? pick_by_weights(e, w, e->total_weight, bucket) : e->control;
}

static bool placement_applies(const struct exp_experiment *e, const char *p, size_t len)
{
	if (!e->n_placements)
		return true;
	for (uint32_t i = 0; p && i < e->n_placements; i++)
		if (strlen(e->placements[i]) == len && !memcmp(e->placements[i], p, len))
			return true;
	return false;
}

bool exp_assign(const struct exp_set *set, const char *user, size_t user_len, const char *placement,
		size_t placement_len, struct exp_pick *out)
{
	if (!set || !user || !user_len)
		return false;
	for (uint32_t x = 0; x < set->n; x++) {
		const struct exp_experiment *e = &set->e[x];
		if (!placement_applies(e, placement, placement_len))
			continue;
		uint32_t eb = exp_bucket(e->salt, e->salt_len, "exposure:", user, user_len);
		bool holdout = e->holdout_bp && eb >= EXP_BUCKETS - e->holdout_bp;
		if (!holdout && eb >= e->exposure_bp)
			continue;
		memset(out, 0, sizeof(*out));
		out->experiment = x;
		out->exposure_bucket = eb;
		out->bucket = exp_bucket(e->salt, e->salt_len, "", user, user_len);
		if (holdout) {
			out->variant = out->assigned = e->control;
			out->slot = e->holdout_slot;
			out->flags = EXP_PICK_HOLDOUT;
			return true;
		}
		uint32_t v = EXP_MAX_VARIANTS;
		if (e->thompson) {
			/* Adaptive weights, read one by one: a torn read across
			 * variants still yields some valid split. */
			uint32_t w[EXP_MAX_VARIANTS];
			uint64_t total = 0;
			for (uint32_t i = 0; i < e->n_variants; i++) {
				w[i] = e->v[i].shadow ? 0 : ck_pr_load_32(&exp_slots[e->v[i].slot].alloc_bp);
				total += w[i];
			}
			if (total)
				v = pick_by_weights(e, w, total, out->bucket);
		}
		if (v == EXP_MAX_VARIANTS)
			v = exp_variant_for_bucket(e, out->bucket);
		out->assigned = v;
		if (v != e->control && ck_pr_load_32(&exp_slots[e->v[v].slot].disabled)) {
			out->flags = EXP_PICK_GUARDED;
			v = e->control;
		}
		out->variant = v;
		out->slot = e->v[v].slot;
		return true;
	}
	return false;
}

const char *exp_pick_variant_name(const struct exp_set *set, const struct exp_pick *p)
{
	if (p->flags & EXP_PICK_HOLDOUT)
		return "holdout";
	return set->e[p->experiment].v[p->variant].name;
}

struct exp_set *exp_set_publish(struct exp_set *s)
{
	struct exp_set *old = current;
	struct exp_set *gone = old ? old->prev : NULL;
	s->prev = old;
	if (old)
		ck_pr_store_ptr(&old->prev, NULL);   /* `gone` is unreachable for new readers */
	ck_pr_fence_store();
	ck_pr_store_ptr(&current, s);
	return gone;
}

const struct exp_set *exp_set_current(void)
{
	return ck_pr_load_ptr(&current);
}

const struct exp_set *exp_set_for(uint64_t gen)
{
	const struct exp_set *s = ck_pr_load_ptr(&current);
	if (s && s->generation != gen)
		s = ck_pr_load_ptr(&((struct exp_set *)s)->prev);
	return s && s->generation == gen ? s : NULL;
}

struct exp_set *exp_set_take_all(void)
{
	return ck_pr_fas_ptr(&current, NULL);
}
