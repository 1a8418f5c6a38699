"""Tokens with roles and rate limits (issue 14 points 4 and 6; the claims of
docs/security.md, "Threat model", name these tests).

- every role against every endpoint class, on the leader and on followers
  (403 forbidden where due, never 401 for a known token);
- the leader applies the client's role, not the forwarding node's;
- a rate-limited token gets 429 rate_limited with Retry-After while another
  token is unaffected; a request is charged once, on the node the client
  called, and a forged X-Ledger-Node-Auth does not avoid the charge;
- /metrics names tokens by NAME only, never a secret (nor do logs);
- SIGHUP reloads the token file; a file that does not parse is refused with
  its line number and the old tokens keep working;
- a file of one bare token still works and means admin;
- ledgerd refuses to start on a bad token file, naming the line.
"""
import os
import re
import signal
import subprocess
import tempfile
import unittest

from harness import (LEDGERD, Cluster, ClusterTestCase, HarnessTestCase,
                     free_ports, http_request, ledgerctl, unique, wait_until)

SECRETS = {
    "ops": "node-secret-0a1b2c",
    "root": "admin-secret-3d4e5f",
    "reader": "read-secret-6a7b8c",
    "writer": "write-secret-9d0e1f",
    "slow": "slow-secret-2a3b4c",
    "fast": "fast-secret-5d6e7f",
    "once": "once-secret-8a9b0c",
}

TOKEN_FILE = f"""# tokens for test_authz
ops    node  {SECRETS['ops']}
root   admin {SECRETS['root']}
reader read  {SECRETS['reader']}     # a comment after the fields
writer write {SECRETS['writer']}

slow   write {SECRETS['slow']} rate=0.5 burst=3
fast   write {SECRETS['fast']}
once   write {SECRETS['once']} rate=0.001 burst=3
"""


def bearer(name):
    return {"Authorization": f"Bearer {SECRETS[name]}"}


def metric(text, name, labels):
    """Value of one sample of /metrics text, or 0 when absent."""
    want = name + "{" + ",".join(f'{k}="{v}"' for k, v in labels) + "}"
    for line in text.splitlines():
        if line.startswith(want + " "):
            return float(line.split()[-1])
    return 0.0


