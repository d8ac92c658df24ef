/* cs.discard: takes every row (or trade) and keeps none — for benchmarks, and for
 * pipelines whose only output is a Lua hook or the summary. */
#include "cs_plugin.h"

static int discard_init(cs_sink *sink, const cs_opts *opts, cs_err *err) { return 0; }
static int discard_start(cs_sink *sink, uv_loop_t *loop, cs_err *err) { return 0; }
static cs_sink_status discard_write(cs_sink *sink, const cs_row *rows, size_t n, cs_err *err) { return CS_SINK_OK; }
static cs_sink_status discard_write_trades(cs_sink *sink, const cs_trade *t, size_t n, cs_err *err) {
  return CS_SINK_OK;
}
static cs_sink_status discard_flush(cs_sink *sink, cs_err *err) { return CS_SINK_OK; }
static void discard_stop(cs_sink *sink) {}
static void discard_destroy(cs_sink *sink) {}

static const cs_optdef discard_options[] = {{NULL, 0, NULL, 0, NULL, NULL}};

const cs_sink_vt cs_sink_discard = {
    .name = "discard",
    .help = "drops every row (benchmarks)",
    .options = discard_options,
    .init = discard_init,
    .start = discard_start,
    .write = discard_write,
    .write_trades = discard_write_trades,
    .flush = discard_flush,
    .stop = discard_stop,
    .destroy = discard_destroy,
};
