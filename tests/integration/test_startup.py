"""ledgerd start-up: flag validation, --help/--version, refusing a newer
store schema without touching it, one ledgerd per data dir, restarts."""
import os
import re
import shutil
import socket
import sqlite3
import subprocess
import tempfile
import unittest

from harness import (LEDGERD, SLOW, Cluster, HarnessTestCase, file_sha256,
                     free_ports, unique)

LOG_LINE = re.compile(r"^\d{4}-\d\d-\d\dT\S+ +(debug|info|warn|error) ")


def run_ledgerd(*args, timeout=60):
    return subprocess.run([LEDGERD, *args], capture_output=True, text=True,
                          timeout=timeout * SLOW, stdin=subprocess.DEVNULL)


def error_lines(stderr):
    """stderr lines that are not log lines."""
    return [l for l in stderr.splitlines() if l.strip()
            and not LOG_LINE.match(l)]


class FlagsTest(HarnessTestCase):

    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.mkdtemp(prefix="startup-flags-")
        cls.data = os.path.join(cls.dir, "n1")
        os.makedirs(cls.data)
        rp, ap = free_ports(2)
        cls.raft = f"127.0.0.1:{rp}"
        cls.api = f"127.0.0.1:{ap}"

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.dir, ignore_errors=True)

    def base(self, **over):
        args = {"--id": "1", "--data-dir": self.data, "--raft-addr": self.raft,
                "--api-addr": self.api,
                "--bootstrap": f"1={self.raft}@{self.api}"}
        args.update(over)
        out = []
        for k, v in args.items():
            if v is not None:
                out += [k, v]
        return out

    def assertUsage(self, args):
        r = run_ledgerd(*args)
        self.assertEqual(r.returncode, 2, f"{args}: rc {r.returncode} "
                         f"stderr {r.stderr!r}")
        lines = r.stderr.strip().splitlines()
        self.assertEqual(len(lines), 1, f"{args}: {r.stderr!r}")
        self.assertTrue(lines[0].startswith("ledgerd"), lines[0])
        self.assertEqual(r.stdout, "")
        return lines[0]

    def test_help_and_version(self):
        r = run_ledgerd("--help")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("--data-dir", r.stdout)
        self.assertIn("--bootstrap", r.stdout)
        self.assertEqual(r.stderr, "")
        r = run_ledgerd("--version")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertRegex(r.stdout, r"^ledgerd \S+\n$")

    def test_unknown_flag(self):
        line = self.assertUsage(self.base() + ["--bogus"])
        self.assertIn("--bogus", line)
        self.assertUsage(["--bogus"])
        self.assertUsage(self.base() + ["stray-argument"])

    def test_missing_required_flags(self):
        for flag in ("--id", "--data-dir", "--raft-addr", "--api-addr"):
            line = self.assertUsage(self.base(**{flag: None}))
            self.assertIn(flag, line)
        self.assertUsage([])

    def test_bad_flag_values(self):
        cases = [
            {"--id": "0"}, {"--id": "-1"}, {"--id": "one"},
            {"--raft-addr": "127.0.0.1"}, {"--api-addr": "nohost:80"},
            {"--api-addr": "127.0.0.1:99999"},
            {"--bootstrap": "garbage"},
            {"--bootstrap": f"2={self.raft}@{self.api}"},  # not this node
            {"--heartbeat-ms": "0"}, {"--election-ms": "soon"},
            {"--heartbeat-ms": "2000", "--election-ms": "1000"},
            {"--log-format": "xml"}, {"--log-level": "loud"},
            {"--max-body": "12"}, {"--snapshot-threshold": "0"},
            {"--max-queue": "-4"},
            {"--token-file": os.path.join(self.dir, "no-such-token")},
        ]
        for over in cases:
            self.assertUsage(self.base(**over))
        # A flag without its value.
        self.assertUsage(self.base() + ["--heartbeat-ms"])
        # Nothing was created in the data dir by any of these.
        self.assertEqual(os.listdir(self.data), [])

    def test_data_dir_must_exist(self):
        missing = os.path.join(self.dir, "does-not-exist")
        line = self.assertUsage(self.base(**{"--data-dir": missing}))
        self.assertIn(missing, line)
        self.assertFalse(os.path.exists(missing), "ledgerd must not create it")
        # A file is not a directory either.
        f = os.path.join(self.dir, "a-file")
        open(f, "w").close()
        self.assertUsage(self.base(**{"--data-dir": f}))


