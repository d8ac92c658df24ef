#include "cs_parse.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cs_decimal.h"
#include "cs_json.h"
#include "cs_time.h"

struct cs_parser {
  cs_json *json;
  cs_trade *trades; /* the message's trades */
  size_t cap;
  cs_msg_info info;
  char why[160];
  char type[32];
  char product[128];
  char message[256], reason[256];
};

cs_parser *cs_parser_create(void) {
  cs_parser *p = calloc(1, sizeof *p);
  if (!p) return NULL;
  p->cap = 16;
  p->json = cs_json_create();
  p->trades = malloc(p->cap * sizeof *p->trades);
  if (!p->json || !p->trades) {
    cs_parser_destroy(p);
    return NULL;
  }
  return p;
}

void cs_parser_destroy(cs_parser *p) {
  if (!p) return;
  cs_json_destroy(p->json);
  free(p->trades);
  free(p);
}

const char *cs_parse_last_type(const cs_parser *p) { return p->type; }
const cs_msg_info *cs_parse_info(const cs_parser *p) { return &p->info; }

/* The members cstream reads; each slot is one bit of a 32-bit mask. The
 * first F_TRADE_LAST + 1 are a trade's: given twice, the trade is invalid. */
enum {
  F_TYPE, F_PRODUCT, F_TRADE_ID, F_PRICE, F_SIZE, F_SIDE, F_TIME, F_SEQUENCE,
  F_TRADE_LAST = F_SEQUENCE,
  F_LAST_TRADE_ID, F_MESSAGE, F_REASON, F_CHANNEL, F_TIMESTAMP, F_EVENTS, F_TRADES, F_V, F_TAKER_SIDE,
  F_COUNT
};
static const char *const field_names[F_COUNT] = {
    "type",          "product_id", "trade_id", "price",  "size",     "side",   "time",   "sequence", "last_trade_id",
    "message",       "reason",     "channel",  "timestamp", "events", "trades", "v",      "taker_side"};

static int field_index(const char *k, size_t n) {
  /* Dispatch on length first: this runs for every member of every line. */
  switch (n) {
    case 1: return k[0] == 'v' ? F_V : -1;
    case 4:
      if (memcmp(k, "type", 4) == 0) return F_TYPE;
      if (memcmp(k, "size", 4) == 0) return F_SIZE;
      if (memcmp(k, "side", 4) == 0) return F_SIDE;
      if (memcmp(k, "time", 4) == 0) return F_TIME;
      return -1;
    case 5: return memcmp(k, "price", 5) == 0 ? F_PRICE : -1;
    case 6:
      if (memcmp(k, "reason", 6) == 0) return F_REASON;
      if (memcmp(k, "events", 6) == 0) return F_EVENTS;
      if (memcmp(k, "trades", 6) == 0) return F_TRADES;
      return -1;
    case 7:
      if (memcmp(k, "message", 7) == 0) return F_MESSAGE;
      if (memcmp(k, "channel", 7) == 0) return F_CHANNEL;
      return -1;
    case 8:
      if (memcmp(k, "trade_id", 8) == 0) return F_TRADE_ID;
      if (memcmp(k, "sequence", 8) == 0) return F_SEQUENCE;
      return -1;
    case 9: return memcmp(k, "timestamp", 9) == 0 ? F_TIMESTAMP : -1;
    case 10:
      if (memcmp(k, "product_id", 10) == 0) return F_PRODUCT;
      if (memcmp(k, "taker_side", 10) == 0) return F_TAKER_SIDE;
      return -1;
    case 13: return memcmp(k, "last_trade_id", 13) == 0 ? F_LAST_TRADE_ID : -1;
    default: return -1;
  }
}

static cs_parse_result invalid(cs_parser *p, const char **why, const char *fmt, const char *field, const char *detail) {
  char f[sizeof p->why];
  snprintf(f, sizeof f, "%s", field); /* field may be p->why itself */
  snprintf(p->why, sizeof p->why, fmt, f, detail);
  *why = p->why;
  return CS_PARSE_INVALID;
}

