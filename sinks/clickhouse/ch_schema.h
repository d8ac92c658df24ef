/* ch_schema: the ClickHouse tables of the cs.clickhouse sink — which
 * columns, which DDL for which server version, and whether an existing
 * table fits.
 *
 * Two kinds of table: window rows (one row per emitted window, key
 * (product_id, window_start)) and raw trades (key (product_id, time_us,
 * trade_id)). Both are ReplacingMergeTree(version): a row inserted again
 * with the same key and a higher version replaces the older one at merge
 * time (read with FINAL, or through the argMax view made here).
 *
 * Pure functions over strings: no I/O, no libcurl; unit-tested in
 * tests/unit/test_clickhouse.c. Uses cs_buf and cs_err. A ch_schema owns its
 * strings; ch_schema_free releases them (a zeroed schema is fine to free). */
#ifndef CH_SCHEMA_H
#define CH_SCHEMA_H

#include <stddef.h>

#include "cs_buf.h"
#include "cs_err.h"

typedef struct ch_version {
  int major, minor, patch;
} ch_version;

/* "18.16.1", "23.8.2.7" (extra parts ignored). Returns 0, or -1 when the
 * text does not start with MAJOR.MINOR. */
int ch_version_parse(const char *s, size_t len, ch_version *v);
int ch_version_at_least(const ch_version *v, int major, int minor);

/* What the server offers beyond 18.16 (Debian 12), by version. */
typedef struct ch_features {
  int low_cardinality; /* LowCardinality(String) without an experimental flag (>= 20.1) */
  int datetime64;      /* DateTime64 and fromUnixTimestamp64Micro (>= 20.5) */
  int dedup_token;     /* the insert_deduplication_token setting (>= 22.2) */
} ch_features;
void ch_features_of(const ch_version *v, ch_features *f);

typedef enum { CH_KIND_WINDOWS = 0, CH_KIND_TRADES = 1 } ch_kind;

typedef struct ch_column {
  char *name;
  char *type; /* as 18.16 writes it in system.columns */
  int extra;  /* 1: from extra_columns (user aggregates) */
} ch_column;

typedef struct ch_schema {
  ch_kind kind;
  char *db, *table, *view; /* view NULL: none */
  ch_column *cols;         /* insert order; the version column is last */
  size_t ncols;
} ch_schema;

/* `extra`: "name Type" definitions of columns for user aggregates (window
 * rows only). `view`: NULL for the default name (<table>_latest), "" for no
 * view. Names must be plain identifiers ([A-Za-z_][A-Za-z0-9_]*). */
int ch_schema_init(ch_schema *s, ch_kind kind, const char *db, const char *table, const char *view, char *const *extra,
                   size_t nextra, cs_err *err);
void ch_schema_free(ch_schema *s);
int ch_schema_has_column(const ch_schema *s, const char *name, size_t len);

/* SQL texts, appended to out. */
void ch_sql_create_database(const ch_schema *s, cs_buf *out);
void ch_sql_create_table(const ch_schema *s, const ch_features *f, cs_buf *out);
void ch_sql_create_view(const ch_schema *s, cs_buf *out);
/* SELECT name, type FROM system.columns ... FORMAT TabSeparated */
void ch_sql_columns(const ch_schema *s, cs_buf *out);
/* SELECT engine, engine_full, sorting_key FROM system.tables ... */
void ch_sql_engine(const ch_schema *s, cs_buf *out);
/* INSERT INTO `db`.`table` (columns...) FORMAT <format> */
void ch_sql_insert(const ch_schema *s, const char *format, cs_buf *out);

/* Checks the answer of ch_sql_columns (TSV "name\ttype" lines) against the
 * schema: every column present with a compatible type (String and
 * LowCardinality(String) are interchangeable; DateTime in any time zone).
 * Extra columns in the table are fine. 0, or -1 with a message naming the
 * first missing or mistyped column; an empty answer: the table is missing. */
int ch_schema_check_columns(const ch_schema *s, const char *tsv, size_t len, cs_err *err);
/* Checks the answer of ch_sql_engine: a *ReplacingMergeTree with the
 * version column, ordered by the schema's key. */
int ch_schema_check_engine(const ch_schema *s, const char *tsv, size_t len, cs_err *err);

/* The key columns, the partition expression, as text. */
const char *ch_schema_order_by(ch_kind kind);

#endif
