"""Quorum-loss recovery (ledgerctl recover inspect / recover): a majority
of the nodes is killed under write load and their data dirs deleted; the
most advanced survivor is recovered and fresh nodes join it. Every
acknowledged append is there exactly once, verify agrees on every node,
and writes resume. Bad inputs (a running node's dir, the wrong dir, a
second recovery, no inspection, a list without the node) are refused with
one line and change nothing."""
import collections
import hashlib
import json
import os
import shutil
import threading
import time

from harness import (Cluster, HarnessTestCase, ledgerctl, unique,
                     wait_until)


class Writer(threading.Thread):
    """Appends one event at a time (unique ids) through the nodes in turn,
    retrying the same body on 503/429/connection errors; records every
    201. Stops when told to (its last event may or may not be stored: it
    was never acknowledged)."""

    def __init__(self, cluster, stream, name, ids):
        super().__init__(daemon=True)
        self.c = cluster
        self.stream = stream
        self.name = name
        self.ids = list(ids)
        self.i = hash(name) % len(self.ids)
        self.stop_flag = threading.Event()
        self.acked = {}
        self.errors = []
        self.lock = threading.Lock()

    def acks(self):
        with self.lock:
            return len(self.acked)

    def run(self):
        k = 0
        while not self.stop_flag.is_set():
            k += 1
            eid = f"{self.name}-{k}"
            body = [{"type": "w", "id": eid, "data": {"k": k}}]
            while not self.stop_flag.is_set():
                nid = self.ids[self.i % len(self.ids)]
                try:
                    st, _, res = self.c.append(nid, self.stream, body,
                                               timeout=5)
                except OSError:
                    self.i += 1
                    continue
                if st == 201:
                    with self.lock:
                        self.acked[eid] = res
                    break
                if st in (503, 429):
                    self.i += 1
                    time.sleep(0.02)  # pacing of retries, not a wait
                    continue
                self.errors.append(f"{eid} via {nid}: {st} {res}")
                return


def dir_digest(path):
    """relative path -> sha256 of every file under path."""
    out = {}
    for root, _, files in os.walk(path):
        for f in files:
            p = os.path.join(root, f)
            with open(p, "rb") as fh:
                out[os.path.relpath(p, path)] = hashlib.sha256(
                    fh.read()).hexdigest()
    return out


def one_error_line(test, r, code=1):
    test.assertEqual(r.returncode, code, r.stdout + r.stderr)
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    test.assertEqual(len(lines), 1, r.stderr)
    test.assertTrue(lines[0].startswith("ledgerctl: recover"), lines[0])
    return lines[0]


