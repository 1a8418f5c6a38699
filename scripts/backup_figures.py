#!/usr/bin/python3
"""The backup figures of docs/operations.md ("Disaster recovery"), on a
running local cluster (e.g. `ledgerctl cluster up` then `ledgerctl bench
--events 1000000` to fill it):

  1. append p99 without a backup: `ledgerctl bench` for --seconds;
  2. the same bench while `ledgerctl backup` runs back to back on the
     leader for the whole bench: p99 during backups;
  3. each backup's wall time, size and events, and the leader's RSS
     sampled every 20 ms during them (VmRSS; its peak, and VmHWM);
  4. first, one backup alone: its wall time and the CPU seconds it took,
     in ledgerctl (with the ledgerd that verifies) and in the leader.

Usage: scripts/backup_figures.py --endpoints A,B,C [--seconds 20]
       [--clients 16] [--batch 10] [--dir /tmp] [--token-file F]
Prints one table; the load average before and after (other work on the
machine skews the timings: say so next to the figures).
"""
import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
LEDGERCTL = os.environ.get("LEDGERCTL") or os.path.join(
    HERE, "../build/ledgerctl")


def ctl(args, eps, token_file):
    cmd = [LEDGERCTL, "--endpoints", eps]
    if token_file:
        cmd += ["--token-file", token_file]
    return subprocess.run(cmd + args, capture_output=True, text=True)


def bench(eps, token_file, a):
    p = ctl(["--json", "bench", "--clients", str(a.clients), "--batch",
             str(a.batch), "--duration", str(a.seconds)], eps, token_file)
    if p.returncode != 0:
        sys.exit(f"bench failed: {p.stderr}")
    return json.loads(p.stdout.strip().splitlines()[-1])


def get(addr, path, token_file):
    req = urllib.request.Request(f"http://{addr}{path}")
    if token_file:
        with open(token_file) as f:
            req.add_header("Authorization", "Bearer " + f.read().strip())
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.load(r)


def rss_kib(pid):
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(("VmRSS:", "VmHWM:")):
                out[line.split(":")[0]] = int(line.split()[1])
    return out


def cpu_s(pid):
    """utime + stime of a process, in seconds."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def children_cpu_s():
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--endpoints", required=True)
    ap.add_argument("--seconds", type=int, default=20)
    ap.add_argument("--clients", type=int, default=16)
    ap.add_argument("--batch", type=int, default=10)
    ap.add_argument("--dir", default=tempfile.gettempdir())
    ap.add_argument("--token-file")
    a = ap.parse_args()
    eps = a.endpoints
    first = eps.split(",")[0]
    info = get(first, "/v1/cluster", a.token_file)
    leader = [m for m in info["members"] if m["id"] == info["leader_id"]][0]
    pid = get(leader["api_addr"], "/v1/internal/status", a.token_file)["pid"]
    print(f"load average before: {os.getloadavg()}")
    print(f"leader {leader['id']} pid {pid}, RSS before "
          f"{rss_kib(pid)['VmRSS'] // 1024} MiB")

    path = os.path.join(a.dir, f"backup-figures-{os.getpid()}.db")
    c0, s0, t0 = children_cpu_s(), cpu_s(pid), time.monotonic()
    p = ctl(["--json", "backup", path], eps, a.token_file)
    wall = time.monotonic() - t0
    c1, s1 = children_cpu_s(), cpu_s(pid)
    if p.returncode != 0:
        sys.exit(f"backup failed: {p.stderr}")
    alone = json.loads(p.stdout)
    for f in (path, path + ".sha256"):
        os.unlink(f)
    print(f"backup alone: {alone['events']} events, "
          f"{alone['bytes'] / 2**20:.0f} MiB in {wall:.2f} s; CPU "
          f"{c1 - c0:.2f} s in ledgerctl + ledgerd --verify-backup, "
          f"{s1 - s0:.2f} s in the leader (copy, checksum, send)")

    base = bench(eps, a.token_file, a)

    stop = threading.Event()
    backups = []
    peak = [0]

    def sampler():
        while not stop.is_set():
            try:
                peak[0] = max(peak[0], rss_kib(pid)["VmRSS"])
            except OSError:
                pass
            time.sleep(0.02)

    def backup_loop():
        n = 0
        while not stop.is_set():
            path = os.path.join(a.dir, f"backup-figures-{os.getpid()}.db")
            t0 = time.monotonic()
            p = ctl(["--json", "backup", path], eps, a.token_file)
            dt = time.monotonic() - t0
            if p.returncode != 0:
                print(f"backup failed: {p.stderr}", file=sys.stderr)
                break
            out = json.loads(p.stdout)
            backups.append((dt, out["bytes"], out["events"]))
            for f in (path, path + ".sha256"):
                os.unlink(f)
            n += 1
    ts = threading.Thread(target=sampler)
    tb = threading.Thread(target=backup_loop)
    ts.start()
    tb.start()
    during = bench(eps, a.token_file, a)
    stop.set()
    tb.join()
    ts.join()
    hwm = rss_kib(pid)["VmHWM"]

    print(f"load average after: {os.getloadavg()}")
    print(f"{'':28} {'p50 ms':>8} {'p99 ms':>8} {'events/s':>10}")
    for name, r in (("appends, no backup", base),
                    ("appends, backups running", during)):
        print(f"{name:28} {r['latency_ms']['p50']:8.1f} "
              f"{r['latency_ms']['p99']:8.1f} {r['events_per_s']:10.0f}")
    print(f"p99 ratio: {during['latency_ms']['p99'] / base['latency_ms']['p99']:.2f}")
    for dt, size, ev in backups:
        print(f"backup: {ev} events, {size / 2**20:.0f} MiB, {dt:.2f} s "
              "(download, checksum and chain verified)")
    print(f"leader RSS during backups: peak {peak[0] // 1024} MiB "
          f"(VmHWM since start {hwm // 1024} MiB)")


if __name__ == "__main__":
    main()
