#include "cs_row.h"

#include <stdlib.h>
#include <string.h>

#include "cs_time.h"

void cs_row_to_json(const cs_row *row, cs_buf *b) {
  char ts[CS_TIME_RFC3339_LEN + 1];
  cs_buf_puts(b, "{\"product_id\":");
  cs_buf_json_str(b, row->product_id, strlen(row->product_id));
  cs_time_format_rfc3339(row->window_start_us, ts);
  cs_buf_printf(b, ",\"window_start\":\"%s\"", ts);
  cs_time_format_rfc3339(row->window_end_us, ts);
  cs_buf_printf(b, ",\"window_end\":\"%s\"", ts);
  if (row->aggs & CS_AGG_TRADES) cs_buf_printf(b, ",\"trades\":%llu", (unsigned long long)row->trades);
  const double vals[CS_AGG_COUNT] = {0,         row->avg_price, row->vwap,   row->open,       row->high,
                                     row->low,  row->close,     row->volume, row->buy_volume, row->sell_volume};
  for (int i = 1; i < CS_AGG_COUNT; i++) {
    if (!(row->aggs & (1u << i))) continue;
    cs_buf_printf(b, ",\"%s\":", cs_agg_names[i]);
    cs_buf_json_num(b, vals[i]);
  }
  if (row->ext_json && row->ext_json[0]) {
    cs_buf_append(b, ",", 1);
    cs_buf_puts(b, row->ext_json);
  }
  cs_buf_append(b, "}", 1);
}

/* Appends a 64-bit integer in decimal (no printf: this runs per trade). */
static void put_i64(cs_buf *b, int64_t v) {
  char tmp[24];
  char *p = tmp + sizeof tmp;
  uint64_t u = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
  do {
    *--p = (char)('0' + u % 10);
    u /= 10;
  } while (u);
  if (v < 0) *--p = '-';
  cs_buf_append(b, p, (size_t)(tmp + sizeof tmp - p));
}

void cs_trade_to_json(const cs_trade *t, cs_buf *b) {
  cs_buf_puts(b, "{\"v\":1,\"exchange\":");
  const char *ex = t->exchange ? t->exchange : "coinbase";
  cs_buf_json_str(b, ex, strlen(ex));
  cs_buf_puts(b, ",\"product_id\":");
  cs_buf_json_str(b, t->product_id, t->product_len);
  cs_buf_puts(b, ",\"trade_id\":");
  put_i64(b, t->trade_id);
  cs_buf_puts(b, ",\"price\":");
  cs_buf_json_str(b, t->price_str, t->price_len);
  cs_buf_puts(b, ",\"size\":");
  cs_buf_json_str(b, t->size_str, t->size_len);
  cs_buf_puts(b, t->taker_side == CS_SIDE_BUY ? ",\"taker_side\":\"buy\",\"time\":" : ",\"taker_side\":\"sell\",\"time\":");
  cs_buf_json_str(b, t->time_str, t->time_len);
  if (t->sequence >= 0) {
    cs_buf_puts(b, ",\"sequence\":");
    put_i64(b, t->sequence);
  } else
    cs_buf_puts(b, ",\"sequence\":null");
  if (t->recv_us > 0) {
    char ts[CS_TIME_RFC3339_LEN + 1];
    cs_time_format_rfc3339(t->recv_us, ts);
    /* second precision from the formatter, then the microseconds */
    cs_buf_printf(b, ",\"recv_time\":\"%.19s.%06lldZ\"}", ts,
                  (long long)(t->recv_us - cs_time_floor_div(t->recv_us, CS_US_PER_S) * CS_US_PER_S));
  } else {
    cs_buf_puts(b, ",\"recv_time\":null}");
  }
}

cs_trade *cs_trade_clone(const cs_trade *t) {
  size_t n = (size_t)t->product_len + t->price_len + t->size_len + t->time_len + 4 + (t->frame ? t->frame_len : 0);
  cs_trade *c = malloc(sizeof *c + n);
  if (!c) return NULL;
  *c = *t;
  char *p = (char *)(c + 1);
#define COPY(field, len)            \
  memcpy(p, t->field, t->len);      \
  p[t->len] = 0;                    \
  c->field = p;                     \
  p += t->len + 1;
  COPY(product_id, product_len)
  COPY(price_str, price_len)
  COPY(size_str, size_len)
  COPY(time_str, time_len)
#undef COPY
  if (t->frame) {
    memcpy(p, t->frame, t->frame_len);
    c->frame = p;
  }
  return c;
}
