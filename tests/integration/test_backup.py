"""Backups, restore, export and import (issue 13 points 1-4), on real
ledgerd processes driven through ledgerctl:

- a backup taken while appends go on is a consistent prefix of the log,
  readable by SQLite with its stamps, checked before ledgerctl says so, and
  `backup verify` agrees; appends went on during it;
- bad inputs: a dead or malformed --endpoint, no token, a truncated or
  tampered backup, a missing checksum, a backup of a newer schema: each one
  line, exit 1 (2 for usage), no file left that looks complete;
- restore: a new cluster (new id, restored_from the old one) holding every
  event and hash, taking appends from the backup's position on, managed by
  `cluster down/up` afterwards; refused with one line and nothing changed
  for a non-empty dir, a dir where a node runs, a newer schema, a cut file;
- export: every event once, in position order, data byte for byte (the
  hash chain recomputes from the lines alone); import into another cluster,
  again (nothing appended) and after a half import (only the rest).
"""
import glob
import hashlib
import json
import os
import re
import shutil
import sqlite3
import struct
import tempfile
import threading

from harness import (Cluster, ClusterTestCase, LEDGERCTL, file_sha256,
                     free_port_range, ledgerctl, unique, wait_until)

# LEDGER_SCHEMA_VERSION (store/include/store/store.h): the store schema this
# build writes.
SCHEMA = 2

TOKEN = "backup-test-token"


def chain_hash(prev, position, stream, seq, type_, id_, ts, data):
    """The event hash of docs/store.md ("Hash chain")."""
    def lp(b):
        return struct.pack(">I", len(b)) + b
    h = hashlib.sha256()
    h.update(prev)
    h.update(struct.pack(">Q", position))
    h.update(lp(stream.encode()))
    h.update(struct.pack(">Q", seq))
    h.update(lp(type_.encode()))
    h.update(lp((id_ or "").encode()))
    h.update(struct.pack(">q", ts))
    h.update(lp(data))
    return h.digest()


def raw_data(line):
    """The data text of an export line, byte for byte: between "data": and
    the ,"ts": that follows it (ts and hash come last)."""
    start = line.index(b',"data":') + len(b',"data":')
    end = line.rindex(b',"ts":')
    return line[start:end]


def backup_rows(path):
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        meta = db.execute("SELECT cluster_id, position, head_hash, raft_index,"
                          " raft_term, schema_version, created_at"
                          " FROM backup_meta").fetchall()
        rows = db.execute("SELECT position, hex(hash) FROM events"
                          " ORDER BY position").fetchall()
    finally:
        db.close()
    return meta, [(p, h.lower()) for p, h in rows]


def one_line(testcase, proc, code):
    """proc failed with exit `code` and exactly one line on stderr."""
    testcase.assertEqual(proc.returncode, code,
                         f"stdout={proc.stdout!r} stderr={proc.stderr!r}")
    lines = proc.stderr.strip().splitlines()
    testcase.assertEqual(len(lines), 1, proc.stderr)
    testcase.assertTrue(lines[0].startswith("ledgerctl: "), lines[0])
    return lines[0]


def rewrite_sha(path):
    with open(path + ".sha256", "w") as f:
        f.write(f"{file_sha256(path)}  {os.path.basename(path)}\n")


