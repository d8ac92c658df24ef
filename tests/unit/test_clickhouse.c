/* The pure logic of the ClickHouse sink (sinks/clickhouse/ch_schema,
 * ch_wire): server versions, DDL for old and new servers, schema checks,
 * error answers of 18.16 and of newer servers and their classification,
 * the local checks, JSONEachRow and RowBinary rows and their decoding,
 * Distributed engine arguments and sharding keys. The
 * expected texts are written out by hand from ClickHouse's documentation
 * and answers captured from a real 18.16 server. */
#include <math.h>

#include "check.h"
#include "clickhouse/ch_schema.h"
#include "clickhouse/ch_wire.h"

static ch_error err_of(long status, const char *body, const char *hdr) {
  ch_error e;
  CHECK_EQ_INT(ch_error_from_answer(status, body, strlen(body), hdr, &e), -1);
  return e;
}

static void test_versions(void) {
  ch_version v;
  CHECK_EQ_INT(ch_version_parse("18.16.1\n", 8, &v), 0);
  CHECK(v.major == 18 && v.minor == 16 && v.patch == 1);
  CHECK_EQ_INT(ch_version_parse("23.8.2.7", 8, &v), 0);
  CHECK(v.major == 23 && v.minor == 8 && v.patch == 2);
  CHECK_EQ_INT(ch_version_parse("24.3", 4, &v), 0);
  CHECK(v.major == 24 && v.minor == 3 && v.patch == 0);
  CHECK_EQ_INT(ch_version_parse("Code: 1", 7, &v), -1);
  CHECK_EQ_INT(ch_version_parse("18", 2, &v), -1);
  CHECK_EQ_INT(ch_version_parse("", 0, &v), -1);
  ch_features f;
  ch_version old = {18, 16, 1}, v20 = {20, 1, 0}, v205 = {20, 5, 0}, v222 = {22, 2, 0}, v19 = {19, 17, 9};
  ch_features_of(&old, &f);
  CHECK(!f.low_cardinality && !f.datetime64 && !f.dedup_token);
  ch_features_of(&v19, &f);
  CHECK(!f.low_cardinality && !f.datetime64 && !f.dedup_token);
  ch_features_of(&v20, &f);
  CHECK(f.low_cardinality && !f.datetime64 && !f.dedup_token);
  ch_features_of(&v205, &f);
  CHECK(f.low_cardinality && f.datetime64 && !f.dedup_token);
  ch_features_of(&v222, &f);
  CHECK(f.low_cardinality && f.datetime64 && f.dedup_token);
}

