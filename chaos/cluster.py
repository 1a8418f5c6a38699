"""Real ledgerd nodes for the chaos runner: network namespaces (or loopback),
nftables partitions, tmpfs data dirs, processes started and signalled by pid.

Netns mode (root): node i runs in namespace lcns-PID-i with address
198.18.X.i/24 on a veth whose host end sits on bridge lcbPID (198.18.X.254,
the runner's own address, never cut). X is a /24 inside 198.18.0.0/15 that no
interface of this host uses yet, picked under a lock file so that parallel
runs differ. Every name carries the runner's pid; leftovers of runs whose pid
is gone are removed at the next start.

Loopback mode (no root): every node on 127.0.0.1 with its own ports; only
the faults that need no privileges are available.

Security (docs/security.md): in either mode the nodes run with TLS and a
token, as ledgerd requires of addresses that are not loopback: setup() makes
a CA, a certificate for every node (naming its address) and a client
certificate with `ledgerctl tls cert` in RUN_DIR/tls, and a random token in
RUN_DIR/token. Every HTTP call of the runner and the workload is HTTPS with
the client certificate and the token (SEC), and so is every ledgerctl call.
"""
import errno
import fcntl
import http.client as httpc
import json
import os
import re
import shutil
import secrets
import signal
import socket
import ssl
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
import ports  # noqa: E402 - tests/integration/ports.py


def log(msg):
    sys.stderr.write(f"[chaos {time.strftime('%H:%M:%S')}] {msg}\n")
    sys.stderr.flush()


def binary(env, name):
    return os.environ.get(env) or os.path.join(ROOT, "build", name)


# A sanitizer build links libasan (its name and __asan_init are in the
# binary; the text "AddressSanitizer" is not, with a shared libasan).
SANITIZER_BUILD_MARKERS = (b"__asan_init", b"libasan.so", b"AddressSanitizer")


def is_sanitized(path):
    try:
        with open(path, "rb") as f:
            data = f.read()
        return any(m in data for m in SANITIZER_BUILD_MARKERS)
    except OSError:
        return False


def sh(*cmd, check=True, quiet=False):
    r = subprocess.run(list(cmd), capture_output=True, text=True,
                       stdin=subprocess.DEVNULL)
    if check and r.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)}: exit {r.returncode}: "
                           f"{r.stderr.strip()}")
    return r


def pid_alive(pid):
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True


# ---------------------------------------------------------------------------
# HTTP
# ---------------------------------------------------------------------------

class Security:
    """The cluster's TLS client context and token (set by setup())."""

    def __init__(self):
        self.ctx = None    # ssl.SSLContext: the CA, our client certificate
        self.token = None
        self.files = None  # (ca, cert, key, token file) for ledgerctl

    def connection(self, host, port, timeout):
        if self.ctx is not None:
            return httpc.HTTPSConnection(host, port, timeout=timeout,
                                         context=self.ctx)
        return httpc.HTTPConnection(host, port, timeout=timeout)

    def headers(self, hdrs):
        if self.token:
            hdrs["Authorization"] = f"Bearer {self.token}"
        return hdrs


SEC = Security()


def http(addr, method, path, body=None, timeout=10):
    """One request on a fresh connection: (status, headers, parsed body)."""
    host, port = addr.rsplit(":", 1)
    conn = SEC.connection(host, int(port), timeout)
    try:
        data = json.dumps(body).encode() if body is not None else None
        hdrs = SEC.headers({"Content-Type": "application/json"}
                           if data else {})
        conn.request(method, path, body=data, headers=hdrs)
        r = conn.getresponse()
        raw = r.read()
        h = {k.lower(): v for k, v in r.getheaders()}
    finally:
        conn.close()
    try:
        parsed = json.loads(raw) if raw else None
    except ValueError:
        parsed = raw
    return r.status, h, parsed


# ---------------------------------------------------------------------------
# Network
# ---------------------------------------------------------------------------

LOCK_PATH = "/run/ledger-chaos.lock"


