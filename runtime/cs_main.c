/* cstream: the command line.
 *
 *   cstream run SCRIPT [ARGS...]    run the pipelines a Lua script declares
 *   cstream check SCRIPT [ARGS...]  load and validate, print the topology
 *   cstream spec [BUSTED ARGS...]   run busted specs inside this host
 *   cstream test SPEC [ARGS...]     run a test spec of pipeline scripts (cstream.test)
 *   cstream serve-replay CAPTURE    the replay exchange (cs_exchange.h)
 *   cstream broker [OPTIONS]        an in-memory Kafka broker (cs_broker.h)
 *   cstream version | --help
 *
 * Exit status: 0 success (also after SIGINT/SIGTERM), 1 a pipeline failed
 * at run time or could not start, 2 bad command line, 3 the script has an
 * error (file:line in the message). */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include "cs_broker.h"
#include "cs_exchange.h"
#include "cs_log.h"
#include "cs_lua.h"
#include "cs_metrics.h"
#include "cs_pipeline.h"
#include "cs_status.h"
#include "cs_time.h"

enum { EXIT_OK = 0, EXIT_RUNTIME = 1, EXIT_USAGE = 2, EXIT_SCRIPT = 3 };

static const char usage[] =
    "usage: cstream [OPTIONS] COMMAND ...\n"
    "\n"
    "options (before the command):\n"
    "  --log-level debug|info|warn|error   (default info); -q, --quiet: warn\n"
    "  --log-format text|logfmt|json       log line format (default text)\n"
    "  --metrics-port N                    serve /metrics and /healthz on port N\n"
    "                                      (0: any free port; overrides cs.metrics)\n"
    "  --metrics-host ADDR                 address to serve them on (default 127.0.0.1)\n"
    "  --status-interval SECONDS           live status line period on a terminal\n"
    "                                      (default 10; 0: off)\n"
    "  --no-progress                       no progress line on a terminal\n"
    "\n"
    "commands:\n"
    "  run SCRIPT [ARGS...]     run the pipelines the Lua script declares;\n"
    "                           key=value ARGS reach the script as cs.args.key,\n"
    "                           all ARGS as arg[1..n]\n"
    "  check SCRIPT [ARGS...]   load and validate the script, print the topology,\n"
    "                           run nothing\n"
    "  spec [BUSTED ARGS...]    run busted specs inside cstream's Lua host\n"
    "  test SPEC [ARGS...]      run the test cases of a spec file (cstream.test):\n"
    "                           your pipeline scripts fed with trades, no I/O\n"
    "  serve-replay CAPTURE [OPTIONS]  serve a capture over WebSocket as the\n"
    "                           Coinbase Exchange feed (--help: its options)\n"
    "  broker [OPTIONS]         an in-memory Kafka broker on loopback for development\n"
    "                           and tests (--help: its options)\n"
    "  version                  print the version\n"
    "\n"
    "exit status: 0 ok (also when stopped by SIGINT/SIGTERM), 1 run-time failure,\n"
    "             2 bad command line, 3 error in the script\n";

/* Operations options (--metrics-port, --status-interval, ...). */
static int g_metrics_port = -1;
static const char *g_metrics_host;
static int64_t g_status_interval_us = 10 * CS_US_PER_S;
static int g_progress = 1, g_quiet, g_level_given;

typedef struct run_state {
  cs_pipeline **pipes;
  size_t n, running;
  uv_signal_t sigint, sigterm;
  cs_metrics *metrics;
  cs_status *status;
} run_state;

/* Everything that is not a pipeline stops with the last one. */
static void stop_operations(run_state *rs) {
  cs_status_stop(rs->status);
  rs->status = NULL;
  cs_metrics_close(rs->metrics);
}

static void on_signal(uv_signal_t *h, int signum) {
  run_state *rs = h->data;
  cs_info("cstream", "%s received: stopping", signum == SIGINT ? "SIGINT" : "SIGTERM");
  for (size_t i = 0; i < rs->n; i++) cs_pipeline_interrupt(rs->pipes[i]);
}

static void on_done(void *ud, cs_pipeline *p) {
  run_state *rs = ud;
  if (--rs->running == 0) {
    uv_close((uv_handle_t *)&rs->sigint, NULL);
    uv_close((uv_handle_t *)&rs->sigterm, NULL);
    stop_operations(rs);
  }
}

