"""ledgerctl: usage, `cluster up/down`, status, members, append/read,
verify (and tamper detection)."""
import fcntl
import json
import os
import re
import select
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
import unittest

from harness import (ClusterTestCase, HarnessTestCase, LEDGERCTL, free_port_range, free_ports,
                     http_request, ledgerctl, sanitizer_report, tail, unique,
                     wait_until)


def pid_alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
        return state not in ("Z", "X")
    except (OSError, IndexError):
        return False


def pid_gone(pid):
    return not os.path.exists(f"/proc/{pid}")


def lock_free(path):
    """Whether nobody holds the flock on path (ledgerd's DIR/LOCK)."""
    try:
        fd = os.open(path, os.O_RDWR)
    except FileNotFoundError:
        return True
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        fcntl.flock(fd, fcntl.LOCK_UN)
        return True
    except BlockingIOError:
        return False
    finally:
        os.close(fd)


def pid_cmdline(pid):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode("utf-8", "replace")
    except OSError:
        return ""


class CtlCluster:
    """A cluster run by `ledgerctl cluster up` in a temporary --dir."""

    def __init__(self, nodes=3):
        self.nodes = nodes
        self.dir = None
        self.failed = False

    def up(self, *extra):
        """First `cluster up` (picks ports; retried once on a port clash).
        Returns the CompletedProcess."""
        for attempt in (1, 2):
            self.dir = tempfile.mkdtemp(prefix="ctl-")
            self.raft_port = free_port_range(self.nodes)
            self.api_port = free_port_range(
                self.nodes, avoid=range(self.raft_port,
                                        self.raft_port + self.nodes))
            r = ledgerctl("cluster", "up", "--nodes", str(self.nodes),
                          "--dir", self.dir, "--raft-port", str(self.raft_port),
                          "--api-port", str(self.api_port), *extra)
            logs = "".join(tail(os.path.join(self.dir, f"node{i}.log"), 5)
                           for i in self.ids())
            if (r.returncode != 0 and attempt == 1
                    and "address already in use" in (r.stderr + logs).lower()):
                self.kill_all()
                shutil.rmtree(self.dir, ignore_errors=True)
                continue
            return r

    def ids(self):
        return list(range(1, self.nodes + 1))

    def api_addr(self, nid):
        return f"127.0.0.1:{self.api_port + nid - 1}"

    @property
    def endpoints(self):
        return ",".join(self.api_addr(i) for i in self.ids())

    def ctl(self, *args, **kw):
        return ledgerctl("--endpoints", self.endpoints, *args, **kw)

    def pid(self, nid):
        try:
            with open(os.path.join(self.dir, f"node{nid}.pid")) as f:
                return int(f.read().strip())
        except (OSError, ValueError):
            return None

    def ours(self, pid):
        """A pid from our pid files that is a ledgerd on our --dir."""
        return (pid is not None and pid_alive(pid)
                and "ledgerd" in pid_cmdline(pid)
                and self.dir in pid_cmdline(pid))

    def db(self, nid):
        return os.path.join(self.dir, f"node{nid}", "ledger.db")

    def log(self, nid):
        return os.path.join(self.dir, f"node{nid}.log")

    def healthy(self, nid):
        try:
            st, _, b = http_request(self.api_addr(nid), "GET", "/health",
                                    timeout=5)
            return st == 200
        except OSError:
            return False

    def wait_healthy(self):
        for nid in self.ids():
            wait_until(lambda: self.healthy(nid), timeout=60,
                       msg=f"node {nid} healthy")

    def kill_all(self):
        """Last-resort cleanup: SIGKILL every ledgerd of our pid files."""
        for nid in self.ids():
            pid = self.pid(nid)
            if self.ours(pid):
                os.kill(pid, signal.SIGKILL)
                wait_until(lambda: not pid_alive(pid), timeout=20,
                           msg=f"pid {pid} to die")

    def close(self):
        if self.dir is None:
            return
        if any(self.ours(self.pid(i)) for i in self.ids()):
            r = ledgerctl("cluster", "down", "--dir", self.dir)
            if r.returncode != 0:
                sys.stderr.write(f"[ctl] cluster down: {r.stderr}\n")
        self.kill_all()
        reports = [f"node {i}: {r}" for i in self.ids()
                   if (r := sanitizer_report(self.log(i)))]
        if reports:
            self.failed = True
        if self.failed:
            sys.stderr.write(f"\n[ctl] kept {self.dir}\n")
            for nid in self.ids():
                sys.stderr.write(f"----- {self.log(nid)} -----\n"
                                 f"{tail(self.log(nid), 40)}\n")
        else:
            shutil.rmtree(self.dir, ignore_errors=True)
        return reports


