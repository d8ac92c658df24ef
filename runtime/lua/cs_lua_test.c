/* `cstream.testing`: the C side of cstream.test (runtime/lualib/cstream/
 * test.lua) — a declared pipeline built for a test: its window, hooks and
 * aggregates as `cstream run` builds them, but with a source the test
 * drives (lines pushed from Lua, not live: nothing reads the wall clock)
 * and an in-memory collector in place of its sinks. Nothing is opened or
 * connected.
 *
 *   local tp = testing.pipeline(spec)   -- a spec from cs._pipelines
 *   tp:line(json)          one raw feed message
 *   tp:capture(path)       every line of a capture (.jsonl / .jsonl.gz)
 *   tp:advance(us)         the virtual clock: the feed's clock reads `us`
 *   tp:finish()            end of input: every open window is emitted
 *   tp:rows(from)          records collected from index `from` on (tables)
 *   tp:stats()             the pipeline's counters (table)
 *   tp:close()             frees it (also done by the garbage collector)
 */
#include <stdlib.h>
#include <string.h>

#include "cs_json.h"
#include "cs_lines.h"
#include "cs_lua_internal.h"
#include "cs_row.h"
#include "cs_time.h"

#define TP_MT "cstream.testing.pipeline"

/* What the collector sink keeps: rows or trades, in order. */
typedef struct collected {
  cs_row *rows;
  cs_trade **trades;
  size_t nrows, ntrades, caprows, captrades;
} collected;

typedef struct tpipe {
  cs_pipeline *p;
  cs_lua_hooks *hk;
  cs_source *src;
  uv_loop_t loop;
  int loop_ok, done;
  uint64_t lineno;
  collected col;
  char *buf; /* a line with the parser's padding */
  size_t cap;
} tpipe;

/* ---- the driven source: does nothing itself ---- */
static int tsrc_init(cs_source *src, const cs_opts *opts, cs_err *err) { return 0; }
static int tsrc_start(cs_source *src, uv_loop_t *loop, cs_err *err) { return 0; }
static void tsrc_nop(cs_source *src) {}
static const cs_optdef no_options[] = {{NULL, 0, NULL, 0, NULL, NULL}};
static const cs_source_vt tsrc_vt = {.name = "test",
                                     .help = "lines pushed by cstream.test",
                                     .options = no_options,
                                     .init = tsrc_init,
                                     .start = tsrc_start,
                                     .pause = tsrc_nop,
                                     .resume = tsrc_nop,
                                     .stop = tsrc_nop,
                                     .destroy = tsrc_nop};

/* ---- the collector sink: keeps copies, always acknowledges ---- */
static int col_init(cs_sink *sink, const cs_opts *opts, cs_err *err) { return 0; }
static int col_start(cs_sink *sink, uv_loop_t *loop, cs_err *err) { return 0; }
static cs_sink_status col_write(cs_sink *sink, const cs_row *rows, size_t n, cs_err *err) {
  collected *c = sink->ctx;
  if (c->nrows + n > c->caprows) {
    size_t nc = c->caprows ? c->caprows * 2 : 16;
    while (nc < c->nrows + n) nc *= 2;
    cs_row *nr = realloc(c->rows, nc * sizeof *nr);
    if (!nr) return cs_err_set(err, "out of memory"), CS_SINK_RETRY;
    c->rows = nr;
    c->caprows = nc;
  }
  for (size_t i = 0; i < n; i++) {
    cs_row *d = &c->rows[c->nrows];
    *d = rows[i];
    if (rows[i].ext_json && !(d->ext_json = strdup(rows[i].ext_json)))
      return cs_err_set(err, "out of memory"), CS_SINK_ERROR;
    c->nrows++;
  }
  return CS_SINK_OK;
}
static cs_sink_status col_write_trades(cs_sink *sink, const cs_trade *t, size_t n, cs_err *err) {
  collected *c = sink->ctx;
  if (c->ntrades + n > c->captrades) {
    size_t nc = c->captrades ? c->captrades * 2 : 16;
    while (nc < c->ntrades + n) nc *= 2;
    cs_trade **nt = realloc(c->trades, nc * sizeof *nt);
    if (!nt) return cs_err_set(err, "out of memory"), CS_SINK_RETRY;
    c->trades = nt;
    c->captrades = nc;
  }
  for (size_t i = 0; i < n; i++) {
    if (!(c->trades[c->ntrades] = cs_trade_clone(&t[i]))) return cs_err_set(err, "out of memory"), CS_SINK_ERROR;
    c->ntrades++;
  }
  return CS_SINK_OK;
}
static cs_sink_status col_flush(cs_sink *sink, cs_err *err) { return CS_SINK_OK; }
static void col_nop(cs_sink *sink) {}
static const cs_sink_vt col_vt = {.name = "collect",
                                  .help = "keeps rows in memory for cstream.test",
                                  .options = no_options,
                                  .init = col_init,
                                  .start = col_start,
                                  .write = col_write,
                                  .write_trades = col_write_trades,
                                  .flush = col_flush,
                                  .stop = col_nop,
                                  .destroy = col_nop};