class BackupTest(ClusterTestCase):
    TOKEN = TOKEN

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.tmp = tempfile.mkdtemp(prefix="backup-files-")
        c = cls.c
        leader = c.leader()
        cls.stream = unique("orders")
        # Some history, events with and without ids, odd data.
        for b in range(20):
            c.append_ok(leader, cls.stream, [
                {"type": "created", "id": f"o-{b}-{i}",
                 "data": {"b": b, "i": i, "f": 1.5e3, "s": "a\u0000b"}}
                for i in range(50)])
        c.append_ok(leader, unique("audit"), [
            {"type": "login", "data": {"user": "ann"}},
            {"type": "note", "data": "no id, a string"}])
        cls.base = os.path.join(cls.tmp, "base.db")
        p = cls.ctl("backup", cls.base)
        assert p.returncode == 0, p.stderr

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)
        super().tearDownClass()

    @classmethod
    def ctl(cls, *args, **kw):
        eps = ",".join(cls.c.addr(i) for i in cls.c.ids())
        return ledgerctl("--endpoints", eps, "--token-file",
                         cls.c.token_file, *args, **kw)

    def copy_base(self, name):
        path = os.path.join(self.tmp, name)
        shutil.copy(self.base, path)
        shutil.copy(self.base + ".sha256", path + ".sha256")
        return path

    def no_partial(self, directory):
        self.assertEqual(glob.glob(os.path.join(directory, "*.partial*")), [])

    # ---- backup ------------------------------------------------------------

    def test_backup_under_load(self):
        """A backup while appends go on: a prefix of the log with every
        append acknowledged before it began, stamped, verified."""
        c = self.c
        s = unique("load")
        acked = []
        stop = threading.Event()
        errors = []

        def writer():
            b = 0
            while not stop.is_set():
                try:
                    r = c.append_retry(s, [{"type": "w", "id": f"w-{b}-{i}",
                                            "data": {"b": b}}
                                           for i in range(20)], timeout=30)
                    acked.append((b, r["position"]))
                except AssertionError as e:
                    errors.append(str(e))
                    return
                b += 1
        t = threading.Thread(target=writer)
        t.start()
        try:
            wait_until(lambda: len(acked) >= 5, msg="appends before backup")
            before = len(acked)
            before_pos = acked[before - 1][1]
            path = os.path.join(self.tmp, "load.db")
            p = self.ctl("--json", "backup", path)
            during = len(acked) - before
        finally:
            stop.set()
            t.join(60)
        self.assertEqual(errors, [])
        self.assertEqual(p.returncode, 0, p.stderr)
        out = json.loads(p.stdout)
        self.assertTrue(out["ok"])
        self.assertEqual(out["from"], c.addr(c.leader()))
        self.assertGreater(during, 0, "appends stopped during the backup")
        self.no_partial(self.tmp)

        # The sha256sum format, and the bytes it names.
        with open(path + ".sha256") as f:
            digest, name = f.read().split()
        self.assertEqual(name, "load.db")
        self.assertEqual(digest, file_sha256(path))

        meta, rows = backup_rows(path)
        self.assertEqual(len(meta), 1)
        cid, pos, head, raft_index, raft_term, schema, created = meta[0]
        self.assertEqual(cid, c.cluster_info(1)["cluster_id"])
        self.assertEqual(pos, out["position"])
        self.assertEqual(head, out["hash"])
        self.assertGreater(raft_index, 0)
        self.assertGreater(raft_term, 0)
        self.assertEqual(schema, SCHEMA)
        self.assertRegex(created, r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
        self.assertGreaterEqual(pos, before_pos)
        self.assertEqual([p for p, _ in rows], list(range(1, pos + 1)))
        self.assertEqual(rows[-1][1], head)
        # The cluster's events 1..pos are the backup's, hash for hash.
        leader = c.leader()
        got = []
        while len(got) < pos:
            st, _, b = c.get(leader, f"/v1/internal/events?from_position="
                                     f"{len(got) + 1}&limit=10000")
            self.assertEqual(st, 200)
            got += [(e["position"], e["hash"]) for e in b["events"]]
        self.assertEqual(got[:pos], rows)

        p = self.ctl("backup", "verify", path)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn(f"position {pos}, hash {head}", p.stdout)
        self.assertIn("verified", p.stdout)

    def test_backup_line_and_follower(self):
        """The printed line; --endpoint backs up the node named (a
        follower), which holds a prefix of the leader's log."""
        c = self.c
        follower = c.followers()[0]
        path = os.path.join(self.tmp, "follower.db")
        p = self.ctl("backup", path, "--endpoint", c.addr(follower))
        self.assertEqual(p.returncode, 0, p.stderr)
        m = re.fullmatch(r"backup: (\d+) events, position (\d+), hash "
                         r"([0-9a-f]{64}), verified\n", p.stdout)
        self.assertIsNotNone(m, p.stdout)
        self.assertEqual(m.group(1), m.group(2))
        st, _, b = c.get(c.leader(), "/v1/internal/hash?position="
                                      f"{m.group(2)}")
        self.assertEqual(b["hash"], m.group(3))

    def test_backup_bad_inputs(self):
        """Each refused with one line, and no file left behind."""
        c = self.c
        d = tempfile.mkdtemp(dir=self.tmp)
        path = os.path.join(d, "x.db")
        dead = free_port_range(1)
        line = one_line(self, self.ctl("backup", path, "--endpoint",
                                       f"127.0.0.1:{dead}"), 1)
        self.assertIn("connect", line)
        one_line(self, self.ctl("backup", path, "--endpoint", "nonsense"), 2)
        one_line(self, self.ctl("backup"), 2)
        eps = ",".join(c.addr(i) for i in c.ids())
        line = one_line(self, ledgerctl("--endpoints", eps, "backup", path), 1)
        self.assertIn("401", line)
        line = one_line(self, self.ctl("backup", os.path.join(
            d, "no", "such", "dir.db")), 1)
        self.assertEqual(os.listdir(d), [])
        # Unauthorised on the API itself.
        st, _, _ = c.get(1, "/v1/backup", auth=False)
        self.assertEqual(st, 401)

    # ---- verify --------------------------------------------------------------

    def test_verify_refusals(self):
        """A cut file, a changed event, a missing checksum, a newer
        schema: exit 1 with the reason (the first bad position when it is
        about an event)."""
        cut = self.copy_base("cut.db")
        with open(cut, "r+b") as f:
            f.truncate(os.path.getsize(cut) // 2)
        line = one_line(self, self.ctl("backup", "verify", cut), 1)
        self.assertIn("checksum mismatch", line)
        rewrite_sha(cut)
        one_line(self, self.ctl("backup", "verify", cut), 1)

        bad = self.copy_base("bad.db")
        db = sqlite3.connect(bad)
        db.execute("UPDATE events SET data = '{\"b\":99}' WHERE position = 17")
        db.commit()
        db.close()
        rewrite_sha(bad)
        line = one_line(self, self.ctl("backup", "verify", bad), 1)
        self.assertIn("first bad position 17", line)

        bare = self.copy_base("bare.db")
        os.unlink(bare + ".sha256")
        line = one_line(self, self.ctl("backup", "verify", bare), 1)
        self.assertIn("bare.db.sha256", line)

        newer = self.copy_base("newer.db")
        db = sqlite3.connect(newer)
        db.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'",
                   (SCHEMA + 1,))
        db.execute("UPDATE backup_meta SET schema_version = ?",
                   (SCHEMA + 1,))
        db.commit()
        db.close()
        rewrite_sha(newer)
        line = one_line(self, self.ctl("backup", "verify", newer), 1)
        self.assertIn(f"schema version {SCHEMA + 1}", line)
        self.assertIn("newer ledgerd", line)

        p = self.ctl("backup", "verify", self.base)
        self.assertEqual(p.returncode, 0, p.stderr)

    # ---- restore -------------------------------------------------------------

    def restore_ports(self):
        raft = free_port_range(3)
        api = free_port_range(3, avoid=range(raft, raft + 3))
        return raft, api

    def test_restore(self):
        """A new cluster from the backup: every event and hash, a new id,
        restored_from, appends from the backup's position on; cluster
        down/up manage it."""
        c = self.c
        old_id = c.cluster_info(1)["cluster_id"]
        meta, rows = backup_rows(self.base)
        pos = meta[0][1]
        d = os.path.join(tempfile.mkdtemp(dir=self.tmp), "restored")
        raft, api = self.restore_ports()
        p = self.ctl("restore", self.base, "--dir", d, "--nodes", "3",
                     "--raft-port", str(raft), "--api-port", str(api))
        eps = ",".join(f"127.0.0.1:{api + i}" for i in range(3))

        def down():
            ledgerctl("cluster", "down", "--dir", d)
        self.addCleanup(down)
        self.assertEqual(p.returncode, 0, p.stderr + p.stdout)
        self.assertIn(f"position {pos}", p.stdout)
        self.assertIn(f"from cluster {old_id}", p.stdout)

        def get(i, path):
            from harness import http_request
            return http_request(f"127.0.0.1:{api + i}", "GET", path,
                                headers={"Authorization": f"Bearer {TOKEN}"})
        st, _, info = get(0, "/v1/cluster")
        self.assertEqual(st, 200)
        self.assertNotEqual(info["cluster_id"], old_id)
        self.assertEqual(info["restored_from"], old_id)
        self.assertEqual(sorted(m["role"] for m in info["members"]),
                         ["voter"] * 3)
        # Every node holds every event and hash of the backup.
        for i in range(3):
            def caught_up():
                st, _, b = get(i, "/v1/internal/status")
                return st == 200 and b["position"] >= pos
            wait_until(caught_up, timeout=60, msg=f"restored node {i + 1}")
            got = []
            while len(got) < pos:
                st, _, b = get(i, "/v1/internal/events?from_position="
                                  f"{len(got) + 1}&limit=10000")
                got += [(e["position"], e["hash"]) for e in b["events"]]
            self.assertEqual(got[:pos], rows)
            st, _, b = get(i, "/v1/cluster?local=1")
            self.assertEqual(b.get("restored_from"), old_id)
        # Appends go on from the backup's position.
        p = ledgerctl("--endpoints", eps, "--token-file", c.token_file,
                      "append", unique("after"), '{"x":1}')
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn(f"position {pos + 1} ", p.stdout)
        p = ledgerctl("--endpoints", eps, "--token-file", c.token_file,
                      "--timeout-ms", "60000", "verify")
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        # cluster down/up restart it with its data.
        p = ledgerctl("cluster", "down", "--dir", d)
        self.assertEqual(p.returncode, 0, p.stderr)
        p = ledgerctl("--token-file", c.token_file, "cluster", "up", "--dir",
                      d)
        self.assertEqual(p.returncode, 0, p.stderr)

        def restarted():
            st, _, b = get(0, "/v1/internal/status")
            return st == 200 and b["position"] == pos + 1
        wait_until(restarted, timeout=60, msg="restarted restored cluster")
        st, _, info2 = get(0, "/v1/cluster")
        self.assertEqual(info2["cluster_id"], info["cluster_id"])

    def test_restore_refusals(self):
        """Non-empty dir, a dir where a node runs, a newer schema, a cut
        file: one line, exit 1, nothing changed."""
        raft, api = self.restore_ports()
        common = ["--raft-port", str(raft), "--api-port", str(api)]
        full = tempfile.mkdtemp(dir=self.tmp)
        with open(os.path.join(full, "keep.txt"), "w") as f:
            f.write("mine")
        line = one_line(self, self.ctl("restore", self.base, "--dir", full,
                                       *common), 1)
        self.assertIn("not empty", line)
        self.assertEqual(os.listdir(full), ["keep.txt"])

        # A node runs there (its pid file, as cluster up writes it).
        running = tempfile.mkdtemp(dir=self.tmp)
        pid = self.c.nodes[1].proc.pid
        with open(os.path.join(running, "node1.pid"), "w") as f:
            f.write(f"{pid}\n")
        line = one_line(self, self.ctl("restore", self.base, "--dir",
                                       running, *common), 1)
        self.assertIn(f"a ledgerd (pid {pid}) runs in", line)
        self.assertEqual(os.listdir(running), ["node1.pid"])

        newer = self.copy_base("newer2.db")
        db = sqlite3.connect(newer)
        db.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'",
                   (SCHEMA + 1,))
        db.execute("UPDATE backup_meta SET schema_version = ?",
                   (SCHEMA + 1,))
        db.commit()
        db.close()
        rewrite_sha(newer)
        target = os.path.join(self.tmp, "never")
        line = one_line(self, self.ctl("restore", newer, "--dir", target,
                                       *common), 1)
        self.assertIn(f"schema version {SCHEMA + 1}", line)
        self.assertFalse(os.path.exists(target))

        cut = self.copy_base("cut2.db")
        with open(cut, "r+b") as f:
            f.truncate(4096)
        line = one_line(self, self.ctl("restore", cut, "--dir", target,
                                       *common), 1)
        self.assertIn("checksum mismatch", line)
        self.assertFalse(os.path.exists(target))
        one_line(self, self.ctl("restore", self.base, *common), 2)

    # ---- export / import -----------------------------------------------------

    def test_export_import(self):
        """Export: the chain recomputes from the lines alone; import into
        another cluster, again (nothing appended), and after a half import
        (only the rest); --stream and --from-position."""
        c = self.c
        p = self.ctl("export")
        self.assertEqual(p.returncode, 0, p.stderr)
        lines = p.stdout.encode().splitlines()
        self.assertGreater(len(lines), 1000)
        prev = bytes(32)
        for n, line in enumerate(lines, 1):
            e = json.loads(line)
            self.assertEqual(list(e), ["stream", "seq", "position", "type",
                                       "id", "data", "ts", "hash"])
            self.assertEqual(e["position"], n)
            h = chain_hash(prev, e["position"], e["stream"], e["seq"],
                           e["type"], e["id"], e["ts"], raw_data(line))
            self.assertEqual(h.hex(), e["hash"], f"line {n}")
            prev = h
        export = os.path.join(self.tmp, "export.jsonl")
        with open(export, "wb") as f:
            f.write(b"\n".join(lines) + b"\n")

        # One stream from a position: the same lines.
        events = [json.loads(x) for x in lines]
        mid = events[len(events) // 2]["position"]
        p = self.ctl("export", "--stream", self.stream, "--from-position",
                     str(mid))
        self.assertEqual(p.returncode, 0, p.stderr)
        want = [x for x, e in zip(lines, events)
                if e["stream"] == self.stream and e["position"] >= mid]
        self.assertEqual(p.stdout.encode().splitlines(), want)

        target = self.track(Cluster(1, token=TOKEN, name="import")).start()
        ep = target.addr(1)

        def imp(path):
            return ledgerctl("--endpoints", ep, "--token-file",
                             target.token_file, "import", path)
        half = os.path.join(self.tmp, "half.jsonl")
        with open(half, "wb") as f:
            f.write(b"\n".join(lines[: len(lines) // 2]) + b"\n")
        p = imp(half)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(p.stdout, f"import: {len(lines) // 2} events read, "
                         f"{len(lines) // 2} appended, 0 already present\n")
        p = imp(export)
        self.assertEqual(p.returncode, 0, p.stderr)
        rest = len(lines) - len(lines) // 2
        self.assertEqual(p.stdout, f"import: {len(lines)} events read, {rest} "
                         f"appended, {len(lines) // 2} already present\n")
        p = imp(export)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(p.stdout, f"import: {len(lines)} events read, 0 "
                         f"appended, {len(lines)} already present\n")
        # Every event once, per stream in order: type, data and its id (or
        # src:HASH for one that had none).
        p = ledgerctl("--endpoints", ep, "--token-file", target.token_file,
                      "export")
        self.assertEqual(p.returncode, 0, p.stderr)
        got = [json.loads(x) for x in p.stdout.splitlines()]
        self.assertEqual(len(got), len(events))

        def key(e, imported):
            id_ = e["id"] if imported or e["id"] is not None \
                else "src:" + e["hash"]
            return (e["stream"], e["seq"], e["type"], id_,
                    json.dumps(e["data"]))
        self.assertEqual(sorted(key(e, True) for e in got),
                         sorted(key(e, False) for e in events))
        # Bad lines: one line, exit 1.
        bad = os.path.join(self.tmp, "bad.jsonl")
        with open(bad, "w") as f:
            f.write('{"stream":"x"}\n')
        line = one_line(self, imp(bad), 1)
        self.assertIn("line 1", line)
        one_line(self, imp(os.path.join(self.tmp, "missing.jsonl")), 1)


if __name__ == "__main__":
    import unittest
    unittest.main()
