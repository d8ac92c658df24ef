#!/usr/bin/python3
"""The crash test (issue #6): the whole stack as separate processes on one
machine, as in the compose stack, with faults injected while it runs:

    cstream serve-replay --live   (a generated capture: several products, disorder,
        |  ws://                   late, duplicate and invalid messages)
    cstream run scripts/ingest.lua         (cs.coinbase -> cs.kafka)
        |
    cstream broker                 (4 partitions, in memory)
        |
    cstream run scripts/aggregate.lua      (cs.kafka -> 30 s windows -> cs.clickhouse)
        |
    clickhouse-server              (Debian's 18.16, clickhouse_server.py)

Crash: the WebSocket connection is dropped once (serve-replay --drop-after),
the aggregate is killed (SIGKILL) twice at seeded random moments and
restarted, ClickHouse is killed for a few seconds and started again on the
same data directory. IngestCrash: the ingest is killed and restarted.

What is checked, against expectations computed here from what the exchange
actually sent (`--record-sent` records every frame to every client in
order), independently of cstream's own output:

  * the table read with FINAL holds exactly the windows of reference.py run
    on the sent stream (every field; missing, extra and differing windows
    are listed on failure);
  * Crash: the ingest's gap counters (summary gaps=/missing_trades=) equal an
    independent model of the gap rules (docs/coinbase.md) run on the sent
    stream, and every trade the dropped connection missed is in them;
  * IngestCrash: the trades in Kafka are trades that were sent; the windows
    are the reference's on the sent trades that reached Kafka; the
    aggregate's gap counters cover every trade the dead ingest missed.

Why the reference's single-stream rules are the right expectation for a
multi-partition aggregate: gen_capture.generate(margins=True) keeps every
arrival far from the lateness boundary — trades are either at most 1.5 s out
of order (on time under any watermark the partitions can give: the slowest
partition, a partition's own watermark, a clock record up to a few seconds
old) or at least 20 s after their window's end (late under all of them), and
duplicates stay in their original's window. So the verdict on each trade
does not depend on how the partitions interleave or where a restart resumes.

Skips when clickhouse-server or kcat is missing. CSTREAM_STACK_SEED picks
another seed (default 6), CSTREAM_STACK_SPEED the replay speed (default 5);
CSTREAM_E2E_KEEP=1 keeps the directory with every log.

    /usr/bin/python3 tests/e2e/test_stack.py --cstream build/cstream [-v] [Crash|IngestCrash]
"""
import json
import os
import random
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
import test_kafka as tk  # noqa: E402
import test_replay as tr  # noqa: E402
from clickhouse_server import ClickHouseServer, available  # noqa: E402

US = ref.US
SIZE_US = 30 * US
LATENESS_US = 5 * US
SEED = int(os.environ.get("CSTREAM_STACK_SEED", "6"))
SPEED = float(os.environ.get("CSTREAM_STACK_SPEED", "5"))
SANITIZER_MARKS = ("AddressSanitizer", "LeakSanitizer", "UndefinedBehaviorSanitizer", "runtime error:")
T_BEGIN = time.monotonic()


def log(msg):
    sys.stderr.write("[stack %6.2fs] %s\n" % (time.monotonic() - T_BEGIN, msg))
    sys.stderr.flush()


def wait_for(what, cond, timeout, interval=0.1, on_timeout=None):
    deadline = time.monotonic() + timeout
    while True:
        v = cond()
        if v:
            return v
        if time.monotonic() > deadline:
            extra = on_timeout() if on_timeout else ""
            raise AssertionError("timed out after %.0f s waiting for %s%s" % (timeout, what, extra))
        time.sleep(interval)