static void on_done(void *ud, cs_pipeline *p) {
  tpipe *tp = ud;
  tp->done = 1;
}

static void tp_free(tpipe *tp) {
  if (tp->p) {
    if (!tp->done) cs_pipeline_interrupt(tp->p);
    if (!tp->done) cs_pipeline_interrupt(tp->p); /* a second time: give up what waits */
  }
  if (tp->loop_ok) {
    /* Let libuv close the sinks' retry timers. */
    while (uv_run(&tp->loop, UV_RUN_NOWAIT)) {
    }
  }
  cs_pipeline_destroy(tp->p); /* also frees the source and the collector */
  tp->p = NULL;
  tp->src = NULL;
  cs_lua_hooks_destroy(tp->hk);
  tp->hk = NULL;
  if (tp->loop_ok) uv_loop_close(&tp->loop);
  tp->loop_ok = 0;
  for (size_t i = 0; i < tp->col.nrows; i++) free((char *)tp->col.rows[i].ext_json);
  for (size_t i = 0; i < tp->col.ntrades; i++) free(tp->col.trades[i]);
  free(tp->col.rows);
  free(tp->col.trades);
  memset(&tp->col, 0, sizeof tp->col);
  free(tp->buf);
  tp->buf = NULL;
}

static tpipe *check_tp(lua_State *L) {
  tpipe *tp = luaL_checkudata(L, 1, TP_MT);
  if (!tp->p) luaL_error(L, "cstream.test: this pipeline is closed");
  return tp;
}

/* testing.pipeline(spec) */
static int l_pipeline(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  cs_lua *h = cs_lua_host_of(L);
  if (!h || h->L != L) return luaL_error(L, "cstream.test: pipelines are built on the main Lua thread only");
  tpipe *tp = lua_newuserdata(L, sizeof *tp);
  memset(tp, 0, sizeof *tp);
  luaL_getmetatable(L, TP_MT);
  lua_setmetatable(L, -2);
  cs_err err = {{0}};
  if (!(tp->p = cs_lua_build_spec(h, 1, 1, &tp->hk, &err))) return luaL_error(L, "%s", err.msg);
  cs_source *src = cs_source_create(&tsrc_vt, cs_pipeline_name(tp->p), NULL, &err);
  cs_sink *sink = src ? cs_sink_create(&col_vt, cs_pipeline_name(tp->p), NULL, &err) : NULL;
  if (!src || !sink) {
    cs_source_destroy(src);
    tp_free(tp);
    return luaL_error(L, "cstream.test: %s", err.msg);
  }
  sink->ctx = &tp->col;
  tp->src = src;
  cs_pipeline_set_source(tp->p, src);
  if (cs_pipeline_add_sink(tp->p, sink, &err) != 0) {
    tp_free(tp);
    return luaL_error(L, "cstream.test: %s", err.msg);
  }
  if (uv_loop_init(&tp->loop) != 0) {
    tp_free(tp);
    return luaL_error(L, "cstream.test: cannot create an event loop");
  }
  tp->loop_ok = 1;
  if (cs_pipeline_start(tp->p, &tp->loop, on_done, tp, &err) != 0) {
    tp->done = 1;
    tp_free(tp);
    return luaL_error(L, "cstream.test: %s", err.msg);
  }
  return 1;
}

