"""Automatic roles (ledgerctl roles, GET/PUT /v1/cluster/roles): bad
targets refused with one line and nothing changed; 5 nodes with voters 3 /
standbys 1 converge; a SIGKILLed voter is replaced by the standby after
dead-after (30 s) and no earlier, the fault tolerance returns to 1, every
acknowledged append is present, and the killed node comes back as a spare
or standby; a joining node enters as a spare and is promoted while the
cluster is below its target; manual role changes wait for voters 0; with
a token file, a node takes the leader a status poll names (X-Ledger-Leader,
which it forwards writes to) only from a node credential."""
import collections
import http.server
import re
import threading
import time
import unittest

from harness import (Cluster, HarnessTestCase, SLOW, free_ports, http_request,
                     ledgerctl, unique, wait_until)
from test_failover import Writer


def view(c, nid):
    st, _, b = c.get(nid, "/v1/cluster", timeout=5)
    assert st == 200, b
    return b


def roles_of(b):
    return {m["id"]: m["role"] for m in b["members"]}


def by_role(b, role):
    return sorted(i for i, r in roles_of(b).items() if r == role)


def endpoints(c, ids=None):
    return ",".join(c.addr(i) for i in (ids or c.live_ids()))


class RolesBadInputTest(HarnessTestCase):

    def test_refused_and_nothing_changed(self):
        c = self.track(Cluster(3, name="roles-bad"))
        c.start()
        ep = endpoints(c)
        for args, code, needle in (
                (["--voters", "4"], "roles_unmet", "cannot be met"),
                (["--voters", "5"], "roles_unmet", "cannot be met"),
                (["--voters", "3", "--standbys", "1"], "roles_unmet",
                 "cannot be met"),
                (["--voters", "2"], "bad_roles", "is even"),
                (["--voters", "3", "--dead-after-s", "0"], "bad_roles",
                 "out of range"),
                (["--voters", "3", "--dead-after-s", "999999"], "bad_roles",
                 "out of range"),
                (["--standbys", "1"], "bad_roles", "needs a voters target")):
            r = ledgerctl("--endpoints", ep, "roles", *args)
            self.assertEqual(r.returncode, 1, (args, r.stdout, r.stderr))
            lines = r.stderr.strip().splitlines()
            self.assertEqual(len(lines), 1, r.stderr)
            self.assertIn(code, lines[0])
            self.assertIn(needle, lines[0])
        r = ledgerctl("--endpoints", ep, "roles", "--voters", "x")
        self.assertEqual(r.returncode, 2, r.stderr)
        # The API, through every node (followers forward the PUT).
        for nid in c.ids():
            for body, status, code in (
                    ({}, 400, "bad_body"), ([], 400, "bad_body"),
                    ({"voters": -1}, 400, "bad_body"),
                    ({"voters": "3"}, 400, "bad_body"),
                    ({"voters": 3, "colour": 1}, 400, "bad_body"),
                    ({"voters": 4}, 409, "roles_unmet"),
                    ({"voters": 1, "dead_after_s": 4}, 400, "bad_roles")):
                st, _, b = c.http("PUT", nid, "/v1/cluster/roles", body=body)
                self.assertEqual((st, b["error"]["code"]), (status, code),
                                 (body, b))
        # Nothing changed, on any node.
        for nid in c.ids():
            st, _, b = c.get(nid, "/v1/cluster/roles?local=1")
            self.assertEqual(st, 200, b)
            self.assertEqual((b["voters"], b["standbys"], b["dead_after_s"],
                              b["automatic"]), (0, 0, 30, False))
        r = ledgerctl("--endpoints", ep, "roles")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("roles: manual", r.stdout)


