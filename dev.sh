#!/usr/bin/env bash
# The project's one entry point for people, CI and the Dockerfile:
#
#   ./dev.sh main    install what is missing, build, run the main job
#                    (scripts/replay.lua on the bundled capture)
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
RUNTIME_LIBS="libluajit-5.1-2 libuv1 libsimdjson14 zlib1g libwebsockets17 libcurl4 librdkafka1 libstdc++6"
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

case "${1:-}" in
  deps) deps ;;
  build) install_missing $BUILD_DEPS && build build ;;
  deps-build) install_missing $BUILD_DEPS ;;
  deps-runtime) install_missing $RUNTIME_LIBS $RUN_DEPS ;;
  runtime-packages) echo $RUNTIME_LIBS $RUN_DEPS ;;
  main)
    deps
    build build
    log "cstream run scripts/replay.lua (data/sample.jsonl -> 30 s candles)"
    ./build/cstream run scripts/replay.lua
    ;;
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