static void push_line(tpipe *tp, const char *s, size_t n, int padded, const char *reject) {
  if (tp->done) return;
  if (!padded && s) {
    if (n + CS_JSON_PADDING > tp->cap) {
      size_t nc = n + CS_JSON_PADDING + 256;
      char *nb = realloc(tp->buf, nc);
      if (!nb) return;
      tp->buf = nb;
      tp->cap = nc;
    }
    memcpy(tp->buf, s, n);
    memset(tp->buf + n, 0, CS_JSON_PADDING);
    s = tp->buf;
  }
  tp->src->on_line(tp->src->ud, s, n, 1, ++tp->lineno, reject);
}

/* tp:line(json) */
static int l_line(lua_State *L) {
  tpipe *tp = check_tp(L);
  size_t n;
  const char *s = luaL_checklstring(L, 2, &n);
  if (tp->done) return luaL_error(L, "cstream.test: the input has ended (finish was called)");
  push_line(tp, s, n, 0, NULL);
  return 0;
}

/* tp:capture(path) -> lines read */
static int l_capture(lua_State *L) {
  tpipe *tp = check_tp(L);
  const char *path = luaL_checkstring(L, 2);
  if (tp->done) return luaL_error(L, "cstream.test: the input has ended (finish was called)");
  cs_err err = {{0}};
  cs_lines *lr = cs_lines_open(path, 16 * 1024 * 1024, &err);
  if (!lr) return luaL_error(L, "cstream.test: %s", err.msg);
  uint64_t n = 0;
  for (;;) {
    const char *line;
    size_t len;
    uint64_t lineno;
    cs_lines_result r = cs_lines_next(lr, &line, &len, &lineno, &err);
    if (r == CS_LINES_EOF) break;
    if (r == CS_LINES_ERROR) {
      push_line(tp, NULL, 0, 0, "unreadable input (truncated or corrupt file)");
      break;
    }
    n++;
    if (r == CS_LINES_TOO_LONG)
      push_line(tp, NULL, len, 0, "line longer than max_line");
    else
      push_line(tp, line, len, 1, NULL);
  }
  cs_lines_close(lr);
  lua_pushnumber(L, (lua_Number)n);
  return 1;
}

/* tp:advance(us) */
static int l_advance(lua_State *L) {
  tpipe *tp = check_tp(L);
  cs_pipeline_tick(tp->p, (int64_t)luaL_checknumber(L, 2));
  return 0;
}

/* tp:finish() */
static int l_finish(lua_State *L) {
  tpipe *tp = check_tp(L);
  if (!tp->done) tp->src->on_end(tp->src->ud);
  return 0;
}

static void push_row(lua_State *L, const cs_row *r) {
  cs_lua_row_push(L, r, 1);
  if (r->ext_json) { /* user aggregates: test.lua decodes them */
    lua_pushstring(L, r->ext_json);
    lua_setfield(L, -2, "_ext_json");
  }
  if (r->revision) {
    lua_pushnumber(L, r->revision);
    lua_setfield(L, -2, "_revision");
  }
}

static void push_trade_record(lua_State *L, const cs_trade *t) {
  lua_createtable(L, 0, 10);
  lua_pushnumber(L, 1);
  lua_setfield(L, -2, "v");
  lua_pushstring(L, t->exchange ? t->exchange : "coinbase");
  lua_setfield(L, -2, "exchange");
  lua_pushlstring(L, t->product_id, t->product_len);
  lua_setfield(L, -2, "product_id");
  lua_pushnumber(L, (lua_Number)t->trade_id);
  lua_setfield(L, -2, "trade_id");
  lua_pushlstring(L, t->price_str ? t->price_str : "", t->price_len);
  lua_setfield(L, -2, "price");
  lua_pushlstring(L, t->size_str ? t->size_str : "", t->size_len);
  lua_setfield(L, -2, "size");
  lua_pushstring(L, t->taker_side == CS_SIDE_BUY ? "buy" : "sell");
  lua_setfield(L, -2, "taker_side");
  lua_pushlstring(L, t->time_str ? t->time_str : "", t->time_len);
  lua_setfield(L, -2, "time");
  if (t->sequence >= 0) {
    lua_pushnumber(L, (lua_Number)t->sequence);
    lua_setfield(L, -2, "sequence");
  }
}

