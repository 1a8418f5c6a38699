"""Bad requests get a fitting 4xx with an error body and change nothing;
bearer-token authentication."""
import json
import os
import unittest

import msgpack

from harness import ClusterTestCase, ledgerctl, unique


class BadInputTest(ClusterTestCase):
    """One cluster with the default --max-body (1 MiB)."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        # A stream with one event: every bad request below targets it (or a
        # fresh one) and must leave it as it is.
        cls.s = unique("keep")
        cls.c.append_ok(cls.c.leader(), cls.s, [{"type": "t", "data": 1}])

    def assertError(self, resp, statuses, msg=None):
        st, h, body = resp
        if isinstance(statuses, int):
            statuses = (statuses,)
        self.assertIn(st, statuses, msg or body)
        self.assertIn("json", h.get("content-type", ""), body)
        self.assertIsInstance(body, dict, body)
        self.assertIn("error", body)
        self.assertIsInstance(body["error"].get("code"), str, body)
        self.assertTrue(body["error"]["code"])
        self.assertIsInstance(body["error"].get("message"), str, body)
        self.assertTrue(body["error"]["message"])
        return body

    def assertUnchanged(self):
        """The shared stream still has exactly its one event, everywhere."""
        for nid in self.c.ids():
            st, _, h = self.c.head(nid, self.s)
            self.assertEqual(st, 200, h)
            self.assertEqual(h["last_seq"], 1, f"node {nid}")

    def assertNoStream(self, name):
        for nid in self.c.ids():
            st, _, b = self.c.read(nid, name)
            self.assertEqual(st, 200, b)
            self.assertEqual(b["last_seq"], 0, f"{name} on node {nid}")
            self.assertEqual(b["events"], [])

    def post(self, nid, body=None, raw=None, ctype="application/json",
             stream=None):
        stream = stream or self.s
        return self.c.http("POST", nid, f"/v1/streams/{stream}/events",
                           body=body, raw=raw, headers={"Content-Type": ctype})

    # ---- bodies --------------------------------------------------------

    def test_malformed_json(self):
        for nid in self.c.ids():  # leader and followers (forwarded)
            for raw in (b"{bad", b'{"events": [', b"", b"\xff\xfe",
                        b'{"events": [{"type": "t"}]} trailing'):
                self.assertError(self.post(nid, raw=raw), 400, f"{raw!r}")
        self.assertUnchanged()

    def test_invalid_utf8_and_unsupported_json(self):
        fresh = unique("utf")
        for raw in (b'{"type":"\xe9"}', b'{"type":"t","data":"\xff\xfe"}',
                    b'{"type":"a","type":"b"}',
                    b'{"type":"t","data":' + b"[" * 5000 + b"]" * 5000 + b"}"):
            self.assertError(self.post(self.c.leader(), raw=raw, stream=fresh),
                             400, raw[:40])
        self.assertNoStream(fresh)

    def test_msgpack_without_json_equivalent(self):
        fresh = unique("mpbin")
        for body in ({"type": "t", "data": b"\x00\x01"},
                     {"type": "t", "data": {1: 2}},
                     {"type": b"t"}):
            self.assertError(self.post(self.c.leader(),
                                       raw=msgpack.packb(body, use_bin_type=True),
                                       ctype="application/msgpack",
                                       stream=fresh), 400, body)
        self.assertNoStream(fresh)

    def test_malformed_msgpack(self):
        for nid in self.c.ids():
            for raw in (b"\xc1", b"\x81\xa6events", b"\x92\x01"):
                self.assertError(
                    self.post(nid, raw=raw, ctype="application/msgpack"), 400,
                    f"{raw!r}")
        self.assertUnchanged()

    def test_body_not_an_object(self):
        for body in ([{"type": "t"}], "events", 42, None):
            self.assertError(self.post(self.c.leader(), body=body), 400,
                             f"{body!r}")
        self.assertUnchanged()

    def test_wrong_field_types(self):
        bad = [
            {"events": {"type": "t"}},
            {"events": "t"},
            {"events": [{"type": 5}]},
            {"events": [{"type": None}]},
            {"events": [{"type": ["t"]}]},
            {"events": [{"type": ""}]},
            {"events": [{"data": 1}]},
            {"events": ["t"]},
            {"events": [{"type": "t", "id": 7}]},
            {"events": [{"type": "t", "id": {"k": 1}}]},
            {"events": [{"type": "t", "id": ""}]},
            {"events": [{"type": "t"}], "expected_version": -1},
            {"events": [{"type": "t"}], "expected_version": "1"},
            {"events": [{"type": "t"}], "expected_version": 1.5},
            {"events": [{"type": "t"}], "expected_version": True},
            {"events": [{"type": "t"}, {"type": 1}]},
            {"events": [{"type": "t", "id": "same"},
                        {"type": "t", "id": "same"}]},
        ]
        leader = self.c.leader()
        fol = self.c.followers(leader)[0]
        for i, body in enumerate(bad):
            nid = leader if i % 2 else fol
            self.assertError(self.post(nid, body=body), 400, json.dumps(body))
        self.assertUnchanged()
        # Same on a fresh stream: nothing is created.
        fresh = unique("fresh")
        for body in bad:
            self.assertError(self.post(fol, body=body, stream=fresh), 400)
        self.assertNoStream(fresh)

    def test_wrong_field_types_msgpack(self):
        fresh = unique("freshmp")
        for body in ({"events": [{"type": 5}]},
                     {"events": [{"type": "t"}], "expected_version": -3},
                     {"events": [{"type": "t"}], "expected_version": "x"},
                     {"events": [{"type": "t", "id": 1}]}):
            self.assertError(self.post(self.c.leader(), raw=msgpack.packb(body),
                                       ctype="application/msgpack",
                                       stream=fresh), 400, body)
        self.assertNoStream(fresh)

    def test_empty_events_array(self):
        fresh = unique("empty")
        for nid in self.c.ids():
            self.assertError(self.post(nid, body={"events": []}), 400)
            self.assertError(self.post(nid, body={"events": []}, stream=fresh),
                             400)
            self.assertError(self.post(nid, body={}), 400)
        self.assertUnchanged()
        self.assertNoStream(fresh)

    def test_repeated_id_in_one_request(self):
        """An id twice in one request is refused as a whole, naming the
        first repeat and what it repeats; 10,000 ids are checked at once
        (sorted, not pairwise)."""
        fresh = unique("dupid")
        ids = ["a", "b", "c", "b", "a", "c"]
        body = {"events": [{"type": "t", "id": i} for i in ids]}
        b = self.assertError(self.post(self.c.leader(), body=body,
                                       stream=fresh), 400)
        self.assertEqual(b["error"]["code"], "bad_event")
        self.assertIn("events[3].id 'b' repeats events[1].id",
                      b["error"]["message"])
        many = [{"type": "t", "id": f"id-{i:06d}-{'x' * 40}"}
                for i in range(10000)]
        many[9999]["id"] = many[4321]["id"]
        b = self.assertError(self.post(self.c.leader(), body={"events": many},
                                       stream=fresh), 400)
        self.assertIn("events[9999].id", b["error"]["message"])
        self.assertIn("repeats events[4321].id", b["error"]["message"])
        self.assertNoStream(fresh)

    def test_type_and_id_too_long(self):
        fresh = unique("long")
        for body in ({"events": [{"type": "t" * 256}]},
                     {"events": [{"type": "t", "id": "i" * 256}]}):
            self.assertError(self.post(self.c.leader(), body=body,
                                       stream=fresh), 400)
        self.assertNoStream(fresh)

    def test_body_over_one_mib_is_413(self):
        fresh = unique("big")
        big = {"events": [{"type": "t", "data": "x" * (1024 * 1024 + 10)}]}
        for nid in self.c.ids():
            try:
                resp = self.post(nid, body=big, stream=fresh)
            except (ConnectionResetError, BrokenPipeError) as e:
                self.fail(f"node {nid} reset the connection instead of "
                          f"answering 413: {e!r}")
            self.assertError(resp, 413)
        self.assertNoStream(fresh)
        # Just under the limit is fine.
        ok = {"events": [{"type": "t", "data": "y" * (1024 * 1024 - 200)}]}
        st, _, r = self.post(self.c.followers()[0], body=ok, stream=fresh)
        self.assertEqual(st, 201, r)
        self.assertEqual(r["last_seq"], 1)

    # ---- stream names ---------------------------------------------------

    def test_stream_name_too_long(self):
        long_name = "a" * 256
        for nid in self.c.ids():
            resp = self.c.http("POST", nid, f"/v1/streams/{long_name}/events",
                               body={"type": "t"})
            self.assertError(resp, 400)
            self.assertError(self.c.read(nid, long_name), 400)
        st, _, lst = self.c.get(self.c.leader(), "/v1/streams")
        self.assertNotIn(long_name, [x["stream"] for x in lst["streams"]])
        # 255 bytes is the limit, and allowed.
        ok_name = "b" * 255
        st, _, r = self.c.http("POST", self.c.leader(),
                               f"/v1/streams/{ok_name}/events",
                               body={"type": "t"})
        self.assertEqual(st, 201, r)
        self.assertEqual(r["stream"], ok_name)

    def test_stream_name_bad_characters(self):
        for enc in ("a%20b", "a%2Fb", "%C3%A4", "a%00b", "a%22b", "a%3Fb",
                    "a*b", "a%2Bb", "a%40b"):
            for nid in self.c.ids():
                resp = self.c.http("POST", nid, f"/v1/streams/{enc}/events",
                                   body={"type": "t"})
                self.assertError(resp, (400, 404), enc)
                resp = self.c.get(nid, f"/v1/streams/{enc}/events")
                self.assertError(resp, (400, 404), enc)
        st, _, lst = self.c.get(self.c.leader(), "/v1/streams")
        self.assertEqual(st, 200)
        for s in lst["streams"]:
            self.assertRegex(s["stream"], r"^[A-Za-z0-9._:-]{1,255}$")

    def test_empty_stream_name_post(self):
        # Was a bug: empty path segments were dropped, so this was routed as
        # /v1/streams/events (405, Allow: GET).
        resp = self.c.http("POST", self.c.leader(), "/v1/streams//events",
                           body={"type": "t"})
        self.assertError(resp, (400, 404))

    def test_empty_stream_name_get(self):
        # Was a bug: served as GET /v1/streams/events, i.e. 200 with the
        # head of a stream named "events".
        self.c.append_ok(self.c.leader(), "events", [{"type": "t"}])
        resp = self.c.get(self.c.leader(), "/v1/streams//events")
        self.assertError(resp, (400, 404))

    def test_empty_stream_name_is_not_appended(self):
        # Whatever the status, an empty stream name never creates anything.
        for path in ("/v1/streams//events", "/v1/streams/%20/events"):
            st, _, _ = self.c.http("POST", self.c.leader(), path,
                                   body={"type": "t"})
            self.assertGreaterEqual(st, 400, path)
            self.assertLess(st, 500, path)
        st, _, lst = self.c.get(self.c.leader(), "/v1/streams")
        self.assertNotIn("", [x["stream"] for x in lst["streams"]])
        self.assertNotIn(" ", [x["stream"] for x in lst["streams"]])

    # ---- routes and methods --------------------------------------------

    def test_unknown_route_is_404(self):
        for path in ("/", "/v2/streams", "/v1", "/v1/nothing",
                     f"/v1/streams/{self.s}/nothing",
                     f"/v1/streams/{self.s}/events/extra",
                     "/v1/streams/a/b/c/d/e/f/g/h/i", "/healthz"):
            for method in ("GET", "POST"):
                self.assertError(self.c.http(method, self.c.leader(), path,
                                             body={}), 404, f"{method} {path}")
        self.assertUnchanged()

    def test_wrong_method_is_405(self):
        s = self.s
        cases = [("DELETE", f"/v1/streams/{s}/events"),
                 ("PUT", f"/v1/streams/{s}/events"),
                 ("PATCH", f"/v1/streams/{s}/events"),
                 ("PUT", "/v1/cluster"),
                 ("DELETE", "/v1/cluster"),
                 ("POST", "/v1/streams"),
                 ("POST", f"/v1/streams/{s}"),
                 ("DELETE", f"/v1/streams/{s}"),
                 ("POST", f"/v1/streams/{s}/checkpoints/c"),
                 ("POST", "/v1/verify"),
                 ("POST", "/health"),
                 ("PUT", "/metrics")]
        for nid in (self.c.leader(), self.c.followers()[0]):
            for method, path in cases:
                st, h, body = self.c.http(method, nid, path, body={"type": "t"})
                self.assertEqual(st, 405, f"{method} {path}: {body}")
                self.assertIn("allow", h, f"{method} {path}")
                self.assertNotIn(method, h["allow"])
                self.assertIn("code", body["error"])
        self.assertUnchanged()

    # ---- query parameters -------------------------------------------------

    def test_bad_query_parameters_are_400(self):
        s = self.s
        for nid in self.c.ids():
            for q in ("from=abc", "from=-1", "from=1.5", "from=", "from=0x10",
                      "limit=ten", "limit=-5", "limit=", "wait_ms=soon",
                      "wait_ms=-100", "from=99999999999999999999999",
                      "consistency=eventual", "consistency=", "consistency=STRONG"):
                self.assertError(
                    self.c.get(nid, f"/v1/streams/{s}/events?{q}"), 400, q)
            self.assertError(self.c.get(nid, f"/v1/streams/{s}?consistency=x"),
                             400)
            self.assertError(self.c.get(nid, "/v1/streams?consistency=x"), 400)
            self.assertError(
                self.c.get(nid, f"/v1/streams/{s}/checkpoints/c?consistency=x"),
                400)
            self.assertError(
                self.c.get(nid, "/health?caught_up=1&timeout_ms=x"), 400)

    def test_bad_checkpoint_requests(self):
        s = unique("cpbad")
        leader = self.c.leader()
        self.assertError(self.c.http("PUT", leader,
                                     f"/v1/streams/{s}/checkpoints/c",
                                     raw=b"{nope",
                                     headers={"Content-Type": "application/json"}),
                         400)
        self.assertError(self.c.http("PUT", leader,
                                     f"/v1/streams/{s}/checkpoints/c", raw=b""),
                         400)
        self.assertError(self.c.http("PUT", leader,
                                     f"/v1/streams/{s}/checkpoints/a%20b",
                                     body={"value": 1}), (400, 404))
        st, _, b = self.c.get(leader, f"/v1/streams/{s}/checkpoints/c")
        self.assertEqual(st, 404, b)


class TokenTest(ClusterTestCase):
    TOKEN = "s3cret-token-for-tests"

    def test_requests_without_or_with_wrong_token_are_401(self):
        c = self.c
        s = unique("tok")
        for nid in c.ids():
            for hdrs in ({}, {"Authorization": "Bearer wrong"},
                         {"Authorization": f"Bearer {self.TOKEN}x"},
                         {"Authorization": f"Basic {self.TOKEN}"},
                         {"Authorization": self.TOKEN},
                         {"Authorization": "Bearer "}):
                for method, path, body in (
                        ("POST", f"/v1/streams/{s}/events", {"type": "t"}),
                        ("GET", f"/v1/streams/{s}/events", None),
                        ("GET", "/v1/streams", None),
                        ("GET", "/v1/cluster", None),
                        ("GET", "/v1/verify", None),
                        ("PUT", f"/v1/streams/{s}/checkpoints/c", {"value": 1}),
                        ("GET", f"/v1/streams/{s}/checkpoints/c", None)):
                    st, _, b = c.http(method, nid, path, body=body,
                                      headers=hdrs, auth=False)
                    self.assertEqual(st, 401, f"{method} {path} {hdrs}: {b}")
                    self.assertIn("code", b["error"])
                    self.assertIn("message", b["error"])
        # Nothing was written.
        st, _, b = c.read(c.leader(), s)
        self.assertEqual(st, 200, b)
        self.assertEqual(b["last_seq"], 0)

    def test_requests_with_token_work(self):
        c = self.c
        s = unique("tokok")
        leader = c.leader()
        for nid in [leader] + c.followers(leader):  # forwarding keeps auth
            st, _, r = c.append(nid, s, [{"type": "t", "data": nid}])
            self.assertEqual(st, 201, r)
        for nid in c.ids():  # strong reads through followers keep auth
            st, _, b = c.read(nid, s)
            self.assertEqual(st, 200, b)
            self.assertEqual(b["last_seq"], 3)
            st, _, b = c.get(nid, "/v1/cluster")
            self.assertEqual(st, 200, b)
            self.assertEqual(b["leader_id"], leader)
        st, _, b = c.http("PUT", c.followers()[0],
                          f"/v1/streams/{s}/checkpoints/c", body={"value": 9})
        self.assertEqual(st, 200, b)
        st, _, b = c.get(c.followers()[1], f"/v1/streams/{s}/checkpoints/c")
        self.assertEqual((st, b["value"]), (200, 9))

    def test_health_and_metrics_need_no_token(self):
        for nid in self.c.ids():
            st, _, b = self.c.get(nid, "/health", auth=False)
            self.assertEqual(st, 200, b)
            self.assertEqual(b["status"], "ok")
            st, _, b = self.c.get(nid, "/health?caught_up=1&timeout_ms=5000",
                                  auth=False)
            self.assertEqual(st, 200, b)
            st, _, text = self.c.get(nid, "/metrics", auth=False)
            self.assertEqual(st, 200)
            self.assertIn(b"ledger_raft_term", text)

    def test_ledgerctl_with_token(self):
        c = self.c
        s = unique("tokctl")
        eps = ",".join(c.addr(n) for n in c.ids())
        env = {"LEDGER_ENDPOINTS": eps, "LEDGER_TOKEN": self.TOKEN}
        r = ledgerctl("append", s, "--id", "k1", '{"a":1}', env=env)
        self.assertEqual(r.returncode, 0, r.stderr)
        r = ledgerctl("--json", "read", s, env=env)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn('"k1"', r.stdout)
        r = ledgerctl("status", env=env)
        self.assertEqual(r.returncode, 0, r.stderr)
        r = ledgerctl("verify", env=env)
        self.assertEqual(r.returncode, 0, r.stderr + r.stdout)
        # --token-file works the same way.
        r = ledgerctl("--token-file", c.token_file, "--endpoints", eps,
                      "read", s)
        self.assertEqual(r.returncode, 0, r.stderr)
        # Without the token ledgerctl fails with one line on stderr.
        r = ledgerctl("append", s, '{"a":2}', env={"LEDGER_ENDPOINTS": eps})
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        self.assertEqual(len(r.stderr.strip().splitlines()), 1, r.stderr)
        r = ledgerctl("read", s, env={"LEDGER_ENDPOINTS": eps,
                                      "LEDGER_TOKEN": "wrong"})
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        st, _, h = c.head(c.leader(), s)
        self.assertEqual(h["last_seq"], 1, "the unauthorized append did nothing")


if __name__ == "__main__":
    unittest.main()
