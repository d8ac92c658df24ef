/* Shared between the files of runtime/lua/: not part of the C core. */
#ifndef CS_LUA_INTERNAL_H
#define CS_LUA_INTERNAL_H

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

#include "cs_lua.h"
#include "cs_record.h"

typedef struct cs_lua_hooks cs_lua_hooks;

struct cs_lua {
  lua_State *L;
  int traceback_ref;    /* registry ref of the traceback handler */
  cs_lua_hooks **hooks; /* one per built pipeline that has hooks; owned */
  size_t nhooks;
};

/* Protected call with a traceback: like lua_pcall, message on the stack. */
int cs_lua_pcall(cs_lua *h, int nargs, int nresults);

/* Sets the trade's fields (product_id, trade_id, price, size, price_str,
 * size_str, time in µs, taker_side, sequence, last_match) in the table at
 * the top of the stack (cs_lua_trade.c). */
void cs_lua_trade_fill(lua_State *L, const cs_trade *t);

/* Pushes a new table for a window row: product_id, window_start and
 * window_end (RFC 3339) and the built-in aggregates by name — all of them,
 * or with computed_only those the row has (r->aggs). Callers add their own
 * extra fields (cs_lua_trade.c). */
void cs_lua_row_push(lua_State *L, const cs_row *r, int computed_only);

/* Installs `cstream.core` into package.preload (cs_lua_core.c). */
void cs_lua_core_open(lua_State *L);

/* Hooks (cs_lua_hooks.c): build the per-pipeline filter/map and Lua
 * aggregates from a pipeline spec at the top of the stack. */
cs_lua_hooks *cs_lua_hooks_create(cs_lua *h, int spec_index, cs_err *err);
void cs_lua_hooks_destroy(cs_lua_hooks *hk);
/* NULL members when the script has no such hook. */
void cs_lua_hooks_get(cs_lua_hooks *hk, cs_hooks *hooks, const cs_window_ext **ext);
void cs_lua_hooks_set_counter(cs_lua_hooks *hk, uint64_t *errors);

/* Builds the pipeline a declared spec (table at index `spec`) describes
 * (cs_lua_build.c). for_test: without its source and sinks (cstream.test
 * attaches its own). The hooks go to *hooks_out, owned by the caller. */
cs_pipeline *cs_lua_build_spec(cs_lua *h, int spec, int for_test, cs_lua_hooks **hooks_out, cs_err *err);
/* The host of a state (set by cs_lua_create). */
cs_lua *cs_lua_host_of(lua_State *L);
/* Installs `cstream.testing`, the C side of cstream.test (cs_lua_test.c). */
void cs_lua_test_open(lua_State *L);

#endif
