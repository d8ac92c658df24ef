#!/usr/bin/env bash
# Live-source throughput: the replay exchange (cstream serve-replay, speed 0:
# as fast as the client reads) -> cs.coinbase over ws:// on loopback ->
# tumbling 30 s -> discard. Prints messages/s and the frame-to-window
# latency p50/p99 from the pipeline's summary. Not a timed test.
#
#   bash bench/coinbase.sh                 # 1,000,000 trades
#   BENCH_N=300000 bash bench/coinbase.sh
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CSTREAM="${CSTREAM:-$ROOT/build/cstream}"
BENCH_N="${BENCH_N:-1000000}"
BENCH_DIR="${BENCH_DIR:-${TMPDIR:-/tmp}/cstream-bench}"
DATA="$BENCH_DIR/trades-$BENCH_N.jsonl"
mkdir -p "$BENCH_DIR"
[[ -s "$DATA" ]] || /usr/bin/python3 "$ROOT/bench/gen_trades.py" "$BENCH_N" "$DATA"
WORK="$(mktemp -d)"
trap 'kill $SRV $CLI 2>/dev/null || true; rm -rf "$WORK"' EXIT

"$CSTREAM" -q serve-replay "$DATA" --port 0 --speed 0 --linger 0.2 --exit-when-done >"$WORK/srv.out" 2>"$WORK/srv.err" &
SRV=$!
for _ in $(seq 100); do grep -q "listening port=" "$WORK/srv.out" 2>/dev/null && break; sleep 0.05; done
PORT=$(sed -n 's/.*listening port=\([0-9]*\).*/\1/p' "$WORK/srv.out")
PRODUCTS=$(head -c 2000000 "$DATA" | grep -o '"product_id":"[^"]*"' | sort -u | sed 's/"product_id"://' | paste -sd, -)
cat >"$WORK/live.lua" <<LUA
local cs = require "cstream"
cs.pipeline { name = "bench",
  source = cs.coinbase { url = "ws://127.0.0.1:$PORT", products = { $PRODUCTS }, idle_timeout = "60s" },
  window = cs.tumbling { size = "30s", lateness = "5s" },
  sink = cs.discard {} }
LUA
start=$(date +%s%N)
"$CSTREAM" -q run "$WORK/live.lua" 2>"$WORK/cli.err" &
CLI=$!
# The server closes the connection 0.2 s after the capture's end; the
# client logs that (and would reconnect): that is the end of the run.
for _ in $(seq 6000); do grep -q "reconnecting in" "$WORK/cli.err" 2>/dev/null && break; sleep 0.01; done
end=$(( $(date +%s%N) - 200000000 ))
kill -INT $CLI
wait $CLI || true
summary=$(grep "summary pipeline=bench" "$WORK/cli.err")
lines=$(sed -n 's/.* lines=\([0-9]*\).*/\1/p' <<<"$summary")
trades=$(sed -n 's/.* trades=\([0-9]*\).*/\1/p' <<<"$summary")
p50=$(sed -n 's/.*latency_p50_us=\([0-9]*\).*/\1/p' <<<"$summary")
p99=$(sed -n 's/.*latency_p99_us=\([0-9]*\).*/\1/p' <<<"$summary")
awk -v l="$lines" -v t="$trades" -v ns="$((end - start))" -v p50="$p50" -v p99="$p99" 'BEGIN {
  s = ns / 1e9;
  printf "live     messages=%d trades=%d in %.2f s: %.0f messages/s; frame->window latency p50 %d us, p99 %d us\n", l, t, s, l / s, p50, p99 }'
