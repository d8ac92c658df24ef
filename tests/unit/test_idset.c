/* cs_idset against a plain reference (a sorted array of pairs searched
 * linearly): random adds and run removals with dense ids moving forward,
 * out-of-order ids, ids far apart (the hash-set fallback), negative ids,
 * spans that make the bitmap grow and slide, and the word edges of runs. */
#include "cs_idset.h"

#include "check.h"

typedef struct pair {
  uint32_t product;
  int64_t id;
} pair;

typedef struct ref {
  pair *v;
  size_t n, cap;
} ref;

static int ref_has(const ref *r, uint32_t product, int64_t id) {
  for (size_t i = 0; i < r->n; i++)
    if (r->v[i].product == product && r->v[i].id == id) return 1;
  return 0;
}

static void ref_add(ref *r, uint32_t product, int64_t id) {
  if (r->n == r->cap) {
    r->cap = r->cap ? r->cap * 2 : 64;
    r->v = realloc(r->v, r->cap * sizeof *r->v);
  }
  r->v[r->n++] = (pair){product, id};
}

static void ref_del(ref *r, uint32_t product, int64_t id) {
  for (size_t i = 0; i < r->n; i++)
    if (r->v[i].product == product && r->v[i].id == id) {
      r->v[i] = r->v[--r->n];
      return;
    }
}

static uint64_t rng = 88172645463325252ull;
static uint64_t next(void) {
  rng ^= rng << 13;
  rng ^= rng >> 7;
  rng ^= rng << 17;
  return rng;
}

static void test_basics(void) {
  cs_idset *s = cs_idset_create();
  CHECK(s != NULL);
  CHECK(!cs_idset_has(s, 0, 5));
  CHECK(!cs_idset_has(s, 7, 5)); /* a product never seen */
  CHECK_EQ_INT(cs_idset_add(s, 0, 5), 0);
  CHECK_EQ_INT(cs_idset_add(s, 1, 5), 0);
  CHECK(cs_idset_has(s, 0, 5));
  CHECK(cs_idset_has(s, 1, 5));
  CHECK(!cs_idset_has(s, 0, 6));
  CHECK(!cs_idset_has(s, 2, 5));
  /* Word edges: 63, 64, 127, 128 and a run across them. */
  for (int64_t id = 60; id <= 130; id++) CHECK_EQ_INT(cs_idset_add(s, 0, id), 0);
  CHECK_EQ_UINT(cs_idset_count(s), 73);
  cs_idset_del_run(s, 0, 63, 128);
  CHECK(cs_idset_has(s, 0, 62));
  CHECK(!cs_idset_has(s, 0, 63));
  CHECK(!cs_idset_has(s, 0, 64));
  CHECK(!cs_idset_has(s, 0, 127));
  CHECK(!cs_idset_has(s, 0, 128));
  CHECK(cs_idset_has(s, 0, 129));
  CHECK_EQ_UINT(cs_idset_count(s), 73 - 66);
  /* Negative ids, INT64 extremes, a jump of 2^40: the hash set. */
  CHECK_EQ_INT(cs_idset_add(s, 0, -3), 0);
  CHECK_EQ_INT(cs_idset_add(s, 0, INT64_MAX), 0);
  CHECK_EQ_INT(cs_idset_add(s, 0, INT64_MIN), 0);
  CHECK_EQ_INT(cs_idset_add(s, 0, (INT64_C(1) << 40) + 5), 0);
  CHECK(cs_idset_has(s, 0, -3));
  CHECK(cs_idset_has(s, 0, INT64_MAX));
  CHECK(cs_idset_has(s, 0, INT64_MIN));
  CHECK(cs_idset_has(s, 0, (INT64_C(1) << 40) + 5));
  CHECK(!cs_idset_has(s, 0, (INT64_C(1) << 40) + 4));
  cs_idset_del_run(s, 0, INT64_MAX, INT64_MAX);
  cs_idset_del_run(s, 0, INT64_MIN, INT64_MIN);
  CHECK(!cs_idset_has(s, 0, INT64_MAX));
  CHECK(!cs_idset_has(s, 0, INT64_MIN));
  CHECK(cs_idset_has(s, 0, -3));
  /* A run mixing bitmap and hash-set members. */
  cs_idset_del_run(s, 0, -3, 62);
  CHECK(!cs_idset_has(s, 0, -3));
  CHECK(!cs_idset_has(s, 0, 5));
  CHECK(!cs_idset_has(s, 0, 62));
  CHECK(cs_idset_has(s, 0, 129));
  CHECK(cs_idset_has(s, 1, 5));
  CHECK_EQ_UINT(cs_idset_count(s), 4); /* 0:129, 0:130, 0:2^40+5, 1:5 */
  cs_idset_destroy(s);
  cs_idset_destroy(NULL);
}