static int load(cs_lua **out, const char *script, int argc, char **argv) {
  cs_err err;
  cs_lua *L = cs_lua_create(&err);
  if (!L) {
    fprintf(stderr, "cstream: %s\n", err.msg);
    return EXIT_RUNTIME;
  }
  if (access(script, R_OK) != 0) {
    fprintf(stderr, "cstream: cannot read script '%s'\n", script);
    cs_lua_destroy(L);
    return EXIT_USAGE;
  }
  if (cs_lua_run_script(L, script, argc, argv, &err) != 0) {
    /* The first line is the reason, with file:line; the traceback that
     * follows it is shown at --log-level debug. */
    const char *nl = strchr(err.msg, '\n');
    if (nl && cs_log_get_level() > CS_LOG_DEBUG)
      fprintf(stderr, "cstream: %.*s\n", (int)(nl - err.msg), err.msg);
    else
      fprintf(stderr, "cstream: %s\n", err.msg);
    cs_lua_destroy(L);
    return EXIT_SCRIPT;
  }
  if (cs_lua_pipeline_count(L) == 0) {
    fprintf(stderr, "cstream: %s: the script declares no pipeline (call cs.pipeline{...})\n", script);
    cs_lua_destroy(L);
    return EXIT_SCRIPT;
  }
  *out = L;
  return EXIT_OK;
}

static int cmd_check(const char *script, int argc, char **argv) {
  cs_lua *L;
  int rc = load(&L, script, argc, argv);
  if (rc) return rc;
  cs_err err;
  /* Build every pipeline (without starting it) so that option values the
   * plugins check themselves are checked too. */
  for (size_t i = 0; i < cs_lua_pipeline_count(L); i++) {
    cs_pipeline *p = cs_lua_build_pipeline(L, i, &err);
    if (!p) {
      fprintf(stderr, "cstream: %s\n", err.msg);
      cs_lua_destroy(L);
      return EXIT_SCRIPT;
    }
    cs_pipeline_destroy(p);
  }
  cs_metrics_conf mc;
  if (cs_lua_metrics_conf(L, &mc, &err) != 0) {
    fprintf(stderr, "cstream: %s\n", err.msg);
    cs_lua_destroy(L);
    return EXIT_SCRIPT;
  }
  if (cs_lua_describe(L, stdout, &err) != 0) {
    fprintf(stderr, "cstream: %s\n", err.msg);
    rc = EXIT_RUNTIME;
  } else {
    printf("ok: %zu pipeline(s)\n", cs_lua_pipeline_count(L));
  }
  cs_lua_destroy(L);
  return rc;
}

/* The summary line in the chosen log format (text: exactly as before). */
static void print_summary(const cs_pipeline *p) {
  if (cs_log_get_format() == CS_LOG_TEXT) {
    cs_pipeline_print_summary(p, stderr);
    return;
  }
  char *text = NULL;
  size_t len = 0;
  FILE *f = open_memstream(&text, &len);
  if (!f) {
    cs_pipeline_print_summary(p, stderr);
    return;
  }
  cs_pipeline_print_summary(p, f);
  fclose(f);
  while (len && text[len - 1] == '\n') text[--len] = 0;
  const char *kv = strncmp(text, "summary ", 8) == 0 ? text + 8 : text;
  cs_log_record("summary", kv);
  free(text);
}

/* Metrics (cs.metrics{} or --metrics-port) and the progress/status lines. */
static int start_operations(run_state *rs, cs_lua *L, uv_loop_t *loop) {
  cs_err err;
  cs_metrics_conf mc;
  if (cs_lua_metrics_conf(L, &mc, &err) != 0) {
    fprintf(stderr, "cstream: %s\n", err.msg);
    return EXIT_SCRIPT;
  }
  if (g_metrics_port >= 0) {
    mc.enabled = 1;
    mc.port = g_metrics_port;
  }
  if (g_metrics_host) snprintf(mc.host, sizeof mc.host, "%s", g_metrics_host);
  if (mc.enabled) {
    if (!(rs->metrics = cs_metrics_create())) {
      fprintf(stderr, "cstream: out of memory\n");
      return EXIT_RUNTIME;
    }
    for (size_t i = 0; i < rs->n; i++) {
      cs_pipeline_set_ack_timeout(rs->pipes[i], mc.ack_timeout_us);
      if (cs_metrics_add(rs->metrics, cs_pipeline_collect, cs_pipeline_health, rs->pipes[i]) != 0) {
        fprintf(stderr, "cstream: out of memory\n");
        return EXIT_RUNTIME;
      }
    }
    if (cs_metrics_listen(rs->metrics, loop, mc.host, mc.port, &err) != 0) {
      fprintf(stderr, "cstream: %s\n", err.msg);
      return EXIT_RUNTIME;
    }
  }
  /* A person at a terminal: progress of replays, status of live feeds. */
  if (cs_log_is_tty() && !g_quiet && cs_log_get_level() <= CS_LOG_INFO)
    rs->status = cs_status_start(loop, rs->pipes, rs->n, g_progress, g_status_interval_us);
  return EXIT_OK;
}

