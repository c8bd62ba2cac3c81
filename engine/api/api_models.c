/* api_models.c: the model slots in /admin/status, /admin/reload and the
 * metrics (see api_models.h). */
#include <string.h>
#include "api/api_models.h"

void api_models_status(struct recd_server *srv, struct buf *b)
{
	buf_puts_lit(b, ",\"models\":[");
	for (uint32_t i = 0; i < srv_model_count(srv); i++) {
		struct srv_model_ref m;
		srv_model_ref(srv, (int)i, &m);
		const struct snap *s = srv_model_snapshot(srv, (int)i);
		if (i)
			buf_putc(b, ',');
		buf_puts_lit(b, "{\"name\":");
		buf_put_json_str(b, m.name, strlen(m.name));
		buf_puts_lit(b, ",\"path\":");
		buf_put_json_str(b, m.path, strlen(m.path));
		buf_puts_lit(b, ",\"model_version\":");
		if (s) {
			buf_put_json_str(b, s->hdr->model_version, strnlen(s->hdr->model_version, SNAP_MODEL_VERSION_LEN));
			buf_printf(b, ",\"generation\":%llu,\"items\":%u,\"users\":%u,\"dim\":%u,\"loaded_at_ms\":%llu",
				   (unsigned long long)s->generation, s->n_items, s->n_users, s->dim,
				   (unsigned long long)s->loaded_at_ms);
		} else {
			buf_puts_lit(b, "null,\"generation\":0,\"items\":0,\"users\":0,\"dim\":0,\"loaded_at_ms\":0");
		}
		buf_printf(b, ",\"load_failures\":%llu}", (unsigned long long)ck_pr_load_64(m.load_failures));
	}
	buf_putc(b, ']');
}

void api_models_gauges(struct recd_server *srv, struct metrics_gauges *g)
{
	_Static_assert(METRICS_MODELS == SRV_MAX_MODELS + 1, "a metrics row per model slot");
	g->n_models = srv_model_count(srv);
	for (uint32_t i = 0; i < g->n_models && i < METRICS_MODELS; i++) {
		struct srv_model_ref m;
		srv_model_ref(srv, (int)i, &m);
		const struct snap *s = srv_model_snapshot(srv, (int)i);
		g->model_names[i] = m.name;
		g->model_generation[i] = s ? s->generation : 0;
		g->model_load_failures[i] = ck_pr_load_64(m.load_failures);
	}
}

void api_models_reload(const struct recd_server *srv, const struct ctl_reload_result *res, struct buf *b)
{
	static const char *const st[] = { "reloaded", "unchanged", "refused" };
	buf_puts_lit(b, ",\"models\":[");
	for (uint32_t i = 0; i < res->n_models && i < ARRAY_SIZE(res->models); i++) {
		const char *name = srv_model_name(srv, (int)i);
		bool refused = res->models[i].status == CTL_REFUSED;
		if (i)
			buf_putc(b, ',');
		buf_puts_lit(b, "{\"name\":");
		buf_put_json_str(b, name ? name : "", name ? strlen(name) : 0);
		buf_printf(b, ",\"status\":\"%s\",\"generation\":%llu", st[res->models[i].status],
			   (unsigned long long)res->models[i].generation);
		if (refused) {
			buf_puts_lit(b, ",\"detail\":");
			buf_put_json_str(b, res->models[i].error, strlen(res->models[i].error));
		}
		buf_putc(b, '}');
	}
	buf_putc(b, ']');
}
