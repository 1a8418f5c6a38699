"""Unit tests of the history checker: crafted histories and final states.

A clean history passes; a lost acknowledgement, a duplicate, a seq gap, a
position gap, a stale strong read, an unsent event, two successes with one
expected_version, a broken chain, diverging nodes and a definitely failed
append that is present each fail it, naming the exact events.
Run: python3 -m unittest -v test_checker (in chaos/).
"""
import copy
import hashlib
import unittest

import checker


class Builder:
    """Builds a history and the matching final state of n identical nodes."""

    def __init__(self, nodes=3):
        self.nodes = nodes
        self.history = []
        self.streams = {}      # name -> [event dict]
        self.position = 0
        self.last_hash = checker.ZERO_HASH
        self.op = 0
        self.t = 0.0

    def tick(self, dt=0.01):
        self.t += dt
        return self.t

    def store(self, stream, ids):
        evs = self.streams.setdefault(stream, [])
        first = len(evs) + 1
        for eid in ids:
            self.position += 1
            h = hashlib.sha256(
                f"{self.last_hash}|{stream}|{eid}".encode()).hexdigest()
            evs.append({"seq": len(evs) + 1, "position": self.position,
                        "id": eid, "hash": h, "prev_hash": self.last_hash})
            self.last_hash = h
        return {"stream": stream, "first_seq": first, "last_seq": len(evs),
                "position": self.position, "hash": self.last_hash}

    def append(self, stream, ids, outcome="ok", applied=None, expect=None,
               client=0, node=1):
        """Record an append; applied defaults to outcome == ok."""
        self.op += 1
        op = self.op
        self.history.append({"type": "invoke", "op": op, "client": client,
                             "f": "append", "stream": stream, "ids": ids,
                             "expected_version": expect, "node": node,
                             "t": self.tick()})
        if applied is None:
            applied = outcome == "ok"
        res = self.store(stream, ids) if applied else None
        rec = {"type": outcome, "op": op, "client": client, "node": node,
               "t": self.tick()}
        if outcome == "ok":
            rec["result"] = res
        elif outcome == "fail":
            rec["error"] = "version_conflict"
        else:
            rec["error"] = "timeout"
        self.history.append(rec)
        return op

    def read(self, stream, last_seq=None, events=None, node=2, client=9):
        self.op += 1
        op = self.op
        self.history.append({"type": "invoke", "op": op, "client": client,
                             "f": "read", "stream": stream, "node": node,
                             "consistency": "strong", "t": self.tick()})
        evs = self.streams.get(stream, [])
        if last_seq is None:
            last_seq = len(evs)
        if events is None:
            events = [[e["seq"], e["id"]] for e in evs[:last_seq]]
        self.history.append({"type": "ok", "op": op, "client": client,
                             "node": node, "t": self.tick(),
                             "result": {"last_seq": last_seq,
                                        "events": events}})
        return op

    def final(self):
        node = {"verify": {"ok": True, "applied_position": self.position,
                           "hash": self.last_hash,
                           "first_bad_position": None},
                "streams": copy.deepcopy(self.streams)}
        return {"nodes": {str(i): copy.deepcopy(node)
                          for i in range(1, self.nodes + 1)}}


def clean():
    b = Builder()
    b.append("a", ["c0-1"])
    b.append("b", ["c1-1", "c1-2"], client=1)
    b.append("a", ["c0-2"], expect=1)
    b.append("a", ["c2-1"], outcome="fail", expect=1, client=2)
    b.append("b", ["c0-3"], outcome="info", applied=True)
    b.append("b", ["c0-4"], outcome="info", applied=False)
    b.read("a")
    b.read("b")
    b.append("a", ["c1-3"], client=1)
    return b


