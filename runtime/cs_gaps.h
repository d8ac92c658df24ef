/* cs_gaps: missing trades, per product.
 *
 * Coinbase trade ids are consecutive per product, so a jump from id A to
 * id B > A+1 leaves B-A-1 ids missing, and a heartbeat's last_trade_id
 * beyond the last id seen does too. Trades arrive out of order, so a
 * missing id is only *pending* at first: it becomes a gap once the event
 * clock passes the deadline the caller gives (the end of the window of the
 * trade or heartbeat that revealed it); an id that arrives before then
 * shrinks the pending range. Only valid trades should be fed in.
 * Uses cs_intern. Single-threaded. */
#ifndef CS_GAPS_H
#define CS_GAPS_H

#include <stddef.h>
#include <stdint.h>

typedef struct cs_gaps cs_gaps;

/* Called once per declared gap: ids from..to (inclusive) of product. */
typedef void (*cs_gaps_fn)(void *ud, const char *product, int64_t from, int64_t to);

cs_gaps *cs_gaps_create(void);
void cs_gaps_destroy(cs_gaps *g); /* NULL is a no-op */

/* Ids further than this beyond the newest one are not believed (a bogus
 * id): such a trade or heartbeat is left out of gap tracking (return 2). */
#define CS_GAPS_MAX_JUMP 100000000u

/* A valid trade. Returns 0, 2 for an id left out (CS_GAPS_MAX_JUMP), -1
 * when out of memory. */
int cs_gaps_trade(cs_gaps *g, const char *product, size_t len, int64_t trade_id, int64_t deadline_us);
/* The same, also counting the trade and keeping the product's newest
 * trade time, for metrics (a few stores: it is on every trade's path). */
int cs_gaps_trade_at(cs_gaps *g, const char *product, size_t len, int64_t trade_id, int64_t time_us,
                     int64_t deadline_us);
/* A heartbeat: the feed's last trade id for the product so far. */
int cs_gaps_heartbeat(cs_gaps *g, const char *product, size_t len, int64_t last_trade_id, int64_t deadline_us);
/* Declares every pending range whose deadline <= clock_us. */
void cs_gaps_expire(cs_gaps *g, int64_t clock_us, cs_gaps_fn fn, void *ud);
/* Declares everything still pending (end of input). */
void cs_gaps_flush(cs_gaps *g, cs_gaps_fn fn, void *ud);
/* Missing ids still pending (not yet declared). */
uint64_t cs_gaps_pending(const cs_gaps *g);

/* What is known of one product, for metrics (products in order of first
 * appearance, 0 <= i < cs_gaps_product_count). */
typedef struct cs_gaps_product {
  const char *name;     /* lives as long as the cs_gaps */
  uint64_t trades;      /* valid trades seen (cs_gaps_trade_at) */
  int64_t last_time_us; /* newest trade's event time; INT64_MIN when none */
  int64_t last_id;      /* highest trade id seen or announced; -1 when none */
  uint64_t gaps, missing; /* gaps declared and the ids they miss */
} cs_gaps_product;
size_t cs_gaps_product_count(const cs_gaps *g);
void cs_gaps_product_info(const cs_gaps *g, size_t i, cs_gaps_product *out);

#endif
