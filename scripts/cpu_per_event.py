#!/usr/bin/env python3
"""Cluster CPU per event: the figure docs/performance.md compares builds by.

Starts a fresh 3-node cluster with the given ledgerd/ledgerctl, runs
`ledgerctl bench` for a few seconds per round, and prints, per round, the
CPU the three ledgerd processes used (user + system, from /proc/PID/stat)
divided by the events appended. That figure moves far less with other load
on the machine than requests per second do.

  scripts/cpu_per_event.py [--ledgerd B/ledgerd --ledgerctl B/ledgerctl]
                           [--clients 64] [--batch 1] [--seconds 4]
                           [--rounds 3] [--base-port 27000]

With --vs DIR (a second build directory holding ledgerd and ledgerctl) the
two builds run in turn, round by round, and both medians are printed.
"""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile

CLK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK


def one_round(ledgerd, ledgerctl, args, port):
    d = tempfile.mkdtemp(prefix="cpe-")
    env = dict(os.environ, LEDGERD=ledgerd)
    api = port + 100
    eps = ",".join(f"127.0.0.1:{api + i}" for i in range(3))
    try:
        subprocess.run([ledgerctl, "cluster", "up", "--dir", d, "--raft-port",
                        str(port), "--api-port", str(api)], env=env,
                       check=True, stdout=subprocess.DEVNULL)
        pids = [int(open(f"{d}/node{i}.pid").read()) for i in (1, 2, 3)]
        before = sum(cpu_seconds(p) for p in pids)
        out = subprocess.run(
            [ledgerctl, "--endpoints", eps, "--json", "bench", "--clients",
             str(args.clients), "--batch", str(args.batch), "--duration",
             str(args.seconds)], env=env, check=True, capture_output=True,
            text=True).stdout
        after = sum(cpu_seconds(p) for p in pids)
        res = json.loads(out.strip().splitlines()[-1])
        events = res.get("events") or res.get("events_total") or (
            res["ok"] * args.batch if "ok" in res else None)
        if not events:
            raise RuntimeError(f"bench printed no event count: {out}")
        return (after - before) / events * 1e6, res
    finally:
        subprocess.run([ledgerctl, "cluster", "down", "--dir", d], env=env,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        shutil.rmtree(d, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--ledgerd", default="build/ledgerd")
    ap.add_argument("--ledgerctl", default="build/ledgerctl")
    ap.add_argument("--vs", help="build dir of a second build to compare")
    ap.add_argument("--clients", type=int, default=64)
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--seconds", type=int, default=4)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--base-port", type=int, default=27000)
    args = ap.parse_args()
    builds = [("this", args.ledgerd, args.ledgerctl)]
    if args.vs:
        builds.append((args.vs, os.path.join(args.vs, "ledgerd"),
                       os.path.join(args.vs, "ledgerctl")))
    figures = {name: [] for name, _, _ in builds}
    for r in range(args.rounds):
        for i, (name, d, c) in enumerate(builds):
            us, res = one_round(d, c, args, args.base_port + 10 * i)
            figures[name].append(us)
            print(f"round {r + 1} {name}: {us:.1f} us of cluster CPU per "
                  f"event ({round(res.get('requests_per_s', 0))} req/s)",
                  flush=True)
    for name, f in figures.items():
        print(f"{name}: median {statistics.median(f):.1f} us per event "
              f"(range {min(f):.1f}-{max(f):.1f}, {len(f)} rounds, "
              f"{args.clients} clients, batch {args.batch})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
