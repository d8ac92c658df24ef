#!/usr/bin/env bash
# The project's one entry point for people, CI and the Dockerfile:
#
#   ./dev.sh main    install what is missing, build, run the main job:
#                    Coinbase -> embedded Kafka -> 30 s candles -> ClickHouse
#                    (scripts/pipeline.lua; offline: the bundled capture
#                    through the replay exchange), then print the candles
#                    read back from ClickHouse
#   ./dev.sh test    install what is missing, build (also with ASan/UBSan),
#                    run every test: C unit tests, busted specs, end-to-end
#   ./dev.sh deps    install the Debian packages only
#   ./dev.sh build   configure and build into build/
#   ./dev.sh bench   run the benchmarks in bench/
#   ./dev.sh deps-build        install the build dependencies only (Dockerfile)
#   ./dev.sh deps-runtime      install the run-time packages only (Dockerfile)
#   ./dev.sh runtime-packages  print the run-time package list
set -euo pipefail
cd "$(dirname "$0")"

# Build and run-time dependencies: Debian 12 packages only.
BUILD_DEPS="build-essential cmake pkg-config libluajit-5.1-dev libuv1-dev libsimdjson-dev zlib1g-dev libwebsockets-dev libcurl4-openssl-dev librdkafka-dev"
RUN_DEPS="lua-cjson libwebsockets-evlib-uv ca-certificates"
TEST_DEPS="lua-busted python3 python3-websockets openssl clickhouse-server kcat python3-prometheus-client docker-compose"
# What the binary needs to run, and nothing else (the Dockerfile's runtime
# image): the packages of the shared libraries it links (readelf -d
# build/cstream), and RUN_DEPS: libwebsockets' libuv plugin, which it
# dlopens (ldd does not show it), lua-cjson for Lua aggregates, the CA
# certificates TLS is verified against. tests/e2e/test_deploy.py checks this
# list against ldd.
RUNTIME_LIBS="libluajit-5.1-2 libuv1 libsimdjson14 zlib1g libwebsockets17 libcurl4 librdkafka1 libstdc++6 libgcc-s1"
BENCH_DEPS="time clickhouse-client"

log() { printf '\n== %s\n' "$*" >&2; }

deps() { install_missing $BUILD_DEPS $RUN_DEPS $TEST_DEPS "$@"; }

