"""Operating a cluster while it serves (issue 4): membership changes under
write load keep every acknowledged event, every refusal changes nothing,
SIGTERM of the leader fails no append, `cluster up --nodes 5`, per-member
lag in /metrics."""
import json
import os
import signal
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (Cluster, ClusterTestCase, HarnessTestCase, free_ports,  # noqa: E402
                     ledgerctl, unique, wait_until)
from test_ctl import CtlCluster  # noqa: E402
from test_failover import Writer  # noqa: E402


class StrictWriter(threading.Thread):
    """Appends through the given nodes, one event per request, WITHOUT
    retrying: every answer but 201 is a failed append. With ids=False the
    events carry no id (not idempotent)."""

    def __init__(self, cluster, stream, name, nodes, ids=True):
        super().__init__(daemon=True)
        self.c, self.stream, self.name = cluster, stream, name
        self.nodes = list(nodes)
        self.ids = ids
        self.stop_flag = threading.Event()
        self.acked = []
        self.failed = []

    def run(self):
        k = 0
        while not self.stop_flag.is_set():
            k += 1
            nid = self.nodes[k % len(self.nodes)]
            ev = {"type": "s", "data": {"w": self.name, "k": k}}
            if self.ids:
                ev["id"] = f"{self.name}-{k}"
            try:
                st, _, b = self.c.append(nid, self.stream, [ev], timeout=30)
            except OSError as e:
                st, b = 0, str(e)
            if st == 201:
                self.acked.append((k, b))
            else:
                self.failed.append((nid, k, st, b))


def stream_events(c, nid, stream):
    return c.read_all(nid, stream, consistency="any")


class MembershipUnderLoadTest(HarnessTestCase):
    """Join a 4th node, remove another, transfer leadership, remove the
    leader: writers keep going, and every acknowledged event ends up on
    every member."""

    def test_changes_under_load_keep_every_acknowledged_event(self):
        c = self.track(Cluster(3, name="ops-load").start())
        streams = [unique("ops-a"), unique("ops-b")]
        writers = [Writer(c, streams[i % 2], f"ow{i}", i) for i in range(3)]
        for w in writers:
            w.start()

        def acks():
            return sum(w.acks() for w in writers)

        def ctl(*args):
            eps = ",".join(c.addr(n) for n in c.live_ids())
            return ledgerctl("--endpoints", eps, *args, timeout=180)

        def members(nid=None):
            info = c.cluster_info(nid or c.leader())
            return {m["id"]: m for m in info["members"]}

        try:
            wait_until(lambda: acks() >= 30, timeout=60, msg="30 acks")
            # 1. A 4th node joins through a follower, as a voter.
            c.new_node(4, join=c.addr(c.followers()[0]))
            c.start_node(4)
            c.wait_healthy([4], timeout=120)
            self.assertEqual(members()[4]["role"], "voter")
            base = acks()
            wait_until(lambda: acks() >= base + 20, timeout=60,
                       msg="acks after the join")
            # 2. Remove a follower (not the new node) with ledgerctl.
            leader = c.leader()
            gone = [n for n in c.followers(leader) if n != 4][0]
            r = ctl("member", "remove", str(gone))
            self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
            self.assertNotIn(gone, members())
            c.stop(gone)
            # 3. Leadership to the new node.
            r = ctl("leader", "transfer", "4")
            self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
            self.assertEqual(c.leader(), 4)
            base = acks()
            wait_until(lambda: acks() >= base + 20, timeout=60,
                       msg="acks under the new leader")
            # 4. Remove the leader itself, asked through a follower: it
            # hands leadership over first.
            via = c.followers(4)[0]
            st, _, b = c.http("DELETE", via, "/v1/cluster/members/4",
                              timeout=120)
            self.assertEqual(st, 200, b)
            new = c.leader(exclude=(4,))
            self.assertNotEqual(new, 4)
            self.assertNotIn(4, members(new))
            self.assertEqual(len(members(new)), 2)
            c.stop(4)
            base = acks()
            wait_until(lambda: acks() >= base + 20, timeout=60,
                       msg="acks after removing the leader")
        finally:
            for w in writers:
                w.stop_flag.set()
            for w in writers:
                w.join(60)
        for w in writers:
            self.assertEqual(w.errors, [], w.name)
        final = sorted(members(c.leader()))
        self.assertEqual(final, sorted(c.live_ids()))
        for nid in final:
            c.wait_caught_up(nid)
            for s in streams:
                have = {e["id"]: e for e in stream_events(c, nid, s)}
                for w in writers:
                    if w.stream != s:
                        continue
                    for eid, res in w.acked.items():
                        self.assertIn(eid, have, f"node {nid} lacks {eid}")
                        self.assertEqual(have[eid]["seq"], res["first_seq"])
                seqs = sorted(e["seq"] for e in have.values())
                self.assertEqual(seqs, list(range(1, len(seqs) + 1)))
        v = c.wait_verify_agree(ids=final)
        self.assertTrue(v["ok"])


