/* `cstream.core`: the C primitives the Lua API and the specs use —
 * duration/time/decimal parsing exactly as the engine does it, the plugin
 * option tables, and a window engine that specs can drive directly. */
#include <stdlib.h>
#include <string.h>

#include "cs_decimal.h"
#include "cs_lua_internal.h"
#include "cs_metrics.h"
#include "cs_parse.h"
#include "cs_plugin.h"
#include "cs_time.h"
#include "cs_window.h"

/* core.parse_duration("30s") -> microseconds | nil */
static int l_parse_duration(lua_State *L) {
  int64_t us;
  if (cs_time_parse_duration(luaL_checkstring(L, 1), &us) != 0) return lua_pushnil(L), 1;
  lua_pushnumber(L, (lua_Number)us);
  return 1;
}

/* core.parse_time("2025-08-22T20:11:30.012637Z") -> microseconds | nil, why */
static int l_parse_time(lua_State *L) {
  size_t n;
  const char *s = luaL_checklstring(L, 1, &n);
  int64_t us;
  const char *why;
  if (cs_time_parse_rfc3339(s, n, &us, &why) != 0) {
    lua_pushnil(L);
    lua_pushstring(L, why);
    return 2;
  }
  lua_pushnumber(L, (lua_Number)us);
  return 1;
}

/* core.format_time(us) -> "YYYY-MM-DDTHH:MM:SSZ" */
static int l_format_time(lua_State *L) {
  char buf[CS_TIME_RFC3339_LEN + 1];
  cs_time_format_rfc3339((int64_t)luaL_checknumber(L, 1), buf);
  lua_pushstring(L, buf);
  return 1;
}

/* core.parse_decimal("116827.85") -> number | nil */
static int l_parse_decimal(lua_State *L) {
  size_t n;
  const char *s = luaL_checklstring(L, 1, &n);
  double d;
  if (cs_decimal_parse(s, n, &d) != 0) return lua_pushnil(L), 1;
  lua_pushnumber(L, d);
  return 1;
}

/* core.parse_line(json) -> "trade", {fields} | "other", type | "invalid", why */
static int l_parse_line(lua_State *L) {
  size_t n;
  const char *s = luaL_checklstring(L, 1, &n);
  static cs_parser *parser;
  if (!parser && !(parser = cs_parser_create())) return luaL_error(L, "out of memory");
  const cs_trade *t;
  size_t nt;
  const char *why;
  switch (cs_parse_line(parser, s, n, false, &t, &nt, &why)) {
    case CS_PARSE_INVALID:
      lua_pushstring(L, "invalid");
      lua_pushstring(L, why);
      return 2;
    case CS_PARSE_OTHER:
      lua_pushstring(L, "other");
      lua_pushstring(L, cs_parse_last_type(parser));
      return 2;
    case CS_PARSE_TRADES: break;
  }
  lua_pushstring(L, "trade");
  lua_createtable(L, 0, 10);
  cs_lua_trade_fill(L, t);
  return 2;
}

static const char *type_name(cs_opt_type t) {
  static const char *const names[] = {"string",  "number", "integer", "boolean", "duration",
                                      "seconds", "enum",   "strings", "value"};
  return names[t];
}

static void push_options(lua_State *L, const cs_optdef *defs) {
  lua_newtable(L);
  for (int i = 0; defs[i].name; i++) {
    const cs_optdef *d = &defs[i];
    lua_createtable(L, 0, 6);
    lua_pushstring(L, d->name);
    lua_setfield(L, -2, "name");
    lua_pushstring(L, type_name(d->type));
    lua_setfield(L, -2, "type");
    if (d->def) {
      lua_pushstring(L, d->def);
      lua_setfield(L, -2, "default");
    }
    lua_pushboolean(L, d->optional);
    lua_setfield(L, -2, "optional");
    if (d->choices) {
      lua_pushstring(L, d->choices);
      lua_setfield(L, -2, "choices");
    }
    lua_pushstring(L, d->help ? d->help : "");
    lua_setfield(L, -2, "help");
    lua_rawseti(L, -2, i + 1);
  }
}

/* core.schemas() -> { sources = {name = {help, options, frames}}, sinks = {...}, tumbling = {options},
 *                      metrics = {options} } */
