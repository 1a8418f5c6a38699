"""Disk faults for the chaos runner (docs/chaos.md, "The faults").

corrupt        a minority of the nodes is stopped (kill -9 or SIGTERM,
               seeded), bits are flipped in or a piece is cut off one of its
               files (the store, its WAL, a Raft segment or snapshot;
               seeded), and it is started again. The node must find out by
               itself and repair itself from the others; nothing
               acknowledged may be lost.
lose-unsynced  a power cut: one node or every node is killed (kill -9) and
               loses every write it had not fsynced (tests/lossyfs: every
               data dir of the run is a lossyfs mount), then started again.

Raft 0.15's metadata files (term and vote) carry no checksum, so a flipped
bit there cannot be detected by anyone: corrupt leaves them alone.
"""
import os
import random
import signal
import subprocess
import time

from cluster import ROOT, log, sh

# With corrupt on, nodes check their whole store this often (ledgerd
# --verify-interval-s): a start checks only the chain's last events.
VERIFY_INTERVAL_S = 5

CORRUPT_WHAT = ["store-flip", "store-truncate", "wal", "raft-flip",
                "raft-truncate"]


def lossyfs_binary():
    return os.environ.get("LOSSYFS") or os.path.join(ROOT, "build", "tests",
                                                     "lossyfs")


# ---------------------------------------------------------------------------
# lossyfs mounts
# ---------------------------------------------------------------------------

class Lossy:
    """One lossyfs daemon per node: data dir DIR/nN is the mount, its
    backing dir DIR/nN.back (a tmpfs when disk-full is on)."""

    def __init__(self, binary, run_dir):
        self.bin = binary
        self.dir = run_dir
        self.procs = {}

    @staticmethod
    def backing(node):
        return node.data_dir + ".back"

    def mount(self, node):
        os.makedirs(node.data_dir, exist_ok=True)
        logf = open(os.path.join(self.dir, f"lossyfs{node.id}.log"), "ab")
        p = subprocess.Popen([self.bin, self.backing(node), node.data_dir],
                             stdout=logf, stderr=subprocess.STDOUT,
                             stdin=subprocess.DEVNULL,
                             start_new_session=True)
        logf.close()
        self.procs[node.id] = p
        end = time.monotonic() + 30
        while time.monotonic() < end:
            if p.poll() is not None:
                raise RuntimeError(f"lossyfs for node {node.id} exited with "
                                   f"{p.returncode}; see {self.dir}/lossyfs"
                                   f"{node.id}.log")
            if os.path.ismount(node.data_dir):
                return
            time.sleep(0.02)
        raise RuntimeError(f"lossyfs for node {node.id} did not mount")

    def _log(self, nid):
        return os.path.join(self.dir, f"lossyfs{nid}.log")

    def _drops(self, nid):
        try:
            with open(self._log(nid)) as f:
                return [ln.strip() for ln in f if "dropped" in ln]
        except OSError:
            return []

    def power_cut(self, node):
        """Drop every unsynced write of node's files (the node must be
        stopped). Returns lossyfs's drop line."""
        p = self.procs.get(node.id)
        if p is None or p.poll() is not None:
            raise RuntimeError(f"lossyfs for node {node.id} is not running")
        before = len(self._drops(node.id))
        os.kill(p.pid, signal.SIGUSR1)
        end = time.monotonic() + 60
        while time.monotonic() < end:
            lines = self._drops(node.id)
            if len(lines) > before:
                return lines[-1]
            time.sleep(0.02)
        raise RuntimeError(f"lossyfs for node {node.id} did not drop within "
                           "60 s")

    def unmount(self, node):
        p = self.procs.pop(node.id, None)
        if p is None:
            return
        # Lazy: mount namespaces of nodes started later (ip netns exec)
        # hold copies of the mount; lossyfs is stopped by pid anyway.
        sh("umount", "-l", node.data_dir, check=False)
        if p.poll() is None:
            p.terminate()
            try:
                p.wait(30)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(10)

    def teardown(self, nodes):
        for n in nodes:
            try:
                self.unmount(n)
            except Exception as e:  # noqa: BLE001 - cleanup goes on
                log(f"lossyfs node {n.id}: {e}")


# ---------------------------------------------------------------------------
# corrupt
# ---------------------------------------------------------------------------

def _flip(path, rng, lo=0, hi=None, bits=None):
    """Flip `bits` random bits of path in [lo, hi); the offsets flipped."""
    size = os.path.getsize(path)
    hi = size if hi is None else min(hi, size)
    if hi <= lo:
        return []
    bits = bits or rng.randint(1, 8)
    offs = sorted(rng.randrange(lo, hi) for _ in range(bits))
    with open(path, "r+b") as f:
        for off in offs:
            f.seek(off)
            b = f.read(1)
            f.seek(off)
            f.write(bytes([b[0] ^ (1 << rng.randrange(8))]))
    return offs


def _truncate(path, rng, lo_frac=0.2, hi_frac=0.95):
    size = os.path.getsize(path)
    new = int(size * rng.uniform(lo_frac, hi_frac))
    os.truncate(path, new)
    return size, new


