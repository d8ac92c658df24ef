/* Turns the pipelines a script declared (passive Lua tables, already
 * validated by cstream.schema) into C pipelines. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cs_lua_internal.h"
#include "cs_metrics.h"
#include "cs_plugin.h"
#include "cs_record.h"

/* Fills a cs_opts from spec.opts (at `idx`) following the C option table. */
static cs_opts *opts_from_lua(lua_State *L, int idx, const cs_optdef *defs, const char *what, cs_err *err) {
  cs_opts *o = cs_opts_create(defs, err);
  if (!o) return NULL;
  for (int i = 0; defs[i].name; i++) {
    const cs_optdef *d = &defs[i];
    if (d->type == CS_OPT_LUA) continue;
    lua_getfield(L, idx, d->name);
    int rc = 0;
    switch (lua_type(L, -1)) {
      case LUA_TNIL: break;
      case LUA_TBOOLEAN: rc = cs_opts_set_bool(o, d->name, lua_toboolean(L, -1), err); break;
      case LUA_TNUMBER: rc = cs_opts_set_number(o, d->name, lua_tonumber(L, -1), err); break;
      case LUA_TSTRING: rc = cs_opts_set_string(o, d->name, lua_tostring(L, -1), err); break;
      case LUA_TTABLE:
        for (int k = 1; rc == 0; k++) {
          lua_rawgeti(L, -1, k);
          if (lua_isnil(L, -1)) {
            lua_pop(L, 1);
            break;
          }
          rc = cs_opts_add_list(o, d->name, lua_tostring(L, -1), err);
          lua_pop(L, 1);
        }
        break;
      default: rc = cs_err_set(err, "option '%s': unsupported value", d->name);
    }
    lua_pop(L, 1);
    if (rc != 0) {
      cs_err_prefix(err, "%s", what);
      cs_opts_destroy(o);
      return NULL;
    }
  }
  return o;
}

/* The plugin name of the spec at the top of the stack ({plugin=, opts=}). */
static const char *spec_plugin(lua_State *L) {
  lua_getfield(L, -1, "plugin");
  const char *name = lua_tostring(L, -1); /* the spec table keeps the string alive */
  lua_pop(L, 1);
  return name ? name : "";
}

/* spec.opts of the spec at the top of the stack, as a cs_opts for `defs`. */
static cs_opts *spec_opts(lua_State *L, const char *plugin, const cs_optdef *defs, cs_err *err) {
  char what[64];
  snprintf(what, sizeof what, "cs.%s", plugin);
  lua_getfield(L, -1, "opts");
  cs_opts *o = opts_from_lua(L, lua_gettop(L), defs, what, err);
  lua_pop(L, 1);
  return o;
}

static cs_source *build_source(lua_State *L, const char *pname, cs_err *err) {
  const cs_source_vt *vt = cs_plugin_source(spec_plugin(L));
  if (!vt) return cs_err_set(err, "unknown source"), NULL;
  cs_opts *o = spec_opts(L, vt->name, vt->options, err);
  if (!o) return NULL;
  cs_source *src = cs_source_create(vt, pname, o, err);
  cs_opts_destroy(o);
  return src;
}

static cs_sink *build_sink(lua_State *L, const char *instance, cs_err *err) {
  const cs_sink_vt *vt = cs_plugin_sink(spec_plugin(L));
  if (!vt) return cs_err_set(err, "unknown sink"), NULL;
  cs_opts *o = spec_opts(L, vt->name, vt->options, err);
  if (!o) return NULL;
  cs_sink *sink = cs_sink_create(vt, instance, o, err);
  cs_opts_destroy(o);
  return sink;
}

static int build_window(lua_State *L, cs_window_conf *conf, cs_err *err) {
  lua_getfield(L, -1, "opts");
  int idx = lua_gettop(L);
  cs_opts *o = opts_from_lua(L, idx, cs_plugin_tumbling_options, "cs.tumbling", err);
  if (!o) {
    lua_pop(L, 1);
    return -1;
  }
  memset(conf, 0, sizeof *conf);
  conf->size_us = cs_opts_int(o, "size");
  conf->lateness_us = cs_opts_int(o, "lateness");
  conf->by_product = strcmp(cs_opts_str(o, "by"), "product_id") == 0;
  conf->update_for_us = strcmp(cs_opts_str(o, "on_late"), "update") == 0 ? cs_opts_int(o, "update_for") : 0;
  cs_opts_destroy(o);
  lua_getfield(L, idx, "aggregates");
  for (int k = 1;; k++) {
    lua_rawgeti(L, -1, k);
    if (lua_isnil(L, -1)) {
      lua_pop(L, 1);
      break;
    }
    const char *name = lua_tostring(L, -1);
    for (int i = 0; i < CS_AGG_COUNT; i++)
      if (strcmp(name, cs_agg_names[i]) == 0) conf->aggs |= 1u << i;
    lua_pop(L, 1);
  }
  lua_pop(L, 2);
  return 0;
}

/* Builds the pipeline declared by the spec table at index `spec`. For a
 * test (cstream.test) the source and sinks are not built: the caller
 * attaches its own. The hooks go to *hooks_out (the caller owns them). */