static void test_errors(void) {
  /* 18.16, captured: a row the server cannot parse. */
  ch_error e = err_of(500,
                      "Code: 27, e.displayText() = DB::Exception: Cannot parse NaN.: (while read the value of key "
                      "max_size): (at row 2)\n, e.what() = DB::Exception\n",
                      NULL);
  CHECK_EQ_INT(e.code, 27);
  CHECK_EQ_INT(e.row, 2);
  CHECK_EQ_INT(e.cls, CH_ROW);
  CHECK_EQ_STR(e.msg,
               "Code: 27, e.displayText() = DB::Exception: Cannot parse NaN.: (while read the value of key max_size): "
               "(at row 2)");
  /* 18.16 answers 400 for some parse errors. */
  e = err_of(400, "Code: 72, e.displayText() = DB::Exception: Unsigned type must not contain '-' symbol: (at row 1)\n",
             NULL);
  CHECK(e.code == 72 && e.row == 1 && e.cls == CH_ROW);
  e = err_of(401,
             "Code: 193, e.displayText() = DB::Exception: Wrong password for user writer, e.what() = DB::Exception\n",
             NULL);
  CHECK(e.code == 193 && e.cls == CH_AUTH && e.row == 0);
  CHECK_EQ_STR(e.msg, "Code: 193, e.displayText() = DB::Exception: Wrong password for user writer");
  e = err_of(404, "Code: 60, e.displayText() = DB::Exception: Table cs.nope doesn't exist., e.what() = DB::Exception\n",
             NULL);
  CHECK(e.code == 60 && e.cls == CH_FATAL);
  e = err_of(500,
             "Code: 252, e.displayText() = DB::Exception: Too many parts (300). Merges are processing "
             "significantly slower than inserts., e.what() = DB::Exception\n",
             NULL);
  CHECK(e.code == 252 && e.cls == CH_RETRY);
  /* A field the table lacks: every row would fail, so it is not a row error. */
  e = err_of(500,
             "Code: 117, e.displayText() = DB::Exception: Unknown field found while parsing JSONEachRow format: "
             "zzz: (at row 2)\n, e.what() = DB::Exception\n",
             NULL);
  CHECK(e.code == 117 && e.cls == CH_FATAL);
  e = err_of(500, "Code: 117, e.displayText() = DB::Exception: Incorrect data: (at row 7)\n", NULL);
  CHECK(e.code == 117 && e.cls == CH_ROW && e.row == 7);
  /* Newer servers: "Code: N. DB::Exception: ..." and the header. */
  e = err_of(516,
             "Code: 516. DB::Exception: default: Authentication failed: password is incorrect, or there is no user "
             "with such name. (AUTHENTICATION_FAILED) (version 23.8.2.7 (official build))\n",
             "516");
  CHECK(e.code == 516 && e.cls == CH_AUTH);
  e = err_of(200, "", "241");
  CHECK(e.code == 241 && e.cls == CH_RETRY);
  /* An error after a 200 status line: the body tells. */
  e = err_of(200, "Code: 27, e.displayText() = DB::Exception: Cannot parse input: (at row 3)\n", NULL);
  CHECK(e.code == 27 && e.cls == CH_ROW && e.row == 3);
  /* Unknown codes are retried (logged with their code). */
  e = err_of(500, "Code: 9999, e.displayText() = DB::Exception: something new\n", NULL);
  CHECK(e.code == 9999 && e.cls == CH_RETRY);
  /* No ClickHouse code: a proxy. */
  e = err_of(502, "<html>Bad\r\nGateway</html>", NULL);
  CHECK(e.code == 0 && e.cls == CH_RETRY);
  CHECK_EQ_STR(e.msg, "HTTP 502: <html>Bad Gateway</html>");
  e = err_of(403, "", NULL);
  CHECK(e.cls == CH_AUTH);
  CHECK_EQ_STR(e.msg, "HTTP 403 with an empty body");
  e = err_of(400, "bad request", NULL);
  CHECK(e.cls == CH_FATAL);
  /* Successes. */
  ch_error ok;
  CHECK_EQ_INT(ch_error_from_answer(200, "", 0, NULL, &ok), 0);
  CHECK_EQ_INT(ch_error_from_answer(200, "18.16.1\n", 8, NULL, &ok), 0);
  CHECK_EQ_INT(ch_error_from_answer(200, "x\tCode: 5 inside a value\n", 24, NULL, &ok), 0);
  /* Transport. */
  ch_error_from_transport(CS_HTTP_ERR_CONNECT, "Couldn't connect to server", &e);
  CHECK(e.cls == CH_RETRY && e.code == 0);
  ch_error_from_transport(CS_HTTP_ERR_TIMEOUT, "Operation timed out", &e);
  CHECK(e.cls == CH_RETRY);
  ch_error_from_transport(CS_HTTP_ERR_TLS, "SSL certificate problem", &e);
  CHECK(e.cls == CH_FATAL);
  CHECK_EQ_STR(e.msg, "TLS: the server's certificate was not accepted: SSL certificate problem");
  /* Scrubbing. */
  char s[] = "user=x password=hunter2 again hunter2!";
  ch_scrub(s, "hunter2");
  CHECK_EQ_STR(s, "user=x password=*** again ***!");
  char s2[] = "ab";
  ch_scrub(s2, "");
  CHECK_EQ_STR(s2, "ab");
}

static cs_row sample_row(void) {
  cs_row r = {0};
  r.product_id = "BTC-USD";
  r.window_start_us = INT64_C(1755892800) * 1000000;
  r.window_end_us = INT64_C(1755892830) * 1000000;
  r.trades = 3;
  r.avg_price = 100.5;
  r.vwap = 0.1;
  r.open = 1;
  r.high = 2.5;
  r.low = 0.25;
  r.close = 1e-7;
  r.volume = 3;
  r.buy_volume = 2;
  r.sell_volume = 1;
  r.aggs = CS_AGG_ALL;
  return r;
}

static cs_trade sample_trade(void) {
  cs_trade t = {0};
  t.time_us = INT64_C(1755893490012637);
  t.trade_id = 865127782;
  t.sequence = 110614077300;
  t.price = 116827.85;
  t.size = 0.00004147;
  t.taker_side = CS_SIDE_SELL;
  t.product_id = "BTC-USD";
  t.product_len = 7;
  t.price_str = "116827.85";
  t.price_len = 9;
  t.size_str = "0.00004147";
  t.size_len = 10;
  t.exchange = "coinbase";
  return t;
}

