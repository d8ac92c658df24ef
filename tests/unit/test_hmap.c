/* cs_hmap against a plain reference (a table indexed by key number) under
 * random put/get/del, including delete-heavy churn that exercises the
 * backward-shift deletion, plus the map's structural invariants. */
#include "check.h"
#include "cs_hmap.h"

static uint64_t rng = 0x2545F4914F6CDD1Dull;
static uint64_t next(void) {
  rng ^= rng << 13;
  rng ^= rng >> 7;
  rng ^= rng << 17;
  return rng;
}

/* The key universe: NK (a, b) pairs; the reference says which are present
 * and with which value. */
enum { NK = 5000 };
static uint64_t key_a[NK], key_b[NK];
static uint64_t ref_val[NK];
static int ref_has[NK];
static size_t ref_len;

static void keys_small(void) {
  /* Dense small integers, like (window start, key id) pairs: many share a
   * or b. */
  for (int i = 0; i < NK; i++) {
    key_a[i] = (uint64_t)(i / 50);
    key_b[i] = (uint64_t)(i % 50);
  }
}

static void keys_wide(void) {
  for (int i = 0; i < NK; i++) {
    key_a[i] = next();
    key_b[i] = next();
  }
  /* extremes */
  key_a[0] = 0, key_b[0] = 0;
  key_a[1] = UINT64_MAX, key_b[1] = UINT64_MAX;
  key_a[2] = 0, key_b[2] = UINT64_MAX;
  key_a[3] = UINT64_MAX, key_b[3] = 0;
  key_a[4] = 1, key_b[4] = 0;
  key_a[5] = 0, key_b[5] = 1;
  /* (a, b) and (b, a) are different keys */
  key_a[6] = 12345, key_b[6] = 67890;
  key_a[7] = 67890, key_b[7] = 12345;
}

static void ref_reset(void) {
  memset(ref_has, 0, sizeof ref_has);
  memset(ref_val, 0, sizeof ref_val);
  ref_len = 0;
}

/* Full comparison: every key of the universe, and the map's structure. */
static int verify(const cs_hmap *m, const char *phase) {
  check_context_ = phase;
  int ok = 1;
  ok &= CHECK_EQ_UINT(m->len, ref_len);
  for (int i = 0; i < NK && ok; i++) {
    uint64_t *v = cs_hmap_get(m, key_a[i], key_b[i]);
    if (ref_has[i]) {
      ok &= CHECK(v != NULL) && CHECK_EQ_UINT(*v, ref_val[i]);
    } else {
      ok &= CHECK(v == NULL);
    }
  }
  if (m->cap) {
    ok &= CHECK((m->cap & (m->cap - 1)) == 0); /* power of two */
    ok &= CHECK(m->len * 4 <= m->cap * 3);     /* load <= 3/4 */
    size_t used = 0;
    for (size_t i = 0; i < m->cap && ok; i++) {
      const cs_hmap_slot *s = &m->slots[i];
      if (!s->used) continue;
      used++;
      /* every stored entry is found where it is (reachable, unique) */
      ok &= CHECK(cs_hmap_get(m, s->a, s->b) == &s->val);
    }
    ok &= CHECK_EQ_UINT(used, m->len);
  }
  check_context_ = NULL;
  return ok;
}

static int find_key(uint64_t a, uint64_t b) {
  for (int i = 0; i < NK; i++)
    if (key_a[i] == a && key_b[i] == b) return i;
  return -1;
}

