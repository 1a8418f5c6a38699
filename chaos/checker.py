"""History checker: proves that nothing acknowledged was lost.

Input:
  - a history (JSON lines, see chaos/docs or workload.py): one "invoke"
    record per operation and one completion record ("ok", "fail" or
    "info" = indeterminate) with the same "op" number;
  - the final state of every node after the cluster healed: its /v1/verify
    answer and every event of every stream, read with consistency=any.

check() returns a Verdict: ok, the list of violations (each names the exact
events, ops and nodes), and counts. Standard library only.

The rules (docs/chaos.md, "The checker's rules"):
  verify      every node's /v1/verify is ok
  chain       on every node, positions are 1..P without gaps, P equals the
              node's applied_position, and every prev_hash is the hash at the
              previous position (zeros at position 1)
  agreement   every node has the same P and the same hash at every position,
              and the same events in every stream
  seqs        per stream, seqs are 1..N without gaps, ids are unique
  unsent      every stored event carries an id that some append sent to that
              stream
  acked       every event of every acknowledged append is present exactly
              once on every node, at the seqs, position and hash the
              acknowledgement named
  failed      no event of a definitely failed append is present
  atomic      a batch is present whole or not at all (indeterminate ones too)
  version     no two successful appends with the same expected_version on a
              stream, and each got first_seq = expected_version + 1
  strong-read every strong read saw every append acknowledged before it
              began, and what it returned matches the final state
"""
import bisect
import json

ZERO_HASH = "0" * 64
MAX_LISTED = 40  # violations listed per rule; the rest are counted


class Verdict:
    def __init__(self):
        self.violations = {}  # rule -> [message]
        self.counts = {}      # rule -> total count
        self.stats = {}

    def fail(self, rule, msg):
        self.counts[rule] = self.counts.get(rule, 0) + 1
        lst = self.violations.setdefault(rule, [])
        if len(lst) < MAX_LISTED:
            lst.append(msg)

    @property
    def ok(self):
        return not self.counts

    def lines(self):
        out = []
        for rule in sorted(self.violations):
            n = self.counts[rule]
            out.append(f"[{rule}] {n} violation{'s' if n != 1 else ''}")
            for m in self.violations[rule]:
                out.append(f"  - {m}")
            if n > len(self.violations[rule]):
                out.append(f"  ... and {n - len(self.violations[rule])} more")
        return out

    def to_json(self):
        return {"ok": self.ok, "counts": self.counts,
                "violations": self.violations, "stats": self.stats}


def load_history(path):
    ops = []
    with open(path) as f:
        for line in f:
            line = line.strip()
            if line:
                ops.append(json.loads(line))
    return ops


def pair_ops(history):
    """Join invoke and completion records: {op: dict} with the invoke's
    fields plus "outcome" (ok|fail|info), "t_invoke", "t_done" and the
    completion's "result"/"error"/"node_done"/"duplicate". An op without
    a completion is indeterminate (the client died or the run stopped)."""
    ops = {}
    for rec in history:
        typ = rec.get("type")
        if typ == "invoke":
            o = dict(rec)
            o["t_invoke"] = rec.get("t", 0.0)
            o["outcome"] = "info"
            o["t_done"] = None
            ops[rec["op"]] = o
        elif typ in ("ok", "fail", "info"):
            o = ops.get(rec["op"])
            if o is None:
                continue
            o["outcome"] = typ
            o["t_done"] = rec.get("t")
            for k in ("result", "error", "duplicate", "attempts"):
                if k in rec:
                    o[k] = rec[k]
            o["node_done"] = rec.get("node")
    return ops


def _ev(e):
    """An event from the final state: dict or [seq, position, id, hash,
    prev_hash] list."""
    if isinstance(e, dict):
        return e
    seq, pos, eid, h, ph = e[:5]
    return {"seq": seq, "position": pos, "id": eid, "hash": h,
            "prev_hash": ph}


def _describe_op(o):
    ids = o.get("ids") or []
    idtxt = ",".join(ids[:4]) + (",..." if len(ids) > 4 else "")
    ev = o.get("expected_version")
    extra = f" expected_version={ev}" if ev is not None else ""
    return (f"op {o['op']} (client {o.get('client')}, {o.get('f')} "
            f"stream {o.get('stream')} ids [{idtxt}]{extra}, asked node "
            f"{o.get('node')} at t={o['t_invoke']:.3f}s)")


