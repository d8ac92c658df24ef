#include "ch_schema.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define VERSION_COL "version"

typedef struct coldef {
  const char *name, *type;
} coldef;

static const coldef window_cols[] = {{"product_id", "String"},
                                     {"window_start", "DateTime('UTC')"},
                                     {"window_end", "DateTime('UTC')"},
                                     {"trades", "UInt64"},
                                     {"avg_price", "Float64"},
                                     {"vwap", "Float64"},
                                     {"open", "Float64"},
                                     {"high", "Float64"},
                                     {"low", "Float64"},
                                     {"close", "Float64"},
                                     {"volume", "Float64"},
                                     {"buy_volume", "Float64"},
                                     {"sell_volume", "Float64"},
                                     {NULL, NULL}};

static const coldef trade_cols[] = {{"exchange", "String"},
                                    {"product_id", "String"},
                                    {"trade_id", "Int64"},
                                    {"time_us", "Int64"},
                                    {"price", "Float64"},
                                    {"size", "Float64"},
                                    {"taker_side", "Enum8('buy' = 1, 'sell' = 2)"},
                                    {"sequence", "Int64"},
                                    {"recv_time_us", "Int64"},
                                    {"last_match", "UInt8"},
                                    {NULL, NULL}};

const char *ch_schema_order_by(ch_kind kind) {
  return kind == CH_KIND_WINDOWS ? "product_id, window_start" : "product_id, time_us, trade_id";
}

static const char *partition_by(ch_kind kind) {
  return kind == CH_KIND_WINDOWS ? "toYYYYMM(window_start)" : "toYYYYMM(toDateTime(intDiv(time_us, 1000000)))";
}

/* ------------------------------------------------------------- versions */
int ch_version_parse(const char *s, size_t len, ch_version *v) {
  int part[3] = {0, 0, 0}, k = 0;
  size_t i = 0;
  while (i < len && isspace((unsigned char)s[i])) i++;
  for (; k < 3; k++) {
    if (i >= len || !isdigit((unsigned char)s[i])) break;
    long x = 0;
    while (i < len && isdigit((unsigned char)s[i]) && x < 1000000) x = x * 10 + (s[i++] - '0');
    part[k] = (int)x;
    if (i >= len || s[i] != '.') {
      k++;
      break;
    }
    i++;
  }
  if (k < 2) return -1;
  v->major = part[0];
  v->minor = part[1];
  v->patch = part[2];
  return 0;
}

int ch_version_at_least(const ch_version *v, int major, int minor) {
  return v->major > major || (v->major == major && v->minor >= minor);
}

void ch_features_of(const ch_version *v, ch_features *f) {
  memset(f, 0, sizeof *f);
  f->low_cardinality = ch_version_at_least(v, 20, 1);
  f->datetime64 = ch_version_at_least(v, 20, 5);
  f->dedup_token = ch_version_at_least(v, 22, 2);
}

/* --------------------------------------------------------------- schema */
static int is_ident(const char *s, size_t n) {
  if (n == 0 || n > 200 || !(isalpha((unsigned char)s[0]) || s[0] == '_')) return 0;
  for (size_t i = 1; i < n; i++)
    if (!(isalnum((unsigned char)s[i]) || s[i] == '_')) return 0;
  return 1;
}

static char *dupn(const char *s, size_t n) {
  char *d = malloc(n + 1);
  if (d) {
    memcpy(d, s, n);
    d[n] = 0;
  }
  return d;
}

static int add_col(ch_schema *s, const char *name, size_t nl, const char *type, size_t tl, int extra) {
  ch_column *c = &s->cols[s->ncols];
  if (!(c->name = dupn(name, nl)) || !(c->type = dupn(type, tl))) {
    free(c->name);
    c->name = NULL;
    return -1;
  }
  c->extra = extra;
  s->ncols++;
  return 0;
}

int ch_schema_has_column(const ch_schema *s, const char *name, size_t len) {
  for (size_t i = 0; i < s->ncols; i++)
    if (strlen(s->cols[i].name) == len && memcmp(s->cols[i].name, name, len) == 0) return 1;
  return 0;
}