/* cstream test SPEC [ARGS...] */
static int cmd_test(int argc, char **argv) {
  if (argc < 1) {
    fprintf(stderr, "cstream: test: missing SPEC\n%s", usage);
    return EXIT_USAGE;
  }
  if (access(argv[0], R_OK) != 0) {
    fprintf(stderr, "cstream: cannot read test spec '%s'\n", argv[0]);
    return EXIT_USAGE;
  }
  /* The pipelines' own log lines (late trades, gaps, ...) are what the
   * tests provoke: shown with an explicit --log-level only. */
  if (!g_level_given) cs_log_set_level(CS_LOG_ERROR);
  cs_err err;
  cs_lua *L = cs_lua_create(&err);
  if (!L) {
    fprintf(stderr, "cstream: %s\n", err.msg);
    return EXIT_RUNTIME;
  }
  int rc = cs_lua_run_tests(L, argv[0], argc - 1, argv + 1);
  cs_lua_destroy(L);
  return rc;
}

static int cmd_run(const char *script, int argc, char **argv) {
  cs_lua *L;
  int rc = load(&L, script, argc, argv);
  if (rc) return rc;
  cs_err err;
  run_state rs = {0};
  uv_loop_t loop;
  uv_loop_init(&loop);
  rs.n = cs_lua_pipeline_count(L);
  rs.pipes = calloc(rs.n, sizeof *rs.pipes);
  for (size_t i = 0; i < rs.n && rc == EXIT_OK; i++) {
    if (!(rs.pipes[i] = cs_lua_build_pipeline(L, i, &err))) {
      fprintf(stderr, "cstream: %s\n", err.msg);
      rc = EXIT_SCRIPT;
    }
  }
  uv_signal_init(&loop, &rs.sigint);
  uv_signal_init(&loop, &rs.sigterm);
  rs.sigint.data = rs.sigterm.data = &rs;
  if (rc == EXIT_OK) rc = start_operations(&rs, L, &loop);
  if (rc == EXIT_OK) {
    uv_signal_start(&rs.sigint, on_signal, SIGINT);
    uv_signal_start(&rs.sigterm, on_signal, SIGTERM);
    for (size_t i = 0; i < rs.n; i++) {
      rs.running++;
      if (cs_pipeline_start(rs.pipes[i], &loop, on_done, &rs, &err) != 0) {
        rs.running--;
        fprintf(stderr, "cstream: %s\n", err.msg);
        rc = EXIT_RUNTIME;
        for (size_t j = 0; j < i; j++) cs_pipeline_interrupt(rs.pipes[j]);
        break;
      }
    }
  }
  if (rs.running == 0) {
    uv_close((uv_handle_t *)&rs.sigint, NULL);
    uv_close((uv_handle_t *)&rs.sigterm, NULL);
    stop_operations(&rs);
  }
  uv_run(&loop, UV_RUN_DEFAULT);
  cs_metrics_destroy(rs.metrics);
  for (size_t i = 0; i < rs.n; i++) {
    if (!rs.pipes[i]) continue;
    if (rc != EXIT_SCRIPT) print_summary(rs.pipes[i]);
    const char *why = cs_pipeline_failure(rs.pipes[i]);
    if (why && rc == EXIT_OK) {
      fprintf(stderr, "cstream: pipeline %s failed: %s\n", cs_pipeline_name(rs.pipes[i]), why);
      rc = EXIT_RUNTIME;
    }
  }
  for (size_t i = 0; i < rs.n; i++) cs_pipeline_destroy(rs.pipes[i]);
  free(rs.pipes);
  if (uv_loop_close(&loop) != 0) cs_warn("cstream", "event loop closed with handles still open");
  cs_lua_destroy(L);
  return rc;
}

