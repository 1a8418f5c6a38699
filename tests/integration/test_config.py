"""ledgerd --config FILE: a node started from a file alone; command-line
flags win over the file; an unknown key, a bad value, a key given twice,
a missing file: one line naming the file and the line, exit 2, nothing
started (the data dir stays empty)."""
import json
import os
import shutil
import subprocess
import tempfile
import unittest

from harness import (HOST, LEDGERD, SLOW, free_ports, http_request,
                     sanitizer_report, wait_until)


class ConfigFileTest(unittest.TestCase):
    maxDiff = None

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="config-")
        self.data = os.path.join(self.tmp, "data")
        os.makedirs(self.data)
        self.raft, self.api = free_ports(2)
        self.conf = os.path.join(self.tmp, "node.conf")
        self.procs = []
        self.keep = False

    def tearDown(self):
        for p, log in self.procs:
            if p.poll() is None:
                p.kill()
                p.wait(30)
            rep = sanitizer_report(log)
            if rep:
                self.keep = True
                self.fail(f"sanitizer report: {rep}")
        if not self.keep:
            shutil.rmtree(self.tmp, ignore_errors=True)

    def good_lines(self):
        """Every flag a node needs, with comments, blanks, a quoted value
        and a trailing comment."""
        return [
            "# node 1, alone",
            "",
            "id = 1",
            f"data-dir = {self.data}",
            f"raft-addr = {HOST}:{self.raft}   # raft",
            f'api-addr = "{HOST}:{self.api}"',
            f"bootstrap = 1={HOST}:{self.raft}@{HOST}:{self.api}",
            "\theartbeat-ms=50",
            "election-ms = 500",
            "log-format = json",
            "zone = from-file",
            "insecure = false   # a switch",
        ]

    def write(self, lines):
        with open(self.conf, "w") as f:
            f.write("\n".join(lines) + "\n")

    def refused(self, *args, where=None, needle=None):
        """ledgerd with args exits 2 at once with one line on stderr that
        names `where` (e.g. 'FILE:3:') and contains `needle`; nothing in
        the data dir."""
        r = subprocess.run([LEDGERD, *args], capture_output=True, text=True,
                           timeout=60 * SLOW)
        self.assertEqual(r.returncode, 2, r.stderr)
        lines = r.stderr.strip().splitlines()
        self.assertEqual(len(lines), 1, r.stderr)
        self.assertTrue(lines[0].startswith("ledgerd: "), lines[0])
        if where is not None:
            self.assertIn(where, lines[0])
        if needle is not None:
            self.assertIn(needle, lines[0])
        self.assertEqual(os.listdir(self.data), [], "something was started")
        return lines[0]

    def start(self, *args):
        log = os.path.join(self.tmp, f"node-{len(self.procs)}.log")
        logf = open(log, "wb")
        p = subprocess.Popen([LEDGERD, *args], stdout=logf,
                             stderr=subprocess.STDOUT)
        logf.close()
        self.procs.append((p, log))
        return p, log

    def cluster(self):
        st, _, b = http_request(f"{HOST}:{self.api}", "GET", "/v1/cluster",
                                timeout=5)
        return b if st == 200 and b.get("leader_id") == 1 else None

    def stop(self, p):
        p.terminate()
        self.assertEqual(p.wait(60 * SLOW), 0)

    # ---- good files --------------------------------------------------------

    def test_node_from_file(self):
        self.write(self.good_lines())
        p, log = self.start("--config", self.conf)
        c = wait_until(self.cluster, timeout=60, msg="node 1 to lead")
        self.assertEqual(c["members"][0]["api_addr"], f"{HOST}:{self.api}")
        wait_until(lambda: self.cluster()["members"][0]["zone"] ==
                   "from-file", timeout=30, msg="zone from the file")
        self.stop(p)
        with open(log) as f:
            recs = [json.loads(l) for l in f if l.strip()]  # log-format
        self.assertTrue(any(f"config {self.conf}" in json.dumps(r)
                            for r in recs), recs[:3])

    def test_command_line_wins(self):
        self.write(self.good_lines())
        p, log = self.start("--zone", "from-flag", "--config", self.conf,
                            "--log-format", "text")
        wait_until(lambda: (self.cluster() or {}).get("members", [{}])[0]
                   .get("zone") == "from-flag", timeout=60,
                   msg="the command line's zone")
        self.stop(p)
        with open(log) as f:
            first = f.readline()
        self.assertFalse(first.startswith("{"), first)
        # A restart with the file alone takes the file's zone again.
        p, _ = self.start("--config=" + self.conf)
        wait_until(lambda: (self.cluster() or {}).get("members", [{}])[0]
                   .get("zone") == "from-file", timeout=60,
                   msg="the file's zone after a restart")
        self.stop(p)

    # ---- refused -----------------------------------------------------------

    def test_unknown_key(self):
        lines = self.good_lines()
        lines.insert(3, "colour = blue")
        self.write(lines)
        msg = self.refused("--config", self.conf, where=f"{self.conf}:4:",
                           needle="unknown key 'colour'")
        self.assertNotIn("did you mean", msg)
        lines[3] = "election_ms = 900"
        self.write(lines)
        self.refused("--config", self.conf, where=f"{self.conf}:4:",
                     needle="did you mean 'election-ms'")
        lines[3] = "--id = 1"
        self.write(lines)
        self.refused("--config", self.conf, where=f"{self.conf}:4:",
                     needle="without dashes")
        for key in ("config", "help", "version"):
            lines[3] = f"{key} = x"
            self.write(lines)
            self.refused("--config", self.conf, where=f"{self.conf}:4:",
                         needle="cannot be set in a config file")

    def test_bad_values(self):
        base = self.good_lines()
        cases = [
            ("heartbeat-ms = fast", "--heartbeat-ms 'fast'"),
            ("id = 0", "--id '0'"),
            ("raft-addr = nowhere", "--raft-addr"),
            ("log-level = loud", "--log-level 'loud'"),
            ("zone = two words", "--zone 'two words'"),
            ("max-body = ", "needs a value"),
            ('zone = "open', "no closing"),
            ('zone = "a" b', "after the quoted value"),
            ("just-a-word", "unknown key 'just-a-word'"),
            ("insecure = maybe", "is a switch: its value must be true or"),
        ]
        for line, needle in cases:
            with self.subTest(line=line):
                lines = [l for l in base
                         if not l.strip().startswith(
                             line.split("=")[0].strip())]
                lines.append(line)
                self.write(lines)
                self.refused("--config", self.conf,
                             where=f"{self.conf}:{len(lines)}:",
                             needle=needle)

    def test_checks_after_parsing_name_the_line(self):
        lines = self.good_lines()
        lines[3] = f"data-dir = {self.tmp}/absent"
        self.write(lines)
        self.refused("--config", self.conf, where=f"{self.conf}:4:",
                     needle="does not exist")
        lines = self.good_lines()
        lines[7] = "heartbeat-ms = 800"  # not below election-ms (500)
        self.write(lines)
        self.refused("--config", self.conf, where=f"{self.conf}:8:",
                     needle="must be below")
        # Required and missing: says where it may come from.
        self.write([l for l in self.good_lines() if not l.startswith("id")])
        self.refused("--config", self.conf, needle="missing --id")

    def test_duplicate_key(self):
        lines = self.good_lines() + ["zone = again"]
        self.write(lines)
        self.refused("--config", self.conf, where=f"{self.conf}:{len(lines)}:",
                     needle="already set on line 11")

    def test_command_line_errors_are_not_blamed_on_the_file(self):
        self.write(self.good_lines())
        msg = self.refused("--config", self.conf, "--election-ms", "x",
                           needle="--election-ms 'x'")
        self.assertNotIn(self.conf + ":", msg)

    def test_file_problems(self):
        self.refused("--config", os.path.join(self.tmp, "absent.conf"),
                     needle="No such file")
        self.write(self.good_lines())
        self.refused("--config", self.conf, "--config", self.conf,
                     needle="twice")
        self.refused("--config", needle="needs a value")
        self.refused("--conf", self.conf, needle="in full")
        with open(self.conf, "w") as f:
            f.write("zone = " + "x" * 5000 + "\n")
        self.refused("--config", self.conf, where=f"{self.conf}:1:",
                     needle="longer than")


if __name__ == "__main__":
    unittest.main()
