#!/usr/bin/python3
"""End-to-end tests of the replay exchange, `cstream serve-replay`: a real
server process on loopback, real WebSocket clients (Debian's
python3-websockets), and what they receive checked exactly against the
capture, through an independent model of the stream written here
(`expected_stream`: which messages a subscription gets, where the
heartbeats go and what they say).

Covered: the subscriptions ack, the stream (real captures, plain and gzip),
heartbeats, errors for bad products/channels/JSON, the subscribe timeout,
pacing (--speed), flow control with a client that does not read, every
misbehaviour option, 5 MB frames (whole and fragmented), wss:// with a
throw-away CA (tls_ca.py), several clients with their own cursors, --loop,
--record-sent, --exit-when-done, SIGTERM with a client connected, the
command line; and the independent Python server py_exchange.py.

    /usr/bin/python3 tests/e2e/test_exchange.py --cstream build/cstream
"""
import asyncio
import datetime
import gzip
import json
import os
import select
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
import tls_ca  # noqa: E402
from test_replay import _take_cstream_arg  # noqa: E402

import websockets  # noqa: E402  (Debian python3-websockets, under /usr/bin/python3)

CSTREAM = None
SAMPLE = os.path.join(ROOT, "data", "sample.jsonl")
MIXED = os.path.join(ROOT, "data", "coinbase-exchange-mixed-2021-04-17.jsonl.gz")
SEC = 1_000_000
MB5 = 5 * 1024 * 1024

# ---- an independent model of what a subscription receives -------------------

TYPES = {
    "heartbeat": set(),
    "matches": {"match", "last_match"},
    "full": {"received", "open", "done", "match", "change", "activate"},
    "ticker": {"ticker"},
    "ticker_batch": {"ticker"},
    "level2": {"snapshot", "l2update"},
    "level2_batch": {"snapshot", "l2update"},
    "level2_50": {"snapshot", "l2update"},
    "status": {"status"},
    "auctionfeed": {"auction"},
}


def subscriptions(req):
    """The subscribe request -> ({channel: [products]} in the order the ack
    lists them, products in the order first subscribed)."""
    order, chans = [], {}
    top = req.get("product_ids", [])
    for ch in req["channels"]:
        name, own = (ch, []) if isinstance(ch, str) else (ch["name"], ch.get("product_ids", []))
        for p in list(top) + list(own):
            if p not in order:
                order.append(p)
            chans.setdefault(name, set()).add(p)
    return {name: [p for p in order if p in ps] for name, ps in chans.items()}, order


