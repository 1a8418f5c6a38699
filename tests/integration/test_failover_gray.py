"""Failover that clients feel (issue 11 point 5): the leader of a 3-node
cluster freezes (SIGSTOP), is cut off from its peers (nftables in network
namespaces, root only) or dies (kill -9) while four clients write through
the two followers, one request at a time each with unique ids and a 10 s
client timeout (tests/integration/failover_probe.py has the set-up and the
definitions of the figures; scripts/gray.py prints the same figures).

Bounds, seconds after the fault:
- default --election-ms 1000: the first acknowledgement within 2 s, every
  client answered within 3 s, after SIGSTOP (8 s), cut-off (8 s) and
  kill -9 (on main before the fix, kill -9 measured 1.1-1.5 s and 1.1-1.5 s:
  docs/operations.md, "Failover");
- --election-ms 300: both within 1 s (faults of 4 s).
On a sanitizer build every bound gets 0.5 s more (slower nodes; the
election timeouts, which dominate, are the same).

As root the cluster runs in network namespaces (198.18.0.0/15); without
root it runs on 127.0.0.1 and the cut-off tests are skipped with a message.
"""
import unittest

import failover_probe as fp
import harness
from harness import HarnessTestCase

ALLOWANCE = 0.5 if harness.SANITIZED else 0.0
NO_NETNS = harness.netns_unavailable()


class _GrayBase(HarnessTestCase):
    ELECTION_MS = 1000
    FIRST_ACK = 2.0
    ALL_ANSWERED = 3.0
    DURATION = 8.0
    KILL_DURATION = 3.0

    @classmethod
    def setUpClass(cls):
        cls._any_failed = False
        net = harness.netns() if NO_NETNS is None else None
        cls.c = harness.Cluster(3, election_ms=cls.ELECTION_MS,
                                name=cls.__name__, net=net)
        cls.clusters = [cls.c]
        try:
            cls.c.start()
        except BaseException:
            cls.c.failed = True
            cls.c.close()
            raise

    @classmethod
    def tearDownClass(cls):
        if cls._any_failed:
            cls.c.failed = True
        reports = cls.c.close()
        if reports:
            raise AssertionError("sanitizer reports in node logs: " +
                                 "; ".join(reports))

    def round(self, fault, duration):
        fig = fp.run_round(self.c, fault, duration=duration, clients=4,
                           timeout=10.0)
        print(f"\n[--election-ms {self.ELECTION_MS}] {fp.describe(fig)}",
              flush=True)
        first, every = self.FIRST_ACK + ALLOWANCE, \
            self.ALL_ANSWERED + ALLOWANCE
        self.assertIsNotNone(fig["first_ack"],
                             f"no acknowledgement at all after {fault}: "
                             f"{fp.describe(fig)}")
        self.assertLessEqual(
            fig["first_ack"], first,
            f"after {fault} of the leader the first acknowledgement came "
            f"{fig['first_ack']:.2f} s after the fault (bound {first:g} s): "
            f"{fp.describe(fig)}")
        self.assertIsNotNone(fig["all_answered"],
                             f"some client got no answer after {fault}: "
                             f"{fp.describe(fig)}")
        self.assertLessEqual(
            fig["all_answered"], every,
            f"after {fault} of the leader not every client had an answer "
            f"until {fig['all_answered']:.2f} s after the fault (bound "
            f"{every:g} s): {fp.describe(fig)}")
        return fig

    def test_1_sigstop_leader(self):
        self.round("stop", self.DURATION)

    def test_2_cut_off_leader(self):
        if NO_NETNS is not None:
            self.skipTest(f"cutting the leader off {NO_NETNS}; run as root "
                          "for this test")
        self.round("cut", self.DURATION)

    def test_3_kill9_leader(self):
        self.round("kill", self.KILL_DURATION)


class GrayFailoverTest(_GrayBase):
    """--election-ms 1000 (the default)."""


class GrayFailoverFastElectionTest(_GrayBase):
    """--election-ms 300: every figure within 1 s."""
    ELECTION_MS = 300
    FIRST_ACK = 1.0
    ALL_ANSWERED = 1.0
    DURATION = 4.0


del _GrayBase  # not a test case of its own

if __name__ == "__main__":
    unittest.main()
