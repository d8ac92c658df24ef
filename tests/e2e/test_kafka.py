#!/usr/bin/env python3
"""End-to-end tests of Kafka in the middle: the cs.kafka sink and source, the
standalone broker (`cstream broker`, librdkafka's mock cluster behind a
relay), interop with kcat both ways, faults injected into the broker,
several partitions and consumers, at-least-once across a kill -9, and the
detection of data the broker has trimmed. Windows are checked against the
independent reference (reference.py). Standard library only, plus kcat.

    /usr/bin/python3 tests/e2e/test_kafka.py --cstream build/cstream [-v] [TestClass]

Set CSTREAM_E2E_KEEP=1 to keep the temporary files (scripts, outputs, logs).
"""
import json
import os
import random
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
import test_operations as to  # noqa: E402  (the strict /metrics parser)

KCAT = shutil.which("kcat") or "/usr/bin/kcat"
SIZE_US = 30 * ref.US
LATENESS = "5s"
KEYSEP = "\x01"  # kcat's key delimiter: never in a JSON line

# ------------------------------------------------------------------ scripts
INGEST_LUA = """\
local cs = require "cstream"
cs.pipeline {
  name   = "ingest",
  source = cs.replay { path = cs.args.input, rate = tonumber(cs.arg("rate", 0)) },
  sink   = cs.kafka { brokers = cs.args.brokers, topic = cs.args.topic, clock = cs.arg("clock", "1s"),
                      partitions = tonumber(cs.arg("partitions", 4)) },
}
"""

AGG_LUA = """\
local cs = require "cstream"
cs.pipeline {
  name   = "agg",
  source = cs.kafka { brokers = cs.args.brokers, topic = cs.args.topic, group = cs.args.group,
                      start = cs.arg("start", "committed"), exit_idle = cs.arg("exit_idle", "3s"),
                      commit_interval = cs.arg("commit", "200ms"), idle = cs.arg("idle", "3s") },
  window = cs.tumbling { size = "30s", lateness = cs.arg("lateness", "5s") },
  sink   = cs.jsonl { path = cs.args.out },
}
"""

# One process, the embedded broker: replay -> Kafka -> windows.
BOTH_LUA = """\
local cs = require "cstream"
cs.pipeline {
  name   = "ingest",
  source = cs.replay { path = cs.args.input },
  sink   = cs.kafka { brokers = "embedded", topic = "trades", partitions = 3 },
}
cs.pipeline {
  name   = "agg",
  source = cs.kafka { brokers = "embedded", topic = "trades", group = "both", exit_idle = "2s" },
  window = cs.tumbling { size = "30s", lateness = "5s" },
  sink   = cs.jsonl { path = cs.args.out },
}
"""


# ------------------------------------------------------------------ helpers
def run(args, timeout=120, **kw):
    return subprocess.run([tr.CSTREAM] + list(args), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          timeout=timeout, **kw)


