#include "ch_wire.h"

#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cs_decimal.h"
#include "cs_time.h"

/* ---------------------------------------------------------------- errors */
const char *ch_class_name(ch_class c) {
  switch (c) {
    case CH_RETRY: return "transient";
    case CH_ROW: return "row refused";
    case CH_AUTH: return "authentication";
    case CH_FATAL: return "permanent";
  }
  return "?";
}

/* Error codes (ClickHouse src/Common/ErrorCodes.cpp) by what they mean for
 * a sink. Codes not listed are treated as transient: retried, and logged
 * with their code, because giving up on rows is worse than retrying. */
static const int row_codes[] = {6,   /* CANNOT_PARSE_TEXT */
                                25,  /* CANNOT_PARSE_ESCAPE_SEQUENCE */
                                26,  /* CANNOT_PARSE_QUOTED_STRING */
                                27,  /* CANNOT_PARSE_INPUT_ASSERTION_FAILED */
                                32,  /* ATTEMPT_TO_READ_AFTER_EOF */
                                33,  /* CANNOT_READ_ALL_DATA */
                                38,  /* CANNOT_PARSE_DATE */
                                41,  /* CANNOT_PARSE_DATETIME */
                                53,  /* TYPE_MISMATCH */
                                69,  /* ARGUMENT_OUT_OF_BOUND */
                                70,  /* CANNOT_CONVERT_TYPE */
                                72,  /* CANNOT_PARSE_NUMBER */
                                117, /* INCORRECT_DATA */
                                131, /* TOO_LARGE_STRING_SIZE */
                                321, /* VALUE_IS_OUT_OF_RANGE_OF_DATA_TYPE */
                                349, /* CANNOT_INSERT_NULL_IN_ORDINARY_COLUMN */
                                0};
static const int auth_codes[] = {164, /* READONLY */
                                 192, /* UNKNOWN_USER */
                                 193, /* WRONG_PASSWORD */
                                 194, /* REQUIRED_PASSWORD */
                                 195, /* IP_ADDRESS_NOT_ALLOWED */
                                 291, /* DATABASE_ACCESS_DENIED */
                                 497, /* ACCESS_DENIED */
                                 516, /* AUTHENTICATION_FAILED */
                                 0};
static const int fatal_codes[] = {10,  /* NOT_FOUND_COLUMN_IN_BLOCK */
                                  16,  /* NO_SUCH_COLUMN_IN_TABLE */
                                  36,  /* BAD_ARGUMENTS */
                                  43,  /* ILLEGAL_TYPE_OF_ARGUMENT */
                                  44,  /* ILLEGAL_COLUMN */
                                  46,  /* UNKNOWN_FUNCTION */
                                  47,  /* UNKNOWN_IDENTIFIER */
                                  48,  /* NOT_IMPLEMENTED */
                                  50,  /* UNKNOWN_TYPE */
                                  57,  /* TABLE_ALREADY_EXISTS */
                                  60,  /* UNKNOWN_TABLE */
                                  62,  /* SYNTAX_ERROR */
                                  73,  /* UNKNOWN_FORMAT */
                                  80,  /* INCORRECT_QUERY */
                                  81,  /* UNKNOWN_DATABASE */
                                  115, /* UNKNOWN_SETTING */
                                  184, /* ILLEGAL_AGGREGATION */
                                  0};

static int in(const int *list, int code) {
  for (; *list; list++)
    if (*list == code) return 1;
  return 0;
}

ch_class ch_error_class(int code, long status, const char *msg) {
  if (code) {
    if (in(row_codes, code)) {
      /* A field the table does not have: every row would be refused. */
      if (code == 117 && msg && strstr(msg, "Unknown field")) return CH_FATAL;
      return CH_ROW;
    }
    if (in(auth_codes, code)) return CH_AUTH;
    if (in(fatal_codes, code)) return CH_FATAL;
    return CH_RETRY;
  }
  /* No ClickHouse code: a proxy, a load balancer, or a server that broke off. */
  if (status == 401 || status == 403) return CH_AUTH;
  if (status >= 500 || status == 408 || status == 429 || status == 0 || status == 200) return CH_RETRY;
  return CH_FATAL;
}