static int str_field(const cs_json_val *v, const char **s, size_t *n) {
  if (cs_json_type_of(v) != CS_JSON_STRING) return -1;
  *s = cs_json_str(v, n);
  return 0;
}

/* Copies a string member into buf (NUL-terminated, cut to fit), or "". */
static const char *copy_str(const cs_json_val *v, int present, char *buf, size_t cap) {
  const char *s;
  size_t n;
  buf[0] = 0;
  if (present && str_field(v, &s, &n) == 0) {
    if (n >= cap) n = cap - 1;
    memcpy(buf, s, n);
    buf[n] = 0;
  }
  return buf;
}

static void set_type(cs_parser *p, const char *s, size_t n) {
  if (n >= sizeof p->type) n = sizeof p->type - 1;
  memcpy(p->type, s, n);
  p->type[n] = 0;
}

/* Reads an RFC 3339 member as the message's clock. */
static void msg_time(cs_parser *p, const cs_json_val *v) {
  const char *s, *why;
  size_t n;
  if (str_field(v, &s, &n) == 0 && n <= 64 && cs_time_parse_rfc3339(s, n, &p->info.time_us, &why) == 0)
    p->info.has_time = 1;
}

/* 1 for "match", 2 for "last_match", 0 otherwise. */
static int is_trade_type(const char *s, size_t n) {
  if (n == 5 && memcmp(s, "match", 5) == 0) return 1;
  if (n == 10 && memcmp(s, "last_match", 10) == 0) return 2;
  return 0;
}

/* A message with `type` twice is a trade with a duplicated member when any
 * of its types says trade: rejecting it beats guessing which one is meant. */
static int any_trade_type(const cs_json_val *root) {
  cs_json_iter it;
  const char *k, *s;
  size_t kl, sl;
  cs_json_val val;
  cs_json_obj_iter(root, &it);
  while (cs_json_obj_next(&it, &k, &kl, &val))
    if (kl == 4 && memcmp(k, "type", 4) == 0 && str_field(&val, &s, &sl) == 0 && is_trade_type(s, sl)) return 1;
  return 0;
}

static cs_trade *next_trade(cs_parser *p, size_t n) {
  if (n == p->cap) {
    cs_trade *nt = realloc(p->trades, p->cap * 2 * sizeof *nt);
    if (!nt) return NULL;
    p->trades = nt;
    p->cap *= 2;
  }
  memset(&p->trades[n], 0, sizeof p->trades[n]);
  return &p->trades[n];
}

/* Common fields of a trade: product_id, price, size, time (strings). The
 * id and the side differ by feed and are read by the caller. Returns NULL,
 * or the reason (in p->why). */
static const char *trade_fields(cs_parser *p, const cs_json_val *v, uint32_t seen, cs_trade *t) {
  static const int need[] = {F_PRODUCT, F_TRADE_ID, F_PRICE, F_SIZE, F_TIME};
  const char *s, *twhy;
  size_t sl;
  for (size_t i = 0; i < sizeof need / sizeof *need; i++)
    if (!(seen & (1u << need[i]))) {
      snprintf(p->why, sizeof p->why, "field '%s': missing", field_names[need[i]]);
      return p->why;
    }
  if (str_field(&v[F_PRODUCT], &s, &sl) != 0 || sl == 0 || sl > UINT16_MAX)
    return "field 'product_id': not a non-empty string";
  t->product_id = s;
  t->product_len = (uint16_t)sl;
  if (str_field(&v[F_PRICE], &s, &sl) != 0 || sl > UINT16_MAX || cs_decimal_parse(s, sl, &t->price) != 0)
    return "field 'price': not a plain decimal string";
  if (!(t->price > 0) || !isfinite(t->price)) return "field 'price': not finite and > 0";
  t->price_str = s;
  t->price_len = (uint16_t)sl;
  if (str_field(&v[F_SIZE], &s, &sl) != 0 || sl > UINT16_MAX || cs_decimal_parse(s, sl, &t->size) != 0)
    return "field 'size': not a plain decimal string";
  if (!(t->size > 0) || !isfinite(t->size)) return "field 'size': not finite and > 0";
  t->size_str = s;
  t->size_len = (uint16_t)sl;
  if (str_field(&v[F_TIME], &s, &sl) != 0) return "field 'time': not a string";
  if (sl > 64) return "field 'time': too long";
  if (cs_time_parse_rfc3339(s, sl, &t->time_us, &twhy) != 0) {
    snprintf(p->why, sizeof p->why, "field 'time': %s", twhy);
    return p->why;
  }
  t->time_str = s;
  t->time_len = (uint16_t)sl;
  t->sequence = -1;
  t->exchange = "coinbase";
  return NULL;
}