class Proc:
    """A cstream process with its stderr in a log file."""

    def __init__(self, tmp, name, args, stdout=subprocess.DEVNULL):
        self.name = name
        self.log_path = os.path.join(tmp, "%s.log" % name)
        self.logf = open(self.log_path, "wb")
        self.p = subprocess.Popen([tr.CSTREAM] + args, stdout=stdout, stderr=self.logf, stdin=subprocess.DEVNULL)
        self.killed = False

    def log(self):
        if not self.logf.closed:
            self.logf.flush()
        with open(self.log_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def alive(self):
        return self.p.poll() is None

    def kill9(self):
        self.killed = True
        self.p.send_signal(signal.SIGKILL)
        self.p.wait()

    def stop(self, timeout=60):
        """SIGINT; -> stderr. Exit status 0 and no sanitizer report, or fail."""
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGINT)
        try:
            rc = self.p.wait(timeout)
        except subprocess.TimeoutExpired:
            self.p.kill()
            self.p.wait()
            raise AssertionError("%s did not stop within %d s after SIGINT:\n%s" % (self.name, timeout,
                                                                                  self.log()[-4000:]))
        self.logf.close()
        text = self.log()
        if rc != 0:
            raise AssertionError("%s exited %s:\n%s" % (self.name, rc, text[-4000:]))
        self.check_clean(text)
        return text

    def check_clean(self, text=None):
        text = self.log() if text is None else text
        for m in SANITIZER_MARKS:
            if m in text:
                i = text.index(m)
                raise AssertionError("%s: %s:\n%s" % (self.name, m, text[max(0, i - 2000):i + 6000]))

    def cleanup(self):
        if self.p.poll() is None:
            self.p.kill()
            self.p.wait()
        if self.p.stdout:
            self.p.stdout.close()
        if not self.logf.closed:
            self.logf.close()


# ------------------------------------------------------------- expectations
def sent_frames(path):
    """--record-sent -> the frames (bytes), in the order sent."""
    with open(path, "rb") as f:
        data = f.read()
    return [l for l in data.split(b"\n")[:-1]]  # a frame is complete once its newline is written


def connections(frames):
    """Splits the record at each connection's `subscriptions` frame."""
    out = []
    for fr in frames:
        if fr.startswith(b'{"type":"subscriptions"'):
            out.append([])
        elif out:
            out[-1].append(fr)
    return out


def trade_key(line):
    kind, t, _ = ref.classify(line)
    return (t.product_id, t.trade_id) if kind == "trade" else None


class GapModel:
    """An independent model of cstream's gap rules (docs/coinbase.md, Gaps)
    for a pipeline without a window: trade ids are consecutive per product;
    a jump, or a heartbeat's last_trade_id beyond the last id seen (that id
    included), leaves ids pending; ids that arrive shrink the pending
    ranges; what is still pending when the feed's clock passes the revealing
    trade's (or heartbeat's) time + 5 s is a gap. A stretch announced by
    successive heartbeats is one gap; an id more than 1e8 beyond the newest
    is not believed. At the end, everything pending is counted."""

    MAX_JUMP = 100_000_000
    SETTLE = 5 * US

    def __init__(self):
        self.last = {}      # product -> highest id seen or announced
        self.pending = {}   # product -> list of [from, to, deadline]
        self.clock = None
        self.gaps = 0
        self.missing = 0
        self.declared = {}  # product -> list of (from, to)

    def _extend(self, p, lo, hi, deadline):
        for r in self.pending.setdefault(p, []):
            if r[1] == lo - 1:
                r[1] = hi
                r[2] = max(r[2], deadline)
                return
        self.pending[p].append([lo, hi, deadline])

    def _advance(self, p, tid, deadline, announced):
        if p not in self.last:
            self.last[p] = tid
            return False
        if tid <= self.last[p]:
            return True  # an older id
        if tid - self.last[p] > self.MAX_JUMP:
            return False
        hi = tid if announced else tid - 1
        if hi >= self.last[p] + 1:
            self._extend(p, self.last[p] + 1, hi, deadline)
        self.last[p] = tid
        return False

    def trade(self, p, tid, t):
        if self._advance(p, tid, t + self.SETTLE, False):
            for r in self.pending.get(p, []):
                if r[0] <= tid <= r[1]:
                    if r[0] == r[1]:
                        self.pending[p].remove(r)
                    elif tid == r[0]:
                        r[0] += 1
                    elif tid == r[1]:
                        r[1] -= 1
                    else:
                        self.pending[p].append([tid + 1, r[1], r[2]])
                        r[1] = tid - 1
                    break
        self.tick(t)

    def heartbeat(self, p, last_tid, t):
        self._advance(p, last_tid, t + self.SETTLE, True)
        self.tick(t)

    def tick(self, t):
        if self.clock is None or t > self.clock:
            self.clock = t
        self.expire(self.clock)

    def expire(self, clock):
        for p, rs in self.pending.items():
            keep = []
            for r in rs:
                if clock is None or r[2] <= clock:
                    self.gaps += 1
                    self.missing += r[1] - r[0] + 1
                    self.declared.setdefault(p, []).append((r[0], r[1]))
                else:
                    keep.append(r)
            self.pending[p] = keep

    def frame(self, fr):
        kind, t, _ = ref.classify(fr)
        if kind == "trade":
            self.trade(t.product_id, t.trade_id, t.time)
            return
        if kind != "ignored":
            return
        o = json.loads(fr)
        tm = ref.parse_time(o.get("time"))
        if tm is None:
            return
        if o.get("type") == "heartbeat" and isinstance(o.get("last_trade_id"), int) and o.get("product_id"):
            self.heartbeat(o["product_id"], o["last_trade_id"], tm)
        else:
            self.tick(tm)

    def finish(self):
        self.expire(None)
        return self

    def covers(self, p, tid):
        return any(a <= tid <= b for a, b in self.declared.get(p, []))


