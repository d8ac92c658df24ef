/* cs_parse_line on real Coinbase lines (copied from
 * /work/shared/data/coinbase-exchange-matches-2025-08-22.jsonl and
 * coinbase-exchange-mixed-2021-04-17.jsonl.gz) and on broken ones. Every
 * line is parsed twice: unpadded from an exact-size heap copy, and padded
 * from a buffer with CS_JSON_PADDING junk bytes after it. */
#include "check.h"
#include "cs_json.h"
#include "cs_parse.h"

static const char L_BTC_BUY[] =
    "{\"type\":\"match\",\"trade_id\":865127782,\"maker_order_id\":\"5f4bb11b-f065-4025-ad53-2091b10ad2cf\","
    "\"taker_order_id\":\"66715b57-0167-4ae9-8b2b-75a064a923f4\",\"side\":\"buy\",\"size\":\"0.00004147\","
    "\"price\":\"116827.85\",\"product_id\":\"BTC-USD\",\"sequence\":110614077300,"
    "\"time\":\"2025-08-22T20:11:30.012637Z\"}";
static const char L_BTC_SELL[] =
    "{\"type\":\"match\",\"trade_id\":865127783,\"maker_order_id\":\"171b7b33-ae7b-4744-8331-aaef591605b6\","
    "\"taker_order_id\":\"7c7ffdab-4b42-4743-89e7-7c804c5e7022\",\"side\":\"sell\",\"size\":\"0.00002298\","
    "\"price\":\"116827.86\",\"product_id\":\"BTC-USD\",\"sequence\":110614077336,"
    "\"time\":\"2025-08-22T20:11:30.137128Z\"}";
static const char L_ETH[] =
    "{\"type\":\"match\",\"trade_id\":689038653,\"maker_order_id\":\"6c1c7aca-3bc5-4b75-8956-aa6fa22463f2\","
    "\"taker_order_id\":\"83dc8f40-f09d-4e8e-beba-81c64e403d75\",\"side\":\"sell\",\"size\":\"1\","
    "\"price\":\"4825.3\",\"product_id\":\"ETH-USD\",\"sequence\":85742786325,"
    "\"time\":\"2025-08-22T20:11:30.684898Z\"}";
static const char L_LTC[] =
    "{\"type\":\"match\",\"trade_id\":173026396,\"maker_order_id\":\"5fdfe03a-030a-434f-a09d-fcfca5bbcda5\","
    "\"taker_order_id\":\"8d1f3eb1-bbe8-47fc-ae00-543f0859bed4\",\"side\":\"sell\",\"size\":\"0.009\","
    "\"price\":\"122.63\",\"product_id\":\"LTC-USD\",\"sequence\":21683930537,"
    "\"time\":\"2025-08-22T20:11:31.066356Z\"}";
/* From the 2021 capture. */
static const char L_LAST_MATCH[] =
    "{\"type\":\"last_match\",\"trade_id\":881613,\"maker_order_id\":\"27fff20b-af29-4f45-8744-56dd1ef57dc0\","
    "\"taker_order_id\":\"1da6ce16-c8da-4732-9f71-6049f4c6aaf8\",\"side\":\"sell\",\"size\":\"0.04\","
    "\"price\":\"14.7775\",\"product_id\":\"BAND-GBP\",\"sequence\":333938798,"
    "\"time\":\"2021-04-17T16:43:30.244075Z\"}";
static const char L_SKL[] =
    "{\"type\":\"match\",\"trade_id\":280232,\"maker_order_id\":\"2a0da34e-61f7-4c36-88e5-c9dd15927b16\","
    "\"taker_order_id\":\"3c82abaa-c01e-4608-be59-6a1e69742891\",\"side\":\"sell\",\"size\":\"985\","
    "\"price\":\"0.00001305\",\"product_id\":\"SKL-BTC\",\"sequence\":177100030,"
    "\"time\":\"2021-04-17T16:43:37.089723Z\"}";