int ch_schema_init(ch_schema *s, ch_kind kind, const char *db, const char *table, const char *view, char *const *extra,
                   size_t nextra, cs_err *err) {
  memset(s, 0, sizeof *s);
  s->kind = kind;
  if (!is_ident(db, strlen(db)))
    return cs_err_set(err, "database '%s' is not a plain name ([A-Za-z_][A-Za-z0-9_]*)", db);
  if (!is_ident(table, strlen(table)))
    return cs_err_set(err, "table '%s' is not a plain name ([A-Za-z_][A-Za-z0-9_]*)", table);
  if (view && view[0] && !is_ident(view, strlen(view)))
    return cs_err_set(err, "view '%s' is not a plain name ([A-Za-z_][A-Za-z0-9_]*)", view);
  if (kind == CH_KIND_TRADES && nextra)
    return cs_err_set(err, "extra_columns are for window rows (user aggregates); this pipeline writes trades");
  const coldef *defs = kind == CH_KIND_WINDOWS ? window_cols : trade_cols;
  size_t nb = 0;
  while (defs[nb].name) nb++;
  if (!(s->cols = calloc(nb + nextra + 1, sizeof *s->cols))) goto oom;
  if (!(s->db = strdup(db)) || !(s->table = strdup(table))) goto oom;
  if (!view) {
    size_t tl = strlen(table);
    if (!(s->view = malloc(tl + 8))) goto oom;
    memcpy(s->view, table, tl);
    memcpy(s->view + tl, "_latest", 8);
  } else if (view[0]) {
    if (!(s->view = strdup(view))) goto oom;
  }
  for (size_t i = 0; i < nb; i++)
    if (add_col(s, defs[i].name, strlen(defs[i].name), defs[i].type, strlen(defs[i].type), 0) != 0) goto oom;
  for (size_t i = 0; i < nextra; i++) {
    const char *d = extra[i];
    while (isspace((unsigned char)*d)) d++;
    size_t nl = 0;
    while (d[nl] && !isspace((unsigned char)d[nl])) nl++;
    const char *t = d + nl;
    while (isspace((unsigned char)*t)) t++;
    size_t tl = strlen(t);
    while (tl && isspace((unsigned char)t[tl - 1])) tl--;
    if (!is_ident(d, nl) || tl == 0) {
      ch_schema_free(s);
      return cs_err_set(err, "extra_columns: '%s' is not \"name Type\" (e.g. \"max_size Float64\")", extra[i]);
    }
    if (ch_schema_has_column(s, d, nl) || (nl == strlen(VERSION_COL) && memcmp(d, VERSION_COL, nl) == 0)) {
      ch_schema_free(s);
      return cs_err_set(err, "extra_columns: column '%.*s' is already in the table", (int)nl, d);
    }
    if (add_col(s, d, nl, t, tl, 1) != 0) goto oom;
  }
  if (add_col(s, VERSION_COL, strlen(VERSION_COL), "UInt64", 6, 0) != 0) goto oom;
  return 0;
oom:
  ch_schema_free(s);
  return cs_err_set(err, "out of memory");
}

void ch_schema_free(ch_schema *s) {
  if (!s) return;
  for (size_t i = 0; i < s->ncols; i++) {
    free(s->cols[i].name);
    free(s->cols[i].type);
  }
  free(s->cols);
  free(s->db);
  free(s->table);
  free(s->view);
  memset(s, 0, sizeof *s);
}

/* ------------------------------------------------------------------ SQL */
static void qname(cs_buf *b, const ch_schema *s, const char *name) { cs_buf_printf(b, "`%s`.`%s`", s->db, name); }

void ch_sql_create_database(const ch_schema *s, cs_buf *b) {
  cs_buf_printf(b, "CREATE DATABASE IF NOT EXISTS `%s`", s->db);
}

static const char *type_for(const ch_column *c, const ch_features *f) {
  if (f->low_cardinality && !c->extra && strcmp(c->type, "String") == 0) return "LowCardinality(String)";
  return c->type;
}

