/* srv.c: publication of process-wide state and the model slots (see srv.h). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "core/srv.h"

struct snap *srv_publish_model(struct recd_server *srv, int slot, struct snap *s)
{
	struct srv_model_ref ref;
	if (!srv_model_ref(srv, slot, &ref))
		return NULL;
	struct snap *old = *ref.snapshot;
	/* One counter for every slot: a generation names one snapshot. */
	s->generation = srv->snapshot_generation + 1;
	ck_pr_store_64(&srv->snapshot_generation, s->generation);
	/* Every store that built `s` must be visible before the pointer is. */
	ck_pr_fence_store();
	ck_pr_store_ptr(ref.snapshot, s);
	return old;
}

struct snap *srv_publish_snapshot(struct recd_server *srv, struct snap *s)
{
	return srv_publish_model(srv, 0, s);
}

int srv_models_init(struct recd_server *srv, char *err, size_t errlen)
{
	struct cfg_model *m = malloc(SRV_MAX_MODELS * sizeof(*m));
	size_t n = 0;
	if (!m) {
		snprintf(err, errlen, "models: out of memory");
		return -ENOMEM;
	}
	int r = cfg_models_parse(srv->cfg.models, m, &n, err, errlen);
	if (!r) {
		for (size_t i = 0; i < n; i++) {
			struct srv_model *sm = &srv->models[i];
			memset(sm, 0, sizeof(*sm));
			memcpy(sm->name, m[i].name, sizeof(sm->name));
			memcpy(sm->path, m[i].path, sizeof(sm->path));
		}
		srv->n_models = (uint32_t)n;
	}
	free(m);
	return r;
}

int srv_model_find(const struct recd_server *srv, const char *name, size_t len)
{
	if (strlen(srv->cfg.model_name) == len && !memcmp(srv->cfg.model_name, name, len))
		return 0;
	for (uint32_t i = 0; i < srv->n_models; i++)
		if (strlen(srv->models[i].name) == len && !memcmp(srv->models[i].name, name, len))
			return (int)i + 1;
	return -1;
}

struct snap *srv_model_snapshot(struct recd_server *srv, int slot)
{
	if (slot == 0)
		return srv_snapshot(srv);
	if (slot < 0 || (uint32_t)slot > srv->n_models)
		return NULL;
	return ck_pr_load_ptr(&srv->models[slot - 1].snapshot);
}

const char *srv_model_name(const struct recd_server *srv, int slot)
{
	if (slot == 0)
		return srv->cfg.model_name;
	if (slot < 0 || (uint32_t)slot > srv->n_models)
		return NULL;
	return srv->models[slot - 1].name;
}

uint32_t srv_model_count(const struct recd_server *srv)
{
	return 1 + srv->n_models;
}

bool srv_model_ref(struct recd_server *srv, int slot, struct srv_model_ref *ref)
{
	if (slot == 0) {
		*ref = (struct srv_model_ref){ srv->cfg.model_name, srv->cfg.snapshot, &srv->snapshot,
					       &srv->snapshot_file, &srv->snapshot_load_failures };
		return true;
	}
	if (slot < 0 || (uint32_t)slot > srv->n_models)
		return false;
	struct srv_model *m = &srv->models[slot - 1];
	*ref = (struct srv_model_ref){ m->name, m->path, &m->snapshot, &m->file, &m->load_failures };
	return true;
}
