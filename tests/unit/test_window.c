/* cs_window driven directly with hand-built trades: window boundaries, the
 * watermark, late and duplicate trades, emission order, the aggregates,
 * advance/finish, by = none, bounded memory and the ext callbacks.
 * Expected rows are computed in the test (by hand or with plain loops). */
#include "check.h"
#include "cs_time.h"
#include "cs_window.h"

#define S(x) ((int64_t)(x) * INT64_C(1000000)) /* seconds -> µs */

/* ---- collecting emitted rows ---- */

typedef struct got_row {
  char product[64];
  int64_t start, end;
  uint64_t trades;
  double avg_price, vwap, open, high, low, close, volume, buy_volume, sell_volume;
  uint32_t aggs, revision;
  char *ext_json; /* copy, or NULL */
} got_row;

typedef struct sink {
  got_row *rows;
  size_t n, cap;
} sink;

static void collect(void *ud, const cs_row *r) {
  sink *s = ud;
  if (s->n == s->cap) {
    s->cap = s->cap ? s->cap * 2 : 16;
    s->rows = realloc(s->rows, s->cap * sizeof *s->rows);
  }
  got_row *g = &s->rows[s->n++];
  memset(g, 0, sizeof *g);
  snprintf(g->product, sizeof g->product, "%s", r->product_id);
  g->start = r->window_start_us;
  g->end = r->window_end_us;
  g->trades = r->trades;
  g->avg_price = r->avg_price;
  g->vwap = r->vwap;
  g->open = r->open;
  g->high = r->high;
  g->low = r->low;
  g->close = r->close;
  g->volume = r->volume;
  g->buy_volume = r->buy_volume;
  g->sell_volume = r->sell_volume;
  g->aggs = r->aggs;
  g->revision = r->revision;
  g->ext_json = r->ext_json ? strdup(r->ext_json) : NULL;
}

static void sink_clear(sink *s) {
  for (size_t i = 0; i < s->n; i++) free(s->rows[i].ext_json);
  free(s->rows);
  memset(s, 0, sizeof *s);
}

static cs_trade trade(const char *product, int64_t id, int64_t t_us, double price, double size, int side) {
  cs_trade t;
  memset(&t, 0, sizeof t);
  t.product_id = product;
  t.product_len = (uint16_t)strlen(product);
  t.trade_id = id;
  t.time_us = t_us;
  t.price = price;
  t.size = size;
  t.taker_side = (uint8_t)side;
  t.sequence = -1;
  t.time_str = t.price_str = t.size_str = "";
  return t;
}

static int64_t update_for; /* conf.update_for_us of the next make() */

static cs_window *make(int64_t size, int64_t lateness, int by_product, const cs_window_ext *ext, sink *s) {
  cs_window_conf c;
  memset(&c, 0, sizeof c);
  c.update_for_us = update_for;
  c.size_us = size;
  c.lateness_us = lateness;
  c.by_product = by_product;
  c.aggs = CS_AGG_ALL;
  c.ext = ext;
  cs_err err;
  err.msg[0] = 0;
  cs_window *w = cs_window_create(&c, collect, s, &err);
  if (!w) fprintf(stderr, "cs_window_create: %s\n", err.msg);
  return w;
}

/* add a trade; returns the verdict */
static cs_window_verdict add(cs_window *w, const char *product, int64_t id, int64_t t_us, double price, double size,
                             int side) {
  cs_trade t = trade(product, id, t_us, price, size, side);
  return cs_window_add(w, &t);
}
#define BUY CS_SIDE_BUY
#define SELL CS_SIDE_SELL

static int64_t watermark(cs_window *w) {
  int64_t wm = INT64_MIN;
  if (!cs_window_watermark(w, &wm)) return INT64_MIN;
  return wm;
}

/* ---- tests ---- */

static void test_create_errors(void) {
  sink s = {0};
  cs_window_conf c = {.size_us = 0, .lateness_us = 0, .by_product = 1, .aggs = CS_AGG_ALL};
  cs_err err;
  err.msg[0] = 0;
  CHECK(cs_window_create(&c, collect, &s, &err) == NULL);
  CHECK(err.msg[0] != 0);
  c.size_us = 1500000; /* 1.5 s: not whole seconds */
  err.msg[0] = 0;
  CHECK(cs_window_create(&c, collect, &s, &err) == NULL);
  CHECK(err.msg[0] != 0);
  c.size_us = -S(30);
  CHECK(cs_window_create(&c, collect, &s, &err) == NULL);
  c.size_us = S(30);
  c.lateness_us = -1;
  err.msg[0] = 0;
  CHECK(cs_window_create(&c, collect, &s, &err) == NULL);
  CHECK(err.msg[0] != 0);
  c.lateness_us = 0;
  cs_window *w = cs_window_create(&c, collect, &s, &err);
  CHECK(w != NULL);
  int64_t wm = 12345;
  CHECK_EQ_INT(cs_window_watermark(w, &wm), 0); /* no watermark before the first trade */
  CHECK_EQ_INT(wm, 12345);
  CHECK_EQ_UINT(cs_window_open_count(w), 0);
  cs_window_destroy(w);
  cs_window_destroy(NULL);
  CHECK_EQ_UINT(s.n, 0);
}

