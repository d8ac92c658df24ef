#!/usr/bin/python3
"""A minimal Coinbase Exchange feed server written with Debian's
python3-websockets (asyncio), independent of cstream's own replay exchange:
for interoperability tests of cstream's WebSocket client against a server
the project did not write.

    /usr/bin/python3 tests/e2e/py_exchange.py CAPTURE [--port 0] [--host 127.0.0.1]
        [--speed 0] [--heartbeats] [--cert FILE --key FILE]

Prints `listening port=N` on stdout once listening (like `cstream
serve-replay`). Protocol: the client sends {"type":"subscribe",
"product_ids":[...],"channels":[...]} (channel names or {"name","product_ids"}
objects); the server answers with a `subscriptions` message and then sends the
capture's messages (read line by line, per connection) whose product is
subscribed on a channel carrying their type (matches: match/last_match;
ticker; level2: snapshot/l2update; full). A product not in the capture gets
{"type":"error","message":"Failed to subscribe","reason":"X is not a valid
product"} and a close. With --heartbeats, a subscribed `heartbeat` channel
gets a heartbeat per product per second of capture time (last_trade_id: the
largest trade id seen for the product). --speed 0 sends as fast as the client
reads (the default), N paces by the messages' `time`, N times faster. At the
end of the capture the connection stays open until the client leaves.
SIGINT/SIGTERM stop the server (exit 0).
"""
import argparse
import asyncio
import datetime
import gzip
import json
import signal
import ssl
import sys
import time

import websockets


def dumps(obj):
    return json.dumps(obj, separators=(",", ":"))

TYPES = {
    "matches": {"match", "last_match"},
    "ticker": {"ticker"},
    "level2": {"snapshot", "l2update"},
    "level2_batch": {"snapshot", "l2update"},
    "full": {"received", "open", "done", "match", "change", "activate"},
    "heartbeat": set(),
}


def open_capture(path):
    with open(path, "rb") as f:
        magic = f.read(2)
    return gzip.open(path, "rb") if magic == b"\x1f\x8b" else open(path, "rb")


def parse_time(s):
    """RFC 3339 `...Z` -> µs since the epoch, or None."""
    try:
        day, frac = s.rstrip("Z"), ""
        if "." in day:
            day, frac = day.split(".", 1)
        dt = datetime.datetime.strptime(day, "%Y-%m-%dT%H:%M:%S").replace(tzinfo=datetime.timezone.utc)
        return int(dt.timestamp()) * 1_000_000 + int((frac + "000000")[:6])
    except (ValueError, AttributeError):
        return None


def fmt_time(us):
    dt = datetime.datetime.fromtimestamp(us // 1_000_000, datetime.timezone.utc)
    return dt.strftime("%Y-%m-%dT%H:%M:%S") + ".%06dZ" % (us % 1_000_000)


def capture_products(path):
    products = set()
    with open_capture(path) as f:
        for raw in f:
            try:
                m = json.loads(raw)
            except ValueError:
                continue
            if isinstance(m, dict) and isinstance(m.get("product_id"), str):
                products.add(m["product_id"])
    return products


class Feed:
    def __init__(self, args):
        self.args = args
        self.products = capture_products(args.capture)

    async def error(self, ws, reason):
        await ws.send(dumps({"type": "error", "message": "Failed to subscribe", "reason": reason}))
        await ws.close()

    async def handler(self, ws, path=None):
        try:
            req = json.loads(await asyncio.wait_for(ws.recv(), 5))
        except (asyncio.TimeoutError, ValueError, websockets.ConnectionClosed):
            await ws.close(1008, "no subscribe message")
            return
        if not isinstance(req, dict) or req.get("type") != "subscribe":
            return await self.error(ws, "type must be subscribe")
        top = req.get("product_ids") or []
        subs = {}  # channel -> [products]
        for ch in req.get("channels") or []:
            name, own = (ch, []) if isinstance(ch, str) else (ch.get("name"), ch.get("product_ids") or [])
            if name not in TYPES:
                return await self.error(ws, "%s is not a valid channel" % name)
            for p in list(top) + list(own):
                if p not in self.products:
                    return await self.error(ws, "%s is not a valid product" % p)
                subs.setdefault(name, [])
                if p not in subs[name]:
                    subs[name].append(p)
        await ws.send(dumps({"type": "subscriptions",
                                  "channels": [{"name": n, "product_ids": ps} for n, ps in subs.items()]}))
        await self.stream(ws, subs)
        await ws.wait_closed()

    async def stream(self, ws, subs):
        speed = self.args.speed
        hb = subs.get("heartbeat", []) if self.args.heartbeats else []
        last_tid, clock, hb_next, t0, w0 = {}, None, None, None, None
        with open_capture(self.args.capture) as f:
            for raw in f:
                raw = raw.rstrip(b"\r\n")
                try:
                    m = json.loads(raw)
                except ValueError:
                    continue
                if not isinstance(m, dict):
                    continue
                t = parse_time(m.get("time"))
                if t is not None:
                    if t0 is None:
                        t0, w0 = t, time.monotonic()
                    if speed > 0:
                        delay = w0 + (t - t0) / 1e6 / speed - time.monotonic()
                        if delay > 0:
                            await asyncio.sleep(delay)
                    while hb and hb_next is not None and hb_next < t:
                        for p in hb:
                            await ws.send(dumps({"type": "heartbeat", "last_trade_id": last_tid.get(p, 0),
                                                      "product_id": p, "sequence": 0, "time": fmt_time(hb_next)}))
                        hb_next += 1_000_000
                    clock = t if clock is None else max(clock, t)
                    if hb_next is None:
                        hb_next = t + 1_000_000
                p, typ = m.get("product_id"), m.get("type")
                if typ in ("match", "last_match") and isinstance(m.get("trade_id"), int):
                    last_tid[p] = max(last_tid.get(p, 0), m["trade_id"])
                if any(typ in TYPES[ch] and p in ps for ch, ps in subs.items()):
                    await ws.send(raw.decode())


async def main(args):
    feed = Feed(args)
    tls = None
    if args.cert:
        tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        tls.load_cert_chain(args.cert, args.key)
    stop = asyncio.get_running_loop().create_future()
    for s in (signal.SIGINT, signal.SIGTERM):
        asyncio.get_running_loop().add_signal_handler(s, lambda: stop.done() or stop.set_result(None))
    async with websockets.serve(feed.handler, args.host, args.port, ssl=tls, max_size=None) as server:
        port = server.sockets[0].getsockname()[1]
        print("listening port=%d" % port, flush=True)
        await stop


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("capture")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--speed", type=float, default=0)
    ap.add_argument("--heartbeats", action="store_true")
    ap.add_argument("--cert")
    ap.add_argument("--key")
    a = ap.parse_args()
    if bool(a.cert) != bool(a.key):
        sys.exit("py_exchange: --cert and --key go together")
    asyncio.run(main(a))
