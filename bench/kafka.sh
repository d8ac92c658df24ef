#!/usr/bin/env bash
# Kafka benchmark (not a timed test), on `cstream broker` (librdkafka's mock
# cluster behind cstream's relay, loopback), each cstream figure beside kcat
# doing the same work on the same broker:
#
#   produce   replay -> cs.kafka (v1 trade records keyed by product)   vs
#             kcat -P of the same key/value pairs, same producer settings
#             (idempotent, lz4, linger 5 ms, 10,000 messages per batch)
#   consume   cs.kafka -> tumbling 30 s -> cs.discard                   vs
#             kcat -C to /dev/null, over a topic filled beforehand that
#             stays under the mock broker's ~5 MiB per partition: the
#             records' 3 products are split into 48 (BTC-USD-07, ..., each
#             with its own consecutive trade ids), keyed, so the topic
#             spreads over the partitions, each in time order as cs.kafka
#             writes it (checked: nothing trimmed)
#             and the same without a window (-> discard): the source and
#             the parser alone
#   both      the consumer running while the replay produces, paced at
#             BOTH_RATE times real time (default 800: ~120,000 trades/s, as
#             the data's 3 products fill only 3 partitions and a consumer
#             further than ~5 MiB behind would lose data on this broker):
#             its rate and the produce-to-window latency (p50/p99 of the
#             message timestamp -> trade in its window)
#
# cstream's consume rate is taken from the source's own figure (first to
# last message: the group join, ~3 s on the mock broker, is left out); kcat
# and the producers are timed from start to exit. Best of RUNS (default 3).
#
#   bash bench/kafka.sh
#   CSTREAM=/path/cstream BENCH_N=2000000 RUNS=5 PARTITIONS=64 bash bench/kafka.sh
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CSTREAM="${CSTREAM:-$ROOT/build/cstream}"
BENCH_N="${BENCH_N:-1000000}"
RUNS="${RUNS:-3}"
PARTITIONS="${PARTITIONS:-48}"
BOTH_RATE="${BOTH_RATE:-800}"
BENCH_DIR="${BENCH_DIR:-${TMPDIR:-/tmp}/cstream-bench}"
PYTHON="${PYTHON:-/usr/bin/python3}"
DATA="$BENCH_DIR/trades-$BENCH_N.jsonl"
KCAT_P=(-X enable.idempotence=true -X compression.codec=lz4 -X linger.ms=5 -X batch.num.messages=10000)

die() { echo "bench: $*" >&2; exit 1; }
[[ -x "$CSTREAM" ]] || die "no cstream binary at $CSTREAM (build it, or set CSTREAM)"
command -v kcat >/dev/null || die "kcat is missing (apt-get install kcat)"

mkdir -p "$BENCH_DIR"
if [[ ! -s "$DATA" ]]; then
  echo "bench: generating $BENCH_N trades into $DATA" >&2
  "$PYTHON" "$ROOT/bench/gen_trades.py" "$BENCH_N" "$DATA.tmp"
  mv "$DATA.tmp" "$DATA"
fi

