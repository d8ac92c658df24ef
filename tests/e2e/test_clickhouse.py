#!/usr/bin/env python3
"""End-to-end tests of the ClickHouse sink (cs.clickhouse) against a real
clickhouse-server (Debian 12's 18.16) that the tests start themselves on free
loopback ports with a throw-away data directory (clickhouse_server.py).
Standard library only; run under Debian's /usr/bin/python3:

    /usr/bin/python3 tests/e2e/test_clickhouse.py --cstream build/cstream
    /usr/bin/python3 tests/e2e/test_clickhouse.py --cstream build/cstream -v Faults

What is checked, always against expectations computed here independently
(reference.py's windows, trades read from the capture by reference.classify):
  * window rows land with exact figures (compared field by field with the
    reference, and bit for bit with what cstream's jsonl sink wrote);
  * raw trades (a pipeline without a window) land in the trades table, in
    RowBinary (exact doubles) and JSONEachRow;
  * re-emission replaces: a second run, and on_late = "update" re-emissions,
    leave one row per window under FINAL and in the argMax view, the latest;
  * an existing table with a missing/mistyped column or the wrong engine is a
    start-up error naming it;
  * rows the server refuses (a user aggregate it cannot parse) go to the
    dead-letter file with the server's message while the rest is inserted;
    NaN/inf and out-of-range times never leave cstream and are dead-lettered;
  * ClickHouse down at start, killed (SIGKILL) and restarted mid-run, and
    hanging (SIGSTOP) mid-run: nothing lost, nothing doubled under FINAL;
  * SIGINT while ClickHouse is down: the pipeline keeps retrying; a second
    SIGINT gives up, counted; a wrong password is a clear error without
    retries and the password appears nowhere; https with a private CA;
  * a sharded cluster (two servers, two shards): windows written through a
    Distributed table sharded by cityHash64(product_id), re-emitted by
    on_late = "update" and by a second run, are exactly the expected ones
    under FINAL on each shard, every row of a product on one shard; a shard
    down holds synchronous inserts back (nothing acknowledged before it has
    its rows) while insert_sync = false acknowledges once queued; targets
    that are not ReplacingMergeTree(version), sharding keys that are not
    product_id alone, a target missing here or on a shard: start-up errors
    naming them; scripts/pipeline.lua with CLICKHOUSE_TABLE and
    CLICKHOUSE_CREATE=false.

Skips (exit 0) when clickhouse-server is not installed. CSTREAM_E2E_KEEP=1
keeps the temporary directory (server logs, scripts, dead-letter files).
"""
import json
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
import gen_capture  # noqa: E402
import reference as ref  # noqa: E402
import test_replay as tr  # noqa: E402
from clickhouse_server import ClickHouseServer, QueryError, available, free_port  # noqa: E402

CSTREAM = None
US = ref.US
PASSWORD = "pw-Xq7!vR2#kL9"  # distinctive, to search the logs for

AGG_COLS = ("trades", "avg_price", "vwap", "open", "high", "low", "close", "volume", "buy_volume", "sell_volume")

WINDOWS_LUA = """\
local cs = require "cstream"
cs.pipeline {
  name   = "w",
  source = cs.replay { path = cs.args.input, rate = cs.arg("rate", 0) },
  window = cs.tumbling { size = cs.arg("size", "30") .. "s", lateness = cs.arg("lateness", "5s"),
                         on_late = cs.arg("on_late", "drop") },
  sink   = {
    cs.jsonl { path = cs.args.out, truncate = true },
    cs.clickhouse { url = cs.args.url, database = cs.args.db, table = cs.arg("table", "candles_30s"),
                    format = cs.arg("format", "RowBinary"), dead_letter = cs.args.dead,
                    batch_bytes = cs.arg("batch_bytes", 4194304), buffer_bytes = cs.arg("buffer_bytes", 33554432),
                    batch_delay = cs.arg("batch_delay", "500ms"), timeout = cs.arg("timeout", "30s") },
  },
}
"""

TRADES_LUA = """\
local cs = require "cstream"
cs.pipeline {
  name   = "t",
  source = cs.replay { path = cs.args.input, rate = cs.arg("rate", 0) },
  sink   = cs.clickhouse { url = cs.args.url, database = cs.args.db, table = cs.arg("table", "trades"),
                           format = cs.arg("format", "RowBinary"), dead_letter = cs.args.dead,
                           batch_bytes = cs.arg("batch_bytes", 4194304), buffer_bytes = cs.arg("buffer_bytes", 33554432),
                           batch_delay = cs.arg("batch_delay", "500ms"), timeout = cs.arg("timeout", "30s") },
}
"""

# Both kinds from one capture, in one process (the restart tests).
BOTH_LUA = WINDOWS_LUA + TRADES_LUA.split("\n", 1)[1]

AUTH_LUA = """\
local cs = require "cstream"
local opts = { url = cs.args.url, database = cs.args.db, user = "writer", dead_letter = cs.args.dead }
if cs.args.pwenv then opts.password_env = cs.args.pwenv end
if cs.args.pwfile then opts.password_file = cs.args.pwfile end
cs.pipeline {
  name   = "a",
  source = cs.replay { path = cs.args.input },
  window = cs.tumbling { size = "30s", lateness = "5s" },
  sink   = cs.clickhouse(opts),
}
"""

MAX_SIZE_LUA = """\
local cs = require "cstream"
local limit = tonumber(cs.args.limit)
cs.pipeline {
  name   = "m",
  source = cs.replay { path = cs.args.input },
  window = cs.tumbling { size = "30s", lateness = "5s", aggregates = { "all", cs.aggregate {
    name = "max_size", init = function() return 0 end,
    add = function(m, t) if t.size > m then return t.size end end,
    -- a value the Float64 column cannot take: ClickHouse refuses these rows
    result = function(m) if m > limit then return "n/a" end return m end } } },
  sink   = cs.clickhouse { url = cs.args.url, database = cs.args.db, table = "candles_max",
                           extra_columns = { "max_size Float64" }, dead_letter = cs.args.dead },
}
"""


# ------------------------------------------------------------------ helpers
def trade_line(tid, when, price="100.5", size="1", side="buy", product="BTC-USD"):
    return ('{"type":"match","trade_id":%d,"maker_order_id":"a","taker_order_id":"b","side":"%s",'
            '"size":"%s","price":"%s","product_id":"%s","sequence":%d,"time":"%s"}' % (
                tid, side, size, price, product, 1000 + tid, when)).encode()


def expected_trades(lines):
    """What a pipeline without a window stores, computed from the capture:
    every valid trade, keyed like the table; a key delivered again keeps the
    last delivery (the highest version)."""
    out = {}
    for raw in lines:
        kind, t, _ = ref.classify(raw)
        if kind != "trade":
            continue
        seq = json.loads(raw.decode()).get("sequence")
        out[(t.product_id, t.time, t.trade_id)] = {
            "exchange": "coinbase", "product_id": t.product_id, "trade_id": t.trade_id, "time_us": t.time,
            "price": t.price, "size": t.size,
            "taker_side": "buy" if t.side == "sell" else "sell",  # Coinbase's side is the maker's
            "sequence": seq if type(seq) is int else -1, "recv_time_us": 0,
            "last_match": 1 if t.type == "last_match" else 0}
    return out