int main(int argc, char **argv) {
  /* A closed stdout is a write error the jsonl sink reports, not a signal. */
  signal(SIGPIPE, SIG_IGN);
  srand((unsigned)time(NULL) ^ (unsigned)getpid());
  int i = 1;
  for (; i < argc && argv[i][0] == '-'; i++) {
    if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
      fputs(usage, stdout);
      return EXIT_OK;
    } else if (strcmp(argv[i], "--version") == 0) {
      printf("cstream %s\n", CS_VERSION);
      return EXIT_OK;
    } else if (strcmp(argv[i], "-q") == 0 || strcmp(argv[i], "--quiet") == 0) {
      cs_log_set_level(CS_LOG_WARN);
      g_quiet = g_level_given = 1;
    } else if (strcmp(argv[i], "--log-format") == 0 && i + 1 < argc) {
      cs_log_format f;
      if (cs_log_parse_format(argv[++i], &f) != 0) {
        fprintf(stderr, "cstream: --log-format: '%s' is not text, logfmt or json\n", argv[i]);
        return EXIT_USAGE;
      }
      cs_log_set_format(f);
    } else if (strcmp(argv[i], "--metrics-port") == 0 && i + 1 < argc) {
      char *end;
      long port = strtol(argv[++i], &end, 10);
      if (!argv[i][0] || *end || port < 0 || port > 65535) {
        fprintf(stderr, "cstream: --metrics-port: '%s' is not a TCP port (0-65535)\n", argv[i]);
        return EXIT_USAGE;
      }
      g_metrics_port = (int)port;
    } else if (strcmp(argv[i], "--metrics-host") == 0 && i + 1 < argc) {
      g_metrics_host = argv[++i];
      if (strlen(g_metrics_host) >= sizeof ((cs_metrics_conf *)0)->host) {
        fprintf(stderr, "cstream: --metrics-host: '%s' is too long\n", g_metrics_host);
        return EXIT_USAGE;
      }
    } else if (strcmp(argv[i], "--status-interval") == 0 && i + 1 < argc) {
      char *end;
      double sec = strtod(argv[++i], &end);
      if (!argv[i][0] || *end || !(sec >= 0) || sec > 86400) {
        fprintf(stderr, "cstream: --status-interval: '%s' is not a number of seconds\n", argv[i]);
        return EXIT_USAGE;
      }
      g_status_interval_us = (int64_t)(sec * 1e6);
    } else if (strcmp(argv[i], "--no-progress") == 0) {
      g_progress = 0;
    } else if (strcmp(argv[i], "--log-level") == 0 && i + 1 < argc) {
      cs_log_level lv;
      if (cs_log_parse_level(argv[++i], &lv) != 0) {
        fprintf(stderr, "cstream: --log-level: '%s' is not debug, info, warn or error\n", argv[i]);
        return EXIT_USAGE;
      }
      cs_log_set_level(lv);
      g_level_given = 1;
    } else {
      fprintf(stderr, "cstream: unknown option '%s'\n%s", argv[i], usage);
      return EXIT_USAGE;
    }
  }
  if (i >= argc) {
    fputs(usage, stderr);
    return EXIT_USAGE;
  }
  const char *cmd = argv[i++];
  if (strcmp(cmd, "version") == 0) {
    printf("cstream %s\n", CS_VERSION);
    return EXIT_OK;
  }
  if (strcmp(cmd, "help") == 0) {
    fputs(usage, stdout);
    return EXIT_OK;
  }
  if (strcmp(cmd, "spec") == 0) {
    cs_err err;
    cs_lua *L = cs_lua_create(&err);
    if (!L) {
      fprintf(stderr, "cstream: %s\n", err.msg);
      return EXIT_RUNTIME;
    }
    int rc = cs_lua_run_busted(L, argc - i, argv + i);
    cs_lua_destroy(L);
    return rc;
  }
  if (strcmp(cmd, "serve-replay") == 0) return cs_exchange_command(argc - i, argv + i);
  if (strcmp(cmd, "broker") == 0) return cs_broker_command(argc - i, argv + i);
  if (strcmp(cmd, "test") == 0) return cmd_test(argc - i, argv + i);
  if (strcmp(cmd, "run") == 0 || strcmp(cmd, "check") == 0) {
    if (i >= argc) {
      fprintf(stderr, "cstream: %s: missing SCRIPT\n%s", cmd, usage);
      return EXIT_USAGE;
    }
    const char *script = argv[i++];
    return strcmp(cmd, "run") == 0 ? cmd_run(script, argc - i, argv + i) : cmd_check(script, argc - i, argv + i);
  }
  fprintf(stderr, "cstream: unknown command '%s'\n%s", cmd, usage);
  return EXIT_USAGE;
}