def _raft_files(d, kinds):
    out = []
    for name in sorted(os.listdir(d)):
        p = os.path.join(d, name)
        if not os.path.isfile(p) or os.path.getsize(p) == 0:
            continue
        if name.startswith("metadata") or name.startswith("corrupt"):
            continue
        if name.startswith("snapshot"):
            kind = "snapshot-meta" if name.endswith(".meta") else "snapshot"
        elif name.startswith("open-"):
            kind = "open"
        elif "-" in name and name.split("-")[0].isdigit():
            kind = "closed"
        else:
            continue
        if kind in kinds:
            out.append(p)
    return out


def _used_end(path):
    """End of the written part of a preallocated file: after its last
    non-zero byte (a flip in the zero tail is a different fault)."""
    with open(path, "rb") as f:
        data = f.read()
    end = len(data.rstrip(b"\0"))
    return max(end, 16)


def corrupt_node(node, what, rng):
    """Damage node's files (it is stopped). Returns a description."""
    d = node.data_dir
    db = os.path.join(d, "ledger.db")
    wal = db + "-wal"
    raft = os.path.join(d, "raft")
    if what == "wal" and (not os.path.exists(wal) or
                          os.path.getsize(wal) <= 32):
        what = "store-flip"  # clean stop: no WAL left
    if what == "store-flip":
        offs = _flip(db, rng, lo=100)
        return f"flipped {len(offs)} bit(s) of ledger.db at {offs}"
    if what == "store-truncate":
        size, new = _truncate(db, rng)
        return f"cut ledger.db from {size} to {new} bytes"
    if what == "wal":
        if rng.random() < 0.5:
            offs = _flip(wal, rng, lo=32)
            return f"flipped {len(offs)} bit(s) of ledger.db-wal at {offs}"
        size, new = _truncate(wal, rng, 0.05, 0.9)
        return f"cut ledger.db-wal from {size} to {new} bytes"
    if what == "raft-flip":
        files = [p for p in _raft_files(raft, {"closed", "open", "snapshot"})
                 if _used_end(p) > 64]
        if not files:
            return corrupt_node(node, "store-flip", rng)
        p = rng.choice(files)
        offs = _flip(p, rng, lo=8, hi=_used_end(p))
        return f"flipped {len(offs)} bit(s) of raft/{os.path.basename(p)} " \
               f"at {offs}"
    if what == "raft-truncate":
        # The newest segment holding entries (a prepared open segment holds
        # only its format header).
        files = [p for p in _raft_files(raft, {"closed", "open"})
                 if _used_end(p) > 64]
        if not files:
            return corrupt_node(node, "store-truncate", rng)
        p = files[-1]
        size = _used_end(p)
        new = int(size * rng.uniform(0.3, 0.95))
        os.truncate(p, new)
        return f"cut raft/{os.path.basename(p)} from {size} used bytes " \
               f"to {new}"
    raise ValueError(what)


def corrupt(runner, ev, note):
    c = runner.c
    rng = random.Random(ev["seed"])
    victims = ev["nodes"]
    with runner.plock:
        for nid in victims:
            if ev["stop"] == "kill":
                c.kill(nid)
            else:
                code = c.stop(nid)
                if code not in (0, None):
                    runner.finding(f"node {nid} exited with {code} on "
                                   "SIGTERM (corrupt)")
    note(f"{'kill -9' if ev['stop'] == 'kill' else 'SIGTERM'} node(s) "
         f"{victims}")
    for nid in victims:
        try:
            note(f"node {nid}: " + corrupt_node(c.nodes[nid], ev["what"],
                                                rng))
        except OSError as e:
            note(f"node {nid}: could not damage its files: {e}")
    for nid in victims:
        with runner.plock:
            try:
                c.start(nid)
                note(f"restarted node {nid}")
                continue
            except RuntimeError as e:
                runner.finding(f"corrupt: node {nid} did not start after its "
                               f"files were damaged: {e}")
        # What an operator would do (docs/operations.md, "A lost node"):
        # an empty data dir and --join, so the run goes on.
        rejoin(runner, nid, note)
    runner.sleep(ev["duration"])
    for nid in victims:
        h = c.health(nid, timeout=5)
        note(f"node {nid} after {ev['duration']} s: "
             f"{'down' if not c.nodes[nid].alive() else h}")


def rejoin(runner, nid, note):
    """Replace node nid by an empty one that joins through a live node."""
    c = runner.c
    others = [i for i in c.nodes if i != nid and c.nodes[i].alive()]
    if others:
        c.ctl("member", "remove", str(nid),
              endpoints=[c.addr(i) for i in others], timeout=60)
    c.wipe(nid)
    lid = runner.leader()
    c.nodes[nid].join = c.addr(lid if lid and lid != nid else others[0])
    with runner.plock:
        c.start(nid)
    note(f"node {nid}: emptied its data dir, restarted with --join "
         f"{c.nodes[nid].join}")


# ---------------------------------------------------------------------------
# lose-unsynced
# ---------------------------------------------------------------------------

def lose_unsynced(runner, ev, note):
    c = runner.c
    victims = list(c.nodes) if ev["variant"] == "all" else [ev["node"]]
    with runner.plock:
        for nid in victims:
            c.kill(nid)
    note(f"power cut: kill -9 node(s) {victims}")
    for nid in victims:
        note(f"node {nid}: {c.lossy.power_cut(c.nodes[nid])}")
    runner.sleep(min(2.0, ev["duration"]))
    with runner.plock:
        for nid in victims:
            c.start(nid)
    note(f"restarted node(s) {victims}")
    runner.sleep(max(0.0, ev["duration"] - 2.0))
