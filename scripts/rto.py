#!/usr/bin/python3
"""Failover measurements on a local 3-node cluster (real ledgerd processes).

  scripts/rto.py [--kills 10] [--election-ms 1000] [--heartbeat-ms 100]
  scripts/rto.py --soak 600 --election-ms 300 [--clients 64]

rto:  kill -9 the leader, then append through the survivors as fast as they
      answer; RTO = time from the kill to the first acknowledged append
      (201). The killed node is restarted and caught up before the next
      round, and each round waits a random 0.2-1.2 s first so kills land at
      different points of the heartbeat cycle. Prints every RTO, the median
      and the max.
soak: run `ledgerctl bench` at full load for N seconds without faults and
      report how often leadership changed (the term and every node's
      leader_changes counter before and after). Exit 1 if it changed.

Binaries: $LEDGERD / $LEDGERCTL, else build/. Data under a fresh temporary
directory, ports picked free, every process stopped by pid at the end.
"""
import argparse
import os
import random
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "integration"))
import harness  # noqa: E402


def first_ack(c, survivors, kill_time, n):
    """Append round-robin through survivors until one is acknowledged."""
    i = 0
    while True:
        nid = survivors[i % len(survivors)]
        i += 1
        try:
            st, _, _ = c.append(nid, "rto", [{"type": "t", "data": n,
                                             "id": f"rto-{n}"}], timeout=5)
        except OSError:
            st = 0
        if st == 201:
            return time.monotonic() - kill_time
        if time.monotonic() - kill_time > 60:
            raise RuntimeError("no acknowledged append within 60 s")
        time.sleep(0.005)


def rto(args):
    c = harness.Cluster(3, heartbeat_ms=args.heartbeat_ms,
                        election_ms=args.election_ms, name="ledger-rto")
    c.start()
    figures = []
    try:
        for k in range(args.kills):
            leader = c.leader()
            c.append_retry("rto", [{"type": "t", "data": "warm"}])
            time.sleep(random.uniform(0.2, 1.2))
            survivors = [i for i in c.live_ids() if i != leader]
            t0 = time.monotonic()
            c.kill9(leader)
            r = first_ack(c, survivors, t0, k)
            figures.append(r)
            new = c.leader(exclude=(leader,))
            print(f"kill {k + 1:2}: leader {leader} -> {new}: "
                  f"first ack after {r * 1000:.0f} ms", flush=True)
            c.start_node(leader, bootstrap=False)
            c.wait_caught_up(leader)
        print(f"election-ms {args.election_ms} heartbeat-ms "
              f"{args.heartbeat_ms}: {len(figures)} kills, median "
              f"{statistics.median(figures) * 1000:.0f} ms, min "
              f"{min(figures) * 1000:.0f} ms, max "
              f"{max(figures) * 1000:.0f} ms")
        return 0
    finally:
        c.close(force_remove=True)


def counters(c, name="ledger_raft_leader_changes_total"):
    out = {}
    for nid in c.live_ids():
        _, _, text = c.get(nid, "/metrics")
        for line in text.decode().splitlines():
            if line.startswith(name + " "):
                out[nid] = float(line.split()[-1])
    return out


def soak(args):
    c = harness.Cluster(3, heartbeat_ms=args.heartbeat_ms,
                        election_ms=args.election_ms, name="ledger-soak")
    c.start()
    try:
        leader = c.leader()
        term0 = c.cluster_info(leader)["term"]
        before = counters(c)
        eps = ",".join(c.addr(i) for i in c.ids())
        cmd = [harness.LEDGERCTL, "--endpoints", eps, "bench", "--clients",
               str(args.clients), "--size", "100", "--duration",
               str(args.soak)]
        print("running:", " ".join(cmd), flush=True)
        subprocess.run(cmd, check=False)
        info = c.cluster_info(c.leader())
        after = counters(c)
        print(f"term {term0} -> {info['term']}, leader {leader} -> "
              f"{info['leader_id']}, leader_changes before {before} "
              f"after {after}")
        changed = info["term"] != term0 or info["leader_id"] != leader
        print("longest event-loop stall per node (s):",
              counters(c, "ledger_loop_stall_max_seconds"))
        for nid in c.ids():
            for line in c.log_text(nid).splitlines():
                if any(k in line for k in ("stalled", "candidate",
                                           "leader is now", "no word")):
                    print(f"  node {nid}: {line}")
        print("leader changes during the soak:", "YES" if changed else "none")
        return 1 if changed else 0
    finally:
        c.close(force_remove=True)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--kills", type=int, default=10)
    p.add_argument("--election-ms", type=int, default=1000)
    p.add_argument("--heartbeat-ms", type=int, default=100)
    p.add_argument("--soak", type=int, default=0, metavar="SECONDS")
    p.add_argument("--clients", type=int, default=64)
    p.add_argument("--seed", type=int, default=1)
    args = p.parse_args()
    random.seed(args.seed)
    return soak(args) if args.soak else rto(args)


if __name__ == "__main__":
    sys.exit(main())