void ch_sql_create_table(const ch_schema *s, const ch_features *f, cs_buf *b) {
  cs_buf_puts(b, "CREATE TABLE IF NOT EXISTS ");
  qname(b, s, s->table);
  cs_buf_puts(b, " (");
  for (size_t i = 0; i < s->ncols; i++)
    cs_buf_printf(b, "%s`%s` %s", i ? ", " : "", s->cols[i].name, type_for(&s->cols[i], f));
  if (s->kind == CH_KIND_TRADES && f->datetime64)
    cs_buf_puts(b, ", `time` DateTime64(6, 'UTC') ALIAS fromUnixTimestamp64Micro(time_us, 'UTC')");
  cs_buf_printf(b, ") ENGINE = ReplacingMergeTree(%s) PARTITION BY %s ORDER BY (%s)", VERSION_COL,
                partition_by(s->kind), ch_schema_order_by(s->kind));
}

static int is_key(const ch_schema *s, const char *name) {
  const char *key = ch_schema_order_by(s->kind);
  size_t n = strlen(name);
  for (const char *p = key; (p = strstr(p, name)); p += n)
    if ((p == key || p[-1] == ' ') && (p[n] == ',' || p[n] == 0)) return 1;
  return 0;
}

void ch_sql_create_view(const ch_schema *s, cs_buf *b) {
  /* The version column is aggregated in a subquery under another name: an
   * alias equal to a column used inside another aggregate is rejected. */
  cs_buf_puts(b, "CREATE VIEW IF NOT EXISTS ");
  qname(b, s, s->view);
  cs_buf_puts(b, " AS SELECT ");
  for (size_t i = 0; i + 1 < s->ncols; i++) cs_buf_printf(b, "%s`%s`", i ? ", " : "", s->cols[i].name);
  cs_buf_printf(b, ", `latest_version` AS `%s` FROM (SELECT ", VERSION_COL);
  int first = 1;
  for (size_t i = 0; i + 1 < s->ncols; i++) {
    const char *n = s->cols[i].name;
    if (is_key(s, n))
      cs_buf_printf(b, "%s`%s`", first ? "" : ", ", n);
    else
      cs_buf_printf(b, "%sargMax(`%s`, `%s`) AS `%s`", first ? "" : ", ", n, VERSION_COL, n);
    first = 0;
  }
  cs_buf_printf(b, ", max(`%s`) AS `latest_version` FROM ", VERSION_COL);
  qname(b, s, s->table);
  cs_buf_printf(b, " GROUP BY %s)", ch_schema_order_by(s->kind));
}

void ch_sql_columns(const ch_schema *s, cs_buf *b) {
  cs_buf_printf(b,
                "SELECT name, type FROM system.columns WHERE database = '%s' AND table = '%s' "
                "FORMAT TabSeparated",
                s->db, s->table);
}

void ch_sql_engine(const ch_schema *s, cs_buf *b) {
  cs_buf_printf(b,
                "SELECT engine, engine_full, sorting_key FROM system.tables WHERE database = '%s' AND name = '%s' "
                "FORMAT TabSeparated",
                s->db, s->table);
}

void ch_sql_insert(const ch_schema *s, const char *format, cs_buf *b) {
  cs_buf_puts(b, "INSERT INTO ");
  qname(b, s, s->table);
  cs_buf_puts(b, " (");
  for (size_t i = 0; i < s->ncols; i++) cs_buf_printf(b, "%s`%s`", i ? ", " : "", s->cols[i].name);
  cs_buf_printf(b, ") FORMAT %s", format);
}

/* ---------------------------------------------------------------- check */
/* One TabSeparated field, unescaped into out (NUL-terminated). */
static const char *tsv_field(const char *p, const char *end, char *out, size_t size) {
  size_t n = 0;
  while (p < end && *p != '\t' && *p != '\n') {
    char c = *p++;
    if (c == '\\' && p < end) {
      c = *p++;
      switch (c) {
        case 't': c = '\t'; break;
        case 'n': c = '\n'; break;
        case 'r': c = '\r'; break;
        case '0': c = 0; break;
        case 'b': c = '\b'; break;
        case 'f': c = '\f'; break;
        default: break; /* \\ \' and others: the character itself */
      }
    }
    if (n + 1 < size) out[n++] = c;
  }
  out[n] = 0;
  return p;
}