def ch_window_rows(ch, db, table, final="FINAL", extra=""):
    """The table's rows in the reference's order and form (RFC 3339 strings)."""
    cols = ", ".join(AGG_COLS)
    text = ch.query("SELECT product_id, toUInt32(window_start) AS ws, toUInt32(window_end) AS we, %s%s, version "
                    "FROM %s.%s %s ORDER BY window_end, product_id, window_start FORMAT JSONEachRow"
                    % (cols, extra, db, table, final), output_format_json_quote_64bit_integers=0)
    rows = []
    for line in text.splitlines():
        r = json.loads(line)
        r["window_start"] = ref.fmt_time(r.pop("ws") * US)
        r["window_end"] = ref.fmt_time(r.pop("we") * US)
        rows.append(r)
    return rows


def ch_trades(ch, db, table):
    text = ch.query("SELECT * FROM %s.%s FINAL FORMAT JSONEachRow" % (db, table),
                    output_format_json_quote_64bit_integers=0)
    out = {}
    for line in text.splitlines():
        r = json.loads(line)
        r.pop("version")
        key = (r["product_id"], r["time_us"], r["trade_id"])
        if key in out:
            raise AssertionError("key %r twice under FINAL" % (key,))
        out[key] = r
    return out


def as_pairs(row):
    return [(k, row[k]) for k in ref.ROW_KEYS]


def read_jsonl(path):
    with open(path, "rb") as f:
        return [json.loads(l) for l in f.read().splitlines()]


def sink_summary(stderr, name):
    """The sink's 'clickhouse summary: k=v ...' line -> dict of ints."""
    for line in stderr.decode("utf-8", "replace").splitlines():
        if re.search(r"\[sink clickhouse\.%s(#\d+)?\]" % re.escape(name), line) and "clickhouse summary:" in line:
            return {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", line.split("clickhouse summary:", 1)[1])}
    raise AssertionError("no clickhouse summary for sink clickhouse.%s in:\n%s" % (
        name, stderr.decode("utf-8", "replace")[-3000:]))


class ClickHouseCase(unittest.TestCase):
    maxDiff = None
    server_kw = {}

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="cstream-ch-e2e-")
        cls.ch = ClickHouseServer(os.path.join(cls.tmp, "server"), **cls.server_kw)
        cls.ch.start()
        cls.n = 0

    @classmethod
    def tearDownClass(cls):
        cls.ch.close()
        if os.environ.get("CSTREAM_E2E_KEEP"):
            sys.stderr.write("kept %s\n" % cls.tmp)
        else:
            shutil.rmtree(cls.tmp, ignore_errors=True)

    def setUp(self):
        # One database per test: tests do not see each other's tables.
        type(self).n += 1
        self.db = "t%d_%s" % (self.n, re.sub(r"\W", "_", self._testMethodName)[:40])
        self.dead = self.path(self.db + "-dead.jsonl")

    def path(self, name):
        return os.path.join(self.tmp, name)

    def script(self, name, text):
        p = self.path(name)
        with open(p, "w") as f:
            f.write(text)
        return p

    def capture(self, seed, **kw):
        data = gen_capture.generate(seed, **kw)
        p = self.path("cap-%d-%s.jsonl" % (seed, "-".join("%s%s" % kv for kv in sorted(kw.items()))))
        with open(p, "wb") as f:
            f.write(data)
        return p, ref.split_lines(data)

    def args(self, **kw):
        base = {"url": self.ch.url, "db": self.db, "dead": self.dead}
        base.update(kw)
        return ["%s=%s" % kv for kv in base.items()]

    def run_ok(self, script, name, timeout=120, env=None, **kw):
        p = subprocess.run([CSTREAM, "run", script] + self.args(**kw), stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=timeout, env=env)
        err = p.stderr.decode("utf-8", "replace")
        self.assertEqual(p.returncode, 0, "exit %d:\n%s" % (p.returncode, err[-4000:]))
        s = tr.parse_summaries(p.stderr)
        self.assertIn(name, s, err[-3000:])
        return p, s[name]

    def start(self, script, **kw):
        proc = subprocess.Popen([CSTREAM, "run", script] + self.args(**kw), stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE)
        self.addCleanup(lambda: proc.poll() is None and (proc.kill(), proc.communicate()))
        return proc

    def finish(self, proc, timeout=120):
        try:
            _, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            _, err = proc.communicate()
            self.fail("cstream did not finish within %d s:\n%s" % (timeout, err.decode("utf-8", "replace")[-4000:]))
        return err

    def assert_windows(self, db, table, want, what, exact_rows=None):
        """FINAL rows and the argMax view equal the expected rows."""
        got = ch_window_rows(self.ch, db, table)
        m = tr.rows_mismatch([as_pairs(r) for r in got], want, "%s: %s.%s FINAL: " % (what, db, table))
        if m:
            self.fail(m)
        view = ch_window_rows(self.ch, db, table + "_latest", final="")
        self.assertEqual(view, got, "%s: the view %s_latest differs from FINAL" % (what, table))
        if exact_rows is not None:
            # RowBinary carries the doubles cstream computed: bit for bit.
            exp = [[r[k] for k in ref.ROW_KEYS] for r in exact_rows]
            self.assertEqual([[r[k] for k in ref.ROW_KEYS] for r in got], exp,
                             "%s: rows differ from cstream's own jsonl output" % what)
        return got

    def assert_trades(self, db, table, want, what, tol=0.0):
        got = ch_trades(self.ch, db, table)
        missing = sorted(set(want) - set(got))[:5]
        extra = sorted(set(got) - set(want))[:5]
        self.assertFalse(missing or extra, "%s: %d trades missing (%s), %d unexpected (%s)" % (
            what, len(set(want) - set(got)), missing, len(set(got) - set(want)), extra))
        for k, w in want.items():
            g = got[k]
            for f, v in w.items():
                if isinstance(v, float):
                    ok = g[f] == v if tol == 0 else math.isclose(g[f], v, rel_tol=tol)
                else:
                    ok = g[f] == v
                self.assertTrue(ok, "%s: trade %s field %s: got %r, want %r" % (what, k, f, g[f], v))
        return got


