"""The HTTP API of a healthy three-node cluster, driven as a client would."""
import json
import re
import threading
import time
import unittest

import msgpack

from harness import ClusterTestCase, unique, wait_until

HEX64 = re.compile(r"^[0-9a-f]{64}$")


def ev(i, id=None, type="t"):
    e = {"type": type, "data": {"i": i, "text": f"event {i}"}}
    if id is not None:
        e["id"] = id
    return e


class AppendAndReadTest(ClusterTestCase):
    """Appends through every node; reads with every consistency level."""

    def check_result(self, res, stream, first, last):
        self.assertEqual(res["stream"], stream)
        self.assertEqual(res["first_seq"], first)
        self.assertEqual(res["last_seq"], last)
        self.assertIsInstance(res["position"], int)
        self.assertGreaterEqual(res["position"], 1)
        self.assertRegex(res["hash"], HEX64)

    def test_append_through_leader_and_each_follower(self):
        c = self.c
        s = unique("via")
        leader = c.leader()
        order = [leader] + c.followers(leader)
        acked = []
        for k, nid in enumerate(order, start=1):
            st, _, res = c.append(nid, s, [ev(k, id=f"via-{k}")])
            self.assertEqual(st, 201, f"append via node {nid}: {res}")
            self.check_result(res, s, k, k)
            if acked:
                self.assertGreater(res["position"], acked[-1]["position"])
            acked.append(res)
            # Strong reads right after the ack, on every node, must
            # include it (whether or not the node has applied it yet).
            for rn in c.ids():
                st, _, body = c.read(rn, s, consistency="strong")
                self.assertEqual(st, 200, body)
                self.assertEqual(body["stream"], s)
                self.assertEqual(body["last_seq"], k, f"node {rn}")
                self.assertEqual(len(body["events"]), k, f"node {rn}")
                got = body["events"][-1]
                self.assertEqual(got["seq"], k)
                self.assertEqual(got["position"], res["position"])
                self.assertEqual(got["hash"], res["hash"])
                self.assertEqual(got["id"], f"via-{k}")
                self.assertEqual(got["type"], "t")
                self.assertEqual(got["data"], {"i": k, "text": f"event {k}"})
                self.assertIsInstance(got["ts"], int)
                self.assertRegex(got["prev_hash"], HEX64)
        # The default consistency is strong: same answer without the flag.
        for rn in c.ids():
            st, _, body = c.read(rn, s)
            self.assertEqual(st, 200)
            self.assertEqual([e["hash"] for e in body["events"]],
                             [a["hash"] for a in acked])

    def test_read_consistency_leader_and_any(self):
        c = self.c
        s = unique("cons")
        leader = c.leader()
        res = c.append_ok(leader, s, [ev(1), ev(2)])
        for nid in c.ids():
            # leader: answered by (or forwarded to) the leader: complete.
            st, _, body = c.read(nid, s, consistency="leader")
            self.assertEqual(st, 200, body)
            self.assertEqual(body["last_seq"], 2)
            self.assertEqual(body["events"][-1]["hash"], res["hash"])
            # any: the local store, which gets there soon.
            def local_has():
                st, _, b = c.read(nid, s, consistency="any")
                return st == 200 and b["last_seq"] == 2 and b
            body = wait_until(local_has, timeout=20,
                              msg=f"node {nid} to apply the append")
            self.assertEqual([e["seq"] for e in body["events"]], [1, 2])
            self.assertEqual(body["events"][-1]["position"], res["position"])

    def test_read_from_and_limit(self):
        c = self.c
        s = unique("page")
        c.append_ok(c.leader(), s, [ev(i) for i in range(1, 11)])
        nid = c.followers()[0]
        st, _, b = c.read(nid, s, from_seq=4, limit=3)
        self.assertEqual(st, 200, b)
        self.assertEqual([e["seq"] for e in b["events"]], [4, 5, 6])
        self.assertEqual(b["last_seq"], 10)
        st, _, b = c.read(nid, s, from_seq=11)
        self.assertEqual(st, 200, b)
        self.assertEqual(b["events"], [])
        self.assertEqual(b["last_seq"], 10)
        # A stream nobody wrote reads as empty.
        st, _, b = c.read(nid, unique("never"))
        self.assertEqual(st, 200, b)
        self.assertEqual(b["events"], [])
        self.assertEqual(b["last_seq"], 0)

    def test_stream_head_and_list(self):
        c = self.c
        s1, s2 = unique("headA"), unique("headB")
        c.append_ok(c.leader(), s1, [ev(1), ev(2), ev(3)])
        r2 = c.append_ok(c.followers()[0], s2, [ev(1)])
        for nid in c.ids():
            st, _, h = c.head(nid, s2)
            self.assertEqual(st, 200, h)
            self.assertEqual(h, {"stream": s2, "last_seq": 1,
                                 "head_hash": r2["hash"]})
            st, _, h1 = c.head(nid, s1)
            self.assertEqual(st, 200, h1)
            self.assertEqual(h1["last_seq"], 3)
            evs = c.read_all(nid, s1)
            self.assertEqual(h1["head_hash"], evs[-1]["hash"])
            st, _, lst = c.get(nid, "/v1/streams")
            self.assertEqual(st, 200, lst)
            by_name = {x["stream"]: x for x in lst["streams"]}
            self.assertEqual(by_name[s1]["last_seq"], 3)
            self.assertEqual(by_name[s1]["head_hash"], h1["head_hash"])
            self.assertEqual(by_name[s2]["last_seq"], 1)
            # A stream without events has no head.
            st, _, err = c.head(nid, unique("missing"))
            self.assertEqual(st, 404, err)
            self.assertIn("code", err["error"])

    def test_single_event_body(self):
        c = self.c
        s = unique("single")
        for nid in (c.leader(), c.followers()[0]):
            st, _, res = c.http("POST", nid, f"/v1/streams/{s}/events",
                                body={"type": "one", "data": [1, 2, 3],
                                      "id": f"single-{nid}"})
            self.assertEqual(st, 201, res)
            self.assertEqual(res["first_seq"], res["last_seq"])
        evs = c.read_all(c.followers()[-1], s)
        self.assertEqual([e["seq"] for e in evs], [1, 2])
        self.assertEqual(evs[0]["type"], "one")
        self.assertEqual(evs[0]["data"], [1, 2, 3])
        # data is optional: stored as null.
        st, _, res = c.http("POST", c.leader(), f"/v1/streams/{s}/events",
                            body={"type": "nodata"})
        self.assertEqual(st, 201, res)
        st, _, b = c.read(c.leader(), s, from_seq=3)
        self.assertIsNone(b["events"][0]["data"])

    def test_unicode_and_numbers_round_trip(self):
        c = self.c
        s = unique("uni")
        data = {"s": "ä€😀 \"q\" \\ \n\t", "n": [2 ** 63 - 1, -2 ** 63, 0.5,
                                                  1e300, -0.0, True, None]}
        r = c.append_ok(c.followers()[0], s,
                        [{"type": "tÿpe€", "data": data, "id": "ïd😀"}])
        for nid in c.ids():
            for hdrs in ({}, {"Accept": "application/msgpack"}):
                st, _, b = c.read(nid, s, headers=hdrs)
                self.assertEqual(st, 200)
                e = b["events"][0]
                self.assertEqual(e["data"], data)
                self.assertEqual(e["type"], "tÿpe€")
                self.assertEqual(e["id"], "ïd😀")
        # The unicode id deduplicates like any other.
        again = c.append_ok(c.leader(), s, [{"type": "x", "id": "ïd😀"}])
        self.assertEqual(again, r)

    def test_data_with_escaped_nul_round_trips(self):
        # Valid JSON data containing "\u0000" in a string is any JSON value
        # and round-trips.
        c = self.c
        s = unique("nul")
        st, _, r = c.http("POST", c.leader(), f"/v1/streams/{s}/events",
                          raw=b'{"type":"t","data":"a\\u0000b"}',
                          headers={"Content-Type": "application/json"})
        self.assertEqual(st, 201, r)
        self.assertEqual(c.read_all(c.leader(), s)[0]["data"], "a\u0000b")

    def test_batch_gets_contiguous_seqs_and_positions(self):
        c = self.c
        s = unique("batch")
        c.append_ok(c.leader(), s, [ev(0)])
        n = 250
        res = c.append_ok(c.followers()[0], s,
                          [ev(i, id=f"b{i}") for i in range(n)])
        self.assertEqual(res["first_seq"], 2)
        self.assertEqual(res["last_seq"], n + 1)
        evs = c.read_all(c.followers()[1], s)
        self.assertEqual(len(evs), n + 1)
        self.assertEqual([e["seq"] for e in evs], list(range(1, n + 2)))
        batch = evs[1:]
        positions = [e["position"] for e in batch]
        self.assertEqual(positions,
                         list(range(positions[0], positions[0] + n)),
                         "a batch occupies consecutive positions")
        # The result names the batch's last event.
        self.assertEqual(res["position"], batch[-1]["position"])
        self.assertEqual(res["hash"], batch[-1]["hash"])
        self.assertEqual([e["id"] for e in batch], [f"b{i}" for i in range(n)])
        # Each event's prev_hash is the hash of the event before it.
        for a, b in zip(batch, batch[1:]):
            self.assertEqual(b["prev_hash"], a["hash"])

    def test_positions_are_global_across_streams(self):
        c = self.c
        a, b = unique("posA"), unique("posB")
        nodes = c.ids()
        results = []
        for k in range(6):
            s = a if k % 2 == 0 else b
            results.append(c.append_ok(nodes[k % 3], s, [ev(k)]))
        pos = [r["position"] for r in results]
        self.assertEqual(pos, list(range(pos[0], pos[0] + 6)),
                         "nothing else writes to this cluster meanwhile")
        self.assertEqual([r["last_seq"] for r in results], [1, 1, 2, 2, 3, 3])
        # The chain runs across streams: B's first event follows A's first.
        ea = c.read_all(nodes[0], a)
        eb = c.read_all(nodes[0], b)
        self.assertEqual(eb[0]["prev_hash"], ea[0]["hash"])
        self.assertEqual(ea[1]["prev_hash"], eb[0]["hash"])