/* A window-engine-like workload: per product, ids mostly increasing with
 * some disorder, held in batches (windows) removed as runs, oldest first. */
static void test_random(int products, int64_t spread, int jumps) {
  cs_idset *s = cs_idset_create();
  ref r = {0};
  int64_t nextid[8];
  for (int p = 0; p < products; p++) nextid[p] = (int64_t)(next() % 1000000) - 500000;
  typedef struct held {
    uint32_t product;
    int64_t from, to;
  } held;
  held *runs = NULL;
  size_t nruns = 0, cap = 0, head = 0;
  for (int step = 0; step < 60000; step++) {
    uint32_t p = (uint32_t)(next() % (uint64_t)products);
    int64_t id;
    uint64_t pick = next() % 100;
    if (jumps && pick < 2)
      id = (int64_t)(next() >> 1) * (next() % 2 ? 1 : -1); /* anywhere */
    else if (pick < 20)
      id = nextid[p] - (int64_t)(next() % (uint64_t)spread); /* older */
    else
      id = nextid[p]++;
    int want = ref_has(&r, p, id);
    if (!CHECK_EQ_INT(cs_idset_has(s, p, id), want)) break;
    if (!want) {
      CHECK_EQ_INT(cs_idset_add(s, p, id), 0);
      ref_add(&r, p, id);
      if (nruns == cap) {
        cap = cap ? cap * 2 : 256;
        runs = realloc(runs, cap * sizeof *runs);
      }
      /* Consecutive ids of a product make one run, as in a window. */
      held *last = nruns > head ? &runs[nruns - 1] : NULL;
      if (last && last->product == p && id == last->to + 1)
        last->to = id;
      else
        runs[nruns++] = (held){p, id, id};
    }
    /* Forget the oldest runs now and then (windows emitted). */
    if (next() % 50 == 0) {
      size_t k = nruns - head > 400 ? (nruns - head) / 2 : 0;
      for (; k > 0; k--, head++) {
        cs_idset_del_run(s, runs[head].product, runs[head].from, runs[head].to);
        for (int64_t i = runs[head].from;; i++) {
          ref_del(&r, runs[head].product, i);
          if (i == runs[head].to) break;
        }
      }
    }
    if (step % 997 == 0) CHECK_EQ_UINT(cs_idset_count(s), r.n);
  }
  CHECK_EQ_UINT(cs_idset_count(s), r.n);
  for (size_t i = 0; i < r.n; i++) CHECK(cs_idset_has(s, r.v[i].product, r.v[i].id));
  free(runs);
  free(r.v);
  cs_idset_destroy(s);
}

/* Ids spread far wider than one bitmap may cover: still exact. */
static void test_wide(void) {
  cs_idset *s = cs_idset_create();
  int64_t step = (int64_t)CS_IDSET_MAX_SPAN / 3;
  for (int64_t i = 0; i < 12; i++) CHECK_EQ_INT(cs_idset_add(s, 2, i * step), 0);
  for (int64_t i = 0; i < 12; i++) {
    CHECK(cs_idset_has(s, 2, i * step));
    CHECK(!cs_idset_has(s, 2, i * step + 1));
  }
  for (int64_t i = 0; i < 12; i += 2) cs_idset_del_run(s, 2, i * step, i * step);
  for (int64_t i = 0; i < 12; i++) CHECK_EQ_INT(cs_idset_has(s, 2, i * step), (int)(i % 2));
  CHECK_EQ_UINT(cs_idset_count(s), 6);
  cs_idset_destroy(s);
}

int main(void) {
  test_basics();
  test_random(1, 50, 0);
  test_random(3, 3000, 0);
  test_random(5, 200, 1);
  test_wide();
  return CHECK_DONE();
}