class RolesTest(ClusterTestCase):
    """One 3-node cluster whose token file has every role."""

    TOKEN = SECRETS["root"]
    TOKEN_FILE = TOKEN_FILE

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.stream = unique("authz")
        cls.c.append_ok(cls.c.leader(), cls.stream, [{"type": "seed"}])

    def call(self, nid, name, method, path, body=None):
        hdrs = bearer(name) if name else {}
        st, h, b = self.c.http(method, nid, path, body=body, headers=hdrs,
                               auth=False)
        return st, h, b

    def endpoints(self):
        """(class, method, path, body): one request per endpoint class that
        does no harm when allowed."""
        s = self.stream
        return [
            ("open", "GET", "/health", None),
            ("open", "GET", "/metrics", None),
            ("open", "GET", "/ui", None),
            ("read", "GET", "/v1/streams", None),
            ("read", "GET", f"/v1/streams/{s}", None),
            ("read", "GET", f"/v1/streams/{s}/events?consistency=leader",
             None),
            ("read", "GET", f"/v1/streams/{s}/checkpoints/cp", None),
            ("read", "GET", "/v1/cluster", None),
            ("read", "GET", "/v1/cluster/members", None),
            ("read", "GET", "/v1/cluster/history", None),
            ("read", "GET", "/v1/verify", None),
            ("read", "GET", "/v1/internal/status", None),
            ("write", "POST", f"/v1/streams/{s}/events", {"type": "t"}),
            ("write", "PUT", f"/v1/streams/{s}/checkpoints/cp", {"value": 1}),
            ("admin", "POST", "/v1/cluster/leader", {"id": 99}),
            ("admin", "GET", "/v1/backup", None),
            ("admin", "POST", "/v1/cluster/members", {}),
            ("admin", "DELETE", "/v1/cluster/members/99", None),
            ("admin", "POST", "/v1/cluster/members/99/role",
             {"role": "voter"}),
        ]

    def test_each_role_against_each_endpoint_class(self):
        """read < write < admin = node: a role below the route's class gets
        403 forbidden naming the token and the role needed; every other
        answer is the route's own (never 401/403/429)."""
        allowed = {"reader": {"open", "read"},
                   "writer": {"open", "read", "write"},
                   "root": {"open", "read", "write", "admin"},
                   "ops": {"open", "read", "write", "admin"}}
        leader = self.c.leader()
        nodes = [leader] + self.c.followers(leader)
        for name, classes in allowed.items():
            for i, (cls, method, path, body) in enumerate(self.endpoints()):
                nid = nodes[i % len(nodes)]
                st, _, b = self.call(nid, name, method, path, body)
                what = f"{name} {method} {path} on node {nid}: {st} {b}"
                if cls in classes:
                    self.assertNotIn(st, (401, 403, 429), what)
                else:
                    self.assertEqual(st, 403, what)
                    self.assertEqual(b["error"]["code"], "forbidden", what)
                    self.assertIn(f"'{name}'", b["error"]["message"], what)
                    self.assertIn(f"needs the {cls} role",
                                  b["error"]["message"], what)

    def test_unknown_or_missing_token_is_401_except_open_routes(self):
        """An attacker on the network without a token reaches /health and
        /metrics only; a wrong token is the same as none."""
        nid = self.c.leader()
        for cls, method, path, body in self.endpoints():
            for hdrs in ({}, {"Authorization": "Bearer not-a-token"},
                         {"Authorization": SECRETS["root"]}):
                st, _, b = self.c.http(method, nid, path, body=body,
                                       headers=hdrs, auth=False)
                if cls == "open":
                    self.assertIn(st, (200, 503), f"{path}: {st}")
                else:
                    self.assertEqual(st, 401, f"{method} {path}: {st} {b}")
        # Unknown paths under /v1 say 401 too: nothing is learnt.
        st, _, _ = self.c.http("GET", nid, "/v1/nothing", auth=False)
        self.assertEqual(st, 401)

    def test_rate_limited_token_gets_429_other_token_unaffected(self):
        """slow (rate=0.5 burst=3) runs dry after 3 quick requests: 429
        rate_limited with a Retry-After of whole seconds; fast, a token
        without a limit, keeps getting 200 on the same node meanwhile."""
        nid = self.c.leader()
        before = self.c.get(nid, "/metrics", auth=False)[2].decode()
        codes = []
        limited = None
        for _ in range(12):
            st, h, b = self.call(nid, "slow", "GET", "/v1/streams")
            codes.append(st)
            if st == 429:
                limited = (h, b)
            fst, _, _ = self.call(nid, "fast", "GET", "/v1/streams")
            self.assertEqual(fst, 200)
        self.assertIsNotNone(limited, f"never limited: {codes}")
        self.assertEqual(codes[:3], [200, 200, 200], codes)
        h, b = limited
        self.assertEqual(b["error"]["code"], "rate_limited")
        self.assertRegex(h.get("retry-after", ""), r"^[1-9][0-9]*$")
        self.assertLessEqual(int(h["retry-after"]), 2)
        after = self.c.get(nid, "/metrics", auth=False)[2].decode()
        lab = [("token", "slow"), ("reason", "rate_limited")]
        self.assertEqual(metric(after, "ledger_requests_rejected_total", lab) -
                         metric(before, "ledger_requests_rejected_total", lab),
                         codes.count(429))
        self.assertEqual(metric(after, "ledger_requests_rejected_total",
                                [("token", "fast"),
                                 ("reason", "rate_limited")]), 0)
        # The bucket refills: after Retry-After the token works again.
        wait_until(lambda: self.call(nid, "slow", "GET",
                                     "/v1/streams")[0] == 200,
                   timeout=10, msg="slow token never refilled")

    def test_forwarded_requests_are_charged_once(self):
        """once (rate=0.001 burst=3: no refill during the test): three
        appends sent to a follower are forwarded to the leader and all
        succeed; the leader did not charge them (its bucket still holds 3),
        the follower did (its fourth request is 429)."""
        leader = self.c.leader()
        f = self.c.followers(leader)[0]
        s = unique("once")
        for i in range(3):
            st, _, b = self.call(f, "once", "POST", f"/v1/streams/{s}/events",
                                 {"type": "t", "id": f"e{i}"})
            self.assertEqual(st, 201, b)
        self.assertEqual(self.call(f, "once", "GET", "/v1/streams")[0], 429)
        # Leader: three left. A forged proof does not avoid the charge.
        for _ in range(3):
            st, _, b = self.c.http(
                "GET", leader, "/v1/streams", auth=False,
                headers={**bearer("once"),
                         "X-Ledger-Node-Auth": "Bearer not-the-node-token"})
            self.assertEqual(st, 200, b)
        st, _, _ = self.call(leader, "once", "GET", "/v1/streams")
        self.assertEqual(st, 429)

    def test_forwarded_write_needs_the_clients_role_on_the_leader(self):
        """A read token's append sent to a follower is refused there (403);
        the follower never forwards it on its own authority."""
        leader = self.c.leader()
        f = self.c.followers(leader)[0]
        s = unique("ro")
        st, _, b = self.call(f, "reader", "POST", f"/v1/streams/{s}/events",
                             {"type": "t"})
        self.assertEqual(st, 403, b)
        st, _, b = self.c.http("GET", leader, f"/v1/streams/{s}")
        self.assertEqual(st, 404, b)

    def test_metrics_and_logs_name_tokens_never_secrets(self):
        """/metrics counts refusals per token NAME; no secret appears in
        /metrics, in any node's log, or in ledgerd's command line."""
        nid = self.c.leader()
        self.call(nid, "reader", "POST", f"/v1/streams/{self.stream}/events",
                  {"type": "t"})
        text = self.c.get(nid, "/metrics", auth=False)[2].decode()
        self.assertGreaterEqual(
            metric(text, "ledger_requests_rejected_total",
                   [("token", "reader"), ("reason", "forbidden")]), 1)
        for n in self.c.nodes.values():
            log = self.c.log_text(n.id)
            with open(f"/proc/{n.proc.pid}/cmdline", "rb") as fh:
                cmdline = fh.read().decode()
            for name, secret in SECRETS.items():
                self.assertNotIn(secret, text, name)
                self.assertNotIn(secret, log, f"{name} in node {n.id} log")
                self.assertNotIn(secret, cmdline, name)
        self.assertIn("nodes authenticate as 'ops'", self.c.log_text(nid))

    def test_strong_reads_and_catch_up_paths_work_with_roles(self):
        """Node-to-node calls made for a read token (a strong read on a
        follower asks the leader for a read index) and on the node's own
        behalf (the leader's status polls) pass with these roles."""
        leader = self.c.leader()
        for f in self.c.followers(leader):
            st, _, b = self.call(f, "reader", "GET",
                                 f"/v1/streams/{self.stream}/events"
                                 "?consistency=strong")
            self.assertEqual(st, 200, b)
            self.assertGreaterEqual(len(b["events"]), 1)
        st, _, b = self.call(leader, "reader", "GET", "/v1/cluster")
        self.assertEqual(st, 200)
        for m in b["members"]:
            self.assertNotEqual(m.get("state"), "unreachable", b)

    def test_ledgerctl_reads_a_token_file_of_roles(self):
        """ledgerctl --token-file on the nodes' file uses its first admin
        token."""
        eps = ",".join(self.c.addr(n) for n in self.c.ids())
        r = ledgerctl("--token-file", self.c.token_file, "--endpoints", eps,
                      "status")
        self.assertEqual(r.returncode, 0, r.stderr)


