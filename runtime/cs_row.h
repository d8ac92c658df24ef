/* cs_row: the JSON form of a window row (the data contract written by the
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

#endif
