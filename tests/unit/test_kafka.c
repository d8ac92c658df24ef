/* cs_kafka on a libuv loop with the embedded broker: a producer and a
 * consumer served only through their io-event pipes (no blocking poll),
 * every message delivered and consumed once, in order per partition; and
 * the clock record the Kafka sink writes parses as a non-trade message
 * with a time. */
#include <string.h>

#include "check.h"
#include "cs_kafka.h"
#include "cs_parse.h"
#include "cs_time.h"

#define N 20000

typedef struct ctx {
  cs_kafka *prod, *cons;
  int delivered, failed, consumed, eof, assigned, out_of_order;
  int64_t last[3];
  uv_timer_t deadline;
  int timed_out;
} ctx;

static void dr_cb(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque) {
  ctx *c = cs_kafka_ud(opaque);
  if (m->err)
    c->failed++;
  else
    c->delivered++;
}

static void prod_wake(void *ud) {
  ctx *c = ud;
  while (rd_kafka_poll(cs_kafka_rk(c->prod), 0) > 0) {
  }
}

static void rebalance_cb(rd_kafka_t *rk, rd_kafka_resp_err_t err, rd_kafka_topic_partition_list_t *parts,
                         void *opaque) {
  ctx *c = cs_kafka_ud(opaque);
  if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
    for (int i = 0; i < parts->cnt; i++) parts->elems[i].offset = RD_KAFKA_OFFSET_BEGINNING;
    rd_kafka_assign(rk, parts);
    c->assigned = parts->cnt;
  } else {
    rd_kafka_assign(rk, NULL);
  }
}

static void cons_wake(void *ud) {
  ctx *c = ud;
  rd_kafka_message_t *ms[256];
  /* A small budget: most wake-ups end with cs_kafka_rewake. */
  for (int round = 0; round < 4; round++) {
    ssize_t n = rd_kafka_consume_batch_queue(cs_kafka_queue(c->cons), 0, ms, 256);
    if (n <= 0) return;
    for (ssize_t i = 0; i < n; i++) {
      if (ms[i]->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
        c->eof++;
      } else if (!ms[i]->err) {
        c->consumed++;
        if (ms[i]->partition >= 0 && ms[i]->partition < 3) {
          if (ms[i]->offset != c->last[ms[i]->partition] + 1) c->out_of_order++;
          c->last[ms[i]->partition] = ms[i]->offset;
        }
      }
      rd_kafka_message_destroy(ms[i]);
    }
  }
  cs_kafka_rewake(c->cons);
}

static void on_check(uv_timer_t *t) {
  ctx *c = t->data;
  if (c->consumed >= N && c->delivered + c->failed >= N) {
    uv_timer_stop(t);
    cs_kafka_close(c->prod);
    cs_kafka_close(c->cons);
    uv_close((uv_handle_t *)t, NULL);
  }
}

static void on_deadline(uv_timer_t *t) {
  ctx *c = t->data;
  c->timed_out = 1;
  uv_timer_stop(t);
}

