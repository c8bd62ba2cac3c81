/* epoch_hs.h: the allocator for ck_hs tables that one writer thread shares
 * with lock-free readers (live state, the per-user lists). When a table
 * grows, ck_hs frees the old slot array with `defer` set: readers may
 * still be walking it, so it is freed only after an epoch grace period
 * (ck_epoch_call on the writing thread's record, polled by that thread).
 * ck_hs gives its allocator no context pointer, so the record is per
 * thread: a writer names its own before it writes.
 */
#ifndef RECD_EPOCH_HS_H
#define RECD_EPOCH_HS_H

#include <ck_epoch.h>
#include <ck_malloc.h>

extern struct ck_malloc epoch_hs_allocator;

/* The calling thread's record for deferred frees from now on; NULL: free
 * at once (no reader can hold the table: set-up, tear-down). */
void epoch_hs_writer(ck_epoch_record_t *rec);

#endif