class RefusalTest(ClusterTestCase):
    """Each refusal is a clear error and changes nothing."""

    def members(self):
        return {m["id"]: m for m in
                self.c.cluster_info(self.c.leader())["members"]}

    def assert_unchanged(self):
        m = self.members()
        self.assertEqual(sorted(m), [1, 2, 3])
        self.assertTrue(all(x["role"] == "voter" for x in m.values()), m)

    def test_duplicates_unknown_ids_and_bad_addresses(self):
        c = self.c
        n1, n2 = c.nodes[1], c.nodes[2]
        free = [f"127.0.0.1:{p}" for p in free_ports(2)]
        cases = [
            ({"id": 1, "raft_addr": n1.raft_addr, "api_addr": n1.api_addr},
             409, "member_exists"),
            ({"id": 1, "raft_addr": free[0], "api_addr": free[1]},
             409, "id_in_use"),
            ({"id": 9, "raft_addr": n2.raft_addr, "api_addr": free[1]},
             409, "address_in_use"),
            ({"id": 9, "raft_addr": free[0], "api_addr": n2.api_addr},
             409, "address_in_use"),
            ({"id": 9, "raft_addr": free[0], "api_addr": free[0]},
             400, "bad_body"),
            ({"id": 9, "raft_addr": "127.0.0.1", "api_addr": free[1]},
             400, "bad_body"),
            ({"id": 9, "raft_addr": "127.0.0.1:99999", "api_addr": free[1]},
             400, "bad_body"),
            ({"id": 9, "raft_addr": free[0], "api_addr": free[1],
              "timeout_ms": -5}, 400, "bad_body"),
        ]
        for nid in (c.leader(), c.followers()[0]):
            for body, status, code in cases:
                st, _, b = c.http("POST", nid, "/v1/cluster/members",
                                  body=body)
                self.assertEqual((st, b["error"]["code"]), (status, code),
                                 f"{body}: {b}")
                self.assertTrue(b["error"]["message"])
            for method, path, body in (
                    ("DELETE", "/v1/cluster/members/77", None),
                    ("POST", "/v1/cluster/members/77/role",
                     {"role": "standby"})):
                st, _, b = c.http(method, nid, path, body=body)
                self.assertEqual(st, 404, b)
                self.assertEqual(b["error"]["code"], "member_not_found")
        self.assert_unchanged()
        # ledgerctl: exit 1, one line on stderr, nothing changed.
        eps = ",".join(c.addr(n) for n in c.ids())
        r = ledgerctl("--endpoints", eps, "member", "add", "9", n2.raft_addr,
                      free[1])
        self.assertEqual(r.returncode, 1, r.stdout)
        self.assertEqual(len(r.stderr.strip().splitlines()), 1, r.stderr)
        self.assertIn(n2.raft_addr, r.stderr)
        r = ledgerctl("--endpoints", eps, "member", "remove", "77")
        self.assertEqual(r.returncode, 1, r.stdout)
        self.assertIn("77", r.stderr)
        self.assert_unchanged()

    def test_change_in_progress_and_catch_up_deadline(self):
        c = self.c
        ra, aa, ra2, aa2 = (f"127.0.0.1:{p}" for p in free_ports(4))
        # Nothing runs at ra: the promotion waits for a member that never
        # answers, until its deadline.
        st, _, b = c.http("POST", c.followers()[0], "/v1/cluster/members",
                          body={"id": 11, "raft_addr": ra, "api_addr": aa,
                                "role": "voter", "timeout_ms": 1500},
                          timeout=60)
        self.assertEqual(st, 503, b)
        self.assertEqual(b["error"]["code"], "catch_up_failed")
        self.assertIn("never answered", b["error"]["message"])
        self.assertEqual(self.members()[11]["role"], "standby")
        # While a promotion waits, any other change is refused with 409 and
        # Retry-After; removing the waiting member cancels it.
        out = {}

        def promote():
            out["r"] = c.http("POST", c.leader(), "/v1/cluster/members/11/role",
                              body={"role": "voter", "timeout_ms": 60000},
                              timeout=120)
        t = threading.Thread(target=promote, daemon=True)
        t.start()
        # /v1/cluster shows the change in progress.
        def waiting():
            ch = c.cluster_info(c.leader()).get("membership_change")
            return ch if ch and ch["step"] == "catching_up" else None
        ch = wait_until(waiting, timeout=30, msg="the promotion to wait")
        self.assertEqual((ch["id"], ch["role"]), (11, "voter"), ch)
        eps = ",".join(c.addr(n) for n in c.ids())
        r = ledgerctl("--endpoints", eps, "status")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("membership change in progress: member 11 -> voter "
                      "(catching_up, ", r.stdout)
        st, h, b = c.http("POST", c.leader(), "/v1/cluster/members",
                          body={"id": 12, "raft_addr": ra2, "api_addr": aa2})
        self.assertEqual((st, b["error"]["code"]),
                         (409, "change_in_progress"), b)
        self.assertIn("retry-after", h)
        st, h, b = c.http("POST", c.leader(), "/v1/cluster/members/2/role",
                          body={"role": "standby"})
        self.assertEqual((st, b["error"]["code"]),
                         (409, "change_in_progress"), b)
        st, _, b = c.http("DELETE", c.leader(), "/v1/cluster/members/11",
                          timeout=60)
        self.assertEqual(st, 200, b)
        t.join(60)
        st, _, b = out["r"]
        self.assertEqual((st, b["error"]["code"]), (409, "cancelled"), b)
        self.assertNotIn(12, self.members())
        self.assertIsNone(
            c.cluster_info(c.leader()).get("membership_change", 0))
        self.assert_unchanged()

    def test_per_member_gauges_in_metrics(self):
        c = self.c
        leader = c.leader()
        c.append_ok(leader, unique("gauge"), [{"type": "t"}])
        _, _, text = c.get(leader, "/metrics")
        text = text.decode()
        for nid in c.ids():
            for g in ("match_index", "applied_index", "lag_entries",
                      "reachable"):
                self.assertRegex(
                    text, rf'(?m)^ledger_member_{g}{{id="{nid}",'
                    rf'role="voter"}} \d+$')
            # Times in seconds (Prometheus' base unit).
            for g in ("lag_seconds", "last_contact_seconds"):
                self.assertRegex(
                    text, rf'(?m)^ledger_member_{g}{{id="{nid}",'
                    rf'role="voter"}} \d+\.\d{{3}}$')
        self.assertNotRegex(text, r"(?m)^ledger_\w*_ms[{ ]")