# ------------------------------------------------------------------ tests
class Windows(ClickHouseCase):
    def test_windows_match_reference(self):
        script = self.script("windows.lua", WINDOWS_LUA)
        cases = [("generated seed 1", self.capture(1), "30", "5s"),
                 ("generated seed 4, 60 s windows", self.capture(4), "60", "0s"),
                 ("data/coinbase-exchange-matches-2025-08-22.jsonl",
                  (os.path.join(ROOT, "data", "coinbase-exchange-matches-2025-08-22.jsonl"), None), "30", "5s")]
        for i, (what, (cap, lines), size, lateness) in enumerate(cases):
            with self.subTest(what):
                if lines is None:
                    lines = ref.split_lines(ref.read_bytes(cap))
                table = "c%d" % i
                out = self.path("%s-%s.jsonl" % (self.db, table))
                _, s = self.run_ok(script, "w", input=cap, out=out, table=table, size=size, lateness=lateness)
                want, wc = ref.run_lines(lines, int(size) * US, ref.parse_duration(lateness))
                self.assertGreater(len(want), 0)
                self.assertEqual((s["windows"], s["rows_acked"]), (wc["windows"], 2 * wc["windows"]),
                                 "%s: every row acknowledged by both sinks" % what)
                self.assert_windows(self.db, table, want, what, exact_rows=read_jsonl(out))
                self.assertFalse(os.path.exists(self.dead), "%s: nothing should be dead-lettered" % what)

    def test_example_script(self):
        # scripts/clickhouse.lua as shipped, from the repository root.
        p = subprocess.run([CSTREAM, "run", "scripts/clickhouse.lua", "url=" + self.ch.url, "database=" + self.db],
                           cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=120)
        self.assertEqual(p.returncode, 0, p.stderr.decode()[-3000:])
        want, wc = ref.run_file(os.path.join(ROOT, "data", "sample.jsonl"), 30 * US, 5 * US)
        self.assertEqual(tr.parse_summaries(p.stderr)["candles-ch"]["rows_acked"], wc["windows"])
        self.assert_windows(self.db, "candles_30s", want, "scripts/clickhouse.lua")

    def test_json_format_and_small_batches(self):
        # JSONEachRow, one request per few rows: the same windows (18.16
        # parses some JSON decimals 1 ulp off, hence the tolerance).
        cap, lines = self.capture(2)
        out = self.path(self.db + ".jsonl")
        p, s = self.run_ok(self.script("windows.lua", WINDOWS_LUA), "w", input=cap, out=out,
                           format="JSONEachRow", batch_bytes=1024, buffer_bytes=2048, batch_delay="1ms")
        want, _ = ref.run_lines(lines, 30 * US, 5 * US)
        self.assert_windows(self.db, "candles_30s", want, "JSONEachRow")
        self.assertGreater(sink_summary(p.stderr, "w")["requests"], 5)

    def test_trades_table(self):
        cap, lines = self.capture(3)
        want = expected_trades(lines)
        self.assertGreater(len(want), 500)
        script = self.script("trades.lua", TRADES_LUA)
        for fmt, tol in (("RowBinary", 0.0), ("JSONEachRow", 1e-15)):
            with self.subTest(format=fmt):
                table = "trades_" + fmt.lower()
                p, s = self.run_ok(script, "t", input=cap, table=table, format=fmt, batch_bytes=8192)
                self.assertEqual(s["rows_acked"], s["trades"])
                self.assertEqual(sink_summary(p.stderr, "t")["inserted"], s["trades"])
                self.assert_trades(self.db, table, want, fmt, tol)
        # The key: (product_id, time_us, trade_id), partitioned by month.
        meta = self.ch.query("SELECT engine_full FROM system.tables WHERE database = '%s' AND name = 'trades_rowbinary'"
                             % self.db)
        self.assertIn("ReplacingMergeTree(version)", meta)
        self.assertIn("ORDER BY (product_id, time_us, trade_id)", meta)

    def test_reemission_replaces(self):
        cap, lines = self.capture(5)
        script = self.script("windows.lua", WINDOWS_LUA)
        want, _ = ref.run_lines(lines, 30 * US, 5 * US)
        out = self.path(self.db + ".jsonl")
        self.run_ok(script, "w", input=cap, out=out)
        v1 = int(self.ch.query("SELECT max(version) FROM %s.candles_30s" % self.db))
        # A restart that replays the same input emits every window again.
        self.run_ok(script, "w", input=cap, out=out)
        raw = int(self.ch.query("SELECT count() FROM %s.candles_30s" % self.db))
        got = self.assert_windows(self.db, "candles_30s", want, "after the second run", exact_rows=read_jsonl(out))
        self.assertGreaterEqual(raw, len(want))
        self.assertGreater(min(r["version"] for r in got), v1, "the later emission must win")

    def test_late_updates_replace(self):
        # on_late = "update": windows emitted again within the run. The
        # latest emission of each key (from the jsonl sink's output, in
        # order) is what FINAL and the view must show.
        cap, lines = self.capture(7)
        out = self.path(self.db + ".jsonl")
        _, s = self.run_ok(self.script("windows.lua", WINDOWS_LUA), "w", input=cap, out=out,
                           lateness="1s", on_late="update")
        emitted = read_jsonl(out)
        latest = {}
        for r in emitted:
            latest[(r["product_id"], r["window_start"])] = r
        self.assertGreater(s["late_updates"], 0)
        self.assertGreater(len(emitted), len(latest), "the capture should make windows be emitted again")
        want = sorted(latest.values(), key=lambda r: (r["window_end"], r["product_id"].encode(), r["window_start"]))
        self.assert_windows(self.db, "candles_30s", want, "late updates", exact_rows=want)
        self.assertEqual(int(self.ch.query("SELECT count() FROM %s.candles_30s" % self.db)), len(emitted))


