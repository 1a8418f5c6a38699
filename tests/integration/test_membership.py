"""Membership and leadership: leader transfer (API and ledgerctl), a node
joining with --join, role changes and removal."""
import json
import unittest

from harness import ClusterTestCase, ledgerctl, unique, wait_until


class MembershipTest(ClusterTestCase):

    def members(self, nid=None):
        nid = nid or self.c.leader()
        return {m["id"]: m for m in self.c.cluster_info(nid)["members"]}

    def ctl(self, *args, **kw):
        eps = ",".join(self.c.addr(n) for n in self.c.live_ids())
        return ledgerctl("--endpoints", eps, *args, **kw)

    def test_leader_transfer_to_a_given_node(self):
        c = self.c
        old = c.leader()
        target = c.followers(old)[1]
        via = c.followers(old)[0]  # a follower forwards it
        st, _, b = c.http("POST", via, "/v1/cluster/leader",
                          body={"id": target}, timeout=60)
        self.assertEqual(st, 200, b)
        self.assertEqual(b.get("leader_id"), target, b)
        self.assertEqual(c.leader(), target)
        for nid in c.ids():
            wait_until(lambda: c.cluster_info(nid, local=True)["leader_id"]
                       == target, timeout=20, msg=f"node {nid} to follow")
        r = c.append_ok(old, unique("xfer"), [{"type": "t"}])
        self.assertEqual(r["last_seq"], 1)

    def test_leader_transfer_with_ledgerctl(self):
        c = self.c
        old = c.leader()
        r = self.ctl("leader", "transfer")
        self.assertEqual(r.returncode, 0, r.stderr)
        new = c.leader(exclude=(old,))
        self.assertNotEqual(new, old)
        back = self.ctl("leader", "transfer", str(old))
        self.assertEqual(back.returncode, 0, back.stderr)
        self.assertEqual(c.leader(exclude=(new,)), old)

    def test_bad_membership_requests(self):
        c = self.c
        leader = c.leader()
        fol = c.followers(leader)[0]
        n1 = c.nodes[1]
        for nid in (leader, fol):
            st, _, b = c.http("POST", nid, "/v1/cluster/members",
                              body={"id": 1, "raft_addr": n1.raft_addr,
                                    "api_addr": n1.api_addr})
            self.assertEqual(st, 409, b)
            for body in ({"id": 0, "raft_addr": "127.0.0.1:1",
                          "api_addr": "127.0.0.1:2"},
                         {"id": 9, "raft_addr": "nowhere",
                          "api_addr": "127.0.0.1:2"},
                         {"id": 9, "raft_addr": "127.0.0.1:1",
                          "api_addr": "127.0.0.1:2", "role": "king"},
                         {"raft_addr": "127.0.0.1:1"}):
                st, _, b = c.http("POST", nid, "/v1/cluster/members", body=body)
                self.assertEqual(st, 400, f"{body}: {b}")
            st, _, b = c.http("DELETE", nid, "/v1/cluster/members/77")
            self.assertEqual(st, 404, b)
            st, _, b = c.http("POST", nid, "/v1/cluster/members/77/role",
                              body={"role": "standby"})
            self.assertEqual(st, 404, b)
            st, _, b = c.http("POST", nid, "/v1/cluster/leader",
                              body={"id": 77})
            self.assertIn(st, (400, 404, 409), b)
            # A new id on a member's raft address is refused, saying why.
            st, _, b = c.http("POST", nid, "/v1/cluster/members",
                              body={"id": 9, "raft_addr": n1.raft_addr,
                                    "api_addr": "127.0.0.1:1"})
            self.assertEqual(st, 409, b)
            self.assertIn(n1.raft_addr, b["error"]["message"])
            for method, path in (("DELETE", "/v1/cluster/members"),
                                 ("GET", "/v1/cluster/leader"),
                                 ("PUT", "/v1/cluster/members/2"),
                                 ("GET", "/v1/cluster/members/2/role")):
                st, h, b = c.http(method, nid, path,
                                  body=None if method == "GET" else {})
                self.assertEqual(st, 405, f"{method} {path}: {b}")
                self.assertIn("allow", h, f"{method} {path}")
                self.assertNotIn(method, h["allow"])
        self.assertEqual(sorted(self.members()), [1, 2, 3])
        self.assertEqual(c.leader(), leader)

    def test_join_role_and_remove(self):
        c = self.c
        s = unique("join")
        c.append_ok(c.leader(), s, [{"type": "t", "id": f"j{i}"}
                                    for i in range(20)])
        n4 = c.new_node(4, join=c.addr(c.followers()[0]))
        try:
            c.start_node(4)
            c.wait_healthy([4], timeout=120)
            m = self.members()
            self.assertEqual(sorted(m), [1, 2, 3, 4])
            self.assertEqual(m[4]["role"], "voter")
            self.assertEqual(m[4]["api_addr"], n4.api_addr)
            self.assertEqual(m[4]["raft_addr"], n4.raft_addr)
            c.wait_caught_up(4)
            evs = c.read_all(4, s, consistency="any")
            self.assertEqual([e["id"] for e in evs], [f"j{i}" for i in range(20)])
            r = c.append_ok(4, s, [{"type": "t", "id": "via4"}])
            self.assertEqual(r["last_seq"], 21)
            c.wait_verify_agree()
            # ledgerctl sees four members.
            r = self.ctl("--json", "member", "list")
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertIn(n4.api_addr, r.stdout)
            # Demote to standby, then remove.
            r = self.ctl("member", "role", "4", "standby")
            self.assertEqual(r.returncode, 0, r.stderr)
            wait_until(lambda: self.members()[4]["role"] == "standby",
                       timeout=30, msg="node 4 to be a standby")
            r = self.ctl("member", "remove", "4")
            self.assertEqual(r.returncode, 0, r.stderr)
            wait_until(lambda: sorted(self.members()) == [1, 2, 3],
                       timeout=30, msg="node 4 to be removed")
            for nid in (1, 2, 3):
                wait_until(lambda: 4 not in self.members(nid), timeout=30,
                           msg=f"node {nid} to drop member 4")
        finally:
            c.stop(4)
            del c.nodes[4]
        # The three remaining nodes go on.
        r = c.append_ok(c.leader(), s, [{"type": "t", "id": "after"}])
        self.assertEqual(r["last_seq"], 22)
        c.wait_verify_agree()

    def test_add_member_with_ledgerctl_and_remove_it(self):
        c = self.c
        n5 = c.new_node(5, join=None)
        try:
            # Announce it first (as a spare: nothing runs there yet), then
            # start it; it has no --bootstrap and no --join.
            r = self.ctl("member", "add", "5", n5.raft_addr, n5.api_addr,
                         "--role", "spare")
            self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
            m = self.members()
            self.assertEqual(m[5]["role"], "spare")
            self.assertEqual(m[5]["api_addr"], n5.api_addr)
            r = self.ctl("member", "add", "5", n5.raft_addr, n5.api_addr)
            self.assertEqual(r.returncode, 1, r.stdout)
            r = self.ctl("member", "remove", "5")
            self.assertEqual(r.returncode, 0, r.stderr)
            wait_until(lambda: 5 not in self.members(), timeout=30,
                       msg="member 5 to go")
        finally:
            del c.nodes[5]
        r = self.ctl("--json", "status")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(sorted(m["id"] for m in json.loads(r.stdout)["members"]),
                         [1, 2, 3])


if __name__ == "__main__":
    unittest.main()