class CtlTestCase(HarnessTestCase):
    """One `cluster up` cluster per class."""

    @classmethod
    def setUpClass(cls):
        cls._any_failed = False
        cls.cc = CtlCluster()
        r = cls.cc.up()
        cls.up_result = r
        if r.returncode != 0:
            cls.cc.failed = True
            cls.cc.close()
            raise AssertionError(f"cluster up failed ({r.returncode}): "
                                 f"{r.stdout}{r.stderr}")
        cls.cc.wait_healthy()

    @classmethod
    def tearDownClass(cls):
        cls.cc.failed = cls.cc.failed or cls._any_failed
        reports = cls.cc.close()
        if reports:
            raise AssertionError("sanitizer reports in node logs: " +
                                 "; ".join(reports))


class CtlUsageTest(HarnessTestCase):

    def test_help_and_version(self):
        for args in (["--help"], ["-h"]):
            r = ledgerctl(*args)
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertIn("cluster up", r.stdout)
            self.assertIn("verify", r.stdout)
            self.assertEqual(r.stderr, "")
        r = ledgerctl("--version")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertRegex(r.stdout, r"^ledgerctl \S+\n$")

    def test_bad_usage_exits_2_with_one_line(self):
        cases = [
            [],
            ["frobnicate"],
            ["--bogus", "status"],
            ["cluster"],
            ["cluster", "sideways"],
            ["append"],
            ["append", "s"],
            ["append", "s", "{not json"],
            ["append", "s", "--expect", "x", "{}"],
            ["read"],
            ["read", "s", "--limit", "ten"],
            ["read", "s", "--consistency"],
            ["status", "extra"],
            ["cluster", "up", "--nodes", "0"],
            ["cluster", "up", "--nodes", "x"],
            ["--timeout-ms", "soon", "status"],
            ["member", "remove"],
        ]
        for args in cases:
            r = ledgerctl(*args, env={"LEDGER_ENDPOINTS": "127.0.0.1:1"})
            self.assertEqual(r.returncode, 2,
                             f"{args}: rc {r.returncode} {r.stdout!r} "
                             f"{r.stderr!r}")
            lines = r.stderr.strip().splitlines()
            self.assertEqual(len(lines), 1, f"{args}: {r.stderr!r}")
            self.assertTrue(lines[0].startswith("ledgerctl"), lines[0])
            self.assertEqual(r.stdout, "", args)

    def test_no_cluster_exits_1(self):
        port = free_ports(1)[0]  # nothing listens there
        for args in (["status"], ["read", "s"], ["verify"],
                     ["append", "s", "--id", "x", "{}"]):
            r = ledgerctl("--endpoints", f"127.0.0.1:{port}", *args)
            self.assertEqual(r.returncode, 1, f"{args}: {r.stderr}")
            self.assertEqual(len(r.stderr.strip().splitlines()), 1, r.stderr)