/* Random operations; `del_pct` of them deletions, the rest puts and gets. */
static int run(cs_hmap *m, int ops, int del_pct, int put_pct, int key_range, const char *phase) {
  for (int op = 0; op < ops; op++) {
    int k = (int)(next() % (uint64_t)key_range);
    int r = (int)(next() % 100);
    if (r < del_pct) {
      int got = cs_hmap_del(m, key_a[k], key_b[k]);
      if (!CHECK_EQ_INT(got, ref_has[k])) return 0;
      if (ref_has[k]) ref_len--;
      ref_has[k] = 0;
    } else if (r < del_pct + put_pct) {
      uint64_t v = next();
      if (!CHECK_EQ_INT(cs_hmap_put(m, key_a[k], key_b[k], v), 0)) return 0;
      if (!ref_has[k]) ref_len++;
      ref_has[k] = 1;
      ref_val[k] = v;
    } else {
      uint64_t *v = cs_hmap_get(m, key_a[k], key_b[k]);
      if (ref_has[k]) {
        if (!CHECK(v != NULL) || !CHECK_EQ_UINT(*v, ref_val[k])) return 0;
        /* the pointer is writable and the write sticks */
        *v = ref_val[k] = next();
      } else if (!CHECK(v == NULL)) {
        return 0;
      }
    }
    if (!CHECK_EQ_UINT(m->len, ref_len)) return 0;
    if (op % 5000 == 4999 && !verify(m, phase)) return 0;
  }
  return verify(m, phase);
}

static void test_empty(void) {
  cs_hmap m;
  cs_hmap_init(&m);
  CHECK(cs_hmap_get(&m, 1, 2) == NULL);
  CHECK_EQ_INT(cs_hmap_del(&m, 1, 2), 0);
  CHECK_EQ_UINT(m.len, 0);
  CHECK_EQ_INT(cs_hmap_put(&m, 1, 2, 3), 0);
  CHECK_EQ_UINT(m.len, 1);
  uint64_t *v = cs_hmap_get(&m, 1, 2);
  if (CHECK(v != NULL)) CHECK_EQ_UINT(*v, 3);
  CHECK(cs_hmap_get(&m, 2, 1) == NULL);
  CHECK_EQ_INT(cs_hmap_put(&m, 1, 2, 4), 0); /* overwrite */
  CHECK_EQ_UINT(m.len, 1);
  v = cs_hmap_get(&m, 1, 2);
  if (CHECK(v != NULL)) CHECK_EQ_UINT(*v, 4);
  CHECK_EQ_INT(cs_hmap_del(&m, 1, 2), 1);
  CHECK_EQ_INT(cs_hmap_del(&m, 1, 2), 0);
  CHECK(cs_hmap_get(&m, 1, 2) == NULL);
  CHECK_EQ_UINT(m.len, 0);
  cs_hmap_free(&m);
  CHECK(m.slots == NULL);
  CHECK_EQ_UINT(m.cap, 0);
  CHECK_EQ_UINT(m.len, 0);
  cs_hmap_free(&m); /* twice is fine */
}

static void test_random_ops(void) {
  cs_hmap m;
  /* Small dense keys. */
  keys_small();
  ref_reset();
  cs_hmap_init(&m);
  CHECK(run(&m, 100000, 30, 45, NK, "small keys, mixed"));
  cs_hmap_free(&m);
  /* Wide random keys. */
  keys_wide();
  CHECK_EQ_INT(find_key(12345, 67890), 6);
  ref_reset();
  cs_hmap_init(&m);
  CHECK(run(&m, 100000, 30, 45, NK, "wide keys, mixed"));
  /* Then delete everything, in random order, checking as we go. */
  for (int left = (int)ref_len; left > 0;) {
    int k = (int)(next() % NK);
    if (!ref_has[k]) continue;
    if (!CHECK_EQ_INT(cs_hmap_del(&m, key_a[k], key_b[k]), 1)) break;
    ref_has[k] = 0;
    ref_len--;
    left--;
    if (left % 500 == 0 && !verify(&m, "drain")) break;
  }
  CHECK_EQ_UINT(m.len, 0);
  verify(&m, "drained");
  cs_hmap_free(&m);
}