static void test_checks(void) {
  char why[256];
  cs_row r = sample_row();
  CHECK_EQ_INT(ch_row_check(&r, why, sizeof why), 0);
  r.vwap = INFINITY;
  CHECK_EQ_INT(ch_row_check(&r, why, sizeof why), -1);
  CHECK(strstr(why, "vwap is +inf") != NULL);
  r.aggs &= ~(uint32_t)CS_AGG_VWAP; /* not selected: not sent, not checked */
  CHECK_EQ_INT(ch_row_check(&r, why, sizeof why), 0);
  r = sample_row();
  r.sell_volume = NAN;
  CHECK_EQ_INT(ch_row_check(&r, why, sizeof why), -1);
  CHECK(strstr(why, "sell_volume is NaN") != NULL);
  r = sample_row();
  r.low = -INFINITY;
  CHECK_EQ_INT(ch_row_check(&r, why, sizeof why), -1);
  CHECK(strstr(why, "low is -inf") != NULL);
  r = sample_row();
  r.window_start_us = -30000000;
  r.window_end_us = 0;
  CHECK_EQ_INT(ch_row_check(&r, why, sizeof why), -1);
  CHECK(strstr(why, "DateTime") != NULL);
  r.window_start_us = INT64_C(4294967295) * 1000000 - 29000000; /* ends past 2106-02-07T06:28:15Z */
  r.window_end_us = r.window_start_us + 30000000;
  CHECK_EQ_INT(ch_row_check(&r, why, sizeof why), -1);
  r.window_start_us = 0;
  r.window_end_us = INT64_C(4294967295) * 1000000;
  CHECK_EQ_INT(ch_row_check(&r, why, sizeof why), 0);
  cs_trade t = sample_trade();
  CHECK_EQ_INT(ch_trade_check(&t, why, sizeof why), 0);
  t.size = NAN;
  CHECK_EQ_INT(ch_trade_check(&t, why, sizeof why), -1);
  CHECK(strstr(why, "size") != NULL);
}

static void test_json(void) {
  cs_buf b;
  cs_buf_init(&b);
  cs_row r = sample_row();
  ch_row_json(&r, 42, &b);
  CHECK_EQ_STR(b.data,
               "{\"product_id\":\"BTC-USD\",\"window_start\":1755892800,\"window_end\":1755892830,\"trades\":3,"
               "\"avg_price\":100.5,\"vwap\":0.1,\"open\":1,\"high\":2.5,\"low\":0.25,\"close\":1e-07,"
               "\"volume\":3,\"buy_volume\":2,\"sell_volume\":1,\"version\":42}\n");
  cs_buf_reset(&b);
  r.aggs = CS_AGG_TRADES | CS_AGG_VWAP;
  r.ext_json = "\"max_size\":\"n/a\",\"n\":2";
  r.product_id = "a\"b";
  ch_row_json(&r, UINT64_MAX, &b);
  CHECK_EQ_STR(b.data,
               "{\"product_id\":\"a\\\"b\",\"window_start\":1755892800,\"window_end\":1755892830,\"trades\":3,"
               "\"vwap\":0.1,\"max_size\":\"n/a\",\"n\":2,\"version\":18446744073709551615}\n");
  cs_trade t = sample_trade();
  cs_buf_reset(&b);
  ch_trade_json(&t, 7, &b);
  CHECK_EQ_STR(
      b.data,
      "{\"exchange\":\"coinbase\",\"product_id\":\"BTC-USD\",\"trade_id\":865127782,\"time_us\":1755893490012637,"
      "\"price\":116827.85,\"size\":0.00004147,\"taker_side\":\"sell\",\"sequence\":110614077300,"
      "\"recv_time_us\":0,\"last_match\":0,\"version\":7}\n");
  /* Leading zeros are not JSON; a text a Lua map made stale is not the value. */
  t.price_str = "007.50";
  t.price_len = 6;
  t.price = 7.5;
  t.size = 2;
  t.taker_side = CS_SIDE_BUY;
  t.sequence = -1;
  t.recv_us = 1700000000000001;
  t.last_match = 1;
  t.trade_id = INT64_MIN;
  t.time_us = -1;
  cs_buf_reset(&b);
  ch_trade_json(&t, 7, &b);
  CHECK_EQ_STR(b.data,
               "{\"exchange\":\"coinbase\",\"product_id\":\"BTC-USD\",\"trade_id\":-9223372036854775808,\"time_us\":-1,"
               "\"price\":7.50,\"size\":2,\"taker_side\":\"buy\",\"sequence\":-1,"
               "\"recv_time_us\":1700000000000001,\"last_match\":1,\"version\":7}\n");
  cs_buf_free(&b);
}