class Broker:
    """`cstream broker --port 0 --control`, fault injection through stdin."""

    def __init__(self, tmp, partitions=4, name="broker"):
        self.log_path = os.path.join(tmp, name + ".log")
        self.log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            [tr.CSTREAM, "broker", "--port", "0", "--partitions", str(partitions), "--control"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.log)
        line = self.proc.stdout.readline().decode()
        if not line.startswith("listening port="):
            self.proc.kill()
            raise AssertionError("broker did not start: %r; log:\n%s" % (line, self.read_log()))
        self.port = int(line.split("=", 1)[1])
        self.addr = "127.0.0.1:%d" % self.port

    def read_log(self):
        if not self.log.closed:
            self.log.flush()
        with open(self.log_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def cmd(self, text):
        self.proc.stdin.write((text + "\n").encode())
        self.proc.stdin.flush()
        reply = self.proc.stdout.readline().decode().strip()
        if not reply.startswith("ok"):
            raise AssertionError("broker command %r: %r" % (text, reply))
        return reply

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                rc = self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise AssertionError("broker did not stop on SIGINT")
        else:
            rc = self.proc.returncode
        self.proc.stdin.close()
        self.proc.stdout.close()
        self.log.close()
        return rc


def kcat_produce(addr, topic, values, keys=None, partition=None, extra=()):
    """values: list of bytes (one message each; no newline inside)."""
    args = [KCAT, "-P", "-b", addr, "-t", topic, "-q"] + list(extra)
    if partition is not None:
        args += ["-p", str(partition)]
    if keys is not None:
        args += ["-K", KEYSEP]
        data = b"".join((k or b"") + KEYSEP.encode() + v + b"\n" for k, v in zip(keys, values))
    else:
        data = b"".join(v + b"\n" for v in values)
    p = subprocess.run(args, input=data, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=120)
    if p.returncode != 0:
        raise AssertionError("kcat -P failed (%d): %s" % (p.returncode, p.stderr.decode()[-2000:]))


def kcat_consume(addr, topic):
    """Every message of the topic, as kcat's JSON envelopes."""
    p = subprocess.run([KCAT, "-C", "-b", addr, "-t", topic, "-e", "-J", "-q"], stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=120)
    if p.returncode != 0:
        raise AssertionError("kcat -C failed (%d): %s" % (p.returncode, p.stderr.decode()[-2000:]))
    return [json.loads(l) for l in p.stdout.decode("utf-8", "replace").splitlines() if l.strip()]


def fmt_us(us):
    return ref.fmt_time(us)


def clean_capture(seed, products=("BTC-USD", "ETH-USD", "SOL-USD"), seconds=240, per_s=8, jitter_s=2.0,
                  dups=20, t0=1724356807 * ref.US):
    """Raw Exchange lines: trades arriving up to jitter_s out of order (less
    than the lateness, so no trade is late however partitions interleave),
    heartbeats, a subscriptions message and a few duplicated trades."""
    rng = random.Random(seed)
    ids = {p: rng.randint(10 ** 6, 10 ** 8) for p in products}
    seq = rng.randint(10 ** 9, 10 ** 10)
    events = [(t0 - 1, json.dumps({"type": "subscriptions", "channels": [
        {"name": "matches", "product_ids": list(products)}]}).encode())]
    trades = []
    for i in range(seconds * per_s):
        p = rng.choice(products)
        ids[p] += 1
        seq += 1
        t = t0 + i * ref.US // per_s + rng.randint(0, ref.US // per_s - 1)
        line = json.dumps({
            "type": "match", "trade_id": ids[p], "maker_order_id": "m%d" % i, "taker_order_id": "t%d" % i,
            "side": rng.choice(("buy", "sell")), "size": "%.8f" % rng.uniform(0.0001, 3),
            "price": "%.2f" % rng.uniform(100, 120000), "product_id": p, "sequence": seq,
            "time": fmt_us(t)}, separators=(",", ":")).encode()
        arrive = t + int(rng.uniform(0, jitter_s) * ref.US)
        events.append((arrive, line))
        trades.append((arrive, line))
    for _ in range(dups):
        arrive, line = rng.choice(trades)
        events.append((arrive + rng.randint(1, 800000), line))
    for s in range(seconds):
        for p in products:
            events.append((t0 + s * ref.US + 500000, json.dumps({
                "type": "heartbeat", "last_trade_id": 0, "product_id": p, "sequence": 1,
                "time": fmt_us(t0 + s * ref.US + 500000)}).encode()))
    events.sort(key=lambda e: e[0])
    return [e[1] for e in events]


def product_of(line):
    try:
        o = json.loads(line)
        return o.get("product_id", "").encode() if isinstance(o, dict) else b""
    except ValueError:
        return b""


def record_of(line):
    """A raw Exchange trade line -> cstream's v1 trade record (written here,
    independently of cstream), or None when the line is not a valid trade."""
    kind, t, _ = ref.classify(line)
    if kind != "trade":
        return None
    o = json.loads(line)
    return json.dumps({"v": 1, "exchange": "coinbase", "product_id": t.product_id, "trade_id": t.trade_id,
                       "price": t.price_s, "size": t.size_s,
                       "taker_side": "buy" if t.side == "sell" else "sell",  # Exchange side is the maker's
                       "time": o["time"], "sequence": o.get("sequence"), "recv_time": None},
                      separators=(",", ":")).encode()


def sort_rows(rows):
    return sorted(rows, key=lambda r: (dict(r)["window_start"], dict(r)["product_id"]))


def sort_want(rows):
    return sorted(rows, key=lambda r: (r["window_start"], r["product_id"]))


class KafkaCase(tr.CstreamCase):
    broker = None

    def setUp(self):
        self.brokers = []
        self.last_log = ""

    def tearDown(self):
        for b in self.brokers:
            rc = b.stop()
            self.assertEqual(rc, 0, "broker exit status %s; log:\n%s" % (rc, b.read_log()[-3000:]))

    def start_broker(self, partitions=4):
        b = Broker(self.tmp, partitions, "broker-%s-%d" % (self._testMethodName, len(self.brokers)))
        self.brokers.append(b)
        return b

    def ingest(self, broker, capture, topic, rate=0, clock="1s", partitions=4, timeout=120):
        s = self.script("ingest.lua", INGEST_LUA)
        p = run(["run", s, "input=" + capture, "brokers=" + broker.addr, "topic=" + topic, "rate=%g" % rate,
                 "clock=" + clock, "partitions=%d" % partitions], timeout=timeout)
        return self.check_run(p, "ingest", "ingest into " + topic)

    def agg_args(self, broker, topic, group, out, **kw):
        s = self.script("agg.lua", AGG_LUA)
        args = ["run", s, "brokers=" + broker.addr, "topic=" + topic, "group=" + group, "out=" + out]
        args += ["%s=%s" % kv for kv in kw.items()]
        return args

    def aggregate(self, broker, topic, group, out, timeout=120, **kw):
        p = run(self.agg_args(broker, topic, group, out, **kw), timeout=timeout)
        self.last_log = p.stderr.decode("utf-8", "replace")
        with open(out + ".log", "w") as f:
            f.write(self.last_log)
        return self.check_run(p, "agg", "aggregate " + topic), p

    def unique_rows(self, what, got):
        """At least once: a window may be emitted again (after a rebalance or
        a restart), and then it must be the same row. -> the rows, once."""
        first = {}
        for r in got:
            k = (dict(r)["product_id"], dict(r)["window_start"])
            if k in first:
                self.assertEqual(dict(r), dict(first[k]), "%s: window %s emitted again, differently\n%s" % (
                    what, k, self.last_log[-3000:]))
            else:
                first[k] = r
        return list(first.values())

    def check_windows(self, what, got_bytes, want_rows, exact_order=False, once=True):
        """once=False: windows emitted again (at least once) must be equal."""
        self.assertGreater(len(want_rows), 0, "%s: the test data must make windows" % what)
        got = tr.parse_rows(got_bytes, what)
        if not once:
            got = self.unique_rows(what, got)
        if exact_order:
            m = tr.rows_mismatch(got, want_rows, what + ": ")
        else:
            m = tr.rows_mismatch(sort_rows(got), sort_want(want_rows), what + ": ")
        if m:
            self.fail(m + "\n  last aggregator log:\n" + getattr(self, "last_log", "")[-4000:])


# ------------------------------------------------------------------ tests
class BrokerCommand(KafkaCase):
    """`cstream broker`: options, one port for everything, topics on first use."""

    def test_bad_options(self):
        for args in (["--port", "x"], ["--partitions", "0"], ["--topic", "bad topic"], ["--nope"], ["--port"]):
            p = run(["broker"] + args, timeout=20)
            self.assertEqual(p.returncode, 2, "%s: %s" % (args, p.stderr.decode()))
        p = run(["broker", "--help"], timeout=20)
        self.assertEqual(p.returncode, 0)
        self.assertIn(b"in-memory", p.stdout)

    def test_metadata_and_first_use(self):
        b = self.start_broker(partitions=3)
        b.cmd("create fixed 2")
        kcat_produce(b.addr, "fresh", [b"a", b"b", b"c", b"d"])
        out = subprocess.run([KCAT, "-L", "-b", b.addr], stdout=subprocess.PIPE, timeout=30).stdout.decode()
        # Every client is told the relay's port, not the mock cluster's own.
        self.assertIn("broker 1 at %s" % b.addr, out)
        self.assertRegex(out, r'topic "fresh" with 3 partitions')
        self.assertRegex(out, r'topic "fixed" with 2 partitions')
        got = sorted(m["payload"] for m in kcat_consume(b.addr, "fresh"))
        self.assertEqual(got, ["a", "b", "c", "d"])
        self.assertIn("in-memory", b.read_log())


class SinkInterop(KafkaCase):
    """What cstream produces, read by kcat."""

    def test_trade_records(self):
        b = self.start_broker()
        data = gen_capture.generate(5, minutes=2.0, huge_mb=0, jump=False)
        cap = self.path("gen5.jsonl")
        tr.write_capture(cap, data)
        t0 = time.time()
        summary = self.ingest(b, cap, "records", rate=60)  # 2 minutes of feed in ~2 s: clock records
        t1 = time.time()
        msgs = kcat_consume(b.addr, "records")
        records = [m for m in msgs if '"type":"clock"' not in m["payload"]]
        clocks = [m for m in msgs if '"type":"clock"' in m["payload"]]
        # Every valid trade, in the order of the capture, exactly once.
        want = []
        for line in ref.split_lines(data):
            kind, t, _ = ref.classify(line)
            if kind == "trade":
                want.append((t, json.loads(line)))
        self.assertEqual(summary["trades"], len(want))
        self.assertEqual(summary["rows_acked"], len(want))
        self.assertEqual(len(records), len(want), "messages in the topic")
        by_product = {}
        for m in sorted(records, key=lambda m: (m["partition"], m["offset"])):
            v = json.loads(m["payload"])
            self.assertEqual(m["key"], v["product_id"], "key is the product")
            by_product.setdefault(v["product_id"], []).append((m["partition"], v))
            self.assertTrue(t0 * 1000 - 1000 <= m["ts"] <= t1 * 1000 + 1000, "timestamp is the produce time")
        want_by_product = {}
        for t, o in want:
            want_by_product.setdefault(t.product_id, []).append((t, o))
        self.assertEqual(sorted(by_product), sorted(want_by_product))
        for prod, got in by_product.items():
            self.assertEqual(len({p for p, _ in got}), 1, "%s in one partition" % prod)
            self.assertEqual(len(got), len(want_by_product[prod]), prod)
            for (_, v), (t, o) in zip(got, want_by_product[prod]):
                self.assertEqual(list(v), ["v", "exchange", "product_id", "trade_id", "price", "size",
                                           "taker_side", "time", "sequence", "recv_time"])
                self.assertEqual((v["v"], v["exchange"], v["trade_id"], v["price"], v["size"], v["time"]),
                                 (1, "coinbase", t.trade_id, t.price_s, t.size_s, o["time"]))
                self.assertEqual(v["taker_side"], "buy" if t.side == "sell" else "sell")
                self.assertEqual(v["sequence"], o.get("sequence") if type(o.get("sequence")) is int else None)
                self.assertIsNone(v["recv_time"])
        # The feed's clock, about once a second, on every partition.
        parts = {m["partition"] for m in clocks}
        self.assertEqual(parts, {0, 1, 2, 3}, "clock records on every partition")
        last_trade = max(t.time for t, _ in want)
        for p in parts:
            times = [ref.parse_time(json.loads(m["payload"])["time"])
                     for m in sorted(clocks, key=lambda m: m["offset"]) if m["partition"] == p]
            self.assertEqual(times, sorted(times), "clock moves forward")
            self.assertLessEqual(times[-1], last_trade)
            self.assertIsNone([m for m in clocks if m["partition"] == p][0]["key"])

    def test_window_rows(self):
        b = self.start_broker()
        s = self.script("rows.lua", """\
local cs = require "cstream"
cs.pipeline {
  name = "rows", source = cs.replay { path = cs.args.input },
  window = cs.tumbling { size = "30s", lateness = "5s" },
  sink = cs.kafka { brokers = cs.args.brokers, topic = "candles" },
}
""")
        cap = os.path.join(ROOT, "data", "sample.jsonl")
        p = run(["run", s, "input=" + cap, "brokers=" + b.addr])
        summary = self.check_run(p, "rows", "window rows to Kafka")
        want, _ = ref.run_file(cap, SIZE_US, 5 * ref.US)
        msgs = kcat_consume(b.addr, "candles")
        self.assertEqual(summary["rows_acked"], len(want))
        self.assertEqual(len(msgs), len(want))
        for m in msgs:
            self.assertEqual(m["key"], json.loads(m["payload"])["product_id"])
        got = b"".join(m["payload"].encode() + b"\n" for m in msgs)
        self.check_windows("candles", got, want)


RAW_LUA = """\
local cs = require "cstream"
cs.pipeline {
  name   = "ingest",
  source = cs.replay { path = cs.args.input },
  sink   = cs.kafka { brokers = cs.args.brokers, topic = cs.args.topic, value = "raw", clock = cs.arg("clock", "1s") },
}
"""


def kcat_raw(addr, topic):
    """Every message of the topic as (partition, offset, key, payload bytes),
    the payload exactly as stored (its length checked)."""
    p = subprocess.run([KCAT, "-C", "-b", addr, "-t", topic, "-e", "-q", "-f", "%p %o %S %k\x01%s\n"],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=120)
    if p.returncode != 0:
        raise AssertionError("kcat -C failed (%d): %s" % (p.returncode, p.stderr.decode()[-2000:]))
    out, rest = [], p.stdout
    while rest:
        head, rest = rest.split(b" ", 3)[:3], rest.split(b" ", 3)[3]
        part, off, size = int(head[0]), int(head[1]), int(head[2])
        key, rest = rest.split(b"\x01", 1)
        payload, rest = rest[:size], rest[size:]
        if rest[:1] != b"\n":
            raise AssertionError("kcat output out of step at %s [%d] %d" % (topic, part, off))
        out.append((part, off, key, payload))
        rest = rest[1:]
    return out


def frames_with_trades(lines):
    """The lines cstream forwards with value = "raw": frames holding at least
    one valid trade, each with the product of its first trade (oldest
    first, as cstream hands a batch on) -> [(line, product)]."""
    out = []
    for l in lines:
        kind, t, _ = ref.classify(l)
        if kind == "trade":
            out.append((l, t.product_id.encode()))
        elif kind == "batch":
            out.append((l, t[0][0].product_id.encode()))
    return out


class RawFrames(KafkaCase):
    """cs.kafka value = "raw": the exchange frame as received, once per frame,
    keyed by product; read back by the source, windows as the reference."""

    def raw_ingest(self, broker, path, topic, clock="1s"):
        p = run(["run", self.script("raw.lua", RAW_LUA), "input=" + path, "brokers=" + broker.addr, "topic=" + topic,
                 "clock=" + clock])
        return self.check_run(p, "ingest", "raw ingest into " + topic), p.stderr.decode("utf-8", "replace")

    def test_exchange_frames(self):
        b = self.start_broker()
        for cap in ("sample.jsonl", "coinbase-exchange-matches-2025-08-22.jsonl"):
            path = os.path.join(ROOT, "data", cap)
            topic = "raw-" + cap.split(".")[0]
            b.cmd("create %s 4" % topic)
            lines = ref.split_lines(ref.read_bytes(path))
            summary, _ = self.ingest_checked(b, path, topic, lines)
            out = self.path(topic + ".jsonl")
            summary, _ = self.aggregate(b, topic, "g-" + topic, out)
            want, want_c = ref.run_lines(lines, SIZE_US, 5 * ref.US)
            self.assertEqual(want_c["late"], 0)
            self.check_windows(cap + " (raw frames)", tr.read(out), want)
            self.assertEqual(summary["trades"], want_c["trades"])
            self.assertEqual(summary["duplicates"], want_c["duplicates"])

    def ingest_checked(self, b, path, topic, lines, clock="1s"):
        """Raw ingest, then the topic checked byte for byte against the capture."""
        summary, log = self.raw_ingest(b, path, topic, clock)
        want = frames_with_trades(lines)
        kinds = [ref.classify(l) for l in lines]
        n_trades = sum(1 if k == "trade" else len(t[0]) for k, t, _ in kinds if k in ("trade", "batch"))
        self.assertEqual(summary["trades"], n_trades)
        self.assertEqual(summary["rows_acked"], n_trades, "every trade acknowledged with its frame")
        msgs = [m for m in kcat_raw(b.addr, topic) if b'"type":"clock"' not in m[3]]
        self.assertEqual(len(msgs), len(want), "one message per frame with trades")
        # Byte for byte, each product's frames in capture order in one partition.
        by_key = {}
        for part, off, key, payload in sorted(msgs):
            by_key.setdefault(key, []).append((part, payload))
        want_by_key = {}
        for line, prod in want:
            want_by_key.setdefault(prod, []).append(line)
        self.assertEqual(sorted(by_key), sorted(want_by_key))
        for k, got in by_key.items():
            self.assertEqual(len({p for p, _ in got}), 1, "%s in one partition" % k)
            self.assertEqual([g for _, g in got], want_by_key[k], "frames of %s, byte for byte" % k)
        self.assertIn("exchange frames as received", log)
        return summary, msgs

    def test_advanced_trade_frames(self):
        # Frames of several trades (two 100-trade snapshots): forwarded once
        # each; through one partition the windows and counters are a replay's.
        b = self.start_broker()
        b.cmd("create adv 1")
        path = os.path.join(ROOT, "data", "coinbase-advanced-trade-2026-08-09.jsonl.gz")
        lines = ref.split_lines(ref.read_bytes(path))
        summary, msgs = self.ingest_checked(b, path, "adv", lines, clock="0")
        self.assertTrue(any(len(ref.classify(m[3])[1][0]) >= 100 for m in msgs if ref.classify(m[3])[0] == "batch"))
        out = self.path("adv.jsonl")
        got_c, _ = self.aggregate(b, "adv", "g-adv", out)
        want, want_c = ref.run_lines(lines, SIZE_US, 5 * ref.US)
        self.check_windows("advanced trade (raw frames)", tr.read(out), want, exact_order=True)
        for k in ("trades", "late", "duplicates", "windows"):
            self.assertEqual(got_c[k], want_c[k], "%s (summary %s)" % (k, got_c))
        self.assertEqual(got_c["lines"], len(msgs))

    def test_rejected_where_it_cannot_work(self):
        cases = {
            "window": 'source = cs.replay { path = "x" }, window = cs.tumbling { size = "30s" }',
            "filter/map": 'source = cs.replay { path = "x" }, filter = function(t) return true end',
            "cs.kafka as the source": 'source = cs.kafka { brokers = "b", topic = "in" }',
        }
        for why, body in cases.items():
            s = self.script("bad.lua", """local cs = require "cstream"
cs.pipeline { name = "bad", %s,
  sink = cs.kafka { brokers = "b", topic = "t", value = "raw" } }
""" % body)
            for cmd in ("check", "run"):
                p = run([cmd, s], timeout=30)
                err = p.stderr.decode()
                self.assertNotEqual(p.returncode, 0, "%s (%s): %s" % (why, cmd, err))
                self.assertIn("bad.lua:3: cs.kafka: option 'value' = \"raw\"", err, why)
                self.assertIn(why, err)
        p = run(["check", self.script("ok.lua", RAW_LUA), "input=x", "brokers=b", "topic=t"], timeout=30)
        self.assertEqual(p.returncode, 0, p.stderr.decode())


class SourceInterop(KafkaCase):
    """What kcat produces, aggregated by cstream."""

    def test_one_partition_exact(self):
        # One partition: the same order as the capture, so late trades,
        # duplicates, invalid and ignored lines count exactly as on a replay.
        b = self.start_broker()
        b.cmd("create one 1")
        lines = [l for l in ref.split_lines(gen_capture.generate(3, minutes=3.0, huge_mb=0, jump=False)) if l]
        kcat_produce(b.addr, "one", lines)
        out = self.path("one.jsonl")
        summary, _ = self.aggregate(b, "one", "g-one", out)
        want, want_c = ref.run_lines(lines, SIZE_US, 5 * ref.US)
        self.check_windows("one partition", tr.read(out), want, exact_order=True)
        for k in ("lines", "trades", "late", "duplicates", "invalid", "ignored", "windows"):
            self.assertEqual(summary[k], want_c[k], "%s (summary %s)" % (k, summary))
        # Bad messages are logged with topic, partition and offset.
        self.assertRegex(self.last_log, r"one \[0\] offset \d+: invalid: ")

    def test_records_and_raw_frames(self):
        # Trade records on one topic, raw frames on another, keyed by
        # product over 4 partitions, all produced before cstream reads.
        b = self.start_broker()
        lines = clean_capture(7)
        records = [r for r in (record_of(l) for l in lines) if r]
        kcat_produce(b.addr, "recs", records, keys=[product_of(r) for r in records])
        kcat_produce(b.addr, "raw", lines, keys=[product_of(l) for l in lines])
        want, want_c = ref.run_lines(lines, SIZE_US, 5 * ref.US)
        self.assertEqual(want_c["late"], 0)
        for topic in ("recs", "raw"):
            out = self.path(topic + ".jsonl")
            summary, _ = self.aggregate(b, topic, "g-" + topic, out)
            self.check_windows(topic, tr.read(out), want)
            self.assertEqual(summary["trades"], want_c["trades"], topic)
            self.assertEqual(summary["late"], 0, topic)


class EndToEnd(KafkaCase):
    """cstream -> Kafka -> cstream, through the standalone broker and in one
    process through the embedded one."""

    def test_two_processes(self):
        b = self.start_broker()
        for cap in ("sample.jsonl", "coinbase-exchange-matches-2025-08-22.jsonl"):
            path = os.path.join(ROOT, "data", cap)
            topic = cap.split(".")[0]
            self.ingest(b, path, topic)
            out = self.path(topic + ".jsonl")
            summary, _ = self.aggregate(b, topic, "g-" + topic, out)
            want, want_c = ref.run_file(path, SIZE_US, 5 * ref.US)
            self.assertEqual(want_c["late"], 0)
            self.check_windows(cap, tr.read(out), want)
            self.assertEqual(summary["trades"], want_c["trades"])

    def test_embedded_one_process(self):
        cap = os.path.join(ROOT, "data", "sample.jsonl")
        out = self.path("both.jsonl")
        p = run(["run", self.script("both.lua", BOTH_LUA), "input=" + cap, "out=" + out])
        self.check_run(p, "ingest", "embedded")
        summary = tr.parse_summaries(p.stderr)["agg"]
        want, want_c = ref.run_file(cap, SIZE_US, 5 * ref.US)
        self.check_windows("embedded", tr.read(out), want)
        self.assertEqual(summary["trades"], want_c["trades"])
        self.assertIn(b"development and tests only", p.stderr)


class Faults(KafkaCase):
    """Errors injected into the broker: nothing lost, nothing counted twice."""

    def test_produce_and_fetch_errors(self):
        b = self.start_broker()
        lines = clean_capture(11, seconds=180)
        cap = self.path("f.jsonl")
        with open(cap, "wb") as f:
            f.write(b"\n".join(lines) + b"\n")
        b.cmd("errors Produce 8 NOT_LEADER_FOR_PARTITION")
        b.cmd("errors Produce 3 REQUEST_TIMED_OUT")
        summary = self.ingest(b, cap, "faulty")
        self.assertEqual(b.cmd("pending Produce"), "ok 0", "the injected errors were met")
        want, want_c = ref.run_lines(lines, SIZE_US, 5 * ref.US)
        # The idempotent producer retried without duplicating anything.
        msgs = [m for m in kcat_consume(b.addr, "faulty") if '"type":"clock"' not in m["payload"]]
        n_valid = sum(1 for l in lines if ref.classify(l)[0] == "trade")
        self.assertEqual(len(msgs), n_valid, "messages in the topic (duplicates or losses)")
        self.assertEqual(summary["rows_acked"], n_valid)
        b.cmd("errors Fetch 6 NOT_LEADER_FOR_PARTITION")
        b.cmd("errors OffsetCommit 4 COORDINATOR_NOT_AVAILABLE")
        out = self.path("faulty.jsonl")
        summary, _ = self.aggregate(b, "faulty", "g-faulty", out)
        self.assertEqual(b.cmd("pending Fetch"), "ok 0")
        # Commit errors can time the group session out: a rebalance re-reads
        # from the last commit, and windows are emitted again (equal).
        self.check_windows("after fetch and commit errors", tr.read(out), want, once=False)
        # Trades read again after a rebalance count again in the summary.
        self.assertGreaterEqual(summary["trades"], want_c["trades"])

    def test_broker_down_and_up(self):
        b = self.start_broker()
        lines = clean_capture(12, seconds=120)
        cap = self.path("d.jsonl")
        with open(cap, "wb") as f:
            f.write(b"\n".join(lines) + b"\n")
        want, want_c = ref.run_lines(lines, SIZE_US, 5 * ref.US)
        # Down while the ingest runs (paced over ~4 s): it waits, then delivers.
        s = self.script("ingest.lua", INGEST_LUA)
        ing = subprocess.Popen([tr.CSTREAM, "run", s, "input=" + cap, "brokers=" + b.addr, "topic=down",
                                "rate=30"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        time.sleep(1.5)
        b.cmd("down")
        time.sleep(2.0)
        b.cmd("up")
        _, err = ing.communicate(timeout=120)
        self.assertEqual(ing.returncode, 0, err.decode()[-3000:])
        self.assertEqual(tr.parse_summaries(err)["ingest"]["rows_acked"], want_c["trades"] + want_c["duplicates"])
        # Down while the aggregator reads.
        out = self.path("down.jsonl")
        agg = subprocess.Popen([tr.CSTREAM] + self.agg_args(b, "down", "g-down", out, exit_idle="4s"),
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        time.sleep(4.0)
        b.cmd("down")
        time.sleep(2.0)
        b.cmd("up")
        _, err = agg.communicate(timeout=120)
        self.assertEqual(agg.returncode, 0, err.decode()[-3000:])
        self.last_log = err.decode("utf-8", "replace")
        self.check_windows("broker down while aggregating", tr.read(out), want, once=False)

    def test_unreachable_broker(self):
        # Nothing listens: clear messages, retries, a clean exit on SIGINT.
        s = self.script("agg.lua", AGG_LUA)
        p = subprocess.Popen([tr.CSTREAM, "run", s, "brokers=127.0.0.1:1", "topic=t", "group=g", "exit_idle=0",
                              "out=" + self.path("u.jsonl")], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        time.sleep(2.5)
        p.send_signal(signal.SIGINT)
        _, err = p.communicate(timeout=30)
        self.assertEqual(p.returncode, 0, err.decode()[-3000:])
        self.assertIn(b"127.0.0.1:1", err)
        self.assertIn(b"status=interrupted", err)


class BackPressure(KafkaCase):
    """Kafka -> Kafka without a window, the second broker down for a while:
    the sink's bound is reached (CS_SINK_BUSY), the source pauses its
    partitions, and on resume nothing is lost or repeated."""

    def test_pause_resume(self):
        a, b = self.start_broker(), self.start_broker()
        lines = clean_capture(61, seconds=120)
        records = [r for r in (record_of(l) for l in lines) if r]
        kcat_produce(a.addr, "in", records, keys=[product_of(r) for r in records])
        s = self.script("relay.lua", """\
local cs = require "cstream"
cs.pipeline {
  name = "relay",
  source = cs.kafka { brokers = cs.args.a, topic = "in", group = "relay", exit_idle = "3s" },
  sink = cs.kafka { brokers = cs.args.b, topic = "out", max_inflight = 50, clock = "0" },
}
""")
        # Records flow from a once the group is joined (~3 s); b is down
        # until well after that.
        b.cmd("down")
        p = subprocess.Popen([tr.CSTREAM, "run", s, "a=" + a.addr, "b=" + b.addr], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE)
        time.sleep(6)
        b.cmd("up")
        _, err = p.communicate(timeout=120)
        self.assertEqual(p.returncode, 0, err.decode()[-3000:])
        summary = tr.parse_summaries(err)["relay"]
        if os.environ.get("CSTREAM_E2E_SHOW"):
            sys.stderr.write(err.decode())
        self.assertEqual(summary["sink_retries"], 0, "waiting for room is not a retry")
        # A trade read from Kafka carries the message's timestamp as its
        # receive time: recv_time is that, the rest as it came.
        got = []
        for m in kcat_consume(b.addr, "out"):
            v = json.loads(m["payload"])
            self.assertLess(abs(ref.parse_time(v["recv_time"]) / 1e6 - time.time()), 120)
            v["recv_time"] = None
            got.append(json.dumps(v, separators=(",", ":")).encode())
        self.assertEqual(sorted(got), sorted(records), "every record exactly once")
        self.assertEqual(summary["rows_acked"], len(records))


class Groups(KafkaCase):
    """Several partitions and two consumers in one group."""

    def test_two_consumers(self):
        # Two members of one group share 4 partitions; every window comes out
        # once, from whichever member owns its product's partition. The data
        # flows once the group is stable with both members (librdkafka's mock
        # broker refuses offset commits while a rebalance is in progress — a
        # real broker takes them from the current generation — so a rebalance
        # mid-data may re-emit windows, equal: at least once, tested in
        # Crash). The members end one after the other, with no wall-clock
        # advance (idle), so the one that stays has emitted nothing since its
        # last commit when the other leaves.
        b = self.start_broker()
        lines = clean_capture(21, seconds=300, per_s=10)
        cap = self.path("g.jsonl")
        with open(cap, "wb") as f:
            f.write(b"\n".join(lines) + b"\n")
        want, want_c = ref.run_lines(lines, SIZE_US, 5 * ref.US)
        b.cmd("create shared 4")
        outs = [self.path("c1.jsonl"), self.path("c2.jsonl")]
        errs = [self.path("c1.err"), self.path("c2.err")]
        procs = []
        for o, e, ends in zip(outs, errs, ("3s", "8s")):
            with open(e, "wb") as ef:
                procs.append(subprocess.Popen([tr.CSTREAM] + self.agg_args(b, "shared", "g-shared", o, exit_idle=ends,
                                                                           idle="600s"),
                                              stdout=subprocess.DEVNULL, stderr=ef))
        assigned = re.compile(r"assigned shared partitions (.*)")
        deadline = time.time() + 60
        while time.time() < deadline:
            last = []
            for e in errs:
                with open(e, "rb") as ef:
                    m = assigned.findall(ef.read().decode("utf-8", "replace"))
                last.append(m[-1].split() if m else [])
            if all(len(x) == 2 for x in last):
                break
            time.sleep(0.1)
        else:
            self.fail("the group did not settle with 2 partitions each: %s" % last)
        self.ingest(b, cap, "shared", rate=100)
        logs = []
        for p, e in zip(procs, errs):
            p.wait(timeout=120)
            with open(e, "rb") as ef:
                logs.append(ef.read().decode("utf-8", "replace"))
            self.assertEqual(p.returncode, 0, logs[-1][-3000:])
        got = []
        for o in outs:
            got += tr.parse_rows(tr.read(o)) if os.path.exists(o) else []
        keys = [(dict(r)["product_id"], dict(r)["window_start"]) for r in got]
        dup = {k for k in keys if keys.count(k) > 1}
        self.assertFalse(dup, "windows emitted twice: %s\n%s" % (sorted(dup)[:5], "\n".join(l[-1500:] for l in logs)))
        m = tr.rows_mismatch(sort_rows(got), sort_want(want))
        if m:
            self.fail(m + "\n" + "\n".join(l[-1500:] for l in logs))
        self.assertTrue(all(os.path.exists(o) and tr.read(o) for o in outs), "both consumers emitted windows")


class Crash(KafkaCase):
    """kill -9 in the middle of a window, restart: at least once, and the
    re-read stragglers of emitted windows do not make partial rows."""

    def test_kill_and_restart(self):
        b = self.start_broker()
        lines = clean_capture(31, seconds=600, per_s=6)
        cap = self.path("c.jsonl")
        with open(cap, "wb") as f:
            f.write(b"\n".join(lines) + b"\n")
        want, want_c = ref.run_lines(lines, SIZE_US, 5 * ref.US)
        b.cmd("create crash 3")
        out = self.path("crash.jsonl")
        args = self.agg_args(b, "crash", "g-crash", out, exit_idle="4s")
        ing = subprocess.Popen([tr.CSTREAM, "run", self.script("ingest.lua", INGEST_LUA), "input=" + cap,
                                "brokers=" + b.addr, "topic=crash", "rate=60"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        agg = subprocess.Popen([tr.CSTREAM] + args, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        # Wait until some windows are out, then kill it mid-window.
        deadline = time.time() + 60
        while time.time() < deadline and (not os.path.exists(out) or tr.read(out).count(b"\n") < 12):
            time.sleep(0.1)
        time.sleep(random.Random(5).uniform(0.2, 0.9))
        agg.send_signal(signal.SIGKILL)
        agg.communicate()
        before = tr.read(out).count(b"\n")
        self.assertGreater(before, 0)
        agg2 = subprocess.Popen([tr.CSTREAM] + args, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        _, ierr = ing.communicate(timeout=120)
        self.assertEqual(ing.returncode, 0, ierr.decode()[-2000:])
        _, err = agg2.communicate(timeout=120)
        self.assertEqual(agg2.returncode, 0, err.decode()[-3000:])
        # The restart resumed from committed offsets (with their floors).
        self.assertRegex(err.decode(), r"assigned crash partitions \d+@\d+ \d+@\d+ \d+@\d+")
        got = tr.parse_rows(tr.read(out))
        first = {}
        for r in got:
            k = (dict(r)["product_id"], dict(r)["window_start"])
            if k in first:
                # A window emitted again after the restart is the complete one.
                self.assertEqual(dict(r), dict(first[k]), "re-emitted window differs: %s" % (k,))
            else:
                first[k] = r
        m = tr.rows_mismatch(sort_rows(list(first.values())), sort_want(want))
        if m:
            self.fail(m + "\n" + err.decode()[-2000:])
        self.assertLess(len(got), 2 * len(want), "most windows emitted once")


class Trimmed(KafkaCase):
    """The mock broker keeps ~5 MiB per partition: a committed offset the
    broker no longer has stops the pipeline loudly."""

    def test_trimmed_offset_detected(self):
        b = self.start_broker()
        b.cmd("create small 1")
        lines = clean_capture(41, seconds=60)
        kcat_produce(b.addr, "small", lines)
        out = self.path("t.jsonl")
        summary, _ = self.aggregate(b, "small", "g-trim", out)
        self.assertGreater(summary["trades"], 0)
        # ~12 MB more: the start of the log moves past the committed offset.
        filler = [b'{"type":"ticker","pad":"%s"}' % (b"x" * 4000)] * 3000
        for i in range(0, len(filler), 500):
            kcat_produce(b.addr, "small", filler[i:i + 500])
        p = run(self.agg_args(b, "small", "g-trim", self.path("t2.jsonl")), timeout=120)
        err = p.stderr.decode()
        self.assertEqual(p.returncode, 1, err[-3000:])
        self.assertIn("no longer on the broker", err)
        self.assertIn("small [0]", err)


class Start(KafkaCase):
    """start = earliest | latest | a time."""

    def test_start_time_and_latest(self):
        b = self.start_broker()
        lines = clean_capture(51, seconds=120)
        half = len(lines) // 2
        b.cmd("create st 2")
        kcat_produce(b.addr, "st", lines[:half], keys=[product_of(l) for l in lines[:half]])
        time.sleep(1.2)
        cut = time.time()
        time.sleep(0.3)
        kcat_produce(b.addr, "st", lines[half:], keys=[product_of(l) for l in lines[half:]])
        want, _ = ref.run_lines(lines[half:], SIZE_US, 5 * ref.US)
        out = self.path("st.jsonl")
        self.aggregate(b, "st", "g-st", out, start="%.3f" % cut)
        self.check_windows("start = time", tr.read(out), want)
        out2 = self.path("latest.jsonl")
        summary, _ = self.aggregate(b, "st", "g-latest", out2, start="latest")
        self.assertEqual(summary["trades"], 0)


METRICS_LUA = """\
local cs = require "cstream"
cs.metrics { port = 0, host = "127.0.0.1" }
cs.pipeline {
  name = "relay",
  source = cs.kafka { brokers = cs.args.a, topic = "in", group = "metrics", exit_idle = "0", commit_interval = "100ms" },
  sink = cs.kafka { brokers = cs.args.b, topic = "out", max_inflight = 50, clock = "0" },
}
"""


class Metrics(KafkaCase):
    """The Kafka plugins' figures on /metrics, against counts made here."""

    def test_source_and_sink_metrics(self):
        a, b = self.start_broker(), self.start_broker()
        a.cmd("create in 4")
        b.cmd("create out 3")
        lines = clean_capture(71, seconds=60)
        records = [r for r in (record_of(l) for l in lines) if r]
        bad = [b"{not json", b'{"v":1,"product_id":"BTC-USD"}', b"\xff\xfe"]
        other = [b'{"type":"ticker","product_id":"BTC-USD"}', b'{"type":"heartbeat","product_id":"ETH-USD",'
                 b'"last_trade_id":1,"sequence":1,"time":"2024-08-22T20:00:01.000000Z"}']
        msgs = records + bad * 3 + other * 4
        random.Random(3).shuffle(msgs)
        kcat_produce(a.addr, "in", msgs, keys=[product_of(m) or b"x" for m in msgs])
        per_part = {}
        for m in kcat_consume(a.addr, "in"):
            per_part[m["partition"]] = per_part.get(m["partition"], 0) + 1
        self.assertEqual(sum(per_part.values()), len(msgs))
        # The sink's broker answers slowly (max_inflight is reached) and
        # fails a few produce requests (retried by librdkafka: no loss, no
        # duplicate, nothing counted twice).
        b.cmd("rtt 40")
        b.cmd("errors Produce 3 NOT_LEADER_FOR_PARTITION")
        p = to.Proc(["run", self.script("m.lua", METRICS_LUA), "a=" + a.addr, "b=" + b.addr])
        try:
            port = p.metrics_port()
            fams = {}

            def settled():
                fams.update(to.parse_prometheus(to.http(port, "/metrics")[2]))
                v = lambda name, **kw: to.value(fams, name, pipeline="relay", **kw)  # noqa: E731
                done = [v("cstream_kafka_source_committed_offset", source="kafka", partition=str(q)) == n
                        for q, n in per_part.items()]
                return all(done) and v("cstream_kafka_sink_delivered_records_total", sink="kafka") == len(records)

            ok = to.wait_for(settled, timeout=60, step=0.3)
            self.assertTrue(ok, "metrics did not settle:\n%s\n%s" % (
                "\n".join(l for l in to.http(port, "/metrics")[2].splitlines() if "kafka" in l),
                p.err_so_far()[-3000:]))
            to.check_conventions(self, fams)

            def src(name, **kw):
                return to.value(fams, "cstream_kafka_source_" + name, pipeline="relay", source="kafka", **kw)

            def snk(name):
                return to.value(fams, "cstream_kafka_sink_" + name, pipeline="relay", sink="kafka")

            self.assertEqual(src("messages_total"), len(msgs))
            self.assertEqual(src("invalid_messages_total"), 3 * len(bad))
            self.assertEqual(src("non_trade_messages_total"), 4 * len(other))
            self.assertEqual(src("clock_records_total"), 0)
            self.assertEqual(src("assignments_total"), 1)
            self.assertEqual(src("revocations_total"), 0)
            self.assertEqual(src("offset_out_of_range_total"), 0)
            self.assertEqual(src("commit_errors_total"), 0)
            self.assertGreaterEqual(src("commits_total"), 1)
            self.assertEqual(src("assigned_partitions"), 4)
            for q, n in per_part.items():
                self.assertEqual(src("partition_messages_total", topic="in", partition=str(q)), n)
                self.assertEqual(src("position", topic="in", partition=str(q)), n)
                self.assertEqual(src("committed_offset", topic="in", partition=str(q)), n)
                self.assertEqual(src("lag_messages", topic="in", partition=str(q)), 0)
            self.assertEqual(snk("messages_total"), len(records))
            self.assertEqual(snk("records_total"), len(records))
            self.assertEqual(snk("delivered_messages_total"), len(records))
            self.assertEqual(snk("delivery_errors_total"), 0)
            self.assertEqual(snk("inflight_records"), 0)
            self.assertEqual(snk("inflight_messages"), 0)
            self.assertGreater(snk("queue_full_waits_total"), 0)
            # Produce errors the broker answers are retried per message by
            # librdkafka, which its statistics (request retries) do not count.
            self.assertIsNotNone(snk("request_retries_total"))
            self.assertEqual(b.cmd("pending Produce"), "ok 0")
            # The generic sink figures agree.
            self.assertEqual(to.value(fams, "cstream_sink_acked_records_total", pipeline="relay", sink="kafka"),
                             len(records))
        finally:
            rc = p.stop()
        self.assertEqual(rc, 0, p.err[-3000:])
        self.assertEqual(len([m for m in kcat_consume(b.addr, "out")]), len(records), "every record once")


def main():
    path, argv = tr._take_cstream_arg(sys.argv)
    path = path or os.environ.get("CSTREAM") or os.path.join(ROOT, "build", "cstream")
    tr.CSTREAM = to.CSTREAM = os.path.abspath(path)
    if not (os.path.isfile(tr.CSTREAM) and os.access(tr.CSTREAM, os.X_OK)):
        sys.stderr.write("test_kafka: cstream binary not found: %s\n" % tr.CSTREAM)
        sys.exit(2)
    if not os.access(KCAT, os.X_OK):
        sys.stderr.write("test_kafka: kcat is missing (apt-get install kcat)\n")
        sys.exit(2)
    sys.stderr.write("test_kafka: using %s\n" % tr.CSTREAM)
    unittest.main(argv=argv)


if __name__ == "__main__":
    main()