class LastVoterTest(HarnessTestCase):

    def test_last_voter_cannot_leave(self):
        c = self.track(Cluster(1, name="ops-one").start())
        for method, path, body in (
                ("DELETE", "/v1/cluster/members/1", None),
                ("POST", "/v1/cluster/members/1/role", {"role": "standby"}),
                ("POST", "/v1/cluster/members/1/role", {"role": "spare"})):
            st, _, b = c.http(method, 1, path, body=body)
            self.assertEqual((st, b["error"]["code"]), (409, "last_voter"), b)
            self.assertIn("last voter", b["error"]["message"])
        info = c.cluster_info(1)
        self.assertEqual([(m["id"], m["role"]) for m in info["members"]],
                         [(1, "voter")])
        c.append_ok(1, unique("one"), [{"type": "t"}])


class SigtermLeaderTest(HarnessTestCase):
    """SIGTERM of the leader during appends through the followers: no
    append fails (with or without ids), none is lost."""

    def test_sigterm_leader_during_appends_fails_none(self):
        c = self.track(Cluster(3, name="ops-term").start())
        leader = c.leader()
        fols = c.followers(leader)
        s = unique("term")
        writers = [StrictWriter(c, s, f"t{i}", fols, ids=(i % 2 == 0))
                   for i in range(4)]
        for w in writers:
            w.start()
        try:
            wait_until(lambda: sum(len(w.acked) for w in writers) >= 40,
                       timeout=60, msg="40 acks before SIGTERM")
            c.signal(leader, signal.SIGTERM)
            self.assertEqual(c.wait_exit(leader, timeout=30), 0)
            new = c.leader(exclude=(leader,))
            base = sum(len(w.acked) for w in writers)
            wait_until(lambda: sum(len(w.acked) for w in writers)
                       >= base + 40, timeout=60, msg="40 acks after")
        finally:
            for w in writers:
                w.stop_flag.set()
            for w in writers:
                w.join(60)
        for w in writers:
            self.assertEqual(w.failed, [], f"writer {w.name}")
        events = stream_events(c, new, s)
        got = [(e["data"]["w"], e["data"]["k"]) for e in events]
        self.assertEqual(len(got), len(set(got)), "no event twice")
        for w in writers:
            for k, res in w.acked:
                self.assertIn((w.name, k), got)
        for nid in c.live_ids():
            c.wait_caught_up(nid)
            self.assertEqual(len(stream_events(c, nid, s)), len(events))


class FiveNodesTest(HarnessTestCase):

    def test_cluster_up_five_nodes(self):
        cc = CtlCluster(nodes=5)
        self.addCleanup(cc.close)
        r = cc.up()
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        cc.wait_healthy()
        r = cc.ctl("--json", "status")
        self.assertEqual(r.returncode, 0, r.stderr)
        info = json.loads(r.stdout)
        self.assertEqual(sorted(m["id"] for m in info["members"]),
                         [1, 2, 3, 4, 5])
        self.assertTrue(all(m["role"] == "voter" for m in info["members"]))
        r = cc.ctl("append", unique("five"), '{"n": 5}')
        self.assertEqual(r.returncode, 0, r.stderr)
        r = cc.ctl("lag", "--max-entries", "1000")
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertEqual(len(r.stdout.strip().splitlines()), 7, r.stdout)


if __name__ == "__main__":
    unittest.main()
