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
 * The table written may also be a Distributed table over such tables (a
 * sharded cluster): its engine arguments are parsed here (ch_distributed)
 * and its sharding key must depend on product_id alone, so that every
 * version of a window lands on one shard, where FINAL replaces it.
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
 * version column, ordered by the schema's key. A Distributed table is
 * refused (see ch_schema_check_engine_dist). */
int ch_schema_check_engine(const ch_schema *s, const char *tsv, size_t len, cs_err *err);

/* ------------------------------------------------ Distributed tables */
/* The arguments of Distributed(cluster, database, table[, sharding_key[,
 * policy]]), quotes removed. `db` may be an expression such as
 * currentDatabase(): the caller decides what it means. */
typedef struct ch_distributed {
  char cluster[256], db[256], table[256];
  char key[1024]; /* the sharding key as written; "" when there is none */
} ch_distributed;

/* Parses system.tables.engine_full of a Distributed table: 18.16 writes
 * "Distributed(two, d, t, cityHash64(product_id))", newer servers quote
 * the names ('two', 'd', 't'); SETTINGS after the arguments are ignored.
 * 0, or -1 with a message. */
int ch_distributed_parse(const char *engine_full, ch_distributed *d, cs_err *err);

/* Whether a sharding key keeps every row of a product on one shard: its
 * only column must be product_id (cityHash64(product_id),
 * murmurHash3_32(product_id) % 4, ...). 0, or -1 with a message naming the
 * column that is not product_id, or saying that none is product_id (rand(),
 * a constant, no key at all). */
int ch_sharding_key_check(const char *key, cs_err *err);

/* Like ch_schema_check_engine, but a Distributed table is accepted when its
 * arguments parse and its sharding key passes ch_sharding_key_check: then
 * *d is filled and 1 is returned (its target table is still to be checked,
 * by the caller). 0: a fitting *ReplacingMergeTree; -1: refused. */
int ch_schema_check_engine_dist(const ch_schema *s, const char *tsv, size_t len, ch_distributed *d, cs_err *err);

/* SELECT uniqExact(shard_num), countIf(is_local) FROM system.clusters WHERE
 * cluster = '<cluster>': the shards, and whether this server is one. */
void ch_sql_cluster(const char *cluster, cs_buf *out);
/* The ch_sql_engine query over every shard of the cluster (the cluster()
 * table function: one replica per shard answers), one line per shard that
 * has the table. */
void ch_sql_engine_on_shards(const ch_schema *s, const char *cluster, cs_buf *out);

/* The key columns, the partition expression, as text. */
const char *ch_schema_order_by(ch_kind kind);

#endif