/* A string of digits as a positive 64-bit id (Advanced Trade trade_id). */
static int digits_id(const char *s, size_t n, int64_t *out) {
  if (n == 0 || n > 19) return -1;
  uint64_t v = 0;
  for (size_t i = 0; i < n; i++) {
    if (s[i] < '0' || s[i] > '9') return -1;
    v = v * 10 + (uint64_t)(s[i] - '0');
  }
  if (v > INT64_MAX) return -1;
  *out = (int64_t)v;
  return 0;
}

/* One trade per message: an Exchange `match`/`last_match` (`side`, the
 * maker's) or cstream's trade record v1 (`taker_side`). */
static cs_parse_result single_trade(cs_parser *p, const cs_json_val *v, uint32_t seen, int side_field, int is_last,
                                    const cs_trade **trades, size_t *n, const char **why) {
  const char *name = field_names[side_field];
  cs_trade *t = next_trade(p, 0);
  if (!(seen & (1u << side_field))) return invalid(p, why, "field '%s': missing%s", name, "");
  const char *bad = trade_fields(p, v, seen, t);
  if (bad) return invalid(p, why, "%s%s", bad, "");
  if (cs_json_type_of(&v[F_TRADE_ID]) != CS_JSON_INT)
    return invalid(p, why, "field '%s': %s", "trade_id", "not a 64-bit JSON integer");
  t->trade_id = cs_json_int(&v[F_TRADE_ID]);
  const char *s;
  size_t sl;
  int buy;
  if (str_field(&v[side_field], &s, &sl) != 0)
    return invalid(p, why, "field '%s': %s", name, "not \"buy\" or \"sell\"");
  if (sl == 3 && memcmp(s, "buy", 3) == 0)
    buy = 1;
  else if (sl == 4 && memcmp(s, "sell", 4) == 0)
    buy = 0;
  else
    return invalid(p, why, "field '%s': %s", name, "not \"buy\" or \"sell\"");
  /* Coinbase's `side` is the maker's: a resting sell order filled means
   * the taker bought. The record's `taker_side` says it directly. */
  if (side_field == F_SIDE) buy = !buy;
  t->taker_side = buy ? CS_SIDE_BUY : CS_SIDE_SELL;
  if ((seen & (1u << F_SEQUENCE)) && cs_json_type_of(&v[F_SEQUENCE]) == CS_JSON_INT)
    t->sequence = cs_json_int(&v[F_SEQUENCE]);
  t->last_match = (uint8_t)is_last;
  p->info.kind = CS_MSG_TRADES;
  p->info.has_time = 1;
  p->info.time_us = t->time_us;
  *trades = p->trades;
  *n = 1;
  return CS_PARSE_TRADES;
}

/* Oldest first: by time, then trade_id, then product (byte order). */
static int oldest_first(const void *a, const void *b) {
  const cs_trade *x = a, *y = b;
  int c = (x->time_us > y->time_us) - (x->time_us < y->time_us);
  if (!c) c = (x->trade_id > y->trade_id) - (x->trade_id < y->trade_id);
  if (!c) {
    size_t n = x->product_len < y->product_len ? x->product_len : y->product_len;
    c = memcmp(x->product_id, y->product_id, n);
    if (!c) c = (x->product_len > y->product_len) - (x->product_len < y->product_len);
  }
  return c;
}