class Schema(ClickHouseCase):
    GOOD = ("product_id String, window_start DateTime('UTC'), window_end DateTime('UTC'), trades UInt64, "
            "avg_price Float64, vwap Float64, open Float64, high Float64, low Float64, close Float64, "
            "volume Float64, buy_volume Float64, sell_volume Float64, version UInt64")

    def create(self, table, cols, engine="ReplacingMergeTree(version)", order="(product_id, window_start)",
               **settings):
        self.ch.query("CREATE DATABASE IF NOT EXISTS %s" % self.db)
        self.ch.query("CREATE TABLE %s.%s (%s) ENGINE = %s PARTITION BY toYYYYMM(window_start) ORDER BY %s"
                      % (self.db, table, cols, engine, order), **settings)

    def run_fail(self, script, **kw):
        t0 = time.monotonic()
        p = subprocess.run([CSTREAM, "run", script] + self.args(**kw), stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=60)
        err = p.stderr.decode("utf-8", "replace")
        self.assertEqual(p.returncode, 1, "want exit 1, got %d:\n%s" % (p.returncode, err[-3000:]))
        self.assertLess(time.monotonic() - t0, 20)
        self.assertNotIn("retrying", err, "a permanent error must not be retried:\n" + err[-3000:])
        return err

    def test_wrong_schema_fails_at_start_naming_the_column(self):
        script = self.script("windows.lua", WINDOWS_LUA)
        cap = os.path.join(ROOT, "data", "sample.jsonl")
        cases = [
            ("mistyped", self.GOOD.replace("vwap Float64", "vwap String"),
             {}, ["column 'vwap' is String, expected Float64"]),
            ("missing", self.GOOD.replace(", sell_volume Float64", ""),
             {}, ["has no column 'sell_volume'", "Float64"]),
            ("plain_mergetree", self.GOOD, {"engine": "MergeTree()"}, ["MergeTree", "ReplacingMergeTree(version)"]),
            ("no_version", self.GOOD, {"engine": "ReplacingMergeTree()"}, ["not ReplacingMergeTree(version)"]),
            ("other_key", self.GOOD, {"order": "(window_start, product_id)"}, ["ordered by (window_start, product_id)"]),
        ]
        for table, cols, kw, needles in cases:
            with self.subTest(table):
                self.create(table, cols, **kw)
                err = self.run_fail(script, input=cap, out=self.path(table + ".jsonl"), table=table)
                for n in needles + ["%s.%s" % (self.db, table)]:
                    self.assertIn(n, err, "stderr lacks %r:\n%s" % (n, err[-3000:]))
                self.assertEqual(int(self.ch.query("SELECT count() FROM %s.%s" % (self.db, table))), 0)
        # Compatible variants are accepted: LowCardinality(String) (18.16
        # needs a flag to create it), DateTime without a time zone.
        self.create("compatible", self.GOOD.replace("product_id String", "product_id LowCardinality(String)")
                    .replace("window_end DateTime('UTC')", "window_end DateTime"),
                    allow_experimental_low_cardinality_type=1)
        out = self.path("compatible.jsonl")
        self.run_ok(script, "w", input=cap, out=out, table="compatible")
        want, _ = ref.run_file(cap, 30 * US, 5 * US)
        self.assert_windows(self.db, "compatible", want, "compatible table", exact_rows=read_jsonl(out))

    def test_trades_table_schema(self):
        self.ch.query("CREATE DATABASE IF NOT EXISTS %s" % self.db)
        self.ch.query("CREATE TABLE %s.trades (exchange String, product_id String, trade_id Int64, time_us DateTime, "
                      "price Float64, size Float64, taker_side Enum8('buy' = 1, 'sell' = 2), sequence Int64, "
                      "recv_time_us Int64, last_match UInt8, version UInt64) ENGINE = ReplacingMergeTree(version) "
                      "ORDER BY (product_id, time_us, trade_id)" % self.db)
        err = self.run_fail(self.script("trades.lua", TRADES_LUA), input=os.path.join(ROOT, "data", "sample.jsonl"))
        self.assertIn("column 'time_us' is DateTime, expected Int64", err)

    def test_user_aggregate_needs_a_column(self):
        s = self.script("noextra.lua", MAX_SIZE_LUA.replace('extra_columns = { "max_size Float64" }, ', ""))
        err = self.run_fail(s, input=os.path.join(ROOT, "data", "sample.jsonl"), limit="1e9")
        self.assertIn("user aggregate 'max_size' has no column in %s.candles_max" % self.db, err)
        self.assertIn('extra_columns = { "max_size Float64" }', err)

    def test_create_false_needs_the_table(self):
        s = self.script("nocreate.lua", WINDOWS_LUA.replace("timeout = cs.arg", "create = false, timeout = cs.arg"))
        err = self.run_fail(s, input=os.path.join(ROOT, "data", "sample.jsonl"), out=self.path("nc.jsonl"))
        self.assertIn("table %s.candles_30s does not exist" % self.db, err)


