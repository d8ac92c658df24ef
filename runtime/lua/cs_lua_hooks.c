/* Lua hooks of one pipeline: `filter`, `map` and cs.aggregate{...} user
 * aggregates. Built only when the script declares them, so pipelines
 * without hooks never enter Lua. Every call goes through the protected
 * call with a traceback; a failing hook is logged (rate-limited) and
 * counted, and the pipeline goes on. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cs_buf.h"
#include "cs_log.h"
#include "cs_time.h"
#include "cs_lua_internal.h"

struct cs_lua_hooks {
  cs_lua *h;
  int filter_ref, map_ref, trade_ref, aggs_ref, encode_ref;
  int naggs;
  cs_window_ext ext;
  uint64_t *errors, own_errors;
  cs_log_limiter lim;
  char label[96];
  char *product; /* map's product_id, valid until the next map call */
  char price_buf[64], size_buf[64], time_buf[40]; /* map's changed values, likewise */
  cs_buf buf;
};

/* Logs the error message at the top of the stack (its first line: the
 * traceback would break the one-line-per-event log) and pops it. Failures
 * of filter/map are counted by the pipeline, which sees their -1; those of
 * aggregates are counted here. */
static void hook_failed(cs_lua_hooks *hk, const char *what, int count) {
  lua_State *L = hk->h->L;
  if (count) (*hk->errors)++;
  const char *msg = lua_tostring(L, -1);
  if (!msg) msg = "(error object is not a string)";
  const char *nl = strchr(msg, '\n');
  int len = nl ? (int)(nl - msg) : (int)strlen(msg);
  cs_log_limited(&hk->lim, CS_LOG_WARN, hk->label, "%s failed: %.*s", what, len, msg);
  lua_pop(L, 1);
}

/* Pushes the reusable trade table, filled from t. */
static void push_trade(cs_lua_hooks *hk, const cs_trade *t) {
  lua_State *L = hk->h->L;
  lua_rawgeti(L, LUA_REGISTRYINDEX, hk->trade_ref);
  cs_lua_trade_fill(L, t);
}

static int filter(void *ud, const cs_trade *t) {
  cs_lua_hooks *hk = ud;
  lua_State *L = hk->h->L;
  lua_rawgeti(L, LUA_REGISTRYINDEX, hk->filter_ref);
  push_trade(hk, t);
  if (cs_lua_pcall(hk->h, 1, 1) != 0) {
    hook_failed(hk, "filter", 0);
    return -1;
  }
  int keep = lua_toboolean(L, -1);
  lua_pop(L, 1);
  return keep;
}

/* Reads a number field of the table at the top; -1 if missing/not finite. */
static int num_field(lua_State *L, const char *k, double *out) {
  lua_getfield(L, -1, k);
  int ok = lua_type(L, -1) == LUA_TNUMBER;
  if (ok) *out = lua_tonumber(L, -1);
  lua_pop(L, 1);
  return ok && isfinite(*out) ? 0 : -1;
}

/* The shortest plain decimal (no exponent) that reads back as v. */
static void set_decimal(char *buf, size_t cap, double v, const char **s, uint16_t *len) {
  int n = 0;
  for (int d = 0; d <= 20; d++) {
    n = snprintf(buf, cap, "%.*f", d, v);
    if (n > 0 && (size_t)n < cap && strtod(buf, NULL) == v) break;
  }
  *s = buf;
  *len = (uint16_t)(n > 0 && (size_t)n < cap ? n : 0);
}

static void set_time(char *buf, int64_t us, const char **s, uint16_t *len) {
  cs_time_format_rfc3339(us, buf); /* YYYY-MM-DDTHH:MM:SSZ */
  snprintf(buf + 19, 12, ".%06lldZ", (long long)(us - cs_time_floor_div(us, CS_US_PER_S) * CS_US_PER_S));
  *s = buf;
  *len = 27;
}