static const char L_TICKER[] =
    "{\"type\":\"ticker\",\"sequence\":333938798,\"product_id\":\"BAND-GBP\",\"price\":\"14.7775\","
    "\"open_24h\":\"14.6647\",\"volume_24h\":\"94381.28000000\",\"low_24h\":\"14.3691\",\"high_24h\":\"16.55\","
    "\"volume_30d\":\"2295579.57000000\",\"best_bid\":\"14.7550\",\"best_ask\":\"14.8060\",\"side\":\"buy\","
    "\"time\":\"2021-04-17T16:43:30.244075Z\",\"trade_id\":881613,\"last_size\":\"0.04\"}";
static const char L_SUBSCRIPTIONS[] =
    "{\"type\":\"subscriptions\",\"channels\":[{\"name\":\"level2\",\"product_ids\":[\"BAND-GBP\",\"BAND-BTC\","
    "\"YFI-BTC\",\"NU-GBP\",\"CRV-EUR\",\"SKL-GBP\",\"SKL-USD\",\"SKL-BTC\",\"NMR-EUR\",\"DASH-BTC\"]}]}";
static const char L_HEARTBEAT[] =
    "{\"type\":\"heartbeat\",\"last_trade_id\":865127782,\"product_id\":\"BTC-USD\",\"sequence\":110614077300,"
    "\"time\":\"2025-08-22T20:11:30.012637Z\"}";
/* Advanced Trade frames have "channel", no "type". */
static const char L_ADVANCED[] =
    "{\"channel\":\"subscriptions\",\"timestamp\":\"2026-08-09T21:05:48.629706932Z\",\"sequence_num\":26,"
    "\"events\":[{\"subscriptions\":{\"heartbeats\":[\"heartbeats\"]}}]}";

static cs_parser *P;

typedef struct result {
  cs_parse_result r;
  const cs_trade *t;
  size_t n;
  const char *why;
  char type[64];
} result;

/* One parse; the buffers stay allocated until the next call (the trade's
 * strings point into the parser, not into them, but keep them anyway). */
static char *held;
static result parse_buf(const char *s, size_t len, int padded) {
  free(held);
  held = malloc(len + (padded ? CS_JSON_PADDING : 0) + 1);
  memcpy(held, s, len);
  if (padded) memset(held + len, padded == 2 ? '}' : '"', CS_JSON_PADDING); /* junk that must be ignored */
  result res;
  memset(&res, 0, sizeof res);
  res.t = (const cs_trade *)(uintptr_t)1;
  res.n = 99;
  res.why = NULL;
  res.r = cs_parse_line(P, held, len, padded != 0, &res.t, &res.n, &res.why);
  snprintf(res.type, sizeof res.type, "%s", cs_parse_last_type(P));
  return res;
}

typedef struct want_trade {
  const char *product;
  long long trade_id;
  const char *price, *size, *time;
  long long time_us;
  int taker_side;
  long long sequence;
  int last_match;
} want_trade;

static void check_trade(const char *line, const want_trade *w, int line_no) {
  for (int padded = 0; padded <= 2; padded++) {
    char ctx[64];
    snprintf(ctx, sizeof ctx, "line %d, padded=%d", line_no, padded);
    check_context_ = ctx;
    result r = parse_buf(line, strlen(line), padded);
    if (!CHECK_EQ_INT(r.r, CS_PARSE_TRADES) || !CHECK_EQ_UINT(r.n, 1)) {
      if (r.why) fprintf(stderr, "  why: %s\n", r.why);
      continue;
    }
    const cs_trade *t = r.t;
    CHECK_EQ_MEM(t->product_id, t->product_len, w->product);
    CHECK_EQ_INT(t->trade_id, w->trade_id);
    CHECK_EQ_DBL(t->price, strtod(w->price, NULL));
    CHECK_EQ_DBL(t->size, strtod(w->size, NULL));
    CHECK_EQ_MEM(t->price_str, t->price_len, w->price);
    CHECK_EQ_MEM(t->size_str, t->size_len, w->size);
    CHECK_EQ_MEM(t->time_str, t->time_len, w->time);
    CHECK_EQ_INT(t->time_us, w->time_us);
    CHECK_EQ_INT(t->taker_side, w->taker_side);
    CHECK_EQ_INT(t->sequence, w->sequence);
    CHECK_EQ_INT(t->last_match, w->last_match);
    /* The strings are the parser's: overwriting the input changes nothing. */
    memset(held, 'x', strlen(line));
    CHECK_EQ_MEM(t->product_id, t->product_len, w->product);
    CHECK_EQ_MEM(t->price_str, t->price_len, w->price);
  }
  check_context_ = NULL;
}

