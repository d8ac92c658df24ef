#include "cs_hist.h"

static int bucket(uint64_t v) {
  if (v < 4) return (int)v;
  int msb = 63 - __builtin_clzll(v);          /* >= 2 */
  int sub = (int)((v >> (msb - 2)) & 3);      /* the two bits after the top one */
  int i = 4 * (msb - 1) + sub;
  return i < CS_HIST_BUCKETS ? i : CS_HIST_BUCKETS - 1;
}

/* The largest value that falls in bucket i. */
static int64_t upper(int i) {
  if (i < 4) return i;
  int msb = i / 4 + 1, sub = i % 4;
  return (int64_t)(((uint64_t)(4 + sub + 1) << (msb - 2)) - 1);
}

void cs_hist_add(cs_hist *h, int64_t us) {
  uint64_t v = us < 0 ? 0 : (uint64_t)us;
  h->b[bucket(v)]++;
  h->count++;
  h->sum += v;
}

uint64_t cs_hist_count_below_pow2(const cs_hist *h, int k) {
  if (k < 0) return 0;
  uint64_t limit = (UINT64_C(1) << k) - 1, n = 0;
  for (int i = 0; i < CS_HIST_BUCKETS && (uint64_t)upper(i) <= limit; i++) n += h->b[i];
  return n;
}

int64_t cs_hist_quantile(const cs_hist *h, double q) {
  if (!h->count) return 0;
  uint64_t rank = (uint64_t)(q * (double)h->count);
  if (rank == 0) rank = 1;
  uint64_t seen = 0;
  for (int i = 0; i < CS_HIST_BUCKETS; i++) {
    seen += h->b[i];
    if (seen >= rank) return upper(i);
  }
  return upper(CS_HIST_BUCKETS - 1);
}