# install_missing PACKAGE...: apt-get install those not installed yet.
install_missing() {
  local missing=()
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if [ ${#missing[@]} -eq 0 ]; then return 0; fi
  log "installing Debian packages: ${missing[*]}"
  local sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -qq
  $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# build DIR [cmake args...]
build() {
  local dir=${1:-build}
  shift || true
  log "building into $dir"
  cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo "$@" >/dev/null
  cmake --build "$dir" -j "$(nproc)" -- --no-print-directory >/dev/null
}

run_tests() {
  local dir=$1
  log "tests in $dir"
  (cd "$dir" && ctest --output-on-failure -j 2 --timeout 600)
}


# ---------------------------------------------------------------- main job
# A ClickHouse server of the project's own (Debian's clickhouse-server, data
# in .cstream/clickhouse, loopback, a free port) unless CLICKHOUSE_URL names
# one. Stopped when the main job ends; its data stays for the next run.
WORK=${CSTREAM_WORK:-.cstream} # the main job's files: ClickHouse's data, logs
CH_PID=""
start_clickhouse() {
  if [ -n "${CLICKHOUSE_URL:-}" ]; then
    log "using ClickHouse at $CLICKHOUSE_URL (CLICKHOUSE_URL)"
    return 0
  fi
  mkdir -p "$WORK"
  local out=$WORK/clickhouse.out
  : >"$out"
  python3 tests/e2e/clickhouse_server.py --dir "$WORK/clickhouse" >"$out" 2>&1 &
  CH_PID=$!
  local i
  for i in $(seq 1 300); do
    if grep -q " at http://" "$out"; then break; fi
    if ! kill -0 "$CH_PID" 2>/dev/null; then cat "$out" >&2; echo "dev.sh: clickhouse-server did not start" >&2; exit 1; fi
    sleep 0.1
  done
  CLICKHOUSE_URL=$(grep -o "http://[0-9.:]*" "$out" | head -1)
  [ -n "$CLICKHOUSE_URL" ] || { cat "$out" >&2; echo "dev.sh: clickhouse-server did not start in 30 s" >&2; exit 1; }
  export CLICKHOUSE_URL
  log "started a local clickhouse-server at $CLICKHOUSE_URL (data in $WORK/clickhouse; stopped at the end)"
}

stop_clickhouse() {
  if [ -n "$CH_PID" ] && kill -0 "$CH_PID" 2>/dev/null; then
    kill -TERM "$CH_PID" 2>/dev/null || true
    wait "$CH_PID" 2>/dev/null || true
  fi
  CH_PID=""
}

# ch_query SQL: a query over ClickHouse's HTTP interface (user default, or
# CLICKHOUSE_USER with the password from CLICKHOUSE_PASSWORD, sent as a
# header so it shows in no process list).
ch_query() {
  local auth=()
  if [ -n "${CLICKHOUSE_PASSWORD:-}" ]; then
    auth=(-H "X-ClickHouse-User: ${CLICKHOUSE_USER:-default}" -H @<(printf 'X-ClickHouse-Key: %s\n' "$CLICKHOUSE_PASSWORD"))
  elif [ -n "${CLICKHOUSE_USER:-}" ]; then
    auth=(-H "X-ClickHouse-User: $CLICKHOUSE_USER")
  fi
  curl -sS --fail-with-body "${auth[@]}" "$CLICKHOUSE_URL/" --data-binary "$1"
}

print_candles() {
  local db=${CLICKHOUSE_DATABASE:-cstream} since=$1
  log "candles stored in ClickHouse ($CLICKHOUSE_URL, $db.candles_30s FINAL)"
  ch_query "SELECT product_id, window_start, trades, open, high, low, close, round(vwap, 2) AS vwap,
              round(volume, 8) AS volume, round(buy_volume, 8) AS buy_volume, round(sell_volume, 8) AS sell_volume
            FROM $db.candles_30s FINAL WHERE version >= $since
            ORDER BY window_start, product_id FORMAT PrettyCompactNoEscapes"
  ch_query "SELECT concat(toString(count()), ' candles of ', toString(uniqExact(product_id)), ' product(s), ',
              toString(sum(trades)), ' trades') FROM $db.candles_30s FINAL WHERE version >= $since"
}

# Is Coinbase's feed reachable? A TCP connection within 5 s.
online() {
  [ "${CSTREAM_OFFLINE:-0}" != 1 ] || return 1
  timeout 5 bash -c 'exec 3<>/dev/tcp/ws-feed.exchange.coinbase.com/443' 2>/dev/null
}

main_job() {
  CSTREAM=${CSTREAM:-./build/cstream}
  trap stop_clickhouse EXIT
  start_clickhouse
  local since
  since=$(($(date +%s) * 1000000))
  if online; then
    local secs=${DURATION:-120}
    log "live: Coinbase (${PRODUCTS:-BTC-USD}) -> embedded Kafka -> 30 s candles -> ClickHouse for ${secs} s (DURATION=0: until Ctrl-C)"
    if [ "$secs" = 0 ]; then
      $CSTREAM run scripts/pipeline.lua || true
    else
      timeout -s INT "$secs" $CSTREAM run scripts/pipeline.lua || true
    fi
  else
    log "ws-feed.exchange.coinbase.com:443 is not reachable: the same topology on the bundled capture
   (data/sample.jsonl, served by the replay exchange at 60x real time: cstream serve-replay)"
    local ex=$WORK/exchange.out
    mkdir -p "$WORK"
    $CSTREAM serve-replay data/sample.jsonl --speed 60 --linger 2 --exit-when-done >"$ex" 2>"$WORK/exchange.err" &
    local ex_pid=$! port="" i
    for i in $(seq 1 100); do
      port=$(sed -n 's/^listening port=//p' "$ex")
      [ -n "$port" ] && break
      sleep 0.1
    done
    [ -n "$port" ] || { cat "$WORK/exchange.err" >&2; echo "dev.sh: the replay exchange did not start" >&2; exit 1; }
    $CSTREAM run scripts/pipeline.lua url="ws://127.0.0.1:$port" products=BTC-USD,ETH-USD \
      exit_on_close=true exit_idle=3s
    wait "$ex_pid" || true
  fi
  print_candles "$since"
}

case "${1:-}" in
  deps) deps ;;
  build) install_missing $BUILD_DEPS && build build ;;
  deps-build) install_missing $BUILD_DEPS ;;
  deps-runtime) install_missing $RUNTIME_LIBS $RUN_DEPS ;;
  runtime-packages) echo $RUNTIME_LIBS $RUN_DEPS ;;
  main)
    deps curl
    build build
    main_job
    ;;
  main-run) main_job ;; # the main job alone: no install, no build (CSTREAM=path/to/cstream; tests)
  test)
    deps
    build build
    build build-asan -DCS_SANITIZE=ON
    run_tests build
    run_tests build-asan
    ;;
  bench)
    deps $BENCH_DEPS
    build build
    bash bench/run.sh
    ;;
  *)
    sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'
    exit 2
    ;;
esac