static int l_schemas(lua_State *L) {
  lua_newtable(L);
  lua_newtable(L);
  for (int i = 0; cs_plugin_sources[i]; i++) {
    lua_newtable(L);
    lua_pushstring(L, cs_plugin_sources[i]->help);
    lua_setfield(L, -2, "help");
    push_options(L, cs_plugin_sources[i]->options);
    lua_setfield(L, -2, "options");
    lua_pushboolean(L, cs_plugin_sources[i]->frames);
    lua_setfield(L, -2, "frames");
    lua_setfield(L, -2, cs_plugin_sources[i]->name);
  }
  lua_setfield(L, -2, "sources");
  lua_newtable(L);
  for (int i = 0; cs_plugin_sinks[i]; i++) {
    lua_newtable(L);
    lua_pushstring(L, cs_plugin_sinks[i]->help);
    lua_setfield(L, -2, "help");
    push_options(L, cs_plugin_sinks[i]->options);
    lua_setfield(L, -2, "options");
    lua_setfield(L, -2, cs_plugin_sinks[i]->name);
  }
  lua_setfield(L, -2, "sinks");
  lua_newtable(L);
  push_options(L, cs_plugin_tumbling_options);
  lua_setfield(L, -2, "options");
  lua_setfield(L, -2, "tumbling");
  lua_newtable(L);
  push_options(L, cs_metrics_options);
  lua_setfield(L, -2, "options");
  lua_setfield(L, -2, "metrics");
  return 1;
}

/* --- core.window{size=, lateness=, by=, update_for=}: the C engine, driven from Lua ---
 * w:add(trade_table) -> "accepted"|"late"|"duplicate"|"updated"
 * w:advance(us), w:finish(), w:rows() -> list of emitted row tables. */
#define WINDOW_MT "cstream.core.window"

typedef struct lwindow {
  cs_window *w;
  lua_State *L;
  int rows_ref;
} lwindow;

static void lw_emit(void *ud, const cs_row *r) {
  lwindow *lw = ud;
  lua_State *L = lw->L;
  lua_rawgeti(L, LUA_REGISTRYINDEX, lw->rows_ref);
  cs_lua_row_push(L, r, 0);
  lua_pushnumber(L, r->revision);
  lua_setfield(L, -2, "revision");
  lua_rawseti(L, -2, (int)lua_objlen(L, -2) + 1);
  lua_pop(L, 1);
}

static lwindow *check_lw(lua_State *L) {
  lwindow *lw = luaL_checkudata(L, 1, WINDOW_MT);
  if (!lw->w) luaL_error(L, "window is closed");
  lw->L = L;
  return lw;
}

static int l_window(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  cs_window_conf conf = {0};
  int64_t us;
  lua_getfield(L, 1, "size");
  if (cs_time_parse_duration(luaL_optstring(L, -1, "30s"), &us) != 0) return luaL_error(L, "bad size");
  conf.size_us = us;
  lua_getfield(L, 1, "lateness");
  if (cs_time_parse_duration(luaL_optstring(L, -1, "0"), &us) != 0) return luaL_error(L, "bad lateness");
  conf.lateness_us = us;
  lua_getfield(L, 1, "by");
  conf.by_product = strcmp(luaL_optstring(L, -1, "product_id"), "none") != 0;
  lua_getfield(L, 1, "update_for");
  if (cs_time_parse_duration(luaL_optstring(L, -1, "0"), &us) != 0) return luaL_error(L, "bad update_for");
  conf.update_for_us = us;
  lua_pop(L, 4);
  conf.aggs = CS_AGG_ALL;
  lwindow *lw = lua_newuserdata(L, sizeof *lw);
  memset(lw, 0, sizeof *lw);
  luaL_getmetatable(L, WINDOW_MT);
  lua_setmetatable(L, -2);
  cs_err err;
  lw->L = L;
  if (!(lw->w = cs_window_create(&conf, lw_emit, lw, &err))) return luaL_error(L, "%s", err.msg);
  lua_newtable(L);
  lw->rows_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  return 1;
}