static void test_loop(void) {
  cs_err err = {{0}};
  uv_loop_t loop;
  uv_loop_init(&loop);
  ctx c;
  memset(&c, 0, sizeof c);
  c.last[0] = c.last[1] = c.last[2] = -1;
  if (!CHECK(cs_kafka_embedded(&err) != NULL)) return;
  CHECK_EQ_INT(cs_kafka_embedded_topic("unit", 3, &err), 0);
  CHECK_EQ_INT(cs_kafka_embedded_topic("unit", 5, &err), 0); /* exists: kept */

  rd_kafka_conf_t *pc = cs_kafka_conf("embedded", &err);
  if (!CHECK(pc != NULL)) return;
  CHECK_EQ_INT(cs_kafka_set(pc, "enable.idempotence", "true", &err), 0);
  CHECK(cs_kafka_set(pc, "no.such.property", "1", &err) != 0);
  CHECK(strstr(err.msg, "no.such.property") != NULL);
  rd_kafka_conf_set_dr_msg_cb(pc, dr_cb);
  cs_kafka_cbs pcb = {&c, prod_wake, NULL};
  c.prod = cs_kafka_create(&loop, RD_KAFKA_PRODUCER, pc, "producer", &pcb, &err);
  if (!CHECK(c.prod != NULL)) return;

  char *extra[] = {"group.id=unit", "enable.partition.eof=true", "session.timeout.ms=6000"};
  rd_kafka_conf_t *cc = cs_kafka_conf("embedded", &err);
  if (!CHECK(cc != NULL)) return;
  CHECK_EQ_INT(cs_kafka_set_props(cc, extra, 3, "extra", &err), 0);
  {
    char *bad[] = {"fetch.wait.max.ms=50", "=nokey"};
    rd_kafka_conf_t *bc = cs_kafka_conf("embedded", &err);
    CHECK(cs_kafka_set_props(bc, bad, 2, "option 'config'", &err) != 0);
    CHECK(strstr(err.msg, "option 'config': '=nokey' is not key=value") != NULL);
    rd_kafka_conf_destroy(bc);
  }
  rd_kafka_conf_set_rebalance_cb(cc, rebalance_cb);
  cs_kafka_cbs ccb = {&c, cons_wake, NULL};
  c.cons = cs_kafka_create(&loop, RD_KAFKA_CONSUMER, cc, "consumer", &ccb, &err);
  if (!CHECK(c.cons != NULL)) return;
  rd_kafka_topic_partition_list_t *sub = rd_kafka_topic_partition_list_new(1);
  rd_kafka_topic_partition_list_add(sub, "unit", RD_KAFKA_PARTITION_UA);
  CHECK_EQ_INT(rd_kafka_subscribe(cs_kafka_rk(c.cons), sub), 0);
  rd_kafka_topic_partition_list_destroy(sub);

  for (int i = 0; i < N; i++) {
    char v[64];
    int n = snprintf(v, sizeof v, "{\"n\":%d}", i);
    rd_kafka_resp_err_t e = rd_kafka_producev(cs_kafka_rk(c.prod), RD_KAFKA_V_TOPIC("unit"), RD_KAFKA_V_KEY(v, 7),
                                              RD_KAFKA_V_VALUE(v, (size_t)n), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                                              RD_KAFKA_V_END);
    if (e) {
      CHECK_EQ_STR(rd_kafka_err2name(e), "NO_ERROR");
      break;
    }
  }
  uv_timer_t check, deadline;
  uv_timer_init(&loop, &check);
  uv_timer_init(&loop, &deadline);
  check.data = deadline.data = &c;
  uv_timer_start(&check, on_check, 20, 20);
  uv_timer_start(&deadline, on_deadline, 60000, 0);
  uv_unref((uv_handle_t *)&deadline);
  while (!c.timed_out && uv_run(&loop, UV_RUN_ONCE)) {
  }
  if (c.timed_out) {
    uv_timer_stop(&check);
    cs_kafka_close(c.prod);
    cs_kafka_close(c.cons);
    uv_close((uv_handle_t *)&check, NULL);
  }
  uv_close((uv_handle_t *)&deadline, NULL);
  uv_run(&loop, UV_RUN_DEFAULT);
  CHECK_EQ_INT(c.timed_out, 0);
  CHECK_EQ_INT(c.assigned, 3);
  CHECK_EQ_INT(c.delivered, N);
  CHECK_EQ_INT(c.failed, 0);
  CHECK_EQ_INT(c.consumed, N);
  CHECK_EQ_INT(c.out_of_order, 0);
  CHECK_EQ_INT(c.last[0] + c.last[1] + c.last[2] + 3, N);
  cs_kafka_destroy(c.prod);
  cs_kafka_destroy(c.cons);
  CHECK_EQ_INT(uv_loop_close(&loop), 0);
}

static void test_clock_record(void) {
  char ts[28];
  CHECK_EQ_INT((int)cs_kafka_time_us(INT64_C(1724356290012637), ts), 27);
  CHECK_EQ_STR(ts, "2024-08-22T19:51:30.012637Z");
  cs_kafka_time_us(INT64_C(-1), ts);
  CHECK_EQ_STR(ts, "1969-12-31T23:59:59.999999Z");
  cs_parser *p = cs_parser_create();
  const char line[] = "{\"v\":1,\"type\":\"clock\",\"time\":\"2024-08-22T19:51:30.012637Z\"}";
  const cs_trade *t;
  size_t n;
  const char *why = NULL;
  CHECK_EQ_INT(cs_parse_line(p, line, sizeof line - 1, false, &t, &n, &why), CS_PARSE_OTHER);
  CHECK_EQ_INT(n, 0);
  CHECK_EQ_INT(cs_parse_info(p)->has_time, 1);
  CHECK_EQ_INT(cs_parse_info(p)->time_us, INT64_C(1724356290012637));
  CHECK_EQ_STR(cs_parse_last_type(p), "clock");
  cs_parser_destroy(p);
}

int main(void) {
  test_clock_record();
  test_loop();
  return CHECK_DONE();
}