class ReloadTest(HarnessTestCase):
    """SIGHUP reloads the token file (its own cluster: the file changes)."""

    def setUp(self):
        super().setUp()
        self.c = self.track(Cluster(3, token=SECRETS["root"], name="reload",
                                    token_file_text=TOKEN_FILE))
        self.c.start()

    def write(self, text):
        tmp = self.c.token_file + ".tmp"
        with open(tmp, "w") as f:
            f.write(text)
        os.chmod(tmp, 0o600)
        os.replace(tmp, self.c.token_file)

    def hup(self, nids, expect):
        marks = {n: self.c.log_text(n).count(expect) for n in nids}
        for n in nids:
            self.c.signal(n, signal.SIGHUP)
        wait_until(lambda: all(self.c.log_text(n).count(expect) > marks[n]
                               for n in nids),
                   timeout=20, msg=f"no '{expect}' after SIGHUP")

    def status(self, nid, secret, path="/v1/streams"):
        return self.c.http("GET", nid, path, auth=False,
                           headers={"Authorization": f"Bearer {secret}"})[0]

    def test_reload_good_file_then_bad_file_keeps_the_old(self):
        ids = self.c.ids()
        # Good file: 'late' appears, 'reader' goes, 'writer' becomes read.
        text = TOKEN_FILE.replace(f"reader read  {SECRETS['reader']}",
                                  "late read late-secret-1a2b3c")
        text = text.replace(f"writer write {SECRETS['writer']}",
                            f"writer read {SECRETS['writer']}")
        self.write(text)
        self.hup(ids, "token file reloaded")
        for n in ids:
            self.assertEqual(self.status(n, "late-secret-1a2b3c"), 200)
            self.assertEqual(self.status(n, SECRETS["reader"]), 401)
            st, _, b = self.c.http("POST", n, f"/v1/streams/{unique()}/events",
                                   body={"type": "t"}, auth=False,
                                   headers=bearer("writer"))
            self.assertEqual(st, 403, b)
        # Bad file: refused with the line number; the old set stays.
        bad = text + "oops  superuser  x\n"
        self.write(bad)
        line = bad.count("\n")
        self.hup(ids, "token file refused")
        for n in ids:
            log = self.c.log_text(n)
            self.assertRegex(log, rf"token file refused.*line {line}: role "
                                  r"'superuser'")
            self.assertEqual(self.status(n, "late-secret-1a2b3c"), 200)
            self.assertEqual(self.status(n, SECRETS["root"]), 200)
        # A file others may read is taken, with a warning.
        self.write(text)
        os.chmod(self.c.token_file, 0o644)
        self.hup(ids[:1], "token file reloaded")
        self.assertRegex(self.c.log_text(ids[0]),
                         r"token file .* has mode 644: other local users may "
                         r"read the tokens")
        # A missing file is refused the same way.
        os.unlink(self.c.token_file)
        self.hup(ids, "token file refused")
        for n in ids:
            self.assertEqual(self.status(n, "late-secret-1a2b3c"), 200)
        # The cluster still replicates after all this.
        self.c.append_ok(self.c.leader(), unique("after"), [{"type": "t"}])

    def test_leader_applies_the_clients_role(self):
        """Only the leader reloads a file where 'writer' is read: an append
        with it through a follower (whose file still says write) is
        forwarded and refused by the leader with 403."""
        leader = self.c.leader()
        f = self.c.followers(leader)[0]
        self.write(TOKEN_FILE.replace(f"writer write {SECRETS['writer']}",
                                      f"writer read {SECRETS['writer']}"))
        self.hup([leader], "token file reloaded")
        s = unique("role")
        st, _, b = self.c.http("POST", f, f"/v1/streams/{s}/events",
                               body={"type": "t"}, auth=False,
                               headers=bearer("writer"))
        self.assertEqual(st, 403, b)
        self.assertEqual(b["error"]["code"], "forbidden")
        st, _, _ = self.c.http("GET", leader, f"/v1/streams/{s}")
        self.assertEqual(st, 404)

    def test_rotating_the_node_credential(self):
        """A new node line on every node (reloaded one by one): the nodes'
        own calls keep working (join of a new node through a follower, the
        leader's status polls)."""
        ids = self.c.ids()
        self.write(TOKEN_FILE.replace(SECRETS["ops"], "node-secret-rotated"))
        self.hup(ids, "token file reloaded")
        leader = self.c.leader()
        # The leader polls each member's applied index with its own token:
        # after an append every member reports it (a stale token: 401).
        self.c.append_ok(leader, unique("rot"), [{"type": "t"}])
        target = self.c.get(leader, "/health", auth=False)[2]["applied_index"]

        def polled():
            info = self.c.get(leader, "/v1/cluster?local=1")[2]
            return all(m["applied_index"] >= target for m in info["members"])
        wait_until(polled, timeout=30, msg="leader's polls stopped")
        f = self.c.followers(leader)[0]
        n4 = self.c.new_node(4, join=self.c.addr(f))
        self.c.start_node(4)
        self.c.wait_healthy([4], timeout=120)
        self.c.append_ok(4, unique("n4"), [{"type": "t"}])


    def test_sighup_while_shutting_down_does_not_kill(self):
        """A SIGHUP that arrives while the leader hands over and drains
        (SIGTERM just before) is ignored: the node still exits 0."""
        leader = self.c.leader()
        self.c.signal(leader, signal.SIGTERM)
        self.c.signal(leader, signal.SIGHUP)
        wait_until(lambda: "shutting down" in self.c.log_text(leader),
                   timeout=20)
        self.c.signal(leader, signal.SIGHUP)
        self.assertEqual(self.c.wait_exit(leader), 0)