static void test_rowbinary(void) {
  cs_buf b, j;
  cs_buf_init(&b);
  cs_buf_init(&j);
  cs_trade t = sample_trade();
  ch_trade_rowbinary(&t, 0x0102030405060708ull, &b);
  /* exchange (LEB128 length 8 + bytes), product_id, trade_id LE, ... */
  CHECK_EQ_UINT(b.len, 1 + 8 + 1 + 7 + 8 + 8 + 8 + 8 + 1 + 8 + 8 + 1 + 8);
  CHECK(memcmp(b.data,
               "\x08"
               "coinbase"
               "\x07"
               "BTC-USD",
               17) == 0);
  CHECK(memcmp(b.data + 17, "\x66\xcd\x90\x33\x00\x00\x00\x00", 8) == 0); /* 865127782 = 0x3390cd66 */
  CHECK(memcmp(b.data + b.len - 8, "\x08\x07\x06\x05\x04\x03\x02\x01", 8) == 0);
  CHECK_EQ_INT(ch_trade_rowbinary_to_json(b.data, b.len, &j), 0);
  CHECK_EQ_STR(
      j.data,
      "{\"exchange\":\"coinbase\",\"product_id\":\"BTC-USD\",\"trade_id\":865127782,\"time_us\":1755893490012637,"
      "\"price\":116827.85,\"size\":4.147e-05,\"taker_side\":\"sell\",\"sequence\":110614077300,"
      "\"recv_time_us\":0,\"last_match\":0,\"version\":72623859790382856}");
  cs_buf_reset(&j);
  CHECK_EQ_INT(ch_trade_rowbinary_to_json(b.data, b.len - 1, &j), -1); /* truncated */
  CHECK_EQ_INT(ch_trade_rowbinary_to_json(b.data, 3, &j), -1);
  /* A long product id: a two-byte length. */
  char pid[300];
  memset(pid, 'x', sizeof pid);
  t.product_id = pid;
  t.product_len = 300;
  cs_buf_reset(&b);
  ch_trade_rowbinary(&t, 1, &b);
  CHECK(memcmp(b.data + 9, "\xac\x02", 2) == 0); /* 300 = 0b10_0101100 */
  cs_buf_reset(&j);
  CHECK_EQ_INT(ch_trade_rowbinary_to_json(b.data, b.len, &j), 0);

  cs_row r = sample_row();
  r.aggs = CS_AGG_ALL & ~(uint32_t)CS_AGG_OPEN; /* not selected: 0 */
  cs_buf_reset(&b);
  ch_row_rowbinary(&r, 9, &b);
  CHECK_EQ_UINT(b.len, 1 + 7 + 4 + 4 + 8 + 9 * 8 + 8);
  CHECK(memcmp(b.data + 8, "\x40\xcc\xa8\x68", 4) == 0); /* 1755892800 = 0x68a8cc40 */
  cs_buf_reset(&j);
  CHECK_EQ_INT(ch_row_rowbinary_to_json(b.data, b.len, &j), 0);
  CHECK_EQ_STR(j.data,
               "{\"product_id\":\"BTC-USD\",\"window_start\":1755892800,\"window_end\":1755892830,\"trades\":3,"
               "\"avg_price\":100.5,\"vwap\":0.1,\"open\":0,\"high\":2.5,\"low\":0.25,\"close\":1e-07,"
               "\"volume\":3,\"buy_volume\":2,\"sell_volume\":1,\"version\":9}");
  CHECK_EQ_INT(ch_row_rowbinary_to_json(b.data, b.len + 1, &j), -1); /* trailing byte */
  cs_buf_reset(&b);
  ch_url_encode(&b, "INSERT INTO `a`.`b` (x) FORMAT RowBinary&é", strlen("INSERT INTO `a`.`b` (x) FORMAT RowBinary&é"));
  CHECK_EQ_STR(b.data, "INSERT%20INTO%20%60a%60.%60b%60%20%28x%29%20FORMAT%20RowBinary%26%C3%A9");
  cs_buf_free(&b);
  cs_buf_free(&j);
}