cs_pipeline *cs_lua_build_spec(cs_lua *h, int spec, int for_test, cs_lua_hooks **hooks_out, cs_err *err) {
  lua_State *L = h->L;
  int top = lua_gettop(L);
  cs_pipeline *p = NULL;
  cs_lua_hooks *hk = NULL;
  *hooks_out = NULL;

  lua_getfield(L, spec, "name");
  const char *name = lua_tostring(L, -1);
  lua_getfield(L, spec, "where");
  const char *where = lua_tostring(L, -1);
  char at[300];
  snprintf(at, sizeof at, "%s: pipeline '%s'", where ? where : "?", name ? name : "?");

  if (!(p = cs_pipeline_create(name ? name : "?", err))) goto error;

  if (!for_test) {
    lua_getfield(L, spec, "source");
    cs_source *src = build_source(L, name, err);
    lua_pop(L, 1);
    if (!src) goto error;
    cs_pipeline_set_source(p, src);
  }

  cs_window_conf conf;
  lua_getfield(L, spec, "window");
  int has_window = !lua_isnil(L, -1);
  int rc = has_window ? build_window(L, &conf, err) : 0;
  lua_pop(L, 1);
  if (rc != 0) goto error;

  if (!(hk = cs_lua_hooks_create(h, spec, err))) goto error;
  cs_hooks hooks;
  const cs_window_ext *ext;
  cs_lua_hooks_get(hk, &hooks, &ext);
  if (has_window) {
    conf.ext = ext;
    if (cs_pipeline_set_window(p, &conf, err) != 0) goto error;
  }
  cs_pipeline_set_hooks(p, &hooks);
  cs_lua_hooks_set_counter(hk, &((cs_pipeline_stats *)cs_pipeline_get_stats(p))->hook_errors);

  lua_getfield(L, spec, "sinks");
  size_t nsinks = for_test ? 0 : lua_objlen(L, -1);
  for (size_t k = 1; k <= nsinks; k++) {
    lua_rawgeti(L, -1, (int)k);
    char instance[128];
    if (nsinks > 1)
      snprintf(instance, sizeof instance, "%s#%zu", name, k);
    else
      snprintf(instance, sizeof instance, "%s", name);
    cs_sink *sink = build_sink(L, instance, err);
    lua_pop(L, 1);
    if (sink && !has_window && !sink->vt->write_trades) {
      cs_err_set(err, "cs.%s takes window rows only: give the pipeline a window", sink->vt->name);
      cs_sink_destroy(sink);
      sink = NULL;
    }
    if (!sink || cs_pipeline_add_sink(p, sink, err) != 0) {
      lua_pop(L, 1);
      goto error;
    }
  }
  lua_pop(L, 1);
  lua_settop(L, top);
  *hooks_out = hk;
  return p;

error:
  cs_err_prefix(err, "%s", at);
  lua_settop(L, top);
  cs_pipeline_destroy(p);
  cs_lua_hooks_destroy(hk);
  return NULL;
}

/* Pushes require("cstream")[field]. */
static void push_cstream_field(lua_State *L, const char *field) {
  lua_getglobal(L, "package");
  lua_getfield(L, -1, "loaded");
  lua_getfield(L, -1, "cstream");
  lua_remove(L, -2);
  lua_remove(L, -2);
  if (lua_istable(L, -1))
    lua_getfield(L, -1, field);
  else
    lua_pushnil(L);
  lua_remove(L, -2);
}

cs_pipeline *cs_lua_build_pipeline(cs_lua *h, size_t i, cs_err *err) {
  lua_State *L = h->L;
  int top = lua_gettop(L);
  push_cstream_field(L, "_pipelines");
  lua_rawgeti(L, -1, (int)i + 1);
  cs_lua_hooks *hk;
  cs_pipeline *p = cs_lua_build_spec(h, lua_gettop(L), 0, &hk, err);
  lua_settop(L, top);
  if (!p) return NULL;
  cs_lua_hooks **nh = realloc(h->hooks, (h->nhooks + 1) * sizeof *nh);
  if (!nh) {
    cs_err_set(err, "out of memory");
    cs_pipeline_destroy(p);
    cs_lua_hooks_destroy(hk);
    return NULL;
  }
  h->hooks = nh;
  h->hooks[h->nhooks++] = hk;
  return p;
}

int cs_lua_metrics_conf(cs_lua *h, cs_metrics_conf *conf, cs_err *err) {
  lua_State *L = h->L;
  int top = lua_gettop(L);
  memset(conf, 0, sizeof *conf);
  snprintf(conf->host, sizeof conf->host, "127.0.0.1");
  conf->ack_timeout_us = CS_METRICS_DEFAULT_ACK_TIMEOUT_US;
  push_cstream_field(L, "_metrics");
  if (lua_isnil(L, -1)) {
    lua_settop(L, top);
    return 0;
  }
  lua_getfield(L, -1, "where");
  char where[256];
  snprintf(where, sizeof where, "%s", lua_tostring(L, -1) ? lua_tostring(L, -1) : "?");
  lua_getfield(L, -2, "opts");
  cs_opts *o = opts_from_lua(L, lua_gettop(L), cs_metrics_options, "cs.metrics", err);
  int rc = o ? cs_metrics_conf_from_opts(conf, o, err) : -1;
  cs_opts_destroy(o);
  lua_settop(L, top);
  if (rc != 0) {
    if (o) cs_err_prefix(err, "cs.metrics");
    cs_err_prefix(err, "%s", where);
  }
  return rc;
}
