"""Failover: kill -9 of the leader under write load loses no acknowledged
event and duplicates none; retries across failover are idempotent; a
SIGTERM'd leader hands over and exits 0."""
import collections
import re
import signal
import threading
import time
import unittest

from harness import ClusterTestCase, deadline, unique, wait_until


class Writer(threading.Thread):
    """Appends one event at a time with unique ids to `stream` through any
    live node. An append is retried with the SAME body (same id) on 503,
    429, connection errors and timeouts until it gets a 201; every 201 is
    recorded. Any other status is recorded as an error."""

    def __init__(self, cluster, stream, name, start_node):
        super().__init__(daemon=True)
        self.c = cluster
        self.stream = stream
        self.name = name
        self.node_i = start_node
        self.stop_flag = threading.Event()
        self.acked = {}          # id -> 201 body
        self.ack_order = []      # ids in ack order
        self.errors = []
        self.lock = threading.Lock()

    def acks(self):
        with self.lock:
            return len(self.ack_order)

    def run(self):
        k = 0
        ids = self.c.ids()
        while not self.stop_flag.is_set():
            k += 1
            eid = f"{self.name}-{k}"
            body = [{"type": "w", "id": eid, "data": {"w": self.name, "k": k}}]
            while True:
                if self.stop_flag.is_set():
                    return  # eid may or may not be appended: never acked
                nid = ids[self.node_i % len(ids)]
                try:
                    st, _, res = self.c.append(nid, self.stream, body,
                                               timeout=10)
                except OSError:
                    self.node_i += 1
                    continue
                if st == 201:
                    if res.get("last_seq") != res.get("first_seq"):
                        self.errors.append(f"{eid}: {res}")
                    with self.lock:
                        if eid in self.acked and self.acked[eid] != res:
                            self.errors.append(
                                f"{eid} acked twice differently: "
                                f"{self.acked[eid]} vs {res}")
                        self.acked[eid] = res
                        self.ack_order.append(eid)
                    break
                if st in (503, 429):
                    self.node_i += 1
                    time.sleep(0.02)  # pacing of retries, not a wait
                    continue
                self.errors.append(f"{eid} via node {nid}: {st} {res}")
                return


