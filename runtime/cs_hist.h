/* cs_hist: a fixed-size latency histogram (microseconds), log-linear: four
 * buckets per power of two, so a quantile is known within about 19 %.
 * Adding is a few instructions and never allocates. For summaries and,
 * later, metrics. */
#ifndef CS_HIST_H
#define CS_HIST_H

#include <stdint.h>

#define CS_HIST_BUCKETS 160 /* up to 2^40 µs */

typedef struct cs_hist {
  uint64_t count;
  uint64_t b[CS_HIST_BUCKETS];
  uint64_t sum; /* of the values added (negative ones as 0), µs: a metric's _sum */
} cs_hist;

void cs_hist_add(cs_hist *h, int64_t us); /* negative values count as 0 */
/* The q-quantile (0 < q <= 1), as the upper bound of its bucket, µs;
 * 0 when empty. */
int64_t cs_hist_quantile(const cs_hist *h, double q);
/* How many values were <= (2^k - 1) µs, i.e. < 2^k µs, exactly (bucket
 * edges fall on powers of two); 0 <= k <= 40 (values above 2^41 µs share
 * the last bucket). For cumulative `le` buckets. */
uint64_t cs_hist_count_below_pow2(const cs_hist *h, int k);

#endif
