"""A follower whose data dir fills up falls behind (its Raft log cannot
grow) or stops (Raft 0.15 gives up when its store fails an apply; /health
then says why), and once the space returns it catches up by itself,
restarting in place if it had stopped: nothing acknowledged is lost. Needs
root (a tmpfs data dir); skipped otherwise."""
import os
import subprocess
import unittest

from harness import Cluster, HarnessTestCase, wait_until


@unittest.skipUnless(os.geteuid() == 0, "needs root to mount a tmpfs")
class RestartInPlaceTest(HarnessTestCase):

    def test_full_follower_restarts_itself_when_space_returns(self):
        c = Cluster(3, name="restart")
        c._setup_dir()
        d3 = c.nodes[3].data_dir
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=96m", "tmpfs",
                        d3], check=True)
        self.addCleanup(subprocess.run, ["umount", "-l", d3])
        self.track(c)
        for nid in c.nodes:
            c.start_node(nid)
        c.wait_healthy()
        filler = os.path.join(d3, "filler")
        subprocess.run(["dd", "if=/dev/zero", "of=" + filler, "bs=1M",
                        "count=200"], capture_output=True)
        via = [1, 2]
        acked = []

        def reason():
            try:
                st, _, b = c.get(3, "/health", timeout=5)
            except OSError:
                return None
            return b.get("reason", "") if st != 200 else None

        # Raft's preallocated segments and a reused WAL absorb some writes:
        # keep appending until node 3 has stopped or fallen behind.
        def position(nid):
            _, _, text = c.get(nid, "/metrics", timeout=5)
            for line in text.decode().splitlines():
                if line.startswith("ledger_store_position "):
                    return int(line.split()[1])
            return -1

        def stuck():
            n = len(acked)
            batch = [{"type": "t", "id": f"e{n + i}", "data": "x" * 4000}
                     for i in range(50)]
            c.append_retry("full", batch, ids=via)
            acked.extend(e["id"] for e in batch)
            try:
                if "storage error" in (reason() or ""):
                    return True
                return position(3) + 500 < position(1)
            except OSError:
                return False
        wait_until(stuck, timeout=180, interval=0.01,
                   msg="node 3 to stop or fall behind on the full disk")
        stopped = "storage error" in (reason() or "")
        pid = c.nodes[3].proc.pid
        os.unlink(filler)
        c.wait_caught_up(3)
        self.assertEqual(c.nodes[3].proc.pid, pid, "same process (or exec)")
        self.assertTrue(c.nodes[3].alive())
        if stopped:
            self.assertIn("restarting in place", c.log_text(3))
        got = [e["id"] for e in c.read_all(3, "full", consistency="any")]
        self.assertEqual(got, acked)
        c.wait_verify_agree()


if __name__ == "__main__":
    unittest.main()