static void test_boundaries(void) {
  sink s = {0};
  const int64_t T0 = S(1755893490); /* 2025-08-22T20:11:30Z, a multiple of 30 s */
  cs_window *w = make(S(30), 0, 1, NULL, &s);
  if (!CHECK(w)) return;
  CHECK_EQ_INT(add(w, "BTC-USD", 1, T0, 100, 1, BUY), CS_WIN_ACCEPTED);        /* window [T0, T0+30) */
  CHECK_EQ_INT(watermark(w), T0);
  CHECK_EQ_INT(add(w, "BTC-USD", 2, T0 + S(30) - 1, 101, 1, BUY), CS_WIN_ACCEPTED); /* still [T0, T0+30) */
  CHECK_EQ_UINT(s.n, 0);
  CHECK_EQ_UINT(cs_window_open_count(w), 1);
  /* t = (k+1)*size exactly belongs to the next window, and the watermark
   * reaching the end exactly emits the first. */
  CHECK_EQ_INT(add(w, "BTC-USD", 3, T0 + S(30), 102, 1, BUY), CS_WIN_ACCEPTED);
  if (CHECK_EQ_UINT(s.n, 1)) {
    CHECK_EQ_STR(s.rows[0].product, "BTC-USD");
    CHECK_EQ_INT(s.rows[0].start, T0);
    CHECK_EQ_INT(s.rows[0].end, T0 + S(30));
    CHECK_EQ_UINT(s.rows[0].trades, 2);
    CHECK_EQ_DBL(s.rows[0].open, 100);
    CHECK_EQ_DBL(s.rows[0].close, 101);
    CHECK_EQ_UINT(s.rows[0].aggs, CS_AGG_ALL);
  }
  CHECK_EQ_UINT(cs_window_open_count(w), 1);
  /* The watermark one µs short of the end does not emit it. */
  CHECK_EQ_INT(add(w, "BTC-USD", 4, T0 + S(60) - 1, 103, 1, BUY), CS_WIN_ACCEPTED);
  CHECK_EQ_UINT(s.n, 1);
  cs_window_advance(w, T0 + S(60) - 1);
  CHECK_EQ_UINT(s.n, 1);
  cs_window_advance(w, T0 + S(60));
  if (CHECK_EQ_UINT(s.n, 2)) {
    CHECK_EQ_INT(s.rows[1].start, T0 + S(30));
    CHECK_EQ_INT(s.rows[1].end, T0 + S(60));
    CHECK_EQ_UINT(s.rows[1].trades, 2);
  }
  CHECK_EQ_UINT(cs_window_open_count(w), 0);
  cs_window_destroy(w);
  sink_clear(&s);

  /* Times before 1970 floor into the right window. */
  w = make(S(30), 0, 1, NULL, &s);
  CHECK_EQ_INT(add(w, "X", 1, -1, 10, 1, BUY), CS_WIN_ACCEPTED);       /* [-30 s, 0) */
  CHECK_EQ_INT(add(w, "X", 2, -S(30), 11, 1, BUY), CS_WIN_ACCEPTED); /* [-30 s, 0) too */
  CHECK_EQ_INT(add(w, "X", 3, 0, 12, 1, BUY), CS_WIN_ACCEPTED);        /* [0, 30): closes [-30, 0) */
  if (CHECK_EQ_UINT(s.n, 1)) {
    CHECK_EQ_INT(s.rows[0].start, -S(30));
    CHECK_EQ_INT(s.rows[0].end, 0);
    CHECK_EQ_UINT(s.rows[0].trades, 2);
    CHECK_EQ_DBL(s.rows[0].open, 11);
    CHECK_EQ_DBL(s.rows[0].close, 10);
  }
  cs_window_finish(w);
  if (CHECK_EQ_UINT(s.n, 2)) CHECK_EQ_INT(s.rows[1].start, 0);
  cs_window_destroy(w);
  sink_clear(&s);
}

static void test_late(void) {
  sink s = {0};
  /* lateness 0 */
  cs_window *w = make(S(30), 0, 1, NULL, &s);
  if (!CHECK(w)) return;
  CHECK_EQ_INT(add(w, "A", 1, S(10), 1, 1, BUY), CS_WIN_ACCEPTED);
  CHECK_EQ_INT(add(w, "A", 2, S(30), 1, 1, BUY), CS_WIN_ACCEPTED); /* wm 30: [0,30) out */
  CHECK_EQ_UINT(s.n, 1);
  CHECK_EQ_INT(add(w, "A", 3, S(29), 1, 1, BUY), CS_WIN_LATE);
  CHECK_EQ_INT(add(w, "A", 4, 0, 1, 1, BUY), CS_WIN_LATE);
  /* A window that never held a trade is late all the same. */
  CHECK_EQ_INT(add(w, "B", 5, S(5), 1, 1, BUY), CS_WIN_LATE);
  CHECK_EQ_INT(add(w, "B", 6, -S(100), 1, 1, BUY), CS_WIN_LATE);
  /* Behind the newest trade but in an open window: accepted. */
  CHECK_EQ_INT(add(w, "B", 7, S(30), 1, 1, BUY), CS_WIN_ACCEPTED);
  CHECK_EQ_INT(add(w, "A", 8, S(59), 1, 1, BUY), CS_WIN_ACCEPTED);
  CHECK_EQ_INT(add(w, "A", 9, S(31), 1, 1, BUY), CS_WIN_ACCEPTED);
  CHECK_EQ_INT(watermark(w), S(59)); /* never moves back */
  /* Late trades change nothing: no rows, same watermark. */
  CHECK_EQ_UINT(s.n, 1);
  cs_window_finish(w);
  if (CHECK_EQ_UINT(s.n, 3)) {
    CHECK_EQ_STR(s.rows[1].product, "A");
    CHECK_EQ_UINT(s.rows[1].trades, 3);
    CHECK_EQ_STR(s.rows[2].product, "B");
    CHECK_EQ_UINT(s.rows[2].trades, 1);
  }
  cs_window_destroy(w);
  sink_clear(&s);

  /* lateness 5 s */
  w = make(S(30), S(5), 1, NULL, &s);
  CHECK_EQ_INT(add(w, "A", 1, S(10), 10, 1, BUY), CS_WIN_ACCEPTED);
  CHECK_EQ_INT(watermark(w), S(5));
  CHECK_EQ_INT(add(w, "A", 2, S(33), 20, 1, BUY), CS_WIN_ACCEPTED); /* wm 28: [0,30) stays open */
  CHECK_EQ_INT(watermark(w), S(28));
  CHECK_EQ_UINT(s.n, 0);
  CHECK_EQ_INT(add(w, "A", 3, S(29), 30, 1, BUY), CS_WIN_ACCEPTED); /* still in time */
  CHECK_EQ_INT(add(w, "B", 4, S(1), 40, 1, BUY), CS_WIN_ACCEPTED);  /* new key, old open window */
  CHECK_EQ_INT(add(w, "A", 5, S(35) - 1, 50, 1, BUY), CS_WIN_ACCEPTED);
  CHECK_EQ_UINT(s.n, 0); /* wm 30 s - 1 µs */
  CHECK_EQ_INT(add(w, "A", 6, S(35), 60, 1, BUY), CS_WIN_ACCEPTED); /* wm 30: emits A and B [0,30) */
  if (CHECK_EQ_UINT(s.n, 2)) {
    CHECK_EQ_STR(s.rows[0].product, "A");
    CHECK_EQ_UINT(s.rows[0].trades, 2);
    CHECK_EQ_DBL(s.rows[0].open, 10);
    CHECK_EQ_DBL(s.rows[0].close, 30);
    CHECK_EQ_STR(s.rows[1].product, "B");
    CHECK_EQ_UINT(s.rows[1].trades, 1);
  }
  CHECK_EQ_INT(add(w, "A", 7, S(29) + 900000, 1, 1, BUY), CS_WIN_LATE);
  CHECK_EQ_INT(add(w, "C", 8, S(12), 1, 1, BUY), CS_WIN_LATE);
  /* cs_window_check answers the same without adding. */
  cs_trade t = trade("A", 9, S(20), 1, 1, BUY);
  CHECK_EQ_INT(cs_window_check(w, &t), CS_WIN_LATE);
  t = trade("A", 9, S(40), 1, 1, BUY);
  CHECK_EQ_INT(cs_window_check(w, &t), CS_WIN_ACCEPTED);
  CHECK_EQ_INT(cs_window_check(w, &t), CS_WIN_ACCEPTED); /* check did not add it */
  t = trade("A", 6, S(40), 1, 1, BUY);
  CHECK_EQ_INT(cs_window_check(w, &t), CS_WIN_DUPLICATE);
  cs_window_finish(w);
  if (CHECK_EQ_UINT(s.n, 3)) CHECK_EQ_UINT(s.rows[2].trades, 3); /* A [30,60): ids 2, 5, 6 */
  cs_window_destroy(w);
  sink_clear(&s);
}

