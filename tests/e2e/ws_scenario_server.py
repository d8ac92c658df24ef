#!/usr/bin/env python3
"""A scripted Coinbase-Exchange-protocol WebSocket server for tests, written
with Debian's python3-websockets (a server the project did not write).

Each accepted connection follows the next plan of the scenario (the last
plan repeats). A plan (JSON object) may say:
  ack            send the `subscriptions` acknowledgement (default true)
  error_on_subscribe  answer the subscribe with this `error` reason and close
  start, count   which capture lines to send (indexes into the lines that
                 match the subscription); count null = to the end
  last_match     first send the last trade before `start` as `last_match`
                 (what the real feed does on subscribe), default false
  garbage_every, binary_every   every N-th message also send a non-JSON
                 text frame / a binary frame
  error_after    after N messages send an `error` message
  oversize_after, oversize_bytes   after N messages send one huge text frame
  then           "abort" (drop TCP, no close frame), "close" (close frame
                 1011), "stall" (send nothing more, keep open), "linger"
                 (default: keep sending heartbeats every 0.2 s)
  final_heartbeat_ahead  after the messages, send a heartbeat whose time is
                 this many seconds past the last trade (moves the feed clock)
  future_after   after N messages send a match stamped an hour ahead of the
                 wall clock (clock sanity)
With --advanced the server speaks the Advanced Trade protocol instead: one
subscribe message per channel, a `subscriptions` frame, then every capture
frame whose channel was subscribed (start/count index those frames), and
final_heartbeat_ahead sends a `heartbeats` frame with a later timestamp.
Writes every frame sent, per connection, to --sent (JSON lines
{"conn": i, "frame": text} or {"conn": i, "binary": n}). Prints
`listening port=N` once ready.

    /usr/bin/python3 tests/e2e/ws_scenario_server.py --capture data/sample.jsonl \\
        --scenario '[{"count": 100, "then": "abort"}, {"start": 120}]' --port 0
"""
import argparse
import asyncio
import datetime as dt
import json
import ssl
import sys
import time

import websockets


def fmt(us):
    t = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc) + dt.timedelta(microseconds=us)
    return t.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_time(s):
    t = dt.datetime.strptime(s[:26].rstrip("Z"), "%Y-%m-%dT%H:%M:%S.%f" if "." in s else "%Y-%m-%dT%H:%M:%S")
    return int((t.replace(tzinfo=dt.timezone.utc) - dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)).total_seconds() * 1e6)