class BareTokenTest(HarnessTestCase):
    """Today's format: a file of one bare token means admin."""

    def test_bare_token_is_admin(self):
        c = self.track(Cluster(1, token="just-one-bare-token", name="bare"))
        c.start()
        st, _, b = c.http("DELETE", 1, "/v1/cluster/members/99")
        self.assertEqual(st, 404, b)  # admin route, past auth
        c.append_ok(1, unique("bare"), [{"type": "t"}])
        st, _, _ = c.http("GET", 1, "/v1/streams", auth=False)
        self.assertEqual(st, 401)
        self.assertIn("nodes authenticate as 'admin'", c.log_text(1))


class StartTest(HarnessTestCase):
    """ledgerd refuses a token file that does not parse, naming the line."""

    CASES = [
        ("a read x\nb root y\n", 2, "role 'root'"),
        ("a read x\n", 0, "no admin or node token"),
        ("a admin x rate=5\n", 1, "may not have rate="),
        ("a admin x\nb read x\n", 2, "is the token of 'a'"),
        ("a admin x\na read y\n", 2, "name 'a' is already used"),
        ("a admin x\nb read y rate=0\n", 2, "rate="),
        ("a admin x\nb read y burst=2\n", 2, "needs rate="),
        ("bare\na admin x\n", 1, "bare token"),
        ("a admin x\nb read y\x01\n", 2, "byte 0x01"),
        ("# only a comment\n\n", 0, "no token"),
    ]

    def test_bad_token_files_refused_with_line(self):
        d = tempfile.mkdtemp(prefix="authz-start-")
        self.addCleanup(lambda: subprocess.run(["rm", "-rf", d]))
        rp, ap = free_ports(2)
        for text, line, why in self.CASES:
            path = os.path.join(d, "tokens")
            with open(path, "w") as f:
                f.write(text)
            r = subprocess.run(
                [LEDGERD, "--id", "1", "--data-dir", d, "--raft-addr",
                 f"127.0.0.1:{rp}", "--api-addr", f"127.0.0.1:{ap}",
                 "--bootstrap", f"1=127.0.0.1:{rp}@127.0.0.1:{ap}",
                 "--token-file", path],
                capture_output=True, text=True, timeout=60)
            self.assertEqual(r.returncode, 2, (text, r.stderr))
            err = r.stderr.strip()
            self.assertEqual(len(err.splitlines()), 1, err)
            if line:
                self.assertIn(f"line {line}:", err)
            self.assertIn(why, err)
            for secret in ("x\n", "y\n"):
                self.assertNotIn(f"'{secret.strip()}'", err)


if __name__ == "__main__":
    unittest.main()