static void test_duplicates(void) {
  sink s = {0};
  cs_window *w = make(S(30), S(60), 1, NULL, &s); /* lateness keeps several windows open */
  if (!CHECK(w)) return;
  CHECK_EQ_INT(add(w, "BTC-USD", 100, S(10), 50, 2, BUY), CS_WIN_ACCEPTED);
  /* Same product and id in the same window: dropped, whatever the fields. */
  CHECK_EQ_INT(add(w, "BTC-USD", 100, S(10), 50, 2, BUY), CS_WIN_DUPLICATE);
  CHECK_EQ_INT(add(w, "BTC-USD", 100, S(12), 999, 7, SELL), CS_WIN_DUPLICATE);
  /* Same id, different time, in another open window: still a duplicate. */
  CHECK_EQ_INT(add(w, "BTC-USD", 100, S(45), 60, 1, BUY), CS_WIN_DUPLICATE);
  /* Same id on another product: not a duplicate. */
  CHECK_EQ_INT(add(w, "ETH-USD", 100, S(10), 5, 1, BUY), CS_WIN_ACCEPTED);
  CHECK_EQ_INT(add(w, "ETH-USD", 100, S(11), 5, 1, BUY), CS_WIN_DUPLICATE);
  /* A product id that is a prefix of another is a different product. */
  CHECK_EQ_INT(add(w, "BTC", 100, S(10), 5, 1, BUY), CS_WIN_ACCEPTED);
  CHECK_EQ_INT(add(w, "BTC-USD", 101, S(45), 60, 1, BUY), CS_WIN_ACCEPTED);
  CHECK_EQ_INT(add(w, "BTC-USD", 101, S(15), 60, 1, BUY), CS_WIN_DUPLICATE); /* earlier open window */
  CHECK_EQ_UINT(cs_window_open_count(w), 4);
  CHECK_EQ_UINT(s.n, 0);
  /* Close [0,30): watermark 90 - 60 = 30. */
  CHECK_EQ_INT(add(w, "LTC-USD", 1, S(90), 1, 1, BUY), CS_WIN_ACCEPTED);
  if (CHECK_EQ_UINT(s.n, 3)) {
    CHECK_EQ_STR(s.rows[0].product, "BTC");
    CHECK_EQ_STR(s.rows[1].product, "BTC-USD");
    CHECK_EQ_UINT(s.rows[1].trades, 1);
    CHECK_EQ_DBL(s.rows[1].volume, 2);
    CHECK_EQ_DBL(s.rows[1].high, 50);
    CHECK_EQ_STR(s.rows[2].product, "ETH-USD");
    CHECK_EQ_UINT(s.rows[2].trades, 1);
  }
  /* After its window was emitted, the same trade again is late (the
   * late check comes first), */
  CHECK_EQ_INT(add(w, "BTC-USD", 100, S(10), 50, 2, BUY), CS_WIN_LATE);
  /* and a trade whose window is late is late even when its id is still
   * held by an open window (101 is in [30,60)). */
  CHECK_EQ_INT(add(w, "BTC-USD", 101, S(15), 60, 1, BUY), CS_WIN_LATE);
  CHECK_EQ_INT(add(w, "BTC-USD", 101, S(50), 60, 1, BUY), CS_WIN_DUPLICATE);
  /* The ids of an emitted window are forgotten (memory is bounded by the
   * open windows), so the same id at a time whose window is still open is
   * accepted. */
  CHECK_EQ_INT(add(w, "BTC-USD", 100, S(50), 70, 3, SELL), CS_WIN_ACCEPTED);
  CHECK_EQ_INT(add(w, "BTC-USD", 100, S(51), 70, 3, SELL), CS_WIN_DUPLICATE);
  cs_window_finish(w);
  if (CHECK_EQ_UINT(s.n, 5)) {
    CHECK_EQ_STR(s.rows[3].product, "BTC-USD");
    CHECK_EQ_INT(s.rows[3].start, S(30));
    CHECK_EQ_UINT(s.rows[3].trades, 2);
    CHECK_EQ_DBL(s.rows[3].volume, 4);
    CHECK_EQ_DBL(s.rows[3].sell_volume, 3);
    CHECK_EQ_STR(s.rows[4].product, "LTC-USD");
  }
  cs_window_destroy(w);
  sink_clear(&s);
}

static int bytecmp(const char *a, const char *b) {
  size_t na = strlen(a), nb = strlen(b), n = na < nb ? na : nb;
  for (size_t i = 0; i < n; i++)
    if ((unsigned char)a[i] != (unsigned char)b[i]) return (unsigned char)a[i] < (unsigned char)b[i] ? -1 : 1;
  return na < nb ? -1 : na > nb;
}

