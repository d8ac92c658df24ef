/* The Lua view of a trade, shared by the hooks and cstream.core. */
#include "cs_lua_internal.h"

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