class CheckerTest(unittest.TestCase):

    def run_check(self, b, final=None):
        return checker.check(b.history, final or b.final())

    def assertFails(self, verdict, rule, *needles):
        self.assertFalse(verdict.ok, "checker passed a bad history")
        self.assertIn(rule, verdict.counts, verdict.lines())
        text = "\n".join(verdict.violations[rule])
        for n in needles:
            self.assertIn(n, text)

    def test_clean_history_passes(self):
        b = clean()
        v = self.run_check(b)
        self.assertTrue(v.ok, v.lines())
        self.assertEqual(v.stats["appends"], {"ok": 4, "fail": 1, "info": 2})
        self.assertEqual(v.stats["reads"]["ok"], 2)
        self.assertEqual(v.stats["final_position"], 6)

    def test_lost_ack_fails(self):
        b = clean()
        f = b.final()
        # node 3 lost c1-2 (and so holds a shorter stream): the ack is gone.
        evs = f["nodes"]["3"]["streams"]["b"]
        f["nodes"]["3"]["streams"]["b"] = [e for e in evs if e["id"] != "c1-2"]
        v = self.run_check(b, f)
        self.assertFails(v, "acked", "event c1-2 is missing on node 3")

    def test_lost_ack_everywhere_fails(self):
        b = clean()
        op = b.append("a", ["c5-1"], client=5, applied=False)
        # The ack claims seq 4, but nothing was stored.
        b.history[-1]["result"] = {"stream": "a", "first_seq": 4,
                                   "last_seq": 4, "position": 8,
                                   "hash": "ab" * 32}
        v = self.run_check(b)
        self.assertFails(v, "acked", f"op {op} ", "event c5-1 is missing")

    def test_duplicate_fails(self):
        b = clean()
        b.store("a", ["c0-1"])  # the retried c0-1 stored a second time
        v = self.run_check(b)
        self.assertFails(v, "seqs", "event c0-1 stored 2 times")
        self.assertFails(v, "acked", "event c0-1 is present 2 times")

    def test_seq_gap_fails(self):
        b = clean()
        f = b.final()
        for n in f["nodes"].values():
            n["streams"]["a"][1]["seq"] = 5  # seq 2 missing
        v = self.run_check(b, f)
        self.assertFails(v, "seqs", "stream a: seq gap: expected seq 2, "
                         "found seq 5 (event c0-2")

    def test_position_gap_fails(self):
        b = clean()
        f = b.final()
        for n in f["nodes"].values():
            n["streams"]["b"] = [e for e in n["streams"]["b"]
                                 if e["id"] != "c0-3"]
        v = self.run_check(b, f)
        self.assertFails(v, "chain", "positions missing: 5")

    def test_stale_strong_read_fails(self):
        b = clean()
        op = b.read("a", last_seq=1, events=[[1, "c0-1"]])
        v = self.run_check(b)
        self.assertFails(v, "strong-read", f"strong read op {op} ",
                         "saw last_seq 1", "(event c1-3)")

    def test_read_of_concurrent_append_is_fine(self):
        b = clean()
        # A read that began before the ack (but ended after) may miss it.
        b.op += 1
        rop = b.op
        b.history.append({"type": "invoke", "op": rop, "client": 7,
                          "f": "read", "stream": "a", "node": 1,
                          "consistency": "strong", "t": b.tick()})
        b.append("a", ["c3-1"], client=3)
        b.history.append({"type": "ok", "op": rop, "client": 7, "node": 1,
                          "t": b.tick(), "result": {"last_seq": 3,
                                                    "events": []}})
        v = self.run_check(b)
        self.assertTrue(v.ok, v.lines())

    def test_strong_read_of_wrong_event_fails(self):
        b = clean()
        b.read("a", events=[[1, "c0-1"], [2, "c9-9"]])
        v = self.run_check(b)
        self.assertFails(v, "strong-read", "seq 2 = c9-9")

    def test_unsent_event_fails(self):
        b = clean()
        b.store("b", ["ghost-1"])
        v = self.run_check(b)
        self.assertFails(v, "unsent", "holds event ghost-1, which no append "
                         "sent")

    def test_double_expected_version_fails(self):
        b = clean()
        b.append("c", ["c0-9"], expect=0)
        # A second success with expected_version 0 (a broken check).
        b.append("c", ["c1-9"], expect=0, client=1)
        v = self.run_check(b)
        self.assertFails(v, "version", "2 appends succeeded with "
                         "expected_version 0", "c0-9", "c1-9")

    def test_failed_append_present_fails(self):
        b = clean()
        b.append("a", ["c4-1"], outcome="fail", applied=True, client=4)
        v = self.run_check(b)
        self.assertFails(v, "failed", "node 1 holds c4-1")

    def test_partial_batch_fails(self):
        b = clean()
        b.append("d", ["c6-1", "c6-2"], outcome="info", applied=False)
        b.store("d", ["c6-1"])
        v = self.run_check(b)
        self.assertFails(v, "atomic", "holds only c6-1 of the batch")

    def test_diverging_node_fails(self):
        b = clean()
        f = b.final()
        f["nodes"]["2"]["streams"]["b"][0]["hash"] = "ee" * 32
        v = self.run_check(b, f)
        self.assertFails(v, "agreement", "position 2: node 1 has b seq 1 "
                         "event c1-1")

    def test_broken_chain_and_verify_fail(self):
        b = clean()
        f = b.final()
        f["nodes"]["1"]["streams"]["a"][1]["prev_hash"] = "11" * 32
        f["nodes"]["1"]["verify"] = {"ok": False, "applied_position": 1,
                                     "first_bad_position": 2}
        v = self.run_check(b, f)
        self.assertFails(v, "chain", "node 1: position 4")
        self.assertFails(v, "verify", "node 1")

    def test_lagging_node_fails(self):
        b = clean()
        f = b.final()
        f["nodes"]["3"]["streams"]["a"].pop()
        f["nodes"]["3"]["verify"]["applied_position"] -= 1
        v = self.run_check(b, f)
        self.assertFails(v, "agreement", "node 3: 5")

    def test_unanswered_op_is_indeterminate(self):
        b = clean()
        b.op += 1
        b.history.append({"type": "invoke", "op": b.op, "client": 1,
                          "f": "append", "stream": "a", "ids": ["c1-77"],
                          "node": 1, "t": b.tick()})
        b.store("a", ["c1-77"])
        v = self.run_check(b)
        self.assertTrue(v.ok, v.lines())
        self.assertEqual(v.stats["appends"]["info"], 3)


