/* cs_record: the two records that flow through a pipeline.
 *
 * cs_trade is one normalised trade, whatever the feed. Its strings point
 * into the parser's buffers: a trade is valid only during the call that
 * hands it over; whoever keeps it must copy. cs_row is one emitted window
 * (the data contract of sinks and the ClickHouse table). */
#ifndef CS_RECORD_H
#define CS_RECORD_H

#include <stdint.h>

typedef enum { CS_SIDE_BUY = 1, CS_SIDE_SELL = 2 } cs_side;

typedef struct cs_trade {
  int64_t time_us;  /* event time, µs since the epoch */
  int64_t trade_id; /* unique per product */
  int64_t sequence; /* feed sequence number, -1 when absent */
  int64_t recv_us;  /* when cstream received it (wall clock, µs), 0 when unknown (replays) */
  double price, size;
  uint8_t taker_side; /* cs_side: who took liquidity (maker side inverted) */
  uint8_t last_match; /* 1 for a replayed `last_match` / snapshot trade */
  uint16_t product_len;
  uint16_t price_len, size_len, time_len;
  const char *product_id;
  const char *price_str, *size_str, *time_str; /* exactly as received */
  const char *exchange; /* "coinbase"; static */
  /* Only in a pipeline with a sink that forwards exchange frames
   * (cs_sink.frames): the first trade of a frame handed to the sinks
   * carries the frame exactly as received (frame, frame_len; not
   * NUL-terminated) and frame_trades, how many of the batch's trades came
   * in that frame, itself included; the others follow it in the same batch
   * with frame NULL and frame_trades 0. Otherwise NULL and 0. */
  const char *frame;
  uint32_t frame_len, frame_trades;
} cs_trade;

/* A deep copy of a trade in one allocation (strings and frame included);
 * free() it. */
cs_trade *cs_trade_clone(const cs_trade *t);

/* Which aggregates a row carries (cs.tumbling{aggregates=...}). */
enum {
  CS_AGG_TRADES = 1 << 0,
  CS_AGG_AVG_PRICE = 1 << 1,
  CS_AGG_VWAP = 1 << 2,
  CS_AGG_OPEN = 1 << 3,
  CS_AGG_HIGH = 1 << 4,
  CS_AGG_LOW = 1 << 5,
  CS_AGG_CLOSE = 1 << 6,
  CS_AGG_VOLUME = 1 << 7,
  CS_AGG_BUY_VOLUME = 1 << 8,
  CS_AGG_SELL_VOLUME = 1 << 9,
  CS_AGG_ALL = (1 << 10) - 1
};
#define CS_AGG_COUNT 10
/* Names in row order, index i is bit 1 << i. */
extern const char *const cs_agg_names[CS_AGG_COUNT];

typedef struct cs_row {
  const char *product_id; /* the window key; lives as long as the process */
  int64_t window_start_us, window_end_us;
  uint64_t trades;
  double avg_price, vwap, open, high, low, close, volume, buy_volume, sell_volume;
  uint32_t aggs;        /* CS_AGG_* bits to output */
  uint32_t revision;    /* 0 on first emission, +1 each time a late trade re-emits it */
  const char *ext_json; /* extra members from Lua aggregates ("\"a\":1,\"b\":2") or NULL;
                           owned by whoever owns the row */
} cs_row;

#endif
