"""ledgerctl bench as a regression guard that cannot flake: short runs
against a test cluster that check the tool works and reports sane figures
(exit 0, no errors, non-zero throughput, every acknowledged append stored).
The performance targets live in `make bench` (bench/vs-etcd), not here."""
import json
import re
import unittest

from harness import ClusterTestCase, ledgerctl, unique


class BenchTest(ClusterTestCase):

    def bench(self, *args, endpoints=None):
        eps = endpoints or ",".join(self.c.addr(i) for i in self.c.ids())
        p = ledgerctl("--json", "--endpoints", eps, "bench", *args)
        self.assertEqual(p.returncode, 0, p.stderr)
        out = json.loads(p.stdout)
        self.assertEqual(out["errors"], 0, out)
        self.assertGreater(out["requests"], 0, out)
        self.assertGreater(out["events_per_s"], 0, out)
        self.assertGreater(out["requests_per_s"], 0, out)
        lat = out["latency_ms"]
        self.assertTrue(0 < lat["p50"] <= lat["p99"] <= lat["p999"] <=
                        lat["max"], out)
        return out

    def total_events(self, prefix, n):
        total = 0
        for k in range(n):
            st, _, h = self.c.http("GET", self.c.leader(),
                                   f"/v1/streams/{prefix}-{k}")
            self.assertEqual(st, 200, h)
            total += h["last_seq"]
        return total

    def test_append_to_leader(self):
        prefix = unique("bl")
        out = self.bench("--clients", "8", "--duration", "2", "--stream",
                         prefix, "--streams", "3")
        self.assertEqual(out["mode"], "ledger-append")
        self.assertEqual(out["endpoints"], self.c.addr(self.c.leader()))
        self.assertEqual(out["events"], out["requests"])
        # Every acknowledged append is in the store (answers that came
        # after the deadline are stored but not counted).
        self.assertGreaterEqual(self.total_events(prefix, 3), out["events"])

    def test_spread_batches_through_followers(self):
        prefix = unique("bs")
        out = self.bench("--clients", "6", "--batch", "10", "--duration", "2",
                         "--spread", "--stream", prefix, "--streams", "2")
        self.assertEqual(len(out["endpoints"].split(",")), 3)
        self.assertEqual(out["events"], 10 * out["requests"])
        self.assertGreaterEqual(self.total_events(prefix, 2), out["events"])
        # Followers forwarded over keep-alive connections.
        forwarded = 0
        for nid in self.c.followers():
            st, _, text = self.c.http("GET", nid, "/metrics")
            self.assertEqual(st, 200)
            m = re.search(rb"^ledger_forwarded_total (\d+)", text, re.M)
            self.assertIsNotNone(m, text[:400])
            forwarded += int(m.group(1))
        self.assertGreater(forwarded, 0)

    def test_msgpack_bodies(self):
        prefix = unique("bm")
        out = self.bench("--clients", "2", "--batch", "20", "--duration", "1",
                         "--msgpack", "--stream", prefix, "--streams", "1")
        self.assertEqual(out["mode"], "ledger-append-msgpack")
        self.assertEqual(out["events"], 20 * out["requests"])
        self.assertGreaterEqual(self.total_events(prefix, 1), out["events"])

    def test_read_one_node(self):
        prefix = unique("br")
        self.bench("--clients", "2", "--batch", "50", "--duration", "1",
                   "--stream", prefix, "--streams", "1", "--events", "500")
        node = self.c.followers()[0]
        self.c.wait_caught_up(node)
        out = self.bench("--read", "--clients", "2", "--batch", "100",
                         "--duration", "2", "--stream", prefix, "--streams",
                         "1", endpoints=self.c.addr(node))
        self.assertEqual(out["mode"], "ledger-read")
        self.assertGreater(out["events"], 0)

    def test_events_bound_stops_early(self):
        prefix = unique("be")
        out = self.bench("--clients", "4", "--batch", "25", "--duration", "60",
                         "--stream", prefix, "--streams", "1", "--events",
                         "1000")
        self.assertGreaterEqual(out["events"], 1000)
        self.assertLess(out["duration_s"], 60)

    def test_big_batches(self):
        """Batches the size the bench sends with --batch: good, duplicate,
        bad and malformed, directly and through a follower."""
        c = self.c
        leader = c.leader()
        s = unique("bigbody")
        evs = [{"type": "t", "id": f"k{i}", "data": {"pad": "p" * 100}}
               for i in range(60)]
        st, _, r = c.http("POST", leader, f"/v1/streams/{s}/events",
                          body={"events": evs})
        self.assertEqual(st, 201, r)
        self.assertEqual((r["first_seq"], r["last_seq"]), (1, 60))
        st, _, r = c.http("POST", leader, f"/v1/streams/{s}/events",
                          body={"events": evs})
        self.assertEqual(st, 201, r)  # a duplicate: the original result
        self.assertEqual(r["last_seq"], 60)
        bad = evs + [{"type": "", "data": 1}]
        st, _, r = c.http("POST", leader, f"/v1/streams/{s}/events",
                          body={"events": bad})
        self.assertEqual(st, 400, r)
        self.assertEqual(r["error"]["code"], "bad_event")
        self.assertIn("events[60].type", r["error"]["message"])
        st, _, r = c.http("POST", leader, f"/v1/streams/{s}/events",
                          raw=b'{"events":[' + b" " * 5000 + b"}")
        self.assertEqual(st, 400, r)
        self.assertEqual(r["error"]["code"], "malformed_body")
        # Through a follower (forwarded as it is).
        st, _, r = c.http("POST", c.followers()[0],
                          f"/v1/streams/{s}/events",
                          body={"events": [dict(e, id=f"f{i}")
                                           for i, e in enumerate(evs)],
                                "expected_version": 60})
        self.assertEqual(st, 201, r)
        self.assertEqual(r["last_seq"], 120)

    def test_dead_endpoint_counted_and_retried(self):
        """Clients on an endpoint that refuses connections count errors and
        keep retrying; the others carry on; exit 0 since some succeeded."""
        from harness import free_ports
        dead = f"127.0.0.1:{free_ports(1)[0]}"
        eps = dead + "," + self.c.addr(self.c.leader())
        p = ledgerctl("--json", "--endpoints", eps, "bench", "--spread",
                      "--clients", "4", "--duration", "1")
        self.assertEqual(p.returncode, 0, p.stderr)
        out = json.loads(p.stdout)
        self.assertGreater(out["requests"], 0, out)
        self.assertGreater(out["errors"], 2, out)  # retried every 20 ms
        self.assertIn("refused", out["last_error"])

    def test_text_output_and_bad_usage(self):
        eps = ",".join(self.c.addr(i) for i in self.c.ids())
        p = ledgerctl("--endpoints", eps, "bench", "--clients", "2",
                      "--duration", "1")
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertRegex(p.stdout, r"throughput \d+ requests/s  \d+ events/s")
        self.assertRegex(p.stdout, r"p50 [\d.]+  p99 [\d.]+  p99\.9 [\d.]+")
        p = ledgerctl("--endpoints", eps, "bench", "--target", "nope")
        self.assertEqual(p.returncode, 2)
        p = ledgerctl("--endpoints", eps, "bench", "--read")
        self.assertEqual(p.returncode, 2)


class BenchQueueFullTest(ClusterTestCase):
    """A tiny write queue: the bench sees 429s (counted as rejected, not
    errors), and /metrics counts them."""
    EXTRA_ARGS = ("--max-queue", "1")

    def test_rejections_are_counted(self):
        leader = self.c.leader()
        p = ledgerctl("--json", "--endpoints", self.c.addr(leader), "bench",
                      "--clients", "32", "--duration", "2")
        self.assertEqual(p.returncode, 0, p.stderr)
        out = json.loads(p.stdout)
        self.assertEqual(out["errors"], 0, out)
        self.assertGreater(out["requests"], 0, out)
        st, _, text = self.c.http("GET", leader, "/metrics")
        self.assertEqual(st, 200)
        m = re.search(rb'^ledger_rejected_total\{reason="queue_full"\} (\d+)',
                      text, re.M)
        if out["rejected"] > 0:
            self.assertIsNotNone(m, text[:600])
            self.assertGreater(int(m.group(1)), 0)
            # A rejected client retries: every client got through, many
            # times over in 2 s.
            self.assertGreaterEqual(out["requests"], 32, out)


if __name__ == "__main__":
    unittest.main()