class ScheduleTest(unittest.TestCase):
    """Same seed, same schedule; every enabled fault is scheduled."""

    def test_same_seed_same_schedule(self):
        import runner
        a = runner.make_schedule(42, 5, 300, runner.ALL_FAULTS)
        b = runner.make_schedule(42, 5, 300, runner.ALL_FAULTS)
        c = runner.make_schedule(43, 5, 300, runner.ALL_FAULTS)
        self.assertEqual(a, b)
        self.assertNotEqual(a, c)
        self.assertEqual({e["fault"] for e in a}, set(runner.ALL_FAULTS))
        for e in a:
            self.assertLess(e["at"], 300)

    def test_roles_flag(self):
        """--roles: V,S,D checked (odd voters, V + S within --nodes,
        dead-after 5..86400); alone it means 3,1,6."""
        import contextlib
        import io
        import runner
        a = runner.parse(["--roles", "--check-only", "x"])
        self.assertEqual(a.roles, (3, 1, 6))
        a = runner.parse(["--roles", "3,0,10", "--nodes", "3",
                          "--check-only", "x"])
        self.assertEqual(a.roles, (3, 0, 10))
        self.assertIsNone(runner.parse(["--check-only", "x"]).roles)
        for bad in ("2,1,6", "3,3,6", "3,1,4", "x", "3,1"):
            with self.subTest(bad=bad), \
                    contextlib.redirect_stderr(io.StringIO()), \
                    self.assertRaises(SystemExit) as cm:
                runner.parse(["--roles", bad, "--check-only", "x"])
            self.assertEqual(cm.exception.code, 2)

    def test_short_run_covers_every_fault(self):
        import runner
        faults = runner.ALL_FAULTS
        s = runner.make_schedule(20261128, 3, 80, faults, short=True)
        self.assertEqual({e["fault"] for e in s}, set(faults))