/* tp:rows(from) -> the records collected from index `from` (1-based) on */
static int l_rows(lua_State *L) {
  tpipe *tp = check_tp(L);
  size_t from = (size_t)luaL_optinteger(L, 2, 1);
  if (from < 1) from = 1;
  lua_newtable(L);
  int k = 1;
  for (size_t i = from - 1; i < tp->col.nrows; i++, k++) {
    push_row(L, &tp->col.rows[i]);
    lua_rawseti(L, -2, k);
  }
  for (size_t i = from - 1; i < tp->col.ntrades; i++, k++) {
    push_trade_record(L, tp->col.trades[i]);
    lua_rawseti(L, -2, k);
  }
  return 1;
}

static void set_num(lua_State *L, const char *k, double v) {
  lua_pushnumber(L, v);
  lua_setfield(L, -2, k);
}

/* tp:stats() -> {trades=, late=, duplicates=, ...} */
static int l_stats(lua_State *L) {
  tpipe *tp = check_tp(L);
  const cs_pipeline_stats *s = cs_pipeline_get_stats(tp->p);
  lua_createtable(L, 0, 20);
  set_num(L, "lines", (double)s->lines);
  set_num(L, "trades", (double)s->trades);
  set_num(L, "windows", (double)s->windows);
  set_num(L, "late", (double)s->late);
  set_num(L, "duplicates", (double)s->duplicates);
  set_num(L, "invalid", (double)s->invalid);
  set_num(L, "ignored", (double)s->ignored);
  set_num(L, "filtered", (double)s->filtered);
  set_num(L, "hook_errors", (double)s->hook_errors);
  set_num(L, "late_updates", (double)s->late_updates);
  set_num(L, "gaps", (double)s->gaps);
  set_num(L, "missing_trades", (double)s->missing_trades);
  cs_pipeline_status st;
  cs_pipeline_get_status(tp->p, &st);
  set_num(L, "open_windows", (double)st.open_windows);
  if (st.has_watermark) set_num(L, "watermark", (double)st.watermark_us);
  lua_pushboolean(L, tp->done);
  lua_setfield(L, -2, "finished");
  const char *why = cs_pipeline_failure(tp->p);
  if (why) {
    lua_pushstring(L, why);
    lua_setfield(L, -2, "failure");
  }
  return 1;
}

static int l_close(lua_State *L) {
  tpipe *tp = luaL_checkudata(L, 1, TP_MT);
  tp_free(tp);
  return 0;
}

static int open_testing(lua_State *L) {
  static const luaL_Reg methods[] = {{"line", l_line},   {"capture", l_capture}, {"advance", l_advance},
                                     {"finish", l_finish}, {"rows", l_rows},     {"stats", l_stats},
                                     {"close", l_close},   {NULL, NULL}};
  luaL_newmetatable(L, TP_MT);
  lua_newtable(L);
  luaL_register(L, NULL, methods);
  lua_setfield(L, -2, "__index");
  lua_pushcfunction(L, l_close);
  lua_setfield(L, -2, "__gc");
  lua_pop(L, 1);
  lua_newtable(L);
  lua_pushcfunction(L, l_pipeline);
  lua_setfield(L, -2, "pipeline");
  return 1;
}

void cs_lua_test_open(lua_State *L) {
  lua_getglobal(L, "package");
  lua_getfield(L, -1, "preload");
  lua_pushcfunction(L, open_testing);
  lua_setfield(L, -2, "cstream.testing");
  lua_pop(L, 2);
}
