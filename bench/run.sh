#!/usr/bin/env bash
# Throughput benchmark of cstream: replay (rate 0) -> tumbling 30 s -> discard,
# without and with a Lua filter. Each case runs RUNS times (default 3); the
# best run is reported: trades/s, ns/trade, peak RSS (MB).
#
#   bash bench/run.sh                       # uses build/cstream
#   CSTREAM=/path/cstream BENCH_N=2000000 RUNS=5 bash bench/run.sh
#
# The input (BENCH_N trades, default 1,000,000, made by bench/gen_trades.py) is
# generated once into BENCH_DIR (default ${TMPDIR:-/tmp}/cstream-bench) and
# reused. Wall time and peak RSS come from /usr/bin/time -f '%e %M'; the wall
# time used for the rates is also taken with date +%s%N around each run, as %e
# only has 10 ms resolution. The trade count is read from cstream's summary line.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CSTREAM="${CSTREAM:-$ROOT/build/cstream}"
BENCH_N="${BENCH_N:-1000000}"
RUNS="${RUNS:-3}"
BENCH_DIR="${BENCH_DIR:-${TMPDIR:-/tmp}/cstream-bench}"
PYTHON="${PYTHON:-/usr/bin/python3}"
DATA="$BENCH_DIR/trades-$BENCH_N.jsonl"

die() { echo "bench: $*" >&2; exit 1; }
[[ -x "$CSTREAM" ]] || die "no cstream binary at $CSTREAM (build it, or set CSTREAM)"
[[ -x /usr/bin/time ]] || die "/usr/bin/time is missing (apt-get install time)"

mkdir -p "$BENCH_DIR"
if [[ ! -s "$DATA" ]]; then
  echo "bench: generating $BENCH_N trades into $DATA" >&2
  "$PYTHON" "$ROOT/bench/gen_trades.py" "$BENCH_N" "$DATA.tmp"
  mv "$DATA.tmp" "$DATA"
fi

WORK="$(mktemp -d "${TMPDIR:-/tmp}/cstream-bench-run.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT

cat >"$WORK/plain.lua" <<'EOF'
local cs = require "cstream"
cs.pipeline {
  name   = "bench",
  source = cs.replay { path = cs.args.input, rate = 0 },
  window = cs.tumbling { size = "30s", lateness = "5s", by = "product_id" },
  sink   = cs.discard {},
}
EOF

cat >"$WORK/filter.lua" <<'EOF'
local cs = require "cstream"
cs.pipeline {
  name   = "bench",
  source = cs.replay { path = cs.args.input, rate = 0 },
  filter = function(t) return t.price > 0 end,
  window = cs.tumbling { size = "30s", lateness = "5s", by = "product_id" },
  sink   = cs.discard {},
}
EOF

# run_case NAME SCRIPT: RUNS runs; prints one result line.
run_case() {
  local name="$1" script="$2" i t0 t1 trades best=""
  : >"$WORK/$name.results"
  for ((i = 1; i <= RUNS; i++)); do
    t0=$(date +%s%N)
    if ! /usr/bin/time -f '%e %M' -o "$WORK/time.out" \
        "$CSTREAM" run "$script" "input=$DATA" >"$WORK/stdout" 2>"$WORK/stderr"; then
      cat "$WORK/stderr" >&2
      die "$name: cstream failed (run $i)"
    fi
    t1=$(date +%s%N)
    trades=$(awk '/summary pipeline=/ { for (i = 1; i <= NF; i++) if ($i ~ /^trades=/) { sub(/^trades=/, "", $i); print $i } }' "$WORK/stderr" | tail -n 1)
    [[ -n "$trades" ]] || { cat "$WORK/stderr" >&2; die "$name: no summary line on stderr"; }
    # wall_ns trades time_e rss_kb
    echo "$((t1 - t0)) $trades $(tail -n 1 "$WORK/time.out")" >>"$WORK/$name.results"
  done
  awk -v name="$name" -v runs="$RUNS" '
    { ns = $1; n = $2; e = $3; rss = $4
      if (best == "" || ns < best) { best = ns; bn = n; be = e }
      if (minrss == "" || rss < minrss) minrss = rss
      all = all sprintf(" %.3f", ns / 1e9) }
    END {
      if (bn <= 0) { printf "%-8s no trades counted\n", name; exit 1 }
      printf "%-8s trades=%d  %12.0f trades/s  %8.1f ns/trade  peak RSS %7.1f MB  (best of %d; wall s:%s; time %%e %s)\n",
             name, bn, bn / (best / 1e9), best / bn, minrss / 1024, runs, all, be
    }' "$WORK/$name.results"
}

echo "cstream: $CSTREAM"
echo "input:   $DATA ($(wc -l <"$DATA") lines, $(du -m "$DATA" | cut -f1) MB)"
run_case plain "$WORK/plain.lua"
run_case filter "$WORK/filter.lua"
