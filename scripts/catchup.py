#!/usr/bin/python3
"""Catch-up of a new node into a large store, with memory figures.

  scripts/catchup.py [--events 1000000] [--batch 1000] [--writers 8]
                     [--poll-ms 20]

Starts a 3-node cluster (real ledgerd processes on 127.0.0.1, a fresh
temporary directory), appends --events events of about 100 bytes, then
starts a 4th node with --join and measures the time until it has applied
the leader's commit index and holds every event. Prints the load rate, the
catch-up time, and the peak resident memory (VmHWM) of every node, sampled
from /proc. While the 4th node catches up, one thread asks it for /health
every --poll-ms (a new connection each time, as a load balancer would) and
the script prints the slowest answer: how long the node was unable to
answer anything. Every process is stopped by pid at the end.
"""
import argparse
import os
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "integration"))
import harness  # noqa: E402


def rss_kib(pid, field="VmRSS"):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def position(c, nid):
    _, _, text = c.get(nid, "/metrics")
    for line in text.decode().splitlines():
        if line.startswith("ledger_store_position "):
            return int(line.split()[1])
    return -1


def load(c, total, batch, writers):
    done = [0]
    lock = threading.Lock()
    data = "x" * 60

    def run(w):
        ids = c.ids()
        k = 0
        while True:
            with lock:
                if done[0] >= total:
                    return
                n = min(batch, total - done[0])
                done[0] += n
            evs = [{"type": "load", "data": data} for _ in range(n)]
            body = {"events": evs}
            while True:
                nid = ids[(w + k) % len(ids)]
                k += 1
                try:
                    st, _, b = c.http("POST", nid,
                                      f"/v1/streams/load-{w}/events",
                                      body=body, timeout=60)
                except OSError:
                    continue
                if st == 201:
                    break
                if st not in (429, 503):
                    raise RuntimeError(f"append: {st} {b}")
                time.sleep(0.05)

    ts = [threading.Thread(target=run, args=(w,)) for w in range(writers)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()


def poll_health(c, nid, every_s, stop, out):
    """Ask node nid for /health every every_s until stop is set; out gets
    the number of answers, the slowest answer (s) and when it started.
    Requests before the node first answers (not listening yet) and
    connection errors are counted apart."""
    out.update(n=0, max=0.0, at=0.0, errors=0, p99=0.0)
    lat = []
    t0 = time.monotonic()
    while not stop.is_set():
        t = time.monotonic()
        try:
            c.get(nid, "/health", timeout=60)
        except OSError:
            if out["n"] > 0:
                out["errors"] += 1
            stop.wait(every_s)
            continue
        d = time.monotonic() - t
        lat.append(d)
        out["n"] += 1
        if d > out["max"]:
            out["max"] = d
            out["at"] = t - t0
        stop.wait(max(0.0, every_s - d))
    if lat:
        lat.sort()
        out["p99"] = lat[min(len(lat) - 1, int(len(lat) * 0.99))]


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--events", type=int, default=1_000_000)
    p.add_argument("--batch", type=int, default=1000)
    p.add_argument("--writers", type=int, default=8)
    p.add_argument("--poll-ms", type=int, default=20,
                   help="period of the /health poll of the new node")
    args = p.parse_args()

    c = harness.Cluster(3, name="ledger-catchup",
                        extra_args=["--max-body", str(16 << 20)])
    c.start()
    peak = {}
    stop = threading.Event()

    def sample():
        while not stop.is_set():
            for nid, n in list(c.nodes.items()):
                if n.alive():
                    peak[nid] = max(peak.get(nid, 0), rss_kib(n.proc.pid))
            stop.wait(0.1)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        t0 = time.monotonic()
        load(c, args.events, args.batch, args.writers)
        load_s = time.monotonic() - t0
        leader = c.leader()
        want = position(c, leader)
        print(f"loaded {args.events} events in {load_s:.1f} s "
              f"({args.events / load_s:,.0f} events/s); leader position "
              f"{want}", flush=True)
        print("peak RSS during the load (MiB): " + ", ".join(
            f"node {n} {kib / 1024:.1f}" for n, kib in sorted(peak.items())),
            flush=True)
        c.new_node(4, join=c.addr(leader))
        t1 = time.monotonic()
        c.start_node(4)
        health = {}
        pstop = threading.Event()
        poller = threading.Thread(
            target=poll_health,
            args=(c, 4, args.poll_ms / 1000.0, pstop, health), daemon=True)
        poller.start()
        harness.wait_until(lambda: position(c, 4) >= want, timeout=1800,
                           interval=0.2, msg="node 4 to hold every event")
        pulled_s = time.monotonic() - t1
        c.wait_healthy([4], timeout=1800)
        joined_s = time.monotonic() - t1
        pstop.set()
        poller.join()
        print(f"node 4 /health every {args.poll_ms} ms during the catch-up: "
              f"{health['n']} answers, slowest {health['max'] * 1000:.0f} ms "
              f"(at +{health['at']:.1f} s), p99 {health['p99'] * 1000:.0f} "
              f"ms, {health['errors']} connection errors", flush=True)
        st, _, b = c.get(4, "/health?caught_up=1&timeout_ms=60000",
                         timeout=90)
        role = {m["id"]: m["role"]
                for m in c.cluster_info(leader)["members"]}[4]
        print(f"node 4: every event after {pulled_s:.1f} s, ready (joined, "
              f"{role}) after {joined_s:.1f} s, caught_up health {st}",
              flush=True)
        for line in c.log_text(4).splitlines():
            if any(k in line for k in ("catch-up", "restore", "stalled")):
                print("node 4 log: " + line.strip())
        v = c.verify(4)
        print(f"node 4 verify: ok={v['ok']} position "
              f"{v['applied_position']}")
        print("peak RSS, whole run (MiB): " + ", ".join(
            f"node {n} {kib / 1024:.1f}" for n, kib in sorted(peak.items())))
        print("VmHWM (MiB): " + ", ".join(
            f"node {n} {rss_kib(x.proc.pid, 'VmHWM') / 1024:.1f}"
            for n, x in sorted(c.nodes.items()) if x.alive()))
        return 0
    finally:
        stop.set()
        c.close(force_remove=True)


if __name__ == "__main__":
    sys.exit(main())