class CtlCommandsTest(CtlTestCase):

    def test_cluster_up_printed_a_status_table(self):
        out = self.up_result.stdout
        for nid in self.cc.ids():
            self.assertIn(self.cc.api_addr(nid), out)
            pid = self.cc.pid(nid)
            self.assertTrue(self.cc.ours(pid), f"node {nid} pid {pid}")
        self.assertRegex(out, r"(?i)leader")
        # One table row per member, with a known state.
        rows = [l for l in out.splitlines()
                if re.match(r"^\s*[123]\s+127\.0\.0\.1:", l)]
        self.assertEqual(len(rows), 3, out)
        self.assertEqual(sum("leader" in r for r in rows), 1, out)
        self.assertTrue(os.path.exists(os.path.join(self.cc.dir,
                                                    "cluster.json")))

    def test_status(self):
        r = self.cc.ctl("status")
        self.assertEqual(r.returncode, 0, r.stderr)
        for nid in self.cc.ids():
            self.assertIn(self.cc.api_addr(nid), r.stdout)
        self.assertIn("leader", r.stdout)
        r = self.cc.ctl("--json", "status")
        self.assertEqual(r.returncode, 0, r.stderr)
        v = json.loads(r.stdout)
        self.assertEqual(sorted(m["id"] for m in v["members"]), [1, 2, 3])
        self.assertIn(v["leader_id"], (1, 2, 3))
        # LEDGER_ENDPOINTS works as well as --endpoints.
        r = ledgerctl("status", env={"LEDGER_ENDPOINTS": self.cc.endpoints})
        self.assertEqual(r.returncode, 0, r.stderr)

    def test_member_list(self):
        r = self.cc.ctl("member", "list")
        self.assertEqual(r.returncode, 0, r.stderr)
        rows = [l.split() for l in r.stdout.splitlines()
                if re.match(r"^\s*\d+\s", l)]
        self.assertEqual(sorted(int(x[0]) for x in rows), [1, 2, 3], r.stdout)
        for nid in self.cc.ids():
            self.assertIn(self.cc.api_addr(nid), r.stdout)
        self.assertIn("voter", r.stdout)

    def test_append_and_read(self):
        s = unique("ctl")
        r = self.cc.ctl("append", s, "--id", "k1", '{"a": 1}')
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertRegex(r.stdout, r"seq 1\.\.1")
        # Same id again: the original result, nothing appended.
        r2 = self.cc.ctl("append", s, "--id", "k1", '{"a": 1}')
        self.assertEqual(r2.returncode, 0, r2.stderr)
        self.assertEqual(r2.stdout, r.stdout)
        # DATA from stdin, with a type.
        r = self.cc.ctl("append", s, "--type", "piped", "--id", "k2", "-",
                        input='{"b": [1, 2, "three"]}\n')
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertRegex(r.stdout, r"seq 2\.\.2")
        r = self.cc.ctl("--json", "append", s, '"plain string"')
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(json.loads(r.stdout)["last_seq"], 3)
        # Read back: plain and JSON.
        r = self.cc.ctl("read", s)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("k1", r.stdout)
        self.assertIn("piped", r.stdout)
        self.assertIn("three", r.stdout)
        r = self.cc.ctl("--json", "read", s)
        self.assertEqual(r.returncode, 0, r.stderr)
        text = r.stdout.strip()
        try:
            evs = [json.loads(l) for l in text.splitlines()]
        except ValueError:
            evs = json.loads(text)
            evs = evs.get("events", evs) if isinstance(evs, dict) else evs
        self.assertEqual([e["seq"] for e in evs], [1, 2, 3])
        self.assertEqual(evs[0]["data"], {"a": 1})
        self.assertEqual(evs[1]["data"], {"b": [1, 2, "three"]})
        self.assertEqual(evs[1]["type"], "piped")
        self.assertEqual(evs[2]["data"], "plain string")
        r = self.cc.ctl("--json", "read", s, "--from", "2", "--limit", "1")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn('"piped"', r.stdout)
        self.assertNotIn('"k1"', r.stdout)
        # The HTTP API agrees on every node.
        for nid in self.cc.ids():
            st, _, b = http_request(self.cc.api_addr(nid), "GET",
                                    f"/v1/streams/{s}/events")
            self.assertEqual(st, 200)
            self.assertEqual([e["id"] for e in b["events"]], ["k1", "k2", None])

    def test_append_expect_conflict_exits_1(self):
        s = unique("ctlexp")
        r = self.cc.ctl("append", s, "--expect", "0", "{}")
        self.assertEqual(r.returncode, 0, r.stderr)
        r = self.cc.ctl("append", s, "--expect", "0", "{}")
        self.assertEqual(r.returncode, 1, r.stdout)
        self.assertEqual(len(r.stderr.strip().splitlines()), 1, r.stderr)
        r = self.cc.ctl("append", s, "--expect", "1", "{}")
        self.assertEqual(r.returncode, 0, r.stderr)
        st, _, h = http_request(self.cc.api_addr(1), "GET", f"/v1/streams/{s}")
        self.assertEqual(h["last_seq"], 2)

    def test_verify_ok(self):
        self.cc.ctl("append", unique("ctlv"), "{}")
        r = self.cc.ctl("verify")
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        for nid in self.cc.ids():
            self.assertIn(self.cc.api_addr(nid), r.stdout)
        self.assertIn("agree", r.stdout)
        r = self.cc.ctl("--json", "verify")
        self.assertEqual(r.returncode, 0, r.stderr)
        v = json.loads(r.stdout)
        self.assertTrue(v["ok"])
        self.assertEqual(len(v["nodes"]), 3)

    def test_dead_endpoint_is_skipped(self):
        dead = f"127.0.0.1:{free_ports(1)[0]}"
        eps = dead + "," + self.cc.endpoints
        s = unique("ctldead")
        for args in (["status"], ["append", s, "--id", "d1", "{}"],
                     ["read", s]):
            r = ledgerctl("--endpoints", eps, *args)
            self.assertEqual(r.returncode, 0, f"{args}: {r.stderr}")