static void test_churn(void) {
  /* Delete-heavy churn at a steady, small size (the window engine's open
   * windows and seen ids): the map must not grow, and deletions must keep
   * every probe chain intact. */
  cs_hmap m;
  keys_small();
  ref_reset();
  cs_hmap_init(&m);
  /* Fill to ~40 entries out of a 300-key range, then churn. */
  CHECK(run(&m, 200, 0, 100, 300, "fill"));
  size_t cap_after_fill = m.cap;
  CHECK(run(&m, 100000, 50, 50, 300, "churn 50/50"));
  CHECK(m.cap <= 512); /* bounded by the live size (<= 300 keys), not the number of operations */
  CHECK(run(&m, 100000, 70, 30, 300, "churn 70/30"));
  size_t cap_churn = m.cap;
  CHECK(cap_churn <= 512);
  (void)cap_after_fill;

  /* A sliding window of keys: insert key i, delete key i - 40 — every
   * deletion has a full cluster around it. */
  cs_hmap_free(&m);
  keys_wide();
  ref_reset();
  cs_hmap_init(&m);
  for (int i = 0; i < 200000; i++) {
    int k = i % NK, d = (i + NK - 40) % NK;
    if (!CHECK_EQ_INT(cs_hmap_put(&m, key_a[k], key_b[k], (uint64_t)i), 0)) break;
    if (!ref_has[k]) ref_len++;
    ref_has[k] = 1;
    ref_val[k] = (uint64_t)i;
    if (i >= 40) {
      if (!CHECK_EQ_INT(cs_hmap_del(&m, key_a[d], key_b[d]), 1)) break;
      ref_has[d] = 0;
      ref_len--;
    }
    if (!CHECK_EQ_UINT(m.len, ref_len)) break;
    if (i % 10007 == 0 && !verify(&m, "sliding")) break;
  }
  CHECK_EQ_UINT(m.len, 40);
  CHECK(m.cap <= 64);
  verify(&m, "sliding end");
  cs_hmap_free(&m);

  /* Same with dense keys that share components (clustered hashes). */
  keys_small();
  ref_reset();
  cs_hmap_init(&m);
  for (int i = 0; i < 200000; i++) {
    int k = i % NK, d = (i + NK - 45) % NK;
    cs_hmap_put(&m, key_a[k], key_b[k], (uint64_t)i);
    if (!ref_has[k]) ref_len++;
    ref_has[k] = 1;
    ref_val[k] = (uint64_t)i;
    if (i >= 45) {
      if (!CHECK_EQ_INT(cs_hmap_del(&m, key_a[d], key_b[d]), 1)) break;
      ref_has[d] = 0;
      ref_len--;
    }
    if (i % 9973 == 0 && !verify(&m, "sliding dense")) break;
  }
  verify(&m, "sliding dense end");
  CHECK(m.cap <= 64);
  cs_hmap_free(&m);
}

static void test_grow(void) {
  /* Grow through many doublings; everything stays findable. */
  cs_hmap m;
  cs_hmap_init(&m);
  const uint64_t N = 300000;
  for (uint64_t i = 0; i < N; i++)
    if (!CHECK_EQ_INT(cs_hmap_put(&m, i, i * 7, i + 1), 0)) break;
  CHECK_EQ_UINT(m.len, N);
  CHECK(m.len * 4 <= m.cap * 3);
  int bad = 0;
  for (uint64_t i = 0; i < N; i++) {
    uint64_t *v = cs_hmap_get(&m, i, i * 7);
    if (!v || *v != i + 1) bad++;
    if (cs_hmap_get(&m, i, i * 7 + 1)) bad++;
  }
  CHECK_EQ_INT(bad, 0);
  for (uint64_t i = 0; i < N; i += 2) bad += cs_hmap_del(&m, i, i * 7) != 1;
  CHECK_EQ_INT(bad, 0);
  CHECK_EQ_UINT(m.len, N / 2);
  for (uint64_t i = 0; i < N; i++) {
    uint64_t *v = cs_hmap_get(&m, i, i * 7);
    if (i % 2 == 0 ? v != NULL : (!v || *v != i + 1)) bad++;
  }
  CHECK_EQ_INT(bad, 0);
  cs_hmap_free(&m);
}

int main(void) {
  test_empty();
  test_random_ops();
  test_churn();
  test_grow();
  return CHECK_DONE();
}
