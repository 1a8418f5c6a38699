"""Snapshots and catch-up: a follower that missed more than the leader keeps
in its log catches up by snapshot install plus pulling events from peers;
kill -9 and restart keep every acknowledged event."""
import signal
import threading
import unittest

import msgpack

from harness import ClusterTestCase, unique, wait_until


def batch(stream_tag, b, size):
    return [{"type": "bulk", "id": f"{stream_tag}-{b}-{i}",
             "data": {"b": b, "i": i, "pad": "p" * 40}} for i in range(size)]


class CompactPageTest(ClusterTestCase):
    """The MessagePack page of /v1/internal/events carries exactly what the
    JSON page does."""

    def test_compact_page_matches_json_page(self):
        c = self.c
        s = unique("page")
        c.append_ok(c.leader(), s, [{"type": "t", "id": "a", "data": {"x": 1}},
                                    {"type": "u", "data": [1, "two"]}])
        leader = c.leader()
        st, _, js = c.get(leader, "/v1/internal/events?from_position=1"
                                  "&limit=100")
        self.assertEqual(st, 200, js)
        st, h, raw = c.get(leader, "/v1/internal/events?from_position=1"
                                   "&limit=100",
                           headers={"Accept": "application/x-ledger-events"})
        self.assertEqual(st, 200)
        self.assertEqual(h["content-type"], "application/x-ledger-events")
        un = msgpack.Unpacker(raw=False)
        un.feed(raw)
        packed = list(un)
        self.assertEqual(len(packed), len(js["events"]))
        self.assertGreaterEqual(len(packed), 2)
        for p, e in zip(packed, js["events"]):
            self.assertEqual(
                p, [e["position"], e["stream"], e["seq"], e["type"],
                    e.get("id"), e["ts"], e["data_text"],
                    bytes.fromhex(e["prev_hash"]), bytes.fromhex(e["hash"])])


