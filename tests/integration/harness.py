"""Integration test harness: real ledgerd processes on 127.0.0.1 (or in
network namespaces).

Every cluster lives in a fresh temporary directory (DIR/nN is node N's data
dir, DIR/nodeN.log its stdout and stderr). Ports are picked outside the
kernel's ephemeral range and checked the way ledgerd binds (ports.py), so
TIME_WAIT sockets cannot starve them; with net=netns() the nodes run in
network namespaces instead (198.18.0.0/15, chaos/cluster.py). Nothing here
sleeps for a fixed time to wait for something: conditions are polled with
wait_until() under generous deadlines (the suite must pass on the sanitizer
build, which is several times slower).

Environment: LEDGERD and LEDGERCTL point at the binaries (CTest sets them);
without them the RelWithDebInfo build in ../../build is used.
"""
import atexit
import hashlib
import http.client
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import unittest

import msgpack

import ports

HERE = os.path.dirname(os.path.abspath(__file__))
LEDGERD = os.environ.get("LEDGERD") or os.path.join(HERE, "../../build/ledgerd")
LEDGERCTL = os.environ.get("LEDGERCTL") or os.path.join(
    HERE, "../../build/ledgerctl")

HOST = "127.0.0.1"
STOP_GRACE_S = 20

# Every process any harness object started, so a crashed test run never
# leaves ledgerd processes behind.
_LIVE = set()
_LIVE_LOCK = threading.Lock()


def _register(proc):
    with _LIVE_LOCK:
        _LIVE.add(proc)


def _unregister(proc):
    with _LIVE_LOCK:
        _LIVE.discard(proc)


@atexit.register
def _kill_leftovers():
    with _LIVE_LOCK:
        procs = list(_LIVE)
    for p in procs:
        if p.poll() is None:
            try:
                p.kill()
                p.wait(10)
            except Exception:
                pass


# A sanitizer build links libasan (its name and __asan_init are in the
# binary; the text "AddressSanitizer" is not, with a shared libasan).
SANITIZER_BUILD_MARKERS = (b"__asan_init", b"libasan.so", b"AddressSanitizer")


def _is_sanitized(path):
    try:
        with open(path, "rb") as f:
            data = f.read()
        return any(m in data for m in SANITIZER_BUILD_MARKERS)
    except OSError:
        return False


SANITIZED = _is_sanitized(LEDGERD)
# Deadlines: generous everywhere, more so under ASan.
SLOW = 3.0 if SANITIZED else 1.0


def deadline(seconds):
    return seconds * SLOW


def wait_until(fn, timeout=30, interval=0.05, msg=None):
    """Poll fn() until it returns something truthy; return that value.
    Exceptions from fn count as 'not yet'; the last one is reported."""
    end = time.monotonic() + timeout * SLOW
    last_exc = None
    while True:
        try:
            v = fn()
            if v:
                return v
        except Exception as e:  # noqa: BLE001 - polled condition
            last_exc = e
        if time.monotonic() >= end:
            detail = f" (last error: {last_exc!r})" if last_exc else ""
            raise AssertionError(
                f"timed out after {timeout * SLOW:.0f}s waiting for "
                f"{msg or getattr(fn, '__name__', 'condition')}{detail}")
        time.sleep(interval)


def netns_unavailable():
    """None when network namespaces can be used (root, `ip` and `nft`),
    else the reason, for a skip message."""
    if os.geteuid() != 0:
        return "needs root (network namespaces and nftables)"
    for tool in ("ip", "nft"):
        if shutil.which(tool) is None:
            return f"needs the `{tool}` tool (iproute2 / nftables)"
    return None


def netns():
    """A fresh chaos/cluster.py NetNS (namespaces, bridge and nftables in
    198.18.0.0/15) for Cluster(net=...); see netns_unavailable()."""
    sys.path.insert(0, os.path.join(HERE, "..", "..", "chaos"))
    import cluster as chaos_cluster  # noqa: E402 - chaos/cluster.py
    return chaos_cluster.NetNS()