static int same_type(const char *want, const char *got) {
  if (strcmp(want, got) == 0) return 1;
  if (strcmp(want, "String") == 0) return strcmp(got, "LowCardinality(String)") == 0;
  if (strncmp(want, "DateTime(", 9) == 0) /* any time zone: the stored value is epoch seconds */
    return strcmp(got, "DateTime") == 0 || strncmp(got, "DateTime('", 10) == 0;
  return 0;
}

int ch_schema_check_columns(const ch_schema *s, const char *tsv, size_t len, cs_err *err) {
  const char *end = tsv + len;
  if (len == 0 || (len == 1 && tsv[0] == '\n')) return cs_err_set(err, "table %s.%s does not exist", s->db, s->table);
  char *seen = calloc(s->ncols ? s->ncols : 1, 1);
  if (!seen) return cs_err_set(err, "out of memory");
  char name[256], type[512];
  int rc = 0;
  for (const char *p = tsv; p < end && rc == 0;) {
    p = tsv_field(p, end, name, sizeof name);
    if (p < end && *p == '\t') p++;
    p = tsv_field(p, end, type, sizeof type);
    while (p < end && *p != '\n') p++;
    if (p < end) p++;
    for (size_t i = 0; i < s->ncols; i++) {
      if (strcmp(s->cols[i].name, name) != 0) continue;
      seen[i] = 1;
      if (!same_type(s->cols[i].type, type))
        rc = cs_err_set(err, "table %s.%s: column '%s' is %s, expected %s", s->db, s->table, name, type,
                        s->cols[i].type);
    }
  }
  for (size_t i = 0; i < s->ncols && rc == 0; i++)
    if (!seen[i])
      rc = cs_err_set(err, "table %s.%s has no column '%s' (expected %s)", s->db, s->table, s->cols[i].name,
                      s->cols[i].type);
  free(seen);
  return rc;
}

/* The last argument of "ReplacingMergeTree(...)" in engine_full. */
static int version_arg(const char *full, char *out, size_t size) {
  const char *p = strstr(full, "ReplacingMergeTree(");
  if (!p) return -1;
  p += strlen("ReplacingMergeTree(");
  int depth = 0, quoted = 0;
  const char *arg = p;
  for (; *p; p++) {
    if (quoted) {
      if (*p == '\\' && p[1])
        p++;
      else if (*p == '\'')
        quoted = 0;
      continue;
    }
    if (*p == '\'')
      quoted = 1;
    else if (*p == '(')
      depth++;
    else if (*p == ',' && depth == 0)
      arg = p + 1;
    else if (*p == ')') {
      if (depth-- == 0) break;
    }
  }
  if (!*p) return -1;
  while (arg < p && *arg == ' ') arg++;
  size_t n = (size_t)(p - arg);
  while (n && arg[n - 1] == ' ') n--;
  if (n >= 2 && arg[0] == '`' && arg[n - 1] == '`') {
    arg++;
    n -= 2;
  }
  if (n >= size) n = size - 1;
  memcpy(out, arg, n);
  out[n] = 0;
  return 0;
}

int ch_schema_check_engine(const ch_schema *s, const char *tsv, size_t len, cs_err *err) {
  return ch_schema_check_engine_dist(s, tsv, len, NULL, err);
}

