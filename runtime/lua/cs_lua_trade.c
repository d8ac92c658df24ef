/* The Lua view of a trade, shared by the hooks and cstream.core, and of a
 * window row, shared by cstream.core and cstream.testing. */
#include "cs_lua_internal.h"
#include "cs_time.h"

void cs_lua_row_push(lua_State *L, const cs_row *r, int computed_only) {
  char ts[CS_TIME_RFC3339_LEN + 1];
  lua_createtable(L, 0, 14);
  lua_pushstring(L, r->product_id);
  lua_setfield(L, -2, "product_id");
  cs_time_format_rfc3339(r->window_start_us, ts);
  lua_pushstring(L, ts);
  lua_setfield(L, -2, "window_start");
  cs_time_format_rfc3339(r->window_end_us, ts);
  lua_pushstring(L, ts);
  lua_setfield(L, -2, "window_end");
  const double vals[CS_AGG_COUNT] = {(double)r->trades, r->avg_price, r->vwap,   r->open,       r->high,
                                     r->low,            r->close,     r->volume, r->buy_volume, r->sell_volume};
  for (int i = 0; i < CS_AGG_COUNT; i++) {
    if (computed_only && !(r->aggs & (1u << i))) continue;
    lua_pushnumber(L, vals[i]);
    lua_setfield(L, -2, cs_agg_names[i]);
  }
}

void cs_lua_trade_fill(lua_State *L, const cs_trade *t) {
  lua_pushlstring(L, t->product_id, t->product_len);
  lua_setfield(L, -2, "product_id");
  lua_pushnumber(L, (lua_Number)t->trade_id);
  lua_setfield(L, -2, "trade_id");
  lua_pushnumber(L, t->price);
  lua_setfield(L, -2, "price");
  lua_pushnumber(L, t->size);
  lua_setfield(L, -2, "size");
  lua_pushlstring(L, t->price_str ? t->price_str : "", t->price_len);
  lua_setfield(L, -2, "price_str");
  lua_pushlstring(L, t->size_str ? t->size_str : "", t->size_len);
  lua_setfield(L, -2, "size_str");
  lua_pushnumber(L, (lua_Number)t->time_us);
  lua_setfield(L, -2, "time");
  lua_pushstring(L, t->taker_side == CS_SIDE_BUY ? "buy" : "sell");
  lua_setfield(L, -2, "taker_side");
  lua_pushnumber(L, (lua_Number)t->sequence);
  lua_setfield(L, -2, "sequence");
  lua_pushboolean(L, t->last_match);
  lua_setfield(L, -2, "last_match");
}
