#!/usr/bin/env python3
"""End-to-end tests of cstream features beyond the plain replay:

* Lua hooks (filter, map, cs.aggregate) against the reference engine run on
  the trades the hook keeps, with the user aggregates computed here;
* on_late = "update" against an independent extension of the reference;
* SIGINT: exit 0, open windows not emitted and counted, no torn line;
* `cstream check`, `version`, `--help` and the documented exit codes.

    /usr/bin/python3 tests/e2e/test_features.py --cstream build/cstream
"""
import json
import os
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
from test_replay import _take_cstream_arg, parse_summaries  # noqa: E402

CSTREAM = None
SEC = 1_000_000


def run(args, **kw):
    return subprocess.run([CSTREAM] + args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=120, **kw)


def capture(tmp, seed):
    path = os.path.join(tmp, "cap-%d.jsonl" % seed)
    data = gen_capture.generate(seed) if hasattr(gen_capture, "generate") else None
    if data is None:
        raise RuntimeError("gen_capture.generate missing")
    if isinstance(data, str):
        data = data.encode()
    with open(path, "wb") as f:
        f.write(data)
    return path, ref.split_lines(data)


def close(a, b):
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return a == b or abs(a - b) <= 1e-9 * max(abs(a), abs(b))
    return a == b


def assert_rows(tc, got, want):
    tc.assertEqual(len(got), len(want), "row count")
    for i, (g, w) in enumerate(zip(got, want)):
        tc.assertEqual(list(g.keys()), list(w.keys()), "row %d keys" % i)
        for k in w:
            tc.assertTrue(close(g[k], w[k]), "row %d field %s: got %r want %r\n got %s\n want %s" % (i, k, g[k], w[k], g, w))