WORK="$(mktemp -d "${TMPDIR:-/tmp}/cstream-kbench.XXXXXX")"
BROKER_PID=""
cleanup() {
  [[ -n "$BROKER_PID" ]] && kill -INT "$BROKER_PID" 2>/dev/null && wait "$BROKER_PID" 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

now_ns() { date +%s%N; }

# The broker.
"$CSTREAM" -q broker --port 0 --partitions "$PARTITIONS" >"$WORK/broker.out" 2>"$WORK/broker.err" &
BROKER_PID=$!
for _ in $(seq 100); do grep -q "listening port=" "$WORK/broker.out" 2>/dev/null && break; sleep 0.05; done
PORT=$(sed -n 's/^listening port=//p' "$WORK/broker.out")
[[ -n "$PORT" ]] || die "the broker did not start: $(cat "$WORK/broker.err")"
B="127.0.0.1:$PORT"

cat >"$WORK/ingest.lua" <<'EOF'
local cs = require "cstream"
cs.pipeline {
  name   = "ingest",
  source = cs.replay { path = cs.args.input, rate = tonumber(cs.arg("rate", 0)) },
  sink   = cs.kafka { brokers = cs.args.brokers, topic = cs.args.topic },
}
EOF
cat >"$WORK/agg.lua" <<'EOF'
local cs = require "cstream"
cs.pipeline {
  name   = "agg",
  source = cs.kafka { brokers = cs.args.brokers, topic = cs.args.topic, group = cs.args.group,
                      start = "earliest", exit_idle = "2s", partition_idle = "2s" },
  window = cs.tumbling { size = "30s", lateness = "5s", by = "product_id" },
  sink   = cs.discard {},
}
EOF
cat >"$WORK/nowindow.lua" <<'EOF'
local cs = require "cstream"
cs.pipeline {
  name   = "agg",
  source = cs.kafka { brokers = cs.args.brokers, topic = cs.args.topic, group = cs.args.group,
                      start = "earliest", exit_idle = "2s", partition_idle = "2s" },
  sink   = cs.discard {},
}
EOF
cat >"$WORK/records.lua" <<'EOF'
local cs = require "cstream"
cs.pipeline { name = "records", source = cs.replay { path = cs.args.input },
              sink = cs.jsonl { path = cs.args.out, truncate = true } }
EOF

# The same messages for kcat: key TAB record, and the records alone.
"$CSTREAM" -q run "$WORK/records.lua" "input=$DATA" "out=$WORK/records.jsonl" 2>/dev/null
"$PYTHON" - "$WORK/records.jsonl" "$WORK/keyed.tsv" "$WORK/many.tsv" <<'EOF'
import json, sys
ids = {}
with open(sys.argv[1], "rb") as f, open(sys.argv[2], "wb") as out, open(sys.argv[3], "wb") as many:
    for i, line in enumerate(f):
        d = json.loads(line)
        out.write(d["product_id"].encode() + b"\t" + line)
        p = "%s-%02d" % (d["product_id"], (i * 7919) % 16)
        ids[p] = ids.get(p, 1000) + 1
        d["product_id"], d["trade_id"] = p, ids[p]
        many.write(p.encode() + b"\t" + json.dumps(d, separators=(",", ":")).encode() + b"\n")
EOF
MSG_BYTES=$(wc -c <"$WORK/records.jsonl")
N=$(wc -l <"$WORK/records.jsonl")

summary_field() { sed -n "s/.*summary pipeline=$1 .* $2=\([0-9.]*\).*/\1/p" "$3" | head -1; }
rate_of_source() { sed -n 's/.* messages in .* (\([0-9]*\)\/s).*/\1/p' "$1" | head -1; }
best() { sort -g | tail -1; }
fmt() { printf "%'12.0f" "$1"; }

echo "cstream: $CSTREAM"
echo "broker:  cstream broker on $B ($PARTITIONS partitions per topic)"
echo "input:   $DATA ($N trades; trade records $((MSG_BYTES / N)) bytes on average)"

# ---- produce
cs=() kc=()
for i in $(seq "$RUNS"); do
  "$CSTREAM" run "$WORK/ingest.lua" "input=$DATA" "brokers=$B" "topic=p-cs-$i" 2>"$WORK/ingest.err" || die "ingest failed: $(tail -3 "$WORK/ingest.err")"
  t=$(summary_field ingest elapsed_s "$WORK/ingest.err")
  cs+=("$("$PYTHON" -c "print($N / $t)")")
  t0=$(now_ns)
  kcat -P -b "$B" -t "p-kc-$i" -K $'\t' "${KCAT_P[@]}" -l "$WORK/keyed.tsv" 2>/dev/null
  t1=$(now_ns)
  kc+=("$("$PYTHON" -c "print($N * 1e9 / ($t1 - $t0))")")
done
P_CS=$(printf '%s\n' "${cs[@]}" | best)
P_KC=$(printf '%s\n' "${kc[@]}" | best)

# ---- consume, over a topic filled beforehand (48 products: spread over the partitions)
kcat -P -b "$B" -t consume -K $'\t' "${KCAT_P[@]}" -l "$WORK/many.tsv" 2>/dev/null
HAVE=$(kcat -C -b "$B" -t consume -e -q -f '.' | wc -c)
[[ "$HAVE" -eq "$N" ]] || echo "bench: note: the broker kept $HAVE of $N messages (~5 MiB per partition); set PARTITIONS higher" >&2
cs=() kc=() nw=()
for i in $(seq "$RUNS"); do
  "$CSTREAM" run "$WORK/agg.lua" "brokers=$B" topic=consume "group=c-$i" 2>"$WORK/agg.err" || die "aggregate failed: $(tail -3 "$WORK/agg.err")"
  cs+=("$(rate_of_source "$WORK/agg.err")")
  "$CSTREAM" run "$WORK/nowindow.lua" "brokers=$B" topic=consume "group=n-$i" 2>"$WORK/agg.err" || die "consume failed: $(tail -3 "$WORK/agg.err")"
  nw+=("$(rate_of_source "$WORK/agg.err")")
  t0=$(now_ns)
  kcat -C -b "$B" -t consume -e -q -f '%s\n' >/dev/null
  t1=$(now_ns)
  kc+=("$("$PYTHON" -c "print($HAVE * 1e9 / ($t1 - $t0))")")
done
C_CS=$(printf '%s\n' "${cs[@]}" | best)
C_KC=$(printf '%s\n' "${kc[@]}" | best)
C_NW=$(printf '%s\n' "${nw[@]}" | best)

# ---- both at once: the consumer first, then the replay produces
"$CSTREAM" run "$WORK/agg.lua" "brokers=$B" topic=live group=live 2>"$WORK/live.err" &
AGG=$!
sleep 4 # the group join
"$CSTREAM" run "$WORK/ingest.lua" "input=$DATA" "brokers=$B" topic=live "rate=$BOTH_RATE" 2>"$WORK/live-ingest.err"
wait "$AGG" || die "live aggregate failed: $(tail -3 "$WORK/live.err")"
L_IN=$("$PYTHON" -c "print($N / $(summary_field ingest elapsed_s "$WORK/live-ingest.err"))")
L_CS=$(rate_of_source "$WORK/live.err")
L_P50=$(summary_field agg latency_p50_us "$WORK/live.err")
L_P99=$(summary_field agg latency_p99_us "$WORK/live.err")
L_TRADES=$(summary_field agg trades "$WORK/live.err")
grep -q "no longer on the broker" "$WORK/live.err" && echo "bench: the consumer fell behind the ~5 MiB bound" >&2

echo
printf "%-44s %14s %14s %8s\n" "" "cstream /s" "kcat /s" "ratio"
printf "%-44s %s %s %7.0f%%\n" "produce: replay -> Kafka (trade records)" "$(fmt "$P_CS")" "$(fmt "$P_KC")" \
  "$("$PYTHON" -c "print(100 * $P_CS / $P_KC)")"
printf "%-44s %s %s %7.0f%%\n" "consume: Kafka -> windows 30 s -> discard" "$(fmt "$C_CS")" "$(fmt "$C_KC")" \
  "$("$PYTHON" -c "print(100 * $C_CS / $C_KC)")"
printf "%-44s %s %s %7.0f%%\n" "consume: Kafka -> discard (no window)" "$(fmt "$C_NW")" "$(fmt "$C_KC")" \
  "$("$PYTHON" -c "print(100 * $C_NW / $C_KC)")"
printf "%-44s %s %14s\n" "both: replay (rate $BOTH_RATE) -> Kafka" "$(fmt "$L_IN")" "(producer)"
printf "%-44s %s %14s   %s trades\n" "both: Kafka -> windows, while produced" "$(fmt "$L_CS")" "" "$L_TRADES"
printf "%-44s %10.1f ms %10.1f ms (p50, p99)\n" "both: produce -> window latency" \
  "$("$PYTHON" -c "print($L_P50 / 1000)")" "$("$PYTHON" -c "print($L_P99 / 1000)")"
echo "(best of $RUNS; $(nproc) CPUs; broker, producer and consumer share them)"