def window_diff(got, want, limit=8):
    """Rows keyed by (product_id, window_start) -> a readable list of the
    missing, extra and differing windows, or None when equal."""
    g = {(r["product_id"], r["window_start"]): r for r in got}
    w = {(r["product_id"], r["window_start"]): r for r in want}
    out = []
    missing = sorted(set(w) - set(g))
    extra = sorted(set(g) - set(w))
    differ = []
    for k in sorted(set(g) & set(w)):
        probs = tr.row_diff([(c, g[k][c]) for c in ref.ROW_KEYS], w[k])
        if probs:
            differ.append((k, probs))
    if not (missing or extra or differ):
        return None
    out.append("%d windows in ClickHouse, %d expected: %d missing, %d extra, %d differ" % (
        len(g), len(w), len(missing), len(extra), len(differ)))
    for k in missing[:limit]:
        out.append("  missing %s %s: want %s" % (k[0], k[1], json.dumps(w[k])))
    for k in extra[:limit]:
        out.append("  extra   %s %s: got %s" % (k[0], k[1], json.dumps({c: g[k][c] for c in ref.ROW_KEYS})))
    for k, probs in differ[:limit]:
        out.append("  differs %s %s: %s" % (k[0], k[1], "; ".join(probs)))
    return "\n".join(out)


