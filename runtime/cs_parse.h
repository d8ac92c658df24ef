/* cs_parse: turns one raw feed message (a JSON line) into trades, and
 * says what else the message was.
 *
 * Knows both Coinbase feeds, told apart by shape:
 *  - Exchange (`type`): `match` / `last_match` are trades; `heartbeat`,
 *    `subscriptions` and `error` are recognised; anything else is OTHER.
 *  - Advanced Trade (`channel`): `market_trades` batches several trades
 *    (newest first in the message; returned oldest first, snapshot trades
 *    marked like last_match); `heartbeats`, `subscriptions` are recognised.
 *  - cstream's own trade record ({"v":1,...}, cs_row.h) is a trade too.
 * Validation is strict (README, "Trades"): a message that looks like a
 * trade but has a bad field is CS_PARSE_INVALID with a reason naming the
 * field. In a batch, bad trades are counted in cs_msg_info.invalid_trades
 * and the good ones returned. Uses cs_json (simdjson), cs_time, cs_decimal.
 *
 * `side` on both feeds is the maker's side; trades carry the taker's side
 * (Exchange `sell` / Advanced `SELL` = a taker buy).
 *
 * The parser owns what it returns: trades, their strings and the message
 * info stay valid until the next cs_parse_line on the same parser. */
#ifndef CS_PARSE_H
#define CS_PARSE_H

#include <stdbool.h>
#include <stddef.h>

#include "cs_record.h"

typedef enum { CS_PARSE_TRADES = 0, CS_PARSE_OTHER = 1, CS_PARSE_INVALID = -1 } cs_parse_result;

typedef enum {
  CS_MSG_OTHER = 0,
  CS_MSG_TRADES,
  CS_MSG_HEARTBEAT,
  CS_MSG_SUBSCRIPTIONS,
  CS_MSG_ERROR
} cs_msg_kind;

/* What the last message was, beyond its trades. */
typedef struct cs_msg_info {
  cs_msg_kind kind;
  int has_time;
  int64_t time_us;          /* the feed's clock in the message (time / timestamp) */
  const char *product_id;   /* heartbeat (Exchange): NUL-terminated */
  int64_t last_trade_id;    /* heartbeat (Exchange), -1 when absent */
  const char *message;      /* error: NUL-terminated, may be "" */
  const char *reason;       /* error: NUL-terminated, may be "" */
  uint32_t invalid_trades;  /* trades of a batch that were rejected */
  const char *invalid_reason;
} cs_msg_info;

typedef struct cs_parser cs_parser;

cs_parser *cs_parser_create(void);
void cs_parser_destroy(cs_parser *p); /* NULL is a no-op */

/* `padded`: CS_JSON_PADDING readable bytes follow line+len.
 * On CS_PARSE_TRADES, *trades and *n give the trades in the message (oldest
 * first). On CS_PARSE_INVALID, *why names what was wrong (static or owned by
 * the parser). */
cs_parse_result cs_parse_line(cs_parser *p, const char *line, size_t len, bool padded, const cs_trade **trades,
                              size_t *n, const char **why);

/* The last message's info (valid after any result but INVALID). */
const cs_msg_info *cs_parse_info(const cs_parser *p);

/* The `type` (or Advanced Trade `channel`) of the last message parsed as
 * CS_PARSE_OTHER, NUL-terminated and cut to 31 bytes, or "" when none. */
const char *cs_parse_last_type(const cs_parser *p);

#endif