static void test_real_lines(void) {
  /* Epoch seconds from `date -u -d 2025-08-22T20:11:30Z +%s` = 1755893490,
   * and `date -u -d 2021-04-17T16:43:30Z +%s` = 1618677810. Coinbase's
   * `side` is the maker's: "buy" means the taker sold. */
  want_trade w1 = {"BTC-USD", 865127782LL, "116827.85", "0.00004147", "2025-08-22T20:11:30.012637Z",
                   1755893490012637LL, CS_SIDE_SELL, 110614077300LL, 0};
  check_trade(L_BTC_BUY, &w1, __LINE__);
  want_trade w2 = {"BTC-USD", 865127783LL, "116827.86", "0.00002298", "2025-08-22T20:11:30.137128Z",
                   1755893490137128LL, CS_SIDE_BUY, 110614077336LL, 0};
  check_trade(L_BTC_SELL, &w2, __LINE__);
  want_trade w3 = {"ETH-USD", 689038653LL, "4825.3", "1", "2025-08-22T20:11:30.684898Z",
                   1755893490684898LL, CS_SIDE_BUY, 85742786325LL, 0};
  check_trade(L_ETH, &w3, __LINE__);
  want_trade w4 = {"LTC-USD", 173026396LL, "122.63", "0.009", "2025-08-22T20:11:31.066356Z",
                   1755893491066356LL, CS_SIDE_BUY, 21683930537LL, 0};
  check_trade(L_LTC, &w4, __LINE__);
  want_trade w5 = {"BAND-GBP", 881613LL, "14.7775", "0.04", "2021-04-17T16:43:30.244075Z",
                   1618677810244075LL, CS_SIDE_BUY, 333938798LL, 1};
  check_trade(L_LAST_MATCH, &w5, __LINE__);
  want_trade w6 = {"SKL-BTC", 280232LL, "0.00001305", "985", "2021-04-17T16:43:37.089723Z",
                   1618677817089723LL, CS_SIDE_BUY, 177100030LL, 0};
  check_trade(L_SKL, &w6, __LINE__);

  /* Exact values of the decimals, independent of strtod. */
  result r = parse_buf(L_BTC_BUY, strlen(L_BTC_BUY), 0);
  if (CHECK_EQ_INT(r.r, CS_PARSE_TRADES)) {
    CHECK_EQ_DBL(r.t->price, 116827.85);
    CHECK_EQ_DBL(r.t->size, 0.00004147);
    CHECK_EQ_INT(r.t->price_len, 9);
    CHECK_EQ_INT(r.t->size_len, 10);
    CHECK_EQ_INT(r.t->product_len, 7);
    CHECK_EQ_INT(r.t->time_len, 27);
  }

  /* Trailing whitespace and CR (cs_lines keeps "\r" of CRLF files). */
  char buf[1024];
  snprintf(buf, sizeof buf, "%s\r", L_BTC_BUY);
  check_trade(buf, &w1, __LINE__);
  snprintf(buf, sizeof buf, "  \t%s \r\n", L_BTC_BUY);
  check_trade(buf, &w1, __LINE__);

  /* Members in another order, extra members, escapes in strings. */
  want_trade w7 = {"BTC-USD", 5LL, "1.50", "2", "2025-01-01T00:00:00Z", 1735689600000000LL, CS_SIDE_SELL, -1LL, 0};
  check_trade("{\"time\":\"2025-01-01T00:00:00Z\",\"x\":[1,{\"price\":\"9\"}],\"product_id\":\"BTC\\u002dUSD\","
              "\"side\":\"buy\",\"price\":\"1.50\",\"size\":\"2\",\"trade_id\":5,\"type\":\"match\"}",
              &w7, __LINE__);
  /* A sequence that is not an integer is treated as absent. */
  check_trade("{\"type\":\"match\",\"trade_id\":5,\"side\":\"buy\",\"size\":\"2\",\"price\":\"1.50\","
              "\"product_id\":\"BTC-USD\",\"sequence\":\"12\",\"time\":\"2025-01-01T00:00:00Z\"}",
              &w7, __LINE__);
  /* The largest int64 trade id. */
  want_trade w8 = w7;
  w8.trade_id = 9223372036854775807LL;
  check_trade("{\"type\":\"match\",\"trade_id\":9223372036854775807,\"side\":\"buy\",\"size\":\"2\",\"price\":\"1.50\","
              "\"product_id\":\"BTC-USD\",\"time\":\"2025-01-01T00:00:00Z\"}",
              &w8, __LINE__);
}