/* Finds "Code: N" at the start of the text or of a line; -> pointer to it. */
static const char *find_code(const char *body, size_t len, int *code) {
  for (size_t i = 0; i + 6 < len; i++) {
    if ((i == 0 || body[i - 1] == '\n') && memcmp(body + i, "Code: ", 6) == 0 && isdigit((unsigned char)body[i + 6])) {
      long c = 0;
      size_t j = i + 6;
      while (j < len && isdigit((unsigned char)body[j]) && c < 100000) c = c * 10 + (body[j++] - '0');
      if (j < len && (body[j] == ',' || body[j] == '.')) {
        *code = (int)c;
        return body + i;
      }
    }
  }
  return NULL;
}

/* The message as one line: newlines to spaces, the 18.16 tail dropped. */
static void one_line(char *dst, size_t size, const char *s, size_t n) {
  size_t k = 0;
  static const char tail[] = ", e.what() = DB::Exception";
  for (size_t i = 0; i < n && k + 1 < size; i++) {
    char c = s[i];
    if (c == '\r' || c == '\n' || c == '\t') c = ' ';
    if (c == ' ' && k > 0 && dst[k - 1] == ' ') continue;
    dst[k++] = c;
  }
  dst[k] = 0;
  char *t = strstr(dst, tail);
  if (t) *t = 0;
  k = strlen(dst);
  while (k && (dst[k - 1] == ' ' || dst[k - 1] == ',')) dst[--k] = 0;
}

static long row_hint(const char *msg) {
  const char *p = strstr(msg, "(at row ");
  if (!p) return 0;
  p += 8;
  long r = 0;
  while (isdigit((unsigned char)*p) && r < 1000000000) r = r * 10 + (*p++ - '0');
  return *p == ')' ? r : 0;
}

int ch_error_from_answer(long status, const char *body, size_t len, const char *hdr_code, ch_error *e) {
  memset(e, 0, sizeof *e);
  e->status = status;
  int code = 0;
  const char *at = find_code(body, len, &code);
  if (hdr_code && hdr_code[0]) code = atoi(hdr_code);
  if (status == 200 && !at && !(hdr_code && hdr_code[0])) return 0;
  e->code = code;
  if (at) {
    one_line(e->msg, sizeof e->msg, at, len - (size_t)(at - body));
  } else if (len) {
    char tmp[sizeof e->msg];
    one_line(tmp, sizeof tmp, body, len);
    snprintf(e->msg, sizeof e->msg, "HTTP %ld: %s", status, tmp);
  } else {
    snprintf(e->msg, sizeof e->msg, "HTTP %ld with an empty body", status);
  }
  e->row = row_hint(e->msg);
  e->cls = ch_error_class(code, status, e->msg);
  return -1;
}

void ch_error_from_transport(cs_http_transport t, const char *what, ch_error *e) {
  memset(e, 0, sizeof *e);
  const char *pre = t == CS_HTTP_ERR_TLS ? "TLS: the server's certificate was not accepted: " : "";
  snprintf(e->msg, sizeof e->msg, "%s%s", pre, what && what[0] ? what : "request failed");
  e->cls = (t == CS_HTTP_ERR_TLS || t == CS_HTTP_ERR_CONFIG) ? CH_FATAL : CH_RETRY;
}

void ch_scrub(char *s, const char *secret) {
  size_t n = secret ? strlen(secret) : 0;
  if (!n) return;
  char *p;
  while ((p = strstr(s, secret))) {
    size_t rest = strlen(p + n);
    if (n >= 3) {
      memcpy(p, "***", 3);
      memmove(p + 3, p + n, rest + 1);
    } else {
      memset(p, '*', n);
    }
  }
}

/* ---------------------------------------------------------------- checks */
#define DATETIME_MAX INT64_C(4294967295) /* DateTime is UInt32 seconds */

static int time_ok(int64_t us) {
  int64_t s = cs_time_floor_div(us, CS_US_PER_S);
  return s >= 0 && s <= DATETIME_MAX;
}