class CtlTamperTest(CtlTestCase):

    def test_verify_detects_tampered_store(self):
        """An event changed under a running node (as a bad disk block
        would): `ledgerctl verify` names that node and the position and
        exits 1; the node then rebuilds itself from the others (a node
        stopped, changed and started again finds it at start instead:
        test_repair.py), after which verify passes; changed once more,
        `--json verify` marks it alone."""
        cc = self.cc
        s = unique("tamper")
        for i in range(4):
            r = cc.ctl("append", s, "--id", f"t{i}", json.dumps({"x": i}))
            self.assertEqual(r.returncode, 0, r.stderr)
        r = cc.ctl("verify")
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        # Every node has all four before one is changed.
        for nid in cc.ids():
            wait_until(lambda: http_request(
                cc.api_addr(nid), "GET",
                "/health?caught_up=1&timeout_ms=5000")[0] == 200, timeout=30)

        def tamper(pos, x):
            db = sqlite3.connect(cc.db(2), timeout=30)
            try:
                n = db.execute("UPDATE events SET data = ? WHERE position = ?",
                               (json.dumps({"x": x}), pos)).rowcount
                db.commit()
                self.assertEqual(n, 1, f"node 2 has position {pos}")
            finally:
                db.close()

        tamper(2, 666)
        r = cc.ctl("verify")
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        out = r.stdout + r.stderr
        self.assertIn(cc.api_addr(2), r.stderr, "stderr names the bad node")
        self.assertRegex(r.stderr, r"position 2\b")
        self.assertEqual(len(r.stderr.strip().splitlines()), 1, r.stderr)
        # The table marks node 2 only.
        rows = {l.split()[0]: l for l in r.stdout.splitlines()
                if l.startswith("127.0.0.1:")}
        self.assertRegex(rows[cc.api_addr(2)], r"\bNO\b\s+\d+\s+2\b", out)
        for nid in (1, 3):
            self.assertNotRegex(rows[cc.api_addr(nid)], r"\bNO\b", out)
        st, _, v = http_request(cc.api_addr(1), "GET", "/v1/verify")
        self.assertTrue(v["ok"])

        # Node 2 moved its store aside and rebuilt it (503 store_corrupt
        # until then).
        wait_until(lambda: http_request(
            cc.api_addr(2), "GET",
            "/health?caught_up=1&timeout_ms=5000")[0] == 200, timeout=90,
            msg="node 2 rebuilt")
        r = cc.ctl("verify")
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertRegex(r.stdout, re.escape(cc.api_addr(2)) + r"\s+yes\s+4\b")
        self.assertTrue([d for d in os.listdir(os.path.dirname(cc.db(2)))
                         if d.startswith("corrupt-")], "the old store kept")

        tamper(3, 667)
        r = cc.ctl("--json", "verify")
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        v = json.loads(r.stdout)
        self.assertFalse(v["ok"])
        bad = [x for x in v["nodes"] if x.get("ok") is False]
        self.assertEqual([x["endpoint"] for x in bad], [cc.api_addr(2)])
        self.assertEqual(bad[0]["first_bad_position"], 3)


class CtlRestartTest(CtlTestCase):

    def test_second_up_restarts_only_the_dead_node(self):
        cc = self.cc
        s = unique("restart")
        r = cc.ctl("append", s, "--id", "r1", '{"v": 1}')
        self.assertEqual(r.returncode, 0, r.stderr)
        pids = {n: cc.pid(n) for n in cc.ids()}
        victim = 3
        os.kill(pids[victim], signal.SIGKILL)
        # Gone for good: every thread exited and the data dir lock is free
        # (a zombie whose threads still exit keeps it a moment).
        wait_until(lambda: pid_gone(pids[victim]) and lock_free(
            os.path.join(cc.dir, f"node{victim}", "LOCK")), timeout=20,
            msg="the killed node to be gone")
        r = ledgerctl("cluster", "up", "--dir", cc.dir)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        for n in (1, 2):
            self.assertEqual(cc.pid(n), pids[n], f"node {n} kept running")
            self.assertTrue(cc.ours(pids[n]))
            self.assertRegex(r.stdout, rf"node {n}: already running")
        new = cc.pid(victim)
        self.assertNotEqual(new, pids[victim])
        self.assertTrue(cc.ours(new), "node 3 runs again")
        self.assertRegex(r.stdout, rf"node {victim}: started")
        cc.wait_healthy()
        wait_until(lambda: http_request(
            cc.api_addr(victim), "GET",
            "/health?caught_up=1&timeout_ms=5000")[0] == 200, timeout=60)
        st, _, b = http_request(cc.api_addr(victim), "GET",
                                f"/v1/streams/{s}/events?consistency=any")
        self.assertEqual([e["id"] for e in b["events"]], ["r1"])
        # And `cluster down` stops everything.
        pids = {n: cc.pid(n) for n in cc.ids()}
        r = ledgerctl("cluster", "down", "--dir", cc.dir)
        self.assertEqual(r.returncode, 0, r.stderr)
        for n, pid in pids.items():
            self.assertFalse(pid_alive(pid), f"node {n} pid {pid} still runs")
            self.assertFalse(os.path.exists(os.path.join(cc.dir,
                                                         f"node{n}.pid")))
            with self.assertRaises(OSError):
                http_request(cc.api_addr(n), "GET", "/health", timeout=5)
        # A second down has nothing to do and succeeds.
        r = ledgerctl("cluster", "down", "--dir", cc.dir)
        self.assertEqual(r.returncode, 0, r.stderr)


