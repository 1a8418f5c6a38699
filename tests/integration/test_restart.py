"""A follower whose data dir fills up stops (Raft 0.15 gives up on a
storage error), says why on /health, and restarts itself in place once the
space returns: it catches up and verifies, nothing acknowledged lost.
Needs root (a tmpfs data dir); skipped otherwise."""
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
        for i in range(300):
            c.append_retry("full", [{"type": "t", "id": f"e{i}",
                                     "data": "x" * 2000}], ids=via)
            acked.append(f"e{i}")

        def reason():
            try:
                st, _, b = c.get(3, "/health", timeout=5)
            except OSError:
                return None
            return b.get("reason", "") if st != 200 else None
        wait_until(lambda: "storage error" in (reason() or ""), timeout=120,
                   msg="node 3 to stop on the full disk")
        pid = c.nodes[3].proc.pid
        os.unlink(filler)
        c.wait_caught_up(3)
        self.assertEqual(c.nodes[3].proc.pid, pid, "restarted in place")
        self.assertTrue(c.nodes[3].alive())
        self.assertIn("restarting in place", c.log_text(3))
        got = [e["id"] for e in c.read_all(3, "full", consistency="any")]
        self.assertEqual(got, acked)
        c.wait_verify_agree()


if __name__ == "__main__":
    unittest.main()