static void test_order(void) {
  sink s = {0};
  static const char *const products[] = {"b", "B", "a", "ETH-USD", "BTC-USD", "\xc3\xa9th", "BTC-USDC", "A", "_", "~"};
  const size_t np = sizeof products / sizeof *products;
  /* Expected order within a window: byte order, by hand:
   * "A" (41) < "B" (42) < "BTC-USD" < "BTC-USDC" < "ETH-USD" < "_" (5f)
   *   < "a" (61) < "b" (62) < "~" (7e) < "\xc3\xa9th" (c3). */
  static const char *const sorted[] = {"A", "B", "BTC-USD", "BTC-USDC", "ETH-USD", "_", "a", "b", "~", "\xc3\xa9th"};
  for (size_t i = 0; i + 1 < np; i++) CHECK(bytecmp(sorted[i], sorted[i + 1]) < 0);

  cs_window *w = make(S(30), S(1000), 1, NULL, &s);
  if (!CHECK(w)) return;
  /* Three windows, products in scrambled order, windows out of order. */
  int64_t id = 1;
  static const int win_of_round[] = {2, 0, 1, 0, 2, 1};
  for (int r = 0; r < 6; r++)
    for (size_t i = 0; i < np; i++) {
      size_t p = (i * 7 + (size_t)r * 3) % np;
      CHECK_EQ_INT(add(w, products[p], id++, S(30) * win_of_round[r] + S(r + 1), 1, 1, BUY), CS_WIN_ACCEPTED);
    }
  CHECK_EQ_UINT(cs_window_open_count(w), 3 * np);
  cs_window_finish(w);
  CHECK_EQ_UINT(cs_window_open_count(w), 0);
  if (CHECK_EQ_UINT(s.n, 3 * np))
    for (size_t k = 0; k < 3; k++)
      for (size_t i = 0; i < np; i++) {
        got_row *g = &s.rows[k * np + i];
        CHECK_EQ_INT(g->start, S(30) * (int64_t)k);
        CHECK_EQ_STR(g->product, sorted[i]);
        CHECK_EQ_UINT(g->trades, 2);
      }
  /* finish on an empty engine emits nothing more */
  cs_window_finish(w);
  CHECK_EQ_UINT(s.n, 3 * np);
  cs_window_destroy(w);
  sink_clear(&s);

  /* Emission through advance, in order, several windows at once. */
  w = make(S(10), 0, 1, NULL, &s);
  cs_window_advance(w, -S(1000));
  CHECK_EQ_INT(add(w, "z", 1, S(25), 1, 1, BUY), CS_WIN_ACCEPTED);
  CHECK_EQ_INT(add(w, "y", 2, S(26), 1, 1, BUY), CS_WIN_ACCEPTED);
  CHECK_EQ_INT(add(w, "x", 3, S(27), 1, 1, BUY), CS_WIN_ACCEPTED);
  cs_window_advance(w, S(5)); /* behind: nothing moves */
  CHECK_EQ_INT(watermark(w), S(27));
  CHECK_EQ_INT(add(w, "z", 4, S(39), 1, 1, BUY), CS_WIN_ACCEPTED); /* closes [20,30) */
  if (CHECK_EQ_UINT(s.n, 3)) {
    CHECK_EQ_STR(s.rows[0].product, "x");
    CHECK_EQ_STR(s.rows[1].product, "y");
    CHECK_EQ_STR(s.rows[2].product, "z");
  }
  CHECK_EQ_INT(add(w, "a", 5, S(39), 1, 1, BUY), CS_WIN_ACCEPTED);
  CHECK_EQ_INT(add(w, "b", 6, S(30), 1, 1, BUY), CS_WIN_ACCEPTED);
  cs_window_advance(w, S(100));
  if (CHECK_EQ_UINT(s.n, 6)) {
    CHECK_EQ_STR(s.rows[3].product, "a");
    CHECK_EQ_STR(s.rows[4].product, "b");
    CHECK_EQ_STR(s.rows[5].product, "z");
  }
  CHECK_EQ_INT(watermark(w), S(100));
  cs_window_destroy(w);
  sink_clear(&s);
}

static void test_open_close(void) {
  sink s = {0};
  cs_window *w = make(S(60), 0, 1, NULL, &s);
  if (!CHECK(w)) return;
  /* Arrival order is not time order; ties on time go by trade_id. */
  struct { int64_t id, t; double p; } tr[] = {
      {50, S(10), 100}, {90, S(5), 90},   {30, S(20), 120}, {40, S(20), 121},
      {80, S(5), 95},   {35, S(20), 119}, {85, S(5), 91},   {10, S(15), 130},
  };
  /* The watermark goes to 20 s and back: all in [0,60). */
  for (size_t i = 0; i < sizeof tr / sizeof *tr; i++)
    CHECK_EQ_INT(add(w, "P", tr[i].id, tr[i].t, tr[i].p, 1, BUY), CS_WIN_ACCEPTED);
  cs_window_finish(w);
  if (CHECK_EQ_UINT(s.n, 1)) {
    CHECK_EQ_DBL(s.rows[0].open, 95);   /* time 5 s, smallest id 80 */
    CHECK_EQ_DBL(s.rows[0].close, 121); /* time 20 s, largest id 40 */
    CHECK_EQ_DBL(s.rows[0].high, 130);
    CHECK_EQ_DBL(s.rows[0].low, 90);
  }
  cs_window_destroy(w);
  sink_clear(&s);

  /* The first trade added stays open/close when nothing beats it. */
  w = make(S(60), 0, 1, NULL, &s);
  CHECK_EQ_INT(add(w, "P", 5, S(30), 7, 1, BUY), CS_WIN_ACCEPTED);
  CHECK_EQ_INT(add(w, "P", 6, S(30), 8, 1, BUY), CS_WIN_ACCEPTED); /* same time, larger id: close */
  CHECK_EQ_INT(add(w, "P", 4, S(30), 6, 1, BUY), CS_WIN_ACCEPTED); /* same time, smaller id: open */
  cs_window_finish(w);
  if (CHECK_EQ_UINT(s.n, 1)) {
    CHECK_EQ_DBL(s.rows[0].open, 6);
    CHECK_EQ_DBL(s.rows[0].close, 8);
    CHECK_EQ_DBL(s.rows[0].high, 8);
    CHECK_EQ_DBL(s.rows[0].low, 6);
  }
  cs_window_destroy(w);
  sink_clear(&s);

  /* One trade: everything is that trade. */
  w = make(S(30), 0, 1, NULL, &s);
  CHECK_EQ_INT(add(w, "P", 1, S(3), 42.5, 0.25, SELL), CS_WIN_ACCEPTED);
  cs_window_finish(w);
  if (CHECK_EQ_UINT(s.n, 1)) {
    got_row *g = &s.rows[0];
    CHECK_EQ_UINT(g->trades, 1);
    CHECK_EQ_DBL(g->open, 42.5);
    CHECK_EQ_DBL(g->close, 42.5);
    CHECK_EQ_DBL(g->high, 42.5);
    CHECK_EQ_DBL(g->low, 42.5);
    CHECK_EQ_DBL(g->avg_price, 42.5);
    CHECK_EQ_DBL(g->vwap, 42.5);
    CHECK_EQ_DBL(g->volume, 0.25);
    CHECK_EQ_DBL(g->buy_volume, 0);
    CHECK_EQ_DBL(g->sell_volume, 0.25);
  }
  cs_window_destroy(w);
  sink_clear(&s);
}

