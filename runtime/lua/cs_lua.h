/* cs_lua: the Lua host — the only part of cstream that includes lua.h
 * (this folder). It creates the LuaJIT state, installs the `cstream`
 * module (the pure-Lua API compiled into the binary, plus the C primitives
 * in `cstream.core`), runs a pipeline script with its arguments, and turns
 * the declared pipelines into C pipelines (cs_pipeline) with Lua hooks
 * attached where the script asked for them.
 *
 * User Lua runs only through one protected call with a traceback. Only the
 * loop thread touches the state. */
#ifndef CS_LUA_H
#define CS_LUA_H

#include <stddef.h>
#include <stdio.h>

#include "cs_err.h"
#include "cs_metrics.h"
#include "cs_pipeline.h"

typedef struct cs_lua cs_lua;

cs_lua *cs_lua_create(cs_err *err);
/* Frees the state; the pipelines built from it must be destroyed first.
 * NULL is a no-op. */
void cs_lua_destroy(cs_lua *L);

/* Runs the script with `arg` = {[0]=path, args...} and cs.args filled from
 * the key=value arguments. Errors carry file:line. */
int cs_lua_run_script(cs_lua *L, const char *path, int argc, char **argv, cs_err *err);

/* The pipelines the script declared. */
size_t cs_lua_pipeline_count(cs_lua *L);
/* Builds pipeline i (source, window, sinks, hooks); the caller owns it. */
cs_pipeline *cs_lua_build_pipeline(cs_lua *L, size_t i, cs_err *err);
/* The script's cs.metrics{...}: fills *conf (conf->enabled = 0 when the
 * script declares none). -1 with err (file:line) on a bad port or host. */
int cs_lua_metrics_conf(cs_lua *L, cs_metrics_conf *conf, cs_err *err);
/* `cstream test SPEC [ARGS...]`: runs the cases a test spec declares with
 * cstream.test (docs/operations.md). Returns the exit status: 0 every case
 * passed, 1 a case failed, 3 the spec itself has an error. */
int cs_lua_run_tests(cs_lua *L, const char *spec, int argc, char **argv);
/* Writes the declared topology with all options (for `cstream check`). */
int cs_lua_describe(cs_lua *L, FILE *out, cs_err *err);

/* Runs busted (Debian's lua-busted) on the given arguments inside this
 * host, so specs see the real C primitives. Returns the exit status. */
int cs_lua_run_busted(cs_lua *L, int argc, char **argv);

#endif
