/* ch_wire: what the cs.clickhouse sink sends and what it makes of the
 * answers — rows in JSONEachRow and RowBinary, the checks a row must pass
 * before it is sent, ClickHouse's error answers and their classification.
 *
 * Errors: 18.16 answers an error with HTTP 4xx/5xx and a body
 * "Code: N, e.displayText() = DB::Exception: ...,  e.what() = ..."; newer
 * servers write "Code: N. DB::Exception: ..." and also send the code in the
 * X-ClickHouse-Exception-Code header. An error can also follow a 200 status
 * line when the server had started answering (a body that ends with such a
 * text), so a 200 is a success only when its body is not an error.
 *
 * Pure functions, no I/O; unit-tested in tests/unit/test_clickhouse.c.
 * Uses cs_buf, cs_record, cs_time and cs_http's transport kinds. */
#ifndef CH_WIRE_H
#define CH_WIRE_H

#include <stddef.h>
#include <stdint.h>

#include "cs_buf.h"
#include "cs_http.h"
#include "cs_record.h"

/* What to do about a failed request. */
typedef enum {
  CH_RETRY = 1, /* transient (network, timeout, overload, too many parts, unknown): same rows again later */
  CH_ROW,       /* the data was refused (parse/type error): split the batch, dead-letter the row */
  CH_AUTH,      /* credentials or permissions refused: permanent */
  CH_FATAL      /* anything that will not fix itself: schema, syntax, TLS, configuration */
} ch_class;

typedef struct ch_error {
  int code;    /* ClickHouse error code; 0 when the answer had none */
  long status; /* HTTP status; 0 when no answer arrived */
  long row;    /* "(at row N)" of an insert, 1-based; 0 when not given */
  ch_class cls;
  char msg[1024]; /* one line: the server's message or the transport error */
} ch_error;

/* Returns 0 when the answer is a success. Otherwise fills *e (code, row,
 * class, one-line message) and returns -1. `hdr_code`: the value of the
 * X-ClickHouse-Exception-Code header, or NULL. */
int ch_error_from_answer(long status, const char *body, size_t len, const char *hdr_code, ch_error *e);
/* Fills *e for a request that got no HTTP answer. */
void ch_error_from_transport(cs_http_transport t, const char *what, ch_error *e);
/* The class of a ClickHouse error code (0: none, classified by status). */
ch_class ch_error_class(int code, long status, const char *msg);
const char *ch_class_name(ch_class c);

/* Replaces every occurrence of `secret` (when non-empty) in s by "***". */
void ch_scrub(char *s, const char *secret);

/* Checks a record before it is sent; 0, or -1 with the reason in why:
 * values ClickHouse would store wrongly without an error (NaN and
 * infinities — 18.16 reads them, or JSON null, as nan/inf/0; times outside
 * DateTime's 1970..2106 range, which it wraps around). */
int ch_row_check(const cs_row *row, char *why, size_t size);
int ch_trade_check(const cs_trade *t, char *why, size_t size);

/* One JSONEachRow line (with its "\n") for the sink's columns: window
 * times as epoch seconds, the row's selected aggregates, its user
 * aggregates (ext_json, as they are), then the version. */
void ch_row_json(const cs_row *row, uint64_t version, cs_buf *out);
void ch_trade_json(const cs_trade *t, uint64_t version, cs_buf *out);
/* One RowBinary row in the table's column order (window rows: without
 * user aggregates; aggregates not selected are 0). RowBinary carries the
 * exact doubles: 18.16 parses some JSON decimals 1 ulp off. */
void ch_row_rowbinary(const cs_row *row, uint64_t version, cs_buf *out);
void ch_trade_rowbinary(const cs_trade *t, uint64_t version, cs_buf *out);
/* Decode one RowBinary row back into its JSONEachRow object (no newline),
 * for the dead-letter file. Return 0, or -1 when malformed. */
int ch_row_rowbinary_to_json(const char *p, size_t len, cs_buf *out);
int ch_trade_rowbinary_to_json(const char *p, size_t len, cs_buf *out);

/* Appends s percent-encoded for a URL query string. */
void ch_url_encode(cs_buf *out, const char *s, size_t len);

#endif
