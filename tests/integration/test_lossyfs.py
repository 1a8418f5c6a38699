"""lossyfs (tests/lossyfs/lossyfs.c), the FUSE file system of the chaos
fault lose-unsynced: it loses exactly the writes not yet fsynced; and a
cluster on it keeps every acknowledged append through a power cut of every
node. Needs root, /dev/fuse and the lossyfs binary (LOSSYFS, or next to
the ledgerd under test); skipped otherwise."""
import os
import re
import shutil
import signal
import subprocess
import tempfile
import unittest

from harness import (LEDGERD, Cluster, HarnessTestCase, unique, wait_until)

LOSSYFS = os.environ.get("LOSSYFS") or os.path.join(
    os.path.dirname(LEDGERD), "tests", "lossyfs")
CAN_RUN = (os.geteuid() == 0 and os.path.exists("/dev/fuse") and
           os.access(LOSSYFS, os.X_OK))


class Mount:
    """lossyfs over BACK at MNT (both created)."""

    def __init__(self, back, mnt):
        self.back, self.mnt = back, mnt
        os.makedirs(back, exist_ok=True)
        os.makedirs(mnt, exist_ok=True)
        self.log = open(mnt.rstrip("/") + ".lossyfs.log", "w+")
        self.proc = subprocess.Popen([LOSSYFS, back, mnt], stdout=self.log,
                                     stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL)
        wait_until(lambda: os.path.ismount(mnt) or self.proc.poll() is not None,
                   timeout=10, msg=f"lossyfs on {mnt}")
        assert self.proc.poll() is None, self.text()

    def text(self):
        self.log.flush()
        with open(self.log.name) as f:
            return f.read()

    def drop(self):
        before = self.text().count("dropped")
        self.proc.send_signal(signal.SIGUSR1)
        wait_until(lambda: self.text().count("dropped") > before, timeout=10,
                   msg="lossyfs to drop")
        return self.text().strip().splitlines()[-1]

    def close(self):
        subprocess.run(["umount", "-l", self.mnt], check=False)
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)
        self.log.close()


@unittest.skipUnless(CAN_RUN, "needs root, /dev/fuse and lossyfs")
class LossyfsTest(HarnessTestCase):

    def test_drop_keeps_exactly_what_was_fsynced(self):
        d = tempfile.mkdtemp(prefix="lossyfs-")
        m = Mount(os.path.join(d, "back"), os.path.join(d, "mnt"))
        try:
            p = os.path.join(m.mnt, "a")
            with open(p, "wb") as f:
                f.write(b"A" * 10000)
                f.flush()
                os.fsync(f.fileno())
                f.seek(5000)
                f.write(b"B" * 100)          # overwrite, unsynced
                f.seek(20000)
                f.write(b"C" * 10)           # growth, unsynced
            with open(os.path.join(m.mnt, "b"), "wb") as f:
                f.write(b"never synced")
            fd = os.open(os.path.join(m.mnt, "c"),
                         os.O_WRONLY | os.O_CREAT | os.O_DSYNC)
            os.write(fd, b"dsync")
            os.close(fd)
            with open(os.path.join(m.mnt, "d"), "wb") as f:
                f.write(b"D" * 5000)
                os.fsync(f.fileno())
            os.unlink(os.path.join(m.mnt, "d"))
            self.assertEqual(os.path.getsize(p), 20010)
            line = m.drop()
            self.assertRegex(line, r"dropped unsynced writes: 2 files")
            with open(p, "rb") as f:
                self.assertEqual(f.read(), b"A" * 10000)
            with open(os.path.join(m.mnt, "b"), "rb") as f:
                self.assertEqual(f.read(), b"")
            with open(os.path.join(m.mnt, "c"), "rb") as f:
                self.assertEqual(f.read(), b"dsync")
            # Without a drop, lossyfs is a passthrough.
            with open(os.path.join(m.back, "c"), "rb") as f:
                self.assertEqual(f.read(), b"dsync")
        finally:
            m.close()
            shutil.rmtree(d, ignore_errors=True)

    def test_power_cut_of_every_node_keeps_acknowledged_appends(self):
        mounts = []

        class OnLossyfs(Cluster):
            def _setup_dir(self):
                super()._setup_dir()
                for n in self.nodes.values():
                    mounts.append(Mount(n.data_dir + ".back", n.data_dir))

        # Cleanups run last-in first-out: the nodes stop before the mounts
        # go.
        self.addCleanup(lambda: [mt.close() for mt in mounts])
        c = self.track(OnLossyfs(3, name="lossyfs"))
        c.start()
        s = unique("pc")
        acked = {}
        for k in range(40):
            r = c.append_retry(s, [{"type": "t", "id": f"e{k}-{i}"}
                                   for i in range(10)])
            for i in range(10):
                acked[f"e{k}-{i}"] = r
        for nid in c.ids():
            c.kill9(nid)
        lines = [mt.drop() for mt in mounts]
        # The store's last transactions were not fsynced (NORMAL): lost.
        self.assertTrue(any(re.search(r"[1-9]\d* blocks restored|"
                                      r"[1-9]\d* bytes cut", ln)
                            for ln in lines), lines)
        for nid in c.ids():
            c.start_node(nid, bootstrap=False)
        c.wait_healthy()
        for nid in c.ids():
            c.wait_caught_up(nid)
            evs = c.read_all(nid, s, consistency="any")
            ids = [e["id"] for e in evs]
            self.assertEqual(len(ids), len(set(ids)), f"node {nid}: doubled")
            self.assertEqual(sorted(set(acked) - set(ids)), [],
                             f"node {nid}: lost acknowledged events")
        c.wait_verify_agree()
        c.append_retry(s, [{"type": "t", "id": "after"}])
