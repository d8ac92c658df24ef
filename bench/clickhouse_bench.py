#!/usr/bin/env python3
"""ClickHouse sink benchmark (not a timed test): run by bench/clickhouse.sh.

Starts a throw-away clickhouse-server (tests/e2e/clickhouse_server.py), then:

  1. raw trades -> ClickHouse: `cstream run` replay (rate 0, no window) ->
     cs.clickhouse, RowBinary and JSONEachRow, RUNS runs each into a fresh
     table; rows/s = trades / wall time of the whole process (start-up,
     table check and final acknowledgement included); peak RSS;
  2. the practical limit: clickhouse-client (native protocol) inserting the
     same rows from a file (exported from the table, RowBinary and
     JSONEachRow) into a table of the same schema;
  3. the same replay into cs.discard: the pipeline without ClickHouse;
  4. window rows: a paced replay (windows close about once a second) while a
     poller queries the table every 10 ms; latency = first seen - emission
     (the row's version column is the wall clock when the sink took it);
     p50/p99/max for the default batch_delay (500ms) and for 100ms.

Standard library only; run with Debian's /usr/bin/python3.
"""
import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "e2e"))
from clickhouse_server import ClickHouseServer, available  # noqa: E402

TRADES_LUA = """\
local cs = require "cstream"
local sink = cs.discard {}
if cs.args.url then
  sink = cs.clickhouse { url = cs.args.url, database = "bench", table = cs.args.table, format = cs.args.format,
                         dead_letter = cs.args.dead }
end
cs.pipeline { name = "b", source = cs.replay { path = cs.args.input, rate = 0 }, sink = sink }
"""

WINDOWS_LUA = """\
local cs = require "cstream"
cs.pipeline {
  name = "lat",
  source = cs.replay { path = cs.args.input, rate = tonumber(cs.args.rate) },
  window = cs.tumbling { size = "30s", lateness = "0s" },
  sink = cs.clickhouse { url = cs.args.url, database = "bench", table = cs.args.table,
                         batch_delay = cs.args.delay, dead_letter = cs.args.dead },
}
"""

COLS = "exchange, product_id, trade_id, time_us, price, size, taker_side, sequence, recv_time_us, last_match, version"


def run_measured(args):
    """-> (wall s, peak RSS MB, stderr text)"""
    t0 = time.monotonic()
    p = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    err_chunks = []
    t = threading.Thread(target=lambda: err_chunks.append(p.stderr.read()))
    t.start()
    _, status, ru = os.wait4(p.pid, 0)
    wall = time.monotonic() - t0
    t.join()
    p.returncode = os.waitstatus_to_exitcode(status)
    err = b"".join(err_chunks).decode("utf-8", "replace")
    if p.returncode != 0:
        raise RuntimeError("%s failed (%d):\n%s" % (" ".join(args), p.returncode, err[-3000:]))
    return wall, ru.ru_maxrss / 1024.0, err