class RecoverTest(HarnessTestCase):

    def members_arg(self, c, nid):
        n = c.nodes[nid]
        return f"{nid}={n.raft_addr}@{n.api_addr}"

    def load_then_lose(self, c, lose_first, lose_last, streams):
        """Writers on every node; kill lose_first under load, then, after
        more acks, lose_last (the leader among them): the survivors were
        part of every majority after the first kill."""
        ids = c.ids()
        writers = [Writer(c, streams[i % len(streams)], f"w{i}", ids)
                   for i in range(3)]
        for w in writers:
            w.start()
        total = lambda: sum(w.acks() for w in writers)  # noqa: E731
        try:
            wait_until(lambda: total() >= 60, timeout=60,
                       msg="60 acks before the first kills")
            for nid in lose_first:
                c.kill9(nid)
            base = total()
            wait_until(lambda: total() >= base + 60, timeout=60,
                       msg="60 more acks with the rest")
            for nid in lose_last:
                c.kill9(nid)
        finally:
            for w in writers:
                w.stop_flag.set()
            for w in writers:
                w.join(60)
        for w in writers:
            self.assertFalse(w.is_alive(), f"writer {w.name} is stuck")
            self.assertEqual(w.errors, [], f"writer {w.name}")
        acked = {s: {} for s in streams}
        for w in writers:
            acked[w.stream].update(w.acked)
        return acked

    def check_cluster(self, c, ids, acked):
        for nid in ids:
            for s, want in acked.items():
                evs = c.read_all(nid, s, consistency="any")
                counts = collections.Counter(e["id"] for e in evs)
                dups = {i: n for i, n in counts.items() if n > 1}
                self.assertEqual(dups, {}, f"node {nid}: doubled ids in {s}")
                by_id = {e["id"]: e for e in evs}
                missing = sorted(i for i in want if i not in by_id)
                self.assertEqual(missing, [], f"node {nid} lacks acked "
                                 f"events of {s}")
                for i, res in want.items():
                    e = by_id[i]
                    self.assertEqual(
                        (e["seq"], e["position"], e["hash"]),
                        (res["last_seq"], res["position"], res["hash"]),
                        f"node {nid}: {i} differs from its ack")
        return c.wait_verify_agree(ids, timeout=60)

    def recover_and_rejoin(self, c, survivors, dead, new_ids):
        """Inspect the survivors, check the bad inputs, recover the chosen
        one, start it, join new_ids."""
        for nid in dead:
            shutil.rmtree(c.nodes[nid].data_dir)
        for nid in survivors:
            c.stop(nid)

        # Before any inspection: refused, nothing changed.
        for nid in survivors:
            d = c.nodes[nid].data_dir
            before = dir_digest(d)
            r = ledgerctl("recover", d, "--members", self.members_arg(c, nid))
            self.assertRegex(one_error_line(self, r), "not inspected")
            self.assertEqual(dir_digest(d), before)

        dirs = [c.nodes[n].data_dir for n in survivors]
        rj = ledgerctl("--json", "recover", "inspect", *dirs)
        self.assertEqual(rj.returncode, 0, rj.stderr)
        info = json.loads(rj.stdout)
        self.assertEqual(len(info["dirs"]), len(dirs))
        chosen = info["recover_node"]
        self.assertIn(chosen, survivors)
        best = max(info["dirs"], key=lambda x: (x["last_term"],
                                                x["last_index"],
                                                x["applied_index"]))
        self.assertEqual((best["last_term"], best["last_index"]),
                         next((x["last_term"], x["last_index"])
                              for x in info["dirs"] if x["node"] == chosen))
        survivors = [chosen] + [n for n in survivors if n != chosen]
        dirs = [c.nodes[n].data_dir for n in survivors]
        r = ledgerctl("recover", "inspect", *dirs)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn(f"recover from: {os.path.realpath(dirs[0])} "
                      f"(node {chosen})", r.stdout)
        self.assertIn(f"node {chosen}, raft: last index", r.stdout)
        self.assertIn("head hash", r.stdout)

        # The wrong dir (another survivor): refused, nothing changed.
        for nid, d in zip(survivors[1:], dirs[1:]):
            before = dir_digest(d)
            r = ledgerctl("recover", d, "--members", self.members_arg(c, nid))
            self.assertIn("recover that one", one_error_line(self, r))
            self.assertEqual(dir_digest(d), before)

        # A list that leaves the dir's own node out: refused.
        before = dir_digest(dirs[0])
        other = next(n for n in c.ids() if n != chosen)
        r = ledgerctl("recover", dirs[0], "--members",
                      self.members_arg(c, other))
        self.assertIn("leaves out", one_error_line(self, r))
        self.assertEqual(dir_digest(dirs[0]), before)

        r = ledgerctl("recover", dirs[0], "--members",
                      self.members_arg(c, chosen))
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn("entries written but never committed may now become "
                      "committed", r.stdout)

        # Twice: refused, nothing changed.
        before = dir_digest(dirs[0])
        r = ledgerctl("recover", dirs[0], "--members",
                      self.members_arg(c, chosen))
        self.assertIn("recovered already", one_error_line(self, r))
        self.assertEqual(dir_digest(dirs[0]), before)

        # The other survivors' data is discarded: they would rejoin empty.
        for nid in survivors[1:]:
            shutil.rmtree(c.nodes[nid].data_dir)
        c.start_node(chosen, bootstrap=False)
        c.wait_healthy([chosen])
        self.assertEqual(c.leader(), chosen)
        for nid in new_ids:
            c.new_node(nid, join=c.addr(chosen))
            c.start_node(nid)
            c.wait_healthy([nid], timeout=120)
        members = c.cluster_info(chosen)["members"]
        self.assertEqual(sorted(m["id"] for m in members),
                         sorted([chosen] + list(new_ids)))
        self.assertTrue(all(m["role"] == "voter" for m in members), members)
        return [chosen] + list(new_ids)

    def scenario(self, n, lose_first, lose_last, survivors, new_ids):
        c = self.track(Cluster(n, name=f"recover{n}"))
        c.start()
        leader = c.leader()
        # Order the roles around the leader: it is lost last.
        others = [i for i in c.ids() if i != leader]
        lose_first = [others[i] for i in lose_first]
        lose_last = [leader] + [others[i] for i in lose_last]
        survivors = [others[i] for i in survivors]
        streams = [unique("rc-a"), unique("rc-b")]
        acked = self.load_then_lose(c, lose_first, lose_last, streams)
        self.assertGreater(sum(len(a) for a in acked.values()), 100)
        ids = self.recover_and_rejoin(c, survivors, lose_first + lose_last,
                                      new_ids)
        v = self.check_cluster(c, ids, acked)
        # Writes resume, through every node.
        s = unique("rc-after")
        for nid in ids:
            c.append_retry(s, [{"type": "t", "id": f"after-{nid}"}],
                           ids=[nid])
        v2 = c.wait_verify_agree(ids, timeout=60)
        self.assertEqual(v2["applied_position"],
                         v["applied_position"] + len(ids))

    def test_three_nodes_lose_two(self):
        # Kill follower A, then the leader: B holds every ack.
        self.scenario(3, lose_first=[0], lose_last=[], survivors=[1],
                      new_ids=[4, 5])

    def test_five_nodes_lose_three(self):
        # Kill followers A and B, then the leader: C and D hold every ack;
        # C is recovered, D's dir is discarded, four fresh nodes join.
        self.scenario(5, lose_first=[0, 1], lose_last=[], survivors=[2, 3],
                      new_ids=[6, 7, 8, 9])