def cleanup_stale():
    """Remove namespaces, bridges and mounts left by chaos runs whose runner
    pid no longer exists (a runner killed with SIGKILL cannot clean up)."""
    try:
        for line in sh("ip", "netns", "list", check=False).stdout.splitlines():
            m = re.match(r"(lcns-(\d+)-\d+)", line)
            if m and not pid_alive(int(m.group(2))):
                sh("ip", "netns", "del", m.group(1), check=False)
        for line in sh("ip", "-o", "link", "show", "type", "bridge",
                       check=False).stdout.splitlines():
            m = re.search(r": (lcb(\d+))[:@]", line)
            if m and not pid_alive(int(m.group(2))):
                sh("ip", "link", "del", m.group(1), check=False)
        with open("/proc/mounts") as f:
            for line in f:
                mp = line.split()[1]
                m = re.search(r"/ledger-chaos-(\d+)-", mp)
                if m and not pid_alive(int(m.group(1))):
                    sh("umount", "-l", mp, check=False)
    except OSError:
        pass


class NetNS:
    """Namespaces, veths and a bridge for n nodes (ids 1..n plus any added
    later with add())."""

    mode = "netns"

    def __init__(self):
        self.pid = os.getpid()
        self.bridge = f"lcb{self.pid}"
        self.ns = {}
        self.subnet = None
        self.created_bridge = False
        self.blocked = []

    def _pick_subnet(self):
        used = set()
        out = sh("ip", "-4", "-o", "addr", "show").stdout
        for m in re.finditer(r"inet (198\.1[89])\.(\d+)\.", out):
            used.add((m.group(1), int(m.group(2))))
        for hi in ("198.18", "198.19"):
            for x in range(0, 256):
                if (hi, x) not in used:
                    return f"{hi}.{x}"
        raise RuntimeError("no free /24 left in 198.18.0.0/15")

    def setup(self, ids):
        cleanup_stale()
        fd = os.open(LOCK_PATH, os.O_CREAT | os.O_RDWR, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            self.subnet = self._pick_subnet()
            sh("ip", "link", "add", self.bridge, "type", "bridge")
            self.created_bridge = True
            sh("ip", "addr", "add", f"{self.subnet}.254/24", "dev",
               self.bridge)
            sh("ip", "link", "set", self.bridge, "up")
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)
        for i in ids:
            self.add(i)

    def add(self, i):
        if i in self.ns:
            return
        ns = f"lcns-{self.pid}-{i}"
        veth = f"lcv{self.pid}n{i}"
        sh("ip", "netns", "add", ns)
        self.ns[i] = ns
        sh("ip", "link", "add", veth, "type", "veth", "peer", "name", "eth0",
           "netns", ns)
        sh("ip", "link", "set", veth, "master", self.bridge)
        sh("ip", "link", "set", veth, "up")
        sh("ip", "-n", ns, "addr", "add", f"{self.addr(i)}/24", "dev", "eth0")
        sh("ip", "-n", ns, "link", "set", "eth0", "up")
        sh("ip", "-n", ns, "link", "set", "lo", "up")
        self._nft(i, "add table inet chaos\n"
                     "add chain inet chaos input { type filter hook input "
                     "priority 0; policy accept; }\n"
                     "add chain inet chaos output { type filter hook output "
                     "priority 0; policy accept; }\n")

    def _nft(self, i, script):
        p = subprocess.run(["ip", "netns", "exec", self.ns[i], "nft", "-f",
                            "-"], input=script, capture_output=True,
                           text=True)
        if p.returncode != 0:
            raise RuntimeError(f"nft in {self.ns[i]}: {p.stderr.strip()}")

    def addr(self, i):
        return f"{self.subnet}.{i}"

    def wrap(self, i, cmd):
        return ["ip", "netns", "exec", self.ns[i]] + cmd

    def drop(self, src, dst):
        """Drop every packet from node src to node dst (one way), at dst's
        input and src's output."""
        self._nft(dst, f"add rule inet chaos input ip saddr {self.addr(src)} "
                       "drop\n")
        self._nft(src, f"add rule inet chaos output ip daddr {self.addr(dst)}"
                       " drop\n")
        self.blocked.append((src, dst))

    def heal(self):
        for i in self.ns:
            try:
                self._nft(i, "flush chain inet chaos input\n"
                             "flush chain inet chaos output\n")
            except RuntimeError as e:
                log(f"heal: {e}")
        self.blocked = []

    def teardown(self):
        for i, ns in list(self.ns.items()):
            sh("ip", "netns", "del", ns, check=False)
            self.ns.pop(i, None)
        if self.created_bridge:
            sh("ip", "link", "del", self.bridge, check=False)
            self.created_bridge = False