int ch_row_check(const cs_row *r, char *why, size_t size) {
  const double vals[CS_AGG_COUNT] = {0,      r->avg_price, r->vwap,   r->open,       r->high,
                                     r->low, r->close,     r->volume, r->buy_volume, r->sell_volume};
  for (int i = 1; i < CS_AGG_COUNT; i++) {
    if ((r->aggs & (1u << i)) && !isfinite(vals[i])) {
      snprintf(why, size, "%s is %s, which ClickHouse would store without complaint: not sent", cs_agg_names[i],
               isnan(vals[i]) ? "NaN" : (vals[i] > 0 ? "+inf" : "-inf"));
      return -1;
    }
  }
  if (!time_ok(r->window_start_us) || !time_ok(r->window_end_us)) {
    snprintf(why, size, "window %lld..%lld s is outside ClickHouse DateTime's range (1970..2106): not sent",
             (long long)cs_time_floor_div(r->window_start_us, CS_US_PER_S),
             (long long)cs_time_floor_div(r->window_end_us, CS_US_PER_S));
    return -1;
  }
  return 0;
}

int ch_trade_check(const cs_trade *t, char *why, size_t size) {
  if (!isfinite(t->price) || !isfinite(t->size)) {
    snprintf(why, size, "%s is not a finite number: not sent", isfinite(t->price) ? "size" : "price");
    return -1;
  }
  return 0;
}

/* ------------------------------------------------------------------ JSON */
static void put_u64(cs_buf *b, uint64_t v) {
  char tmp[24];
  int n = 0;
  do {
    tmp[sizeof tmp - 1 - n++] = (char)('0' + v % 10);
    v /= 10;
  } while (v);
  cs_buf_append(b, tmp + sizeof tmp - n, (size_t)n);
}

static void put_i64(cs_buf *b, int64_t v) {
  if (v < 0) {
    cs_buf_append(b, "-", 1);
    put_u64(b, (uint64_t)0 - (uint64_t)v);
  } else {
    put_u64(b, (uint64_t)v);
  }
}

/* A decimal as received, when it still is the value (a Lua map may have
 * changed the number and not the text); the shortest round trip otherwise. */
static void put_decimal(cs_buf *b, const char *s, size_t n, double v) {
  double parsed;
  if (s && n && cs_decimal_parse(s, n, &parsed) == 0 && parsed == v) {
    while (n > 1 && s[0] == '0' && s[1] != '.') { /* JSON numbers have no leading zeros */
      s++;
      n--;
    }
    cs_buf_append(b, s, n);
  } else {
    cs_buf_json_num(b, v);
  }
}

void ch_row_json(const cs_row *r, uint64_t version, cs_buf *b) {
  cs_buf_puts(b, "{\"product_id\":");
  cs_buf_json_str(b, r->product_id, strlen(r->product_id));
  cs_buf_puts(b, ",\"window_start\":");
  put_i64(b, cs_time_floor_div(r->window_start_us, CS_US_PER_S));
  cs_buf_puts(b, ",\"window_end\":");
  put_i64(b, cs_time_floor_div(r->window_end_us, CS_US_PER_S));
  if (r->aggs & CS_AGG_TRADES) {
    cs_buf_puts(b, ",\"trades\":");
    put_u64(b, r->trades);
  }
  const double vals[CS_AGG_COUNT] = {0,      r->avg_price, r->vwap,   r->open,       r->high,
                                     r->low, r->close,     r->volume, r->buy_volume, r->sell_volume};
  for (int i = 1; i < CS_AGG_COUNT; i++) {
    if (!(r->aggs & (1u << i))) continue;
    cs_buf_printf(b, ",\"%s\":", cs_agg_names[i]);
    cs_buf_json_num(b, vals[i]);
  }
  if (r->ext_json && r->ext_json[0]) {
    cs_buf_append(b, ",", 1);
    cs_buf_puts(b, r->ext_json);
  }
  cs_buf_puts(b, ",\"version\":");
  put_u64(b, version);
  cs_buf_append(b, "}\n", 2);
}

static const char *exchange_of(const cs_trade *t) { return t->exchange ? t->exchange : "coinbase"; }