def check(history, final):
    """history: list of records; final: {"nodes": {nid: {"verify": {...},
    "streams": {name: [events]}}}}."""
    v = Verdict()
    ops = pair_ops(history)
    nodes = {str(k): n for k, n in final.get("nodes", {}).items()}
    if not nodes:
        v.fail("agreement", "no node state was collected")
        return v

    # ---- per node: verify, chain, seqs ----------------------------------
    # index[nid][stream] = {id: [event, ...]}; bypos[nid][pos] = (stream, ev)
    index, bypos, streams_of = {}, {}, {}
    for nid, st in sorted(nodes.items()):
        ver = st.get("verify") or {}
        if not ver.get("ok"):
            v.fail("verify", f"node {nid}: /v1/verify not ok: "
                   f"{json.dumps(ver, sort_keys=True)}")
        idx, bp = {}, {}
        streams = {s: [_ev(e) for e in evs]
                   for s, evs in (st.get("streams") or {}).items()}
        streams_of[nid] = streams
        for s, evs in sorted(streams.items()):
            ids = idx.setdefault(s, {})
            for i, e in enumerate(evs):
                if e["seq"] != i + 1:
                    v.fail("seqs", f"node {nid}: stream {s}: seq gap: "
                           f"expected seq {i + 1}, found seq {e['seq']} "
                           f"(event {e['id']}, position {e['position']})")
                    break
            for e in evs:
                if e["id"] is not None:
                    ids.setdefault(e["id"], []).append(e)
                if e["position"] in bp:
                    o = bp[e["position"]]
                    v.fail("chain", f"node {nid}: position {e['position']} "
                           f"held twice: {o[0]} seq {o[1]['seq']} and {s} "
                           f"seq {e['seq']}")
                bp[e["position"]] = (s, e)
            for eid, lst in ids.items():
                if len(lst) > 1:
                    v.fail("seqs", f"node {nid}: stream {s}: event {eid} "
                           f"stored {len(lst)} times (seqs "
                           f"{[x['seq'] for x in lst]})")
        index[nid], bypos[nid] = idx, bp
        top = max(bp) if bp else 0
        missing = [p for p in range(1, top + 1) if p not in bp]
        if missing:
            v.fail("chain", f"node {nid}: positions missing: "
                   f"{_ranges(missing)} (of 1..{top})")
        ap = ver.get("applied_position")
        if ap is not None and ap != top:
            v.fail("chain", f"node {nid}: /v1/verify applied_position {ap} "
                   f"but the streams hold positions up to {top}")
        for p in range(1, top + 1):
            if p not in bp:
                continue
            want = ZERO_HASH if p == 1 else (
                bp[p - 1][1]["hash"] if p - 1 in bp else None)
            got = bp[p][1].get("prev_hash")
            if want is not None and got is not None and got != want:
                v.fail("chain", f"node {nid}: position {p} ({bp[p][0]} seq "
                       f"{bp[p][1]['seq']}, event {bp[p][1]['id']}): "
                       f"prev_hash {got[:16]}... is not the hash "
                       f"{want[:16]}... at position {p - 1}")

    # ---- agreement across nodes ----------------------------------------
    nids = sorted(nodes)
    ref = nids[0]
    tops = {n: (max(bypos[n]) if bypos[n] else 0) for n in nids}
    if len(set(tops.values())) > 1:
        v.fail("agreement", "nodes end at different positions: " +
               ", ".join(f"node {n}: {tops[n]}" for n in nids))
    for n in nids[1:]:
        common = min(tops[n], tops[ref])
        for p in range(1, common + 1):
            a, b = bypos[ref].get(p), bypos[n].get(p)
            if a is None or b is None:
                continue
            if a[1]["hash"] != b[1]["hash"]:
                v.fail("agreement", f"position {p}: node {ref} has "
                       f"{a[0]} seq {a[1]['seq']} event {a[1]['id']} hash "
                       f"{a[1]['hash'][:16]}..., node {n} has {b[0]} seq "
                       f"{b[1]['seq']} event {b[1]['id']} hash "
                       f"{b[1]['hash'][:16]}... (first disagreement)")
                break
        sa, sb = streams_of[ref], streams_of[n]
        for s in sorted(set(sa) | set(sb)):
            la = [(e["seq"], e["id"]) for e in sa.get(s, [])]
            lb = [(e["seq"], e["id"]) for e in sb.get(s, [])]
            if la != lb:
                diff = next((i for i in range(min(len(la), len(lb)))
                             if la[i] != lb[i]), min(len(la), len(lb)))
                v.fail("agreement", f"stream {s}: node {ref} has "
                       f"{len(la)} events, node {n} has {len(lb)}; first "
                       f"difference at index {diff}: node {ref} "
                       f"{la[diff] if diff < len(la) else None}, node {n} "
                       f"{lb[diff] if diff < len(lb) else None}")

    # ---- events against the history ------------------------------------
    sent = {}  # (stream, id) -> op
    for o in ops.values():
        if o.get("f") == "append":
            for eid in o.get("ids") or []:
                sent[(o["stream"], eid)] = o
    for n in nids:
        for s, ids in sorted(index[n].items()):
            for eid, lst in sorted(ids.items()):
                if (s, eid) not in sent:
                    v.fail("unsent", f"node {n}: stream {s} seq "
                           f"{lst[0]['seq']} holds event {eid}, which no "
                           f"append sent")
        for s, evs in sorted(streams_of[n].items()):
            for e in evs:
                if e["id"] is None:
                    v.fail("unsent", f"node {n}: stream {s} seq {e['seq']} "
                           f"(position {e['position']}) has no id: no "
                           f"append of the workload sent it")

    counts = {"ok": 0, "fail": 0, "info": 0}
    reads = {"ok": 0, "fail": 0, "info": 0}
    appends = [o for o in ops.values() if o.get("f") == "append"]
    for o in sorted(appends, key=lambda o: o["op"]):
        counts[o["outcome"]] += 1
        s, ids = o["stream"], o.get("ids") or []
        for n in nids:
            found = [index[n].get(s, {}).get(eid, []) for eid in ids]
            present = [eid for eid, f in zip(ids, found) if f]
            if o["outcome"] == "ok":
                for eid, f in zip(ids, found):
                    if len(f) == 0:
                        v.fail("acked", f"{_describe_op(o)} was acknowledged "
                               f"at t={o['t_done']:.3f}s but event {eid} is "
                               f"missing on node {n}")
                    elif len(f) > 1:
                        v.fail("acked", f"{_describe_op(o)}: event {eid} is "
                               f"present {len(f)} times on node {n}")
                res = o.get("result") or {}
                if all(len(f) == 1 for f in found) and res:
                    seqs = [f[0]["seq"] for f in found]
                    want = list(range(res.get("first_seq", 0),
                                      res.get("last_seq", -1) + 1))
                    if seqs != want:
                        v.fail("acked", f"{_describe_op(o)}: acknowledged "
                               f"seqs {res.get('first_seq')}.."
                               f"{res.get('last_seq')} but node {n} holds "
                               f"them at seqs {seqs}")
                    last = found[-1][0]
                    if ("position" in res and
                            (last["position"] != res["position"] or
                             last["hash"] != res.get("hash"))):
                        v.fail("acked", f"{_describe_op(o)}: acknowledged "
                               f"position {res['position']} hash "
                               f"{str(res.get('hash'))[:16]}... but node {n} "
                               f"holds event {ids[-1]} at position "
                               f"{last['position']} hash "
                               f"{last['hash'][:16]}...")
            elif o["outcome"] == "fail":
                if present:
                    v.fail("failed", f"{_describe_op(o)} failed definitely "
                           f"({o.get('error')}) but node {n} holds "
                           f"{', '.join(present)}")
            if present and len(present) != len(ids):
                v.fail("atomic", f"{_describe_op(o)} ({o['outcome']}): node "
                       f"{n} holds only {', '.join(present)} of the batch")
            if o["outcome"] == "info" and any(len(f) > 1 for f in found):
                v.fail("seqs", f"{_describe_op(o)} (indeterminate) is "
                       f"present more than once on node {n}")

    # ---- expected_version ----------------------------------------------
    by_ver = {}
    for o in appends:
        if o["outcome"] != "ok" or o.get("expected_version") is None:
            continue
        ev = o["expected_version"]
        by_ver.setdefault((o["stream"], ev), []).append(o)
        first = (o.get("result") or {}).get("first_seq")
        if first is not None and first != ev + 1:
            v.fail("version", f"{_describe_op(o)} succeeded with "
                   f"first_seq {first}, not expected_version+1 = {ev + 1}")
    for (s, ev), lst in sorted(by_ver.items()):
        if len(lst) > 1:
            v.fail("version", f"stream {s}: {len(lst)} appends succeeded "
                   f"with expected_version {ev}: " +
                   "; ".join(_describe_op(o) for o in lst))

    # ---- strong reads --------------------------------------------------
    acks = {}  # stream -> [(t_done, last_seq, op)] sorted by t_done
    for o in appends:
        if o["outcome"] == "ok" and o.get("t_done") is not None:
            last = (o.get("result") or {}).get("last_seq")
            if last is not None:
                acks.setdefault(o["stream"], []).append((o["t_done"], last, o))
    # Per stream: ack times in order and the running maximum of last_seq
    # (with its op), so each read is one bisection.
    ack_t, ack_best = {}, {}
    for st_name, lst in acks.items():
        lst.sort(key=lambda x: x[0])
        ack_t[st_name] = [x[0] for x in lst]
        best, run = None, []
        for x in lst:
            if best is None or x[1] > best[1]:
                best = x
            run.append(best)
        ack_best[st_name] = run
    final_ids = {}
    for s, evs in streams_of[ref].items():
        final_ids[s] = {e["seq"]: e["id"] for e in evs}
    for o in sorted((o for o in ops.values() if o.get("f") == "read"),
                    key=lambda o: o["op"]):
        reads[o["outcome"]] += 1
        if o["outcome"] != "ok" or o.get("consistency", "strong") != "strong":
            continue
        res = o.get("result") or {}
        got = res.get("last_seq")
        if got is None:
            continue
        s = o["stream"]
        k = bisect.bisect_left(ack_t.get(s, []), o["t_invoke"])
        best = ack_best[s][k - 1] if k > 0 else None
        if best is not None and got < best[1]:
            a = best[2]
            ids = a.get("ids") or []
            v.fail("strong-read", f"strong read op {o['op']} (client "
                   f"{o.get('client')}, node {o.get('node_done')}, stream "
                   f"{s}, began t={o['t_invoke']:.3f}s) saw last_seq {got}, "
                   f"but {_describe_op(a)} was acknowledged at "
                   f"t={best[0]:.3f}s with seq {best[1]} (event "
                   f"{ids[-1] if ids else '?'})")
        for seq, eid in res.get("events") or []:
            fin = final_ids.get(s, {}).get(seq)
            if fin != eid:
                v.fail("strong-read", f"strong read op {o['op']} (node "
                       f"{o.get('node_done')}) returned {s} seq {seq} = "
                       f"{eid}, but the final state has {fin} there")

    total_events = sum(len(evs) for evs in streams_of[ref].values())
    v.stats = {"appends": counts, "reads": reads, "nodes": len(nids),
               "final_position": tops[ref], "events": total_events,
               "streams": len(streams_of[ref])}
    return v


def _ranges(nums):
    out, start, prev = [], None, None
    for n in nums:
        if start is None:
            start = prev = n
        elif n == prev + 1:
            prev = n
        else:
            out.append(f"{start}" if start == prev else f"{start}-{prev}")
            start = prev = n
    if start is not None:
        out.append(f"{start}" if start == prev else f"{start}-{prev}")
    txt = ", ".join(out[:10])
    return txt + (", ..." if len(out) > 10 else "")


def main(argv=None):
    import argparse
    import sys
    p = argparse.ArgumentParser(
        prog="chaos/checker.py",
        description="Check a chaos history against the nodes' final state.")
    p.add_argument("history", help="history.jsonl")
    p.add_argument("final", help="final.json (every node's events and verify)")
    a = p.parse_args(argv)
    with open(a.final) as f:
        final = json.load(f)
    v = check(load_history(a.history), final)
    for line in v.lines():
        print(line)
    print(f"checker: {'PASS' if v.ok else 'FAIL'} {json.dumps(v.stats)}")
    sys.exit(0 if v.ok else 1)


if __name__ == "__main__":
    main()