static void check_other(const char *line, const char *type, int line_no) {
  for (int padded = 0; padded <= 1; padded++) {
    char ctx[64];
    snprintf(ctx, sizeof ctx, "line %d, padded=%d", line_no, padded);
    check_context_ = ctx;
    result r = parse_buf(line, strlen(line), padded);
    if (CHECK_EQ_INT(r.r, CS_PARSE_OTHER)) {
      CHECK_EQ_UINT(r.n, 0);
      CHECK_EQ_STR(r.type, type);
    } else if (r.why) {
      fprintf(stderr, "  why: %s\n", r.why);
    }
  }
  check_context_ = NULL;
}

static void test_other(void) {
  check_other(L_TICKER, "ticker", __LINE__);
  check_other(L_SUBSCRIPTIONS, "subscriptions", __LINE__);
  check_other(L_HEARTBEAT, "heartbeat", __LINE__);
  check_other(L_ADVANCED, "subscriptions", __LINE__); /* an Advanced Trade channel */
  check_other("{}", "", __LINE__);
  check_other(" { } ", "", __LINE__);
  check_other("{\"type\":5}", "", __LINE__);
  check_other("{\"type\":null,\"price\":\"x\"}", "", __LINE__);
  check_other("{\"type\":\"l2update\",\"product_id\":\"BTC-USD\",\"changes\":[[\"buy\",\"1\",\"2\"]]}", "l2update",
              __LINE__);
  check_other("{\"type\":\"Match\",\"trade_id\":1}", "Match", __LINE__);
  check_other("{\"type\":\"matches\"}", "matches", __LINE__);
  /* Only `match` and `last_match` are checked: a broken ticker is OTHER. */
  check_other("{\"type\":\"ticker\",\"price\":\"-1\",\"price\":5,\"trade_id\":\"x\"}", "ticker", __LINE__);
  /* Any well-formed JSON object that is not a trade is OTHER (cs_parse.h),
   * whatever its other members hold. */
  check_other("{\"type\":\"ticker\",\"volume\":12345678901234567890123.5}", "ticker", __LINE__);
  /* An integer literal beyond the 64-bit range is valid JSON, but
   * simdjson's DOM parser refuses the document ("Problem while parsing a
   * number"): cstream counts such a line invalid (docs/json.md). */
  {
    static const char big[] = "{\"type\":\"heartbeat\",\"sequence\":100000000000000000000}";
    result rb = parse_buf(big, sizeof big - 1, 0);
    CHECK_EQ_INT(rb.r, CS_PARSE_INVALID);
  }
  /* The type after an INVALID line is reset. */
  result r = parse_buf("[1]", 3, 0);
  CHECK_EQ_INT(r.r, CS_PARSE_INVALID);
  CHECK_EQ_STR(r.type, "");
}

