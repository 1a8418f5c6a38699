"""Replicas that repair themselves: a node whose store or Raft log is found
corrupt (at start, by the background check, by GET /v1/verify) moves it
aside to DIR/corrupt-TIMESTAMP/, rebuilds itself from the others and
serves again; /health answers 503 store_corrupt meanwhile, reads are
refused, and the metrics say so. Nothing acknowledged is lost, and a node
with a damaged Raft log does not vote until it is whole again."""
import collections
import glob
import os
import re
import sqlite3

from harness import (Cluster, HarnessTestCase, deadline, unique,
                     wait_until)


def flip(path, offset):
    with open(path, "r+b") as f:
        f.seek(offset)
        b = f.read(1)
        f.seek(offset)
        f.write(bytes([b[0] ^ 0x10]))


def metric(c, nid, name):
    st, _, text = c.get(nid, "/metrics", timeout=10)
    m = re.search(rb"(?m)^" + name.encode() + rb" (\d+)", text)
    return int(m.group(1)) if m else None


def health(c, nid):
    try:
        st, _, b = c.get(nid, "/health", timeout=5)
    except OSError:
        return None, None
    return st, b


class RepairTest(HarnessTestCase):

    def cluster(self, name, extra=(), **kw):
        c = self.track(Cluster(3, name=name, extra_args=list(extra), **kw))
        c.start()
        return c

    def fill(self, c, n=300, stream=None):
        """n acknowledged appends (ids), batches of 10; returns the acks."""
        s = stream or unique("rp")
        acked = {}
        for k in range(0, n, 10):
            evs = [{"type": "t", "id": f"{s}-{i}", "data": {"i": i}}
                   for i in range(k, k + 10)]
            r = c.append_retry(s, evs)
            for i in range(k, k + 10):
                acked[f"{s}-{i}"] = r
        return s, acked

    def check_all(self, c, stream, ids, nodes):
        for nid in nodes:
            evs = c.read_all(nid, stream, consistency="any")
            counts = collections.Counter(e["id"] for e in evs)
            self.assertEqual([i for i, k in counts.items() if k > 1], [],
                             f"node {nid}: doubled")
            self.assertEqual(sorted(set(ids) - set(counts)), [],
                             f"node {nid}: lost")
        c.wait_verify_agree(nodes, timeout=60)

    def wait_healthy(self, c, nid, timeout=90):
        wait_until(lambda: health(c, nid)[0] == 200, timeout=timeout,
                   msg=f"node {nid} healthy again")

    def test_corrupt_store_found_at_start_waits_for_peers_then_rebuilds(self):
        """A follower's store fails its chain check at start while the other
        two nodes are down: it stays 503 store_corrupt, refuses reads, and
        cannot rebuild; once they are back it rebuilds and serves again.
        Its Raft log was compacted (a snapshot and 16 trailing entries), so
        the rebuild pulls the events from the others (the catch-up after a
        restore, retried until a member answers), not a local replay."""
        c = self.cluster("repair-start", extra=["--snapshot-threshold", "64",
                                                "--snapshot-trailing", "16"])
        s, acked = self.fill(c, n=1000)
        leader = c.leader()
        f = next(i for i in c.ids() if i != leader)
        c.wait_caught_up(f)
        for nid in c.ids():
            c.stop(nid)
        # Change one stored event's data (its hash no longer recomputes).
        db = sqlite3.connect(c.nodes[f].db_path)
        last = db.execute("SELECT max(position) FROM events").fetchone()[0]
        db.execute("UPDATE events SET data = '{\"i\":-1}' WHERE position = ?",
                   (last - 3,))
        db.commit()
        db.close()
        c.start_node(f, bootstrap=False)
        st, b = wait_until(lambda: (lambda h: h if h[0] == 503 else None)(
            health(c, f)), timeout=30, msg="503 from the corrupt node")
        self.assertEqual(b["reason"], "store_corrupt", b)
        self.assertEqual(metric(c, f, "ledger_store_corrupt"), 1)
        self.assertEqual(metric(c, f, "ledger_store_repairs_total"), 1)
        st, _, b = c.read(f, s, consistency="any")
        self.assertEqual((st, b["error"]["code"]), (503, "store_corrupt"))
        moved = glob.glob(os.path.join(c.nodes[f].data_dir, "corrupt-*",
                                       "ledger.db"))
        self.assertEqual(len(moved), 1, "the old store is kept aside")
        self.assertIn("moving it aside", c.log_text(f))
        # Still broken while nobody can supply the events.
        st, b = health(c, f)
        self.assertEqual((st, b["reason"]), (503, "store_corrupt"))
        for nid in c.ids():
            if nid != f:
                c.start_node(nid, bootstrap=False)
        self.wait_healthy(c, f)
        self.assertEqual(metric(c, f, "ledger_store_corrupt"), 0)
        self.assertEqual(metric(c, f, "ledger_store_repairs_total"), 1)
        self.assertTrue(glob.glob(os.path.join(
            c.nodes[f].data_dir, "raft", "snapshot-*")), "a compacted log")
        self.assertRegex(c.log_text(f), r"catch-up: [1-9]\d* events pulled")
        self.check_all(c, s, acked, c.ids())
        r = c.append_retry(s, [{"type": "t", "id": "after"}])
        self.assertEqual(r["last_seq"], len(acked) + 1)

    def test_background_check_and_verify_rebuild_follower_and_leader(self):
        """An old event changed under running nodes: the background check
        (every second) finds it on a follower, GET /v1/verify on the leader;
        the leader hands leadership over first; both rebuild."""
        c = self.cluster("repair-run", extra=["--verify-interval-s", "1"])
        s, acked = self.fill(c)
        leader = c.leader()
        f = next(i for i in c.ids() if i != leader)
        c.wait_caught_up(f)
        for nid in (f,):
            db = sqlite3.connect(c.nodes[nid].db_path, timeout=30)
            db.execute("UPDATE events SET data = '{\"i\":-2}' "
                       "WHERE position = 2")
            db.commit()
            db.close()
        wait_until(lambda: "store is corrupt" in c.log_text(f), timeout=30,
                   msg="the background check to find it")
        self.wait_healthy(c, f)
        wait_until(lambda: metric(c, f, "ledger_store_repairs_total") == 1,
                   timeout=30)
        self.check_all(c, s, acked, c.ids())

        # The leader, found by GET /v1/verify (the background check would
        # find it too: this one is asked first).
        c2 = self.cluster("repair-leader",
                          extra=["--verify-interval-s", "0"])
        s2, acked2 = self.fill(c2)
        old = c2.leader()
        db = sqlite3.connect(c2.nodes[old].db_path, timeout=30)
        db.execute("UPDATE events SET data = '{\"i\":-3}' WHERE position = 5")
        db.commit()
        db.close()
        st, _, v = c2.get(old, "/v1/verify", timeout=60)
        self.assertEqual(st, 200)
        self.assertFalse(v["ok"], v)
        new = c2.leader(exclude=(old,), timeout=60)
        self.assertNotEqual(new, old)
        self.assertIn("handing leadership over", c2.log_text(old))
        self.wait_healthy(c2, old)
        self.assertEqual(metric(c2, old, "ledger_store_repairs_total"), 1)
        self.check_all(c2, s2, acked2, c2.ids())

    def test_damaged_raft_log_leaves_voters_before_voting(self):
        """A follower's closed Raft segment fails its checksum. It must not
        vote while it lacks entries it acknowledged: with the leader down
        too, the survivor and it elect nobody; once the leader is back the
        damaged node leaves the voters, rebuilds as a standby and becomes a
        voter again. With a token file of roles: its calls to the others
        carry the node credential."""
        admin = "repair-admin-" + unique("t")
        c = self.cluster("repair-raft", extra=["--snapshot-threshold", "64",
                                               "--snapshot-trailing", "2000"],
                         token=admin, token_file_text=(
                             f"nodes node repair-node-{unique('n')}\n"
                             f"ops admin {admin}\n"))
        s, acked = self.fill(c, n=600)
        leader = c.leader()
        f, other = [i for i in c.ids() if i != leader]
        c.wait_caught_up(f)
        c.stop(f)
        segs = sorted(p for p in glob.glob(os.path.join(
            c.nodes[f].data_dir, "raft", "0*-0*")))
        self.assertTrue(segs, "a closed segment to damage")
        flip(segs[-1], os.path.getsize(segs[-1]) // 2)
        c.stop(leader)
        c.start_node(f, bootstrap=False)
        st, b = wait_until(lambda: (lambda h: h if h[0] == 503 else None)(
            health(c, f)), timeout=30, msg="503 from the damaged node")
        self.assertEqual(b["reason"], "store_corrupt", b)
        self.assertIn("Raft log is damaged", c.log_text(f))
        # No quorum without the damaged node's vote: nobody leads.
        wait_until(lambda: "leaving the voters" in c.log_text(f), timeout=30)
        st, _, b = c.append(other, s, [{"type": "t", "id": "noq"}],
                            timeout=30)
        self.assertEqual(st, 503, b)
        self.assertNotEqual(c.cluster_info(other, local=True)["node_state"],
                            "leader")
        c.start_node(leader, bootstrap=False)
        wait_until(lambda: "a voter again" in c.log_text(f),
                   timeout=deadline(120), msg="the node to be a voter again")
        self.wait_healthy(c, f)
        info = c.cluster_info(c.leader())
        self.assertEqual({m["id"]: m["role"] for m in info["members"]},
                         {i: "voter" for i in c.ids()})
        self.assertEqual(metric(c, f, "ledger_store_repairs_total"), 1)
        moved = glob.glob(os.path.join(c.nodes[f].data_dir, "corrupt-*",
                                       "raft", "0*"))
        self.assertTrue(moved, "the damaged segments are kept aside")
        self.assertFalse(os.path.exists(os.path.join(c.nodes[f].data_dir,
                                                     "raft-rebuild")))
        acked = {k: v for k, v in acked.items()}
        self.check_all(c, s, acked, c.ids())

    def test_open_segment_flip_is_not_a_torn_write(self):
        """A flipped bit in the middle of the open segment: raft 0.15 would
        drop every entry after it without a word; the start check sees an
        intact batch after the damaged one and rebuilds instead."""
        c = self.cluster("repair-open")
        s, acked = self.fill(c, n=200)
        leader = c.leader()
        f = next(i for i in c.ids() if i != leader)
        c.wait_caught_up(f)
        c.kill9(f)
        opens = [p for p in glob.glob(os.path.join(
            c.nodes[f].data_dir, "raft", "open-*"))
            if os.path.getsize(p) > 0]
        with open(opens[0], "rb") as fh:
            used = len(fh.read().rstrip(b"\0"))
        self.assertGreater(used, 4096)
        flip(opens[0], used // 3)
        c.start_node(f, bootstrap=False)
        wait_until(lambda: "not a torn write" in c.log_text(f), timeout=30)
        wait_until(lambda: "a voter again" in c.log_text(f),
                   timeout=deadline(120))
        self.wait_healthy(c, f)
        self.check_all(c, s, acked, c.ids())
