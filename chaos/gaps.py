"""Stretches without an acknowledgement (issue 11 point 5): how long the
clients of a chaos run went without any acknowledged append, per fault
window and overall.

Definitions (times in seconds since the load started, as in the history):
- an acknowledgement is the completion of an append op with outcome ok
  (its t_done: the answer of the attempt that got the 201);
- overall: the longest time between two consecutive acknowledgements;
- per fault window [start, end] (end: when the runner had healed the
  fault): the longest stretch that begins at the fault's start or at an
  acknowledgement inside the window and runs to the next acknowledgement
  (or to the end of the load when none came); stretches that begin after
  the window's end belong to nobody's window.

A single-node fault is one that takes out or cuts off one node: `kill`,
`pause`, `disk-full`, and `partition` variants `isolate`, `leader` and
`oneway`. The issue's bound (at most 2 s at the default election timeout)
is judged on those; `split` and `restart-all` take out a majority or
everyone, `membership` and `transfer` are planned operations: their
figures are shown, not judged.
"""
import bisect

LIMIT_S = 2.0
SINGLE_NODE = {"kill", "pause", "disk-full"}
SINGLE_NODE_PARTITIONS = {"isolate", "leader", "oneway"}


def ack_times(ops):
    """Sorted completion times of the acknowledged appends of paired ops
    (checker.pair_ops)."""
    return sorted(o["t_done"] for o in ops.values()
                  if o.get("f") == "append" and o.get("outcome") == "ok"
                  and o.get("t_done") is not None)


def overall(acks):
    """(length, start) of the longest time between two consecutive
    acknowledgements; (0.0, None) with fewer than two."""
    best = (0.0, None)
    for a, b in zip(acks, acks[1:]):
        if b - a > best[0]:
            best = (b - a, a)
    return best


def in_window(acks, start, end, load_end):
    """(length, start) of the longest stretch without an acknowledgement
    in the window [start, end] (see the module comment)."""
    i = bisect.bisect_right(acks, start)
    cur = start
    best = (0.0, start)
    while True:
        nxt = acks[i] if i < len(acks) else max(load_end, cur)
        if nxt - cur > best[0]:
            best = (nxt - cur, cur)
        if i >= len(acks) or nxt >= end:
            return best
        cur = nxt
        i += 1


def single_node(fault):
    """Whether a fault_log record is a single-node fault."""
    f = fault.get("fault")
    if f in SINGLE_NODE:
        return True
    return (f == "partition" and fault.get("params", {}).get("variant")
            in SINGLE_NODE_PARTITIONS)


def per_fault(ops, faults, load_end=None, limit=LIMIT_S):
    """One dict per fault window: fault, start, end, single (bool), gap,
    gap_at, over (single and gap > limit)."""
    acks = ack_times(ops)
    if load_end is None:
        load_end = max(acks + [f.get("end") or 0 for f in faults] + [0])
    out = []
    for f in faults:
        if f.get("end") is None:
            continue
        gap, at = in_window(acks, f["start"], f["end"], load_end)
        single = single_node(f)
        out.append({"fault": f["fault"], "start": f["start"],
                    "end": f["end"],
                    "variant": f.get("params", {}).get("variant"),
                    "single": single, "gap": round(gap, 3),
                    "gap_at": round(at, 3),
                    "over": single and gap > limit})
    return out


def verdict_line(windows, limit=LIMIT_S):
    """One line: whether every single-node fault window stayed at or under
    the limit, and which did not."""
    singles = [w for w in windows if w["single"]]
    over = [w for w in singles if w["over"]]
    if not singles:
        return f"no single-node fault window to judge against {limit:g} s"
    worst = max(w["gap"] for w in singles)
    if not over:
        return (f"every single-node fault window ({len(singles)}) had an "
                f"acknowledgement at least every {limit:g} s (worst "
                f"{worst:.2f} s)")
    return (f"{len(over)} of {len(singles)} single-node fault windows went "
            f"longer than {limit:g} s without an acknowledgement: " +
            ", ".join(f"{w['fault']}"
                      f"{'/' + w['variant'] if w['variant'] else ''} at "
                      f"t={w['start']:.1f}s: {w['gap']:.2f} s" for w in over))