int ch_schema_check_engine_dist(const ch_schema *s, const char *tsv, size_t len, ch_distributed *d, cs_err *err) {
  const char *p = tsv, *end = tsv + len;
  char engine[128], full[2048], key[512], ver[128];
  if (len == 0) return cs_err_set(err, "table %s.%s does not exist", s->db, s->table);
  p = tsv_field(p, end, engine, sizeof engine);
  if (p < end && *p == '\t') p++;
  p = tsv_field(p, end, full, sizeof full);
  if (p < end && *p == '\t') p++;
  tsv_field(p, end, key, sizeof key);
  if (d && strcmp(engine, "Distributed") == 0) {
    if (ch_distributed_parse(full, d, err) != 0 || ch_sharding_key_check(d->key, err) != 0)
      return cs_err_prefix(err, "Distributed table %s.%s", s->db, s->table);
    return 1;
  }
  size_t el = strlen(engine), rl = strlen("ReplacingMergeTree");
  if (el < rl || strcmp(engine + el - rl, "ReplacingMergeTree") != 0)
    return cs_err_set(err,
                      "table %s.%s is %s, expected ReplacingMergeTree(%s)%s: re-emitted rows would not replace "
                      "earlier ones",
                      s->db, s->table, engine[0] ? engine : "(unknown engine)", VERSION_COL,
                      d ? " or a Distributed table over one" : "");
  if (version_arg(full, ver, sizeof ver) != 0 || strcmp(ver, VERSION_COL) != 0)
    return cs_err_set(err, "table %s.%s is not ReplacingMergeTree(%s) (%s): the latest row would not win", s->db,
                      s->table, VERSION_COL, full);
  if (strcmp(key, ch_schema_order_by(s->kind)) != 0)
    return cs_err_set(err, "table %s.%s is ordered by (%s), expected (%s): rows with the same key would not collapse",
                      s->db, s->table, key, ch_schema_order_by(s->kind));
  return 0;
}

/* ------------------------------------------------- Distributed tables */
/* The end of the quoted text that starts at p (p[0] is the quote): the
 * closing quote, or NULL. Backslash escapes and doubled quotes inside. */
static const char *quoted_end(const char *p) {
  char q = *p++;
  for (; *p; p++) {
    if (*p == '\\' && p[1])
      p++;
    else if (*p == q) {
      if (p[1] != q) return p;
      p++; /* '' inside '...' */
    }
  }
  return NULL;
}

/* One engine argument [a, b) into out: trimmed, a quoted name unquoted. */
static int engine_arg(const char *a, const char *b, char *out, size_t size) {
  while (a < b && isspace((unsigned char)*a)) a++;
  while (b > a && isspace((unsigned char)b[-1])) b--;
  size_t n = 0;
  if (b - a >= 2 && (*a == '\'' || *a == '`' || *a == '"') && quoted_end(a) == b - 1) {
    for (const char *p = a + 1; p < b - 1; p++) {
      if (*p == '\\' && p + 1 < b - 1)
        p++;
      else if (*p == *a && p + 1 < b - 1 && p[1] == *a)
        p++;
      if (n + 1 >= size) return -1;
      out[n++] = *p;
    }
  } else {
    if ((size_t)(b - a) >= size) return -1;
    memcpy(out, a, (size_t)(b - a));
    n = (size_t)(b - a);
  }
  out[n] = 0;
  return 0;
}

int ch_distributed_parse(const char *full, ch_distributed *d, cs_err *err) {
  memset(d, 0, sizeof *d);
  const char *p = full;
  while (isspace((unsigned char)*p)) p++;
  if (strncmp(p, "Distributed", 11) != 0) return cs_err_set(err, "engine '%s' is not Distributed(...)", full);
  p += 11;
  while (isspace((unsigned char)*p)) p++;
  if (*p != '(') return cs_err_set(err, "engine '%s' has no arguments", full);
  p++;
  char *outs[4] = {d->cluster, d->db, d->table, d->key};
  size_t sizes[4] = {sizeof d->cluster, sizeof d->db, sizeof d->table, sizeof d->key};
  int nargs = 0, depth = 0;
  const char *arg = p;
  for (;; p++) {
    if (!*p) return cs_err_set(err, "engine '%s': unbalanced parentheses", full);
    if (*p == '\'' || *p == '`' || *p == '"') {
      const char *q = quoted_end(p);
      if (!q) return cs_err_set(err, "engine '%s': unterminated quote", full);
      p = q;
    } else if (*p == '(') {
      depth++;
    } else if ((*p == ',' && depth == 0) || (*p == ')' && depth == 0)) {
      if (nargs < 4 && engine_arg(arg, p, outs[nargs], sizes[nargs]) != 0)
        return cs_err_set(err, "engine '%s': argument %d too long", full, nargs + 1);
      nargs++;
      arg = p + 1;
      if (*p == ')') break;
    } else if (*p == ')') {
      depth--;
    }
  }
  if (nargs < 3 || !d->cluster[0] || !d->db[0] || !d->table[0])
    return cs_err_set(err, "engine '%s': expected Distributed(cluster, database, table[, sharding_key])", full);
  return 0;
}

