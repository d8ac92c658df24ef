/* cstream: the command line.
 *
 *   cstream run SCRIPT [ARGS...]    run the pipelines a Lua script declares
 *   cstream check SCRIPT [ARGS...]  load and validate, print the topology
 *   cstream spec [BUSTED ARGS...]   run busted specs inside this host
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

#include "cs_log.h"
#include "cs_lua.h"
#include "cs_pipeline.h"

enum { EXIT_OK = 0, EXIT_RUNTIME = 1, EXIT_USAGE = 2, EXIT_SCRIPT = 3 };

static const char usage[] =
    "usage: cstream [--log-level debug|info|warn|error] [-q] COMMAND ...\n"
    "\n"
    "commands:\n"
    "  run SCRIPT [ARGS...]     run the pipelines the Lua script declares;\n"
    "                           key=value ARGS reach the script as cs.args.key,\n"
    "                           all ARGS as arg[1..n]\n"
    "  check SCRIPT [ARGS...]   load and validate the script, print the topology,\n"
    "                           run nothing\n"
    "  spec [BUSTED ARGS...]    run busted specs inside cstream's Lua host\n"
    "  version                  print the version\n"
    "\n"
    "exit status: 0 ok (also when stopped by SIGINT/SIGTERM), 1 run-time failure,\n"
    "             2 bad command line, 3 error in the script\n";

typedef struct run_state {
  cs_pipeline **pipes;
  size_t n, running;
  uv_signal_t sigint, sigterm;
} run_state;

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
  if (cs_lua_describe(L, stdout, &err) != 0) {
    fprintf(stderr, "cstream: %s\n", err.msg);
    rc = EXIT_RUNTIME;
  } else {
    printf("ok: %zu pipeline(s)\n", cs_lua_pipeline_count(L));
  }
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
  }
  uv_run(&loop, UV_RUN_DEFAULT);
  for (size_t i = 0; i < rs.n; i++) {
    if (!rs.pipes[i]) continue;
    if (rc != EXIT_SCRIPT) cs_pipeline_print_summary(rs.pipes[i], stderr);
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
    } else if (strcmp(argv[i], "--log-level") == 0 && i + 1 < argc) {
      cs_log_level lv;
      if (cs_log_parse_level(argv[++i], &lv) != 0) {
        fprintf(stderr, "cstream: --log-level: '%s' is not debug, info, warn or error\n", argv[i]);
        return EXIT_USAGE;
      }
      cs_log_set_level(lv);
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