/* A match line with one member replaced (raw JSON text) or, when value is
 * NULL, left out. */
static const char *const F_NAMES[] = {"type", "trade_id", "side", "size", "price", "product_id", "sequence", "time"};
static const char *const F_GOOD[] = {"\"match\"", "865127782", "\"buy\"", "\"0.00004147\"", "\"116827.85\"",
                                     "\"BTC-USD\"", "110614077300", "\"2025-08-22T20:11:30.012637Z\""};
static char *line_with(const char *field, const char *value) {
  static char buf[4096];
  size_t n = 0;
  buf[n++] = '{';
  int first = 1;
  for (size_t i = 0; i < sizeof F_NAMES / sizeof *F_NAMES; i++) {
    const char *v = F_GOOD[i];
    if (strcmp(F_NAMES[i], field) == 0) {
      if (!value) continue;
      v = value;
    }
    n += (size_t)snprintf(buf + n, sizeof buf - n, "%s\"%s\":%s", first ? "" : ",", F_NAMES[i], v);
    first = 0;
  }
  buf[n++] = '}';
  buf[n] = 0;
  return buf;
}

static void check_invalid(const char *line, size_t len, const char *mention, int line_no) {
  for (int padded = 0; padded <= 1; padded++) {
    char ctx[600];
    snprintf(ctx, sizeof ctx, "line %d, padded=%d: %.500s", line_no, padded, line);
    check_context_ = ctx;
    result r = parse_buf(line, len, padded);
    if (CHECK_EQ_INT(r.r, CS_PARSE_INVALID)) {
      CHECK_EQ_UINT(r.n, 0);
      if (CHECK(r.why != NULL && r.why[0] != 0) && mention && !CHECK(strstr(r.why, mention) != NULL))
        fprintf(stderr, "  why \"%s\" does not mention \"%s\"\n", r.why, mention);
    }
  }
  check_context_ = NULL;
}
#define INVALID(line, mention) check_invalid((line), strlen(line), (mention), __LINE__)
#define BAD_FIELD(field, value) INVALID(line_with((field), (value)), (field))

