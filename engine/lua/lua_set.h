/* lua_set.h: a policy set as files — the plugins directory copied into a
 * private directory that nothing edits, so the set that passed the
 * pre-flight is byte for byte the set every worker loads (an edit landing
 * halfway through a reload cannot split the workers), plus a fingerprint
 * of the contents to tell a real edit from an editor touching a file.
 *
 * Control thread (and main before the workers start) only.
 */
#ifndef RECD_LUA_SET_H
#define RECD_LUA_SET_H

#include <limits.h>
#include "core/common.h"

#define LUA_SET_MAX_FILES 256
#define LUA_SET_MAX_FILE_BYTES (4u << 20)

struct lua_set {
	char dir[PATH_MAX];   /* the private copy ("" = none) */
	uint64_t print;       /* lua_set_fingerprint of the copy */
};

/* XXH3 over the names and contents of the *.lua files of `dir`, in name
 * order. 0 when the directory cannot be read. */
uint64_t lua_set_fingerprint(const char *dir);

/* Copy the *.lua files of `src` into a new directory under `base`
 * ($RUNTIME_DIRECTORY, $TMPDIR or /tmp when NULL). 0, or -errno with
 * "path: problem" in err. */
int lua_set_stage(const char *src, const char *base, struct lua_set *out, char *err, size_t errlen);

/* Error messages name files by the staged path; put the source
 * directory back so the author sees their own file:line. In place. */
void lua_set_unstage_msg(const struct lua_set *s, const char *src, char *msg, size_t len);

/* Delete the staged copies of processes that no longer run (a recd that
 * was killed could not clean up) under `base` (NULL as for stage). */
void lua_set_sweep(const char *base);

/* Delete a staged copy (its files and directory); no-op on "". */
void lua_set_remove(struct lua_set *s);

#endif