class Loopback:
    mode = "loopback"

    def __init__(self):
        self.ports = {}
        self.blocked = []

    def setup(self, ids):
        for i in ids:
            self.add(i)

    def add(self, i):
        if i not in self.ports:
            self.ports[i] = free_ports(2)

    def addr(self, i):
        return "127.0.0.1"

    def wrap(self, i, cmd):
        return cmd

    def heal(self):
        pass

    def teardown(self):
        pass


def free_ports(n):
    """n ports outside the ephemeral range, free the way ledgerd binds
    (tests/integration/ports.py: TIME_WAIT sockets cannot starve it)."""
    return ports.free_ports(n)


# ---------------------------------------------------------------------------
# Nodes
# ---------------------------------------------------------------------------

class Node:
    def __init__(self, cluster, nid):
        self.c = cluster
        self.id = nid
        self.proc = None
        self.logf = None
        self.join = None       # API address to --join (after a rejoin)
        self.paused = False
        self.mounted = False
        self.filler = None

    @property
    def raft_addr(self):
        net = self.c.net
        if net.mode == "netns":
            return f"{net.addr(self.id)}:7001"
        return f"127.0.0.1:{net.ports[self.id][0]}"

    @property
    def api_addr(self):
        net = self.c.net
        if net.mode == "netns":
            return f"{net.addr(self.id)}:8001"
        return f"127.0.0.1:{net.ports[self.id][1]}"

    @property
    def data_dir(self):
        return os.path.join(self.c.dir, f"n{self.id}")

    @property
    def log_path(self):
        return os.path.join(self.c.dir, f"node{self.id}.log")

    def alive(self):
        return self.proc is not None and self.proc.poll() is None