/* Advanced Trade `market_trades`: events[].trades[]. */
static cs_parse_result advanced_trades(cs_parser *p, const cs_json_val *events, const cs_trade **trades, size_t *n,
                                       const char **why) {
  size_t k = 0;
  cs_json_iter ei, ti;
  cs_json_val ev, tv, v[F_COUNT], list;
  if (cs_json_type_of(events) != CS_JSON_ARRAY) return invalid(p, why, "field '%s': %s", "events", "not an array");
  cs_json_arr_iter(events, &ei);
  while (cs_json_arr_next(&ei, &ev)) {
    if (cs_json_type_of(&ev) != CS_JSON_OBJECT) continue;
    uint32_t seen, dups;
    cs_json_obj_pick(&ev, field_index, v, &seen, &dups);
    if (!(seen & (1u << F_TRADES))) continue;
    int snapshot = 0;
    const char *s;
    size_t sl;
    if ((seen & (1u << F_TYPE)) && str_field(&v[F_TYPE], &s, &sl) == 0) snapshot = sl == 8 && memcmp(s, "snapshot", 8) == 0;
    list = v[F_TRADES];
    if (cs_json_type_of(&list) != CS_JSON_ARRAY) continue;
    cs_json_arr_iter(&list, &ti);
    while (cs_json_arr_next(&ti, &tv)) {
      const char *bad = NULL;
      cs_trade *t = next_trade(p, k);
      if (!t) return invalid(p, why, "%s%s", "out of memory", "");
      if (cs_json_type_of(&tv) != CS_JSON_OBJECT) {
        bad = "a trade is not a JSON object";
      } else {
        cs_json_obj_pick(&tv, field_index, v, &seen, &dups);
        if (dups & ((1u << (F_TRADE_LAST + 1)) - 1)) {
          snprintf(p->why, sizeof p->why, "duplicate key '%s'", field_names[__builtin_ctz(dups)]);
          bad = p->why;
        } else if (!(bad = trade_fields(p, v, seen, t))) {
          if (str_field(&v[F_TRADE_ID], &s, &sl) != 0 || digits_id(s, sl, &t->trade_id) != 0)
            bad = "field 'trade_id': not a string of digits (64-bit)";
          else if (!(seen & (1u << F_SIDE)) || str_field(&v[F_SIDE], &s, &sl) != 0)
            bad = "field 'side': not \"BUY\" or \"SELL\"";
          else if (sl == 3 && memcmp(s, "BUY", 3) == 0)
            t->taker_side = CS_SIDE_SELL; /* maker side, as on the Exchange feed */
          else if (sl == 4 && memcmp(s, "SELL", 4) == 0)
            t->taker_side = CS_SIDE_BUY;
          else
            bad = "field 'side': not \"BUY\" or \"SELL\"";
        }
      }
      if (bad) {
        if (p->info.invalid_trades++ == 0) {
          if (bad != p->why) snprintf(p->why, sizeof p->why, "%s", bad);
          p->info.invalid_reason = p->why;
        }
        continue;
      }
      t->last_match = (uint8_t)snapshot;
      k++;
    }
  }
  if (k == 0) {
    if (p->info.invalid_trades) {
      *why = p->info.invalid_reason;
      return CS_PARSE_INVALID;
    }
    set_type(p, "market_trades", 13);
    return CS_PARSE_OTHER;
  }
  /* Newest first in the message: hand them over oldest first. */
  qsort(p->trades, k, sizeof *p->trades, oldest_first);
  p->info.kind = CS_MSG_TRADES;
  *trades = p->trades;
  *n = k;
  return CS_PARSE_TRADES;
}