class GapsTest(unittest.TestCase):
    """Longest stretches without an acknowledgement (gaps.py)."""

    @staticmethod
    def ops(acks, other=()):
        out = {}
        for i, t in enumerate(acks):
            out[i] = {"f": "append", "outcome": "ok", "t_done": t}
        for j, (f, outcome, t) in enumerate(other):
            out[1000 + j] = {"f": f, "outcome": outcome, "t_done": t}
        return out

    def test_overall_and_windows(self):
        import gaps
        # Acks every 0.1 s, none from 10.0 to 13.5 (a 3.5 s stretch), a
        # failed append and a read in the hole do not count.
        acks = [round(0.1 * i, 1) for i in range(1, 101)] + \
            [13.5, 13.6, 20.0]
        ops = self.ops(acks, [("append", "fail", 11.0),
                              ("read", "ok", 12.0)])
        self.assertEqual(gaps.ack_times(ops), acks)
        ov, at = gaps.overall(acks)
        self.assertAlmostEqual(ov, 6.4)
        self.assertEqual(at, 13.6)
        faults = [
            {"fault": "pause", "start": 10.5, "end": 13.55, "params": {}},
            {"fault": "kill", "start": 2.0, "end": 5.0, "params": {}},
            {"fault": "partition", "start": 9.95, "end": 10.2,
             "params": {"variant": "split"}},
            {"fault": "partition", "start": 13.55, "end": 13.58,
             "params": {"variant": "oneway"}},
            {"fault": "transfer", "start": 30.0, "end": 31.0,
             "params": {}}]
        ws = gaps.per_fault(ops, faults, load_end=32.0)
        # From the fault's start to the next ack.
        self.assertAlmostEqual(ws[0]["gap"], 3.0)
        self.assertTrue(ws[0]["single"] and ws[0]["over"])
        self.assertAlmostEqual(ws[1]["gap"], 0.1)
        self.assertFalse(ws[1]["over"])
        # The stretch that begins at the last ack inside the window counts
        # whole (10.0 -> 13.5); a split is not judged.
        self.assertAlmostEqual(ws[2]["gap"], 3.5)
        self.assertFalse(ws[2]["single"] or ws[2]["over"])
        # A stretch beginning before a short window ends runs to the next
        # ack even past the window (13.55 -> 13.6 only).
        self.assertAlmostEqual(ws[3]["gap"], 0.05)
        self.assertTrue(ws[3]["single"])
        # No ack after the start: the stretch runs to the end of the load.
        self.assertAlmostEqual(ws[4]["gap"], 2.0)
        line = gaps.verdict_line(ws)
        self.assertIn("1 of 3 single-node fault windows", line)
        self.assertIn("pause at t=10.5s: 3.00 s", line)
        ok = gaps.verdict_line([w for w in ws if not w["over"]])
        self.assertTrue(ok.startswith("every single-node fault window (2)"),
                        ok)

    def test_which_faults_are_single_node(self):
        import gaps
        for f, v, want in (("kill", None, True), ("pause", None, True),
                           ("disk-full", "leader", True),
                           ("partition", "isolate", True),
                           ("partition", "leader", True),
                           ("partition", "oneway", True),
                           ("partition", "split", False),
                           ("restart-all", "kill", False),
                           ("membership", "rejoin", False),
                           ("transfer", None, False)):
            rec = {"fault": f, "params": {"variant": v} if v else {}}
            self.assertEqual(gaps.single_node(rec), want, (f, v))


if __name__ == "__main__":
    unittest.main()
