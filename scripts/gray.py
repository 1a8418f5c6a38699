#!/usr/bin/python3
"""Failover as clients feel it (issue 11): gray failures of the leader.

  scripts/gray.py [--faults stop,cut,kill] [--repeat 3] [--election-ms 1000]
                  [--heartbeat-ms 100] [--duration 8] [--clients 4]
                  [--timeout 10] [--json FILE]

Starts a 3-node cluster (build/ledgerd, or $LEDGERD), runs four clients
writing through the two followers (one request at a time each, unique
event ids, a 10 s client timeout), injects one fault on the leader per
round and prints, per round: when a follower first named a new leader,
the first acknowledgement after the fault, the time by which every client
had an answer, the longest stretch without any acknowledgement, and what
the answers were. Then per fault the median and the worst of the rounds.

Faults: `stop` (SIGSTOP for --duration s, then SIGCONT), `cut` (the
leader cut off from its peers by nftables for --duration s; network
namespaces in 198.18.0.0/15, root only: without root it is left out, with
a message), `kill` (kill -9, restarted after --duration s). As root the
whole cluster runs in namespaces (chaos/cluster.py), else on 127.0.0.1.

The definitions of the figures are in tests/integration/failover_probe.py;
docs/operations.md ("Failover") has the figures of this machine.
Exit 0 after a complete run, 1 when a round failed, 2 on bad usage.
"""
import argparse
import json
import os
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "integration"))
import harness  # noqa: E402
import failover_probe as fp  # noqa: E402


def say(msg):
    sys.stderr.write(f"[gray {time.strftime('%H:%M:%S')}] {msg}\n")
    sys.stderr.flush()


def summary(figs):
    def col(key):
        xs = [f[key] for f in figs]
        if any(x is None for x in xs):
            return "never (in some round)"
        return (f"median {statistics.median(xs):.2f} s, "
                f"max {max(xs):.2f} s")
    answers = {}
    for f in figs:
        for k, v in f["answers"].items():
            answers[k] = answers.get(k, 0) + v
    return [f"  first ack:              {col('first_ack')}",
            f"  every client answered:  {col('all_answered')}",
            f"  longest without ack:    {col('longest_gap')}",
            f"  new leader known:       {col('new_leader')}",
            f"  answers:                {fp.fmt_answers(answers)}"]


def main(argv=None):
    p = argparse.ArgumentParser(
        prog="scripts/gray.py",
        description="Measure failover as clients feel it: SIGSTOP, cut-off "
        "and kill -9 of the leader of a 3-node cluster under four writers "
        "(see the file's comment).")
    p.add_argument("--faults", default="stop,cut,kill",
                   help="comma-separated from stop,cut,kill (default all)")
    p.add_argument("--repeat", type=int, default=1,
                   help="rounds per fault (default 1)")
    p.add_argument("--election-ms", type=int, default=1000)
    p.add_argument("--heartbeat-ms", type=int, default=100)
    p.add_argument("--duration", type=float, default=8.0,
                   help="seconds the fault lasts (default 8)")
    p.add_argument("--clients", type=int, default=4)
    p.add_argument("--timeout", type=float, default=10.0,
                   help="client timeout in seconds (default 10)")
    p.add_argument("--json", metavar="FILE",
                   help="also write every round's figures as JSON")
    p.add_argument("--keep", action="store_true",
                   help="keep the cluster directory (node logs) at the end")
    a = p.parse_args(argv)
    faults = [f.strip() for f in a.faults.split(",") if f.strip()]
    bad = [f for f in faults if f not in fp.FAULTS]
    if bad or not faults:
        p.error(f"unknown fault(s) {', '.join(bad) or '(none)'}: choose from "
                f"{','.join(fp.FAULTS)}")
    if a.repeat < 1 or a.clients < 1 or a.duration <= 0 or a.timeout <= 0:
        p.error("--repeat and --clients must be at least 1, --duration and "
                "--timeout positive")
    if not os.access(harness.LEDGERD, os.X_OK):
        p.error(f"{harness.LEDGERD} is not an executable: run `make build` "
                "or set LEDGERD")
    why = harness.netns_unavailable()
    if why and "cut" in faults:
        say(f"the cut fault is left out: it {why}")
        faults.remove("cut")
        if not faults:
            return 1
    net = harness.netns() if why is None else None
    c = harness.Cluster(3, heartbeat_ms=a.heartbeat_ms,
                        election_ms=a.election_ms, name="ledger-gray",
                        net=net)
    print(f"gray: 3 nodes ({'network namespaces' if net else '127.0.0.1'}), "
          f"--heartbeat-ms {a.heartbeat_ms} --election-ms {a.election_ms}, "
          f"{a.clients} clients through the followers, client timeout "
          f"{a.timeout:g} s, faults {','.join(faults)} for "
          f"{a.duration:g} s, {a.repeat} round(s) each; ledgerd "
          f"{harness.LEDGERD}")
    sys.stdout.flush()
    results = {f: [] for f in faults}
    rc = 0
    try:
        c.start()
        for r in range(a.repeat):
            for f in faults:
                try:
                    fig = fp.run_round(c, f, duration=a.duration,
                                       clients=a.clients, timeout=a.timeout,
                                       log=say)
                except (AssertionError, RuntimeError, OSError) as e:
                    print(f"{f} round {r + 1}: FAILED: {e}")
                    rc = 1
                    c.failed = True
                    continue
                fig["round"] = r + 1
                results[f].append(fig)
                print(f"round {r + 1} {fp.describe(fig)}")
                sys.stdout.flush()
    except KeyboardInterrupt:
        rc = 1
    finally:
        if a.keep:
            c.failed = True  # the harness keeps the directory of a failure
        c.close()
        if a.keep:
            print(f"cluster directory kept: {c.dir}")
    print()
    for f in faults:
        if results[f]:
            print(f"{f} ({len(results[f])} round(s)):")
            print("\n".join(summary(results[f])))
    if a.json:
        with open(a.json, "w") as out:
            json.dump({"election_ms": a.election_ms,
                       "heartbeat_ms": a.heartbeat_ms,
                       "duration": a.duration, "clients": a.clients,
                       "timeout": a.timeout, "rounds": results}, out,
                      indent=1)
    return rc


if __name__ == "__main__":
    sys.exit(main())