static void test_schema_sql(void) {
  ch_schema s;
  cs_err err;
  cs_buf b;
  cs_buf_init(&b);
  ch_features old = {0, 0, 0}, now = {1, 1, 1};
  CHECK_EQ_INT(ch_schema_init(&s, CH_KIND_WINDOWS, "cstream", "candles_30s", NULL, NULL, 0, &err), 0);
  CHECK_EQ_STR(s.view, "candles_30s_latest");
  CHECK_EQ_UINT(s.ncols, 14);
  ch_sql_create_table(&s, &old, &b);
  CHECK_EQ_STR(
      b.data,
      "CREATE TABLE IF NOT EXISTS `cstream`.`candles_30s` (`product_id` String, `window_start` DateTime('UTC'), "
      "`window_end` DateTime('UTC'), `trades` UInt64, `avg_price` Float64, `vwap` Float64, `open` Float64, "
      "`high` Float64, `low` Float64, `close` Float64, `volume` Float64, `buy_volume` Float64, "
      "`sell_volume` Float64, `version` UInt64) ENGINE = ReplacingMergeTree(version) "
      "PARTITION BY toYYYYMM(window_start) ORDER BY (product_id, window_start)");
  cs_buf_reset(&b);
  ch_sql_create_view(&s, &b);
  CHECK_EQ_STR(b.data,
               "CREATE VIEW IF NOT EXISTS `cstream`.`candles_30s_latest` AS SELECT `product_id`, `window_start`, "
               "`window_end`, `trades`, `avg_price`, `vwap`, `open`, `high`, `low`, `close`, `volume`, `buy_volume`, "
               "`sell_volume`, `latest_version` AS `version` FROM (SELECT `product_id`, `window_start`, "
               "argMax(`window_end`, `version`) AS `window_end`, argMax(`trades`, `version`) AS `trades`, "
               "argMax(`avg_price`, `version`) AS `avg_price`, argMax(`vwap`, `version`) AS `vwap`, "
               "argMax(`open`, `version`) AS `open`, argMax(`high`, `version`) AS `high`, argMax(`low`, `version`) AS "
               "`low`, argMax(`close`, `version`) AS `close`, argMax(`volume`, `version`) AS `volume`, "
               "argMax(`buy_volume`, `version`) AS `buy_volume`, argMax(`sell_volume`, `version`) AS `sell_volume`, "
               "max(`version`) AS `latest_version` FROM `cstream`.`candles_30s` GROUP BY product_id, window_start)");
  cs_buf_reset(&b);
  ch_sql_insert(&s, "RowBinary", &b);
  CHECK_EQ_STR(
      b.data,
      "INSERT INTO `cstream`.`candles_30s` (`product_id`, `window_start`, `window_end`, `trades`, `avg_price`, "
      "`vwap`, `open`, `high`, `low`, `close`, `volume`, `buy_volume`, `sell_volume`, `version`) FORMAT RowBinary");
  cs_buf_reset(&b);
  ch_sql_columns(&s, &b);
  CHECK_EQ_STR(b.data,
               "SELECT name, type FROM system.columns WHERE database = 'cstream' AND table = 'candles_30s' "
               "FORMAT TabSeparated");
  ch_schema_free(&s);

  /* Trades on a current server: LowCardinality, and a DateTime64 alias. */
  CHECK_EQ_INT(ch_schema_init(&s, CH_KIND_TRADES, "db", "trades", "", NULL, 0, &err), 0);
  CHECK(s.view == NULL);
  cs_buf_reset(&b);
  ch_sql_create_table(&s, &now, &b);
  CHECK_EQ_STR(b.data,
               "CREATE TABLE IF NOT EXISTS `db`.`trades` (`exchange` LowCardinality(String), `product_id` "
               "LowCardinality(String), `trade_id` Int64, `time_us` Int64, `price` Float64, `size` Float64, "
               "`taker_side` Enum8('buy' = 1, 'sell' = 2), `sequence` Int64, `recv_time_us` Int64, `last_match` UInt8, "
               "`version` UInt64, `time` DateTime64(6, 'UTC') ALIAS fromUnixTimestamp64Micro(time_us, 'UTC')) "
               "ENGINE = ReplacingMergeTree(version) PARTITION BY toYYYYMM(toDateTime(intDiv(time_us, 1000000))) "
               "ORDER BY (product_id, time_us, trade_id)");
  ch_schema_free(&s);

  /* Extra columns for user aggregates. */
  char *extra[] = {"max_size Float64", "  note  Nullable(String) "};
  CHECK_EQ_INT(ch_schema_init(&s, CH_KIND_WINDOWS, "db", "c", "v", extra, 2, &err), 0);
  CHECK_EQ_UINT(s.ncols, 16);
  CHECK_EQ_STR(s.cols[13].name, "max_size");
  CHECK_EQ_STR(s.cols[14].type, "Nullable(String)");
  CHECK_EQ_STR(s.cols[15].name, "version");
  CHECK(ch_schema_has_column(&s, "note", 4));
  CHECK(!ch_schema_has_column(&s, "not", 3));
  cs_buf_reset(&b);
  ch_sql_create_table(&s, &now, &b);
  CHECK(strstr(b.data, "`sell_volume` Float64, `max_size` Float64, `note` Nullable(String), `version` UInt64)"));
  ch_schema_free(&s);

  /* Bad names. */
  CHECK_EQ_INT(ch_schema_init(&s, CH_KIND_WINDOWS, "db-1", "c", NULL, NULL, 0, &err), -1);
  CHECK(strstr(err.msg, "database 'db-1'") != NULL);
  CHECK_EQ_INT(ch_schema_init(&s, CH_KIND_WINDOWS, "db", "c; DROP", NULL, NULL, 0, &err), -1);
  CHECK_EQ_INT(ch_schema_init(&s, CH_KIND_WINDOWS, "db", "c", "v`", NULL, 0, &err), -1);
  char *bad1[] = {"max_size"};
  CHECK_EQ_INT(ch_schema_init(&s, CH_KIND_WINDOWS, "db", "c", NULL, bad1, 1, &err), -1);
  CHECK(strstr(err.msg, "\"name Type\"") != NULL);
  char *bad2[] = {"vwap Float64"};
  CHECK_EQ_INT(ch_schema_init(&s, CH_KIND_WINDOWS, "db", "c", NULL, bad2, 1, &err), -1);
  CHECK(strstr(err.msg, "'vwap' is already") != NULL);
  char *bad3[] = {"version UInt8"};
  CHECK_EQ_INT(ch_schema_init(&s, CH_KIND_WINDOWS, "db", "c", NULL, bad3, 1, &err), -1);
  CHECK_EQ_INT(ch_schema_init(&s, CH_KIND_TRADES, "db", "c", NULL, extra, 1, &err), -1);
  cs_buf_free(&b);
}

