/* cs_option: typed option tables for sources, sinks and windows.
 *
 * Each plugin declares its options once, as a NULL-terminated array of
 * cs_optdef rows (name, type, default, help). The same table validates a
 * script's arguments (the Lua layer reads it through cstream.core, so an
 * unknown key, a wrong type or a missing required option fails at load with
 * file:line and a suggestion), prints itself in `cstream check`, and is
 * documented in docs/. Validated values reach the plugin as a cs_opts, which
 * holds one value per row, in table order. */
#ifndef CS_OPTION_H
#define CS_OPTION_H

#include <stddef.h>
#include <stdint.h>

#include "cs_err.h"

typedef enum {
  CS_OPT_STRING,   /* any string */
  CS_OPT_NUMBER,   /* a Lua number */
  CS_OPT_INTEGER,  /* a whole number */
  CS_OPT_BOOLEAN,
  CS_OPT_DURATION, /* "500ms", "30s", "1m", "1h" or seconds; stored as µs */
  CS_OPT_SECONDS,  /* a duration that is a whole number of seconds > 0; µs */
  CS_OPT_ENUM,     /* one of `choices` ("a|b|c") */
  CS_OPT_STRINGS,  /* a list of strings */
  CS_OPT_LUA       /* handled by the Lua layer (functions, aggregates) */
} cs_opt_type;

typedef struct cs_optdef {
  const char *name;
  cs_opt_type type;
  const char *def; /* default as text, NULL = required (unless `optional`) */
  int optional;    /* 1: may be absent with no default */
  const char *choices;
  const char *help;
} cs_optdef;

typedef struct cs_optval {
  int set; /* 0 when absent and without default */
  const char *str;     /* STRING, ENUM: owned by the cs_opts */
  double num;          /* NUMBER */
  int64_t i;           /* INTEGER, BOOLEAN (0/1), DURATION and SECONDS (µs) */
  char **list;         /* STRINGS: owned */
  size_t nlist;
} cs_optval;

typedef struct cs_opts {
  const cs_optdef *defs;
  size_t n;
  cs_optval *vals;
} cs_opts;

const char *cs_opt_type_name(cs_opt_type t);

/* Creates values for `defs` with every default applied. */
cs_opts *cs_opts_create(const cs_optdef *defs, cs_err *err);
void cs_opts_destroy(cs_opts *o); /* NULL is a no-op */

/* Setters, used by the Lua layer after it has checked types. They parse
 * text values (durations) and fail with a message naming the option. */
int cs_opts_set_string(cs_opts *o, const char *name, const char *s, cs_err *err);
int cs_opts_set_number(cs_opts *o, const char *name, double v, cs_err *err);
int cs_opts_set_bool(cs_opts *o, const char *name, int v, cs_err *err);
int cs_opts_add_list(cs_opts *o, const char *name, const char *s, cs_err *err);

/* Getters; the name must be in the table (a programming error otherwise). */
const cs_optval *cs_opts_get(const cs_opts *o, const char *name);
const char *cs_opts_str(const cs_opts *o, const char *name);
double cs_opts_num(const cs_opts *o, const char *name);
int64_t cs_opts_int(const cs_opts *o, const char *name);

/* A copy of a string-list value for a plugin to keep: each string and the
 * array, owned by the caller (cs_opts_list_free). 0, or -1 when out of
 * memory with nothing left allocated. An empty list gives NULL and 0. */
int cs_opts_list_copy(const cs_optval *v, char ***list, size_t *n);
void cs_opts_list_free(char **list, size_t n); /* NULL is a no-op */

#endif
