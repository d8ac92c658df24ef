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
} cs_hist;

void cs_hist_add(cs_hist *h, int64_t us); /* negative values count as 0 */
/* The q-quantile (0 < q <= 1), as the upper bound of its bucket, µs;
 * 0 when empty. */
int64_t cs_hist_quantile(const cs_hist *h, double q);

#endif
