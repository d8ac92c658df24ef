#!/usr/bin/env python3
"""Write N Coinbase Exchange `match` messages (default 1,000,000) for benchmarks.

    /usr/bin/python3 bench/gen_trades.py [N] [OUT]        # OUT defaults to stdout ("-")

Exact real format (key order, uuids, trailing zeros trimmed, 6 fractional
digits), 3 products at ~50 trades/s of event time each, so a 30 s window holds
~1,500 trades per product. Deterministic (fixed seed), in order, no invalid
lines. Standard library only; ~1M lines in a few seconds.
"""
import random
import sys
import time

PRODUCTS = (
    # product, start price, trade_id, sequence, volatility per trade
    ("BTC-USD", 116827.85, 865127782, 110614077300, 4.0),
    ("ETH-USD", 4825.29, 689038652, 85742786194, 0.35),
    ("SOL-USD", 187.42, 98120441, 23044190112, 0.02),
)
RATE = 50.0 * len(PRODUCTS) * 0.7  # new takers per second; 30% more lines are extra fills
START = 1755892800  # 2025-08-22T20:00:00Z


def main():
    n = int(sys.argv[1].replace("_", "")) if len(sys.argv) > 1 else 1_000_000
    out = sys.argv[2] if len(sys.argv) > 2 else "-"
    rng = random.Random(12345)
    bits = rng.getrandbits
    rnd = rng.random
    expo = rng.expovariate
    gauss = rng.gauss
    np = len(PRODUCTS)
    names = [p[0] for p in PRODUCTS]
    price = [p[1] for p in PRODUCTS]
    tid = [p[2] for p in PRODUCTS]
    seq = [p[3] for p in PRODUCTS]
    vol = [p[4] for p in PRODUCTS]
    sizes_round = ("0.001", "0.01", "0.1", "0.5", "1", "2")

    def uuid4():
        v = bits(128)
        h = "%032x" % v
        return "%s-%s-4%s-%s-%s" % (h[0:8], h[8:12], h[13:16],
                                    "89ab"[v & 3] + h[17:20], h[20:32])

    f = sys.stdout if out == "-" else open(out, "w", encoding="ascii", newline="\n")
    t_us = START * 1_000_000
    cur_sec = -1
    prefix = ""
    buf = []
    taker = uuid4()
    k = 0
    for _ in range(n):
        if rnd() < 0.7:  # else: another fill of the same taker at the same time
            t_us += int(expo(RATE) * 1_000_000) + 1
            taker = uuid4()
            k = int(rnd() * np)
        sec, frac = divmod(t_us, 1_000_000)
        if sec != cur_sec:
            cur_sec = sec
            prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(sec))
        p = price[k] + gauss(0.0, vol[k])
        if p < 1.0:
            p = 1.0
        price[k] = p
        ps = "%.2f" % p
        ps = ps.rstrip("0").rstrip(".")
        r = rnd()
        if r < 0.1:
            ss = sizes_round[int(r * 60)]
        else:
            ss = ("%.8f" % (rnd() ** 3 * 2.0 + 1e-8)).rstrip("0").rstrip(".")
        seq[k] += 1 + int(rnd() * 40)
        side = "buy" if rnd() < 0.5 else "sell"
        buf.append('{"type":"match","trade_id":%d,"maker_order_id":"%s","taker_order_id":"%s",'
                   '"side":"%s","size":"%s","price":"%s","product_id":"%s","sequence":%d,'
                   '"time":"%s.%06dZ"}\n' % (tid[k], uuid4(), taker, side, ss, ps, names[k],
                                             seq[k], prefix, frac))
        tid[k] += 1
        if len(buf) >= 65536:
            f.write("".join(buf))
            buf = []
    f.write("".join(buf))
    if f is not sys.stdout:
        f.close()


if __name__ == "__main__":
    main()