class FailoverTest(ClusterTestCase):

    def check_stream(self, nid, stream, acked, consistency):
        evs = self.c.read_all(nid, stream, consistency=consistency)
        seqs = [e["seq"] for e in evs]
        self.assertEqual(seqs, list(range(1, len(evs) + 1)),
                         f"node {nid}: seqs are 1..n without gaps")
        counts = collections.Counter(e["id"] for e in evs)
        dups = {i: n for i, n in counts.items() if n > 1}
        self.assertEqual(dups, {}, f"node {nid}: duplicated ids in {stream}")
        by_id = {e["id"]: e for e in evs}
        missing = [i for i in acked if i not in by_id]
        self.assertEqual(missing, [], f"node {nid} ({consistency}) lacks "
                         f"acknowledged events of {stream}")
        for i, res in acked.items():
            e = by_id[i]
            self.assertEqual((e["seq"], e["position"], e["hash"]),
                             (res["last_seq"], res["position"], res["hash"]),
                             f"node {nid}: event {i} differs from its ack")
        for a, b in zip(evs, evs[1:]):
            self.assertLess(a["position"], b["position"])
        return evs

    def test_kill9_leader_under_write_load(self):
        c = self.c
        streams = [unique("fo-a"), unique("fo-b")]
        writers = [Writer(c, streams[i % 2], f"w{i}", i) for i in range(3)]
        for w in writers:
            w.start()
        try:
            total = lambda: sum(w.acks() for w in writers)  # noqa: E731
            wait_until(lambda: total() >= 60, timeout=60,
                       msg="60 acknowledged appends before the kill")
            old = c.leader()
            c.kill9(old)
            t_kill = time.monotonic()
            new = c.leader(exclude=(old,))
            self.assertNotEqual(new, old)
            elect_s = time.monotonic() - t_kill
            base = total()
            wait_until(lambda: total() >= base + 50, timeout=60,
                       msg="50 more acks from the new leader")
        finally:
            for w in writers:
                w.stop_flag.set()
            for w in writers:
                w.join(60)
        # The survivors counted the leader change.
        for nid in c.live_ids():
            st, _, text = c.get(nid, "/metrics")
            m = re.search(rb"(?m)^ledger_raft_leader_changes_total (\d+)", text)
            self.assertIsNotNone(m)
            self.assertGreaterEqual(int(m.group(1)), 2, f"node {nid}")
        for w in writers:
            self.assertFalse(w.is_alive(), f"writer {w.name} is stuck")
            self.assertEqual(w.errors, [], f"writer {w.name}")
        self.assertLess(elect_s, deadline(15), "a new leader in time")
        acked = {s: {} for s in streams}
        for w in writers:
            acked[w.stream].update(w.acked)
        # Acks are unique per stream position.
        for s in streams:
            pos = [r["position"] for r in acked[s].values()]
            self.assertEqual(len(pos), len(set(pos)))
        survivors = c.live_ids()
        self.assertEqual(len(survivors), 2)
        for nid in survivors:
            for s in streams:
                self.check_stream(nid, s, acked[s], "strong")
        for nid in survivors:
            st, _, b = c.get(nid, "/health?caught_up=1&timeout_ms=10000",
                             timeout=30)
            self.assertEqual(st, 200, b)
            for s in streams:
                self.check_stream(nid, s, acked[s], "any")
        # The killed node comes back with everything.
        c.restart(old)
        c.wait_healthy()
        c.wait_caught_up(old)
        for s in streams:
            self.check_stream(old, s, acked[s], "any")
            self.check_stream(old, s, acked[s], "strong")
        v = c.wait_verify_agree()
        self.assertTrue(v["ok"])
        for s in streams:
            heads = {c.head(n, s)[2]["head_hash"] for n in c.ids()}
            self.assertEqual(len(heads), 1, f"one head hash of {s}")

    def test_idempotent_retry_after_failover(self):
        c = self.c
        s = unique("fo-idem")
        old = c.leader()
        body = [{"type": "t", "id": "X", "data": {"v": 1}}]
        st, _, first = c.append(old, s, body)
        self.assertEqual(st, 201, first)
        batch = [{"type": "t", "id": f"B{i}", "data": i} for i in range(5)]
        st, _, first_batch = c.append(c.followers(old)[0], s, batch)
        self.assertEqual(st, 201, first_batch)
        c.kill9(old)
        new = c.leader(exclude=(old,))
        # The same bodies to the new leader: the original results.
        again = c.append_retry(s, body, ids=[new])
        self.assertEqual(again, first)
        again = c.append_retry(s, batch, ids=[n for n in c.live_ids()
                                              if n != new])
        self.assertEqual(again, first_batch)
        # And a new event still lands after them.
        nxt = c.append_retry(s, [{"type": "t", "id": "Y"}])
        self.assertEqual(nxt["last_seq"], 7)
        for nid in c.live_ids():
            evs = c.read_all(nid, s)
            self.assertEqual([e["id"] for e in evs],
                             ["X", "B0", "B1", "B2", "B3", "B4", "Y"])
            self.assertEqual(evs[0]["hash"], first["hash"])

    def test_sigterm_leader_hands_over_and_exits_0(self):
        c = self.c
        s = unique("fo-term")
        old = c.leader()
        c.append_ok(old, s, [{"type": "t", "id": "before"}])
        for nid in c.followers(old):
            c.wait_caught_up(nid)
        t0 = time.monotonic()
        c.signal(old, signal.SIGTERM)
        new = c.leader(exclude=(old,), timeout=30)
        handover_s = time.monotonic() - t0
        code = c.wait_exit(old, timeout=20)
        self.assertEqual(code, 0, "a SIGTERM'd ledgerd exits 0 (soon)")
        self.assertIn(new, c.live_ids())
        self.assertLess(handover_s, deadline(5),
                        "leadership moved quickly after SIGTERM")
        # The survivors keep accepting writes and have the old event.
        r = c.append_retry(s, [{"type": "t", "id": "after"}])
        self.assertEqual(r["last_seq"], 2)
        for nid in c.live_ids():
            evs = c.read_all(nid, s)
            self.assertEqual([e["id"] for e in evs], ["before", "after"])

    def test_sigterm_follower_exits_0(self):
        c = self.c
        leader = c.leader()
        fol = c.followers(leader)[0]
        c.signal(fol, signal.SIGTERM)
        code = c.wait_exit(fol, timeout=20)
        self.assertEqual(code, 0)
        # The leader stays leader; writes go on with two nodes.
        self.assertEqual(c.leader(), leader)
        s = unique("fo-fterm")
        r = c.append_retry(s, [{"type": "t"}])
        self.assertEqual(r["last_seq"], 1)