/* system.columns as 18.16 answers it (TabSeparated escapes the quotes). */
static const char good_cols[] =
    "product_id\tString\nwindow_start\tDateTime(\\'UTC\\')\nwindow_end\tDateTime(\\'UTC\\')\ntrades\tUInt64\n"
    "avg_price\tFloat64\nvwap\tFloat64\nopen\tFloat64\nhigh\tFloat64\nlow\tFloat64\nclose\tFloat64\n"
    "volume\tFloat64\nbuy_volume\tFloat64\nsell_volume\tFloat64\nversion\tUInt64\n";

static int check_cols(const ch_schema *s, const char *tsv, cs_err *err) {
  return ch_schema_check_columns(s, tsv, strlen(tsv), err);
}

static void test_schema_check(void) {
  ch_schema s;
  cs_err err;
  CHECK_EQ_INT(ch_schema_init(&s, CH_KIND_WINDOWS, "cs", "c", NULL, NULL, 0, &err), 0);
  CHECK_EQ_INT(check_cols(&s, good_cols, &err), 0);
  char buf[2048];
  /* An extra column in the table is fine. */
  snprintf(buf, sizeof buf, "%snote\tString\n", good_cols);
  CHECK_EQ_INT(check_cols(&s, buf, &err), 0);
  /* Compatible types. */
  {
    char lc[2048];
    snprintf(lc, sizeof lc, "product_id\tLowCardinality(String)\nwindow_start\tDateTime\n%s",
             strstr(good_cols, "window_end"));
    CHECK_EQ_INT(check_cols(&s, lc, &err), 0);
    snprintf(lc, sizeof lc, "product_id\tString\nwindow_start\tDateTime(\\'Europe/Paris\\')\n%s",
             strstr(good_cols, "window_end"));
    CHECK_EQ_INT(check_cols(&s, lc, &err), 0);
    snprintf(lc, sizeof lc, "product_id\tString\nwindow_start\tDateTime64(3)\n%s", strstr(good_cols, "window_end"));
    CHECK_EQ_INT(check_cols(&s, lc, &err), -1);
    CHECK_EQ_STR(err.msg, "table cs.c: column 'window_start' is DateTime64(3), expected DateTime('UTC')");
  }
  /* Mistyped, missing, no table. */
  snprintf(buf, sizeof buf, "%s", good_cols);
  char *p = strstr(buf, "vwap\tFloat64");
  memcpy(p, "vwap\tString\n", 12);
  memmove(p + 12, p + 13, strlen(p + 13) + 1);
  CHECK_EQ_INT(check_cols(&s, buf, &err), -1);
  CHECK_EQ_STR(err.msg, "table cs.c: column 'vwap' is String, expected Float64");
  snprintf(buf, sizeof buf, "%.*s", (int)(strstr(good_cols, "sell_volume") - good_cols), good_cols);
  CHECK_EQ_INT(check_cols(&s, buf, &err), -1);
  CHECK_EQ_STR(err.msg, "table cs.c has no column 'sell_volume' (expected Float64)");
  CHECK_EQ_INT(check_cols(&s, "", &err), -1);
  CHECK_EQ_STR(err.msg, "table cs.c does not exist");

  /* Engines. */
  const char *ok =
      "ReplacingMergeTree\tReplacingMergeTree(version) PARTITION BY toYYYYMM(window_start) ORDER BY "
      "(product_id, window_start) SETTINGS index_granularity = 8192\tproduct_id, window_start\n";
  CHECK_EQ_INT(ch_schema_check_engine(&s, ok, strlen(ok), &err), 0);
  const char *repl =
      "ReplicatedReplacingMergeTree\tReplicatedReplacingMergeTree(\\'/ch/{shard}/c\\', \\'{replica}\\', "
      "version) ORDER BY (product_id, window_start)\tproduct_id, window_start\n";
  CHECK_EQ_INT(ch_schema_check_engine(&s, repl, strlen(repl), &err), 0);
  const char *mt =
      "MergeTree\tMergeTree PARTITION BY x ORDER BY (product_id, window_start)\tproduct_id, window_start\n";
  CHECK_EQ_INT(ch_schema_check_engine(&s, mt, strlen(mt), &err), -1);
  CHECK(strstr(err.msg, "is MergeTree, expected ReplacingMergeTree(version)") != NULL);
  const char *nov =
      "ReplacingMergeTree\tReplacingMergeTree() ORDER BY (product_id, window_start)\tproduct_id, "
      "window_start\n";
  CHECK_EQ_INT(ch_schema_check_engine(&s, nov, strlen(nov), &err), -1);
  CHECK(strstr(err.msg, "not ReplacingMergeTree(version)") != NULL);
  const char *other = "ReplacingMergeTree\tReplacingMergeTree(trades) ORDER BY x\tproduct_id, window_start\n";
  CHECK_EQ_INT(ch_schema_check_engine(&s, other, strlen(other), &err), -1);
  const char *key = "ReplacingMergeTree\tReplacingMergeTree(version) ORDER BY window_start\twindow_start\n";
  CHECK_EQ_INT(ch_schema_check_engine(&s, key, strlen(key), &err), -1);
  CHECK(strstr(err.msg, "ordered by (window_start), expected (product_id, window_start)") != NULL);
  ch_schema_free(&s);
  ch_schema_free(&s); /* freeing twice (a zeroed schema) is fine */
}