class CtlLagAndFollowTest(ClusterTestCase):
    """ledgerctl against a harness-run cluster: lag bounds, read --follow."""

    def ctl(self, *args, last=None, **kw):
        """ledgerctl with every node as endpoint (node `last` last: a frozen
        node would cost a request timeout before the next is tried)."""
        ids = sorted(self.c.ids(), key=lambda n: n == last)
        eps = ",".join(self.c.addr(n) for n in ids)
        return ledgerctl("--endpoints", eps, *args, **kw)

    def test_lag_bounds(self):
        c = self.c
        leader = c.leader()
        fol = c.followers(leader)[0]
        r = self.ctl("lag", "--max-entries", "1000000", "--max-ms", "600000")
        self.assertEqual(r.returncode, 0, r.stderr)
        for nid in c.ids():
            self.assertIn(c.addr(nid), r.stdout)
        s = unique("lag")
        c.signal(fol, signal.SIGSTOP)
        try:
            for i in range(10):
                c.append_ok(leader, s, [{"type": "t", "data": i}])
            r = self.ctl("lag", "--max-entries", "3", last=fol)
            self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
            lines = r.stderr.strip().splitlines()
            self.assertEqual(len(lines), 1, r.stderr)
            self.assertRegex(lines[0], rf"node {fol}\b")
            r = self.ctl("--json", "lag", last=fol)
            self.assertEqual(r.returncode, 0, r.stderr)
            v = json.loads(r.stdout)
            lag = {m["id"]: m["lag_entries"] for m in v["members"]}
            self.assertGreaterEqual(lag[fol], 10)
            self.assertEqual(lag[leader], 0)
        finally:
            c.signal(fol, signal.SIGCONT)
        def caught_up():
            r = self.ctl("lag", "--max-entries", "0")
            return r.returncode == 0
        wait_until(caught_up, timeout=30, interval=0.2,
                   msg="the follower's lag to return to 0")

    def test_read_follow(self):
        c = self.c
        s = unique("follow")
        c.append_ok(c.leader(), s, [{"type": "t", "id": "old"}])
        eps = ",".join(c.addr(n) for n in c.ids())
        env = dict(os.environ, LEDGER_ENDPOINTS=eps)
        p = subprocess.Popen([LEDGERCTL, "--json", "read", s, "--follow"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             env=env)
        lines = []
        buf = b""

        def saw(eid):
            nonlocal buf
            while select.select([p.stdout], [], [], 0)[0]:
                chunk = os.read(p.stdout.fileno(), 65536)
                if not chunk:
                    break
                buf += chunk
            while b"\n" in buf:
                line, buf = buf.split(b"\n", 1)
                lines.append(json.loads(line))
            return any(e.get("id") == eid for e in lines)
        try:
            wait_until(lambda: saw("old"), timeout=30, msg="the old event")
            c.append_ok(c.followers()[0], s, [{"type": "t", "id": "new1"},
                                              {"type": "t", "id": "new2"}])
            wait_until(lambda: saw("new2"), timeout=30,
                       msg="--follow to print the new events")
            self.assertEqual([e["id"] for e in lines], ["old", "new1", "new2"])
            self.assertEqual([e["seq"] for e in lines], [1, 2, 3])
            p.send_signal(signal.SIGTERM)
            self.assertEqual(p.wait(30), 0)
        finally:
            if p.poll() is None:
                p.kill()
                p.wait(30)
            p.stdout.close()
            p.stderr.close()


if __name__ == "__main__":
    unittest.main()