static void test_aggregates(void) {
  sink s = {0};
  cs_window *w = make(S(30), 0, 1, NULL, &s);
  if (!CHECK(w)) return;
  /* Hand-computed window: prices 100, 102, 98, 101 with sizes 1, 3, 2, 4.
   *   avg  = 401 / 4 = 100.25
   *   vwap = (100 + 306 + 196 + 404) / 10 = 1006 / 10 = 100.6
   *   buy (taker bought) = 1 + 4 = 5, sell = 3 + 2 = 5 */
  CHECK_EQ_INT(add(w, "X", 1, S(1), 100, 1, BUY), CS_WIN_ACCEPTED);
  CHECK_EQ_INT(add(w, "X", 2, S(2), 102, 3, SELL), CS_WIN_ACCEPTED);
  CHECK_EQ_INT(add(w, "X", 3, S(3), 98, 2, SELL), CS_WIN_ACCEPTED);
  CHECK_EQ_INT(add(w, "X", 4, S(4), 101, 4, BUY), CS_WIN_ACCEPTED);
  cs_window_finish(w);
  if (CHECK_EQ_UINT(s.n, 1)) {
    got_row *g = &s.rows[0];
    CHECK_EQ_UINT(g->trades, 4);
    CHECK_NEAR(g->avg_price, 100.25, 1e-12);
    CHECK_NEAR(g->vwap, 100.6, 1e-12);
    CHECK_EQ_DBL(g->open, 100);
    CHECK_EQ_DBL(g->close, 101);
    CHECK_EQ_DBL(g->high, 102);
    CHECK_EQ_DBL(g->low, 98);
    CHECK_EQ_DBL(g->volume, 10);
    CHECK_EQ_DBL(g->buy_volume, 5);
    CHECK_EQ_DBL(g->sell_volume, 5);
  }
  cs_window_destroy(w);
  sink_clear(&s);

  /* Random stream, checked against sums computed here per window. */
  enum { NT = 20000, NW = 40, NP = 3 };
  static const char *const prod[NP] = {"AAA", "BBB", "CCC"};
  static double sp[NW][NP], spv[NW][NP], vol[NW][NP], buy[NW][NP], hi[NW][NP], lo[NW][NP];
  static uint64_t cnt[NW][NP];
  memset(cnt, 0, sizeof cnt);
  memset(sp, 0, sizeof sp);
  memset(spv, 0, sizeof spv);
  memset(vol, 0, sizeof vol);
  memset(buy, 0, sizeof buy);
  w = make(S(1), S(3600), 1, NULL, &s); /* nothing closes before finish */
  uint64_t x = 12345;
  for (int i = 0; i < NT; i++) {
    x = x * 6364136223846793005ull + 1442695040888963407ull;
    int wi = (int)((x >> 33) % NW), pi = (int)((x >> 20) % NP);
    int64_t t = S(wi) + (int64_t)((x >> 40) % 1000000);
    double p = 1000 + (double)((x >> 8) % 10000) / 100.0;
    double q = (double)((x >> 24) % 5000 + 1) / 1000.0;
    int side = (x >> 60) & 1 ? BUY : SELL;
    if (!CHECK_EQ_INT(add(w, prod[pi], i, t, p, q, side), CS_WIN_ACCEPTED)) break;
    if (cnt[wi][pi] == 0 || p > hi[wi][pi]) hi[wi][pi] = p;
    if (cnt[wi][pi] == 0 || p < lo[wi][pi]) lo[wi][pi] = p;
    cnt[wi][pi]++;
    sp[wi][pi] += p;
    spv[wi][pi] += p * q;
    vol[wi][pi] += q;
    if (side == BUY) buy[wi][pi] += q;
  }
  cs_window_finish(w);
  size_t r = 0;
  for (int wi = 0; wi < NW; wi++)
    for (int pi = 0; pi < NP; pi++) {
      if (!cnt[wi][pi]) continue;
      if (!CHECK(r < s.n)) goto done;
      got_row *g = &s.rows[r++];
      CHECK_EQ_STR(g->product, prod[pi]);
      CHECK_EQ_INT(g->start, S(wi));
      CHECK_EQ_INT(g->end, S(wi + 1));
      CHECK_EQ_UINT(g->trades, cnt[wi][pi]);
      CHECK_NEAR(g->avg_price, sp[wi][pi] / (double)cnt[wi][pi], 1e-9);
      CHECK_NEAR(g->vwap, spv[wi][pi] / vol[wi][pi], 1e-9);
      CHECK_NEAR(g->volume, vol[wi][pi], 1e-9);
      CHECK_NEAR(g->buy_volume, buy[wi][pi], 1e-9);
      CHECK_NEAR(g->sell_volume, vol[wi][pi] - buy[wi][pi], 1e-9);
      CHECK_EQ_DBL(g->high, hi[wi][pi]);
      CHECK_EQ_DBL(g->low, lo[wi][pi]);
    }
  CHECK_EQ_UINT(s.n, r);
done:
  cs_window_destroy(w);
  sink_clear(&s);
}

