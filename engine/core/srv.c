/* srv.c: publication of process-wide state (see srv.h). */
#include "core/srv.h"

struct snap *srv_publish_snapshot(struct recd_server *srv, struct snap *s)
{
	struct snap *old = srv->snapshot;
	s->generation = ++srv->snapshot_generation;
	/* Every store that built `s` must be visible before the pointer is. */
	ck_pr_fence_store();
	ck_pr_store_ptr(&srv->snapshot, s);
	return old;
}