class Hooks(unittest.TestCase):
    """filter keeps one product; user aggregates max_size and taker counts."""

    SCRIPT = """
local cs = require "cstream"
cs.pipeline {
  name = "hooks",
  source = cs.replay { path = cs.args.input },
  filter = function(t) return t.product_id == "BTC-USD" end,
  window = cs.tumbling { size = "60s", lateness = "5s", aggregates = {
    "trades", "vwap", "high",
    cs.aggregate { name = "max_size", init = function() return 0 end,
                   add = function(m, t) if t.size > m then return t.size end end,
                   result = function(m) return m end },
    cs.aggregate { name = "taker", init = function() return { buy = 0, sell = 0 } end,
                   add = function(c, t) c[t.taker_side] = c[t.taker_side] + 1 end,
                   result = function(c) return c end },
  } },
  sink = cs.jsonl { path = "-" },
}
"""

    def test_hooks_match_reference(self):
        with tempfile.TemporaryDirectory() as tmp:
            script = os.path.join(tmp, "hooks.lua")
            with open(script, "w") as f:
                f.write(self.SCRIPT)
            for seed in (3, 11):
                path, lines = capture(tmp, seed)
                # The hook sees only trades the window would accept; trades of
                # other products never reach the window: the reference runs on
                # the capture without them.
                kept = [l for l in lines if not (ref.classify(l)[0] == "trade" and ref.classify(l)[1].product_id != "BTC-USD")]
                extra = {}
                orig_add = ref._Agg.add

                def add(agg, t, extra=extra):
                    orig_add(agg, t)
                    e = extra.setdefault((agg.product_id, agg.start), {"max": 0.0, "buy": 0, "sell": 0})
                    e["max"] = max(e["max"], t.size)
                    e["buy" if t.side == "sell" else "sell"] += 1  # maker side -> taker side
                ref._Agg.add = add
                try:
                    rows, counters = ref.run_lines(kept, 60 * SEC, 5 * SEC)
                finally:
                    ref._Agg.add = orig_add
                want = []
                for r in rows:
                    e = extra[(r["product_id"], ref.parse_time(r["window_start"]))]
                    want.append({"product_id": r["product_id"], "window_start": r["window_start"],
                                 "window_end": r["window_end"], "trades": r["trades"], "vwap": r["vwap"],
                                 "high": r["high"], "max_size": e["max"],
                                 "taker": {"buy": e["buy"], "sell": e["sell"]}})
                p = run(["run", script, "input=" + path])
                self.assertEqual(p.returncode, 0, p.stderr.decode()[-2000:])
                got = [json.loads(l, object_pairs_hook=dict) for l in p.stdout.decode().splitlines()]
                # taker counts: compare as dicts
                for g in got:
                    g["taker"] = {"buy": g["taker"]["buy"], "sell": g["taker"]["sell"]}
                assert_rows(self, got, want)
                s = parse_summaries(p.stderr)["hooks"]
                self.assertEqual(s["trades"], counters["trades"])
                self.assertGreater(s["filtered"], 0)
                self.assertEqual(s["hook_errors"], 0)

    def test_failing_hook_is_counted_and_run_goes_on(self):
        with tempfile.TemporaryDirectory() as tmp:
            script = os.path.join(tmp, "bad.lua")
            with open(script, "w") as f:
                f.write("""
local cs = require "cstream"
local n = 0
cs.pipeline { name = "bad", source = cs.replay { path = cs.args.input },
  filter = function(t) n = n + 1; if n % 2 == 0 then error("boom " .. n) end; return true end,
  window = cs.tumbling { size = "30s" }, sink = cs.discard {} }
""")
            path = os.path.join(ROOT, "data", "coinbase-exchange-matches-2025-08-22.jsonl")
            p = run(["run", script, "input=" + path])
            self.assertEqual(p.returncode, 0, p.stderr.decode())
            s = parse_summaries(p.stderr)["bad"]
            self.assertEqual(s["hook_errors"], 447 // 2)
            self.assertEqual(s["trades"], 447 - 447 // 2)
            self.assertIn(b"boom 2", p.stderr)


class UpdateEngine(ref.Engine):
    """The reference engine extended with on_late = "update" (independent of cstream)."""

    def __init__(self, size, lateness, horizon):
        super().__init__(size, lateness)
        self.horizon = horizon
        self.kept = {}  # (product, start) -> _Agg, emitted windows still taking late trades
        self.c["late_updates"] = 0

    def _kept_ids(self):
        wm = self.watermark
        return {(a.product_id, i) for a in self.kept.values() if wm is None or a.end + self.horizon > wm for i in a.ids}

    def trade(self, t):
        start = (t.time // self.size) * self.size
        end = start + self.size
        late = self.watermark is not None and end <= self.watermark
        if late and end + self.horizon <= self.watermark:
            self.c["late"] += 1
            return "late"
        if (t.product_id, t.trade_id) in self.open_ids or (t.product_id, t.trade_id) in self._kept_ids():
            self.c["duplicates"] += 1
            return "duplicate"
        if not late:
            return super().trade(t)
        a = self.kept.get((t.product_id, start))
        if a is None:
            a = self.kept[(t.product_id, start)] = ref._Agg(t.product_id, start, end)
        a.add(t)
        self.c["trades"] += 1
        self.c["late_updates"] += 1
        self.rows.append(a.row())
        self.c["windows"] += 1
        return "trade"

    def _emit(self, upto):
        while self.heap and (upto is None or self.heap[0][0] <= upto):
            end, _, start, pid = ref.heapq.heappop(self.heap)
            w = self.open.pop((pid, start))
            for tid in w.ids:
                self.open_ids.discard((pid, tid))
            self.rows.append(w.row())
            self.c["windows"] += 1
            if upto is not None:
                self.kept[(pid, start)] = w


class OnLateUpdate(unittest.TestCase):
    def test_update_matches_reference(self):
        with tempfile.TemporaryDirectory() as tmp:
            script = os.path.join(tmp, "upd.lua")
            with open(script, "w") as f:
                f.write("""
local cs = require "cstream"
cs.pipeline { name = "upd", source = cs.replay { path = cs.args.input },
  window = cs.tumbling { size = "30s", lateness = "2s", on_late = "update", update_for = "45s" },
  sink = cs.jsonl { path = "-" } }
""")
            for seed in (1, 2, 5):
                path, lines = capture(tmp, seed)
                e = UpdateEngine(30 * SEC, 2 * SEC, 45 * SEC)
                for l in lines:
                    e.line(l)
                rows, _ = e.finish()
                p = run(["run", script, "input=" + path])
                self.assertEqual(p.returncode, 0, p.stderr.decode()[-2000:])
                got = [json.loads(l) for l in p.stdout.decode().splitlines()]
                assert_rows(self, got, rows)
                s = parse_summaries(p.stderr)["upd"]
                self.assertGreater(e.c["late_updates"], 0, "the capture has late trades to update with")
                for k in ("trades", "late", "duplicates", "windows", "late_updates"):
                    self.assertEqual(s[k], e.c[k], k)


class Signals(unittest.TestCase):
    def test_sigint_stops_cleanly(self):
        with tempfile.TemporaryDirectory() as tmp:
            out = os.path.join(tmp, "out.jsonl")
            sample = os.path.join(ROOT, "data", "sample.jsonl")
            p = subprocess.Popen([CSTREAM, "run", os.path.join(ROOT, "scripts", "replay.lua"),
                                  "input=" + sample, "rate=60", "out=" + out],
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            # Stop it mid-run: once some windows are out (even on a slow,
            # loaded machine), well before the capture ends (12 s).
            deadline = time.time() + 20
            while time.time() < deadline and not (os.path.exists(out) and os.path.getsize(out) > 0):
                time.sleep(0.05)
            time.sleep(0.5)
            p.send_signal(signal.SIGINT)
            _, err = p.communicate(timeout=30)
            self.assertEqual(p.returncode, 0, err.decode())
            s = parse_summaries(err)["btc-30s"]
            self.assertEqual(s["status"], "interrupted")
            self.assertGreater(s["open_windows"], 0)
            self.assertIn(b"open windows not emitted", err)
            with open(out, "rb") as f:
                data = f.read()
            self.assertTrue(data.endswith(b"\n"))
            rows = [json.loads(l) for l in data.splitlines()]
            self.assertEqual(len(rows), s["windows"])
            # What was written is a prefix of the full run's output.
            full = run(["run", os.path.join(ROOT, "scripts", "replay.lua"), "input=" + sample])
            all_rows = [json.loads(l) for l in full.stdout.decode().splitlines()]
            self.assertLess(len(rows), len(all_rows))
            self.assertEqual(rows, all_rows[:len(rows)])


class Cli(unittest.TestCase):
    def test_version_help_usage(self):
        p = run(["version"])
        self.assertEqual(p.returncode, 0)
        self.assertTrue(p.stdout.startswith(b"cstream "))
        p = run(["--help"])
        self.assertEqual(p.returncode, 0)
        self.assertIn(b"check SCRIPT", p.stdout)
        self.assertEqual(run(["frobnicate"]).returncode, 2)
        self.assertEqual(run(["run"]).returncode, 2)
        self.assertEqual(run(["run", "/nonexistent/script.lua"]).returncode, 2)

    def test_check_prints_topology_with_defaults(self):
        p = run(["check", os.path.join(ROOT, "scripts", "replay.lua")])
        self.assertEqual(p.returncode, 0, p.stderr.decode())
        out = p.stdout.decode()
        for s in ("pipeline btc-30s", "source cs.replay", "window cs.tumbling", "sink cs.jsonl",
                  "max_line", "(default)", "lateness"):
            self.assertIn(s, out)

    def test_exit_codes(self):
        with tempfile.TemporaryDirectory() as tmp:
            bad = os.path.join(tmp, "bad.lua")
            with open(bad, "w") as f:
                f.write('local cs = require "cstream"\ncs.pipeline { source = cs.replay { path = 1 },\n'
                        ' window = cs.tumbling { size = "30s" }, sink = cs.discard {} }\n')
            p = run(["check", bad])
            self.assertEqual(p.returncode, 3)
            self.assertIn(b"bad.lua:2:", p.stderr)
            self.assertIn(b"option 'path' must be a string", p.stderr)
            missing = os.path.join(tmp, "missing.lua")
            with open(missing, "w") as f:
                f.write('local cs = require "cstream"\ncs.pipeline { source = cs.replay { path = "%s/nope.jsonl" },\n'
                        ' window = cs.tumbling { size = "30s" }, sink = cs.discard {} }\n' % tmp)
            p = run(["run", missing])
            self.assertEqual(p.returncode, 1)
            self.assertIn(b"nope.jsonl", p.stderr)
            p = run(["run", missing.replace("missing", "absent")])
            self.assertEqual(p.returncode, 2)
            empty = os.path.join(tmp, "empty.lua")
            with open(empty, "w") as f:
                f.write('local cs = require "cstream"\n')
            self.assertEqual(run(["run", empty]).returncode, 3)


def main():
    global CSTREAM
    path, argv = _take_cstream_arg(sys.argv)
    CSTREAM = os.path.abspath(path or os.environ.get("CSTREAM") or os.path.join(ROOT, "build", "cstream"))
    unittest.main(argv=argv)


if __name__ == "__main__":
    main()