class Cluster:
    def __init__(self, n, run_dir, net, ledgerd, ledgerctl, tmpfs_mb=0,
                 heartbeat_ms=100, election_ms=1000, lossy=None,
                 extra_args=()):
        self.dir = run_dir
        self.net = net
        self.ledgerd = ledgerd
        self.ledgerctl_bin = ledgerctl
        self.tmpfs_mb = tmpfs_mb
        self.lossy = lossy  # disk.Lossy: data dirs on lossyfs
        self.extra_args = list(extra_args)
        self.heartbeat_ms = heartbeat_ms
        self.election_ms = election_ms
        self.nodes = {i: Node(self, i) for i in range(1, n + 1)}
        self.exits = []  # (t, node, returncode) of unexpected exits

    # ---- lifecycle ----------------------------------------------------

    def setup(self):
        self.net.setup(list(self.nodes))
        for n in self.nodes.values():
            # With lossyfs the node's files live in its backing dir.
            files = self.lossy.backing(n) if self.lossy else n.data_dir
            os.makedirs(files, exist_ok=True)
            if self.tmpfs_mb:
                sh("mount", "-t", "tmpfs", "-o", f"size={self.tmpfs_mb}m",
                   "tmpfs", files)
                n.mounted = files
            if self.lossy:
                self.lossy.mount(n)
        self.setup_security()

    def setup_security(self):
        """Certificates and a token for this run (see the file top)."""
        self.tls_dir = os.path.join(self.dir, "tls")
        for nid in self.nodes:
            sh(self.ledgerctl_bin, "tls", "cert", "--dir", self.tls_dir,
               "--node", str(nid), "--ip", self.net.addr(nid))
        sh(self.ledgerctl_bin, "tls", "cert", "--dir", self.tls_dir,
           "--client", "chaos")
        token_file = os.path.join(self.dir, "token")
        token = secrets.token_hex(24)
        fd = os.open(token_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC,
                     0o600)
        with os.fdopen(fd, "w") as f:
            f.write(token + "\n")
        ca = os.path.join(self.tls_dir, "ca.pem")
        cert = os.path.join(self.tls_dir, "chaos.pem")
        key = os.path.join(self.tls_dir, "chaos.key")
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.load_verify_locations(ca)
        ctx.load_cert_chain(cert, key)
        SEC.ctx = ctx
        SEC.token = token
        SEC.files = (ca, cert, key, token_file)

    @property
    def bootstrap(self):
        return ",".join(f"{n.id}={n.raft_addr}@{n.api_addr}"
                        for n in self.nodes.values())

    def command(self, nid):
        n = self.nodes[nid]
        cmd = [self.ledgerd, "--id", str(nid), "--data-dir", n.data_dir,
               "--raft-addr", n.raft_addr, "--api-addr", n.api_addr,
               "--heartbeat-ms", str(self.heartbeat_ms),
               "--election-ms", str(self.election_ms)]
        if n.join:
            cmd += ["--join", n.join]
        else:
            cmd += ["--bootstrap", self.bootstrap]
        ca, _, _, token_file = SEC.files
        cmd += ["--tls-cert", os.path.join(self.tls_dir, f"node{nid}.pem"),
                "--tls-key", os.path.join(self.tls_dir, f"node{nid}.key"),
                "--tls-ca", ca, "--token-file", token_file]
        return self.net.wrap(nid, cmd + self.extra_args)

    def start(self, nid, wait=True):
        n = self.nodes[nid]
        assert not n.alive(), f"node {nid} already runs"
        n.logf = open(n.log_path, "ab")
        n.logf.write(f"--- chaos: starting node {nid} at "
                     f"{time.strftime('%H:%M:%S')} ---\n".encode())
        n.logf.flush()
        env = dict(os.environ)
        env.setdefault("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=0:"
                       "allocator_may_return_null=1")
        n.proc = subprocess.Popen(self.command(nid), stdout=n.logf,
                                  stderr=subprocess.STDOUT,
                                  stdin=subprocess.DEVNULL, env=env,
                                  start_new_session=True)
        n.paused = False
        if wait:
            end = time.monotonic() + 60 * self.slow
            while time.monotonic() < end:
                if n.proc.poll() is not None:
                    raise RuntimeError(f"node {nid} exited with "
                                       f"{n.proc.returncode} at start-up; "
                                       f"see {n.log_path}")
                try:
                    host, port = n.api_addr.rsplit(":", 1)
                    with socket.create_connection((host, int(port)), 0.5):
                        return n
                except OSError:
                    time.sleep(0.05)
            raise RuntimeError(f"node {nid} does not listen on {n.api_addr}")
        return n

    slow = 1.0

    def signal(self, nid, sig):
        n = self.nodes[nid]
        if n.alive():
            os.kill(n.proc.pid, sig)

    def kill(self, nid):
        n = self.nodes[nid]
        if n.proc is None:
            return None
        if n.proc.poll() is None:
            os.kill(n.proc.pid, signal.SIGKILL)
        n.proc.wait(60)
        return self._reap(n)

    def stop(self, nid, timeout=30):
        n = self.nodes[nid]
        if n.proc is None:
            return None
        if n.proc.poll() is None:
            if n.paused:
                os.kill(n.proc.pid, signal.SIGCONT)
                n.paused = False
            os.kill(n.proc.pid, signal.SIGTERM)
            try:
                n.proc.wait(timeout * self.slow)
            except subprocess.TimeoutExpired:
                os.kill(n.proc.pid, signal.SIGKILL)
                n.proc.wait(60)
        return self._reap(n)

    def _reap(self, n):
        code = n.proc.returncode
        n.proc = None
        n.paused = False
        if n.logf:
            n.logf.close()
            n.logf = None
        return code

    def check_exits(self, t):
        """Nodes that exited without being told to: recorded, reaped."""
        found = []
        for n in self.nodes.values():
            if n.proc is not None and n.proc.poll() is not None:
                code = n.proc.returncode
                self.exits.append({"t": t, "node": n.id, "code": code})
                found.append((n.id, code))
                self._reap(n)
        return found

    def wipe(self, nid):
        d = self.nodes[nid].data_dir
        for name in os.listdir(d):
            p = os.path.join(d, name)
            if os.path.isdir(p) and not os.path.islink(p):
                shutil.rmtree(p)
            else:
                os.unlink(p)

    def teardown(self):
        for nid in list(self.nodes):
            try:
                self.stop(nid, timeout=20)
            except Exception as e:  # noqa: BLE001 - cleanup goes on
                log(f"stopping node {nid}: {e}")
        if self.lossy:
            self.lossy.teardown(self.nodes.values())
        for n in self.nodes.values():
            if n.mounted:
                sh("umount", "-l", n.mounted, check=False)
                n.mounted = False
        self.net.teardown()

    # ---- queries --------------------------------------------------------

    def addr(self, nid):
        return self.nodes[nid].api_addr

    def health(self, nid, timeout=2, caught_up=False):
        path = "/health"
        if caught_up:
            path += f"?caught_up=1&timeout_ms={int(timeout * 1000)}"
            timeout += 3
        try:
            st, _, b = http(self.addr(nid), "GET", path, timeout=timeout)
        except (OSError, httpc.HTTPException):
            return None
        return (st, b) if isinstance(b, dict) else None

    def leader(self, timeout=2):
        """(leader id, term) as the nodes see it: the node that calls
        itself leader with the highest term; None if none."""
        best = None
        for nid, n in self.nodes.items():
            if not n.alive() or n.paused:
                continue
            h = self.health(nid, timeout=timeout)
            if h and h[1].get("state") == "leader":
                term = h[1].get("term", 0)
                if best is None or term > best[1]:
                    best = (nid, term)
        return best

    def members(self, timeout=5):
        lid = self.leader()
        if not lid:
            return None
        try:
            st, _, b = http(self.addr(lid[0]), "GET", "/v1/cluster",
                            timeout=timeout)
        except (OSError, httpc.HTTPException):
            return None
        if st != 200:
            return None
        return {m["id"]: m for m in b.get("members", [])}

    def ctl(self, *args, endpoints=None, timeout=150):
        eps = endpoints or [self.addr(i) for i, n in self.nodes.items()
                            if n.alive() and not n.paused]
        ca, cert, key, token_file = SEC.files
        cmd = [self.ledgerctl_bin, "--endpoints", ",".join(eps),
               "--tls-ca", ca, "--tls-cert", cert, "--tls-key", key,
               "--token-file", token_file, *args]
        try:
            r = subprocess.run(cmd, capture_output=True, text=True,
                               timeout=timeout * self.slow,
                               stdin=subprocess.DEVNULL)
            return r.returncode, (r.stdout + r.stderr).strip()
        except subprocess.TimeoutExpired:
            return -1, f"ledgerctl {' '.join(args)}: timed out"

    def fill_disk(self, nid):
        """Fill node nid's tmpfs to the last byte with a filler file."""
        n = self.nodes[nid]
        path = os.path.join(n.data_dir, "chaos-filler")
        n.filler = path
        chunk = b"\0" * (1 << 20)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        written = 0
        try:
            for size in (1 << 20, 1 << 12, 1):
                buf = chunk[:size]
                while True:
                    try:
                        k = os.write(fd, buf)
                        written += k
                        if k < size:
                            break
                    except OSError as e:
                        if e.errno != errno.ENOSPC:
                            raise
                        break
        finally:
            os.close(fd)
        return written

    def free_disk(self, nid):
        n = self.nodes[nid]
        if n.filler:
            try:
                os.unlink(n.filler)
            except FileNotFoundError:
                pass
            n.filler = None