static int map(void *ud, cs_trade *t) {
  cs_lua_hooks *hk = ud;
  lua_State *L = hk->h->L;
  lua_rawgeti(L, LUA_REGISTRYINDEX, hk->map_ref);
  push_trade(hk, t);
  if (cs_lua_pcall(hk->h, 1, 1) != 0) {
    hook_failed(hk, "map", 0);
    return -1;
  }
  if (!lua_toboolean(L, -1)) {
    lua_pop(L, 1);
    return 0;
  }
  const char *bad = NULL;
  double price, size, time, id;
  if (!lua_istable(L, -1))
    bad = "map must return a trade table or nil";
  else if (num_field(L, "price", &price) || !(price > 0))
    bad = "map returned a trade whose price is not a number > 0";
  else if (num_field(L, "size", &size) || !(size > 0))
    bad = "map returned a trade whose size is not a number > 0";
  else if (num_field(L, "time", &time) || time != floor(time))
    bad = "map returned a trade whose time is not whole microseconds";
  else if (num_field(L, "trade_id", &id) || id != floor(id))
    bad = "map returned a trade whose trade_id is not an integer";
  if (!bad) {
    lua_getfield(L, -1, "product_id");
    size_t n;
    const char *pid = lua_tolstring(L, -1, &n);
    lua_getfield(L, -2, "taker_side");
    const char *side = lua_tostring(L, -1);
    if (!pid || n == 0 || n > UINT16_MAX || lua_type(L, -2) != LUA_TSTRING)
      bad = "map returned a trade whose product_id is not a non-empty string";
    else if (!side || (strcmp(side, "buy") != 0 && strcmp(side, "sell") != 0))
      bad = "map returned a trade whose taker_side is not \"buy\" or \"sell\"";
    else {
      char *copy = malloc(n + 1);
      if (!copy) {
        bad = "out of memory";
      } else {
        memcpy(copy, pid, n + 1);
        free(hk->product);
        hk->product = copy;
        t->product_id = copy;
        t->product_len = (uint16_t)n;
        t->taker_side = strcmp(side, "buy") == 0 ? CS_SIDE_BUY : CS_SIDE_SELL;
        /* Keep the exact strings (trade records carry them) in step with
         * what the hook changed. */
        if (price != t->price) set_decimal(hk->price_buf, sizeof hk->price_buf, price, &t->price_str, &t->price_len);
        if (size != t->size) set_decimal(hk->size_buf, sizeof hk->size_buf, size, &t->size_str, &t->size_len);
        if ((int64_t)time != t->time_us) set_time(hk->time_buf, (int64_t)time, &t->time_str, &t->time_len);
        t->price = price;
        t->size = size;
        t->time_us = (int64_t)time;
        t->trade_id = (int64_t)id;
      }
    }
    lua_pop(L, 2);
  }
  lua_pop(L, 1);
  if (bad) {
    lua_pushstring(L, bad);
    hook_failed(hk, "map", 0);
    return -1;
  }
  return 1;
}

/* --- user aggregates: one Lua table of states per window --- */

static int agg_init(void *ud, uint64_t *handle) {
  cs_lua_hooks *hk = ud;
  lua_State *L = hk->h->L;
  lua_createtable(L, hk->naggs, 0);
  lua_rawgeti(L, LUA_REGISTRYINDEX, hk->aggs_ref);
  for (int i = 1; i <= hk->naggs; i++) {
    lua_rawgeti(L, -1, i);
    lua_getfield(L, -1, "init");
    lua_remove(L, -2);
    if (cs_lua_pcall(hk->h, 0, 1) != 0) {
      hook_failed(hk, "aggregate init", 1);
      lua_pushboolean(L, 0);
    }
    lua_rawseti(L, -3, i);
  }
  lua_pop(L, 1);
  *handle = (uint64_t)luaL_ref(L, LUA_REGISTRYINDEX);
  return 0;
}

static void agg_add(void *ud, uint64_t handle, const cs_trade *t) {
  cs_lua_hooks *hk = ud;
  lua_State *L = hk->h->L;
  lua_rawgeti(L, LUA_REGISTRYINDEX, (int)handle);
  lua_rawgeti(L, LUA_REGISTRYINDEX, hk->aggs_ref);
  push_trade(hk, t);
  for (int i = 1; i <= hk->naggs; i++) {
    lua_rawgeti(L, -2, i);
    lua_getfield(L, -1, "add");
    lua_remove(L, -2);
    lua_rawgeti(L, -4, i);
    lua_pushvalue(L, -3);
    if (cs_lua_pcall(hk->h, 2, 1) != 0) {
      hook_failed(hk, "aggregate add", 1);
      continue;
    }
    if (lua_isnil(L, -1))
      lua_pop(L, 1);
    else
      lua_rawseti(L, -4, i);
  }
  lua_pop(L, 3);
}