void ch_trade_json(const cs_trade *t, uint64_t version, cs_buf *b) {
  const char *ex = exchange_of(t);
  cs_buf_puts(b, "{\"exchange\":");
  cs_buf_json_str(b, ex, strlen(ex));
  cs_buf_puts(b, ",\"product_id\":");
  cs_buf_json_str(b, t->product_id, t->product_len);
  cs_buf_puts(b, ",\"trade_id\":");
  put_i64(b, t->trade_id);
  cs_buf_puts(b, ",\"time_us\":");
  put_i64(b, t->time_us);
  cs_buf_puts(b, ",\"price\":");
  put_decimal(b, t->price_str, t->price_len, t->price);
  cs_buf_puts(b, ",\"size\":");
  put_decimal(b, t->size_str, t->size_len, t->size);
  cs_buf_puts(b, t->taker_side == CS_SIDE_BUY ? ",\"taker_side\":\"buy\",\"sequence\":"
                                              : ",\"taker_side\":\"sell\",\"sequence\":");
  put_i64(b, t->sequence);
  cs_buf_puts(b, ",\"recv_time_us\":");
  put_i64(b, t->recv_us > 0 ? t->recv_us : 0);
  cs_buf_puts(b, t->last_match ? ",\"last_match\":1,\"version\":" : ",\"last_match\":0,\"version\":");
  put_u64(b, version);
  cs_buf_append(b, "}\n", 2);
}

/* ------------------------------------------------------------- RowBinary */
static void put_le(cs_buf *b, uint64_t v, int bytes) {
  unsigned char tmp[8];
  for (int i = 0; i < bytes; i++) tmp[i] = (unsigned char)(v >> (8 * i));
  cs_buf_append(b, tmp, (size_t)bytes);
}

static void put_f64(cs_buf *b, double d) {
  uint64_t u;
  memcpy(&u, &d, 8);
  put_le(b, u, 8);
}

static void put_str(cs_buf *b, const char *s, size_t n) {
  unsigned char tmp[10];
  int k = 0;
  size_t v = n;
  do { /* unsigned LEB128 length */
    unsigned char c = v & 0x7f;
    v >>= 7;
    tmp[k++] = (unsigned char)(c | (v ? 0x80 : 0));
  } while (v);
  cs_buf_append(b, tmp, (size_t)k);
  cs_buf_append(b, s, n);
}

void ch_trade_rowbinary(const cs_trade *t, uint64_t version, cs_buf *b) {
  const char *ex = exchange_of(t);
  put_str(b, ex, strlen(ex));
  put_str(b, t->product_id, t->product_len);
  put_le(b, (uint64_t)t->trade_id, 8);
  put_le(b, (uint64_t)t->time_us, 8);
  put_f64(b, t->price);
  put_f64(b, t->size);
  put_le(b, t->taker_side == CS_SIDE_BUY ? 1 : 2, 1);
  put_le(b, (uint64_t)t->sequence, 8);
  put_le(b, (uint64_t)(t->recv_us > 0 ? t->recv_us : 0), 8);
  put_le(b, t->last_match ? 1 : 0, 1);
  put_le(b, version, 8);
}

void ch_row_rowbinary(const cs_row *r, uint64_t version, cs_buf *b) {
  put_str(b, r->product_id, strlen(r->product_id));
  put_le(b, (uint64_t)cs_time_floor_div(r->window_start_us, CS_US_PER_S), 4);
  put_le(b, (uint64_t)cs_time_floor_div(r->window_end_us, CS_US_PER_S), 4);
  put_le(b, (r->aggs & CS_AGG_TRADES) ? r->trades : 0, 8);
  const double vals[CS_AGG_COUNT] = {0,      r->avg_price, r->vwap,   r->open,       r->high,
                                     r->low, r->close,     r->volume, r->buy_volume, r->sell_volume};
  for (int i = 1; i < CS_AGG_COUNT; i++) put_f64(b, (r->aggs & (1u << i)) ? vals[i] : 0.0);
  put_le(b, version, 8);
}

typedef struct rd {
  const unsigned char *p, *end;
  int bad;
} rd;

static uint64_t get_le(rd *r, int bytes) {
  if (r->end - r->p < bytes) {
    r->bad = 1;
    return 0;
  }
  uint64_t v = 0;
  for (int i = 0; i < bytes; i++) v |= (uint64_t)r->p[i] << (8 * i);
  r->p += bytes;
  return v;
}

