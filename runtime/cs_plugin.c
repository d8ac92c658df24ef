#include "cs_plugin.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

extern const cs_source_vt cs_source_replay;
extern const cs_source_vt cs_source_coinbase;
extern const cs_source_vt cs_source_kafka;
extern const cs_sink_vt cs_sink_jsonl;
extern const cs_sink_vt cs_sink_discard;
extern const cs_sink_vt cs_sink_clickhouse;
extern const cs_sink_vt cs_sink_kafka;

const cs_source_vt *const cs_plugin_sources[] = {&cs_source_replay, &cs_source_coinbase, &cs_source_kafka, NULL};
const cs_sink_vt *const cs_plugin_sinks[] = {&cs_sink_jsonl, &cs_sink_discard, &cs_sink_clickhouse, &cs_sink_kafka, NULL};

const cs_optdef cs_plugin_tumbling_options[] = {
    {"size", CS_OPT_SECONDS, NULL, 0, NULL, "window length, a whole number of seconds (\"30s\", \"1m\")"},
    {"lateness", CS_OPT_DURATION, "0", 0, NULL,
     "how far behind the newest trade the watermark stays; later trades are late"},
    {"by", CS_OPT_ENUM, "product_id", 0, "product_id|none", "one window per product_id, or one for all trades"},
    {"on_late", CS_OPT_ENUM, "drop", 0, "drop|update",
     "a late trade is dropped and counted, or (update) taken into its window, which is emitted again"},
    {"update_for", CS_OPT_DURATION, "5m", 0, NULL,
     "on_late = \"update\": how long after its end (by the watermark) a window still takes late trades"},
    {"aggregates", CS_OPT_LUA, NULL, 1, NULL,
     "built-in aggregate names and cs.aggregate{...} user aggregates; default: all built-ins"},
    {NULL, 0, NULL, 0, NULL, NULL}};

const cs_source_vt *cs_plugin_source(const char *name) {
  for (size_t i = 0; cs_plugin_sources[i]; i++)
    if (strcmp(cs_plugin_sources[i]->name, name) == 0) return cs_plugin_sources[i];
  return NULL;
}

const cs_sink_vt *cs_plugin_sink(const char *name) {
  for (size_t i = 0; cs_plugin_sinks[i]; i++)
    if (strcmp(cs_plugin_sinks[i]->name, name) == 0) return cs_plugin_sinks[i];
  return NULL;
}

cs_source *cs_source_create(const cs_source_vt *vt, const char *instance, const cs_opts *opts, cs_err *err) {
  cs_source *src = calloc(1, sizeof *src);
  if (!src) {
    cs_err_set(err, "out of memory");
    return NULL;
  }
  src->vt = vt;
  snprintf(src->label, sizeof src->label, "source %s.%s", vt->name, instance);
  if (vt->init(src, opts, err) != 0) {
    free(src);
    return NULL;
  }
  return src;
}

void cs_source_destroy(cs_source *src) {
  if (!src) return;
  src->vt->destroy(src);
  free(src);
}

cs_sink *cs_sink_create(const cs_sink_vt *vt, const char *instance, const cs_opts *opts, cs_err *err) {
  cs_sink *sink = calloc(1, sizeof *sink);
  if (!sink) {
    cs_err_set(err, "out of memory");
    return NULL;
  }
  sink->vt = vt;
  snprintf(sink->label, sizeof sink->label, "sink %s.%s", vt->name, instance);
  if (vt->init(sink, opts, err) != 0) {
    free(sink);
    return NULL;
  }
  return sink;
}

void cs_sink_destroy(cs_sink *sink) {
  if (!sink) return;
  sink->vt->destroy(sink);
  free(sink);
}