class IdempotencyAndVersionTest(ClusterTestCase):

    def test_idempotent_retry_returns_original_result(self):
        c = self.c
        s = unique("idem")
        leader = c.leader()
        f1, f2 = c.followers(leader)
        c.append_ok(leader, s, [ev(0, id="first")])
        st, h1, r1 = c.append(f1, s, [ev(1, id="X")])
        self.assertEqual(st, 201, r1)
        self.assertEqual(r1["last_seq"], 2)
        # Something else lands after X.
        c.append_ok(leader, s, [ev(2, id="Y")])
        for nid in (leader, f1, f2):
            st, _, again = c.append(nid, s, [ev(1, id="X")])
            self.assertEqual(st, 201, again)
            self.assertEqual(again, r1, f"retry via node {nid}")
        for nid in c.ids():
            st, _, h = c.head(nid, s)
            self.assertEqual(h["last_seq"], 3, "a retry appends nothing")
            evs = c.read_all(nid, s)
            self.assertEqual([e["id"] for e in evs], ["first", "X", "Y"])

    def duplicate_headers(self, via_followers):
        c = self.c
        s = unique("duphdr")
        leader = c.leader()
        body = [ev(1, id="h1")]
        st, h, first = c.append(leader, s, body)
        self.assertEqual(st, 201)
        self.assertNotEqual(h.get("x-ledger-duplicate"), "true")
        for nid in c.followers(leader) if via_followers else [leader]:
            st, h, again = c.append(nid, s, body)
            self.assertEqual(st, 201, again)
            self.assertEqual(again, first, "a retry answers the original body")
            self.assertEqual(h.get("x-ledger-duplicate"), "true",
                             f"retry via node {nid}: {h}")

    def test_duplicate_header_on_retry_to_leader(self):
        self.duplicate_headers(via_followers=False)

    def test_duplicate_header_on_retry_through_follower(self):
        # A retry sent to a follower gets the original 201 body and the
        # X-Ledger-Duplicate header relayed from the leader.
        self.duplicate_headers(via_followers=True)

    def test_idempotent_batch_retry(self):
        c = self.c
        s = unique("idemb")
        batch = [ev(i, id=f"k{i}") for i in range(5)]
        r1 = c.append_ok(c.followers()[0], s, batch)
        r2 = c.append_ok(c.leader(), s, batch)
        self.assertEqual(r1, r2)
        self.assertEqual(r1["first_seq"], 1)
        self.assertEqual(r1["last_seq"], 5)
        st, _, h = c.head(c.followers()[1], s)
        self.assertEqual(h["last_seq"], 5)

    def test_retry_with_expected_version_returns_original(self):
        # The first attempt succeeded (its answer was "lost"); the retry's
        # expected_version no longer matches, but the id wins: a retry is
        # always safe.
        c = self.c
        s = unique("idemver")
        body = [ev(1, id="once")]
        first = c.append_ok(c.followers()[0], s, body, expected_version=0)
        again = c.append_ok(c.leader(), s, body, expected_version=0)
        self.assertEqual(again, first)
        st, _, h = c.head(c.leader(), s)
        self.assertEqual(h["last_seq"], 1)

    def test_partly_duplicate_batch_is_refused(self):
        c = self.c
        s = unique("partdup")
        c.append_ok(c.leader(), s, [ev(1, id="a"), ev(2, id="b")])
        for batch in ([ev(2, id="b"), ev(3, id="c")],
                      [ev(3, id="c"), ev(1, id="a")],
                      [ev(1, id="a"), ev(2, id="b"), ev(9)]):
            st, _, err = c.append(c.followers()[0], s, batch)
            self.assertEqual(st, 409, err)
            self.assertIn("code", err["error"])
        for nid in c.ids():
            evs = c.read_all(nid, s)
            self.assertEqual([e["id"] for e in evs], ["a", "b"])

    def test_concurrent_sends_of_one_id_append_once(self):
        c = self.c
        s = unique("race")
        results = []
        lock = threading.Lock()
        body = [ev(1, id="racer")]

        def send(nid):
            st, _, r = c.append(nid, s, body)
            with lock:
                results.append((st, r))

        threads = [threading.Thread(target=send, args=(c.ids()[i % 3],))
                   for i in range(12)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        self.assertEqual(len(results), 12)
        self.assertEqual({st for st, _ in results}, {201}, results)
        self.assertEqual(len({tuple(sorted(r.items())) for _, r in results}),
                         1, results)
        for nid in c.ids():
            self.assertEqual([e["id"] for e in c.read_all(nid, s)], ["racer"])

    def test_same_id_in_other_stream_is_a_new_event(self):
        c = self.c
        s1, s2 = unique("idA"), unique("idB")
        r1 = c.append_ok(c.leader(), s1, [ev(1, id="shared")])
        r2 = c.append_ok(c.leader(), s2, [ev(1, id="shared")])
        self.assertNotEqual(r1["position"], r2["position"])
        self.assertEqual(r2["last_seq"], 1)

    def test_expected_version(self):
        c = self.c
        s = unique("ver")
        leader = c.leader()
        fol = c.followers(leader)[0]
        # 0: the stream must be empty.
        st, _, r = c.append(fol, s, [ev(1)], expected_version=0)
        self.assertEqual(st, 201, r)
        self.assertEqual(r["last_seq"], 1)
        # 0 again: the stream is no longer empty.
        st, _, err = c.append(fol, s, [ev(2)], expected_version=0)
        self.assertEqual(st, 409, err)
        self.assertEqual(err["error"]["last_seq"], 1)
        self.assertIsInstance(err["error"]["code"], str)
        self.assertIsInstance(err["error"]["message"], str)
        # A match appends.
        st, _, r = c.append(leader, s, [ev(2), ev(3)], expected_version=1)
        self.assertEqual(st, 201, r)
        self.assertEqual((r["first_seq"], r["last_seq"]), (2, 3))
        # Too high and too low both conflict, via leader and follower.
        for nid, want in ((leader, 7), (fol, 2)):
            st, _, err = c.append(nid, s, [ev(9)], expected_version=want)
            self.assertEqual(st, 409, err)
            self.assertEqual(err["error"]["last_seq"], 3)
        for nid in c.ids():
            st, _, h = c.head(nid, s)
            self.assertEqual(h["last_seq"], 3, "a conflict appends nothing")
        st, _, r = c.append(fol, s, [ev(4)], expected_version=3)
        self.assertEqual(st, 201, r)
        self.assertEqual(r["last_seq"], 4)

    def test_expected_version_zero_on_fresh_stream_via_single_event(self):
        c = self.c
        s = unique("ver0")
        st, _, r = c.http("POST", c.followers()[0], f"/v1/streams/{s}/events",
                          body={"events": [ev(1)], "expected_version": 0})
        self.assertEqual(st, 201, r)
        st, _, err = c.http("POST", c.leader(), f"/v1/streams/{s}/events",
                            body={"events": [ev(1)], "expected_version": 0})
        self.assertEqual(st, 409, err)
        self.assertEqual(err["error"]["last_seq"], 1)


class CheckpointTest(ClusterTestCase):

    def test_put_and_get_checkpoints(self):
        c = self.c
        s = unique("cp")
        leader = c.leader()
        fol = c.followers(leader)
        path = f"/v1/streams/{s}/checkpoints/reader-1"
        st, _, r = c.http("PUT", fol[0], path, body={"value": {"seq": 17}})
        self.assertEqual(st, 200, r)
        self.assertEqual(r["value"], {"seq": 17})
        for nid in c.ids():
            st, _, g = c.get(nid, path)
            self.assertEqual(st, 200, g)
            self.assertEqual(g["value"], {"seq": 17}, f"node {nid}")
            self.assertEqual(g["stream"], s)
            self.assertEqual(g["name"], "reader-1")
        # Overwrite through the leader with another JSON type.
        st, _, r = c.http("PUT", leader, path, body={"value": [1, "two", None]})
        self.assertEqual(st, 200, r)
        for nid in c.ids():
            st, _, g = c.get(nid, path)
            self.assertEqual(g["value"], [1, "two", None], f"node {nid}")
        # A second name on the same stream is independent.
        path2 = f"/v1/streams/{s}/checkpoints/reader-2"
        st, _, r = c.http("PUT", fol[1], path2, body={"value": 5})
        self.assertEqual(st, 200, r)
        st, _, g = c.get(fol[0], path2)
        self.assertEqual(g["value"], 5)
        st, _, g = c.get(fol[0], path)
        self.assertEqual(g["value"], [1, "two", None])

    def test_missing_checkpoint_is_404(self):
        c = self.c
        s = unique("cpmiss")
        for nid in c.ids():
            st, _, err = c.get(nid, f"/v1/streams/{s}/checkpoints/nope")
            self.assertEqual(st, 404, err)
            self.assertIn("code", err["error"])
            self.assertIn("message", err["error"])


class LongPollTest(ClusterTestCase):

    def inflight(self, nid):
        st, _, text = self.c.get(nid, "/metrics")
        m = re.search(rb"^ledger_http_inflight (\d+)", text, re.M)
        return int(m.group(1)) if m else None

    def test_long_poll_on_follower_returns_on_append(self):
        c = self.c
        s = unique("poll")
        leader = c.leader()
        fol = c.followers(leader)[0]
        c.append_ok(leader, s, [ev(1)])
        c.wait_caught_up(fol)
        base = self.inflight(fol)
        self.assertIsNotNone(base, "/metrics has ledger_http_inflight")
        out = {}

        def poll():
            t0 = time.monotonic()
            try:
                out["resp"] = c.read(fol, s, from_seq=2, wait_ms=30000,
                                     timeout=120)
            except Exception as e:  # noqa: BLE001 - reported below
                out["exc"] = e
            out["elapsed"] = time.monotonic() - t0

        t = threading.Thread(target=poll, daemon=True)
        t.start()
        # The poll is parked on the follower once its request is in flight
        # (this /metrics request counts itself too).
        wait_until(lambda: self.inflight(fol) >= base + 1, timeout=20,
                   msg="the long poll to be in flight")
        self.assertTrue(t.is_alive(), f"poll returned early: {out}")
        t_append = time.monotonic()
        r = c.append_ok(c.followers(leader)[1], s, [ev(2, id="wake")])
        t.join(60)
        self.assertFalse(t.is_alive(), "long poll did not return")
        self.assertNotIn("exc", out)
        st, _, body = out["resp"]
        self.assertEqual(st, 200, body)
        self.assertEqual([e["seq"] for e in body["events"]], [2])
        self.assertEqual(body["events"][0]["id"], "wake")
        self.assertEqual(body["events"][0]["hash"], r["hash"])
        # It answered promptly after the append, long before wait_ms.
        self.assertLess(time.monotonic() - t_append, 15)
        self.assertLess(out["elapsed"], 29)

    def test_long_poll_on_a_new_stream(self):
        c = self.c
        s = unique("pollnew")
        leader = c.leader()
        base = self.inflight(leader)
        out = {}

        def poll():
            out["resp"] = c.read(leader, s, from_seq=1, wait_ms=30000,
                                 consistency="any", timeout=120)

        t = threading.Thread(target=poll, daemon=True)
        t.start()
        wait_until(lambda: self.inflight(leader) >= base + 1, timeout=20,
                   msg="the long poll to be in flight")
        c.append_ok(c.followers(leader)[0], s, [ev(1, id="first")])
        t.join(60)
        self.assertFalse(t.is_alive())
        st, _, body = out["resp"]
        self.assertEqual(st, 200, body)
        self.assertEqual([e["id"] for e in body["events"]], ["first"])

    def test_long_poll_times_out_empty(self):
        c = self.c
        s = unique("pollto")
        c.append_ok(c.leader(), s, [ev(1)])
        fol = c.followers()[0]
        t0 = time.monotonic()
        st, _, body = c.read(fol, s, from_seq=2, wait_ms=1500, timeout=60)
        elapsed = time.monotonic() - t0
        self.assertEqual(st, 200, body)
        self.assertEqual(body["events"], [])
        self.assertEqual(body["last_seq"], 1)
        self.assertGreaterEqual(elapsed, 1.4, "it waited for wait_ms")

    def test_long_poll_longer_than_the_forward_timeout(self):
        # consistency=leader on a follower is forwarded; a wait_ms beyond
        # the 10 s forwarding timeout must still long-poll to the end.
        c = self.c
        s = unique("pollfwd")
        c.append_ok(c.leader(), s, [ev(1)])
        fol = c.followers()[0]
        t0 = time.monotonic()
        st, _, body = c.read(fol, s, from_seq=2, wait_ms=12000,
                             consistency="leader", timeout=120)
        elapsed = time.monotonic() - t0
        self.assertEqual(st, 200, body)
        self.assertEqual(body["events"], [])
        self.assertGreaterEqual(elapsed, 11.5)

    def test_long_poll_with_existing_events_returns_at_once(self):
        c = self.c
        s = unique("pollnow")
        c.append_ok(c.leader(), s, [ev(1), ev(2)])
        t0 = time.monotonic()
        st, _, body = c.read(c.followers()[0], s, from_seq=2, wait_ms=20000,
                             timeout=60)
        self.assertEqual(st, 200, body)
        self.assertEqual([e["seq"] for e in body["events"]], [2])
        self.assertLess(time.monotonic() - t0, 15)


class MsgpackTest(ClusterTestCase):

    def test_msgpack_request_body(self):
        c = self.c
        s = unique("mp")
        body = msgpack.packb({"events": [
            {"type": "mp", "data": {"k": [1, 2.5, "x", None, True]},
             "id": "mp-1"}]})
        for nid in (c.leader(), c.followers()[0]):
            st, _, r = c.http("POST", nid, f"/v1/streams/{s}/events", raw=body,
                              headers={"Content-Type": "application/msgpack"})
            self.assertEqual(st, 201, r)
            self.assertEqual((r["first_seq"], r["last_seq"]), (1, 1),
                             "the retry via a follower is deduplicated")
        evs = c.read_all(c.followers()[1], s)
        self.assertEqual(len(evs), 1)
        self.assertEqual(evs[0]["data"], {"k": [1, 2.5, "x", None, True]})
        self.assertEqual(evs[0]["type"], "mp")
        self.assertEqual(evs[0]["id"], "mp-1")

    def test_msgpack_response(self):
        c = self.c
        s = unique("mpresp")
        hdr = {"Accept": "application/msgpack"}
        for nid in (c.leader(), c.followers()[0]):
            st, h, r = c.http("POST", nid, f"/v1/streams/{s}/events",
                              body={"events": [ev(nid)]}, headers=hdr)
            self.assertEqual(st, 201)
            self.assertIn("msgpack", h["content-type"])
            self.assertIsInstance(r, dict, "decoded as MessagePack")
            self.assertEqual(r["stream"], s)
        for nid in c.ids():
            st, h, r = c.read(nid, s, headers=hdr)
            self.assertEqual(st, 200)
            self.assertIn("msgpack", h["content-type"])
            self.assertEqual([e["seq"] for e in r["events"]], [1, 2])
            self.assertEqual(r["events"][0]["data"]["i"], c.leader())
        # Errors follow Accept too.
        st, h, r = c.http("POST", c.leader(), f"/v1/streams/{s}/events",
                          body={"events": []}, headers=hdr)
        self.assertEqual(st, 400)
        self.assertIn("msgpack", h["content-type"])
        self.assertIn("code", r["error"])

    def test_msgpack_both_ways_checkpoint(self):
        c = self.c
        s = unique("mpcp")
        st, _, r = c.http(
            "PUT", c.followers()[0], f"/v1/streams/{s}/checkpoints/c",
            raw=msgpack.packb({"value": {"pos": 3}}),
            headers={"Content-Type": "application/msgpack",
                     "Accept": "application/msgpack"})
        self.assertEqual(st, 200, r)
        st, h, g = c.get(c.followers()[1], f"/v1/streams/{s}/checkpoints/c",
                         headers={"Accept": "application/msgpack"})
        self.assertEqual(st, 200)
        self.assertIn("msgpack", h["content-type"])
        self.assertEqual(g["value"], {"pos": 3})


class ClusterEndpointsTest(ClusterTestCase):

    def test_health(self):
        c = self.c
        for nid in c.ids():
            st, h, b = c.get(nid, "/health")
            self.assertEqual(st, 200, b)
            self.assertEqual(b["status"], "ok")
            self.assertIn("json", h["content-type"])
            st, _, b = c.get(nid, "/health?caught_up=1&timeout_ms=10000")
            self.assertEqual(st, 200, b)
            self.assertEqual(b["status"], "ok")

    def test_metrics(self):
        c = self.c
        s = unique("met")
        leader = c.leader()
        c.append_ok(leader, s, [ev(1)])
        names = ["ledger_http_requests_total", "ledger_append_latency_seconds_bucket",
                 "ledger_raft_term", "ledger_raft_commit_index",
                 "ledger_raft_applied_index", "ledger_raft_leader_changes_total"]
        for nid in c.ids():
            st, h, text = c.get(nid, "/metrics")
            self.assertEqual(st, 200)
            self.assertIn("text/plain", h["content-type"])
            text = text.decode()
            for name in names:
                self.assertRegex(text, rf"(?m)^{name}(\{{[^}}]*\}})? [0-9.e+]+$",
                                 f"node {nid} /metrics lacks {name}")
            term = int(re.search(r"(?m)^ledger_raft_term (\d+)", text).group(1))
            self.assertGreaterEqual(term, 1)
            commit = int(re.search(r"(?m)^ledger_raft_commit_index (\d+)",
                                   text).group(1))
            self.assertGreaterEqual(commit, 1)
            self.assertRegex(text, r"(?m)^ledger_store_failed 0$")
        # The leader answered our append: its latency histogram counted it.
        st, _, text = c.get(leader, "/metrics")
        m = re.search(rb'(?m)^ledger_append_latency_seconds_bucket\{le="\+Inf"\} (\d+)',
                      text)
        self.assertIsNotNone(m)
        self.assertGreaterEqual(int(m.group(1)), 1)
        self.assertRegex(text.decode(),
                         r'ledger_http_requests_total\{[^}]*route="append"'
                         r'[^}]*status="201"[^}]*\} [1-9]')

    def test_keep_alive_connection_serves_many_requests(self):
        import http.client
        c = self.c
        s = unique("ka")
        nid = c.followers()[0]
        host, port = c.addr(nid).split(":")
        conn = http.client.HTTPConnection(host, int(port), timeout=60)
        try:
            seen = []
            for i in range(10):
                for method, path, body, want in (
                        ("POST", f"/v1/streams/{s}/events",
                         json.dumps({"type": "t", "data": i}), 201),
                        ("GET", f"/v1/streams/{s}/events?from={i + 1}", None,
                         200),
                        ("GET", "/v1/nothing", None, 404),
                        ("POST", f"/v1/streams/{s}/events", "{bad", 400),
                        ("DELETE", f"/v1/streams/{s}/events", None, 405),
                        ("GET", "/health", None, 200)):
                    conn.request(method, path, body=body,
                                 headers={"Content-Type": "application/json"})
                    resp = conn.getresponse()
                    data = resp.read()
                    self.assertEqual(resp.status, want,
                                     f"{method} {path}: {data!r}")
                    seen.append(resp.status)
            self.assertEqual(len(seen), 60)
        finally:
            conn.close()
        st, _, h = c.head(nid, s)
        self.assertEqual(h["last_seq"], 10)

    def test_cluster_view(self):
        c = self.c
        s = unique("cl")
        c.append_ok(c.leader(), s, [ev(1)])
        leader = c.leader()
        views = {}
        for nid in c.ids():
            v = c.cluster_info(nid)
            views[nid] = v
            for k in ("cluster_id", "leader_id", "term", "commit_index",
                      "members"):
                self.assertIn(k, v, f"node {nid}")
            self.assertEqual(v["leader_id"], leader)
            self.assertEqual(len(v["members"]), 3)
            self.assertEqual(sorted(m["id"] for m in v["members"]), [1, 2, 3])
            leaders = [m for m in v["members"] if m["state"] == "leader"]
            self.assertEqual([m["id"] for m in leaders], [leader])
            for m in v["members"]:
                for k in ("id", "raft_addr", "api_addr", "role", "state",
                          "match_index", "applied_index", "lag_entries",
                          "lag_ms", "last_contact_ms"):
                    self.assertIn(k, m, f"member {m.get('id')} on node {nid}")
                self.assertEqual(m["role"], "voter")
                self.assertIn(m["state"], ("leader", "follower", "candidate",
                                           "unreachable"))
                node = c.nodes[m["id"]]
                self.assertEqual(m["raft_addr"], node.raft_addr)
                self.assertEqual(m["api_addr"], node.api_addr)
        self.assertEqual(len({v["term"] for v in views.values()}), 1)
        # Every node reports the same, non-empty cluster id (a new leader
        # proposes it right after the first election, so allow it a moment).
        def same_id():
            ids = {c.cluster_info(n)["cluster_id"] for n in c.ids()}
            return len(ids) == 1 and "" not in ids and ids
        ids = wait_until(same_id, timeout=20, msg="one non-empty cluster_id")
        self.assertIsInstance(next(iter(ids)), str)
        # Local views (not forwarded to the leader) agree too.
        wait_until(lambda: {c.cluster_info(n, local=True)["cluster_id"]
                            for n in c.ids()} == ids, timeout=20,
                   msg="every node's local view to show the cluster id")

    def test_verify_agrees_on_all_nodes(self):
        c = self.c
        s = unique("ver")
        for i in range(3):
            c.append_ok(c.ids()[i], s, [ev(i), ev(i + 10)])
        for nid in c.ids():
            c.wait_caught_up(nid)
        v = c.wait_verify_agree()
        self.assertTrue(v["ok"])
        self.assertIsNone(v["first_bad_position"])
        self.assertRegex(v["hash"], HEX64)
        # The verified hash is the hash of the last event applied.
        last = c.read_all(c.leader(), s)[-1]
        self.assertGreaterEqual(v["applied_position"], last["position"])
        if v["applied_position"] == last["position"]:
            self.assertEqual(v["hash"], last["hash"])


class QueueBoundTest(ClusterTestCase):
    """--max-queue 1: a burst of concurrent appends gets 429/503 with
    Retry-After for what does not fit, never an error or a lost event."""
    EXTRA_ARGS = ("--max-queue", "1")

    def burst(self, nid, s, n, tag):
        """Send n appends at once on n connections; returns
        [(id, status, headers, body)]."""
        import http.client
        import json as _json
        host, port = self.c.addr(nid).split(":")
        conns = []
        for i in range(n):
            conn = http.client.HTTPConnection(host, int(port), timeout=120)
            conn.connect()
            conns.append(conn)
        bodies = [_json.dumps({"events": [ev(i, id=f"{tag}-{i}")]}).encode()
                  for i in range(n)]
        for conn, body in zip(conns, bodies):
            conn.request("POST", f"/v1/streams/{s}/events", body=body,
                         headers={"Content-Type": "application/json"})
        out = []
        for i, conn in enumerate(conns):
            resp = conn.getresponse()
            data = resp.read()
            out.append((f"{tag}-{i}", resp.status,
                        {k.lower(): v for k, v in resp.getheaders()},
                        _json.loads(data) if data else None))
            conn.close()
        return out

    def test_burst_over_the_queue_bound(self):
        c = self.c
        s = unique("burst")
        leader = c.leader()
        acked = {}
        rejected = []
        for round_ in range(3):
            for eid, st, h, b in self.burst(leader, s, 64, f"r{round_}"):
                self.assertIn(st, (201, 429, 503), b)
                if st == 201:
                    acked[eid] = b
                else:
                    self.assertIn("retry-after", h, f"{st} without Retry-After")
                    self.assertIn("code", b["error"])
                    rejected.append(eid)
            if rejected:
                break
        self.assertTrue(rejected, "64 simultaneous appends with --max-queue 1 "
                        "were all accepted")
        self.assertTrue(acked, "nothing was accepted")
        # Rejected appends did nothing; retrying them (same ids) works.
        evs = c.read_all(c.followers(leader)[0], s)
        self.assertEqual(sorted(e["id"] for e in evs), sorted(acked))
        for e in evs:
            self.assertEqual(e["hash"], acked[e["id"]]["hash"])
        for eid in rejected:
            i = int(eid.split("-")[1])
            acked[eid] = c.append_retry(s, [ev(i, id=eid)], ids=[leader])
        for nid in c.ids():
            evs = c.read_all(nid, s)
            self.assertEqual(sorted(e["id"] for e in evs), sorted(acked))
            self.assertEqual([e["seq"] for e in evs],
                             list(range(1, len(acked) + 1)))


if __name__ == "__main__":
    unittest.main()