class SnapshotTest(ClusterTestCase):
    EXTRA_ARGS = ("--snapshot-threshold", "64", "--snapshot-trailing", "32")

    def append_many(self, streams, batches, size, via):
        """Append batches round-robin over streams through the given nodes;
        returns {stream: [results]}."""
        out = {s: [] for s in streams}
        for b in range(batches):
            s = streams[b % len(streams)]
            nid = via[b % len(via)]
            out[s].append(self.c.append_ok(nid, s, batch(s, b, size)))
        return out

    def assert_same_everywhere(self, streams, ids=None):
        c = self.c
        ids = ids or c.ids()
        for nid in ids:
            c.wait_caught_up(nid)
        for s in streams:
            heads = {}
            for nid in ids:
                st, _, h = c.head(nid, s, consistency="any")
                self.assertEqual(st, 200, f"{s} on node {nid}: {h}")
                heads[nid] = (h["last_seq"], h["head_hash"])
            self.assertEqual(len(set(heads.values())), 1,
                             f"head of {s} differs: {heads}")
        return c.wait_verify_agree(ids)

    def test_stopped_follower_catches_up_by_snapshot(self):
        c = self.c
        leader = c.leader()
        lagger = c.followers(leader)[0]
        other = c.followers(leader)[1]
        streams = [unique("snapA"), unique("snapB"), unique("snapC")]
        c.append_ok(leader, streams[0], batch("pre", 0, 5))
        c.wait_caught_up(lagger)
        c.signal(lagger, signal.SIGTERM)
        self.assertEqual(c.wait_exit(lagger), 0)
        log_before = c.log_text(lagger)

        # 2000 events in 200 batches (200 Raft entries: well past the
        # snapshot threshold of 64 plus 32 trailing entries).
        res = self.append_many(streams, 200, 10, via=[leader, other])
        total = sum(r[-1]["last_seq"] for r in res.values())
        self.assertEqual(total, 2005)
        # A checkpoint travels in the snapshot too.
        st, _, b = c.http("PUT", other, f"/v1/streams/{streams[1]}/checkpoints/"
                          "consumer", body={"value": {"seq": 123}})
        self.assertEqual(st, 200, b)
        # The leader did take snapshots meanwhile.
        wait_until(lambda: "snapshot" in c.log_text(leader),
                   timeout=30, msg="the leader to log a snapshot")

        c.restart(lagger)
        c.wait_healthy()
        c.wait_caught_up(lagger, timeout_ms=30000)
        v = self.assert_same_everywhere(streams)
        self.assertTrue(v["ok"])
        self.assertGreaterEqual(v["applied_position"], 2005)
        # Every event, byte for byte the same as on the leader.
        for s in streams:
            mine = c.read_all(lagger, s, consistency="any")
            theirs = c.read_all(leader, s, consistency="any")
            self.assertEqual(len(mine), res[s][-1]["last_seq"])
            self.assertEqual(mine, theirs)
            self.assertEqual(mine[-1]["hash"], res[s][-1]["hash"])
        st, _, g = c.get(lagger, f"/v1/streams/{streams[1]}/checkpoints/"
                         "consumer?consistency=any")
        self.assertEqual((st, g.get("value")), (200, {"seq": 123}), g)
        # Its log tells how it caught up.
        log = c.log_text(lagger)[len(log_before):]
        self.assertRegex(log, r"(?i)restore|catch-up|catching up",
                         "the restarted follower's log names the catch-up")

    def test_writes_continue_while_follower_catches_up(self):
        c = self.c
        leader = c.leader()
        lagger = c.followers(leader)[1]
        s = unique("snapLive")
        c.kill9(lagger)
        self.append_many([s], 120, 5, via=[leader])
        acked = []
        stop = threading.Event()
        errors = []

        def writer():
            k = 0
            while not stop.is_set():
                k += 1
                try:
                    acked.append(c.append_retry(
                        s, [{"type": "live", "id": f"live-{k}"}],
                        ids=[leader], timeout=30))
                except Exception as e:  # noqa: BLE001 - reported below
                    errors.append(repr(e))
                    return

        t = threading.Thread(target=writer, daemon=True)
        t.start()
        try:
            c.restart(lagger)
            c.wait_healthy()
            c.wait_caught_up(lagger, timeout_ms=30000)
            n = len(acked)
            wait_until(lambda: len(acked) >= n + 20, timeout=30,
                       msg="writes after the catch-up")
        finally:
            stop.set()
            t.join(60)
        self.assertEqual(errors, [])
        self.assert_same_everywhere([s])
        evs = c.read_all(lagger, s, consistency="strong")
        self.assertEqual(len(evs), 600 + len(acked))
        by_id = {e["id"]: e for e in evs}
        for r, k in zip(acked, range(1, len(acked) + 1)):
            self.assertEqual(by_id[f"live-{k}"]["hash"], r["hash"])

    def test_kill9_and_restart_with_many_entries(self):
        c = self.c
        leader = c.leader()
        victim = c.followers(leader)[0]
        streams = [unique("k9a"), unique("k9b")]
        res = self.append_many(streams, 100, 10, via=c.ids())
        c.wait_caught_up(victim)
        before = {s: c.read_all(victim, s, consistency="any") for s in streams}
        c.kill9(victim)
        c.restart(victim)
        c.wait_healthy()
        # Right after the restart, before it hears from anyone: its own
        # store already has everything it had.
        for s in streams:
            self.assertEqual(c.read_all(victim, s, consistency="any")[
                :len(before[s])], before[s])
        c.wait_caught_up(victim)
        for s in streams:
            evs = c.read_all(victim, s, consistency="any")
            self.assertEqual(evs, before[s])
            self.assertEqual(evs[-1]["hash"], res[s][-1]["hash"])
        self.assert_same_everywhere(streams)

    def test_kill9_every_node_loses_nothing_acknowledged(self):
        c = self.c
        streams = [unique("all9a"), unique("all9b")]
        res = self.append_many(streams, 80, 10, via=c.ids())
        last = {s: res[s][-1] for s in streams}
        for nid in c.ids():
            c.kill9(nid)
        for nid in c.ids():
            c.restart(nid)
        c.wait_healthy()
        for s in streams:
            for nid in c.ids():
                evs = c.read_all(nid, s)
                self.assertEqual(len(evs), last[s]["last_seq"], f"node {nid}")
                self.assertEqual(evs[-1]["hash"], last[s]["hash"])
                ids = [e["id"] for e in evs]
                self.assertEqual(len(ids), len(set(ids)))
        # Retrying an acknowledged batch after the crash is still a no-op.
        s = streams[0]
        first_batch = batch(s, 0, 10)
        again = c.append_retry(s, first_batch)
        self.assertEqual(again, res[s][0])
        v = self.assert_same_everywhere(streams)
        self.assertTrue(v["ok"])


class SnapshotWithTokenTest(ClusterTestCase):
    """Catch-up pulls events over the peers' API: it must work when the
    API needs a bearer token."""
    EXTRA_ARGS = SnapshotTest.EXTRA_ARGS
    TOKEN = "snap-token"

    def test_catch_up_with_token(self):
        c = self.c
        leader = c.leader()
        lagger = c.followers(leader)[0]
        s = unique("snapTok")
        c.append_ok(leader, s, batch(s, 0, 3))
        c.wait_caught_up(lagger)
        c.kill9(lagger)
        last = None
        for b in range(1, 121):
            last = c.append_ok(leader, s, batch(s, b, 5))
        c.restart(lagger)
        c.wait_healthy()
        c.wait_caught_up(lagger, timeout_ms=30000)
        st, _, h = c.head(lagger, s, consistency="any")
        self.assertEqual(st, 200, h)
        self.assertEqual((h["last_seq"], h["head_hash"]),
                         (last["last_seq"], last["hash"]))
        self.assertEqual(c.read_all(lagger, s, consistency="any"),
                         c.read_all(leader, s, consistency="any"))
        c.wait_verify_agree()


if __name__ == "__main__":
    unittest.main()