class Server:
    def __init__(self, args):
        if args.capture.endswith(".gz"):
            import gzip
            text = gzip.open(args.capture, "rt", encoding="utf-8").read()
        else:
            text = open(args.capture, encoding="utf-8").read()
        self.lines = [l for l in text.splitlines() if l.strip()]
        self.plans = json.loads(args.scenario)
        self.conn = 0
        self.sent = open(args.sent, "w") if args.sent else None
        self.advanced_mode = args.advanced

    def log(self, i, **kw):
        if self.sent:
            kw["conn"] = i
            self.sent.write(json.dumps(kw) + "\n")
            self.sent.flush()

    async def advanced(self, ws, i, plan):
        """The Advanced Trade protocol: channel-per-subscribe."""
        channels, products = set(), set()
        first = json.loads(await asyncio.wait_for(ws.recv(), 10))
        channels.add(first.get("channel"))
        products |= set(first.get("product_ids", []))
        try:  # further subscribe messages arrive right after the first
            while True:
                m = json.loads(await asyncio.wait_for(ws.recv(), 0.3))
                channels.add(m.get("channel"))
                products |= set(m.get("product_ids", []))
        except asyncio.TimeoutError:
            pass

        async def send(text):
            await ws.send(text)
            self.log(i, frame=text)

        await send(json.dumps({"channel": "subscriptions", "sequence_num": 0, "events": [{"subscriptions": {c: sorted(products) for c in channels}}]}))
        mine = [l for l in self.lines if json.loads(l).get("channel") in channels]
        start, count = plan.get("start", 0), plan.get("count")
        end = len(mine) if count is None else min(len(mine), start + count)
        last = None
        for l in mine[start:end]:
            await send(l)
            last = json.loads(l).get("timestamp", last)
        if plan.get("final_heartbeat_ahead") and last:
            t = parse_time(last[:26] + "Z") + int(plan["final_heartbeat_ahead"] * 1e6)
            await send(json.dumps({"channel": "heartbeats", "timestamp": fmt(t), "sequence_num": 99,
                                   "events": [{"current_time": "x", "heartbeat_counter": 1}], "final": True}))
        while True:
            await asyncio.sleep(0.2)
            await ws.ping()

    async def handler(self, ws, path=None):
        i = self.conn
        self.log(i, extensions=[getattr(e, "name", str(e)) for e in getattr(ws, "extensions", [])])
        if self.advanced_mode:
            self.conn += 1
            return await self.advanced(ws, i, self.plans[min(i, len(self.plans) - 1)])
        self.conn += 1
        plan = self.plans[min(i, len(self.plans) - 1)]
        try:
            sub = json.loads(await asyncio.wait_for(ws.recv(), 10))
        except Exception:
            return
        products = set(sub.get("product_ids", []))
        if plan.get("error_on_subscribe"):
            msg = json.dumps({"type": "error", "message": "Failed to subscribe", "reason": plan["error_on_subscribe"]})
            await ws.send(msg)
            self.log(i, frame=msg)
            await ws.close()
            return

        async def send(text):
            await ws.send(text)
            self.log(i, frame=text)

        if plan.get("ack", True):
            await send(json.dumps({"type": "subscriptions", "channels": [
                {"name": c, "product_ids": sorted(products)} for c in sub.get("channels", [])]}))
        mine = []
        for l in self.lines:
            o = json.loads(l)
            if o.get("product_id") in products and o.get("type") in ("match", "last_match", "heartbeat"):
                mine.append((l, o))
        start = plan.get("start", 0)
        count = plan.get("count")
        end = len(mine) if count is None else min(len(mine), start + count)
        if plan.get("last_match") and start > 0:
            for l, o in reversed(mine[:start]):
                if o.get("type") in ("match", "last_match"):
                    o2 = dict(o)
                    o2["type"] = "last_match"
                    await send(json.dumps(o2))
                    break
        last_time = None
        n = 0
        for l, o in mine[start:end]:
            await send(l)
            n += 1
            if "time" in o and o.get("type") != "heartbeat":
                last_time = parse_time(o["time"])
            if plan.get("garbage_every") and n % plan["garbage_every"] == 0:
                await send("this is not JSON {")
            if plan.get("binary_every") and n % plan["binary_every"] == 0:
                await ws.send(b"\x00\x01binary")
                self.log(i, binary=8)
            if plan.get("error_after") == n:
                await send(json.dumps({"type": "error", "message": "internal error", "reason": "test"}))
            if plan.get("future_after") == n:
                future = dict(o)
                future.update(type="match", trade_id=10 ** 12, time=fmt(int(time.time() * 1e6) + 3600 * 10 ** 6))
                if "side" not in future:
                    future.update(side="buy", size="1", price="1")
                await send(json.dumps(future))
            if plan.get("oversize_after") == n:
                await send(json.dumps({"type": "ticker", "pad": "x" * plan.get("oversize_bytes", 100000)}))
        if plan.get("final_heartbeat_ahead") and last_time is not None:
            for p in sorted(products):
                await send(json.dumps({"type": "heartbeat", "last_trade_id": 0, "product_id": p, "sequence": 0,
                                       "time": fmt(last_time + int(plan["final_heartbeat_ahead"] * 1e6)),
                                       "final": True}))
        then = plan.get("then", "linger")
        if then == "abort":
            ws.transport.abort()
            return
        if then == "close":
            await ws.close(1011, "test close")
            return
        if then == "stall":
            await asyncio.sleep(3600)
            return
        while True:  # linger: keep the connection alive
            await asyncio.sleep(0.2)
            await ws.ping()


async def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--capture", required=True)
    ap.add_argument("--scenario", default="[{}]")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--sent")
    ap.add_argument("--cert")
    ap.add_argument("--key")
    ap.add_argument("--advanced", action="store_true")
    args = ap.parse_args()
    srv = Server(args)
    ctx = None
    if args.cert:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(args.cert, args.key)
    async with websockets.serve(srv.handler, "127.0.0.1", args.port, ssl=ctx, max_size=None,
                                ping_interval=None) as server:
        port = server.sockets[0].getsockname()[1]
        print("listening port=%d" % port, flush=True)
        await asyncio.Future()


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        pass
