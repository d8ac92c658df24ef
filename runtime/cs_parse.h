/* cs_parse: turns one raw feed message (a JSON line) into trades.
 *
 * Knows the Coinbase Exchange `match`/`last_match` messages. Validation is
 * strict (README, "Trades"): a message that looks like a trade but has a
 * bad field is CS_PARSE_INVALID with a reason naming the field; any other
 * well-formed JSON object (subscriptions, heartbeat, ticker, ...) is
 * CS_PARSE_OTHER. Uses cs_json (simdjson), cs_time and cs_decimal.
 *
 * The parser owns the trades it returns; they and their strings stay valid
 * until the next cs_parse_line on the same parser. */
#ifndef CS_PARSE_H
#define CS_PARSE_H

#include <stdbool.h>
#include <stddef.h>

#include "cs_record.h"

typedef enum { CS_PARSE_TRADES = 0, CS_PARSE_OTHER = 1, CS_PARSE_INVALID = -1 } cs_parse_result;

typedef struct cs_parser cs_parser;

cs_parser *cs_parser_create(void);
void cs_parser_destroy(cs_parser *p); /* NULL is a no-op */

/* `padded`: CS_JSON_PADDING readable bytes follow line+len.
 * On CS_PARSE_TRADES, *trades and *n give the trades in the message (oldest
 * first). On CS_PARSE_INVALID, *why names what was wrong (static or owned by
 * the parser). On CS_PARSE_OTHER, *type is the message's `type` (or NULL). */
cs_parse_result cs_parse_line(cs_parser *p, const char *line, size_t len, bool padded, const cs_trade **trades,
                              size_t *n, const char **why);

/* The `type` of the last message parsed as CS_PARSE_OTHER, NUL-terminated
 * and cut to 31 bytes, or "" when it had none. */
const char *cs_parse_last_type(const cs_parser *p);

#endif