# ------------------------------------------------------------------ the stack
class StackCase(unittest.TestCase):
    maxDiff = None
    minutes = 4.0

    def setUp(self):
        why = available()
        if why:
            self.skipTest(why)
        if not os.access(tk.KCAT, os.X_OK):
            self.skipTest("kcat is missing")
        self.tmp = tempfile.mkdtemp(prefix="cstream-stack-")
        self.procs = []
        self.rng = random.Random("%d-%s" % (SEED, self._testMethodName))
        log("%s: seed %d, speed %g, directory %s" % (self.id(), SEED, SPEED, self.tmp))
        data = gen_capture.generate(SEED, minutes=self.minutes, huge_mb=0, jump=False, margins=True)
        self.capture = os.path.join(self.tmp, "capture.jsonl")
        with open(self.capture, "wb") as f:
            f.write(data)
        self.lines = ref.split_lines(data)
        self.products = sorted({t.product_id for t in (ref.classify(l)[1] for l in self.lines
                                                         if ref.classify(l)[0] == "trade")
                                if t.product_id in gen_capture.PRODUCTS})
        times = [ref.classify(l)[1].time for l in self.lines if ref.classify(l)[0] == "trade"]
        self.cap_end = max(t for t in times if t < 2 * 10 ** 9 * US)
        self.ch = ClickHouseServer(os.path.join(self.tmp, "clickhouse"))
        self.ch.start()
        self.db = "stack"
        self.broker = tk.Broker(self.tmp, partitions=4, name="broker")
        self.broker.cmd("create trades 4")
        self.record = os.path.join(self.tmp, "sent.jsonl")

    def tearDown(self):
        for p in self.procs:
            p.cleanup()
        if os.environ.get("CSTREAM_E2E_KEEP") and getattr(self, "broker", None):
            try:  # the topic, for post-mortems: partition, offset, timestamp, value
                with open(os.path.join(self.tmp, "topic.jsonl"), "w") as f:
                    for m in tk.kcat_consume(self.broker.addr, "trades"):
                        f.write(json.dumps([m["partition"], m["offset"], m["ts"], m["payload"]]) + "\n")
            except AssertionError:
                pass
        if getattr(self, "broker", None):
            self.broker.stop()
        if getattr(self, "ch", None):
            self.ch.close()
        if os.environ.get("CSTREAM_E2E_KEEP"):
            log("kept %s" % self.tmp)
        else:
            shutil.rmtree(self.tmp, ignore_errors=True)

    # ---------------------------------------------------------------- pieces
    def start(self, name, args, **kw):
        p = Proc(self.tmp, name, args, **kw)
        self.procs.append(p)
        return p

    def serve(self, *extra):
        p = self.start("serve-replay", ["serve-replay", self.capture, "--port", "0", "--live", "--speed",
                                        str(SPEED), "--record-sent", self.record] + list(extra),
                       stdout=subprocess.PIPE)
        line = p.p.stdout.readline().decode()
        if not line.startswith("listening port="):
            raise AssertionError("serve-replay did not start: %r\n%s" % (line, p.log()))
        self.ws_port = int(line.split("=", 1)[1])
        return p

    def ingest(self, n):
        return self.start("ingest-%d" % n, [
            "--metrics-port", "0", "run", os.path.join(ROOT, "scripts", "ingest.lua"),
            "url=ws://127.0.0.1:%d" % self.ws_port, "products=" + ",".join(self.products),
            "brokers=" + self.broker.addr, "topic=trades"])

    def aggregate(self, n):
        return self.start("aggregate-%d" % n, [
            "run", os.path.join(ROOT, "scripts", "aggregate.lua"), "brokers=" + self.broker.addr, "topic=trades",
            "group=stack", "url=" + self.ch.url, "database=" + self.db])

    def table_rows(self):
        import test_clickhouse as tc
        try:
            return tc.ch_window_rows(self.ch, self.db, "candles_30s")
        except Exception:  # the table does not exist yet, or the server is down
            return None

    def table_count(self):
        rows = self.table_rows()
        return len(rows) if rows else 0

    def wait_marker(self, proc, marker, timeout=60):
        wait_for("%r in %s's log" % (marker, proc.name), lambda: marker in proc.log(), timeout,
                 on_timeout=lambda: "\n%s" % proc.log()[-3000:])

    def wait_capture_over(self):
        """Until serve-replay's heartbeats are 40 s of capture past the last
        trade: every window has ended (and the feed's clock, sent on as
        clock records, has closed it)."""
        def over():
            for fr in reversed(sent_frames(self.record)[-50:]):
                if fr.startswith(b'{"type":"heartbeat"'):
                    return ref.parse_time(json.loads(fr)["time"]) >= self.cap_end + 40 * US
            return False
        span = (self.cap_end - ref.classify(self.lines[1])[1].time) / US / SPEED
        wait_for("the end of the capture", over, span + 60, interval=0.2)

    def expect_windows(self, want_rows, aggs):
        """Polls the table until it equals want_rows (FINAL), or fails
        listing the differences."""
        log("expecting %d windows, %d trades" % (len(want_rows), sum(r["trades"] for r in want_rows)))
        last = [None]

        def equal():
            rows = self.table_rows()
            if rows is None:
                return False
            last[0] = window_diff(rows, want_rows)
            return last[0] is None
        try:
            wait_for("the table to hold the expected windows", equal, 60, interval=0.5)
        except AssertionError:
            self.fail("ClickHouse %s.candles_30s FINAL differs from the reference on what was sent:\n%s\n"
                      "last aggregate log:\n%s" % (self.db, last[0], aggs[-1].log()[-3000:]))

    def summary(self, text, name):
        s = tr.parse_summaries(text.encode())
        self.assertIn(name, s, text[-3000:])
        return s[name]