static void test_advance(void) {
  sink s = {0};
  cs_window *w = make(S(30), S(5), 1, NULL, &s);
  if (!CHECK(w)) return;
  /* advance before any trade sets the watermark */
  cs_window_advance(w, S(100));
  CHECK_EQ_INT(watermark(w), S(100));
  CHECK_EQ_INT(add(w, "A", 1, S(95), 1, 1, BUY), CS_WIN_ACCEPTED); /* [90,120) ends after 100 */
  CHECK_EQ_INT(add(w, "A", 2, S(89), 1, 1, BUY), CS_WIN_LATE);     /* [60,90) ended */
  CHECK_EQ_INT(watermark(w), S(100)); /* 95 - 5 = 90 < 100: unchanged */
  cs_window_advance(w, S(50)); /* never back */
  CHECK_EQ_INT(watermark(w), S(100));
  CHECK_EQ_INT(add(w, "A", 3, S(110), 1, 1, BUY), CS_WIN_ACCEPTED);
  CHECK_EQ_INT(watermark(w), S(105));
  CHECK_EQ_UINT(s.n, 0);
  cs_window_advance(w, S(119));
  CHECK_EQ_UINT(s.n, 0);
  cs_window_advance(w, S(120));
  if (CHECK_EQ_UINT(s.n, 1)) CHECK_EQ_UINT(s.rows[0].trades, 2);
  CHECK_EQ_UINT(cs_window_open_count(w), 0);
  /* A trade older than the new watermark (plus lateness) is late now. */
  CHECK_EQ_INT(add(w, "A", 4, S(119), 1, 1, BUY), CS_WIN_LATE);
  CHECK_EQ_INT(add(w, "A", 5, S(120), 1, 1, BUY), CS_WIN_ACCEPTED);
  CHECK_EQ_INT(watermark(w), S(120)); /* 120 - 5 < 120 */
  /* The newest trade time still counts after an advance: 130 - 5. */
  CHECK_EQ_INT(add(w, "A", 6, S(130), 1, 1, BUY), CS_WIN_ACCEPTED);
  CHECK_EQ_INT(watermark(w), S(125));
  cs_window_advance(w, INT64_C(9000000000000000));
  CHECK_EQ_UINT(s.n, 2);
  cs_window_destroy(w);
  sink_clear(&s);

  /* An advance before any trade, with times before 1970. The watermark is
   * max(advanced, newest accepted time - lateness) = -50 s here. */
  w = make(S(30), 0, 1, NULL, &s);
  cs_window_advance(w, -S(100));
  CHECK_EQ_INT(add(w, "A", 1, -S(50), 1, 1, BUY), CS_WIN_ACCEPTED);
  /* The newest accepted time moves the watermark even when an advance set
   * the first one (a regression: max_t used to start at 0). */
  CHECK_EQ_INT(watermark(w), -S(50));
  CHECK_EQ_INT(add(w, "A", 2, -S(61), 1, 1, BUY), CS_WIN_LATE); /* [-90,-60) ended at -60 <= -50 */
  cs_window_destroy(w);
  sink_clear(&s);
}

static void test_by_none(void) {
  sink s = {0};
  cs_window *w = make(S(30), 0, 0, NULL, &s);
  if (!CHECK(w)) return;
  CHECK_EQ_INT(add(w, "BTC-USD", 1, S(1), 100, 1, BUY), CS_WIN_ACCEPTED);
  CHECK_EQ_INT(add(w, "ETH-USD", 1, S(2), 10, 2, SELL), CS_WIN_ACCEPTED); /* same id, other product */
  CHECK_EQ_INT(add(w, "ETH-USD", 1, S(3), 10, 2, SELL), CS_WIN_DUPLICATE);
  CHECK_EQ_INT(add(w, "LTC-USD", 7, S(4), 1, 4, BUY), CS_WIN_ACCEPTED);
  CHECK_EQ_UINT(cs_window_open_count(w), 1);
  CHECK_EQ_INT(add(w, "BTC-USD", 2, S(31), 100, 1, BUY), CS_WIN_ACCEPTED);
  if (CHECK_EQ_UINT(s.n, 1)) {
    got_row *g = &s.rows[0];
    CHECK_EQ_STR(g->product, "*");
    CHECK_EQ_UINT(g->trades, 3);
    CHECK_EQ_DBL(g->open, 100);
    CHECK_EQ_DBL(g->close, 1);
    CHECK_EQ_DBL(g->volume, 7);
    CHECK_EQ_DBL(g->buy_volume, 5);
    CHECK_EQ_DBL(g->sell_volume, 2);
    CHECK_NEAR(g->avg_price, 111.0 / 3, 1e-12);
    CHECK_NEAR(g->vwap, (100.0 + 20 + 4) / 7, 1e-12);
  }
  cs_window_finish(w);
  if (CHECK_EQ_UINT(s.n, 2)) CHECK_EQ_STR(s.rows[1].product, "*");
  cs_window_destroy(w);
  sink_clear(&s);
}

static size_t rows_seen;
static uint64_t trades_seen;
static int64_t last_end;
static int order_ok = 1;
static void count_only(void *ud, const cs_row *r) {
  (void)ud;
  rows_seen++;
  trades_seen += r->trades;
  if (r->window_end_us < last_end) order_ok = 0;
  last_end = r->window_end_us;
}

static void test_memory(void) {
  cs_window_conf c = {.size_us = S(1), .lateness_us = S(2), .by_product = 1, .aggs = CS_AGG_ALL};
  cs_err err;
  cs_window *w = cs_window_create(&c, count_only, NULL, &err);
  if (!CHECK(w)) return;
  static const char *const prod[] = {"BTC-USD", "ETH-USD", "LTC-USD", "SOL-USD"};
  size_t max_open = 0;
  int64_t ids[4] = {0};
  int bad = 0;
  /* 1e6 trades, 250 per second per product, over 1000 one-second windows;
   * the times jitter backwards by up to 1.5 s (within the lateness). */
  for (int i = 0; i < 1000000; i++) {
    int p = i & 3;
    int64_t t = (int64_t)i * 1000 - (int64_t)((i * 2654435761u) % 1500000u);
    if (t < 0) t = 0;
    cs_trade tr = trade(prod[p], ++ids[p], t, 100 + (i % 7), 0.5, (i & 4) ? BUY : SELL);
    if (cs_window_add(w, &tr) != CS_WIN_ACCEPTED) bad++;
    size_t o = cs_window_open_count(w);
    if (o > max_open) max_open = o;
  }
  CHECK_EQ_INT(bad, 0);
  /* At most lateness + 2 windows per product are ever open. */
  CHECK(max_open <= 4 * 5);
  CHECK(max_open >= 4);
  cs_window_finish(w);
  CHECK_EQ_UINT(cs_window_open_count(w), 0);
  CHECK_EQ_UINT(trades_seen, 1000000);
  CHECK_EQ_UINT(rows_seen, 4 * 1000);
  CHECK(order_ok);
  cs_window_destroy(w);
}

/* ---- ext callbacks ---- */

typedef struct ext_state {
  int inits, adds, results, releases;
  int live;          /* handles not yet released */
  int fail_init;     /* make init fail */
  int64_t sums[1024]; /* per handle: sum of trade ids */
  int used[1024];
  int bad_handle;
} ext_state;

