#include "cs_option.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cs_time.h"

const char *cs_opt_type_name(cs_opt_type t) {
  static const char *const names[] = {"string",   "number",           "integer",            "boolean", "duration",
                                      "seconds", "string (choice)", "list of strings", "value"};
  return names[t];
}

static int find(const cs_opts *o, const char *name) {
  for (size_t i = 0; i < o->n; i++)
    if (strcmp(o->defs[i].name, name) == 0) return (int)i;
  return -1;
}

static int check_choice(const cs_optdef *d, const char *s, cs_err *err) {
  size_t n = strlen(s);
  for (const char *c = d->choices; c && *c;) {
    const char *e = strchr(c, '|');
    size_t cl = e ? (size_t)(e - c) : strlen(c);
    if (cl == n && memcmp(c, s, n) == 0) return 0;
    c = e ? e + 1 : c + cl;
  }
  return cs_err_set(err, "option '%s': '%s' is not one of %s", d->name, s, d->choices);
}

static int set_text(cs_opts *o, int i, const char *s, cs_err *err) {
  const cs_optdef *d = &o->defs[i];
  cs_optval *v = &o->vals[i];
  switch (d->type) {
    case CS_OPT_STRING:
    case CS_OPT_ENUM: {
      if (d->type == CS_OPT_ENUM && check_choice(d, s, err) != 0) return -1;
      char *c = strdup(s);
      if (!c) return cs_err_set(err, "out of memory");
      free((char *)v->str);
      v->str = c;
      break;
    }
    case CS_OPT_DURATION:
    case CS_OPT_SECONDS:
      if (cs_time_parse_duration(s, &v->i) != 0)
        return cs_err_set(err, "option '%s': '%s' is not a duration (\"500ms\", \"30s\", \"1m\", \"1h\" or seconds)",
                          d->name, s);
      if (d->type == CS_OPT_SECONDS && (v->i <= 0 || v->i % CS_US_PER_S != 0))
        return cs_err_set(err, "option '%s': '%s' is not a whole number of seconds > 0", d->name, s);
      break;
    case CS_OPT_NUMBER:
    case CS_OPT_INTEGER: {
      char *end;
      double x = strtod(s, &end);
      if (*s == 0 || *end != 0 || !isfinite(x)) return cs_err_set(err, "option '%s': '%s' is not a number", d->name, s);
      return cs_opts_set_number(o, d->name, x, err);
    }
    case CS_OPT_BOOLEAN:
      if (strcmp(s, "true") == 0)
        v->i = 1;
      else if (strcmp(s, "false") == 0)
        v->i = 0;
      else
        return cs_err_set(err, "option '%s': '%s' is not true or false", d->name, s);
      break;
    case CS_OPT_STRINGS: return cs_opts_add_list(o, d->name, s, err);
    case CS_OPT_LUA: break;
  }
  v->set = 1;
  return 0;
}

cs_opts *cs_opts_create(const cs_optdef *defs, cs_err *err) {
  cs_opts *o = calloc(1, sizeof *o);
  if (!o) goto nomem;
  o->defs = defs;
  while (defs[o->n].name) o->n++;
  o->vals = calloc(o->n ? o->n : 1, sizeof *o->vals);
  if (!o->vals) goto nomem;
  for (size_t i = 0; i < o->n; i++)
    if (defs[i].def && defs[i].type != CS_OPT_STRINGS && set_text(o, (int)i, defs[i].def, err) != 0) {
      cs_opts_destroy(o);
      return NULL;
    }
  return o;
nomem:
  cs_opts_destroy(o);
  cs_err_set(err, "out of memory");
  return NULL;
}

void cs_opts_destroy(cs_opts *o) {
  if (!o) return;
  for (size_t i = 0; o->vals && i < o->n; i++) {
    free((char *)o->vals[i].str);
    for (size_t j = 0; j < o->vals[i].nlist; j++) free(o->vals[i].list[j]);
    free(o->vals[i].list);
  }
  free(o->vals);
  free(o);
}

int cs_opts_set_string(cs_opts *o, const char *name, const char *s, cs_err *err) {
  int i = find(o, name);
  if (i < 0) return cs_err_set(err, "unknown option '%s'", name);
  return set_text(o, i, s, err);
}

int cs_opts_set_number(cs_opts *o, const char *name, double x, cs_err *err) {
  int i = find(o, name);
  if (i < 0) return cs_err_set(err, "unknown option '%s'", name);
  const cs_optdef *d = &o->defs[i];
  cs_optval *v = &o->vals[i];
  switch (d->type) {
    case CS_OPT_NUMBER: v->num = x; break;
    case CS_OPT_INTEGER:
      if (x != floor(x) || fabs(x) > 9e15) return cs_err_set(err, "option '%s': %g is not an integer", name, x);
      v->i = (int64_t)x;
      v->num = x;
      break;
    case CS_OPT_DURATION:
    case CS_OPT_SECONDS: {
      char buf[64];
      snprintf(buf, sizeof buf, "%.17g", x);
      return set_text(o, i, buf, err);
    }
    default: return cs_err_set(err, "option '%s': expected %s, got a number", name, cs_opt_type_name(d->type));
  }
  v->set = 1;
  return 0;
}

int cs_opts_set_bool(cs_opts *o, const char *name, int b, cs_err *err) {
  int i = find(o, name);
  if (i < 0) return cs_err_set(err, "unknown option '%s'", name);
  if (o->defs[i].type != CS_OPT_BOOLEAN)
    return cs_err_set(err, "option '%s': expected %s, got a boolean", name, cs_opt_type_name(o->defs[i].type));
  o->vals[i].i = b != 0;
  o->vals[i].set = 1;
  return 0;
}

int cs_opts_add_list(cs_opts *o, const char *name, const char *s, cs_err *err) {
  int i = find(o, name);
  if (i < 0) return cs_err_set(err, "unknown option '%s'", name);
  cs_optval *v = &o->vals[i];
  char **nl = realloc(v->list, (v->nlist + 1) * sizeof *nl);
  if (!nl) return cs_err_set(err, "out of memory");
  v->list = nl;
  if (!(v->list[v->nlist] = strdup(s))) return cs_err_set(err, "out of memory");
  v->nlist++;
  v->set = 1;
  return 0;
}

const cs_optval *cs_opts_get(const cs_opts *o, const char *name) {
  int i = find(o, name);
  if (i < 0) {
    fprintf(stderr, "cstream: internal error: option '%s' is not declared\n", name);
    abort();
  }
  return &o->vals[i];
}

const char *cs_opts_str(const cs_opts *o, const char *name) { return cs_opts_get(o, name)->str; }
double cs_opts_num(const cs_opts *o, const char *name) { return cs_opts_get(o, name)->num; }
int64_t cs_opts_int(const cs_opts *o, const char *name) { return cs_opts_get(o, name)->i; }

int cs_opts_list_copy(const cs_optval *v, char ***list, size_t *n) {
  *list = NULL;
  *n = 0;
  if (!v->nlist) return 0;
  char **l = calloc(v->nlist, sizeof *l);
  if (!l) return -1;
  for (size_t i = 0; i < v->nlist; i++)
    if (!(l[i] = strdup(v->list[i]))) {
      cs_opts_list_free(l, i);
      return -1;
    }
  *list = l;
  *n = v->nlist;
  return 0;
}

void cs_opts_list_free(char **list, size_t n) {
  for (size_t i = 0; list && i < n; i++) free(list[i]);
  free(list);
}