class RecoverBadInputTest(HarnessTestCase):

    def test_running_node_and_usage(self):
        c = self.track(Cluster(3, name="recover-bad"))
        c.start()
        c.append_ok(c.leader(), unique("rb"), [{"type": "t"}])
        d = c.nodes[1].data_dir
        n = c.nodes[1]
        members = f"1={n.raft_addr}@{n.api_addr}"
        r = ledgerctl("recover", "inspect", d)
        self.assertRegex(one_error_line(self, r), "in use.*stop it first")
        r = ledgerctl("recover", d, "--members", members)
        self.assertRegex(one_error_line(self, r), "in use.*stop it first")
        r = ledgerctl("recover", d, "--members", members, "--force")
        self.assertRegex(one_error_line(self, r), "in use.*stop it first")
        # Nothing of ours was written (the node itself keeps writing).
        self.assertFalse(os.path.exists(os.path.join(
            d, "recover-inspect.json")))
        self.assertTrue(c.healthy(1))
        c.append_ok(c.leader(), unique("rb"), [{"type": "t"}])
        # Usage errors: exit 2, one line.
        for args in (["recover"], ["recover", d],
                     ["recover", d, "--members", "x"],
                     ["recover", d, "--members", "1=127.0.0.1:1"],
                     ["recover", "inspect"],
                     ["recover", "inspect", d, "--force"],
                     ["recover", d, "--bogus"]):
            r = ledgerctl(*args)
            one_error_line(self, r, code=2)
        # Not a data dir.
        r = ledgerctl("recover", "inspect", c.dir)
        self.assertIn("not a ledger data dir", one_error_line(self, r))
