"""make install (PREFIX, DESTDIR) and what it installs: the tree, the
systemd unit (systemd-analyze verify, its restart and stop settings), the
man pages (man -l without warnings; every flag and command of --help in
them), bash completion (complete -p; every command and flag of --help
offered) and the example configuration (a node starts from it).

`make install` builds the plain build (../../build) first: under `make
test` it is up to date, so this takes seconds."""
import json
import os
import re
import shutil
import subprocess
import tempfile
import unittest

from harness import (HOST, free_ports, http_request, wait_until)

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "..", ".."))


def run(cmd, **kw):
    kw.setdefault("capture_output", True)
    kw.setdefault("text", True)
    kw.setdefault("timeout", 600)
    return subprocess.run(cmd, **kw)


def help_text(binary):
    r = run([binary, "--help"])
    assert r.returncode == 0, r.stderr
    return r.stdout


def flags_of(text):
    return set(re.findall(r"--[a-z][a-z0-9-]*", text))


def ctl_commands(help_out):
    """{"cluster up": {"--nodes", ...}, "status": set(), ...} from
    ledgerctl --help: a command line starts with two blanks and a
    lower-case word; its continuation lines (more blanks, then '[') add
    flags."""
    cmds = {}
    current = None
    for line in help_out.splitlines():
        if line.startswith("Global flags"):
            break
        m = re.match(r"^  ([a-z]+)( [a-z]+)?( |$)", line)
        if m:
            current = (m.group(1) + (m.group(2) or "")).strip()
            # "read STREAM": the second word is upper case, not matched.
            # The flags are before the description (3+ blanks).
            cmds[current] = flags_of(re.split(r"\s{3,}", line.strip())[0])
        elif current and re.match(r"^ {5,}\[", line):
            cmds[current] |= flags_of(line)
        elif not line.startswith("    "):
            current = None
    return cmds


def roff_text(path):
    """A man page's source with roff escapes for '-' and fonts undone, so
    flags and commands can be looked up as plain text."""
    with open(path) as f:
        t = f.read()
    t = t.replace("\\-", "-")
    t = re.sub(r"\\f[BIRP]", "", t)
    t = re.sub(r"^\.(B|I|BI|IB|BR|RB|IR|RI|OP|TP|SY)\s*", "", t, flags=re.M)
    return t