static char *agg_result(void *ud, uint64_t handle) {
  cs_lua_hooks *hk = ud;
  lua_State *L = hk->h->L;
  cs_buf *b = &hk->buf;
  cs_buf_reset(b);
  lua_rawgeti(L, LUA_REGISTRYINDEX, (int)handle);
  lua_rawgeti(L, LUA_REGISTRYINDEX, hk->aggs_ref);
  for (int i = 1; i <= hk->naggs; i++) {
    lua_rawgeti(L, -1, i);
    lua_getfield(L, -1, "name");
    size_t nl;
    const char *name = lua_tolstring(L, -1, &nl);
    if (i > 1) cs_buf_append(b, ",", 1);
    cs_buf_json_str(b, name, nl);
    cs_buf_append(b, ":", 1);
    lua_pop(L, 1);
    lua_rawgeti(L, LUA_REGISTRYINDEX, hk->encode_ref);
    lua_getfield(L, -2, "result");
    lua_rawgeti(L, -5, i);
    /* encode(result(state)) in one protected call */
    int ok = cs_lua_pcall(hk->h, 1, 1) == 0;
    if (ok) ok = cs_lua_pcall(hk->h, 1, 1) == 0;
    else lua_remove(L, -2); /* drop encode, keep the message */
    if (!ok) {
      hook_failed(hk, "aggregate result", 1);
      cs_buf_append(b, "null", 4);
    } else {
      size_t n;
      const char *json = lua_tolstring(L, -1, &n);
      cs_buf_append(b, json, n);
      lua_pop(L, 1);
    }
    lua_pop(L, 1);
  }
  lua_pop(L, 2);
  if (b->oom) {
    b->oom = 0;
    return NULL;
  }
  return strdup(b->data ? b->data : "");
}

static void agg_release(void *ud, uint64_t handle) {
  cs_lua_hooks *hk = ud;
  luaL_unref(hk->h->L, LUA_REGISTRYINDEX, (int)handle);
}

static int ref_field(lua_State *L, int idx, const char *k) {
  lua_getfield(L, idx, k);
  if (lua_isnil(L, -1)) {
    lua_pop(L, 1);
    return LUA_NOREF;
  }
  return luaL_ref(L, LUA_REGISTRYINDEX);
}

cs_lua_hooks *cs_lua_hooks_create(cs_lua *h, int spec, cs_err *err) {
  lua_State *L = h->L;
  cs_lua_hooks *hk = calloc(1, sizeof *hk);
  if (!hk) return cs_err_set(err, "out of memory"), NULL;
  hk->h = h;
  hk->errors = &hk->own_errors;
  hk->trade_ref = hk->aggs_ref = hk->encode_ref = LUA_NOREF;
  cs_log_limiter init = CS_LOG_LIMITER_INIT;
  hk->lim = init;
  cs_buf_init(&hk->buf);
  lua_getfield(L, spec, "name");
  snprintf(hk->label, sizeof hk->label, "hooks %s", lua_tostring(L, -1));
  lua_pop(L, 1);
  hk->filter_ref = ref_field(L, spec, "filter");
  hk->map_ref = ref_field(L, spec, "map");

  lua_getfield(L, spec, "window");
  if (lua_isnil(L, -1)) lua_newtable(L), lua_replace(L, -2); /* no window: no aggregates */
  lua_getfield(L, -1, "custom");
  hk->naggs = lua_istable(L, -1) ? (int)lua_objlen(L, -1) : 0;
  if (hk->naggs > 0) {
    hk->aggs_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    lua_getglobal(L, "require");
    lua_pushstring(L, "cjson");
    if (cs_lua_pcall(h, 1, 1) != 0) {
      cs_err_set(err, "Lua aggregates need lua-cjson: %s", lua_tostring(L, -1));
      lua_pop(L, 2);
      cs_lua_hooks_destroy(hk);
      return NULL;
    }
    lua_getfield(L, -1, "encode");
    hk->encode_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    lua_pop(L, 1);
    hk->ext = (cs_window_ext){hk, agg_init, agg_add, agg_result, agg_release};
  } else {
    lua_pop(L, 1);
  }
  lua_pop(L, 1);
  if (hk->filter_ref != LUA_NOREF || hk->map_ref != LUA_NOREF || hk->naggs > 0) {
    lua_createtable(L, 0, 10);
    hk->trade_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  }
  return hk;
}

void cs_lua_hooks_destroy(cs_lua_hooks *hk) {
  if (!hk) return;
  lua_State *L = hk->h->L;
  luaL_unref(L, LUA_REGISTRYINDEX, hk->filter_ref);
  luaL_unref(L, LUA_REGISTRYINDEX, hk->map_ref);
  luaL_unref(L, LUA_REGISTRYINDEX, hk->trade_ref);
  luaL_unref(L, LUA_REGISTRYINDEX, hk->aggs_ref);
  luaL_unref(L, LUA_REGISTRYINDEX, hk->encode_ref);
  free(hk->product);
  cs_buf_free(&hk->buf);
  free(hk);
}

void cs_lua_hooks_get(cs_lua_hooks *hk, cs_hooks *hooks, const cs_window_ext **ext) {
  memset(hooks, 0, sizeof *hooks);
  hooks->ud = hk;
  if (hk->filter_ref != LUA_NOREF) hooks->filter = filter;
  if (hk->map_ref != LUA_NOREF) hooks->map = map;
  *ext = hk->naggs > 0 ? &hk->ext : NULL;
}

void cs_lua_hooks_set_counter(cs_lua_hooks *hk, uint64_t *errors) { hk->errors = errors; }
