/* exp_lua.h: reading plugins/experiments.lua into a struct exp_set.
 *
 * The file is data: it runs in its own throwaway LuaJIT state with no
 * library but string, math and table, under an instruction budget, and
 * must return a list of experiments (or { experiments = { ... } }).
 * Everything is validated here; a problem is reported as
 * "<file>: experiment '<name>': <what is wrong>" and nothing is built.
 * docs/policies.md ("Experiments") documents every field.
 *
 * Control thread (and main before the workers start) only.
 */
#ifndef RECD_EXP_LUA_H
#define RECD_EXP_LUA_H

#include "exp/exp.h"

/* Resolves a model name to a srv model slot (>= 0), or -1 when no such
 * model is configured. */
typedef int (*exp_model_lookup)(void *ctx, const char *name);

/* Load `dir`/experiments.lua into a new set (heap; free() it). No file:
 * 0 and an empty set. `display_dir` names the file in messages (the
 * operator's directory rather than a staged copy; NULL = dir). Returns 0
 * or -EINVAL/-ENOMEM with the message in err. Slots are taken for every
 * variant (exp_slot_get). */
int exp_lua_load(const char *dir, const char *display_dir, exp_model_lookup models, void *models_ctx,
		 struct exp_set **out, char *err, size_t errlen);

#endif
