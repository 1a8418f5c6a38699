#!/usr/bin/env python3
"""Screenshots of the console (/ui) for docs/operations.md.

Starts a 3-node cluster (tests/integration/harness.py, fresh temp dir,
free ports), writes a varying load for --warmup-s seconds so the charts
have something to show, takes docs/img/console-healthy.png, SIGSTOPs a
follower, keeps writing for --degraded-s seconds, takes
docs/img/console-degraded.png, then SIGCONTs it and stops everything.
Needs Debian's chromium (scripts/deps.sh) and a build (make build).

    scripts/console_shots.py [--out docs/img] [--warmup-s 150]
"""
import argparse
import os
import random
import signal
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "../tests/integration"))

from browser import Browser  # noqa: E402
from harness import Cluster, wait_until  # noqa: E402

ROWS_JS = """Array.from(document.querySelectorAll('#members tbody tr'))
  .map(tr => tr.dataset.state)"""


def load(c, stop, rate, frozen):
    """Appends of 1-20 events through any running node, about rate[0] a
    second."""
    rnd = random.Random(7)
    i = 0
    while not stop.is_set():
        nid = rnd.choice([n for n in c.live_ids() if n not in frozen])
        n = rnd.randint(1, 20)
        try:
            c.http("POST", nid, f"/v1/streams/orders-{i % 5}/events",
                   body={"events": [{"type": "order", "data": {"n": k}}
                                    for k in range(n)]}, timeout=10)
        except OSError:
            pass
        i += 1
        stop.wait(1.0 / max(rate[0], 0.5))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default=os.path.join(HERE, "../docs/img"))
    ap.add_argument("--warmup-s", type=float, default=150)
    ap.add_argument("--degraded-s", type=float, default=20)
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)

    c = Cluster(3, name="console-shots").start()
    stop = threading.Event()
    rate = [20.0]
    frozen = set()
    t = threading.Thread(target=load, args=(c, stop, rate, frozen),
                         daemon=True)
    victim = None
    try:
        leader = c.leader()
        view, victim = c.followers(leader)
        t.start()
        with Browser(width=1280, height=900) as b:
            b.open(f"http://{c.addr(view)}/ui")
            end = time.monotonic() + args.warmup_s
            while time.monotonic() < end:
                # A load that changes, so the throughput chart has a shape.
                left = end - time.monotonic()
                rate[0] = 10 + 30 * abs(((left / 40) % 2) - 1)
                time.sleep(1)
            wait_until(lambda: b.js(ROWS_JS) and all(
                s in ("leader", "follower") for s in b.js(ROWS_JS)),
                timeout=30, msg="a healthy page")
            b.screenshot(os.path.join(args.out, "console-healthy.png"))
            frozen.add(victim)
            c.signal(victim, signal.SIGSTOP)
            time.sleep(args.degraded_s)
            wait_until(lambda: "unreachable" in b.js(ROWS_JS), timeout=30,
                       msg="the stopped follower to show unreachable")
            b.screenshot(os.path.join(args.out, "console-degraded.png"))
            c.signal(victim, signal.SIGCONT)
            victim = None
    finally:
        stop.set()
        if victim is not None:
            c.signal(victim, signal.SIGCONT)
        c.close(force_remove=True)
    print(f"screenshots in {os.path.abspath(args.out)}", flush=True)


if __name__ == "__main__":
    main()