# Port picking lives in ports.py (outside the ephemeral range, checked the
# way ledgerd binds: TIME_WAIT sockets cannot starve it).
free_ports = ports.free_ports
free_port_range = ports.free_port_range


def port_free(port):
    return ports.listenable(port)


def tail(path, lines=60):
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        return f"<cannot read {path}: {e}>"
    text = data.decode("utf-8", "replace").splitlines()
    return "\n".join(text[-lines:])


SANITIZER_MARKERS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer",
                     "runtime error:", "WARNING: ThreadSanitizer")


def sanitizer_report(path):
    """The first sanitizer report line in a log, or None."""
    try:
        with open(path, "rb") as f:
            text = f.read().decode("utf-8", "replace")
    except OSError:
        return None
    for line in text.splitlines():
        if any(m in line for m in SANITIZER_MARKERS):
            return line.strip()
    return None


# ---------------------------------------------------------------------------
# HTTP
# ---------------------------------------------------------------------------

def tls_context(ca, cert=None, key=None):
    """A client context trusting only `ca` (a node certificate names its
    IP, which is checked), presenting cert/key if given."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(ca)
    if cert:
        ctx.load_cert_chain(cert, key)
    return ctx


def http_request(addr, method, path, body=None, headers=None, raw=None,
                 timeout=30, tls=None):
    """One request on a fresh connection. body: a Python value sent as JSON;
    raw: bytes sent as they are; tls: an ssl.SSLContext for HTTPS. Returns
    (status, headers with lower-case names, parsed body): JSON or
    MessagePack decoded by Content-Type, else bytes. Connection errors
    raise OSError (ConnectionError, ssl.SSLError etc.)."""
    host, port = addr.rsplit(":", 1)
    hdrs = dict(headers or {})
    payload = None
    if raw is not None:
        payload = raw
    elif body is not None:
        payload = json.dumps(body).encode()
        hdrs.setdefault("Content-Type", "application/json")
    if tls is not None:
        conn = http.client.HTTPSConnection(host, int(port),
                                           timeout=timeout * SLOW,
                                           context=tls)
    else:
        conn = http.client.HTTPConnection(host, int(port),
                                          timeout=timeout * SLOW)
    try:
        conn.request(method, path, body=payload, headers=hdrs)
        resp = conn.getresponse()
        data = resp.read()
        rh = {k.lower(): v for k, v in resp.getheaders()}
        status = resp.status
    finally:
        conn.close()
    ctype = rh.get("content-type", "")
    parsed = data
    if "json" in ctype and data:
        parsed = json.loads(data)
    elif "msgpack" in ctype and data:
        parsed = msgpack.unpackb(data, raw=False)
    return status, rh, parsed


# ---------------------------------------------------------------------------
# Cluster
# ---------------------------------------------------------------------------

class Node:
    def __init__(self, cluster, nid, raft_port, api_port, host=HOST):
        self.cluster = cluster
        self.id = nid
        self.host = host
        self.raft_port = raft_port
        self.api_port = api_port
        self.proc = None
        self.logf = None

    @property
    def raft_addr(self):
        return f"{self.host}:{self.raft_port}"

    @property
    def api_addr(self):
        return f"{self.host}:{self.api_port}"

    @property
    def data_dir(self):
        return os.path.join(self.cluster.dir, f"n{self.id}")

    @property
    def log_path(self):
        return os.path.join(self.cluster.dir, f"node{self.id}.log")

    @property
    def db_path(self):
        return os.path.join(self.data_dir, "ledger.db")

    def alive(self):
        return self.proc is not None and self.proc.poll() is None


class ClusterStartError(Exception):
    pass


class Cluster:
    """A cluster of n ledgerd nodes with ids 1..n.

    extra_args: more ledgerd flags for every node (e.g. snapshot settings).
    token: when set, a token file is written and passed as --token-file, and
    http() sends the bearer token unless told otherwise (auth=False).
    token_file_text: the token file's text (docs/security.md format) instead
    of the bare token; `token` is then the one http() sends.
    tls: when true, `ledgerctl tls cert` makes a CA and a certificate for
    every node (and a client certificate) in DIR/tls; nodes run with
    --tls-cert/--tls-key/--tls-ca and http() speaks HTTPS (self.tls_ctx,
    with the client certificate).
    net: None (every node on 127.0.0.1), or netns() (root only): node i runs
    in its own network namespace at 198.18.X.i (chaos/cluster.py's NetNS),
    so that isolate() can cut it off from its peers with nftables while
    this process still reaches every node. Those addresses are not
    loopback: without tls the nodes run with --insecure (the namespaces'
    network is the test's own).
    """

    def __init__(self, n=3, extra_args=(), token=None, name="ledger",
                 heartbeat_ms=100, election_ms=1000, net=None, tls=False,
                 token_file_text=None):
        self.net = net
        self.n = n
        self.extra_args = list(extra_args)
        self.token = token
        self.token_file_text = token_file_text
        self.name = name
        self.heartbeat_ms = heartbeat_ms
        self.election_ms = election_ms
        self.dir = None
        self.tls = tls
        self.tls_ctx = None
        self.nodes = {}
        self.failed = False
        self.exit_codes = {}
        # More flags for one node: {nid: [...]}, read at every (re)start.
        self.node_args = {}

    # ---- lifecycle ------------------------------------------------------

    def start(self, wait=True):
        """Pick ports, start every node, wait until all are healthy. A bind
        failure (a port taken between picking and binding) is retried once
        with new ports in a new directory."""
        for attempt in (1, 2):
            self._setup_dir()
            try:
                for nid in self.nodes:
                    self.start_node(nid)
                if wait:
                    self.wait_healthy()
                return self
            except ClusterStartError as e:
                if attempt == 2:
                    self.failed = True
                    raise AssertionError(str(e)) from None
                sys.stderr.write(f"[harness] cluster start failed ({e}); "
                                 "retrying with new ports\n")
                self.close(force_remove=True)

    def _setup_dir(self):
        self.dir = tempfile.mkdtemp(prefix=f"{self.name}-")
        ports = free_ports(2 * self.n)
        self.nodes = {}
        if self.net is not None:
            self.net.setup(list(range(1, self.n + 1)))
        for i in range(1, self.n + 1):
            host = self.net.addr(i) if self.net is not None else HOST
            self.nodes[i] = Node(self, i, ports[2 * (i - 1)],
                                 ports[2 * (i - 1) + 1], host)
            os.makedirs(self.nodes[i].data_dir)
        if self.token is not None:
            self.token_file = os.path.join(self.dir, "token")
            with open(self.token_file, "w") as f:
                f.write(self.token_file_text if self.token_file_text
                        is not None else self.token + "\n")
            os.chmod(self.token_file, 0o600)
        if self.tls:
            self.tls_dir = os.path.join(self.dir, "tls")
            for nid in self.nodes:
                self.make_node_cert(nid)
            make_cert(self.tls_dir, client="client")
            self.tls_ctx = tls_context(*self.tls_files("client"))

    def tls_files(self, name):
        """(ca, cert, key) paths; name: "client" or "node<ID>"."""
        return (os.path.join(self.tls_dir, "ca.pem"),
                os.path.join(self.tls_dir, f"{name}.pem"),
                os.path.join(self.tls_dir, f"{name}.key"))

    def make_node_cert(self, nid, replace=False):
        make_cert(self.tls_dir, node=nid, ip=self.nodes[nid].host,
                  replace=replace)

    @property
    def bootstrap(self):
        return ",".join(f"{n.id}={n.raft_addr}@{n.api_addr}"
                        for n in self.nodes.values()
                        if not hasattr(n, "join"))  # not added later

    def new_node(self, nid, join):
        """Add node nid (fresh ports and data dir) that starts with
        --join JOIN instead of --bootstrap; start it with start_node."""
        assert nid not in self.nodes
        raft_port, api_port = free_ports(2)
        host = HOST
        if self.net is not None:
            self.net.add(nid)
            host = self.net.addr(nid)
        n = Node(self, nid, raft_port, api_port, host)
        n.join = join
        os.makedirs(n.data_dir)
        self.nodes[nid] = n
        if self.tls:
            self.make_node_cert(nid)
        return n

    def command(self, nid, bootstrap=True):
        n = self.nodes[nid]
        cmd = [LEDGERD, "--id", str(nid), "--data-dir", n.data_dir,
               "--raft-addr", n.raft_addr, "--api-addr", n.api_addr]
        if getattr(n, "join", None):
            cmd += ["--join", n.join]
        elif bootstrap:
            cmd += ["--bootstrap", self.bootstrap]
        cmd += ["--heartbeat-ms", str(self.heartbeat_ms),
               "--election-ms", str(self.election_ms)]
        if self.token is not None:
            cmd += ["--token-file", self.token_file]
        if self.tls:
            ca, cert, key = self.tls_files(f"node{nid}")
            cmd += ["--tls-cert", cert, "--tls-key", key, "--tls-ca", ca]
        elif self.net is not None:
            cmd += ["--insecure"]
        cmd += self.extra_args + list(self.node_args.get(nid, ()))
        return self.net.wrap(nid, cmd) if self.net is not None else cmd

    def start_node(self, nid, bootstrap=True):
        """Start node nid (first start or restart: same command; a restart
        may leave out --bootstrap) and wait until its API port accepts
        connections."""
        n = self.nodes[nid]
        assert not n.alive(), f"node {nid} is already running"
        n.logf = open(n.log_path, "ab")
        n.logf.write(f"--- harness: starting node {nid} at "
                     f"{time.strftime('%H:%M:%S')} ---\n".encode())
        n.logf.flush()
        n.proc = subprocess.Popen(self.command(nid, bootstrap), stdout=n.logf,
                                  stderr=subprocess.STDOUT,
                                  stdin=subprocess.DEVNULL)
        _register(n.proc)

        def listening():
            if n.proc.poll() is not None:
                return "exited"
            try:
                with socket.create_connection((n.host, n.api_port), 0.5):
                    return "up"
            except OSError:
                return None
        state = wait_until(listening, timeout=30, interval=0.02,
                           msg=f"node {nid} to listen on {n.api_addr}")
        if state == "exited":
            code = n.proc.returncode
            _unregister(n.proc)
            log = tail(n.log_path, 20)
            if "address already in use" in log.lower():
                raise ClusterStartError(
                    f"node {nid} could not bind its ports: {log}")
            raise AssertionError(
                f"node {nid} exited with {code} during start-up:\n{log}")
        return n

    restart = start_node

    def stop(self, nid, timeout=STOP_GRACE_S):
        """SIGTERM, wait (SIGKILL after timeout). Returns the exit code."""
        n = self.nodes[nid]
        if n.proc is None:
            return None
        if n.proc.poll() is None:
            n.proc.send_signal(signal.SIGTERM)
            try:
                n.proc.wait(timeout * SLOW)
            except subprocess.TimeoutExpired:
                n.proc.kill()
                n.proc.wait(30)
        code = n.proc.returncode
        self._reap(n)
        return code

    def signal(self, nid, sig=signal.SIGTERM):
        self.nodes[nid].proc.send_signal(sig)

    def wait_exit(self, nid, timeout=STOP_GRACE_S):
        """Wait (without signalling) for node nid to exit; its exit code,
        or None if it still runs after timeout."""
        n = self.nodes[nid]
        try:
            n.proc.wait(timeout * SLOW)
        except subprocess.TimeoutExpired:
            return None
        code = n.proc.returncode
        self._reap(n)
        return code

    def isolate(self, nid):
        """Cut node nid off from every other node, both ways (nftables in
        the namespaces; net=netns() only). Clients still reach it."""
        for o in self.nodes:
            if o != nid:
                self.net.drop(nid, o)
                self.net.drop(o, nid)

    def heal(self):
        """Drop every rule isolate() added."""
        if self.net is not None:
            self.net.heal()

    def kill9(self, nid):
        n = self.nodes[nid]
        if n.proc is not None and n.proc.poll() is None:
            n.proc.kill()
            n.proc.wait(30)
        code = n.proc.returncode if n.proc else None
        self._reap(n)
        return code

    def _reap(self, n):
        _unregister(n.proc)
        self.exit_codes.setdefault(n.id, []).append(n.proc.returncode)
        n.proc = None
        if n.logf is not None:
            n.logf.close()
            n.logf = None

    def close(self, force_remove=False):
        """Stop every node; remove the directory unless a test failed (then
        print where it is and the tail of every log). Returns the sanitizer
        reports found in the logs."""
        for nid in list(self.nodes):
            try:
                self.stop(nid)
            except Exception as e:  # noqa: BLE001 - cleanup must go on
                sys.stderr.write(f"[harness] stopping node {nid}: {e}\n")
        if self.net is not None:
            self.net.teardown()
        reports = self.sanitizer_reports()
        if self.dir is None:
            return reports
        if (self.failed or reports) and not force_remove:
            self.dump_logs()
            sys.stderr.write(f"[harness] kept {self.dir}\n")
        else:
            shutil.rmtree(self.dir, ignore_errors=True)
        return reports

    def sanitizer_reports(self):
        out = []
        for n in self.nodes.values():
            r = sanitizer_report(n.log_path)
            if r:
                out.append(f"node {n.id}: {r}")
        return out

    def log_text(self, nid):
        with open(self.nodes[nid].log_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def dump_logs(self, lines=60):
        sys.stderr.write(f"\n[harness] cluster dir: {self.dir}\n")
        for n in self.nodes.values():
            sys.stderr.write(f"----- node {n.id} ({n.log_path}), last "
                             f"{lines} lines -----\n")
            sys.stderr.write(tail(n.log_path, lines) + "\n")
        sys.stderr.flush()

    # ---- node ids -------------------------------------------------------

    def ids(self):
        return list(self.nodes)

    def live_ids(self):
        return [i for i, n in self.nodes.items() if n.alive()]

    def addr(self, nid):
        return self.nodes[nid].api_addr

    # ---- HTTP -----------------------------------------------------------

    def http(self, method, nid, path, body=None, headers=None, raw=None,
             timeout=30, auth=True):
        hdrs = dict(headers or {})
        if self.token is not None and auth and "Authorization" not in hdrs:
            hdrs["Authorization"] = f"Bearer {self.token}"
        return http_request(self.addr(nid), method, path, body=body,
                            headers=hdrs, raw=raw, timeout=timeout,
                            tls=self.tls_ctx)

    def get(self, nid, path, **kw):
        return self.http("GET", nid, path, **kw)

    def healthy(self, nid):
        try:
            st, _, b = self.get(nid, "/health", timeout=5)
        except OSError:
            return False
        return st == 200 and isinstance(b, dict) and b.get("status") == "ok"

    def wait_healthy(self, ids=None, timeout=60):
        ids = self.live_ids() if ids is None else list(ids)
        for nid in ids:
            wait_until(lambda: self.healthy(nid), timeout=timeout,
                       msg=f"node {nid} to be healthy")
        return self.leader()

    def cluster_info(self, nid, local=False, timeout=10):
        st, _, b = self.get(nid, "/v1/cluster" + ("?local=1" if local else ""),
                            timeout=timeout)
        if st != 200:
            raise AssertionError(f"GET /v1/cluster on {nid}: {st} {b}")
        return b

    def leader(self, timeout=60, exclude=()):
        """The id of the current leader: a live node, not in exclude (those
        are not even asked: they may be frozen), that reports itself leader
        in its local view."""
        def find():
            for nid in self.live_ids():
                if nid in exclude:
                    continue
                try:
                    info = self.cluster_info(nid, local=True, timeout=5)
                except (OSError, AssertionError):
                    continue
                lid = info.get("leader_id")
                if (lid and lid == nid and lid not in exclude
                        and info.get("node_state") in (None, "leader")):
                    return lid
            return None
        return wait_until(find, timeout=timeout, msg="a leader")

    def followers(self, leader=None):
        leader = leader or self.leader()
        return [i for i in self.live_ids() if i != leader]

    def wait_caught_up(self, nid, timeout_ms=10000):
        def ok():
            st, _, b = self.get(
                nid, f"/health?caught_up=1&timeout_ms={timeout_ms}",
                timeout=timeout_ms / 1000 + 10)
            return st == 200
        # Generous: a follower that needs a snapshot can stall ~30 s when
        # raft drops an InstallSnapshot (see the test report).
        return wait_until(ok, timeout=120, interval=0.2,
                          msg=f"node {nid} to catch up")

    # ---- events ---------------------------------------------------------

    def append(self, nid, stream, events, expected_version=None, **kw):
        body = {"events": events}
        if expected_version is not None:
            body["expected_version"] = expected_version
        return self.http("POST", nid, f"/v1/streams/{stream}/events",
                         body=body, **kw)

    def append_ok(self, nid, stream, events, **kw):
        st, _, b = self.append(nid, stream, events, **kw)
        if st != 201:
            raise AssertionError(f"append to {stream} via node {nid}: "
                                 f"{st} {b}")
        return b

    def append_retry(self, stream, events, ids=None, timeout=60, **kw):
        """Append through any live node, retrying 503/429/connection errors
        with the same body until a 201."""
        ids = ids or self.live_ids()
        state = {"i": 0}

        def attempt():
            nid = ids[state["i"] % len(ids)]
            state["i"] += 1
            try:
                st, _, b = self.append(nid, stream, events, timeout=20, **kw)
            except OSError:
                return None
            if st == 201:
                return b
            if st in (503, 429):
                return None
            raise AssertionError(f"append to {stream}: {st} {b}")
        return wait_until(attempt, timeout=timeout, interval=0.1,
                          msg=f"append to {stream}")

    def read(self, nid, stream, from_seq=1, limit=None, consistency=None,
             wait_ms=None, **kw):
        q = [f"from={from_seq}"]
        if limit is not None:
            q.append(f"limit={limit}")
        if consistency is not None:
            q.append(f"consistency={consistency}")
        if wait_ms is not None:
            q.append(f"wait_ms={wait_ms}")
        return self.get(nid, f"/v1/streams/{stream}/events?" + "&".join(q),
                        **kw)

    def read_all(self, nid, stream, consistency="strong"):
        """Every event of a stream, paging with limit=10000."""
        out = []
        nxt = 1
        while True:
            st, _, b = self.read(nid, stream, from_seq=nxt, limit=10000,
                                 consistency=consistency)
            if st != 200:
                raise AssertionError(f"read {stream} on {nid}: {st} {b}")
            out.extend(b["events"])
            if not b["events"] or out[-1]["seq"] >= b["last_seq"]:
                return out
            nxt = out[-1]["seq"] + 1

    def head(self, nid, stream, consistency=None):
        path = f"/v1/streams/{stream}"
        if consistency:
            path += f"?consistency={consistency}"
        return self.get(nid, path)

    def verify(self, nid):
        st, _, b = self.get(nid, "/v1/verify")
        if st != 200:
            raise AssertionError(f"verify on {nid}: {st} {b}")
        return b

    def wait_verify_agree(self, ids=None, timeout=60):
        """Wait until every node's /v1/verify is ok at the same
        applied_position with the same hash; return that answer."""
        ids = ids or self.live_ids()

        def agree():
            vs = [self.verify(i) for i in ids]
            if not all(v["ok"] for v in vs):
                raise AssertionError(f"verify not ok: {vs}")
            if len({(v["applied_position"], v["hash"]) for v in vs}) == 1:
                return vs[0]
            return None
        return wait_until(agree, timeout=timeout, interval=0.1,
                          msg=f"verify to agree on nodes {ids}")


def ledgerctl(*args, env=None, input=None, timeout=120):
    """Run ledgerctl; returns CompletedProcess with text stdout/stderr."""
    e = dict(os.environ)
    e.pop("LEDGER_ENDPOINTS", None)
    e.pop("LEDGER_TOKEN", None)
    e["LEDGERD"] = LEDGERD
    if env:
        e.update(env)
    return subprocess.run([LEDGERCTL, *args], env=e, input=input,
                          capture_output=True, text=True,
                          timeout=timeout * SLOW)


def make_cert(tls_dir, node=None, ip=None, client=None, replace=False):
    """`ledgerctl tls cert`: the CA in tls_dir (made if missing) signs
    node<node>.pem/.key (naming ip) or <client>.pem/.key."""
    args = ["tls", "cert", "--dir", tls_dir]
    if node is not None:
        args += ["--node", str(node), "--ip", ip]
    else:
        args += ["--client", client]
    if replace:
        args.append("--replace")
    r = ledgerctl(*args)
    if r.returncode != 0:
        raise AssertionError(f"ledgerctl {' '.join(args)}: {r.stderr}")


def file_sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        h.update(f.read())
    return h.hexdigest()


# ---------------------------------------------------------------------------
# Test case bases
# ---------------------------------------------------------------------------

class HarnessTestCase(unittest.TestCase):
    """Marks its clusters as failed (kept, logs printed) when a test fails.
    Subclasses put clusters they own in self.clusters / cls.clusters."""

    maxDiff = None

    def setUp(self):
        res = self._outcome.result
        self._bad_before = len(res.failures) + len(res.errors)

    def tearDown(self):
        res = self._outcome.result
        if len(res.failures) + len(res.errors) > self._bad_before:
            type(self)._any_failed = True
            for c in self._all_clusters():
                c.failed = True
                c.dump_logs()

    def _all_clusters(self):
        return list(getattr(type(self), "clusters", [])) + list(
            getattr(self, "own_clusters", []))

    def track(self, cluster):
        """Own a cluster for this test only: closed at cleanup."""
        if not hasattr(self, "own_clusters"):
            self.own_clusters = []
        self.own_clusters.append(cluster)
        self.addCleanup(self._close_own, cluster)
        return cluster

    def _close_own(self, cluster):
        reports = cluster.close()
        if reports:
            raise AssertionError("sanitizer reports: " + "; ".join(reports))


class ClusterTestCase(HarnessTestCase):
    """One shared cluster per class (cls.c), started in setUpClass."""

    NODES = 3
    EXTRA_ARGS = ()
    TOKEN = None
    TOKEN_FILE = None  # text of the token file (else the bare TOKEN)
    clusters = []

    @classmethod
    def setUpClass(cls):
        cls._any_failed = False
        cls.c = Cluster(cls.NODES, extra_args=cls.EXTRA_ARGS, token=cls.TOKEN,
                        name=cls.__name__, token_file_text=cls.TOKEN_FILE)
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

    def setUp(self):
        super().setUp()
        # A test that left a node down must not break the next one.
        restarted = []
        for nid, n in self.c.nodes.items():
            if not n.alive():
                self.c.start_node(nid)
                restarted.append(nid)
        if restarted:
            self.c.wait_healthy()
            for nid in restarted:
                self.c.wait_caught_up(nid)


def unique(prefix="s"):
    """A stream name unique in this process."""
    unique.counter += 1
    return f"{prefix}-{os.getpid()}-{unique.counter}"


unique.counter = 0
