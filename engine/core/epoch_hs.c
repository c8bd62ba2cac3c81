/* epoch_hs.c: the epoch-deferred ck_hs allocator (see epoch_hs.h). */
#include <stdlib.h>
#include "core/epoch_hs.h"

static __thread ck_epoch_record_t *writer_rec;

struct deferred_free {
	ck_epoch_entry_t e;   /* first: the callback casts back */
	void *p;
};

static void deferred_free_cb(ck_epoch_entry_t *e)
{
	struct deferred_free *d = (struct deferred_free *)e;
	free(d->p);
	free(d);
}

static void *hs_malloc(size_t n)
{
	return malloc(n);
}

static void hs_free(void *p, size_t n, bool defer)
{
	(void)n;
	if (!defer || !writer_rec) {
		free(p);
		return;
	}
	struct deferred_free *d = malloc(sizeof(*d));
	if (!d)
		return;   /* leak one old table rather than free it under a reader */
	d->p = p;
	ck_epoch_call(writer_rec, &d->e, deferred_free_cb);
}

static void *hs_realloc(void *p, size_t old, size_t n, bool defer)
{
	(void)old;
	(void)defer;
	return realloc(p, n);
}

struct ck_malloc epoch_hs_allocator = { hs_malloc, hs_realloc, hs_free };

void epoch_hs_writer(ck_epoch_record_t *rec)
{
	writer_rec = rec;
}