static void test_invalid_fields(void) {
  /* The template itself is a good trade. */
  result r = parse_buf(line_with("", NULL), strlen(line_with("", NULL)), 0);
  CHECK_EQ_INT(r.r, CS_PARSE_TRADES);

  BAD_FIELD("product_id", NULL);
  BAD_FIELD("product_id", "5");
  BAD_FIELD("product_id", "\"\"");
  BAD_FIELD("product_id", "null");
  BAD_FIELD("product_id", "[\"BTC-USD\"]");

  BAD_FIELD("trade_id", NULL);
  BAD_FIELD("trade_id", "\"865127782\"");
  BAD_FIELD("trade_id", "1.5");
  BAD_FIELD("trade_id", "1e3");
  BAD_FIELD("trade_id", "1.0");
  BAD_FIELD("trade_id", "9223372036854775808");  /* 2^63 */
  BAD_FIELD("trade_id", "18446744073709551615"); /* 2^64 - 1 */
  /* Beyond uint64: simdjson rejects the whole document ("Problem while
   * parsing a number"), so the reason does not name the field. */
  INVALID(line_with("trade_id", "100000000000000000000"), NULL);
  BAD_FIELD("trade_id", "null");
  BAD_FIELD("trade_id", "true");

  BAD_FIELD("price", NULL);
  BAD_FIELD("price", "\"0\"");
  BAD_FIELD("price", "\"0.000\"");
  BAD_FIELD("price", "\"-1\"");
  BAD_FIELD("price", "\"1e5\"");
  BAD_FIELD("price", "\"\"");
  BAD_FIELD("price", "\" 1\"");
  BAD_FIELD("price", "\"1.\"");
  BAD_FIELD("price", "\"NaN\"");
  BAD_FIELD("price", "\"inf\"");
  BAD_FIELD("price", "116827.85");
  BAD_FIELD("price", "116827");
  BAD_FIELD("price", "null");

  BAD_FIELD("size", NULL);
  BAD_FIELD("size", "\"0\"");
  BAD_FIELD("size", "\"-0.5\"");
  BAD_FIELD("size", "\"abc\"");
  BAD_FIELD("size", "0.5");

  BAD_FIELD("side", NULL);
  BAD_FIELD("side", "\"BUY\"");
  BAD_FIELD("side", "\"Sell\"");
  BAD_FIELD("side", "\"\"");
  BAD_FIELD("side", "\"buyer\"");
  BAD_FIELD("side", "\"bu\"");
  BAD_FIELD("side", "1");

  BAD_FIELD("time", NULL);
  BAD_FIELD("time", "\"2025-08-22T20:11:30.012637\"");
  BAD_FIELD("time", "\"2025-08-22T20:11:30.012637+00:00\"");
  BAD_FIELD("time", "\"2025-08-22 20:11:30.012637Z\"");
  BAD_FIELD("time", "\"2023-02-29T20:11:30Z\"");
  BAD_FIELD("time", "\"2025-08-22T24:00:00Z\"");
  BAD_FIELD("time", "\"\"");
  BAD_FIELD("time", "1755893490");
  BAD_FIELD("time", "\"2025-08-22T20:11:30.000000000000000000000000000000000000000000000000000000000000000000Z\"");

  /* A duplicate member is invalid, whichever copy is good. */
  char buf[4096];
  snprintf(buf, sizeof buf, "%.*s,\"price\":\"116827.85\"}", (int)strlen(L_BTC_BUY) - 1, L_BTC_BUY);
  INVALID(buf, "price");
  snprintf(buf, sizeof buf, "%.*s,\"price\":\"1\"}", (int)strlen(L_BTC_BUY) - 1, L_BTC_BUY);
  INVALID(buf, "price");
  snprintf(buf, sizeof buf, "%.*s,\"trade_id\":865127782}", (int)strlen(L_BTC_BUY) - 1, L_BTC_BUY);
  INVALID(buf, "trade_id");
  snprintf(buf, sizeof buf, "%.*s,\"side\":\"sell\"}", (int)strlen(L_BTC_BUY) - 1, L_BTC_BUY);
  INVALID(buf, "side");
  /* A duplicated `type` is invalid when either copy names a trade, and
   * OTHER (with the first type) when neither does. */
  snprintf(buf, sizeof buf, "%.*s,\"type\":\"match\"}", (int)strlen(L_BTC_BUY) - 1, L_BTC_BUY);
  INVALID(buf, "type");
  snprintf(buf, sizeof buf, "%.*s,\"type\":\"ticker\"}", (int)strlen(L_BTC_BUY) - 1, L_BTC_BUY);
  INVALID(buf, "type");
  INVALID("{\"type\":\"ticker\",\"type\":\"last_match\"}", "type");
  INVALID("{\"type\":5,\"type\":\"match\"}", "type");
  check_other("{\"type\":\"ticker\",\"type\":\"heartbeat\"}", "ticker", __LINE__);
  check_other("{\"type\":\"ticker\",\"type\":7}", "ticker", __LINE__);
}