class DegradedClusterTest(ClusterTestCase):

    def test_dead_follower_shows_unreachable_and_lags(self):
        c = self.c
        leader = c.leader()
        dead = c.followers(leader)[0]
        c.kill9(dead)
        s = unique("deadf")

        def member(nid):
            return {m["id"]: m for m in c.cluster_info(nid)["members"]}[dead]
        wait_until(lambda: member(leader)["state"] == "unreachable",
                   timeout=30, msg="the dead follower to show unreachable")
        # Two of three still make a majority.
        for i in range(5):
            c.append_ok(c.followers(leader)[0] if i % 2 else leader, s,
                        [{"type": "t", "data": i}])
        m = member(leader)
        self.assertGreaterEqual(m["lag_entries"], 5)
        self.assertEqual(m["state"], "unreachable")
        live = c.followers(leader)[0]
        self.assertEqual(member(live)["state"], "unreachable",
                         "a follower's /v1/cluster shows the leader's view")
        c.restart(dead)
        c.wait_healthy()
        wait_until(lambda: member(leader)["state"] == "follower"
                   and member(leader)["lag_entries"] == 0, timeout=30,
                   msg="the restarted follower to catch up")
        self.assertEqual(c.read_all(dead, s)[-1]["data"], 4)

    def test_minority_refuses_writes_and_strong_reads(self):
        c = self.c
        s = unique("minority")
        leader = c.leader()
        c.append_ok(leader, s, [{"type": "t", "id": "before"}])
        lone = c.followers(leader)[0]
        c.wait_caught_up(lone)
        others = [n for n in c.ids() if n != lone]
        for nid in others:
            c.kill9(nid)

        def no_leader():
            st, h, b = c.get(lone, "/health")
            return st == 503 and (st, h, b)
        st, h, b = wait_until(no_leader, timeout=30,
                              msg="the lone node to see no leader")
        self.assertEqual(b["status"], "unavailable")
        self.assertIn("retry-after", h)
        self.assertTrue(b.get("reason"))
        st, h, b = c.append(lone, s, [{"type": "t", "id": "refused"}],
                            timeout=60)
        self.assertEqual(st, 503, b)
        self.assertIn("retry-after", h)
        self.assertIn("code", b["error"])
        st, h, b = c.read(lone, s, consistency="strong", timeout=60)
        self.assertEqual(st, 503, b)
        self.assertIn("retry-after", h)
        st, _, b = c.read(lone, s, consistency="any")
        self.assertEqual(st, 200, b)
        self.assertEqual([e["id"] for e in b["events"]], ["before"])
        st, _, b = c.get(lone, "/v1/cluster")
        self.assertEqual(st, 200, b)
        st, _, b = c.get(lone, "/health?caught_up=1&timeout_ms=500")
        self.assertEqual(st, 503, b)
        for nid in others:
            c.restart(nid)
        c.wait_healthy()
        r = c.append_retry(s, [{"type": "t", "id": "after"}])
        self.assertEqual(r["last_seq"], 2)
        for nid in c.ids():
            self.assertEqual([e["id"] for e in c.read_all(nid, s)],
                             ["before", "after"])