static int is_keyword(const char *w, size_t n) {
  static const char *const kw[] = {"AND", "OR", "NOT", "IN", "IS", "NULL", "CASE", "WHEN", "THEN", "ELSE", "END",
                                   "BETWEEN", "LIKE", "TRUE", "FALSE", NULL};
  for (int i = 0; kw[i]; i++)
    if (strlen(kw[i]) == n && strncasecmp(kw[i], w, n) == 0) return 1;
  return 0;
}

int ch_sharding_key_check(const char *key, cs_err *err) {
  static const char why[] =
      "every version of a window must land on the same shard, where FINAL replaces the earlier one: shard by "
      "product_id alone, e.g. cityHash64(product_id)";
  if (!key[0]) return cs_err_set(err, "has no sharding key: %s", why);
  int has_product = 0;
  for (const char *p = key; *p;) {
    if (*p == '\'' || *p == '"') { /* a string literal ("..." is a name in ClickHouse, but never ours) */
      const char *q = quoted_end(p);
      if (!q) return cs_err_set(err, "sharding key %s: unterminated quote", key);
      p = q + 1;
      continue;
    }
    if (isdigit((unsigned char)*p)) { /* a number: 7, 0x1f, 1e3, 2.5 */
      while (isalnum((unsigned char)*p) || *p == '.') p++;
      continue;
    }
    const char *w = p;
    size_t n = 0;
    int quoted = *p == '`';
    if (quoted) {
      const char *q = quoted_end(p);
      if (!q) return cs_err_set(err, "sharding key %s: unterminated quote", key);
      w = p + 1;
      n = (size_t)(q - w);
      p = q + 1;
    } else if (isalpha((unsigned char)*p) || *p == '_') {
      while (isalnum((unsigned char)p[n]) || p[n] == '_') n++;
      p += n;
    } else {
      p++; /* operators, parentheses, commas, spaces */
      continue;
    }
    const char *after = p;
    while (isspace((unsigned char)*after)) after++;
    if (*after == '(' || *after == '.') continue; /* a function, or a qualifier before the column */
    if (!quoted && is_keyword(w, n)) continue;
    if (n == strlen("product_id") && memcmp(w, "product_id", n) == 0) {
      has_product = 1;
      continue;
    }
    return cs_err_set(err, "sharding key %s depends on '%.*s': %s", key, (int)n, w, why);
  }
  if (!has_product) return cs_err_set(err, "sharding key %s does not depend on product_id: %s", key, why);
  return 0;
}

/* A SQL string literal's body: quotes and backslashes escaped. */
static void sql_str(cs_buf *b, const char *s) {
  for (; *s; s++) {
    if (*s == '\'' || *s == '\\') cs_buf_append(b, "\\", 1);
    cs_buf_append(b, s, 1);
  }
}

void ch_sql_cluster(const char *cluster, cs_buf *b) {
  cs_buf_puts(b, "SELECT uniqExact(shard_num), countIf(is_local) FROM system.clusters WHERE cluster = '");
  sql_str(b, cluster);
  cs_buf_puts(b, "' FORMAT TabSeparated");
}

void ch_sql_engine_on_shards(const ch_schema *s, const char *cluster, cs_buf *b) {
  cs_buf_puts(b, "SELECT engine, engine_full, sorting_key FROM cluster('");
  sql_str(b, cluster);
  cs_buf_printf(b, "', system, tables) WHERE database = '%s' AND name = '%s' FORMAT TabSeparated", s->db, s->table);
}