def fmt_time(us):
    dt = datetime.datetime.fromtimestamp(us // SEC, datetime.timezone.utc)
    return dt.strftime("%Y-%m-%dT%H:%M:%S") + ".%06dZ" % (us % SEC)


def read_capture(path):
    with open(path, "rb") as f:
        data = f.read()
    if data[:2] == b"\x1f\x8b":
        data = gzip.decompress(data)
    return [l for l in ref.split_lines(data) if l]


def expected_stream(lines, req, skip=()):
    """What the server sends after the ack, up to the capture's end: a list
    of ("raw", str) capture lines and ("hb", dict) heartbeats. A heartbeat
    tick T (first message time + 1 s, + 2 s, ...) comes before the first
    line stamped after T, one per heartbeat product in subscription order;
    last_trade_id is the largest match/last_match id of the product so far
    (skipped ids included: they were "lost in transit"), sequence the
    largest sequence. `skip`: (product, trade_id) pairs not sent."""
    chans, order = subscriptions(req)
    hb_products = [p for p in order if p in chans.get("heartbeat", [])]
    clock = hb_next = None
    last_tid, last_seq, out = {}, {}, []
    for raw in lines:
        try:
            m = json.loads(raw)
        except ValueError:
            continue
        if not isinstance(m, dict) or not isinstance(m.get("type"), str):
            continue
        t = ref.parse_time(m.get("time"))
        eff = t if clock is None else (clock if t is None else max(clock, t))
        if hb_products and clock is not None:
            while hb_next < eff:
                for p in hb_products:
                    out.append(("hb", {"type": "heartbeat", "last_trade_id": last_tid.get(p, 0), "product_id": p,
                                       "sequence": last_seq.get(p, 0), "time": fmt_time(hb_next)}))
                clock = hb_next
                hb_next += SEC
        if t is not None:
            if clock is None:
                hb_next = t + SEC
            clock = eff
        p, typ = m.get("product_id"), m["type"]
        if isinstance(p, str):
            if isinstance(m.get("sequence"), int):
                last_seq[p] = max(last_seq.get(p, 0), m["sequence"])
            if typ in ("match", "last_match") and isinstance(m.get("trade_id"), int):
                last_tid[p] = max(last_tid.get(p, 0), m["trade_id"])
                if (p, m["trade_id"]) in skip:
                    continue
        if typ in ("subscriptions", "heartbeat", "error"):
            continue
        if any(typ in TYPES[ch] and (p in ps if ch != "status" else p is None) for ch, ps in chans.items()):
            out.append(("raw", raw.decode()))
    return out


def expected_ack(req):
    chans, _ = subscriptions(req)
    return {"type": "subscriptions", "channels": [{"name": n, "product_ids": ps} for n, ps in chans.items()]}


# ---- helpers ------------------------------------------------------------------


class Serve:
    """`cstream serve-replay CAPTURE --port 0 OPTS...`; .port once listening."""

    def __init__(self, capture, *opts):
        self.errf = tempfile.TemporaryFile()
        self.p = subprocess.Popen([CSTREAM, "serve-replay", capture, "--port", "0"] + [str(o) for o in opts],
                                  stdout=subprocess.PIPE, stderr=self.errf)
        line = b""
        deadline = time.monotonic() + 20
        while not line.endswith(b"\n"):
            r, _, _ = select.select([self.p.stdout], [], [], max(0.0, deadline - time.monotonic()))
            if not r:
                self.kill()
                raise AssertionError("serve-replay did not start:\n" + self.stderr())
            c = os.read(self.p.stdout.fileno(), 1)
            if not c:
                self.p.wait()
                raise AssertionError("serve-replay exited %s:\n%s" % (self.p.returncode, self.stderr()))
            line += c
        assert line.startswith(b"listening port="), line
        self.port = int(line.split(b"=")[1])
        self.rc = None

    def stderr(self):
        self.errf.seek(0)
        return self.errf.read().decode(errors="replace")

    def kill(self):
        if self.p.poll() is None:
            self.p.kill()
            self.p.wait()

    def stop(self, sig=signal.SIGINT, timeout=10):
        if self.p.poll() is None:
            self.p.send_signal(sig)
        return self.wait(timeout)

    def wait(self, timeout=10):
        """Waits for the exit; checks status 0 and a clean sanitizer report; -> stderr."""
        try:
            self.rc = self.p.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError("serve-replay did not exit:\n" + self.stderr())
        err = self.stderr()
        for bad in ("AddressSanitizer", "LeakSanitizer", "runtime error:", "event loop closed with handles"):
            assert bad not in err, "serve-replay: %s\n%s" % (bad, err[-6000:])
        assert self.rc == 0, "serve-replay exited %d\n%s" % (self.rc, err[-4000:])
        return err

    def summary(self, err):
        for line in err.splitlines():
            if line.startswith("exchange "):
                return {k: int(v) for k, v in (kv.split("=") for kv in line.split()[1:])}
        raise AssertionError("no summary line:\n" + err)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.kill()
        self.p.stdout.close()
        self.errf.close()


async def _session(port, req, n, timeout, tls, host, max_queue, hold, raw_first):
    """Connects, sends req (if any), collects frames until n, a close or a
    silence of `timeout` s. -> (frames [(monotonic, data)], close code, reason)."""
    scheme = "wss" if tls else "ws"
    frames = []
    async with websockets.connect("%s://%s:%d" % (scheme, host, port), ssl=tls, max_size=None, max_queue=max_queue,
                                  open_timeout=10, close_timeout=2) as ws:
        if raw_first is not None:
            await ws.send(raw_first)
        if req is not None:
            await ws.send(json.dumps(req))
        try:
            while n is None or len(frames) < n:
                m = await asyncio.wait_for(ws.recv(), timeout)
                frames.append((time.monotonic(), m))
                if hold and len(frames) == hold[0]:
                    await hold[1](ws)
        except websockets.ConnectionClosed:
            pass
        except asyncio.TimeoutError:
            pass
        if ws.closed:
            return frames, ws.close_code, ws.close_reason
    return frames, None, None


def session(port, req, n=None, timeout=10, tls=None, host="127.0.0.1", max_queue=None, hold=None, raw_first=None):
    return asyncio.run(_session(port, req, n, timeout, tls, host, max_queue, hold, raw_first))


def texts(frames):
    return [m for _, m in frames]


def check_stream(tc, got, want, trailing_heartbeats=True):
    """got: received text frames after the ack; want: expected_stream()."""
    tc.assertGreaterEqual(len(got), len(want), "fewer frames than expected")
    for i, (kind, w) in enumerate(want):
        g = got[i]
        if kind == "raw":
            tc.assertEqual(g, w, "frame %d" % i)
        else:
            tc.assertEqual(json.loads(g), w, "heartbeat at frame %d" % i)
    for g in got[len(want):]:
        tc.assertTrue(trailing_heartbeats and json.loads(g)["type"] == "heartbeat", "unexpected frame %r" % g[:200])


def write_lines(path, lines):
    with open(path, "w") as f:
        for l in lines:
            f.write(l if isinstance(l, str) else json.dumps(l, separators=(",", ":")))
            f.write("\n")


def trade(pid, tid, t_us, price="100.5", size="0.01", side="buy", seq=None):
    return {"type": "match", "trade_id": tid, "maker_order_id": "m", "taker_order_id": "t", "side": side,
            "size": size, "price": price, "product_id": pid, "sequence": seq if seq is not None else tid * 10,
            "time": fmt_time(t_us)}


T0 = 1_755_892_800 * SEC  # 2025-08-22T20:00:00Z
SUB_BTC_ETH = {"type": "subscribe", "product_ids": ["BTC-USD"],
               "channels": ["matches", {"name": "heartbeat", "product_ids": ["ETH-USD"]},
                            {"name": "matches", "product_ids": ["ETH-USD"]}]}
SUB_MATCHES = {"type": "subscribe", "product_ids": ["BTC-USD", "ETH-USD"], "channels": ["matches"]}


class Stream(unittest.TestCase):
    def test_sample_full_stream_heartbeats_record_and_exit_when_done(self):
        """The whole 12-minute sample at speed 0: the ack, every subscribed
        message in order, heartbeats where the model puts them, the same
        frames in --record-sent, then the end: close 1000 (--linger 0) and
        the server exits by itself (--exit-when-done)."""
        with tempfile.TemporaryDirectory() as tmp:
            rec = os.path.join(tmp, "sent.jsonl")
            with Serve(SAMPLE, "--speed", 0, "--linger", 0, "--exit-when-done", "--record-sent", rec) as s:
                frames, code, reason = session(s.port, SUB_BTC_ETH)
                err = s.wait()
                got = texts(frames)
                self.assertEqual(json.loads(got[0]), expected_ack(SUB_BTC_ETH))
                self.assertEqual(json.loads(got[0])["channels"][1],
                                 {"name": "heartbeat", "product_ids": ["BTC-USD", "ETH-USD"]})
                want = expected_stream(read_capture(SAMPLE), SUB_BTC_ETH)
                self.assertGreater(sum(k == "hb" for k, _ in want), 1000)
                self.assertGreater(sum(k == "raw" for k, _ in want), 2900)
                check_stream(self, got[1:], want)
                self.assertEqual(code, 1000)
                with open(rec) as f:
                    self.assertEqual(f.read().splitlines(), got)
                sm = s.summary(err)
                self.assertEqual(sm["messages"], len(got) - 1)
                self.assertEqual(sm["frames"], len(got))
                self.assertEqual((sm["connections"], sm["subscribed"]), (1, 1))
                self.assertIn("--exit-when-done", err)

    def test_real_gzip_capture_ticker_level2_matches(self):
        """The real 2021 capture (gzip, 10 products, snapshots of several
        hundred KB): ticker + level2 + matches for some products."""
        req = {"type": "subscribe", "product_ids": ["SKL-BTC", "BAND-GBP"],
               "channels": ["ticker", "matches", {"name": "level2", "product_ids": ["CRV-EUR"]}]}
        with Serve(MIXED, "--speed", 0, "--linger", 0) as s:
            frames, code, _ = session(s.port, req)
            s.stop()
        got = texts(frames)
        self.assertEqual(json.loads(got[0]), expected_ack(req))
        want = expected_stream(read_capture(MIXED), req)
        kinds = {json.loads(w)["type"] for k, w in want if k == "raw"}
        self.assertTrue({"ticker", "snapshot", "l2update", "match", "last_match"} <= kinds, kinds)
        check_stream(self, got[1:], want, trailing_heartbeats=False)
        self.assertEqual(code, 1000)

    def test_two_clients_have_their_own_cursor(self):
        async def both(port):
            return await asyncio.gather(_session(port, SUB_MATCHES, None, 10, None, "127.0.0.1", None, None, None),
                                        _session(port, SUB_BTC_ETH, None, 10, None, "127.0.0.1", None, None, None))
        with Serve(SAMPLE, "--speed", 0, "--linger", 0) as s:
            (a, _, _), (b, _, _) = asyncio.run(both(s.port))
            err = s.stop()
        check_stream(self, texts(a)[1:], expected_stream(read_capture(SAMPLE), SUB_MATCHES))
        check_stream(self, texts(b)[1:], expected_stream(read_capture(SAMPLE), SUB_BTC_ETH))
        self.assertEqual(s.summary(err)["connections"], 2)

    def test_extra_products_unsubscribe_and_resubscribe(self):
        """--products makes a product valid that the capture lacks: it gets
        heartbeats only (last_trade_id 0). Unsubscribing a channel is acked."""
        req = {"type": "subscribe", "product_ids": ["NEW-USD"], "channels": ["heartbeat"]}

        async def go(port):
            async with websockets.connect("ws://127.0.0.1:%d" % port, max_size=None, max_queue=None) as ws:
                await ws.send(json.dumps(req))
                ack = json.loads(await ws.recv())
                hbs = [json.loads(await ws.recv()) for _ in range(3)]
                await ws.send(json.dumps({"type": "unsubscribe", "channels": ["heartbeat"]}))
                while True:  # heartbeats already in flight, then the new ack
                    m = json.loads(await ws.recv())
                    if m["type"] == "subscriptions":
                        return ack, hbs, m
        with Serve(SAMPLE, "--speed", 0, "--products", "NEW-USD,OTHER-USD") as s:
            ack, hbs, ack2 = asyncio.run(go(s.port))
            s.stop()
        self.assertEqual(ack, {"type": "subscriptions",
                               "channels": [{"name": "heartbeat", "product_ids": ["NEW-USD"]}]})
        self.assertEqual([h["product_id"] for h in hbs], ["NEW-USD"] * 3)
        self.assertEqual([h["last_trade_id"] for h in hbs], [0, 0, 0])
        self.assertEqual([h["time"] for h in hbs], [fmt_time(ref.parse_time("2025-08-22T19:59:55.150316Z") + i * SEC)
                                                    for i in (1, 2, 3)])
        self.assertEqual(ack2, {"type": "subscriptions", "channels": []})

    def test_loop(self):
        with tempfile.TemporaryDirectory() as tmp:
            cap = os.path.join(tmp, "small.jsonl")
            write_lines(cap, [trade("BTC-USD", 100 + i, T0 + i * SEC // 2) for i in range(7)])
            with Serve(cap, "--speed", 0, "--loop") as s:
                frames, _, _ = session(s.port, {"type": "subscribe", "product_ids": ["BTC-USD"],
                                                "channels": ["matches"]}, n=1 + 7 * 3)
                err = s.stop()
            ids = [json.loads(m)["trade_id"] for m in texts(frames)[1:]]
            self.assertEqual(ids, list(range(100, 107)) * 3)
            self.assertGreaterEqual(s.summary(err)["loops"], 2)


class Protocol(unittest.TestCase):
    def test_bad_requests(self):
        cases = [
            ({"type": "subscribe", "product_ids": ["BTC-USD", "XBT-USD"], "channels": ["matches"]},
             {"type": "error", "message": "Failed to subscribe", "reason": "XBT-USD is not a valid product"}),
            ({"type": "subscribe", "channels": [{"name": "matches", "product_ids": ["NOPE"]}]},
             {"type": "error", "message": "Failed to subscribe", "reason": "NOPE is not a valid product"}),
            ({"type": "subscribe", "product_ids": ["BTC-USD"], "channels": ["trades"]},
             {"type": "error", "message": "Failed to subscribe", "reason": "trades is not a valid channel"}),
            ({"type": "subscribe", "product_ids": ["BTC-USD"]},
             {"type": "error", "message": "Failed to subscribe", "reason": "channels must be an array"}),
            ({"type": "hello"},
             {"type": "error", "message": "Failed to subscribe", "reason": "type must be subscribe or unsubscribe"}),
        ]
        with Serve(SAMPLE, "--speed", 0) as s:
            for req, want in cases:
                frames, code, _ = session(s.port, req, timeout=5)
                self.assertEqual([json.loads(m) for m in texts(frames)], [want], req)
                self.assertEqual(code, 1000)
            frames, code, _ = session(s.port, None, raw_first="{not json", timeout=5)
            self.assertEqual(json.loads(texts(frames)[0])["message"], "Malformed JSON")
            err = s.stop()
        self.assertEqual(s.summary(err)["bad_requests"], len(cases) + 1)
        self.assertIn("XBT-USD is not a valid product", err)

    def test_subscribe_timeout(self):
        with Serve(SAMPLE, "--subscribe-timeout", 0.5) as s:
            t = time.monotonic()
            frames, code, reason = session(s.port, None, timeout=5)
            el = time.monotonic() - t
            err = s.stop()
        self.assertEqual(frames, [])
        self.assertEqual(code, 1008)
        self.assertIn("subscribe", reason)
        self.assertTrue(0.4 <= el <= 3, el)
        self.assertEqual(s.summary(err)["subscribe_timeouts"], 1)

    def test_sigterm_closes_clients_1001(self):
        with Serve(SAMPLE, "--speed", 1) as s:
            async def go():
                async with websockets.connect("ws://127.0.0.1:%d" % s.port) as ws:
                    await ws.send(json.dumps(SUB_MATCHES))
                    await ws.recv()  # ack
                    t = time.monotonic()
                    s.p.send_signal(signal.SIGTERM)
                    try:
                        while True:
                            await asyncio.wait_for(ws.recv(), 5)
                    except websockets.ConnectionClosed:
                        pass
                    return ws.close_code, time.monotonic() - t
            code, el = asyncio.run(go())
            err = s.wait(10)
        self.assertEqual(code, 1001)
        self.assertLess(el, 3)
        self.assertIn("SIGTERM received", err)

    def test_pacing(self):
        """A 10 s capture at --speed 10 takes about 1 s, each message near
        its time / 10; at --speed 0 it takes no time."""
        with tempfile.TemporaryDirectory() as tmp:
            cap = os.path.join(tmp, "ten.jsonl")
            write_lines(cap, [trade("BTC-USD", 1 + i, T0 + i * SEC // 2) for i in range(21)])
            req = {"type": "subscribe", "product_ids": ["BTC-USD"], "channels": ["matches"]}
            with Serve(cap, "--speed", 10) as s:
                frames, _, _ = session(s.port, req, n=22)
                s.stop()
            ts = [t for t, _ in frames[1:]]
            self.assertEqual(len(ts), 21)
            span = ts[-1] - ts[0]
            self.assertTrue(0.85 <= span <= 1.6, span)
            for i, t in enumerate(ts):
                self.assertLess(abs((t - ts[0]) - i * 0.05), 0.25, (i, t - ts[0]))
            with Serve(cap, "--speed", 0) as s:
                frames, _, _ = session(s.port, req, n=22)
                s.stop()
            self.assertLess(frames[-1][0] - frames[1][0], 0.5)

    def test_flow_control_with_a_client_that_does_not_read(self):
        """At --speed 0 the server sends only what the socket takes: with the
        client not reading, what it has sent (--record-sent) stops growing,
        far below the capture's size."""
        with tempfile.TemporaryDirectory() as tmp:
            cap, rec = os.path.join(tmp, "big.jsonl"), os.path.join(tmp, "sent.jsonl")
            pad = "x" * 900
            lines = []
            for i in range(40000):
                m = trade("BTC-USD", 1 + i, T0 + i * 1000)
                m["maker_order_id"] = pad
                lines.append(m)
            write_lines(cap, lines)

            def count():
                with open(rec, "rb") as f:
                    return f.read().count(b"\n")

            async def slow(ws):
                await asyncio.sleep(1.0)
                a = count()
                await asyncio.sleep(0.5)
                slow.counts = (a, count())

            with Serve(cap, "--speed", 0, "--record-sent", rec) as s:
                frames, _, _ = session(s.port, {"type": "subscribe", "product_ids": ["BTC-USD"],
                                                "channels": ["matches"]}, n=20, max_queue=4, hold=(10, slow))
                s.stop()
            a, b = slow.counts
            self.assertEqual(a, b, "the server kept sending to a client that does not read")
            self.assertLess(a, 20000)
            self.assertGreater(a, 10)


class Misbehaviour(unittest.TestCase):
    def test_drop_after_once_then_every(self):
        with Serve(SAMPLE, "--speed", 0, "--drop-after", 5) as s:
            frames, code, _ = session(s.port, SUB_MATCHES, timeout=5)
            self.assertEqual(len(frames), 1 + 5)
            self.assertEqual(code, 1006)  # no close frame
            frames2, _, _ = session(s.port, SUB_MATCHES, n=30)
            self.assertEqual(len(frames2), 30)  # once per server run
            err = s.stop()
        self.assertIn("dropping the TCP connection after 5 messages", err)
        self.assertEqual(s.summary(err)["drops"], 1)
        want = expected_stream(read_capture(SAMPLE), SUB_MATCHES)
        check_stream(self, texts(frames)[1:], want[:5])
        with Serve(SAMPLE, "--speed", 0, "--drop-after", 3, "--drop-every") as s:
            for _ in range(2):
                frames, code, _ = session(s.port, SUB_MATCHES, timeout=5)
                self.assertEqual((len(frames), code), (4, 1006))
            self.assertEqual(s.summary(s.stop())["drops"], 2)

    def test_close_after(self):
        with Serve(SAMPLE, "--speed", 0, "--close-after", 4, "--close-code", 4001) as s:
            frames, code, reason = session(s.port, SUB_MATCHES, timeout=5)
            err = s.stop()
        self.assertEqual(len(frames), 1 + 4)
        self.assertEqual(code, 4001)
        self.assertIn("close-after", reason)
        self.assertEqual(s.summary(err)["closes"], 1)

    def test_stall(self):
        with Serve(SAMPLE, "--speed", 0, "--stall-after", 3, "--stall-seconds", 1) as s:
            frames, _, _ = session(s.port, SUB_BTC_ETH, n=40)
            err = s.stop()
        ts = [t for t, _ in frames]
        gaps = [b - a for a, b in zip(ts, ts[1:])]
        self.assertGreaterEqual(gaps[3], 0.9)  # after the ack and 3 messages
        self.assertLess(max(gaps[:3] + gaps[4:]), 0.5)
        check_stream(self, texts(frames)[1:], expected_stream(read_capture(SAMPLE), SUB_BTC_ETH)[:39])
        self.assertIn("stalling", err)
        self.assertEqual(s.summary(err)["stalls"], 1)

    def test_garbage_binary_error_and_record_sent(self):
        with tempfile.TemporaryDirectory() as tmp:
            rec = os.path.join(tmp, "sent.jsonl")
            with Serve(SAMPLE, "--speed", 0, "--garbage-every", 3, "--binary-every", 4, "--error-after", 5,
                       "--record-sent", rec) as s:
                frames, _, _ = session(s.port, SUB_MATCHES, n=30)
                err = s.stop()
            got = texts(frames)[1:]
            data = [("raw", w) for k, w in expected_stream(read_capture(SAMPLE), SUB_MATCHES)]
            want, k = [], 0
            while len(want) < len(got):
                want.append(data[k][1])
                k += 1
                if k % 3 == 0:
                    want.append("garbage")
                if k % 4 == 0:
                    want.append("binary")
                if k == 5:
                    want.append("error")
            for g, w in zip(got, want):
                if w == "garbage":
                    self.assertIsInstance(g, str)
                    self.assertRaises(ValueError, json.loads, g)
                elif w == "binary":
                    self.assertIsInstance(g, bytes)
                elif w == "error":
                    self.assertEqual(json.loads(g)["type"], "error")
                else:
                    self.assertEqual(g, w)
            with open(rec) as f:  # the client stopped reading; the server may have sent more
                got_text = [m for m in texts(frames) if isinstance(m, str)]
                self.assertEqual(f.read().splitlines()[:len(got_text)], got_text)
            sm = s.summary(err)
            self.assertEqual(sm["errors"], 1)
            self.assertGreaterEqual(sm["garbage"], 7)
            self.assertGreaterEqual(sm["binary"], 5)
            self.assertIn("garbage text frame", err)

    def test_skip_ids_and_heartbeats(self):
        lines = read_capture(SAMPLE)
        btc = [json.loads(l)["trade_id"] for l in lines if b'"match"' in l and b"BTC-USD" in l]
        lo, hi = btc[10], btc[14]
        skip = {("BTC-USD", i) for i in range(lo, hi + 1)}
        with Serve(SAMPLE, "--speed", 0, "--linger", 0, "--skip-ids", "BTC-USD:%d-%d" % (lo, hi),
                   "--skip-ids", "ETH-USD:1-2") as s:
            frames, _, _ = session(s.port, SUB_BTC_ETH)
            err = s.stop()
        got = texts(frames)[1:]
        check_stream(self, got, expected_stream(lines, SUB_BTC_ETH, skip=skip))
        ids = {json.loads(m).get("trade_id") for m in got}
        self.assertFalse(ids & set(range(lo, hi + 1)))
        self.assertIn(lo - 1, ids)
        self.assertIn(hi + 1, ids)
        self.assertEqual(s.summary(err)["skipped_ids"], hi - lo + 1)
        self.assertIn("not sending BTC-USD trade ids %d-%d" % (lo, hi), err)

    def test_no_ack(self):
        with Serve(SAMPLE, "--speed", 0, "--no-ack") as s:
            frames, _, _ = session(s.port, SUB_MATCHES, n=3)
            s.stop()
        want = expected_stream(read_capture(SAMPLE), SUB_MATCHES)
        self.assertEqual(texts(frames), [w for _, w in want[:3]])


class BigFrames(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        cls.cap = os.path.join(cls.tmp.name, "big.jsonl")
        snap = {"type": "snapshot", "product_id": "BTC-USD", "bids": [], "asks": []}
        raw = json.dumps(snap, separators=(",", ":"))
        n = (MB5 - len(raw) - len(',"pad":""')) // 1
        snap["pad"] = "p" * n
        cls.big = json.dumps(snap, separators=(",", ":"))
        assert len(cls.big) == MB5, len(cls.big)
        write_lines(cls.cap, [trade("BTC-USD", 1, T0), cls.big, trade("BTC-USD", 2, T0 + SEC)])
        cls.req = {"type": "subscribe", "product_ids": ["BTC-USD"], "channels": ["matches", "level2"]}
        cls.ca = tls_ca.make(os.path.join(cls.tmp.name, "ca"))

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def check(self, frames):
        got = texts(frames)
        self.assertEqual(len(got), 5)
        self.assertEqual(json.loads(got[1])["trade_id"], 1)
        self.assertEqual(got[2], self.big)
        over = got[3]
        self.assertEqual(len(over), MB5)
        self.assertEqual(json.loads(over)["type"], "oversize")
        self.assertEqual(json.loads(got[4])["trade_id"], 2)

    def test_5mb_frames_whole_and_fragmented(self):
        for frag in (0, 65536):
            with Serve(self.cap, "--speed", 0, "--fragment-size", frag, "--oversize-after", 2,
                       "--oversize-bytes", MB5) as s:
                frames, _, _ = session(s.port, self.req, n=5)
                err = s.stop()
            self.check(frames)
            self.assertEqual(s.summary(err)["oversize"], 1)

    def test_wss_with_a_throwaway_ca(self):
        ca = self.ca
        with Serve(self.cap, "--speed", 0, "--cert", ca["cert"], "--key", ca["key"], "--oversize-after", 2,
                   "--oversize-bytes", MB5) as s:
            frames, _, _ = session(s.port, self.req, n=5, tls=ca["authority"].client_context(), host="localhost")
            self.check(frames)
            frames, _, _ = session(s.port, self.req, n=2, tls=ca["authority"].client_context(), host="127.0.0.1")
            self.assertEqual(len(frames), 2)
            # A client that does not trust the CA fails the handshake; the server goes on.
            import ssl
            with self.assertRaises(ssl.SSLError):
                session(s.port, self.req, n=1, tls=ssl.create_default_context(), host="localhost")
            with self.assertRaises(Exception):
                session(s.port, self.req, n=1, timeout=3)  # plain ws:// to a TLS port
            frames, _, _ = session(s.port, self.req, n=2, tls=ca["authority"].client_context(), host="localhost")
            self.assertEqual(len(frames), 2)
            s.stop()


    def test_wss_full_stream(self):
        """The whole sample over TLS: frames coalesced into TLS records and
        partial TLS writes must not change a byte."""
        ca = self.ca
        with Serve(SAMPLE, "--speed", 0, "--linger", 0, "--cert", ca["cert"], "--key", ca["key"]) as s:
            frames, code, _ = session(s.port, SUB_BTC_ETH, tls=ca["authority"].client_context(), host="localhost")
            s.stop()
        got = texts(frames)
        self.assertEqual(json.loads(got[0]), expected_ack(SUB_BTC_ETH))
        check_stream(self, got[1:], expected_stream(read_capture(SAMPLE), SUB_BTC_ETH))
        self.assertEqual(code, 1000)


class Live(unittest.TestCase):
    """--live: one capture clock for the server, started by the first
    subscribe; a client that comes later joins at the current position and
    misses what was due while it was away (heartbeats still count those
    trades); --record-sent records every client's frames, in order."""

    def capture(self, tmp, seconds=20, per_s=10):
        lines = [{"type": "subscriptions", "channels": []}]
        tid = 1000
        for i in range(seconds * per_s):
            tid += 1
            lines.append(trade("BTC-USD", tid, T0 + i * SEC // per_s + 3000, price="%d.5" % (100 + i)))
            if i % 7 == 3:
                lines.append(trade("ETH-USD", 5000 + i, T0 + i * SEC // per_s + 5000))
        path = os.path.join(tmp, "live.jsonl")
        write_lines(path, lines)
        return path, [json.dumps(l, separators=(",", ":")).encode() for l in lines]

    def test_join_at_the_current_position_and_record_everyone(self):
        speed = 10
        with tempfile.TemporaryDirectory() as tmp:
            cap, lines = self.capture(tmp)
            rec = os.path.join(tmp, "sent.jsonl")
            req = {"type": "subscribe", "product_ids": ["BTC-USD"], "channels": ["matches", "heartbeat"]}
            want = expected_stream(lines, req)
            with Serve(cap, "--live", "--speed", speed, "--linger", 0, "--record-sent", rec) as s:
                t_start = time.monotonic()
                a, _, _ = session(s.port, req, n=60)             # the first client, ~0.5 s, then it leaves
                time.sleep(max(0.0, t_start + 1.0 - time.monotonic()))
                t_join = time.monotonic()
                b, code, _ = session(s.port, req, timeout=5)     # joins ~1 s (10 s of capture) after the start
                err = s.stop()
            ga, gb = texts(a), texts(b)
            self.assertEqual(json.loads(ga[0]), expected_ack(req))
            self.assertEqual(json.loads(gb[0]), expected_ack(req))
            # The first client started the clock: it got the stream from the start.
            self.assertGreater(len(ga), 20)
            check_stream(self, ga[1:], want[:len(ga) - 1])
            # The second one: from where the clock was when it joined, to the end.
            first = json.loads(gb[1])
            k = next(i for i, (kind, w) in enumerate(want)
                     if (json.loads(w) if kind == "raw" else w) == first)
            check_stream(self, gb[1:], want[k:])
            self.assertEqual(code, 1000)
            self.assertGreater(k, len(ga) - 1, "what was due between the two clients is missed")
            # When it joined, the capture clock was at ~(t_join - t_start) * speed.
            t_first = ref.parse_time(first["time"])
            self.assertAlmostEqual((t_first - T0) / SEC / speed, t_join - t_start, delta=0.3)
            # Heartbeats count the trades nobody was sent: the first one B
            # gets announces ids beyond the last one A got.
            last_a = max(json.loads(g).get("trade_id", 0) for g in ga[1:])
            first_b_trade = next(json.loads(g)["trade_id"] for g in gb[1:] if json.loads(g)["type"] == "match")
            self.assertGreater(first_b_trade - last_a, 5)
            hb = next(json.loads(g) for g in gb[1:] if json.loads(g)["type"] == "heartbeat")
            self.assertGreater(hb["last_trade_id"], last_a + 5)
            # --record-sent: both clients' frames, in the order sent.
            with open(rec) as f:
                self.assertEqual(f.read().splitlines(), ga + gb)
            sm = s.summary(err)
            self.assertEqual((sm["connections"], sm["subscribed"]), (2, 2))
            self.assertEqual(sm["messages"], len(ga) + len(gb) - 2)
            self.assertIn("joins the live stream", err)

    def test_drop_and_reconnect_misses_what_was_sent_meanwhile(self):
        """The same through --drop-after: the reconnecting client does not get
        a replay from the start (a duplicate stream) but the live position."""
        with tempfile.TemporaryDirectory() as tmp:
            cap, lines = self.capture(tmp, seconds=10)
            req = {"type": "subscribe", "product_ids": ["BTC-USD"], "channels": ["matches"]}
            want = [w for _, w in expected_stream(lines, req)]
            with Serve(cap, "--live", "--speed", 5, "--drop-after", 8, "--linger", 0) as s:
                a, code_a, _ = session(s.port, req, timeout=5)
                time.sleep(0.5)
                b, code_b, _ = session(s.port, req, timeout=5)
                s.stop()
            self.assertEqual((len(a), code_a), (9, 1006))
            self.assertEqual(texts(a)[1:], want[:8])
            gb = texts(b)[1:]
            k = want.index(gb[0])
            self.assertEqual(gb, want[k:])
            self.assertGreater(k, 8 + 3, "about 0.5 s x 5 of capture went by without a client")

    def test_after_the_end_and_bad_options(self):
        with tempfile.TemporaryDirectory() as tmp:
            cap, _ = self.capture(tmp, seconds=2)
            req = {"type": "subscribe", "product_ids": ["BTC-USD"], "channels": ["matches", "heartbeat"]}
            with Serve(cap, "--live", "--speed", 20, "--linger", 0.5) as s:
                a, _, _ = session(s.port, req, timeout=3)
                b, code, _ = session(s.port, req, timeout=3)  # the capture is over: nothing but the close
                s.stop()
            self.assertGreater(len(a), 20)
            self.assertEqual([json.loads(g)["type"] for g in texts(b)][0], "subscriptions")
            self.assertTrue(all(json.loads(g)["type"] == "heartbeat" for g in texts(b)[1:]))
            self.assertEqual(code, 1000)
        for bad in (["--speed", "0"], ["--loop"]):
            p = subprocess.run([CSTREAM, "serve-replay", SAMPLE, "--live"] + bad, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, timeout=30)
            self.assertEqual(p.returncode, 2, p.stderr)
            self.assertIn(b"--live", p.stderr)


class CommandLine(unittest.TestCase):
    def run_cmd(self, *args):
        p = subprocess.run([CSTREAM, "serve-replay"] + list(args), stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=30)
        for bad in (b"AddressSanitizer", b"LeakSanitizer", b"runtime error:"):
            self.assertNotIn(bad, p.stderr, p.stderr.decode(errors="replace")[-4000:])
        return p

    def test_usage_and_errors(self):
        p = self.run_cmd("--help")
        self.assertEqual(p.returncode, 0)
        for opt in ("--drop-after", "--skip-ids", "--record-sent", "--fragment-size", "--exit-when-done"):
            self.assertIn(opt.encode(), p.stdout)
        self.assertEqual(self.run_cmd().returncode, 2)
        self.assertEqual(self.run_cmd(SAMPLE, "--bogus").returncode, 2)
        self.assertEqual(self.run_cmd(SAMPLE, "--speed", "fast").returncode, 2)
        self.assertEqual(self.run_cmd(SAMPLE, "--skip-ids", "BTC-USD:9-1").returncode, 2)
        self.assertEqual(self.run_cmd(SAMPLE, "--cert", "x.pem").returncode, 2)
        p = self.run_cmd("/nonexistent/capture.jsonl")
        self.assertEqual(p.returncode, 1)
        self.assertIn(b"cannot open", p.stderr)
        with Serve(SAMPLE) as s:  # the port is taken
            p = self.run_cmd(SAMPLE, "--port", str(s.port))
            self.assertEqual(p.returncode, 1, p.stderr)
            self.assertIn(b"could not listen", p.stderr)
            s.stop()
        with tempfile.TemporaryDirectory() as tmp:  # a certificate that does not load
            bad = os.path.join(tmp, "bad.pem")
            with open(bad, "w") as f:
                f.write("not a certificate\n")
            p = self.run_cmd(SAMPLE, "--cert", bad, "--key", bad)
            self.assertEqual(p.returncode, 1, p.stderr)
            self.assertIn(b"with TLS", p.stderr)


class PyExchange(unittest.TestCase):
    """The independent Python server the client tests use for interop."""

    def test_serves_like_the_protocol_says(self):
        p = subprocess.Popen([sys.executable, os.path.join(HERE, "py_exchange.py"), SAMPLE, "--heartbeats"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            line = p.stdout.readline()
            self.assertTrue(line.startswith(b"listening port="), line)
            port = int(line.split(b"=")[1])
            frames, _, _ = session(port, SUB_BTC_ETH, n=60)
            got = texts(frames)
            self.assertEqual(json.loads(got[0]), expected_ack(SUB_BTC_ETH))
            want = expected_stream(read_capture(SAMPLE), SUB_BTC_ETH)
            for g, (kind, w) in zip(got[1:], want):
                if kind == "raw":
                    self.assertEqual(g, w)
                else:
                    h = json.loads(g)
                    self.assertEqual((h["product_id"], h["last_trade_id"], h["time"]),
                                     (w["product_id"], w["last_trade_id"], w["time"]))
            frames, _, _ = session(port, {"type": "subscribe", "product_ids": ["XBT-USD"], "channels": ["matches"]})
            self.assertEqual(json.loads(texts(frames)[0])["reason"], "XBT-USD is not a valid product")
        finally:
            p.send_signal(signal.SIGINT)
            self.assertEqual(p.wait(10), 0)
            p.stdout.close()
            p.stderr.close()


def main():
    global CSTREAM
    path, argv = _take_cstream_arg(sys.argv)
    path = path or os.environ.get("CSTREAM") or os.path.join(ROOT, "build", "cstream")
    CSTREAM = os.path.abspath(path)
    if not (os.path.isfile(CSTREAM) and os.access(CSTREAM, os.X_OK)):
        sys.stderr.write("test_exchange: cstream binary not found: %s (pass --cstream PATH)\n" % CSTREAM)
        sys.exit(2)
    sys.stderr.write("test_exchange: using %s\n" % CSTREAM)
    unittest.main(argv=argv)


if __name__ == "__main__":
    main()