static int ext_init(void *ud, uint64_t *h) {
  ext_state *e = ud;
  if (e->fail_init) return -1;
  e->inits++;
  for (uint64_t i = 1; i < 1024; i++)
    if (!e->used[i]) {
      e->used[i] = 1;
      e->sums[i] = 0;
      *h = i;
      e->live++;
      return 0;
    }
  return -1;
}
static void ext_add(void *ud, uint64_t h, const cs_trade *t) {
  ext_state *e = ud;
  e->adds++;
  if (h == 0 || h >= 1024 || !e->used[h]) {
    e->bad_handle++;
    return;
  }
  e->sums[h] += t->trade_id;
}
static char *ext_result(void *ud, uint64_t h) {
  ext_state *e = ud;
  e->results++;
  if (h == 0 || h >= 1024 || !e->used[h]) {
    e->bad_handle++;
    return NULL;
  }
  char *s = malloc(64);
  snprintf(s, 64, "\"idsum\":%lld", (long long)e->sums[h]);
  return s;
}
static void ext_release(void *ud, uint64_t h) {
  ext_state *e = ud;
  e->releases++;
  if (h == 0 || h >= 1024 || !e->used[h]) {
    e->bad_handle++;
    return;
  }
  e->used[h] = 0;
  e->live--;
}

static void test_ext(void) {
  static ext_state st;
  memset(&st, 0, sizeof st);
  cs_window_ext ext = {&st, ext_init, ext_add, ext_result, ext_release};
  sink s = {0};
  cs_window *w = make(S(30), 0, 1, &ext, &s);
  if (!CHECK(w)) return;
  CHECK_EQ_INT(add(w, "A", 1, S(1), 1, 1, BUY), CS_WIN_ACCEPTED);   /* A [0,30): init */
  CHECK_EQ_INT(add(w, "A", 2, S(2), 1, 1, BUY), CS_WIN_ACCEPTED);
  CHECK_EQ_INT(add(w, "A", 2, S(3), 1, 1, BUY), CS_WIN_DUPLICATE);  /* no add */
  CHECK_EQ_INT(add(w, "B", 10, S(4), 1, 1, BUY), CS_WIN_ACCEPTED);  /* B [0,30): init */
  CHECK_EQ_INT(st.inits, 2);
  CHECK_EQ_INT(st.adds, 3);
  CHECK_EQ_INT(add(w, "A", 3, S(30), 1, 1, BUY), CS_WIN_ACCEPTED);  /* A [30,60): init; emits 2 */
  CHECK_EQ_INT(add(w, "B", 11, S(5), 1, 1, BUY), CS_WIN_LATE);      /* no add */
  CHECK_EQ_INT(st.inits, 3);
  CHECK_EQ_INT(st.adds, 4);
  CHECK_EQ_INT(st.results, 2);
  CHECK_EQ_INT(st.releases, 2);
  if (CHECK_EQ_UINT(s.n, 2)) {
    CHECK_EQ_STR(s.rows[0].product, "A");
    CHECK_EQ_STR(s.rows[0].ext_json, "\"idsum\":3");
    CHECK_EQ_STR(s.rows[1].product, "B");
    CHECK_EQ_STR(s.rows[1].ext_json, "\"idsum\":10");
  }
  CHECK_EQ_INT(add(w, "A", 4, S(40), 1, 1, BUY), CS_WIN_ACCEPTED);
  CHECK_EQ_INT(add(w, "C", 5, S(41), 1, 1, BUY), CS_WIN_ACCEPTED);  /* init */
  cs_window_finish(w);
  CHECK_EQ_INT(st.inits, 4);
  CHECK_EQ_INT(st.adds, 6);
  CHECK_EQ_INT(st.results, 4);
  CHECK_EQ_INT(st.releases, 4);
  CHECK_EQ_INT(st.live, 0);
  if (CHECK_EQ_UINT(s.n, 4)) {
    CHECK_EQ_STR(s.rows[2].ext_json, "\"idsum\":7");
    CHECK_EQ_STR(s.rows[3].ext_json, "\"idsum\":5");
  }
  /* Windows dropped by destroy are released, without a result. */
  CHECK_EQ_INT(add(w, "A", 6, S(100), 1, 1, BUY), CS_WIN_ACCEPTED);
  CHECK_EQ_INT(add(w, "B", 7, S(100), 1, 1, BUY), CS_WIN_ACCEPTED);
  CHECK_EQ_INT(st.inits, 6);
  CHECK_EQ_INT(st.live, 2);
  cs_window_destroy(w);
  CHECK_EQ_INT(st.results, 4);
  CHECK_EQ_INT(st.releases, 6);
  CHECK_EQ_INT(st.live, 0);
  CHECK_EQ_INT(st.bad_handle, 0);
  CHECK_EQ_UINT(s.n, 4);
  sink_clear(&s);

  /* A failing init: the trade is not accepted, nothing is counted. */
  memset(&st, 0, sizeof st);
  w = make(S(30), 0, 1, &ext, &s);
  st.fail_init = 1;
  CHECK_EQ_INT(add(w, "A", 1, S(1), 1, 1, BUY), CS_WIN_NOMEM);
  CHECK_EQ_UINT(cs_window_open_count(w), 0);
  st.fail_init = 0;
  CHECK_EQ_INT(add(w, "A", 1, S(1), 1, 1, BUY), CS_WIN_ACCEPTED); /* not a duplicate: was not added */
  cs_window_finish(w);
  if (CHECK_EQ_UINT(s.n, 1)) {
    CHECK_EQ_UINT(s.rows[0].trades, 1);
    CHECK_EQ_STR(s.rows[0].ext_json, "\"idsum\":1");
  }
  cs_window_destroy(w);
  CHECK_EQ_INT(st.live, 0);
  CHECK_EQ_INT(st.inits, st.releases);
  sink_clear(&s);

  /* Without ext, ext_json is NULL. */
  w = make(S(30), 0, 1, NULL, &s);
  CHECK_EQ_INT(add(w, "A", 1, S(1), 1, 1, BUY), CS_WIN_ACCEPTED);
  cs_window_finish(w);
  if (CHECK_EQ_UINT(s.n, 1)) CHECK(s.rows[0].ext_json == NULL);
  cs_window_destroy(w);
  sink_clear(&s);
}


/* on_late = "update": late trades within update_for of their window's end
 * go into that window, which is emitted again with revision + 1. */