class StoreSchemaTest(HarnessTestCase):
    """A store written by a newer ledgerd is refused and left untouched."""

    def setUp(self):
        super().setUp()
        self.c = self.track(Cluster(1, name="schema"))
        self.c.start()
        self.c.append_ok(1, unique("sch"), [{"type": "t", "data": 1}])
        self.assertEqual(self.c.stop(1), 0)
        self.db = self.c.nodes[1].db_path
        db = sqlite3.connect(self.db)
        try:
            rows = dict(db.execute("SELECT key, value FROM meta"))
        finally:
            db.close()
        self.current = rows["schema_version"]
        self.assertIsInstance(self.current, int)

    def set_version(self, sql_value):
        db = sqlite3.connect(self.db)
        try:
            db.execute(f"UPDATE meta SET value={sql_value} "
                       "WHERE key='schema_version'")
            db.commit()
        finally:
            db.close()

    def store_files(self):
        """Hashes of ledger.db and ledger.db-wal (not -shm: that is SQLite's
        shared-memory WAL index, rebuilt by any reader)."""
        d = self.c.nodes[1].data_dir
        return {f: file_sha256(os.path.join(d, f)) for f in os.listdir(d)
                if f in ("ledger.db", "ledger.db-wal")}

    def start_refused(self):
        before = self.store_files()
        r = run_ledgerd(*self.c.command(1)[1:])
        after = self.store_files()
        self.assertNotEqual(r.returncode, 0, "ledgerd started on a newer store")
        self.assertEqual(before, after, "the store files were changed")
        return r

    def test_newer_schema_integer_is_refused_untouched(self):
        self.set_version("99")
        r = self.start_refused()
        errs = error_lines(r.stderr)
        self.assertEqual(len(errs), 1, r.stderr)
        self.assertIn("99", errs[0])
        self.assertRegex(errs[0], rf"\b{self.current}\b")
        db = sqlite3.connect(self.db)
        try:
            v = db.execute("SELECT value FROM meta WHERE key='schema_version'"
                           ).fetchone()[0]
        finally:
            db.close()
        self.assertEqual(v, 99)

    def test_newer_schema_text_is_refused_untouched(self):
        self.set_version("'99'")
        r = self.start_refused()
        self.assertEqual(len(error_lines(r.stderr)), 1, r.stderr)

    def test_newer_schema_text_error_names_both_versions(self):
        # Was a bug: a TEXT '99' (meta.value has no type affinity, so
        # sqlite3 keeps it as text) was refused as "schema_version is not a
        # positive integer" instead of naming versions 99 and 1.
        self.set_version("'99'")
        r = self.start_refused()
        errs = error_lines(r.stderr)
        self.assertIn("99", errs[0])
        self.assertRegex(errs[0], rf"\b{self.current}\b")

    def test_start_failure_writes_one_line_to_stderr(self):
        # Was a bug: the error went to stderr twice (an "error" log line and
        # "ledgerd: ..."); the contract asks for one line.
        self.set_version("99")
        r = self.start_refused()
        self.assertEqual(len(r.stderr.strip().splitlines()), 1, r.stderr)

    def test_newer_schema_with_wal_is_left_untouched(self):
        # Was a bug: with a WAL present (as a crashed newer ledgerd leaves
        # it) the refusing ledgerd checkpointed it into ledger.db on close.
        # Make one: commit the version bump with wal_autocheckpoint off and
        # exit without closing.
        code = ("import os, sqlite3\n"
                f"db = sqlite3.connect({self.db!r})\n"
                "db.execute('PRAGMA wal_autocheckpoint=0')\n"
                "db.execute(\"UPDATE meta SET value=99 "
                "WHERE key='schema_version'\")\n"
                "db.commit()\n"
                "os._exit(0)\n")
        subprocess.run(["/usr/bin/python3", "-c", code], check=True,
                       timeout=60)
        self.assertIn("ledger.db-wal", self.store_files())
        r = self.start_refused()
        self.assertIn("ledger.db-wal", self.store_files(), "WAL kept")
        self.assertIn("99", r.stderr)