class DeadLetters(ClickHouseCase):
    def test_server_refused_rows_go_to_dead_letter(self):
        cap, lines = self.capture(8)
        # Independent expectation: the reference's windows plus each
        # window's largest trade size, computed here.
        sizes = {}
        orig = ref._Agg.add

        def add(agg, t):
            orig(agg, t)
            k = (agg.product_id, agg.start)
            sizes[k] = max(sizes.get(k, 0.0), t.size)
        ref._Agg.add = add
        try:
            want, wc = ref.run_lines(lines, 30 * US, 5 * US)
        finally:
            ref._Agg.add = orig
        for r in want:
            r["max_size"] = sizes[(r["product_id"], ref.parse_time(r["window_start"]))]
        limit = sorted(r["max_size"] for r in want)[len(want) * 3 // 4]
        refused = [r for r in want if r["max_size"] > limit]
        kept = [r for r in want if r["max_size"] <= limit]
        self.assertTrue(refused and kept)
        p, s = self.run_ok(self.script("maxsize.lua", MAX_SIZE_LUA), "m", input=cap, limit=repr(limit))
        self.assertEqual(s["rows_acked"], wc["windows"], "dead-lettered rows count as handled")
        ss = sink_summary(p.stderr, "m")
        self.assertEqual((ss["refused_by_server"], ss["inserted"], ss["given_up"]), (len(refused), len(kept), 0))
        self.assertGreater(ss["splits"], 0)
        # The rest is inserted, with the user aggregate in its column.
        got = ch_window_rows(self.ch, self.db, "candles_max", extra=", max_size")
        m = tr.rows_mismatch([as_pairs(r) for r in got], kept, "inserted rows: ")
        self.assertIsNone(m, m)
        for g, w in zip(got, kept):  # JSONEachRow: 18.16 may read a decimal 1 ulp off
            self.assertTrue(math.isclose(g["max_size"], w["max_size"], rel_tol=1e-15), (g, w))
        # Each refused row is in the dead-letter file with the server's message.
        dead = read_jsonl(self.dead)
        self.assertEqual(sorted((d["row"]["product_id"], d["row"]["window_start"]) for d in dead),
                         sorted((r["product_id"], ref.parse_time(r["window_start"]) // US) for r in refused))
        for d in dead:
            self.assertEqual(d["code"], 27, d)
            self.assertIn("max_size", d["error"])
            self.assertTrue(d["error"].startswith("Code: 27"), d["error"])
            self.assertEqual(d["row"]["max_size"], "n/a")
            self.assertEqual(d["table"], "%s.candles_max" % self.db)
            self.assertRegex(d["sink"], r"^clickhouse\.m(#\d+)?$")
        self.assertIn("record not stored", p.stderr.decode())

    def test_nan_inf_and_out_of_range_are_dead_lettered(self):
        huge = "1" + "0" * 300  # a valid decimal; price * size overflows: vwap = inf
        lines = [trade_line(1, "2025-08-22T20:00:01Z"),
                 trade_line(2, "2025-08-22T20:00:02Z", price=huge, size="1" + "0" * 10, product="ETH-USD"),
                 trade_line(3, "2025-08-22T20:00:40Z", price="101"),
                 trade_line(4, "2200-01-01T00:00:00Z", price="102")]  # past DateTime's 2106
        cap = self.path(self.db + ".jsonl")
        with open(cap, "wb") as f:
            f.write(b"\n".join(lines) + b"\n")
        want, wc = ref.run_lines(lines, 30 * US, 5 * US)
        out = self.path(self.db + "-out.jsonl")
        p, s = self.run_ok(self.script("windows.lua", WINDOWS_LUA), "w", input=cap, out=out)
        self.assertEqual((s["windows"], s["rows_acked"]), (4, 8))
        ok = [r for r in want if r["product_id"] == "BTC-USD" and r["window_start"].startswith("2025")]
        self.assertEqual(len(ok), 2)
        got = ch_window_rows(self.ch, self.db, "candles_30s")
        self.assertIsNone(tr.rows_mismatch([as_pairs(r) for r in got], ok))
        dead = read_jsonl(self.dead)
        self.assertEqual(len(dead), 2, dead)
        by = {d["row"]["product_id"] + str(d["row"]["window_start"]): d for d in dead}
        inf = by["ETH-USD%d" % (ref.parse_time("2025-08-22T20:00:00Z") // US)]
        self.assertIsNone(inf["code"])
        self.assertIn("vwap is +inf", inf["error"])
        self.assertIsNone(inf["row"]["vwap"])
        far = by["BTC-USD%d" % (ref.parse_time("2200-01-01T00:00:00Z") // US)]
        self.assertIn("outside ClickHouse DateTime's range", far["error"])
        ss = sink_summary(p.stderr, "w")
        self.assertEqual((ss["rejected_before_sending"], ss["inserted"]), (2, 2))


class Faults(ClickHouseCase):
    def test_down_at_start(self):
        port = free_port()
        late = ClickHouseServer(self.path("late-server"), http_port=port)
        try:
            cap, lines = self.capture(9)
            out = self.path(self.db + ".jsonl")
            proc = self.start(self.script("windows.lua", WINDOWS_LUA), url=late.url, input=cap, out=out)
            time.sleep(2.0)
            self.assertIsNone(proc.poll(), "cstream must wait for ClickHouse")
            late.start()
            err = self.finish(proc)
            text = err.decode("utf-8", "replace")
            self.assertEqual(proc.returncode, 0, text[-3000:])
            self.assertRegex(text, r"connecting at http://127\.0\.0\.1:%d failed \(no answer\): .*[Cc]onnect" % port)
            self.assertIn("answers again", text)
            want, _ = ref.run_lines(lines, 30 * US, 5 * US)
            self.ch, saved = late, self.ch
            try:
                self.assert_windows(self.db, "candles_30s", want, "down at start", exact_rows=read_jsonl(out))
            finally:
                self.ch = saved
        finally:
            late.close()

    def outage_run(self, outage, what):
        """Windows and trades of one paced capture while `outage` hits the
        server mid-run; then everything must be there exactly once."""
        cap, lines = self.capture(1, minutes=3.0)
        out = self.path(self.db + ".jsonl")
        # 3 min of event time at rate 30: ~6 s. Small buffers: the outage
        # fills them, so back-pressure pauses the source.
        proc = self.start(self.script("both.lua", BOTH_LUA), input=cap, out=out, rate=30,
                          batch_bytes=2048, buffer_bytes=4096, batch_delay="100ms", timeout="1s")
        time.sleep(1.5)
        before = int(self.ch.query("SELECT count() FROM %s.trades" % self.db))
        self.assertGreater(before, 0, "trades should be arriving before the outage")
        outage()
        err = self.finish(proc)
        text = err.decode("utf-8", "replace")
        self.assertEqual(proc.returncode, 0, text[-4000:])
        s = tr.parse_summaries(err)
        for name in ("w", "t"):
            ss = sink_summary(err, name)
            self.assertEqual(ss["given_up"], 0)
            self.assertGreater(ss["retries"], 0, "%s: sink %s saw no outage:\n%s" % (what, name, text[-3000:]))
        self.assertGreater(sink_summary(err, "t")["buffer_full"], 0,
                           "back-pressure: the trades sink should have refused writes (buffer full)")
        want, _ = ref.run_lines(lines, 30 * US, 5 * US)
        self.assert_windows(self.db, "candles_30s", want, what, exact_rows=read_jsonl(out))
        self.assert_trades(self.db, "trades", expected_trades(lines), what)
        self.assertEqual(s["t"]["rows_acked"], s["t"]["trades"])
        self.assertEqual(s["w"]["rows_acked"], 2 * s["w"]["windows"])

    def test_killed_and_restarted_mid_run(self):
        def outage():
            self.ch.stop(kill=True)
            time.sleep(2.5)
            self.ch.start()
        self.outage_run(outage, "SIGKILL + restart")

    def test_hanging_server_mid_run(self):
        def outage():
            self.ch.pause()  # SIGSTOP: connections hang; requests time out
            time.sleep(3.0)
            self.ch.resume()
        self.outage_run(outage, "SIGSTOP + SIGCONT")

    def test_sigint_while_down(self):
        cap, lines = self.capture(10)
        script = self.script("trades.lua", TRADES_LUA)
        n = len(expected_trades(lines))
        self.ch.stop()
        try:
            # First SIGINT: the pipeline keeps retrying; a second one gives up, counted.
            proc = self.start(script, input=cap)
            time.sleep(1.5)
            proc.send_signal(signal.SIGINT)
            time.sleep(1.5)
            self.assertIsNone(proc.poll(), "one SIGINT must not drop rows ClickHouse has not acknowledged")
            proc.send_signal(signal.SIGINT)
            err = self.finish(proc, timeout=30)
            text = err.decode("utf-8", "replace")
            self.assertEqual(proc.returncode, 1, text[-3000:])
            s = tr.parse_summaries(err)["t"]
            self.assertEqual(s["status"], "failed")
            self.assertEqual(s["rows_acked"], 0)
            self.assertEqual(sink_summary(err, "t")["given_up"], s["trades"])
            self.assertIn("records not acknowledged by ClickHouse: given up", text)
            # One SIGINT, then ClickHouse comes back: everything is written.
            proc = self.start(script, input=cap, table="trades2")
            time.sleep(1.5)
            proc.send_signal(signal.SIGINT)
            time.sleep(1.0)
            self.assertIsNone(proc.poll())
        finally:
            self.ch.start()
        err = self.finish(proc)
        self.assertEqual(proc.returncode, 0, err.decode("utf-8", "replace")[-3000:])
        s = tr.parse_summaries(err)["t"]
        self.assertEqual(s["status"], "interrupted")
        self.assertEqual(s["rows_acked"], s["trades"])
        self.assert_trades(self.db, "trades2", expected_trades(lines), "after one SIGINT")
        self.assertEqual(len(expected_trades(lines)), n)


class Auth(ClickHouseCase):
    server_kw = {"users": {"writer": PASSWORD, "reader": ("r-pw", "readonly")}}

    def test_wrong_password(self):
        script = self.script("auth.lua", AUTH_LUA)
        cap = os.path.join(ROOT, "data", "sample.jsonl")
        env = dict(os.environ, CH_PASSWORD="wrong-" + PASSWORD)
        t0 = time.monotonic()
        p = subprocess.run([CSTREAM, "run", script] + self.args(input=cap, pwenv="CH_PASSWORD"),
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, timeout=60)
        err = p.stderr.decode("utf-8", "replace")
        self.assertEqual(p.returncode, 1, err[-3000:])
        self.assertLess(time.monotonic() - t0, 10)
        self.assertIn("refused user 'writer'", err)
        self.assertIn("Code: 193", err)
        self.assertIn("password_env", err)
        self.assertNotIn("retrying", err, "no retry storm on a wrong password")
        self.assertEqual(sink_summary(p.stderr, "a")["requests"], 1)
        for secret in (PASSWORD, "wrong-" + PASSWORD):
            self.assertNotIn(secret, err)
            self.assertNotIn(secret.encode(), p.stdout)

    def test_right_password_from_env_or_file(self):
        script = self.script("auth.lua", AUTH_LUA)
        cap = os.path.join(ROOT, "data", "sample.jsonl")
        want, _ = ref.run_file(cap, 30 * US, 5 * US)
        pwfile = self.path("pw")
        with open(pwfile, "w") as f:
            f.write(PASSWORD + "\n")
        os.chmod(pwfile, 0o600)
        env = dict(os.environ, CH_PASSWORD=PASSWORD)
        for i, kw in enumerate(({"pwenv": "CH_PASSWORD"}, {"pwfile": pwfile})):
            with self.subTest(**kw):
                db = "%s_%d" % (self.db, i)
                p, s = self.run_ok(script, "a", env=env, input=cap, db=db, **kw)
                self.assertEqual(s["rows_acked"], len(want))
                self.assertNotIn(PASSWORD, p.stderr.decode())
                self.assertEqual(int(self.ch.query("SELECT count() FROM %s.candles_30s FINAL" % db)), len(want))

    def test_readonly_user(self):
        # Rights, not credentials: the message says which statement.
        script = self.script("reader.lua", AUTH_LUA.replace('user = "writer"', 'user = "reader"'))
        env = dict(os.environ, CH_PASSWORD="r-pw")
        p = subprocess.run([CSTREAM, "run", script] + self.args(input=os.path.join(ROOT, "data", "sample.jsonl"),
                                                                 pwenv="CH_PASSWORD"),
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, timeout=60)
        err = p.stderr.decode()
        self.assertEqual(p.returncode, 1, err)
        self.assertIn("user 'reader' may not run CREATE DATABASE", err)
        self.assertIn("Code: 164", err)
        self.assertNotIn("retrying", err)

    def test_no_plain_password_option(self):
        s = self.script("plain.lua", AUTH_LUA.replace("user = \"writer\",", "user = \"writer\", password = \"x\","))
        p = subprocess.run([CSTREAM, "check", s] + self.args(input="x"), stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=30)
        self.assertEqual(p.returncode, 3)
        self.assertIn(b"unknown option 'password'", p.stderr)
        # check prints the options, and the variable's name, never a value.
        env = dict(os.environ, CH_PASSWORD=PASSWORD)
        p = subprocess.run([CSTREAM, "check", self.script("auth.lua", AUTH_LUA)] +
                           self.args(input="x", pwenv="CH_PASSWORD"), stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, env=env, timeout=30)
        self.assertEqual(p.returncode, 0, p.stderr.decode())
        self.assertIn(b"sink cs.clickhouse", p.stdout)
        self.assertIn(b"CH_PASSWORD", p.stdout)
        self.assertNotIn(PASSWORD.encode(), p.stdout + p.stderr)
        # A missing variable is a clear error when the pipeline is built.
        p = subprocess.run([CSTREAM, "check", self.script("auth.lua", AUTH_LUA)] +
                           self.args(input="x", pwenv="CH_NOT_SET_ANYWHERE"), stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=30)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn(b"CH_NOT_SET_ANYWHERE is not set", p.stderr)


DIST_LUA = """\
local cs = require "cstream"
cs.pipeline {
  name   = "w",
  source = cs.replay { path = cs.args.input },
  window = cs.tumbling { size = "30s", lateness = cs.arg("lateness", "5s"), on_late = cs.arg("on_late", "drop") },
  sink   = {
    cs.jsonl { path = cs.args.out, truncate = true },
    cs.clickhouse { url = cs.args.url, database = cs.args.db, table = cs.args.table, dead_letter = cs.args.dead,
                    insert_sync = cs.arg("sync", "true") == "true", timeout = "5s", batch_delay = "100ms" },
  },
}
"""

LOCAL_DDL = ("CREATE TABLE %s.%s (" + Schema.GOOD + ") ENGINE = %s PARTITION BY toYYYYMM(window_start) "
             "ORDER BY (product_id, window_start)")


def window_order(r):
    return (r["window_end"], r["product_id"].encode(), r["window_start"])


class Distributed(ClickHouseCase):
    """Two clickhouse-servers, two shards of cluster `two`; cstream writes
    through a Distributed table on shard A. `bonly` is a cluster whose one
    shard is B: from A, a Distributed table whose target is elsewhere."""

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="cstream-ch-dist-")
        pa, pb = free_port(), free_port()
        clusters = {"two": [pa, pb], "bonly": [pb]}
        cls.ch = ClickHouseServer(os.path.join(cls.tmp, "a"), tcp_port=pa, clusters=clusters)
        cls.ch2 = ClickHouseServer(os.path.join(cls.tmp, "b"), tcp_port=pb, clusters=clusters)
        cls.ch.start()
        cls.ch2.start()
        cls.n = 0

    @classmethod
    def tearDownClass(cls):
        cls.ch2.close()
        super().tearDownClass()

    def setUp(self):
        super().setUp()
        self.ch2.start()  # a test may have stopped it
        for s in (self.ch, self.ch2):
            s.query("CREATE DATABASE IF NOT EXISTS %s" % self.db)

    def local(self, server, table, engine="ReplacingMergeTree(version)", cols=None):
        ddl = LOCAL_DDL % (self.db, table, engine)
        if cols:
            ddl = ddl.replace(Schema.GOOD, cols)
        server.query(ddl)

    def dist(self, table, target, key="cityHash64(product_id)", cluster="two"):
        self.ch.query("CREATE TABLE %s.%s (%s) ENGINE = Distributed(%s, %s, %s%s)"
                      % (self.db, table, Schema.GOOD, cluster, self.db, target, ", " + key if key else ""))

    def shard_rows(self, table, final="FINAL"):
        """{shard: rows of its local table}, both shards."""
        return {name: ch_window_rows(s, self.db, table, final=final) for name, s in (("A", self.ch), ("B", self.ch2))}

    def assert_sharded(self, table, dist, want, what):
        """Per shard, FINAL (which works within a shard) holds exactly the
        expected windows of its products; every row of a product, old
        versions included, is on one shard; the Distributed table read with
        FINAL and the view say the same."""
        final, raw = self.shard_rows(table), self.shard_rows(table, final="")
        products = {k: {r["product_id"] for r in rows} for k, rows in raw.items()}
        self.assertFalse(products["A"] & products["B"], "%s: products on both shards: %s" % (
            what, sorted(products["A"] & products["B"])))
        self.assertTrue(products["A"] and products["B"], "%s: one shard got nothing: %s" % (what, products))
        # The shard each product belongs on, as ClickHouse computes it (shard 1 = remainder 0).
        for name, idx in (("A", 0), ("B", 1)):
            for p in products[name]:
                h = int(self.ch.query("SELECT cityHash64('%s') %% 2" % p.replace("'", "\\'")))
                self.assertEqual(h, idx, "%s: %s is on shard %s" % (what, p, name))
        got = sorted(final["A"] + final["B"], key=window_order)
        m = tr.rows_mismatch([as_pairs(r) for r in got], want, "%s: both shards' %s FINAL: " % (what, table))
        if m:
            self.fail(m)
        for name in ("A", "B"):
            keys = [(r["product_id"], r["window_start"]) for r in final[name]]
            self.assertEqual(len(keys), len(set(keys)), "%s: a window twice on shard %s under FINAL" % (what, name))
        through = sorted(ch_window_rows(self.ch, self.db, dist), key=window_order)
        self.assertEqual(through, got, "%s: %s FINAL differs from the shards' FINAL" % (what, dist))
        view = sorted(ch_window_rows(self.ch, self.db, dist + "_latest", final=""), key=window_order)
        self.assertEqual(view, got, "%s: the view %s_latest differs" % (what, dist))
        return got, raw

    def test_windows_and_reemission_through_distributed(self):
        cap, lines = self.capture(7)
        script = self.script("dist.lua", DIST_LUA)
        for s in (self.ch, self.ch2):
            self.local(s, "candles_local")
        self.dist("candles", "candles_local")
        out = self.path(self.db + ".jsonl")
        # 1: re-emissions within a run (on_late = "update"): the latest emission of each window wins.
        p, s = self.run_ok(script, "w", input=cap, out=out, table="candles", lateness="1s", on_late="update")
        text = p.stderr.decode("utf-8", "replace")
        self.assertIn("%s.candles is a Distributed table over %s.candles_local on cluster 'two' (2 shards, "
                      "sharding key cityHash64(product_id)): columns and engine of %s.candles_local checked on this "
                      "server; its engine checked on every shard (2); inserts synchronous" % (self.db, self.db, self.db),
                      text)
        emitted = read_jsonl(out)
        latest = {}
        for r in emitted:
            latest[(r["product_id"], r["window_start"])] = r
        self.assertGreater(s["late_updates"], 0)
        self.assertGreater(len(emitted), len(latest), "the capture should make windows be emitted again")
        self.assertEqual(s["rows_acked"], 2 * len(emitted))
        want1 = sorted(latest.values(), key=window_order)
        got1, raw1 = self.assert_sharded("candles_local", "candles", want1, "run 1 (on_late = update)")
        self.assertEqual(len(raw1["A"]) + len(raw1["B"]), len(emitted), "every emission stored once")
        v1 = max(r["version"] for r in got1)
        # 2: the same input again (a restart, another replica after a
        # rebalance): every window emitted again, the reference's windows win.
        self.run_ok(script, "w", input=cap, out=out, table="candles")
        ref_rows, _ = ref.run_lines(lines, 30 * US, 5 * US)
        keys = {(r["product_id"], r["window_start"]) for r in ref_rows}
        # Windows run 2 does not emit (their trades are all late there) keep run 1's row.
        want2 = sorted(ref_rows + [r for k, r in latest.items() if k not in keys], key=window_order)
        got2, raw2 = self.assert_sharded("candles_local", "candles", want2, "run 2 (a second run)")
        self.assertGreater(min(r["version"] for r in got2 if (r["product_id"], r["window_start"]) in keys), v1,
                           "the later emission must win")
        self.assertEqual(len(raw2["A"]) + len(raw2["B"]), len(emitted) + len(ref_rows))

    def test_target_only_on_other_shards(self):
        # A is not a shard of `bonly`: the target's columns cannot be checked
        # from A (said in a warning); its engine is checked on B.
        self.local(self.ch2, "c_local")
        self.dist("c", "c_local", cluster="bonly")
        cap = os.path.join(ROOT, "data", "sample.jsonl")
        p, s = self.run_ok(self.script("dist.lua", DIST_LUA), "w", input=cap, out=self.path(self.db + ".jsonl"),
                           table="c")
        text = p.stderr.decode("utf-8", "replace")
        self.assertRegex(text, r"warn .*%s\.c_local is not on this server: its columns were NOT checked .*its engine "
                               r"checked on every shard \(1\)" % self.db)
        want, _ = ref.run_file(cap, 30 * US, 5 * US)
        got = ch_window_rows(self.ch2, self.db, "c_local")
        self.assertIsNone(tr.rows_mismatch([as_pairs(r) for r in got], want))

    def test_shard_down_sync_and_async(self):
        cap, lines = self.capture(11)
        want, _ = ref.run_lines(lines, 30 * US, 5 * US)
        script = self.script("dist.lua", DIST_LUA)
        for s in (self.ch, self.ch2):
            self.local(s, "c_local")
        self.dist("c", "c_local")
        self.ch2.stop()
        # Synchronous (default): an insert that cannot reach shard B fails and
        # is retried, so nothing is acknowledged before B has its rows.
        proc = self.start(script, input=cap, out=self.path(self.db + ".jsonl"), table="c")
        time.sleep(3.0)
        self.assertIsNone(proc.poll(), "with shard B down, the inserts must wait for it")
        # A failed insert may have stored A's part (ClickHouse: "Wrote ... rows on shard 0"): the retry sends
        # the same rows with the same versions, which collapse under FINAL (checked below).
        self.ch2.start()
        err = self.finish(proc)
        text = err.decode("utf-8", "replace")
        self.assertEqual(proc.returncode, 0, text[-3000:])
        self.assertIn("its engine on the other shards NOT checked (the query over the shards failed:", text)
        self.assertRegex(text, r"insert at .* failed \(ClickHouse error\): Code: \d+")
        self.assertGreater(sink_summary(err, "w")["retries"], 0)
        self.assert_sharded("c_local", "c", want, "sync, shard B down then up")
        # insert_sync = false: acknowledged once queued on A, delivered to B later.
        for s in (self.ch, self.ch2):
            self.local(s, "q_local")
        self.dist("q", "q_local")
        self.ch2.stop()
        p, s = self.run_ok(script, "w", input=cap, out=self.path(self.db + "-q.jsonl"), table="q", sync="false")
        self.assertEqual(s["rows_acked"], 2 * len(want), "acknowledged while shard B is down")
        self.assertIn("inserts asynchronous (insert_sync = false", p.stderr.decode())
        on_a = int(self.ch.query("SELECT count() FROM %s.q_local" % self.db))
        self.assertLess(on_a, len(want), "B's rows cannot be anywhere but in A's queue")
        self.ch2.start()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if int(self.ch2.query("SELECT count() FROM %s.q_local" % self.db)) + on_a >= len(want):
                break
            time.sleep(0.5)
        self.assert_sharded("q_local", "q", want, "async, delivered after B came back")

    def test_wrong_targets_fail_at_start(self):
        script = self.script("dist.lua", DIST_LUA)
        cap = os.path.join(ROOT, "data", "sample.jsonl")
        db = self.db
        cases = [
            # name, setup, what the error says
            ("plain_mergetree", lambda: ([self.local(s, "mt_local", engine="MergeTree()") for s in (self.ch, self.ch2)],
                                         self.dist("plain_mergetree", "mt_local")),
             ["Distributed table %s.plain_mergetree: table %s.mt_local is MergeTree, expected "
              "ReplacingMergeTree(version)" % (db, db)]),
            ("random_key", lambda: ([self.local(s, "rk_local") for s in (self.ch, self.ch2)],
                                    self.dist("random_key", "rk_local", key="rand()")),
             ["Distributed table %s.random_key: sharding key rand() does not depend on product_id" % db,
              "cityHash64(product_id)"]),
            ("window_key", lambda: ([self.local(s, "wk_local") for s in (self.ch, self.ch2)],
                                    self.dist("window_key", "wk_local",
                                              key="cityHash64(product_id, toUInt32(window_start))")),
             ["sharding key cityHash64(product_id, toUInt32(window_start)) depends on 'window_start'"]),
            ("no_key", lambda: self.dist("no_key", "rk_local", key=""),
             ["Distributed table %s.no_key: has no sharding key" % db]),
            ("missing_here", lambda: (self.local(self.ch2, "b_local"), self.dist("missing_here", "b_local")),
             ["its table %s.b_local does not exist on the ClickHouse at %s, which is a shard of cluster 'two'"
              % (db, self.ch.url)]),
            ("mistyped_here", lambda: ([self.local(s, "ty_local", cols=Schema.GOOD.replace("vwap Float64",
                                                                                            "vwap String"))
                                        for s in (self.ch, self.ch2)], self.dist("mistyped_here", "ty_local")),
             ["Distributed table %s.mistyped_here: table %s.ty_local: column 'vwap' is String, expected Float64"
              % (db, db)]),
            ("wrong_on_b", lambda: (self.local(self.ch, "wb_local"),
                                    self.local(self.ch2, "wb_local", engine="MergeTree()"),
                                    self.dist("wrong_on_b", "wb_local")),
             ["Distributed table %s.wrong_on_b: on a shard of cluster 'two': table %s.wb_local is MergeTree"
              % (db, db)]),
            ("missing_on_b", lambda: (self.local(self.ch, "mb_local"), self.dist("missing_on_b", "mb_local")),
             ["its table %s.mb_local exists on 1 of the 2 shards of cluster 'two'" % db]),
        ]
        for table, setup, needles in cases:
            with self.subTest(table):
                setup()
                err = Schema.run_fail(self, script, input=cap, out=self.path(table + ".jsonl"), table=table)
                for n in needles:
                    self.assertIn(n, err, "stderr lacks %r:\n%s" % (n, err[-3000:]))
                for s in (self.ch, self.ch2):
                    rows = s.query("SELECT sum(rows) FROM system.parts WHERE database = '%s' AND active" % db)
                    self.assertIn(rows.strip(), ("0", "\\N", ""), "%s: nothing may be inserted" % table)

    def test_aggregate_script_settings(self):
        # scripts/pipeline.lua (replay -> embedded Kafka -> windows) with the
        # table and create from the environment: a Distributed table that
        # must exist (create = false), view included.
        for s in (self.ch, self.ch2):
            self.local(s, "candles_local")
        self.dist("candles", "candles_local")
        self.ch.query("CREATE VIEW %s.candles_latest AS SELECT * FROM %s.candles FINAL" % (self.db, self.db))
        env = {k: v for k, v in os.environ.items() if not k.startswith(("CLICKHOUSE_", "KAFKA_"))}
        env.update(CLICKHOUSE_URL=self.ch.url, CLICKHOUSE_DATABASE=self.db, CLICKHOUSE_TABLE="candles",
                   CLICKHOUSE_CREATE="false")
        cap = os.path.join(ROOT, "data", "sample.jsonl")
        p = subprocess.run([CSTREAM, "run", "scripts/pipeline.lua", "replay=" + cap, "rate=0", "exit_idle=3s"],
                           cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=120)
        text = p.stderr.decode("utf-8", "replace")
        self.assertEqual(p.returncode, 0, text[-3000:])
        self.assertIn("%s.candles is a Distributed table over %s.candles_local" % (self.db, self.db), text)
        want, _ = ref.run_file(cap, 30 * US, 5 * US)
        want.sort(key=window_order)
        final = self.shard_rows("candles_local")
        got = sorted(final["A"] + final["B"], key=window_order)
        m = tr.rows_mismatch([as_pairs(r) for r in got], want, "scripts/pipeline.lua: ")
        if m:
            self.fail(m)
        # create = false: nothing made by the sink (no candles_30s, no view of its own).
        self.assertEqual(self.ch.query("SELECT name FROM system.tables WHERE database = '%s' ORDER BY name FORMAT TSV"
                                       % self.db).split(), ["candles", "candles_latest", "candles_local"])


def make_tls(d):
    """A private CA and a server certificate for 127.0.0.1 -> (ca, cert, key)."""
    os.makedirs(d, exist_ok=True)
    run = lambda *a: subprocess.run(a, cwd=d, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    run("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.crt",
        "-days", "2", "-subj", "/CN=cstream test CA")
    run("openssl", "req", "-newkey", "rsa:2048", "-nodes", "-keyout", "srv.key", "-out", "srv.csr",
        "-subj", "/CN=127.0.0.1")
    with open(os.path.join(d, "ext"), "w") as f:
        f.write("subjectAltName=IP:127.0.0.1\n")
    run("openssl", "x509", "-req", "-in", "srv.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
        "-out", "srv.crt", "-days", "2", "-extfile", "ext")
    return [os.path.join(d, n) for n in ("ca.crt", "srv.crt", "srv.key")]


@unittest.skipIf(shutil.which("openssl") is None, "openssl not installed")
class Https(unittest.TestCase):
    def test_https_verifies_the_certificate(self):
        tmp = tempfile.mkdtemp(prefix="cstream-ch-tls-")
        try:
            ca, cert, key = make_tls(os.path.join(tmp, "tls"))
            with ClickHouseServer(os.path.join(tmp, "server"), https=(cert, key)) as ch:
                script = os.path.join(tmp, "h.lua")
                with open(script, "w") as f:
                    f.write('local cs = require "cstream"\ncs.pipeline { name = "h", source = cs.replay { path = '
                            'cs.args.input }, window = cs.tumbling { size = "30s", lateness = "5s" }, sink = '
                            'cs.clickhouse { url = cs.args.url, database = "tls", ca_file = cs.args.ca, '
                            'dead_letter = cs.args.dead } }\n')
                cap = os.path.join(ROOT, "data", "sample.jsonl")
                args = [CSTREAM, "run", script, "input=" + cap, "url=" + ch.https_url,
                        "dead=" + os.path.join(tmp, "dead.jsonl")]
                p = subprocess.run(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)
                err = p.stderr.decode()
                self.assertEqual(p.returncode, 1, err)
                self.assertIn("TLS: the server's certificate was not accepted", err)
                self.assertNotIn("retrying", err)
                p = subprocess.run(args + ["ca=" + ca], stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)
                self.assertEqual(p.returncode, 0, p.stderr.decode())
                want, _ = ref.run_file(cap, 30 * US, 5 * US)
                self.assertEqual(int(ch.query("SELECT count() FROM tls.candles_30s FINAL")), len(want))
        finally:
            if not os.environ.get("CSTREAM_E2E_KEEP"):
                shutil.rmtree(tmp, ignore_errors=True)


def main():
    global CSTREAM
    path, argv = tr._take_cstream_arg(sys.argv)
    CSTREAM = os.path.abspath(path or os.environ.get("CSTREAM") or os.path.join(ROOT, "build", "cstream"))
    tr.CSTREAM = CSTREAM
    if not (os.path.isfile(CSTREAM) and os.access(CSTREAM, os.X_OK)):
        sys.exit("test_clickhouse: cstream binary not found: %s" % CSTREAM)
    why = available()
    if why:
        sys.stderr.write("test_clickhouse: SKIPPED: %s\n" % why)
        sys.exit(0)
    sys.stderr.write("test_clickhouse: using %s\n" % CSTREAM)
    unittest.main(argv=argv)


if __name__ == "__main__":
    main()