static void test_update(void) {
  static ext_state st;
  memset(&st, 0, sizeof st);
  cs_window_ext ext = {&st, ext_init, ext_add, ext_result, ext_release};
  sink s = {0};
  cs_window_conf c = {.size_us = S(30), .lateness_us = 0, .by_product = 1, .aggs = CS_AGG_ALL, .update_for_us = -1};
  cs_err err;
  CHECK(cs_window_create(&c, collect, &s, &err) == NULL); /* negative update_for */
  update_for = S(60);
  cs_window *w = make(S(30), 0, 1, &ext, &s);
  update_for = 0;
  if (!CHECK(w)) return;
  CHECK_EQ_INT(add(w, "A", 1, S(10), 10, 1, BUY), CS_WIN_ACCEPTED);
  CHECK_EQ_INT(add(w, "A", 2, S(30), 20, 1, BUY), CS_WIN_ACCEPTED); /* emits A [0,30) */
  if (CHECK_EQ_UINT(s.n, 1)) {
    CHECK_EQ_UINT(s.rows[0].revision, 0);
    CHECK_EQ_UINT(s.rows[0].trades, 1);
  }
  CHECK_EQ_UINT(cs_window_open_count(w), 1); /* kept windows are not open */
  cs_trade t = trade("A", 3, S(20), 5, 2, SELL);
  CHECK_EQ_INT(cs_window_check(w, &t), CS_WIN_UPDATED);
  CHECK_EQ_UINT(s.n, 1); /* check does not emit */
  CHECK_EQ_INT(cs_window_add(w, &t), CS_WIN_UPDATED);
  if (CHECK_EQ_UINT(s.n, 2)) {
    got_row *g = &s.rows[1];
    CHECK_EQ_STR(g->product, "A");
    CHECK_EQ_INT(g->start, 0);
    CHECK_EQ_UINT(g->revision, 1);
    CHECK_EQ_UINT(g->trades, 2);
    CHECK_EQ_DBL(g->open, 10);
    CHECK_EQ_DBL(g->close, 5);  /* time 20 s is after 10 s */
    CHECK_EQ_DBL(g->low, 5);
    CHECK_EQ_DBL(g->volume, 3);
    CHECK_EQ_DBL(g->sell_volume, 2);
    CHECK_EQ_STR(g->ext_json, "\"idsum\":4");
  }
  CHECK_EQ_INT(watermark(w), S(30)); /* a late trade does not move it */
  /* The kept window's ids still count for duplicates. */
  CHECK_EQ_INT(add(w, "A", 1, S(25), 10, 1, BUY), CS_WIN_DUPLICATE);
  CHECK_EQ_INT(add(w, "A", 3, S(5), 10, 1, BUY), CS_WIN_DUPLICATE);
  /* A late window that never held a trade is created and emitted. */
  CHECK_EQ_INT(add(w, "B", 4, S(5), 7, 1, BUY), CS_WIN_UPDATED);
  if (CHECK_EQ_UINT(s.n, 3)) {
    CHECK_EQ_STR(s.rows[2].product, "B");
    CHECK_EQ_INT(s.rows[2].start, 0);
    CHECK_EQ_UINT(s.rows[2].trades, 1);
    CHECK_EQ_UINT(s.rows[2].revision, 0);
  }
  /* Until update_for after the end (30 + 60 = 90 s) by the watermark. */
  cs_window_advance(w, S(90) - 1); /* emits A [30,60) */
  if (CHECK_EQ_UINT(s.n, 4)) {
    CHECK_EQ_INT(s.rows[3].start, S(30));
    CHECK_EQ_UINT(s.rows[3].revision, 0);
  }
  CHECK_EQ_INT(add(w, "A", 5, S(29), 10, 1, BUY), CS_WIN_UPDATED);
  if (CHECK_EQ_UINT(s.n, 5)) {
    CHECK_EQ_INT(s.rows[4].start, 0);
    CHECK_EQ_UINT(s.rows[4].revision, 2);
    CHECK_EQ_UINT(s.rows[4].trades, 3);
  }
  int releases_before = st.releases;
  cs_window_advance(w, S(90)); /* A and B [0,30) are forgotten */
  CHECK_EQ_INT(st.releases, releases_before + 2);
  CHECK_EQ_INT(add(w, "A", 6, S(15), 10, 1, BUY), CS_WIN_LATE);
  CHECK_EQ_INT(add(w, "C", 7, 0, 10, 1, BUY), CS_WIN_LATE);
  /* [30,60) still takes late trades; id 1 was forgotten with [0,30). */
  CHECK_EQ_INT(add(w, "A", 1, S(40), 10, 1, BUY), CS_WIN_UPDATED);
  if (CHECK_EQ_UINT(s.n, 6)) {
    CHECK_EQ_INT(s.rows[5].start, S(30));
    CHECK_EQ_UINT(s.rows[5].revision, 1);
    CHECK_EQ_UINT(s.rows[5].trades, 2);
  }
  CHECK_EQ_UINT(s.n, 6);
  cs_window_finish(w);
  CHECK_EQ_UINT(s.n, 6); /* nothing open, kept windows are dropped silently */
  CHECK_EQ_INT(st.inits, 3);
  CHECK_EQ_INT(st.releases, 3);
  CHECK_EQ_INT(st.results, 6);
  CHECK_EQ_INT(st.live, 0);
  CHECK_EQ_INT(st.bad_handle, 0);
  cs_window_destroy(w);
  CHECK_EQ_INT(st.live, 0);
  sink_clear(&s);

  /* Memory stays bounded with updates on: kept windows are purged. */
  update_for = S(5);
  w = make(S(1), S(1), 1, NULL, &s);
  update_for = 0;
  int bad = 0;
  for (int i = 0; i < 200000; i++) {
    int64_t t = (int64_t)i * 1000;
    cs_window_verdict v = add(w, (i & 1) ? "X" : "Y", i, t, 1, 1, BUY);
    if (v != CS_WIN_ACCEPTED) bad++;
    /* a late trade 3 s back: updated (within 1 s + 5 s) */
    if (i % 1000 == 999 && i > 5000 && add(w, "X", -i, t - S(3), 1, 1, BUY) != CS_WIN_UPDATED) bad++;
    if (cs_window_open_count(w) > 8) bad++;
  }
  CHECK_EQ_INT(bad, 0);
  cs_window_finish(w);
  CHECK_EQ_UINT(cs_window_open_count(w), 0);
  cs_window_destroy(w);
  sink_clear(&s);
}

int main(void) {
  test_create_errors();
  test_boundaries();
  test_late();
  test_duplicates();
  test_order();
  test_open_close();
  test_aggregates();
  test_advance();
  test_by_none();
  test_memory();
  test_ext();
  test_update();
  return CHECK_DONE();
}