class Crash(StackCase):
    """The WebSocket drop, two kill -9 of the aggregate, ClickHouse down."""

    def test_crash_restart_outage_reconnect(self):
        rng = self.rng
        n_sendable = sum(1 for l in self.lines if trade_key(l)) + len(self.products) * self.minutes * 60
        drop_after = int(n_sendable * rng.uniform(0.25, 0.45))
        log("events: drop the WebSocket connection after %d messages" % drop_after)
        ex = self.serve("--drop-after", str(drop_after))
        aggs = [self.aggregate(1)]
        self.wait_marker(aggs[0], "assigned trades partitions")
        ing = self.ingest(1)
        self.wait_marker(ex, "the live capture clock starts")
        # kill -9 #1: once windows are landing, at a random moment.
        wait_for("the first windows in ClickHouse", lambda: self.table_count() >= 3, 90)
        time.sleep(rng.uniform(0, 2.5))
        log("kill -9 aggregate-1 (%d windows in the table)" % self.table_count())
        aggs[0].kill9()
        aggs[0].check_clean()
        aggs.append(self.aggregate(2))
        self.wait_marker(aggs[1], "assigned trades partitions")
        # ClickHouse down for a few seconds, same data directory afterwards.
        time.sleep(rng.uniform(0.5, 2.5))
        down = rng.uniform(3, 5)
        log("ClickHouse: SIGKILL, down for %.1f s" % down)
        self.ch.stop(kill=True)
        time.sleep(down)
        self.ch.start()
        log("ClickHouse: up again")
        # kill -9 #2.
        time.sleep(rng.uniform(1, 4))
        log("kill -9 aggregate-2 (%d windows in the table)" % self.table_count())
        aggs[1].kill9()
        aggs[1].check_clean()
        aggs.append(self.aggregate(3))
        self.wait_marker(aggs[2], "assigned trades partitions")
        self.wait_capture_over()
        self.assertIn("misbehaving: dropping the TCP connection", ex.log(), "the drop happened")
        frames = sent_frames(self.record)
        conns = connections(frames)
        self.assertEqual(len(conns), 2, "one reconnect after the drop")
        want, want_c = ref.run_lines(frames, SIZE_US, LATENESS_US)
        self.assertGreater(want_c["late"], 3, "the sent stream has late trades")
        self.assertGreater(want_c["duplicates"], 3, "the sent stream has duplicates")
        self.assertGreater(want_c["invalid"], 10, "the sent stream has invalid trades")
        self.expect_windows(want, aggs)
        # The gap counters: an independent model on what was sent.
        ing_log = ing.stop()
        s = self.summary(ing_log, "ingest")
        model = GapModel()
        for fr in frames:
            model.frame(fr)
        model.finish()
        sent = {trade_key(l) for l in frames} - {None}
        missed = [k for k in (trade_key(l) for l in self.lines) if k and k not in sent and k[0] in self.products]
        log("ingest: gaps=%s missing_trades=%s (model: %d, %d); %d trades were missed while disconnected" % (
            s["gaps"], s["missing_trades"], model.gaps, model.missing, len(missed)))
        self.assertGreater(len(missed), 0, "the reconnect missed trades")
        uncovered = [k for k in missed if k[1] - model.last.get(k[0], 0) < model.MAX_JUMP
                     and not model.covers(*k)]
        self.assertFalse(uncovered[:10], "trades missed while disconnected that the gap rules do not count")
        self.assertEqual((s["gaps"], s["missing_trades"]), (model.gaps, model.missing),
                         "the ingest's gap counters differ from the model of what was sent")
        self.assertEqual(s["trades"], sum(1 for fr in frames if ref.classify(fr)[0] == "trade"),
                         "every valid trade sent went to Kafka")
        for a in aggs[2:]:
            a.stop()
        ex.stop()