class InstallTest(unittest.TestCase):
    maxDiff = None

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="install-")
        # A relative DESTDIR, as `make install DESTDIR=tmp` gives it.
        cls.destdir = os.path.join(cls.tmp, "stage")
        rel = os.path.relpath(cls.destdir, ROOT)
        r = run(["make", "install", f"DESTDIR={rel}"], cwd=ROOT,
                timeout=1800)
        if r.returncode != 0:
            raise AssertionError(f"make install failed:\n{r.stdout[-3000:]}"
                                 f"\n{r.stderr[-3000:]}")
        cls.prefix = os.path.join(cls.destdir, "usr/local")
        cls.ledgerd = os.path.join(cls.prefix, "bin/ledgerd")
        cls.ledgerctl = os.path.join(cls.prefix, "bin/ledgerctl")
        cls.unit = os.path.join(cls.prefix,
                                "lib/systemd/system/ledgerd@.service")
        cls.procs = []

    @classmethod
    def tearDownClass(cls):
        for p in cls.procs:
            if p.poll() is None:
                p.kill()
                p.wait(30)
        shutil.rmtree(cls.tmp, ignore_errors=True)

    # ---- the tree --------------------------------------------------------

    def test_tree(self):
        want = {
            "bin/ledgerd": 0o755,
            "bin/ledgerctl": 0o755,
            "share/man/man8/ledgerd.8": 0o644,
            "share/man/man1/ledgerctl.1": 0o644,
            "lib/systemd/system/ledgerd@.service": 0o644,
            "lib/sysusers.d/ledger.conf": 0o644,
            "share/bash-completion/completions/ledgerctl": 0o644,
            "share/doc/ledger/examples/ledger.conf.example": 0o644,
        }
        found = set()
        for d, _, files in os.walk(self.prefix):
            for f in files:
                found.add(os.path.relpath(os.path.join(d, f), self.prefix))
        self.assertEqual(found, set(want), "installed files")
        for rel, mode in want.items():
            st = os.stat(os.path.join(self.prefix, rel))
            self.assertEqual(st.st_mode & 0o777, mode, rel)
        for b in (self.ledgerd, self.ledgerctl):
            r = run([b, "--version"])
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertRegex(r.stdout, r"^ledger(d|ctl) \d+\.\d+\.\d+\n$")
        with open(os.path.join(self.prefix, "lib/sysusers.d/ledger.conf")) as f:
            self.assertRegex(f.read(), r"(?m)^u ledger ")

    def test_prefix(self):
        """PREFIX=/usr: binaries in /usr/bin, the unit in
        /usr/lib/systemd/system naming /usr/bin/ledgerd."""
        dest = os.path.join(self.tmp, "usr-stage")
        r = run(["make", "install", f"DESTDIR={dest}", "PREFIX=/usr"],
                cwd=ROOT, timeout=1800)
        self.assertEqual(r.returncode, 0, r.stdout[-2000:] + r.stderr[-2000:])
        self.assertTrue(os.access(os.path.join(dest, "usr/bin/ledgerd"),
                                  os.X_OK))
        with open(os.path.join(dest, "usr/lib/systemd/system/"
                                     "ledgerd@.service")) as f:
            self.assertIn("ExecStart=/usr/bin/ledgerd --config "
                          "/etc/ledger/%i.conf\n", f.read())

    # ---- the systemd unit ------------------------------------------------

    def unit_settings(self):
        out = {}
        with open(self.unit) as f:
            for line in f:
                line = line.strip()
                if line and not line.startswith(("#", "[")):
                    k, v = line.split("=", 1)
                    out.setdefault(k, []).append(v)
        return out

    def test_unit_settings(self):
        u = self.unit_settings()
        one = {k: v[-1] for k, v in u.items()}
        self.assertEqual(one["ExecStart"], "/usr/local/bin/ledgerd --config "
                         "/etc/ledger/%i.conf")
        self.assertEqual(one["User"], "ledger")
        self.assertEqual(one["StateDirectory"], "ledger/%i")
        # Restarted after a crash, not after a clean stop (exit 0) or a
        # configuration error (exit 2, which a restart cannot fix).
        self.assertEqual(one["Restart"], "on-failure")
        self.assertIn("2", one["RestartPreventExitStatus"].split())
        # SIGTERM to ledgerd alone, and time for the leader's hand-over
        # (2 x election-ms) and the drain before SIGKILL.
        self.assertEqual(one["KillSignal"], "SIGTERM")
        self.assertEqual(one["ExecReload"], "/bin/kill -HUP $MAINPID")
        self.assertEqual(one["KillMode"], "mixed")
        m = re.fullmatch(r"(\d+)s", one["TimeoutStopSec"])
        self.assertTrue(m and int(m.group(1)) >= 30, one["TimeoutStopSec"])
        for k, v in (("NoNewPrivileges", "yes"), ("ProtectSystem", "strict"),
                     ("ProtectHome", "yes"), ("PrivateTmp", "yes"),
                     ("CapabilityBoundingSet", "")):
            self.assertEqual(one.get(k), v, k)
        self.assertEqual(one["WantedBy"], "multi-user.target")

    def systemd_root(self):
        """DESTDIR as a root systemd-analyze can load the unit from: the
        system's own units (targets the unit refers to) copied in."""
        sysunits = os.path.join(self.destdir, "usr/lib/systemd/system")
        if not os.path.isdir(sysunits):
            shutil.copytree("/usr/lib/systemd/system", sysunits,
                            symlinks=True)
        # ExecReload's /bin/kill, as on the machine it is installed on.
        kill = os.path.join(self.destdir, "bin/kill")
        if not os.path.exists(kill):
            os.makedirs(os.path.dirname(kill), exist_ok=True)
            shutil.copy2(shutil.which("kill", path="/usr/bin:/bin"), kill)
        return self.destdir

    def verify(self, root):
        env = dict(os.environ,
                   MANPATH=os.path.join(self.prefix, "share/man"))
        return run(["systemd-analyze", f"--root={root}", "verify",
                    "ledgerd@1.service"], env=env)

    def test_unit_verifies(self):
        self.assertIsNotNone(shutil.which("systemd-analyze"),
                             "systemd-analyze missing: run scripts/deps.sh")
        root = self.systemd_root()
        r = self.verify(root)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertEqual(r.stderr.strip(), "", "systemd-analyze warnings")
        # The check can fail: a misspelt key is reported.
        with open(self.unit) as f:
            good = f.read()
        try:
            with open(self.unit, "w") as f:
                f.write(good.replace("ProtectSystem=", "ProtectSystm="))
            r = self.verify(root)
            self.assertIn("ProtectSystm", r.stderr)
        finally:
            with open(self.unit, "w") as f:
                f.write(good)
        # The exposure systemd rates the hardening at ("OK" is below 4.5).
        r = run(["systemd-analyze", "security", "--offline=true",
                 f"--root={root}", "ledgerd@1.service"])
        m = re.search(r"Overall exposure level for \S+: (\d+\.\d+)",
                      r.stdout + r.stderr)
        self.assertIsNotNone(m, r.stdout[-500:] + r.stderr[-500:])
        self.assertLessEqual(float(m.group(1)), 3.0, m.group(0))

    # ---- man pages -------------------------------------------------------

    def test_man_pages_render(self):
        env = dict(os.environ, MANWIDTH="80", LC_ALL="C.UTF-8")
        for sec, name in (("8", "ledgerd"), ("1", "ledgerctl")):
            page = os.path.join(self.prefix, f"share/man/man{sec}/{name}.{sec}")
            r = run(["man", "--warnings", "-l", page], env=env)
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertEqual(r.stderr.strip(), "", f"{name}({sec}) warnings")
            self.assertIn("SYNOPSIS", r.stdout)
            self.assertGreater(len(r.stdout.splitlines()), 60)
            # man finds it by name in the installed tree.
            r = run(["man", "-M", os.path.join(self.prefix, "share/man"),
                     "-w", sec, name], env=env)
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertEqual(os.path.realpath(r.stdout.strip()),
                             os.path.realpath(page))

    def test_ledgerd_page_has_every_flag(self):
        text = roff_text(os.path.join(self.prefix, "share/man/man8/ledgerd.8"))
        missing = sorted(f for f in flags_of(help_text(self.ledgerd))
                         if f not in text)
        self.assertEqual(missing, [], "flags of ledgerd --help not in "
                         "ledgerd(8)")

    def test_ledgerctl_page_has_every_command_and_flag(self):
        out = help_text(self.ledgerctl)
        cmds = ctl_commands(out)
        self.assertIn("cluster up", cmds)
        self.assertIn("--nodes", cmds["cluster up"])
        self.assertIn("append", cmds)
        text = roff_text(os.path.join(self.prefix,
                                      "share/man/man1/ledgerctl.1"))
        missing = sorted(c for c in cmds if c not in text)
        missing += sorted(f for f in flags_of(out) if f not in text)
        self.assertEqual(missing, [], "commands/flags of ledgerctl --help "
                         "not in ledgerctl(1)")

    # ---- bash completion -------------------------------------------------

    def complete(self, *words):
        """What bash completion offers for `ledgerctl WORDS...` (the last
        word is the one being completed)."""
        words = ["ledgerctl", *words]
        script = (
            "set -e\n"
            f"source {self.prefix}/share/bash-completion/completions/"
            "ledgerctl\n"
            "complete -p ledgerctl\n"
            f"COMP_WORDS=({' '.join(json.dumps(w) for w in words)})\n"
            "COMP_CWORD=$((${#COMP_WORDS[@]} - 1))\n"
            "COMPREPLY=()\n"
            "_ledgerctl\n"
            "printf '%s\\n' \"${COMPREPLY[@]}\"\n")
        r = run(["bash", "--norc", "--noprofile", "-c", script], cwd=self.tmp)
        self.assertEqual(r.returncode, 0, r.stderr)
        lines = r.stdout.splitlines()
        self.assertEqual(lines[0], "complete -F _ledgerctl ledgerctl")
        return set(l for l in lines[1:] if l)

    def test_completion(self):
        out = help_text(self.ledgerctl)
        cmds = ctl_commands(out)
        globals_ = flags_of(out.split("Global flags:")[1].split("\n\n")[0])
        first = {c.split()[0] for c in cmds}
        self.assertEqual(self.complete(""), first)
        for c in first:
            subs = {x.split()[1] for x in cmds if x.startswith(c + " ")}
            if subs and c in cmds:
                # Also a command of its own ("backup FILE"): subs, files.
                self.assertTrue(subs <= self.complete(c, ""), c)
            elif subs:
                self.assertEqual(self.complete(c, ""), subs, c)
        for c, flags in cmds.items():
            offered = self.complete(*c.split(), "--")
            self.assertTrue(flags | globals_ <= offered,
                            f"{c}: missing {sorted((flags | globals_) - offered)}")
        self.assertEqual(self.complete("--"), globals_)
        # Values.
        self.assertEqual(self.complete("member", "role", "3", ""),
                         {"voter", "standby", "spare"})
        self.assertEqual(self.complete("member", "add", "4", "a", "b",
                                       "--role", "s"), {"standby", "spare"})
        self.assertEqual(self.complete("read", "s", "--consistency", ""),
                         {"strong", "leader", "any"})
        # Bash splits "--endpoints 127.0.0.1:8001" at ':': still skipped.
        self.assertEqual(self.complete("--endpoints", "127.0.0.1", ":",
                                       "8001", "member", ""),
                         {x.split()[1] for x in cmds
                          if x.startswith("member ")})

    # ---- example configuration -------------------------------------------

    def test_example_config_starts_a_node(self):
        """The installed example, with this machine's addresses, a temp
        data dir and a one-node bootstrap, starts a node that shows the
        example's zone."""
        with open(os.path.join(self.prefix, "share/doc/ledger/examples/"
                               "ledger.conf.example")) as f:
            text = f.read()
        raft, api = free_ports(2)
        data = os.path.join(self.tmp, "example-data")
        os.makedirs(data)
        token = os.path.join(self.tmp, "token")
        with open(token, "w") as f:
            f.write("s3cret\n")
        text = re.sub(r"(?m)^bootstrap = .*$",
                      f"bootstrap = 1={HOST}:{raft}@{HOST}:{api}", text)
        text = re.sub(r"(?m)^raft-addr = \S+", f"raft-addr = {HOST}:{raft}",
                      text)
        text = re.sub(r"(?m)^api-addr = \S+", f"api-addr = {HOST}:{api}",
                      text)
        text = re.sub(r"(?m)^data-dir = \S+", f"data-dir = {data}", text)
        text = re.sub(r"(?m)^token-file = \S+", f"token-file = {token}",
                      text)
        # Loopback here: no TLS needed (the example's certificates are for
        # its own hosts).
        text = re.sub(r"(?m)^tls-(cert|key|ca) = .*$", "", text)
        conf = os.path.join(self.tmp, "1.conf")
        with open(conf, "w") as f:
            f.write(text)
        log = open(os.path.join(self.tmp, "example.log"), "wb")
        p = subprocess.Popen([self.ledgerd, "--config", conf], stdout=log,
                             stderr=subprocess.STDOUT)
        type(self).procs.append(p)
        addr = f"{HOST}:{api}"
        auth = {"Authorization": "Bearer s3cret"}

        def zone():
            self.assertIsNone(p.poll(), "ledgerd exited")
            st, _, b = http_request(addr, "GET", "/v1/cluster", headers=auth,
                                    timeout=5)
            return st == 200 and b["members"][0].get("zone") == "rack-a"
        wait_until(zone, timeout=60, msg="the example node to lead, zone "
                   "rack-a")
        p.terminate()
        self.assertEqual(p.wait(60), 0)
        log.close()


if __name__ == "__main__":
    unittest.main()