/* Distributed tables: engine_full as 18.16 writes it (captured: names
 * unquoted, a quoted name's quotes escaped by TSV) and as newer servers do
 * (quoted names, SETTINGS after the arguments). */
static void test_distributed(void) {
  cs_err err = {{0}};
  ch_distributed d;
  CHECK_EQ_INT(ch_distributed_parse("Distributed(two, d, loc, cityHash64(product_id))", &d, &err), 0);
  CHECK_EQ_STR(d.cluster, "two");
  CHECK_EQ_STR(d.db, "d");
  CHECK_EQ_STR(d.table, "loc");
  CHECK_EQ_STR(d.key, "cityHash64(product_id)");
  CHECK_EQ_INT(ch_distributed_parse("Distributed('{cluster}', 'cs', 'c_local', sipHash64(product_id) % 7, 'hot') "
                                    "SETTINGS fsync_after_insert = 1",
                                    &d, &err),
               0);
  CHECK_EQ_STR(d.cluster, "{cluster}");
  CHECK_EQ_STR(d.db, "cs");
  CHECK_EQ_STR(d.table, "c_local");
  CHECK_EQ_STR(d.key, "sipHash64(product_id) % 7");
  CHECK_EQ_INT(ch_distributed_parse("Distributed(two, currentDatabase(), `my,t`)", &d, &err), 0);
  CHECK_EQ_STR(d.db, "currentDatabase()");
  CHECK_EQ_STR(d.table, "my,t");
  CHECK_EQ_STR(d.key, "");
  CHECK_EQ_INT(ch_distributed_parse("Distributed('it''s', 'd', 't', cityHash64(concat(product_id, ',)')))", &d, &err),
               0);
  CHECK_EQ_STR(d.cluster, "it's");
  CHECK_EQ_STR(d.key, "cityHash64(concat(product_id, ',)'))");
  CHECK_EQ_INT(ch_distributed_parse("Distributed(two, d)", &d, &err), -1);
  CHECK(strstr(err.msg, "expected Distributed(cluster, database, table[, sharding_key])") != NULL);
  CHECK_EQ_INT(ch_distributed_parse("Distributed(two, d, t, f(x)", &d, &err), -1);
  CHECK_EQ_INT(ch_distributed_parse("Distributed(two, 'd, t)", &d, &err), -1);
  CHECK_EQ_INT(ch_distributed_parse("MergeTree()", &d, &err), -1);

  /* Sharding keys: product_id alone. */
  const char *good[] = {"cityHash64(product_id)", "murmurHash3_32(product_id) % 4", "javaHash(lower(`product_id`))",
                        "cityHash64(t.product_id)", "xxHash64(product_id, 'salt') % 0x10", NULL};
  for (int i = 0; good[i]; i++) {
    if (ch_sharding_key_check(good[i], &err) != 0) fprintf(stderr, "key %s: %s\n", good[i], err.msg);
    CHECK_EQ_INT(ch_sharding_key_check(good[i], &err), 0);
  }
  CHECK_EQ_INT(ch_sharding_key_check("cityHash64(product_id, window_start)", &err), -1);
  CHECK(strstr(err.msg, "sharding key cityHash64(product_id, window_start) depends on 'window_start'") != NULL);
  CHECK(strstr(err.msg, "e.g. cityHash64(product_id)") != NULL);
  CHECK_EQ_INT(ch_sharding_key_check("rand()", &err), -1);
  CHECK(strstr(err.msg, "sharding key rand() does not depend on product_id") != NULL);
  CHECK_EQ_INT(ch_sharding_key_check("", &err), -1);
  CHECK(strstr(err.msg, "has no sharding key") != NULL);
  CHECK_EQ_INT(ch_sharding_key_check("cityHash64('product_id')", &err), -1); /* a string, not the column */
  CHECK_EQ_INT(ch_sharding_key_check("if(product_id = 'x', 1, trade_id)", &err), -1);
  CHECK(strstr(err.msg, "'trade_id'") != NULL);

  /* The engine check: Distributed accepted only where asked for. */
  ch_schema s;
  CHECK_EQ_INT(ch_schema_init(&s, CH_KIND_WINDOWS, "cs", "c", NULL, NULL, 0, &err), 0);
  const char *dist = "Distributed\tDistributed(two, cs, c_local, cityHash64(product_id))\t\n";
  CHECK_EQ_INT(ch_schema_check_engine(&s, dist, strlen(dist), &err), -1);
  CHECK(strstr(err.msg, "table cs.c is Distributed, expected ReplacingMergeTree(version)") != NULL);
  CHECK_EQ_INT(ch_schema_check_engine_dist(&s, dist, strlen(dist), &d, &err), 1);
  CHECK_EQ_STR(d.table, "c_local");
  const char *q = "Distributed\tDistributed(\\'two\\', \\'cs\\', \\'c_local\\', rand())\t\n";
  CHECK_EQ_INT(ch_schema_check_engine_dist(&s, q, strlen(q), &d, &err), -1);
  CHECK_EQ_STR(err.msg,
               "Distributed table cs.c: sharding key rand() does not depend on product_id: every version of a window "
               "must land on the same shard, where FINAL replaces the earlier one: shard by product_id alone, e.g. "
               "cityHash64(product_id)");
  const char *mt = "MergeTree\tMergeTree ORDER BY (product_id, window_start)\tproduct_id, window_start\n";
  CHECK_EQ_INT(ch_schema_check_engine_dist(&s, mt, strlen(mt), &d, &err), -1);
  CHECK(strstr(err.msg, "table cs.c is MergeTree, expected ReplacingMergeTree(version) or a Distributed table over "
                        "one") != NULL);
  const char *ok = "ReplacingMergeTree\tReplacingMergeTree(version) ORDER BY (product_id, window_start)\tproduct_id, "
                   "window_start\n";
  CHECK_EQ_INT(ch_schema_check_engine_dist(&s, ok, strlen(ok), &d, &err), 0);

  cs_buf b;
  cs_buf_init(&b);
  ch_sql_cluster("it's", &b);
  CHECK_EQ_STR(b.data, "SELECT uniqExact(shard_num), countIf(is_local) FROM system.clusters WHERE cluster = "
                       "'it\\'s' FORMAT TabSeparated");
  cs_buf_reset(&b);
  ch_sql_engine_on_shards(&s, "two", &b);
  CHECK_EQ_STR(b.data, "SELECT engine, engine_full, sorting_key FROM cluster('two', system, tables) WHERE database = "
                       "'cs' AND name = 'c' FORMAT TabSeparated");
  cs_buf_free(&b);
  ch_schema_free(&s);
}

int main(void) {
  test_versions();
  test_errors();
  test_checks();
  test_json();
  test_rowbinary();
  test_schema_sql();
  test_schema_check();
  test_distributed();
  return CHECK_DONE();
}