class RolesFailoverTest(HarnessTestCase):

    def test_dead_voter_replaced(self):
        c = self.track(Cluster(5, name="roles-kill"))
        c.start()
        ep = endpoints(c)
        r = ledgerctl("--endpoints", ep, "roles", "--voters", "3",
                      "--standbys", "1")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("voters 3, standbys 1, dead after 30 s", r.stdout)

        def settled():
            b = view(c, c.leader())
            counts = collections.Counter(roles_of(b).values())
            return b if (counts["voter"], counts["standby"],
                         counts["spare"]) == (3, 1, 1) else None
        b = wait_until(settled, timeout=90, interval=0.5,
                       msg="3 voters, 1 standby, 1 spare")
        self.assertEqual(b["fault_tolerance"], 1)
        leader = b["leader_id"]
        standby = by_role(b, "standby")[0]
        victim = [i for i in by_role(b, "voter") if i != leader][0]

        s = unique("roles")
        w = Writer(c, s, "w", 0)
        w.start()
        try:
            wait_until(lambda: w.acks() >= 20, timeout=60,
                       msg="20 acknowledged appends before the kill")
            c.kill9(victim)
            t_kill = time.monotonic()

            def replaced():
                b = view(c, c.leader(exclude=(victim,)))
                roles = roles_of(b)
                if roles[standby] == "voter" and roles[victim] != "voter":
                    return b
                return None
            b = wait_until(replaced, timeout=120, interval=0.2,
                           msg=f"standby {standby} to replace voter {victim}")
            waited = time.monotonic() - t_kill
            # Not before dead-after: 30 s of unreachability.
            self.assertGreaterEqual(waited, 29, "replaced too early")
            wait_until(lambda: view(c, c.leader(exclude=(victim,)))
                       ["fault_tolerance"] == 1, timeout=60,
                       msg="fault tolerance back to 1")
            base = w.acks()
            wait_until(lambda: w.acks() >= base + 10, timeout=60,
                       msg="appends go on after the change")
            # The killed node comes back (40 s after the kill) as a spare
            # or a standby.
            left = 40 - (time.monotonic() - t_kill)
            if left > 0:
                time.sleep(left)  # the scenario's outage, not a wait
            c.start_node(victim, bootstrap=False)

            def back():
                b = view(c, c.leader(exclude=(victim,)))
                m = [m for m in b["members"] if m["id"] == victim][0]
                return b if (m["role"] in ("spare", "standby") and
                             m["state"] != "unreachable" and
                             m.get("reachable")) else None
            b = wait_until(back, timeout=90, interval=0.5,
                           msg=f"node {victim} back as spare or standby")
            counts = collections.Counter(roles_of(b).values())
            self.assertEqual(counts["voter"], 3, b)
            self.assertEqual(b["fault_tolerance"], 1)
        finally:
            w.stop_flag.set()
            w.join(60)
        self.assertFalse(w.is_alive())
        self.assertEqual(w.errors, [])
        # Every acknowledged append is there, once, on the voters.
        lead = c.leader()
        voters = by_role(view(c, lead), "voter")
        for nid in voters:
            evs = c.read_all(nid, s, consistency="strong")
            ids = collections.Counter(e["id"] for e in evs)
            missing = [i for i in w.acked if ids[i] == 0]
            self.assertEqual(missing, [], f"node {nid}")
            self.assertEqual([i for i, k in ids.items() if k > 1], [])
        c.wait_verify_agree(ids=voters)
        # Logged with the reason, counted in the leader's metrics.
        st, _, text = c.get(lead, "/metrics")
        m = re.search(rb'ledger_roles_changes_total\{reason="dead",'
                      rb'role="voter"\} (\d+)', text)
        self.assertIsNotNone(m)
        self.assertGreaterEqual(int(m.group(1)), 1)
        log = c.log_text(lead)
        self.assertRegex(log, rf"roles: member {standby} standby -> voter "
                         rf"\(dead: replaces voter {victim}, unreachable "
                         rf"for \d+ s\)")
        r = ledgerctl("--endpoints", endpoints(c), "roles")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("automatic: voters 3, standbys 1", r.stdout)