class DataDirLockTest(HarnessTestCase):

    @classmethod
    def setUpClass(cls):
        cls._any_failed = False
        cls.c = Cluster(1, name="lock")
        cls.clusters = [cls.c]
        try:
            cls.c.start()
        except BaseException:
            cls.c.close()
            raise

    @classmethod
    def tearDownClass(cls):
        cls.c.failed = cls.c.failed or cls._any_failed
        reports = cls.c.close()
        if reports:
            raise AssertionError("; ".join(reports))

    def test_second_ledgerd_on_same_data_dir_is_refused(self):
        c = self.c
        s = unique("lock")
        c.append_ok(1, s, [{"type": "t"}])
        n = c.nodes[1]
        rp, ap = free_ports(2)
        for raft, api in ((f"127.0.0.1:{rp}", f"127.0.0.1:{ap}"),
                          (n.raft_addr, n.api_addr)):
            r = run_ledgerd("--id", "1", "--data-dir", n.data_dir,
                            "--raft-addr", raft, "--api-addr", api,
                            timeout=30)
            self.assertNotEqual(r.returncode, 0, r.stderr)
            errs = error_lines(r.stderr)
            self.assertEqual(len(errs), 1, r.stderr)
            self.assertRegex(errs[0], r"(?i)in use|locked|another")
        # The first one is unharmed.
        self.assertTrue(n.alive())
        self.assertTrue(c.healthy(1))
        st, _, b = c.read(1, s)
        self.assertEqual(b["last_seq"], 1)
        r = c.append_ok(1, s, [{"type": "t"}])
        self.assertEqual(r["last_seq"], 2)

    def test_api_port_in_use_fails_start(self):
        d = tempfile.mkdtemp(prefix="startup-port-")
        try:
            os.makedirs(os.path.join(d, "n1"))
            busy = socket.socket()
            busy.bind(("127.0.0.1", 0))
            busy.listen(1)
            api = f"127.0.0.1:{busy.getsockname()[1]}"
            raft = f"127.0.0.1:{free_ports(1)[0]}"
            try:
                r = run_ledgerd("--id", "1", "--data-dir", os.path.join(d, "n1"),
                                "--raft-addr", raft, "--api-addr", api,
                                "--bootstrap", f"1={raft}@{api}", timeout=60)
            finally:
                busy.close()
            self.assertEqual(r.returncode, 1, r.stderr)
            errs = error_lines(r.stderr)
            self.assertEqual(len(errs), 1, r.stderr)
            self.assertIn(api.split(":")[1], errs[0])
        finally:
            shutil.rmtree(d, ignore_errors=True)


class RestartTest(HarnessTestCase):

    def test_restart_ignores_bootstrap_and_keeps_data(self):
        c = self.track(Cluster(3, name="restart"))
        c.start()
        s = unique("rs")
        res = c.append_ok(c.leader(), s, [{"type": "t", "id": f"r{i}"}
                                          for i in range(5)])
        for nid in c.ids():
            c.wait_caught_up(nid)
        for nid in c.ids():
            self.assertEqual(c.stop(nid), 0)
        # Restart: node 1 with the same command (bootstrap included), nodes 2
        # and 3 with only --id, --data-dir and the addresses.
        c.start_node(1)
        for nid in (2, 3):
            c.start_node(nid, bootstrap=False)
        c.wait_healthy()
        self.assertRegex(c.log_text(1), r"(?i)bootstrap.*ignored|ignor.*bootstrap")
        for nid in c.ids():
            evs = c.read_all(nid, s)
            self.assertEqual([e["id"] for e in evs], [f"r{i}" for i in range(5)])
            self.assertEqual(evs[-1]["hash"], res["hash"])
        r2 = c.append_ok(c.leader(), s, [{"type": "t"}])
        self.assertEqual(r2["last_seq"], 6)
        self.assertEqual(r2["position"], res["position"] + 1)
        c.wait_verify_agree()


if __name__ == "__main__":
    unittest.main()