def summary_value(err, key):
    for line in err.splitlines():
        if "summary pipeline=" in line:
            for tok in line.split():
                if tok.startswith(key + "="):
                    return int(tok.split("=", 1)[1])
    raise RuntimeError("no %s in the summary:\n%s" % (key, err[-2000:]))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--cstream", default=os.path.join(ROOT, "build", "cstream"))
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--data-dir", default=os.path.join(os.environ.get("TMPDIR", "/tmp"), "cstream-bench"))
    a = ap.parse_args()
    why = available()
    if why:
        sys.exit("bench: " + why)
    client = shutil.which("clickhouse-client")
    os.makedirs(a.data_dir, exist_ok=True)
    data = os.path.join(a.data_dir, "trades-%d.jsonl" % a.n)
    if not os.path.exists(data) or os.path.getsize(data) == 0:
        sys.stderr.write("bench: generating %d trades into %s\n" % (a.n, data))
        subprocess.run([sys.executable, os.path.join(ROOT, "bench", "gen_trades.py"), str(a.n), data + ".tmp"],
                       check=True)
        os.rename(data + ".tmp", data)
    work = tempfile.mkdtemp(prefix="cstream-ch-bench-")
    results = []
    try:
        with ClickHouseServer(os.path.join(work, "server")) as ch:
            version = ch.query("SELECT version()").strip()
            script = os.path.join(work, "trades.lua")
            with open(script, "w") as f:
                f.write(TRADES_LUA)
            dead = os.path.join(work, "dead.jsonl")
            print("cstream %s, clickhouse-server %s, %d trades (%d MB of JSON), best of %d" % (
                a.cstream, version, a.n, os.path.getsize(data) >> 20, a.runs), flush=True)

            def case(name, extra):
                best = None
                for i in range(a.runs):
                    table = "%s_%d" % (name.split()[-1].lower(), i)
                    args = [a.cstream, "-q", "run", script, "input=" + data, "dead=" + dead, "table=" + table] + extra
                    if extra:
                        args.append("url=" + ch.url)
                    wall, rss, err = run_measured(args)
                    n = summary_value(err, "trades")
                    if extra:
                        got = int(ch.query("SELECT count() FROM bench.%s" % table))
                        if got != n:
                            raise RuntimeError("%s: %d rows in the table, %d trades" % (name, got, n))
                    if best is None or wall < best[0]:
                        best = (wall, rss, n)
                wall, rss, n = best
                results.append((name, n / wall, rss))
                print("%-28s %10.0f rows/s  %6.2f s  peak RSS %6.1f MB" % (name, n / wall, wall, rss), flush=True)

            case("discard (no ClickHouse)", [])
            case("cstream RowBinary", ["format=RowBinary"])
            case("cstream JSONEachRow", ["format=JSONEachRow"])

            if client:
                for fmt in ("RowBinary", "JSONEachRow"):
                    src = os.path.join(work, "rows." + fmt)
                    req = urllib.request.Request(ch.url + "/", data=(
                        "SELECT %s FROM bench.rowbinary_0 FORMAT %s" % (COLS, fmt)).encode())
                    with urllib.request.urlopen(req) as r, open(src, "wb") as f:
                        shutil.copyfileobj(r, f, 1 << 20)
                    best = None
                    for i in range(a.runs):
                        table = "client_%s_%d" % (fmt.lower(), i)
                        ch.query("CREATE TABLE bench.%s AS bench.rowbinary_0" % table)
                        with open(src, "rb") as f:
                            t0 = time.monotonic()
                            subprocess.run([client, "--host", "127.0.0.1", "--port", str(ch.tcp_port), "--query",
                                            "INSERT INTO bench.%s (%s) FORMAT %s" % (table, COLS, fmt)],
                                           stdin=f, check=True)
                            wall = time.monotonic() - t0
                        best = wall if best is None else min(best, wall)
                    name = "clickhouse-client %s" % fmt
                    results.append((name, a.n / best, 0))
                    print("%-28s %10.0f rows/s  %6.2f s  (file of %d MB)" % (
                        name, a.n / best, best, os.path.getsize(src) >> 20), flush=True)
            else:
                print("clickhouse-client not installed: no comparison (apt-get install clickhouse-client)")

            # Window rows: emission -> visible in a query.
            small = os.path.join(work, "small.jsonl")
            with open(data, "rb") as f, open(small, "wb") as out:
                for i, line in enumerate(f):
                    if i >= 60000:
                        break
                    out.write(line)
            wscript = os.path.join(work, "windows.lua")
            with open(wscript, "w") as f:
                f.write(WINDOWS_LUA)
            for delay in ("500ms", "100ms"):
                table = "lat_" + delay
                seen = {}
                stop = threading.Event()

                def poll():
                    while not stop.is_set():
                        try:
                            text = ch.query("SELECT product_id, toUInt32(window_start), version FROM bench.%s "
                                            "FORMAT TabSeparated" % table)
                        except Exception:
                            text = ""
                        now = time.time()
                        for line in text.splitlines():
                            p, ws, v = line.split("\t")
                            seen.setdefault((p, ws), (now, int(v) / 1e6))
                        time.sleep(0.01)
                # the table must exist before polling: a tiny run creates it
                run_measured([a.cstream, "-q", "run", wscript, "input=/dev/null", "rate=0", "url=" + ch.url,
                              "table=" + table, "delay=" + delay, "dead=" + dead])
                th = threading.Thread(target=poll)
                th.start()
                run_measured([a.cstream, "-q", "run", wscript, "input=" + small, "rate=30", "url=" + ch.url,
                              "table=" + table, "delay=" + delay, "dead=" + dead])
                time.sleep(0.5)
                stop.set()
                th.join()
                lat = sorted((s - v) * 1000 for s, v in seen.values())
                if not lat:
                    raise RuntimeError("no window rows seen")
                p99 = lat[min(len(lat) - 1, int(round(0.99 * (len(lat) - 1))))]
                print("window rows, batch_delay %-5s  %d rows: latency emission -> visible p50 %.0f ms, p99 %.0f ms, "
                      "max %.0f ms (poll every 10 ms)" % (delay, len(lat), statistics.median(lat), p99, lat[-1]),
                      flush=True)
    finally:
        if not os.environ.get("CSTREAM_BENCH_KEEP"):
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