class RolesJoinTest(HarnessTestCase):

    def test_join_as_spare_then_promoted(self):
        c = self.track(Cluster(3, name="roles-join"))
        c.start()
        r = ledgerctl("--endpoints", endpoints(c), "roles", "--voters", "3")
        self.assertEqual(r.returncode, 0, r.stderr)
        c.new_node(4, join=c.addr(c.leader()))
        c.start_node(4)
        wait_until(lambda: roles_of(view(c, c.leader())).get(4) == "spare",
                   timeout=60, msg="node 4 added as a spare")
        # The leader lists the spare before node 4 has read the answer to
        # its join and logged it.
        wait_until(lambda: "joined the cluster" in c.log_text(4),
                   timeout=30, msg="node 4 logs that it joined")
        # A spare gets no Raft messages, but its status poll names the
        # leader: writes sent to it are forwarded; strong reads answer at
        # once (it cannot apply), reads at the leader's level work.
        s = unique("spare")
        wait_until(lambda: c.append(4, s, [{"type": "t", "id": "x"}])[0]
                   == 201, timeout=30, msg="an append through spare 4")
        st, _, b = c.read(4, s, consistency="strong", timeout=10)
        self.assertEqual((st, b["error"]["code"]), (503, "not_consistent"))
        # GET /v1/cluster/roles through the spare: relayed by the leader.
        st, _, b = c.get(4, "/v1/cluster/roles")
        self.assertEqual((st, b["voters"], b["automatic"]), (200, 3, True))
        # Voters at the target: it stays a spare.
        self.assertEqual(by_role(view(c, c.leader()), "voter"), [1, 2, 3])
        # Manual role changes are refused while roles are automatic.
        st, _, b = c.http("POST", c.leader(), "/v1/cluster/members/4/role",
                          body={"role": "voter"})
        self.assertEqual((st, b["error"]["code"]), (409, "automatic_roles"))
        # A voter leaves: below the target, the spare is promoted.
        victim = [i for i in (1, 2, 3) if i != c.leader()][0]
        st, _, b = c.http("DELETE", c.leader(),
                          f"/v1/cluster/members/{victim}", timeout=60)
        self.assertEqual(st, 200, b)
        c.stop(victim)
        wait_until(lambda: roles_of(view(c, c.leader())).get(4) == "voter",
                   timeout=90, interval=0.5, msg="node 4 promoted to voter")
        wait_until(lambda: view(c, c.leader())["fault_tolerance"] == 1,
                   timeout=60, msg="fault tolerance 1")
        # Back to manual: role changes work again.
        r = ledgerctl("--endpoints", endpoints(c), "roles", "--voters", "0")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("roles: manual", r.stdout)
        st, _, b = c.http("POST", c.leader(), "/v1/cluster/members/4/role",
                          body={"role": "standby"}, timeout=60)
        self.assertEqual(st, 200, b)


if __name__ == "__main__":
    unittest.main()


class LeaderHintAuthTest(HarnessTestCase):
    """A node that knows no leader (it waits to join a cluster that does
    not answer) and a fake "leader" that records what reaches it: a
    forged X-Ledger-Leader with a read token is ignored (the append is not
    forwarded, so the client's token does not leave the cluster); the same
    header with the node credential is taken and the append forwarded."""

    TOKENS = ("ops node node-secret-4f2a\n"
              "reader read read-secret-7c1d\n"
              "writer write write-secret-9e3b\n")

    def test_hint_only_from_a_node(self):
        got = []

        class Fake(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                n = int(self.headers.get("Content-Length") or 0)
                self.rfile.read(n)
                got.append((self.path, self.headers.get("Authorization")))
                body = b'{"fake":true}'
                self.send_response(201)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        fake_port, dead_port = free_ports(2)
        srv = http.server.HTTPServer(("127.0.0.1", fake_port), Fake)
        t = threading.Thread(target=srv.serve_forever, daemon=True)
        t.start()
        self.addCleanup(srv.server_close)
        self.addCleanup(srv.shutdown)

        c = self.track(Cluster(0, name="roles-hint", token="write-secret-9e3b",
                               token_file_text=self.TOKENS))
        c._setup_dir()
        c.new_node(1, join=f"127.0.0.1:{dead_port}")
        c.start_node(1)
        addr = c.addr(1)
        hint = {"X-Ledger-Leader": f"7 3 127.0.0.1:{fake_port}"}

        def poll(extra):
            h = dict(hint, **extra)
            st, _, b = http_request(addr, "GET", "/v1/internal/status",
                                    headers=h, timeout=10)
            self.assertEqual(st, 200, b)

        def append():
            return http_request(
                addr, "POST", f"/v1/streams/{unique('hint')}/events",
                body={"events": [{"type": "t", "id": "a"}]},
                headers={"Authorization": "Bearer write-secret-9e3b"},
                timeout=30)

        # A read token, with or without a wrong node credential: ignored.
        poll({"Authorization": "Bearer read-secret-7c1d"})
        poll({"Authorization": "Bearer read-secret-7c1d",
              "X-Ledger-Node-Auth": "Bearer write-secret-9e3b"})
        st, _, b = append()
        self.assertEqual(st, 503, b)
        self.assertEqual(got, [])
        # The node credential: taken, the append goes to the named leader
        # with the client's token.
        poll({"Authorization": "Bearer node-secret-4f2a",
              "X-Ledger-Node-Auth": "Bearer node-secret-4f2a"})
        st, _, b = append()
        self.assertEqual((st, b), (201, {"fake": True}))
        self.assertEqual(len(got), 1)
        self.assertEqual(got[0][1], "Bearer write-secret-9e3b")
