"""ledgerd --zone: each member's label reaches every node (/v1/cluster
"zone", also in a follower's own view), follows the node's flag across
restarts (changed, removed), survives a leader change, travels in
snapshots to a node that joins later, and an old (schema 1) store is
upgraded in place. The endpoint the nodes use refuses bad input."""
import sqlite3
import unittest

from harness import Cluster, HarnessTestCase, SLOW, unique, wait_until


def zones(c, nid):
    """{member id: zone} in node nid's own view."""
    st, _, b = c.get(nid, "/v1/cluster?local=1", timeout=5)
    if st != 200:
        return None
    return {m["id"]: m.get("zone") for m in b["members"]}


class ZoneTest(HarnessTestCase):

    def wait_zones(self, c, want, ids=None, timeout=30):
        ids = ids or c.live_ids()
        for nid in ids:
            wait_until(lambda: zones(c, nid) == want, timeout=timeout,
                       msg=f"node {nid} to show zones {want} "
                       f"(has {zones(c, nid)})")

    def test_labels_follow_the_flag(self):
        c = self.track(Cluster(3, name="zones"))
        c.node_args = {1: ["--zone", "rack-a"], 2: ["--zone", "rack-b"],
                       3: ["--zone", "rack.c_1"]}
        c.start()
        self.wait_zones(c, {1: "rack-a", 2: "rack-b", 3: "rack.c_1"})

        # Changed on a restart, and removed by a restart without --zone.
        c.stop(2)
        c.node_args[2] = ["--zone", "rack-d"]
        c.start_node(2, bootstrap=False)
        c.stop(3)
        c.node_args[3] = []
        c.start_node(3, bootstrap=False)
        self.wait_zones(c, {1: "rack-a", 2: "rack-d", 3: None})

        # Replicated: a new leader knows a dead member's label.
        old = c.leader()
        c.kill9(old)
        new = c.leader(exclude=(old,))
        want = {1: "rack-a", 2: "rack-d", 3: None}
        self.assertEqual(zones(c, new), want)
        st, _, b = c.get(new, "/v1/cluster")
        self.assertEqual({m["id"]: m["zone"] for m in b["members"]}, want)
        c.start_node(old, bootstrap=False)
        self.wait_zones(c, want)

    def test_endpoint_refuses_bad_input(self):
        c = self.track(Cluster(3, name="zones-bad"))
        c.node_args = {1: ["--zone", "z1"]}
        c.start()
        self.wait_zones(c, {1: "z1", 2: None, 3: None})
        for nid in c.ids():  # leader and followers (forwarded)
            for body in ({"zone": "two words"}, {"zone": ""}, {"zone": 7},
                         {"zone": "x" * 64}, {}, []):
                st, _, b = c.http("PUT", nid, "/v1/cluster/members/1/zone",
                                  body=body)
                self.assertEqual(st, 400, (body, b))
                self.assertEqual(b["error"]["code"], "bad_body")
            st, _, b = c.http("PUT", nid, "/v1/cluster/members/9/zone",
                              body={"zone": "z9"})
            self.assertEqual(st, 404, b)
            self.assertEqual(b["error"]["code"], "member_not_found")
            # The label it already has: 200, nothing to do.
            st, _, b = c.http("PUT", nid, "/v1/cluster/members/1/zone",
                              body={"zone": "z1"})
            self.assertEqual((st, b), (200, {"id": 1, "zone": "z1"}))
        self.assertEqual(zones(c, 2), {1: "z1", 2: None, 3: None})

    def test_snapshot_carries_labels(self):
        """Node 4 joins after the entries that set the labels were
        compacted away: it learns them from the snapshot."""
        c = self.track(Cluster(3, name="zones-snap", extra_args=[
            "--snapshot-threshold", "64", "--snapshot-trailing", "8"]))
        c.node_args = {i: ["--zone", f"z{i}"] for i in (1, 2, 3)}
        c.start()
        self.wait_zones(c, {1: "z1", 2: "z2", 3: "z3"})
        s = unique("snap")
        for i in range(200):
            c.append_ok(c.leader(), s, [{"type": "t", "data": i}])
        n4 = c.new_node(4, join=c.addr(c.leader()))
        c.node_args[4] = ["--zone", "z4"]
        c.start_node(4)
        wait_until(lambda: c.healthy(4), timeout=60, msg="node 4 to join")
        self.wait_zones(c, {1: "z1", 2: "z2", 3: "z3", 4: "z4"},
                        timeout=60)
        self.assertIn("snapshot", c.log_text(4).lower())
        del n4

    def test_schema_1_store_upgraded(self):
        """A cluster without labels; node 2's store is taken back to schema
        1 (no zone column), as an older ledgerd left it: it starts,
        upgrades the store in place, and its new --zone reaches every
        node."""
        c = self.track(Cluster(3, name="zones-v1"))
        c.start()
        self.wait_zones(c, {1: None, 2: None, 3: None})
        s = unique("v1")
        c.append_ok(c.leader(), s, [{"type": "t", "data": 1}])
        c.wait_caught_up(2)
        c.stop(2)
        db = sqlite3.connect(c.nodes[2].db_path)
        db.execute("ALTER TABLE members DROP COLUMN zone")
        db.execute("UPDATE meta SET value = 1 WHERE key = 'schema_version'")
        db.commit()
        db.close()
        c.node_args = {2: ["--zone", "new"]}
        c.start_node(2, bootstrap=False)
        wait_until(lambda: c.healthy(2), timeout=60, msg="node 2 back")
        self.wait_zones(c, {1: None, 2: "new", 3: None})
        db = sqlite3.connect(c.nodes[2].db_path)
        v = db.execute("SELECT value FROM meta WHERE key = 'schema_version'"
                       ).fetchone()[0]
        db.close()
        self.assertEqual(int(v), 2)
        st, _, b = c.read(2, s, consistency="any")
        self.assertEqual([e["data"] for e in b["events"]], [1])

    def test_bad_zone_flag(self):
        c = self.track(Cluster(1, name="zones-flag"))
        c._setup_dir()
        c.node_args = {1: ["--zone", "no/slash"]}
        import subprocess
        r = subprocess.run(c.command(1), capture_output=True, text=True,
                           timeout=30 * SLOW)
        self.assertEqual(r.returncode, 2)
        self.assertIn("--zone 'no/slash' is not a zone name", r.stderr)


if __name__ == "__main__":
    unittest.main()
