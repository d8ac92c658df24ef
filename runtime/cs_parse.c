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
  cs_trade trade;
  char why[160];
  char type[32];
};

cs_parser *cs_parser_create(void) {
  cs_parser *p = calloc(1, sizeof *p);
  if (!p) return NULL;
  p->json = cs_json_create();
  if (!p->json) {
    free(p);
    return NULL;
  }
  return p;
}

void cs_parser_destroy(cs_parser *p) {
  if (!p) return;
  cs_json_destroy(p->json);
  free(p);
}

const char *cs_parse_last_type(const cs_parser *p) { return p->type; }

/* The members a match message uses; each may appear once. */
enum { F_TYPE, F_PRODUCT, F_TRADE_ID, F_PRICE, F_SIZE, F_SIDE, F_TIME, F_SEQUENCE, F_COUNT };
static const char *const field_names[F_COUNT] = {"type",  "product_id", "trade_id", "price",
                                                 "size",  "side",       "time",     "sequence"};

static int field_index(const char *k, size_t n) {
  /* Dispatch on length first: this runs for every member of every line. */
  switch (n) {
    case 4:
      if (memcmp(k, "type", 4) == 0) return F_TYPE;
      if (memcmp(k, "size", 4) == 0) return F_SIZE;
      if (memcmp(k, "side", 4) == 0) return F_SIDE;
      if (memcmp(k, "time", 4) == 0) return F_TIME;
      return -1;
    case 5: return memcmp(k, "price", 5) == 0 ? F_PRICE : -1;
    case 8:
      if (memcmp(k, "trade_id", 8) == 0) return F_TRADE_ID;
      if (memcmp(k, "sequence", 8) == 0) return F_SEQUENCE;
      return -1;
    case 10: return memcmp(k, "product_id", 10) == 0 ? F_PRODUCT : -1;
    default: return -1;
  }
}

static cs_parse_result invalid(cs_parser *p, const char **why, const char *fmt, const char *field, const char *detail) {
  snprintf(p->why, sizeof p->why, fmt, field, detail);
  *why = p->why;
  return CS_PARSE_INVALID;
}

static int str_field(const cs_json_val *v, const char **s, size_t *n) {
  if (cs_json_type_of(v) != CS_JSON_STRING) return -1;
  *s = cs_json_str(v, n);
  return 0;
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

cs_parse_result cs_parse_line(cs_parser *p, const char *line, size_t len, bool padded, const cs_trade **trades,
                              size_t *n, const char **why) {
  cs_json_val root, v[F_COUNT];
  const char *jwhy;
  *n = 0;
  p->type[0] = 0;
  if (cs_json_parse(p->json, line, len, padded, &root, &jwhy) != 0)
    return invalid(p, why, "bad JSON: %s%s", jwhy, "");
  if (cs_json_type_of(&root) != CS_JSON_OBJECT) return invalid(p, why, "not a JSON object (%s)%s", cs_json_type_name(cs_json_type_of(&root)), "");

  uint32_t seen, dups;
  cs_json_obj_pick(&root, field_index, v, &seen, &dups);
  int dup = dups ? __builtin_ctz(dups) : -1;

  const char *type = NULL;
  size_t type_len = 0;
  if ((dups & (1u << F_TYPE)) && any_trade_type(&root))
    return invalid(p, why, "duplicate key '%s'%s", "type", "");
  if (!(seen & (1u << F_TYPE)) || str_field(&v[F_TYPE], &type, &type_len) != 0) return CS_PARSE_OTHER;
  int is_match = is_trade_type(type, type_len) == 1;
  int is_last = is_trade_type(type, type_len) == 2;
  if (!is_match && !is_last) {
    size_t tl = type_len < sizeof p->type - 1 ? type_len : sizeof p->type - 1;
    memcpy(p->type, type, tl);
    p->type[tl] = 0;
    return CS_PARSE_OTHER;
  }
  if (dup >= 0) return invalid(p, why, "duplicate key '%s'%s", field_names[dup], "");
  for (int f = F_PRODUCT; f <= F_TIME; f++)
    if (!(seen & (1u << f))) return invalid(p, why, "field '%s': missing%s", field_names[f], "");

  cs_trade *t = &p->trade;
  const char *s;
  size_t sl;

  if (str_field(&v[F_PRODUCT], &s, &sl) != 0 || sl == 0 || sl > UINT16_MAX)
    return invalid(p, why, "field '%s': %s", "product_id", "not a non-empty string");
  t->product_id = s;
  t->product_len = (uint16_t)sl;

  if (cs_json_type_of(&v[F_TRADE_ID]) != CS_JSON_INT)
    return invalid(p, why, "field '%s': %s", "trade_id", "not a 64-bit JSON integer");
  t->trade_id = cs_json_int(&v[F_TRADE_ID]);

  if (str_field(&v[F_PRICE], &s, &sl) != 0 || sl > UINT16_MAX || cs_decimal_parse(s, sl, &t->price) != 0)
    return invalid(p, why, "field '%s': %s", "price", "not a plain decimal string");
  if (!(t->price > 0) || !isfinite(t->price))
    return invalid(p, why, "field '%s': %s", "price", "not finite and > 0");
  t->price_str = s;
  t->price_len = (uint16_t)sl;

  if (str_field(&v[F_SIZE], &s, &sl) != 0 || sl > UINT16_MAX || cs_decimal_parse(s, sl, &t->size) != 0)
    return invalid(p, why, "field '%s': %s", "size", "not a plain decimal string");
  if (!(t->size > 0) || !isfinite(t->size)) return invalid(p, why, "field '%s': %s", "size", "not finite and > 0");
  t->size_str = s;
  t->size_len = (uint16_t)sl;

  if (str_field(&v[F_SIDE], &s, &sl) != 0) return invalid(p, why, "field '%s': %s", "side", "not \"buy\" or \"sell\"");
  /* Coinbase's `side` is the maker's: a resting sell order filled means
   * the taker bought. */
  if (sl == 3 && memcmp(s, "buy", 3) == 0)
    t->taker_side = CS_SIDE_SELL;
  else if (sl == 4 && memcmp(s, "sell", 4) == 0)
    t->taker_side = CS_SIDE_BUY;
  else
    return invalid(p, why, "field '%s': %s", "side", "not \"buy\" or \"sell\"");

  const char *twhy;
  if (str_field(&v[F_TIME], &s, &sl) != 0) return invalid(p, why, "field '%s': %s", "time", "not a string");
  if (sl > 64 || cs_time_parse_rfc3339(s, sl, &t->time_us, &twhy) != 0) return invalid(p, why, "field '%s': %s", "time", sl > 64 ? "too long" : twhy);
  t->time_str = s;
  t->time_len = (uint16_t)sl;

  t->sequence = -1;
  if ((seen & (1u << F_SEQUENCE)) && cs_json_type_of(&v[F_SEQUENCE]) == CS_JSON_INT)
    t->sequence = cs_json_int(&v[F_SEQUENCE]);
  t->last_match = (uint8_t)is_last;
  t->exchange = "coinbase";
  t->recv_us = 0;

  *trades = t;
  *n = 1;
  return CS_PARSE_TRADES;
}