static const char *get_str(rd *r, size_t *n) {
  uint64_t v = 0;
  for (int shift = 0;; shift += 7) {
    if (r->p >= r->end || shift > 56) {
      r->bad = 1;
      return NULL;
    }
    unsigned char c = *r->p++;
    v |= (uint64_t)(c & 0x7f) << shift;
    if (!(c & 0x80)) break;
  }
  if ((uint64_t)(r->end - r->p) < v) {
    r->bad = 1;
    return NULL;
  }
  const char *s = (const char *)r->p;
  r->p += v;
  *n = (size_t)v;
  return s;
}

static double get_f64(rd *r) {
  uint64_t u = get_le(r, 8);
  double d;
  memcpy(&d, &u, 8);
  return d;
}

int ch_row_rowbinary_to_json(const char *p, size_t len, cs_buf *b) {
  rd r = {(const unsigned char *)p, (const unsigned char *)p + len, 0};
  size_t pl = 0;
  const char *pid = get_str(&r, &pl);
  uint64_t start = get_le(&r, 4), end = get_le(&r, 4), trades = get_le(&r, 8);
  double vals[CS_AGG_COUNT];
  for (int i = 1; i < CS_AGG_COUNT; i++) vals[i] = get_f64(&r);
  uint64_t version = get_le(&r, 8);
  if (r.bad || r.p != r.end) return -1;
  cs_buf_puts(b, "{\"product_id\":");
  cs_buf_json_str(b, pid, pl);
  cs_buf_puts(b, ",\"window_start\":");
  put_u64(b, start);
  cs_buf_puts(b, ",\"window_end\":");
  put_u64(b, end);
  cs_buf_puts(b, ",\"trades\":");
  put_u64(b, trades);
  for (int i = 1; i < CS_AGG_COUNT; i++) {
    cs_buf_printf(b, ",\"%s\":", cs_agg_names[i]);
    cs_buf_json_num(b, vals[i]);
  }
  cs_buf_puts(b, ",\"version\":");
  put_u64(b, version);
  cs_buf_append(b, "}", 1);
  return 0;
}

int ch_trade_rowbinary_to_json(const char *p, size_t len, cs_buf *b) {
  rd r = {(const unsigned char *)p, (const unsigned char *)p + len, 0};
  size_t exl = 0, pl = 0;
  const char *ex = get_str(&r, &exl);
  const char *pid = r.bad ? NULL : get_str(&r, &pl);
  int64_t id = (int64_t)get_le(&r, 8), time = (int64_t)get_le(&r, 8);
  double price = get_f64(&r), size = get_f64(&r);
  unsigned side = (unsigned)get_le(&r, 1);
  int64_t seq = (int64_t)get_le(&r, 8), recv = (int64_t)get_le(&r, 8);
  unsigned last = (unsigned)get_le(&r, 1);
  uint64_t version = get_le(&r, 8);
  if (r.bad || r.p != r.end || (side != 1 && side != 2)) return -1;
  cs_buf_puts(b, "{\"exchange\":");
  cs_buf_json_str(b, ex, exl);
  cs_buf_puts(b, ",\"product_id\":");
  cs_buf_json_str(b, pid, pl);
  cs_buf_puts(b, ",\"trade_id\":");
  put_i64(b, id);
  cs_buf_puts(b, ",\"time_us\":");
  put_i64(b, time);
  cs_buf_puts(b, ",\"price\":");
  cs_buf_json_num(b, price);
  cs_buf_puts(b, ",\"size\":");
  cs_buf_json_num(b, size);
  cs_buf_puts(b, side == 1 ? ",\"taker_side\":\"buy\",\"sequence\":" : ",\"taker_side\":\"sell\",\"sequence\":");
  put_i64(b, seq);
  cs_buf_puts(b, ",\"recv_time_us\":");
  put_i64(b, recv);
  cs_buf_printf(b, ",\"last_match\":%u,\"version\":", last);
  put_u64(b, version);
  cs_buf_append(b, "}", 1);
  return 0;
}

/* ------------------------------------------------------------------- URL */
void ch_url_encode(cs_buf *b, const char *s, size_t n) {
  static const char hex[] = "0123456789ABCDEF";
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    if (isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      cs_buf_append(b, &s[i], 1);
    } else {
      char e[3] = {'%', hex[c >> 4], hex[c & 15]};
      cs_buf_append(b, e, 3);
    }
  }
}
