#!/usr/bin/env python3
"""End-to-end tests of the live source cs.coinbase against WebSocket
servers on loopback: tests/e2e/ws_scenario_server.py (python3-websockets, a
server the project did not write) and, when built, `cstream serve-replay`.

The windows cstream emits are compared with tests/e2e/reference.py run on
exactly the frames the server sent; gaps with the trade ids actually
delivered.

    /usr/bin/python3 tests/e2e/test_coinbase.py --cstream build/cstream
"""
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
import reference as ref  # noqa: E402
from test_replay import _take_cstream_arg, parse_summaries  # noqa: E402

CSTREAM = None
PY = "/usr/bin/python3"
SAMPLE = os.path.join(ROOT, "data", "sample.jsonl")
SEC = 1_000_000


def make_ca(tmp, names=("DNS:localhost", "IP:127.0.0.1"), cn="localhost"):
    """A throw-away CA and a server certificate signed by it."""
    def run(*a):
        subprocess.run(a, cwd=tmp, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    if not os.path.exists(os.path.join(tmp, "ca.pem")):
        run("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem",
            "-days", "2", "-subj", "/CN=cstream test CA")
    tag = cn.replace(".", "_")
    with open(os.path.join(tmp, tag + ".ext"), "w") as f:
        f.write("subjectAltName=" + ",".join(names) + "\n")
    run("openssl", "req", "-newkey", "rsa:2048", "-nodes", "-keyout", tag + ".key", "-out", tag + ".csr",
        "-subj", "/CN=" + cn)
    run("openssl", "x509", "-req", "-in", tag + ".csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
        "-out", tag + ".pem", "-days", "2", "-extfile", tag + ".ext")
    return os.path.join(tmp, "ca.pem"), os.path.join(tmp, tag + ".pem"), os.path.join(tmp, tag + ".key")


class Server:
    def __init__(self, tmp, scenario, capture=SAMPLE, cert=None, key=None, advanced=False):
        self.sent = os.path.join(tmp, "sent-%d.jsonl" % id(self))
        args = [PY, os.path.join(HERE, "ws_scenario_server.py"), "--capture", capture, "--scenario",
                json.dumps(scenario), "--port", "0", "--sent", self.sent]
        if cert:
            args += ["--cert", cert, "--key", key]
        if advanced:
            args.append("--advanced")
        self.p = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        line = self.p.stdout.readline()
        m = re.match(r"listening port=(\d+)", line)
        if not m:
            raise RuntimeError("server did not start: %r %s" % (line, self.p.stderr.read()))
        self.port = int(m.group(1))

    def frames(self):
        """conn -> list of text frames sent (bytes), in order."""
        out = {}
        with open(self.sent) as f:
            for l in f:
                if not l.endswith("\n"):
                    break  # being written right now
                o = json.loads(l)
                if "frame" in o:
                    out.setdefault(o["conn"], []).append(o["frame"].encode())
        return out

    def wait_final(self, conn, timeout=20):
        """Waits until connection `conn` has sent its final heartbeat."""
        end = time.time() + timeout
        while time.time() < end:
            fr = self.frames().get(conn, [])
            if fr and b'"final": true' in fr[-1]:
                return self.frames()
            time.sleep(0.05)
        raise AssertionError("the server did not finish sending on connection %d" % conn)

    def binary_count(self):
        with open(self.sent) as f:  # after wait_final: complete
            return sum(1 for l in f if '"binary"' in l)

    def stop(self):
        self.p.kill()
        self.p.wait()
        self.p.stdout.close()
        self.p.stderr.close()


class Client:
    """cstream run with a cs.coinbase pipeline writing rows to a file."""

    def __init__(self, tmp, url, extra="", size="30s", lateness="5s", products=("BTC-USD", "ETH-USD")):
        self.out = os.path.join(tmp, "rows-%d.jsonl" % id(self))
        script = os.path.join(tmp, "live-%d.lua" % id(self))
        with open(script, "w") as f:
            f.write("""local cs = require "cstream"
cs.pipeline { name = "live",
  source = cs.coinbase { url = %s, products = { %s }%s },
  window = cs.tumbling { size = %s, lateness = %s },
  sink = cs.jsonl { path = %s } }
""" % (json.dumps(url), ", ".join(json.dumps(p) for p in products), extra, json.dumps(size), json.dumps(lateness),
       json.dumps(self.out)))
        self.p = subprocess.Popen([CSTREAM, "run", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE)

    def rows(self):
        if not os.path.exists(self.out):
            return []
        with open(self.out) as f:
            return [json.loads(l) for l in f if l.endswith("\n")]

    def wait_rows(self, n, timeout=20):
        end = time.time() + timeout
        while time.time() < end and len(self.rows()) < n and self.p.poll() is None:
            time.sleep(0.1)
        return self.rows()

    def wait_log(self, pattern, timeout=15):
        """Polls stderr (kept) for a regex; returns the match or None."""
        end = time.time() + timeout
        while time.time() < end:
            m = re.search(pattern, self.err_so_far())
            if m:
                return m
            time.sleep(0.1)
        return None

    _err = b""

    def err_so_far(self):
        import fcntl
        fd = self.p.stderr.fileno()
        fl = fcntl.fcntl(fd, fcntl.F_GETFL)
        fcntl.fcntl(fd, fcntl.F_SETFL, fl | os.O_NONBLOCK)
        try:
            chunk = os.read(fd, 1 << 20)
            if chunk:
                self._err += chunk
        except BlockingIOError:
            pass
        return self._err.decode("utf-8", "replace")

    def stop(self):
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGINT)
        _, err = self.p.communicate(timeout=30)
        self.err = (self._err + err).decode("utf-8", "replace")
        self.summary = parse_summaries(self.err.encode()).get("live", {})
        return self.p.returncode


def expected(frames, size=30 * SEC, lateness=5 * SEC):
    e = ref.Engine(size, lateness)
    for f in frames:
        e.line(f)
    rows, c = e.finish()
    return rows, c


def close(a, b):
    if isinstance(a, (int, float)) and isinstance(b, (int, float)) and not isinstance(a, bool):
        return a == b or abs(a - b) <= 1e-9 * max(abs(a), abs(b))
    return a == b


class Case(unittest.TestCase):
    def setUp(self):
        self.tmpd = tempfile.TemporaryDirectory()
        self.tmp = self.tmpd.name
        self.procs = []

    def tearDown(self):
        for p in self.procs:
            try:
                p.stop()
            except Exception:
                pass
        self.tmpd.cleanup()

    def server(self, scenario, **kw):
        s = Server(self.tmp, scenario, **kw)
        self.procs.append(s)
        return s

    def client(self, url, **kw):
        c = Client(self.tmp, url, **kw)
        self.procs.append(c)
        return c

    def assertRows(self, got, want):
        self.assertEqual(len(got), len(want), "rows: got %d want %d" % (len(got), len(want)))
        for i, (g, w) in enumerate(zip(got, want)):
            self.assertEqual(list(g.keys()), list(w.keys()))
            for k in w:
                self.assertTrue(close(g[k], w[k]), "row %d %s: got %r want %r" % (i, k, g[k], w[k]))


class Stream(Case):
    def test_windows_equal_reference_and_replay(self):
        s = self.server([{"final_heartbeat_ahead": 60}])
        c = self.client("ws://127.0.0.1:%d" % s.port)
        want, wc = expected(s.wait_final(0)[0])
        got = c.wait_rows(len(want))
        self.assertEqual(c.stop(), 0, c.err[-3000:])
        self.assertRows(got, want)
        self.assertEqual(c.summary["trades"], wc["trades"])
        self.assertEqual(c.summary["gaps"], 0)
        self.assertEqual(c.summary["invalid"], 0)
        with open(s.sent) as f:  # permessage-deflate was negotiated
            self.assertIn("permessage-deflate", json.loads(f.readline()).get("extensions", []))
        # The same capture through cs.replay gives the same windows.
        rp = subprocess.run([CSTREAM, "run", os.path.join(ROOT, "scripts", "replay.lua"), "input=" + SAMPLE],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.assertEqual([json.loads(l) for l in rp.stdout.decode().splitlines()], got)

    def test_reconnect_gap_and_no_double_count(self):
        # conn 0 drops after 1500 messages; conn 1 resumes at 1700 with a
        # last_match, as the real feed does: the trades between are a gap.
        s = self.server([{"count": 1500, "then": "abort"}, {"start": 1700, "last_match": True,
                                                             "final_heartbeat_ahead": 60}])
        c = self.client("ws://127.0.0.1:%d" % s.port)
        self.assertIsNotNone(c.wait_log(r"connected to .*subscribing again"), c.err_so_far())
        fr = s.wait_final(1)
        frames = fr[0] + fr[1]
        want, wc = expected(frames)
        got = c.wait_rows(len(want))
        self.assertEqual(c.stop(), 0, c.err[-3000:])
        self.assertRows(got, want)
        self.assertIn("connection lost", c.err)
        # Gaps: every id between the first and the last id a product
        # delivered (or a heartbeat announced) that was not delivered.
        ids, announced = {}, {}
        for f in frames:
            o = json.loads(f)
            if o.get("type") in ("match", "last_match"):
                ids.setdefault(o["product_id"], set()).add(o["trade_id"])
            elif o.get("type") == "heartbeat" and o.get("last_trade_id"):
                announced[o["product_id"]] = max(announced.get(o["product_id"], 0), o["last_trade_id"])
        missing = set()
        for p, got_ids in ids.items():
            top = max(max(got_ids), announced.get(p, 0))
            missing |= {(p, i) for i in range(min(got_ids), top + 1) if i not in got_ids}
        self.assertGreater(len(missing), 0)
        self.assertEqual(c.summary["missing_trades"], len(missing))
        logged = set()
        for p, a, b in re.findall(r"gap: (\S+) trade ids (\d+)\.\.(\d+) missing", c.err):
            logged |= {(p, i) for i in range(int(a), int(b) + 1)}
        self.assertEqual(logged, missing)

    def test_resubscribe_overlap_is_not_double_counted(self):
        s = self.server([{"count": 1500, "then": "close"}, {"start": 1300, "last_match": True,
                                                             "final_heartbeat_ahead": 60}])
        c = self.client("ws://127.0.0.1:%d" % s.port)
        self.assertIsNotNone(c.wait_log(r"subscribing again"), c.err_so_far())
        fr = s.wait_final(1)
        want, wc = expected(fr[0] + fr[1])
        got = c.wait_rows(len(want))
        self.assertEqual(c.stop(), 0, c.err[-3000:])
        self.assertRows(got, want)
        self.assertGreater(c.summary["duplicates"], 0)
        self.assertEqual(c.summary["duplicates"], wc["duplicates"])
        self.assertEqual(c.summary["missing_trades"], 0)
        self.assertIn("code 1011", c.err)


class Feeds(Case):
    def test_advanced_trade_feed(self):
        cap = os.path.join(ROOT, "data", "coinbase-advanced-trade-2026-08-09.jsonl.gz")
        # Advanced frames are stamped when sent, after the trades they carry,
        # and the feed's clock follows those stamps: a lateness longer than
        # the snapshot's span keeps the comparison independent of timing.
        s = self.server([{"final_heartbeat_ahead": 1200}], capture=cap, advanced=True)
        c = self.client("ws://127.0.0.1:%d" % s.port, extra=', api = "advanced"', lateness="10m")
        want, wc = expected(s.wait_final(0)[0], lateness=600 * SEC)
        self.assertGreater(wc["trades"], 0)
        got = c.wait_rows(len(want))
        self.assertEqual(c.stop(), 0, c.err[-3000:])
        self.assertRows(got, want)
        self.assertEqual(c.summary["trades"], wc["trades"])
        self.assertEqual(c.summary["late"], wc["late"])

    def test_recording_replays_to_the_same_windows(self):
        s = self.server([{"count": 2500, "final_heartbeat_ahead": 60}])
        rec = os.path.join(self.tmp, "rec", "cap-%Y%m%d.jsonl.gz")
        c = self.client("ws://127.0.0.1:%d" % s.port, extra=", record = %s" % json.dumps(rec))
        want, _ = expected(s.wait_final(0)[0])
        got = c.wait_rows(len(want))
        self.assertEqual(c.stop(), 0, c.err[-3000:])
        self.assertRows(got, want)
        path = time.strftime(rec, time.gmtime())
        import gzip
        with gzip.open(path, "rb") as f:
            recorded = f.read().splitlines()
        self.assertEqual(recorded, s.frames()[0])  # every frame, unchanged
        rp = subprocess.run([CSTREAM, "run", os.path.join(ROOT, "scripts", "replay.lua"), "input=" + path],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.assertEqual([json.loads(l) for l in rp.stdout.decode().splitlines()], got)

    def test_trade_ahead_of_the_wall_clock_is_invalid(self):
        s = self.server([{"future_after": 300, "final_heartbeat_ahead": 60}])
        c = self.client("ws://127.0.0.1:%d" % s.port)
        frames = s.wait_final(0)[0]
        future = [f for f in frames if b'"trade_id": 1000000000000' in f]
        self.assertEqual(len(future), 1)
        want, wc = expected([f for f in frames if f not in future])
        got = c.wait_rows(len(want))
        self.assertEqual(c.stop(), 0, c.err[-3000:])
        self.assertRows(got, want)
        self.assertEqual(c.summary["invalid"], 1)
        self.assertIn("ahead of the wall clock", c.err)


class BadInput(Case):
    def test_garbage_binary_oversize_are_counted_and_stream_goes_on(self):
        s = self.server([{"garbage_every": 50, "binary_every": 70, "oversize_after": 100, "oversize_bytes": 200000,
                          "final_heartbeat_ahead": 60}])
        c = self.client("ws://127.0.0.1:%d" % s.port, extra=", max_frame = 65536")
        text = s.wait_final(0)[0]
        oversize = [f for f in text if len(f) > 65536]
        self.assertEqual(len(oversize), 1)
        want, wc = expected([f for f in text if len(f) <= 65536])
        got = c.wait_rows(len(want))
        self.assertEqual(c.stop(), 0, c.err[-3000:])
        self.assertRows(got, want)
        self.assertEqual(c.summary["invalid"], wc["invalid"] + s.binary_count() + 1)
        self.assertIn("binary frame", c.err)
        self.assertIn("longer than max_frame", c.err)

    def test_error_before_ack_is_a_clear_failure(self):
        s = self.server([{"error_on_subscribe": "ZZZ-USD is not a valid product"}])
        c = self.client("ws://127.0.0.1:%d" % s.port)
        c.p.wait(timeout=15)
        self.assertEqual(c.stop(), 1)
        self.assertIn("ZZZ-USD is not a valid product", c.err)

    def test_error_after_ack_reconnects(self):
        s = self.server([{"count": 200, "error_after": 100, "then": "linger"}, {"final_heartbeat_ahead": 60}])
        c = self.client("ws://127.0.0.1:%d" % s.port)
        self.assertIsNotNone(c.wait_log(r"subscribing again"), c.err_so_far())
        c.stop()
        self.assertIn("the feed sent an error: internal error (test)", c.err)

    def test_no_ack_and_stall_reconnect(self):
        s = self.server([{"ack": False, "then": "linger", "count": 0}, {"count": 10, "then": "stall"},
                         {"final_heartbeat_ahead": 60}])
        c = self.client("ws://127.0.0.1:%d" % s.port, extra=", subscribe_timeout = \"1s\", idle_timeout = \"1s\"")
        self.assertIsNotNone(c.wait_log(r"no subscriptions acknowledgement within 1 s"), c.err_so_far())
        self.assertIsNotNone(c.wait_log(r"idle: no frame for 1 s"), c.err_so_far())
        self.assertEqual(c.stop(), 0)

    def test_refused_then_sigint(self):
        c = self.client("ws://127.0.0.1:1")
        self.assertIsNotNone(c.wait_log(r"reconnecting in .* \(attempt 2\)"), c.err_so_far())
        self.assertEqual(c.stop(), 0)
        self.assertIn("failed", c.err)


class Tls(Case):
    def test_wss_with_private_ca(self):
        ca, cert, key = make_ca(self.tmp)
        s = self.server([{"final_heartbeat_ahead": 60}], cert=cert, key=key)
        c = self.client("wss://localhost:%d" % s.port, extra=", ca_file = %s" % json.dumps(ca))
        want, _ = expected(s.wait_final(0)[0])
        got = c.wait_rows(len(want))
        self.assertEqual(c.stop(), 0, c.err[-3000:])
        self.assertRows(got, want)

    def test_unknown_ca_and_wrong_host_are_refused(self):
        ca, cert, key = make_ca(self.tmp, names=("DNS:otherhost",), cn="otherhost")
        s = self.server([{}], cert=cert, key=key)
        # The system store does not know the test CA.
        c = self.client("wss://localhost:%d" % s.port)
        self.assertIsNotNone(c.wait_log(r"connection to localhost .* failed: .*"), c.err_so_far())
        c.stop()
        self.assertEqual(c.summary.get("trades"), 0)
        # The CA is trusted but the certificate names another host.
        c = self.client("wss://localhost:%d" % s.port, extra=", ca_file = %s" % json.dumps(ca))
        self.assertIsNotNone(c.wait_log(r"connection to localhost .* failed: .*"), c.err_so_far())
        c.stop()
        self.assertEqual(c.summary.get("trades"), 0)

    def test_insecure_is_loud(self):
        ca, cert, key = make_ca(self.tmp, names=("DNS:otherhost",), cn="otherhost")
        s = self.server([{"final_heartbeat_ahead": 60}], cert=cert, key=key)
        c = self.client("wss://localhost:%d" % s.port, extra=", insecure = true")
        want, _ = expected(s.wait_final(0)[0])
        got = c.wait_rows(len(want))
        c.stop()
        self.assertIn("INSECURE", c.err)
        self.assertRows(got, want)


class ReplayExchange(Case):
    """cs.coinbase against the project's own replay exchange (serve-replay)."""

    def serve(self, *extra, capture=SAMPLE):
        p = subprocess.Popen([CSTREAM, "serve-replay", capture, "--port", "0", "--speed", "0"] + list(extra),
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

        class Proc:
            def stop(self_):
                p.kill()
                p.wait()
                p.stdout.close()
                p.stderr.close()
        self.procs.append(Proc())
        m = re.match(r"listening port=(\d+)", p.stdout.readline())
        self.assertIsNotNone(m)
        return int(m.group(1))

    def replay_rows(self, capture=SAMPLE):
        rp = subprocess.run([CSTREAM, "run", os.path.join(ROOT, "scripts", "replay.lua"), "input=" + capture],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        return [json.loads(l) for l in rp.stdout.decode().splitlines()]

    def check_prefix(self, got, want):
        # Every window emitted is complete and right; only the newest
        # (still open when stopped) may be missing.
        self.assertGreaterEqual(len(got), len(want) - 4)
        self.assertRows(got, want[:len(got)])

    def test_ws_windows_equal_replay(self):
        port = self.serve()
        c = self.client("ws://127.0.0.1:%d" % port)
        want = self.replay_rows()
        got = c.wait_rows(len(want) - 4)
        time.sleep(0.5)
        got = c.rows()
        self.assertEqual(c.stop(), 0, c.err[-2000:])
        self.check_prefix(got, want)

    def test_wss_windows_equal_replay(self):
        ca, cert, key = make_ca(self.tmp)
        port = self.serve("--cert", cert, "--key", key)
        c = self.client("wss://localhost:%d" % port, extra=", ca_file = %s" % json.dumps(ca))
        want = self.replay_rows()
        c.wait_rows(len(want) - 4)
        time.sleep(0.5)
        got = c.rows()
        self.assertEqual(c.stop(), 0, c.err[-2000:])
        self.check_prefix(got, want)

    def test_dropped_connection_resubscribes_without_double_counting(self):
        port = self.serve("--drop-after", "1200")
        c = self.client("ws://127.0.0.1:%d" % port)
        self.assertIsNotNone(c.wait_log(r"subscribing again"), c.err_so_far())
        want = self.replay_rows()
        c.wait_rows(len(want) - 4)
        time.sleep(0.5)
        got = c.rows()
        self.assertEqual(c.stop(), 0, c.err[-2000:])
        self.check_prefix(got, want)
        self.assertGreater(c.summary["late"] + c.summary["duplicates"], 0)

    def test_exit_on_close_ends_with_every_window(self):
        # The exchange closes normally (1000) at the end of its capture: with
        # exit_on_close the input ends and every window is emitted.
        port = self.serve("--linger", "0.5")
        c = self.client("ws://127.0.0.1:%d" % port, extra=", exit_on_close = true")
        try:
            c.p.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.fail("exit_on_close: still running after the exchange closed: " + c.err_so_far()[-2000:])
        self.assertEqual(c.stop(), 0, c.err[-2000:])
        self.assertIn("exit_on_close: the input ends", c.err)
        self.assertEqual(c.summary["open_windows"], 0)
        self.assertRows(c.rows(), self.replay_rows())

    def test_exit_on_close_reconnects_after_other_close_codes(self):
        # 1001 ("going away") is not the end of the feed: reconnect.
        port = self.serve("--close-after", "200", "--close-code", "1001")
        c = self.client("ws://127.0.0.1:%d" % port, extra=", exit_on_close = true")
        self.assertIsNotNone(c.wait_log(r"code 1001.*reconnecting"), c.err_so_far())
        self.assertIsNotNone(c.wait_log(r"subscribed to 2 product\(s\)[\s\S]*subscribed to 2 product"),
                             c.err_so_far())
        self.assertIsNone(c.p.poll(), "the source ended on close code 1001")
        self.assertEqual(c.stop(), 0, c.err[-2000:])

    def test_skipped_ids_are_reported_as_one_gap(self):
        # Trade ids of BTC-USD in the sample, to skip a stretch in the middle.
        ids = [json.loads(l)["trade_id"] for l in open(SAMPLE) if '"match"' in l and '"BTC-USD"' in l]
        lo, hi = ids[len(ids) // 2], ids[len(ids) // 2 + 9]
        port = self.serve("--skip-ids", "BTC-USD:%d-%d" % (lo, hi))
        c = self.client("ws://127.0.0.1:%d" % port)
        self.assertIsNotNone(c.wait_log(r"gap: BTC-USD trade ids %d\.\.%d missing \(10 trades\)" % (lo, hi)),
                             c.err_so_far())
        c.stop()
        self.assertEqual(c.summary["gaps"], 1)
        self.assertEqual(c.summary["missing_trades"], 10)


def main():
    global CSTREAM
    path, argv = _take_cstream_arg(sys.argv)
    CSTREAM = os.path.abspath(path or os.environ.get("CSTREAM") or os.path.join(ROOT, "build", "cstream"))
    unittest.main(argv=argv)


if __name__ == "__main__":
    main()