static int l_window_add(lua_State *L) {
  lwindow *lw = check_lw(L);
  cs_trade t = {0};
  luaL_checktype(L, 2, LUA_TTABLE);
  size_t n;
  lua_getfield(L, 2, "product_id");
  t.product_id = luaL_checklstring(L, -1, &n);
  t.product_len = (uint16_t)n;
  lua_getfield(L, 2, "trade_id");
  t.trade_id = (int64_t)luaL_checknumber(L, -1);
  lua_getfield(L, 2, "price");
  t.price = luaL_checknumber(L, -1);
  lua_getfield(L, 2, "size");
  t.size = luaL_checknumber(L, -1);
  lua_getfield(L, 2, "time");
  t.time_us = (int64_t)luaL_checknumber(L, -1);
  lua_getfield(L, 2, "taker_side");
  t.taker_side = strcmp(luaL_optstring(L, -1, "buy"), "buy") == 0 ? CS_SIDE_BUY : CS_SIDE_SELL;
  t.time_str = "";
  cs_window_verdict v = cs_window_add(lw->w, &t);
  lua_pop(L, 6);
  static const char *const names[] = {"accepted", "late", "duplicate", "updated"};
  if (v < 0) return luaL_error(L, "out of memory");
  lua_pushstring(L, names[v]);
  return 1;
}

static int l_window_advance(lua_State *L) {
  lwindow *lw = check_lw(L);
  cs_window_advance(lw->w, (int64_t)luaL_checknumber(L, 2));
  return 0;
}

static int l_window_finish(lua_State *L) {
  cs_window_finish(check_lw(L)->w);
  return 0;
}

static int l_window_rows(lua_State *L) {
  lwindow *lw = check_lw(L);
  lua_rawgeti(L, LUA_REGISTRYINDEX, lw->rows_ref);
  lua_newtable(L);
  lua_rawseti(L, LUA_REGISTRYINDEX, lw->rows_ref);
  return 1;
}

static int l_window_open(lua_State *L) {
  lua_pushinteger(L, (lua_Integer)cs_window_open_count(check_lw(L)->w));
  return 1;
}

static int l_window_watermark(lua_State *L) {
  int64_t wm;
  if (!cs_window_watermark(check_lw(L)->w, &wm)) return lua_pushnil(L), 1;
  lua_pushnumber(L, (lua_Number)wm);
  return 1;
}

static int l_window_gc(lua_State *L) {
  lwindow *lw = luaL_checkudata(L, 1, WINDOW_MT);
  cs_window_destroy(lw->w);
  lw->w = NULL;
  if (lw->rows_ref) luaL_unref(L, LUA_REGISTRYINDEX, lw->rows_ref);
  lw->rows_ref = 0;
  return 0;
}

static int open_core(lua_State *L) {
  static const luaL_Reg window_methods[] = {{"add", l_window_add},
                                            {"advance", l_window_advance},
                                            {"finish", l_window_finish},
                                            {"rows", l_window_rows},
                                            {"open_count", l_window_open},
                                            {"watermark", l_window_watermark},
                                            {NULL, NULL}};
  luaL_newmetatable(L, WINDOW_MT);
  lua_newtable(L);
  luaL_register(L, NULL, window_methods);
  lua_setfield(L, -2, "__index");
  lua_pushcfunction(L, l_window_gc);
  lua_setfield(L, -2, "__gc");
  lua_pop(L, 1);

  static const luaL_Reg fns[] = {{"parse_duration", l_parse_duration},
                                 {"parse_time", l_parse_time},
                                 {"format_time", l_format_time},
                                 {"parse_decimal", l_parse_decimal},
                                 {"parse_line", l_parse_line},
                                 {"schemas", l_schemas},
                                 {"window", l_window},
                                 {NULL, NULL}};
  lua_newtable(L);
  luaL_register(L, NULL, fns);
  lua_pushstring(L, CS_VERSION);
  lua_setfield(L, -2, "version");
  lua_createtable(L, CS_AGG_COUNT, 0);
  for (int i = 0; i < CS_AGG_COUNT; i++) {
    lua_pushstring(L, cs_agg_names[i]);
    lua_rawseti(L, -2, i + 1);
  }
  lua_setfield(L, -2, "aggregates");
  return 1;
}

void cs_lua_core_open(lua_State *L) {
  lua_getglobal(L, "package");
  lua_getfield(L, -1, "preload");
  lua_pushcfunction(L, open_core);
  lua_setfield(L, -2, "cstream.core");
  lua_pop(L, 2);
}
