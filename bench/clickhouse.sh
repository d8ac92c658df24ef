#!/usr/bin/env bash
# ClickHouse sink benchmark (not a timed test): raw trades -> ClickHouse in
# rows/s with RowBinary and JSONEachRow, beside clickhouse-client inserting
# the same rows from a file (the practical limit), and the latency of window
# rows from emission to being visible in a query (p50/p99).
#
#   bash bench/clickhouse.sh                  # uses build/cstream, 1,000,000 trades, best of 3
#   CSTREAM=/path/cstream BENCH_N=2000000 RUNS=5 bash bench/clickhouse.sh
#
# Starts its own clickhouse-server (Debian's, on free loopback ports, in a
# temporary directory) and stops it. Needs clickhouse-server and, for the
# comparison, clickhouse-client. Figures: docs/clickhouse.md.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
exec "${PYTHON:-/usr/bin/python3}" "$ROOT/bench/clickhouse_bench.py" \
  --cstream "${CSTREAM:-$ROOT/build/cstream}" --n "${BENCH_N:-1000000}" --runs "${RUNS:-3}" \
  --data-dir "${BENCH_DIR:-${TMPDIR:-/tmp}/cstream-bench}"
