"""The store commits with synchronous=NORMAL and is synced before every
snapshot (store/store.c, replication/snapshot.c): after snapshots compacted
the Raft log, kill -9 of every node and a restart lose nothing that was
acknowledged, and the chains still agree."""
import glob
import json
import os
import sqlite3
import unittest

from harness import ClusterTestCase, ledgerctl, unique


class DurabilityAfterSnapshotTest(ClusterTestCase):
    EXTRA_ARGS = ("--snapshot-threshold", "16", "--snapshot-trailing", "8")

    def snapshots(self, nid):
        d = os.path.join(self.c.nodes[nid].data_dir, "raft")
        return glob.glob(os.path.join(d, "snapshot-*"))

    def test_kill9_after_snapshots_loses_nothing(self):
        c = self.c
        streams = [unique("dur-a"), unique("dur-b")]
        acked = {s: [] for s in streams}
        for b in range(120):  # 120 entries: several snapshots of 16
            s = streams[b % 2]
            nid = c.ids()[b % len(c.ids())]
            events = [{"type": "t", "id": f"{s}-{b}-{i}", "data": {"b": b}}
                      for i in range(5)]
            acked[s].append(c.append_ok(nid, s, events))
        for nid in c.ids():
            c.wait_caught_up(nid)
            self.assertTrue(self.snapshots(nid), f"node {nid}: no snapshot")
        for nid in c.ids():
            c.kill9(nid)
        for nid in c.ids():
            c.restart(nid)
        c.wait_healthy()
        for s in streams:
            last = acked[s][-1]
            for nid in c.ids():
                evs = c.read_all(nid, s)
                self.assertEqual(len(evs), last["last_seq"], f"node {nid}")
                self.assertEqual(evs[-1]["hash"], last["hash"])
        v = c.wait_verify_agree()
        self.assertTrue(v["ok"], v)
        for nid in c.ids():
            self.assertNotIn("snapshot: sync", c.log_text(nid))


def store_count(db, stream):
    """Events of `stream` committed in a stopped node's SQLite file (read
    only: opening it must not change what the restart will find)."""
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return con.execute("SELECT count(*) FROM events WHERE stream = ?",
                           (stream,)).fetchone()[0]
    finally:
        con.close()


class ApplyTransactionTest(ClusterTestCase):
    """Entries applied in the last REPL__TX_MAX_MS share a store transaction
    that is not committed yet (replication/apply_tx.c): kill -9 of every
    node inside that window loses it from SQLite, and Raft must replay it
    at restart. Nothing acknowledged may be missing afterwards."""

    def test_kill9_with_an_open_apply_transaction_loses_nothing(self):
        c = self.c
        behind = False
        total = 0
        s = unique("tx")
        for attempt in range(5):
            leader = c.leader()
            for b in range(10):
                last = c.append_ok(leader, s, [
                    {"type": "t", "id": f"{s}-{attempt}-{b}-{i}",
                     "data": {"b": b}} for i in range(20)])
            total += 200
            self.assertEqual(last["last_seq"], total)
            for nid in c.ids():  # at once: within the commit window
                c.kill9(nid)
            counts = {nid: store_count(c.nodes[nid].db_path, s)
                      for nid in c.ids()}
            behind = behind or any(n < total for n in counts.values())
            for nid in c.ids():
                c.restart(nid)
            c.wait_healthy()
            for nid in c.ids():
                c.wait_caught_up(nid)
                evs = c.read_all(nid, s, consistency="any")
                self.assertEqual(len(evs), total, f"node {nid} {counts}")
                self.assertEqual(evs[-1]["hash"], last["hash"])
            if behind:
                break
        self.assertTrue(behind, "no kill landed inside the commit window")
        v = c.wait_verify_agree()
        self.assertTrue(v["ok"], v)


class SnapshotByBytesTest(ClusterTestCase):
    """Raft keeps its log in memory and counts snapshots in entries (default
    1024); big entries make a snapshot once 8 MiB were applied since the
    last one, so memory stays bounded (replication/fsm.c)."""

    def test_big_entries_trigger_snapshots(self):
        c = self.c
        eps = ",".join(c.addr(i) for i in c.ids())
        # About 24 MiB in well under 1024 entries.
        p = ledgerctl("--json", "--endpoints", eps, "bench", "--clients", "2",
                      "--batch", "1000", "--size", "500", "--stream",
                      unique("big"), "--streams", "1", "--events", "40000",
                      "--duration", "120")
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(json.loads(p.stdout)["errors"], 0)
        st, _, cl = c.http("GET", c.leader(), "/v1/cluster")
        self.assertLess(cl["commit_index"], 1024)
        for nid in c.ids():
            c.wait_caught_up(nid)
            d = os.path.join(c.nodes[nid].data_dir, "raft")
            self.assertTrue(glob.glob(os.path.join(d, "snapshot-*")),
                            f"node {nid}: no snapshot")
        v = c.wait_verify_agree()
        self.assertTrue(v["ok"], v)


if __name__ == "__main__":
    unittest.main()
