#!/usr/bin/env python3
"""Compare the two tiny servers of this folder (README.md): for each, wrk
(keep-alive, 64 connections) for a few seconds, rounds alternating; prints
requests/s and the server's CPU per request (user + system from
/proc/PID/stat), the figure that moves least with other load."""
import os
import re
import statistics
import subprocess
import sys
import time

CLK = os.sysconf("SC_CLK_TCK")


def cpu(pid):
    with open(f"/proc/{pid}/stat") as f:
        x = f.read().rsplit(")", 1)[1].split()
    return (int(x[11]) + int(x[12])) / CLK


def run(binary, port, seconds, script):
    p = subprocess.Popen([binary, str(port)])
    try:
        time.sleep(0.3)
        c0 = cpu(p.pid)
        cmd = ["wrk", "-t1", "-c64", f"-d{seconds}s", f"http://127.0.0.1:{port}/x"]
        if script:
            cmd[1:1] = ["-s", script]
        out = subprocess.run(cmd, capture_output=True, text=True,
                             check=True).stdout
        c1 = cpu(p.pid)
        reqs = int(re.search(r"(\d+) requests in", out).group(1))
        return reqs / seconds, (c1 - c0) / reqs * 1e6
    finally:
        p.terminate()
        p.wait()


def main():
    bins = sys.argv[1:3] or ["/tmp/h2o_server", "/tmp/ours_server"]
    rounds = int(os.environ.get("ROUNDS", "3"))
    seconds = int(os.environ.get("SECONDS_PER_RUN", "5"))
    here = os.path.dirname(os.path.abspath(__file__))
    for mode, script in (("GET", None), ("POST 100 B", os.path.join(here, "post.lua"))):
        res = {b: [] for b in bins}
        for r in range(rounds):
            for i, b in enumerate(bins):
                res[b].append(run(b, 28180 + i, seconds, script))
        for b in bins:
            rps = statistics.median(x[0] for x in res[b])
            us = statistics.median(x[1] for x in res[b])
            print(f"{mode:10s} {os.path.basename(b):14s} {rps:10.0f} req/s "
                  f"{us:6.2f} us CPU per request (median of {rounds})")


if __name__ == "__main__":
    main()