cs_parse_result cs_parse_line(cs_parser *p, const char *line, size_t len, bool padded, const cs_trade **trades,
                              size_t *n, const char **why) {
  cs_json_val root, v[F_COUNT];
  const char *jwhy;
  *n = 0;
  p->type[0] = 0;
  memset(&p->info, 0, sizeof p->info);
  p->info.last_trade_id = -1;
  if (cs_json_parse(p->json, line, len, padded, &root, &jwhy) != 0)
    return invalid(p, why, "bad JSON: %s%s", jwhy, "");
  if (cs_json_type_of(&root) != CS_JSON_OBJECT)
    return invalid(p, why, "not a JSON object (%s)%s", cs_json_type_name(cs_json_type_of(&root)), "");

  uint32_t seen, dups;
  cs_json_obj_pick(&root, field_index, v, &seen, &dups);
  const char *type = NULL, *s;
  size_t type_len = 0, sl;

  if ((dups & (1u << F_TYPE)) && any_trade_type(&root)) return invalid(p, why, "duplicate key '%s'%s", "type", "");
  if (!(seen & (1u << F_TYPE)) || str_field(&v[F_TYPE], &type, &type_len) != 0) {
    /* No `type`: an Advanced Trade frame, cstream's trade record, or other. */
    if (seen & (1u << F_V)) {
      if (dups & ((1u << (F_TRADE_LAST + 1)) - 1))
        return invalid(p, why, "duplicate key '%s'%s", field_names[__builtin_ctz(dups)], "");
      if (cs_json_type_of(&v[F_V]) != CS_JSON_INT || cs_json_int(&v[F_V]) != 1)
        return invalid(p, why, "field '%s': %s", "v", "unsupported trade record version");
      return single_trade(p, v, seen, F_TAKER_SIDE, 0, trades, n, why);
    }
    if (!(seen & (1u << F_CHANNEL)) || str_field(&v[F_CHANNEL], &s, &sl) != 0) return CS_PARSE_OTHER;
    if (seen & (1u << F_TIMESTAMP)) msg_time(p, &v[F_TIMESTAMP]);
    if (sl == 13 && memcmp(s, "market_trades", 13) == 0 && (seen & (1u << F_EVENTS)))
      return advanced_trades(p, &v[F_EVENTS], trades, n, why);
    set_type(p, s, sl);
    if (sl == 10 && memcmp(s, "heartbeats", 10) == 0) p->info.kind = CS_MSG_HEARTBEAT;
    if (sl == 13 && memcmp(s, "subscriptions", 13) == 0) p->info.kind = CS_MSG_SUBSCRIPTIONS;
    return CS_PARSE_OTHER;
  }

  int tt = is_trade_type(type, type_len);
  if (!tt) {
    set_type(p, type, type_len);
    if (seen & (1u << F_TIME)) msg_time(p, &v[F_TIME]);
    if (type_len == 9 && memcmp(type, "heartbeat", 9) == 0) {
      p->info.kind = CS_MSG_HEARTBEAT;
      p->info.product_id = copy_str(&v[F_PRODUCT], (seen >> F_PRODUCT) & 1, p->product, sizeof p->product);
      if ((seen & (1u << F_LAST_TRADE_ID)) && cs_json_type_of(&v[F_LAST_TRADE_ID]) == CS_JSON_INT)
        p->info.last_trade_id = cs_json_int(&v[F_LAST_TRADE_ID]);
    } else if (type_len == 13 && memcmp(type, "subscriptions", 13) == 0) {
      p->info.kind = CS_MSG_SUBSCRIPTIONS;
    } else if (type_len == 5 && memcmp(type, "error", 5) == 0) {
      p->info.kind = CS_MSG_ERROR;
      p->info.message = copy_str(&v[F_MESSAGE], (seen >> F_MESSAGE) & 1, p->message, sizeof p->message);
      p->info.reason = copy_str(&v[F_REASON], (seen >> F_REASON) & 1, p->reason, sizeof p->reason);
    }
    return CS_PARSE_OTHER;
  }
  uint32_t trade_dups = dups & ((1u << (F_TRADE_LAST + 1)) - 1);
  if (trade_dups) return invalid(p, why, "duplicate key '%s'%s", field_names[__builtin_ctz(trade_dups)], "");
  return single_trade(p, v, seen, F_SIDE, tt == 2, trades, n, why);
}