class IngestCrash(StackCase):
    """kill -9 of the ingest: what it missed is in the aggregate's gap
    counters, and the windows hold what reached Kafka."""
    minutes = 2.5

    def test_ingest_killed_and_restarted(self):
        rng = self.rng
        ex = self.serve()
        agg = self.aggregate(1)
        self.wait_marker(agg, "assigned trades partitions")
        ing = self.ingest(1)
        self.wait_marker(ex, "the live capture clock starts")
        wait_for("the first windows in ClickHouse", lambda: self.table_count() >= 2, 90)
        time.sleep(rng.uniform(0, 3))
        log("kill -9 ingest-1")
        ing.kill9()
        ing.check_clean()
        away = rng.uniform(1, 3)
        time.sleep(away)
        log("restarting the ingest after %.1f s" % away)
        ing2 = self.ingest(2)
        self.wait_capture_over()
        frames = sent_frames(self.record)
        conns = connections(frames)
        self.assertEqual(len(conns), 2)
        # What reached Kafka: every record is a trade that was sent.
        topic = {}
        for m in tk.kcat_consume(self.broker.addr, "trades"):
            v = json.loads(m["payload"])
            if v.get("type") == "clock":
                continue
            v["recv_time"] = None
            k = json.dumps(v, separators=(",", ":"))
            topic[k] = topic.get(k, 0) + 1
        reached, lost = [], []
        left = dict(topic)
        for fr in frames:
            rec = tk.record_of(fr)
            if rec is None:
                reached.append(fr)  # not a trade: never in Kafka, does not matter to windows
                continue
            k = rec.decode()
            if left.get(k, 0) > 0:
                left[k] -= 1
                reached.append(fr)
            else:
                lost.append(fr)
        self.assertFalse({k: n for k, n in left.items() if n}, "records in Kafka that were never sent")
        lost_keys = [trade_key(fr) for fr in lost]
        log("%d trades sent to the killed ingest never reached Kafka" % len(lost))
        self.assertTrue(all(fr in conns[0] for fr in lost), "only the killed ingest loses trades")
        want, _ = ref.run_lines(reached, SIZE_US, LATENESS_US)
        self.expect_windows(want, [agg])
        # The aggregate's gap counters cover what the ingest missed: trades
        # sent while it was dead, or lost in it.
        agg_log = agg.stop()
        s = self.summary(agg_log, "aggregate-30s")
        sent = {trade_key(l) for l in reached} - {None}
        first = {}
        for fr in reached:
            k = trade_key(fr)
            if k and k[0] not in first:
                first[k[0]] = k[1]
        missed = {k for k in (trade_key(l) for l in self.lines)
                  if k and k not in sent and k[0] in self.products and first.get(k[0], 1 << 62) < k[1] < 10 ** 11}
        missed |= {k for k in lost_keys if k and k not in sent and k[1] < 10 ** 11}
        disorder = set()
        high = {}
        for fr in reached:
            k = trade_key(fr)
            if not k or k[1] >= 10 ** 11:  # the capture's odd ids (0, 5e11.., INT64_MAX) aside
                continue
            if k[1] < high.get(k[0], -1):
                disorder.add(k)
            high[k[0]] = max(high.get(k[0], -1), k[1])
        log("aggregate: gaps=%s missing_trades=%s; %d trades missed by the ingest, %d arrived out of order" % (
            s["gaps"], s["missing_trades"], len(missed), len(disorder)))
        self.assertGreater(len(missed), 0, "the dead ingest missed trades")
        self.assertGreaterEqual(s["missing_trades"], len(missed),
                                "the aggregate's gap counters do not account for the missed trades")
        self.assertLessEqual(s["missing_trades"], len(missed) + len(disorder))
        ing2.stop()
        ex.stop()


def main():
    path, argv = tr._take_cstream_arg(sys.argv)
    path = path or os.environ.get("CSTREAM") or os.path.join(ROOT, "build", "cstream")
    tr.CSTREAM = os.path.abspath(path)
    if not (os.path.isfile(tr.CSTREAM) and os.access(tr.CSTREAM, os.X_OK)):
        sys.stderr.write("test_stack: cstream binary not found: %s\n" % tr.CSTREAM)
        sys.exit(2)
    sys.stderr.write("test_stack: using %s\n" % tr.CSTREAM)
    unittest.main(argv=argv)


if __name__ == "__main__":
    main()
