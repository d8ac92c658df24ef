/* cs_row: the JSON forms of the records: a window row (the data contract written by the
 * JSON-lines sink and read by tests and tools):
 *   {"product_id":"BTC-USD","window_start":"2026-11-25T10:00:00Z",
 *    "window_end":"2026-11-25T10:00:30Z","trades":12,"avg_price":...,
 *    "vwap":...,"open":...,"high":...,"low":...,"close":...,"volume":...,
 *    "buy_volume":...,"sell_volume":...}
 * followed by any Lua aggregates. Aggregates not selected are left out.
 * Uses cs_buf and cs_time. */
#ifndef CS_ROW_H
#define CS_ROW_H

#include "cs_buf.h"
#include "cs_record.h"

/* Appends the row as one JSON object (no newline). */
void cs_row_to_json(const cs_row *row, cs_buf *out);

/* The trade record, version 1 (what cs.jsonl and the Kafka sink write for
 * a pipeline without a window):
 *   {"v":1,"exchange":"coinbase","product_id":"BTC-USD","trade_id":865127782,
 *    "price":"116827.85","size":"0.00004147","taker_side":"sell",
 *    "time":"2025-08-22T20:11:30.012637Z","sequence":110614077300,
 *    "recv_time":"2026-11-25T10:00:00.123456Z"}
 * price, size and time exactly as received; sequence and recv_time are null
 * when unknown. */
void cs_trade_to_json(const cs_trade *t, cs_buf *out);

#endif