static void test_invalid_json(void) {
  INVALID("", NULL);
  INVALID("   ", NULL);
  INVALID("\r", NULL);
  INVALID("[]", NULL);
  INVALID("[{\"type\":\"match\"}]", NULL);
  INVALID("\"match\"", NULL);
  INVALID("42", NULL);
  INVALID("null", NULL);
  INVALID("{", NULL);
  INVALID("{\"type\":\"match\"", NULL);
  INVALID("{\"type\":\"heartbeat\",}", NULL);
  INVALID("{'type':'match'}", NULL);
  INVALID("{\"type\":\"match\"} {}", NULL);
  INVALID("{\"type\":\"match\"}x", NULL);
  /* Every proper prefix of a real line is truncated JSON. */
  size_t n = strlen(L_BTC_BUY);
  for (size_t cut = 0; cut < n; cut++) check_invalid(L_BTC_BUY, cut, NULL, __LINE__);
  /* Invalid UTF-8 inside a string, in a member the parser does not use. */
  char buf[4096];
  static const char *const bad_utf8[] = {"\xff", "\xc3", "\xc3(", "\xe2\x82", "\xed\xa0\x80", "\xc0\xaf",
                                         "\xf8\x88\x80\x80\x80"};
  for (size_t i = 0; i < sizeof bad_utf8 / sizeof *bad_utf8; i++) {
    snprintf(buf, sizeof buf,
             "{\"type\":\"match\",\"trade_id\":1,\"maker_order_id\":\"ab%scd\",\"side\":\"buy\",\"size\":\"1\","
             "\"price\":\"1\",\"product_id\":\"BTC-USD\",\"time\":\"2025-08-22T20:11:30Z\"}",
             bad_utf8[i]);
    INVALID(buf, NULL);
    /* and in the product id */
    snprintf(buf, sizeof buf,
             "{\"type\":\"match\",\"trade_id\":1,\"side\":\"buy\",\"size\":\"1\","
             "\"price\":\"1\",\"product_id\":\"BTC%s\",\"time\":\"2025-08-22T20:11:30Z\"}",
             bad_utf8[i]);
    INVALID(buf, NULL);
  }
  /* Valid UTF-8 is fine. */
  snprintf(buf, sizeof buf,
           "{\"type\":\"match\",\"trade_id\":1,\"side\":\"buy\",\"size\":\"1\","
           "\"price\":\"1\",\"product_id\":\"\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\",\"time\":\"2025-08-22T20:11:30Z\"}");
  result r = parse_buf(buf, strlen(buf), 0);
  if (CHECK_EQ_INT(r.r, CS_PARSE_TRADES)) CHECK_EQ_MEM(r.t->product_id, r.t->product_len, "\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80");
  /* A NUL byte inside the line is not JSON. */
  static const char with_nul[] = "{\"type\":\"match\"\0}";
  check_invalid(with_nul, sizeof with_nul - 1, NULL, __LINE__);
  /* A valid line after invalid ones still parses (no state carried over). */
  r = parse_buf(L_ETH, strlen(L_ETH), 1);
  CHECK_EQ_INT(r.r, CS_PARSE_TRADES);
}

static void test_long_lines(void) {
  /* Lines far bigger than a trade, both ways. */
  size_t big = 1 << 20;
  char *buf = malloc(big + 512);
  size_t n = (size_t)sprintf(buf, "{\"type\":\"match\",\"pad\":\"");
  memset(buf + n, 'a', big);
  n += big;
  n += (size_t)sprintf(buf + n, "\",\"trade_id\":7,\"side\":\"sell\",\"size\":\"3\",\"price\":\"2\","
                                "\"product_id\":\"X\",\"time\":\"2025-08-22T20:11:30Z\"}");
  for (int padded = 0; padded <= 1; padded++) {
    result r = parse_buf(buf, n, padded);
    if (CHECK_EQ_INT(r.r, CS_PARSE_TRADES)) {
      CHECK_EQ_INT(r.t->trade_id, 7);
      CHECK_EQ_INT(r.t->taker_side, CS_SIDE_BUY);
      CHECK_EQ_MEM(r.t->product_id, r.t->product_len, "X");
    }
  }
  free(buf);
}

int main(void) {
  P = cs_parser_create();
  if (!CHECK(P != NULL)) return CHECK_DONE();
  test_real_lines();
  test_other();
  test_invalid_fields();
  test_invalid_json();
  test_long_lines();
  cs_parser_destroy(P);
  cs_parser_destroy(NULL);
  free(held);
  return CHECK_DONE();
}