class StaleReadTest(ClusterTestCase):
    """Strong reads never miss an acknowledged append, even on a node that
    was frozen (SIGSTOP) while the cluster moved on."""

    def read_in_thread(self, nid, path):
        out = {}

        def run():
            try:
                out["resp"] = self.c.get(nid, path, timeout=60)
            except Exception as e:  # noqa: BLE001 - reported by the caller
                out["exc"] = e

        t = threading.Thread(target=run, daemon=True)
        t.start()
        return t, out

    def test_frozen_follower_strong_read_sees_acknowledged_appends(self):
        c = self.c
        s = unique("frozenf")
        leader = c.leader()
        fol = c.followers(leader)[0]
        c.append_ok(leader, s, [{"type": "t", "id": "a"}])
        c.wait_caught_up(fol)
        c.signal(fol, signal.SIGSTOP)
        try:
            acked = c.append_ok(leader, s, [{"type": "t", "id": "b"},
                                            {"type": "t", "id": "c"}])
            # The read is sent while the follower is frozen (the kernel
            # queues it), so it began after the append was acknowledged.
            t, out = self.read_in_thread(
                fol, f"/v1/streams/{s}/events?consistency=strong")
            wait_until(lambda: any(
                f":{c.nodes[fol].api_port} " in l and "ESTAB" in l
                for l in self.connections()), timeout=20, interval=0.02,
                msg="the read to be connected")
        finally:
            c.signal(fol, signal.SIGCONT)
        t.join(90)
        self.assertFalse(t.is_alive())
        self.assertNotIn("exc", out)
        st, _, b = out["resp"]
        self.assertEqual(st, 200, b)
        self.assertEqual([e["id"] for e in b["events"]], ["a", "b", "c"])
        self.assertEqual(b["events"][-1]["hash"], acked["hash"])

    def test_frozen_leader_never_serves_stale_strong_reads(self):
        c = self.c
        s = unique("frozenl")
        old = c.leader()
        c.append_ok(old, s, [{"type": "t", "id": "a"}])
        for nid in c.followers(old):
            c.wait_caught_up(nid)
        c.signal(old, signal.SIGSTOP)
        try:
            new = c.leader(exclude=(old,))
            acked = c.append_retry(s, [{"type": "t", "id": "b"}],
                                   ids=[new])
            self.assertEqual(acked["last_seq"], 2)
            threads = [self.read_in_thread(
                old, f"/v1/streams/{s}/events?consistency=strong")
                for _ in range(3)]
            threads.append(self.read_in_thread(old, f"/v1/streams/{s}"))
            wait_until(lambda: sum(
                f":{c.nodes[old].api_port} " in l and "ESTAB" in l
                for l in self.connections()) >= 4, timeout=20, interval=0.02,
                msg="the reads to be connected")
        finally:
            c.signal(old, signal.SIGCONT)
        for t, out in threads:
            t.join(90)
            self.assertFalse(t.is_alive())
            self.assertNotIn("exc", out)
            st, _, b = out["resp"]
            if st == 503:
                self.assertIn("code", b["error"])
                continue
            self.assertEqual(st, 200, b)
            if "events" in b:
                self.assertEqual([e["id"] for e in b["events"]], ["a", "b"],
                                 "a stale leader served a strong read")
            else:
                self.assertEqual(b["last_seq"], 2,
                                 "a stale leader served a strong head read")
        # It steps down and then serves everything.
        wait_until(lambda: c.cluster_info(old, local=True)["leader_id"]
                   not in (0, old), timeout=30,
                   msg="the old leader to follow the new one")
        c.wait_caught_up(old)
        evs = c.read_all(old, s)
        self.assertEqual([e["id"] for e in evs], ["a", "b"])

    @staticmethod
    def connections():
        """Client-side TCP connections on this host (from /proc)."""
        out = []
        for path in ("/proc/net/tcp",):
            with open(path) as f:
                for line in f.readlines()[1:]:
                    parts = line.split()
                    local, remote, state = parts[1], parts[2], parts[3]
                    rport = int(remote.split(":")[1], 16)
                    if state == "01":  # ESTABLISHED
                        out.append(f"{local} :{rport} ESTAB")
        return out


class ShutdownTest(ClusterTestCase):

    def test_sigterm_answers_a_parked_long_poll(self):
        c = self.c
        s = unique("parked")
        leader = c.leader()
        fol = c.followers(leader)[0]
        c.append_ok(leader, s, [{"type": "t"}])
        c.wait_caught_up(fol)
        out = {}

        def poll():
            try:
                out["resp"] = c.read(fol, s, from_seq=2, wait_ms=60000,
                                     timeout=120)
            except Exception as e:  # noqa: BLE001 - checked below
                out["exc"] = e

        t = threading.Thread(target=poll, daemon=True)
        t.start()

        def parked():
            st, _, text = c.get(fol, "/metrics")
            m = [l for l in text.decode().splitlines()
                 if l.startswith("ledger_http_inflight ")]
            return m and int(m[0].split()[1]) >= 2
        wait_until(parked, timeout=20, msg="the long poll to be parked")
        t0 = time.monotonic()
        c.signal(fol, signal.SIGTERM)
        t.join(60)
        self.assertFalse(t.is_alive(), "the long poll was not answered")
        self.assertLess(time.monotonic() - t0, deadline(10))
        self.assertNotIn("exc", out, "the poll got an answer, not a reset")
        st, _, b = out["resp"]
        self.assertIn(st, (200, 503), b)
        if st == 200:
            self.assertEqual(b["events"], [])
        self.assertEqual(c.wait_exit(fol), 0)


if __name__ == "__main__":
    unittest.main()
