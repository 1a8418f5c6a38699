"""TLS (docs/security.md): mutual TLS on the Raft port, HTTPS on the API
port, ledgerctl over https, safe defaults, certificate reload on SIGHUP.

Certificates come from `ledgerctl tls cert` / `ledgerctl cluster up --tls`
(the product's own generator); the self-signed one from the openssl CLI.
"""
import os
import re
import signal
import socket
import ssl
import stat
import struct
import subprocess
import tempfile
import threading
import time
import unittest

from harness import (HOST, LEDGERD, Cluster, HarnessTestCase, SLOW,
                     free_port_range, free_ports, http_request, ledgerctl,
                     make_cert, tls_context, wait_until)

TOKEN = "tls-test-token"


def raft_handshake(node_id, address):
    """Raft's handshake as raft_uv_tcp writes it (sent inside TLS by our
    transport): protocol 1, server id, address field length, address."""
    a = address.encode() + b"\0"
    a = a.ljust((len(a) + 7) // 8 * 8, b"\0")
    return struct.pack("<QQQ", 1, node_id, len(a)) + a


def closed_by_peer(sock, timeout=10):
    """True when the peer ends the connection (EOF, reset or a TLS alert)
    without sending application data; False if it stays open."""
    sock.settimeout(timeout * SLOW)
    try:
        data = sock.recv(100)
        return data == b""
    except (ConnectionError, ssl.SSLError):
        return True
    except socket.timeout:
        return False


def metric(text, name):
    m = re.search(rf"^{name} (\d+)$", text, re.M)
    return int(m.group(1)) if m else None


class Writer(threading.Thread):
    """Appends one event at a time through any node until stopped; counts
    acknowledged appends (the cluster keeps committing meanwhile)."""

    def __init__(self, cluster, stream):
        super().__init__(daemon=True)
        self.c = cluster
        self.stream = stream
        self.acked = 0
        self.error = None
        self.stop = threading.Event()

    def run(self):
        i = 0
        while not self.stop.is_set():
            i += 1
            try:
                self.c.append_retry(self.stream, [{"id": f"w{i}", "type": "t",
                                                   "data": {"i": i}}],
                                    timeout=60)
                self.acked += 1
            except AssertionError as e:
                self.error = e
                return


class TlsClusterTest(HarnessTestCase):
    """One 3-node TLS cluster with a token; attacks on node 1's Raft port."""

    @classmethod
    def setUpClass(cls):
        cls._any_failed = False
        cls.c = Cluster(3, token=TOKEN, tls=True, name="tls")
        cls.clusters = [cls.c]
        try:
            cls.c.start()
        except BaseException:
            cls.c.failed = True
            cls.c.close()
            raise
        # A second CA that signs a node-2 certificate for 127.0.0.1.
        cls.other = tempfile.mkdtemp(prefix="tls-other-ca-")
        make_cert(cls.other, node=2, ip=HOST)
        # A self-signed node-2 certificate.
        cls.self_signed = (os.path.join(cls.other, "self.pem"),
                           os.path.join(cls.other, "self.key"))
        subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
             "ec_paramgen_curve:prime256v1", "-nodes", "-days", "1",
             "-subj", "/CN=ledger-node-2", "-addext",
             f"subjectAltName=IP:{HOST}", "-keyout", cls.self_signed[1],
             "-out", cls.self_signed[0]],
            check=True, capture_output=True)

    @classmethod
    def tearDownClass(cls):
        if cls._any_failed:
            cls.c.failed = True
        reports = cls.c.close()
        if reports:
            raise AssertionError("sanitizer reports: " + "; ".join(reports))

    def rejected(self, nid):
        st, _, b = self.c.get(nid, "/metrics")
        self.assertEqual(st, 200)
        v = metric(b.decode() if isinstance(b, bytes) else b,
                   "ledger_peer_rejected_total")
        self.assertIsNotNone(v, "ledger_peer_rejected_total missing")
        return v

    def raft_port(self, nid):
        return self.c.nodes[nid].raft_port

    def tls_to_raft(self, nid, cert, key, ca=None):
        """A TLS connection to node nid's Raft port presenting cert/key;
        the server's certificate is checked against ca (default: the
        cluster's)."""
        ctx = tls_context(ca or self.c.tls_files("client")[0], cert, key)
        raw = socket.create_connection((HOST, self.raft_port(nid)),
                                       timeout=10 * SLOW)
        return ctx.wrap_socket(raw, server_hostname=HOST)

    def try_tls_peer(self, nid, cert=None, key=None):
        """Speak TLS (and then Raft's handshake as node 2) to node nid's
        Raft port with cert/key; assert the node ends the connection.
        Returns our local port."""
        raw = socket.create_connection((HOST, self.raft_port(nid)),
                                       timeout=10 * SLOW)
        port = raw.getsockname()[1]
        ctx = tls_context(self.c.tls_files("client")[0], cert, key)
        try:
            t = ctx.wrap_socket(raw, server_hostname=HOST)
        except (ssl.SSLError, ConnectionError):
            raw.close()
            return port  # refused during the handshake
        try:
            t.sendall(raft_handshake(2, self.c.nodes[2].raft_addr))
            self.assertTrue(closed_by_peer(t), "a bad TLS peer kept open")
        except (ssl.SSLError, ConnectionError):
            pass
        finally:
            t.close()
        return port

    def expect_refusal(self, nid, local_port, reason):
        """Node nid logged the refusal of our connection from local_port
        with `reason` in the line."""
        pat = f"refused connection from {HOST}:{local_port}: "
        line = wait_until(
            lambda: next((ln for ln in self.c.log_text(nid).splitlines()
                          if pat in ln), None),
            timeout=20, msg=f"node {nid} to log {pat!r}")
        self.assertIn(reason, line)

    def test_bad_peers_refused_while_committing(self):
        """Plain TCP, a self-signed certificate and a certificate from
        another CA are each dropped on the Raft port before Raft reads a
        byte (logged with the peer's address and the reason, counted),
        while a writer keeps committing through the cluster."""
        s = f"bad-peers-{os.getpid()}"
        w = Writer(self.c, s)
        w.start()
        self.addCleanup(w.stop.set)
        wait_until(lambda: w.acked >= 3 or w.error, timeout=60,
                   msg="first appends")
        self.assertIsNone(w.error)
        nid = 1
        before = self.rejected(nid)

        # 1. Plain TCP speaking Raft's handshake in the clear.
        sock = socket.create_connection((HOST, self.raft_port(nid)))
        port = sock.getsockname()[1]
        sock.sendall(raft_handshake(2, self.c.nodes[2].raft_addr))
        self.assertTrue(closed_by_peer(sock), "plain TCP peer kept open")
        sock.close()
        self.expect_refusal(nid, port, "not a TLS handshake")

        # 2. A self-signed certificate (CN ledger-node-2, right SAN).
        port = self.try_tls_peer(nid, *self.self_signed)
        self.expect_refusal(nid, port, "certificate verify failed")

        # 3. A node-2 certificate signed by another CA.
        port = self.try_tls_peer(nid, os.path.join(self.other, "node2.pem"),
                                 os.path.join(self.other, "node2.key"))
        self.expect_refusal(nid, port, "certificate verify failed")

        # 4. No certificate at all.
        port = self.try_tls_peer(nid)
        self.expect_refusal(nid, port, "did not return a certificate")

        wait_until(lambda: self.rejected(nid) >= before + 4, timeout=20,
                   msg="ledger_peer_rejected_total to count 4 refusals")
        # The cluster kept committing through all of it.
        acked = w.acked
        wait_until(lambda: w.acked >= acked + 5 or w.error, timeout=60,
                   msg="appends to go on after the refusals")
        self.assertIsNone(w.error)
        w.stop.set()
        w.join(120)
        self.c.wait_verify_agree()

    def test_certificate_for_another_id_refused(self):
        """A peer with node 2's (valid) certificate that announces id 3 in
        Raft's handshake is refused; the same certificate announcing id 2
        is handed to Raft (the control: the check can tell them apart)."""
        nid = 1
        before = self.rejected(nid)
        _, cert, key = self.c.tls_files("node2")

        t = self.tls_to_raft(nid, cert, key)
        port = t.getsockname()[1]
        t.sendall(raft_handshake(3, self.c.nodes[2].raft_addr))
        self.assertTrue(closed_by_peer(t), "id 3 on node 2's cert kept open")
        t.close()
        self.expect_refusal(nid, port,
                            "its certificate is for node 2 but it announced "
                            "id 3")

        # An address the certificate does not name is refused too.
        t = self.tls_to_raft(nid, cert, key)
        port = t.getsockname()[1]
        t.sendall(raft_handshake(2, "127.0.0.2:7002"))
        self.assertTrue(closed_by_peer(t))
        t.close()
        self.expect_refusal(nid, port, "which its certificate does not name")
        self.assertEqual(self.rejected(nid), before + 2)

        # Control: node 2's certificate announcing id 2 stays connected
        # (Raft now owns it and waits for messages) and is not counted.
        t = self.tls_to_raft(nid, cert, key)
        t.sendall(raft_handshake(2, self.c.nodes[2].raft_addr))
        self.assertFalse(closed_by_peer(t, timeout=2),
                         "a valid peer was dropped")
        t.close()
        self.assertEqual(self.rejected(nid), before + 2)

    def test_node_refuses_another_nodes_certificate(self):
        """ledgerd will not start with a certificate whose CN is another
        node's, or one that does not name its address."""
        ca, cert, key = self.c.tls_files("node2")
        d = tempfile.mkdtemp(prefix="tls-wrong-")
        rp, ap = free_ports(2)
        r = subprocess.run(
            [LEDGERD, "--id", "3", "--data-dir", d, "--raft-addr",
             f"{HOST}:{rp}", "--api-addr", f"{HOST}:{ap}", "--bootstrap",
             f"3={HOST}:{rp}@{HOST}:{ap}", "--tls-cert", cert, "--tls-key",
             key, "--tls-ca", ca],
            capture_output=True, text=True, timeout=30 * SLOW)
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertIn("is not node 3's", r.stderr)
        self.assertIn('"ledger-node-3"', r.stderr)

    def test_forwarding_and_peer_calls_over_https(self):
        """A write through a follower is forwarded to the leader over https
        (the follower verifies the leader's certificate), and so are strong
        reads; the chains agree."""
        leader = self.c.leader()
        f = self.c.followers(leader)[0]
        s = f"fwd-{os.getpid()}"
        self.c.append_ok(f, s, [{"type": "t", "data": {"n": 1}}])
        st, _, b = self.c.read(f, s, consistency="strong")
        self.assertEqual(st, 200, b)
        self.assertEqual(len(b["events"]), 1)
        st, _, b = self.c.get(f, "/v1/cluster")
        self.assertEqual(st, 200)
        self.assertTrue(all(m["state"] != "unreachable"
                            for m in b["members"]), b)

    def test_backup_streamed_over_https(self):
        """GET /v1/backup, a streamed response, goes through the TLS session
        piece by piece: `ledgerctl backup` over https writes a file that
        verifies, and holds what was appended."""
        s = f"bk-{os.getpid()}"
        self.c.append_retry(s, [{"id": f"b{i}", "type": "t",
                                 "data": {"pad": "x" * 200}}
                                for i in range(200)])
        d = tempfile.mkdtemp(prefix="tls-backup-")
        path = os.path.join(d, "b.db")
        ca, cert, key = self.c.tls_files("client")
        eps = ",".join(self.c.addr(i) for i in self.c.ids())
        r = ledgerctl("--endpoints", eps, "--tls-ca", ca, "--tls-cert", cert,
                      "--tls-key", key, "--token-file", self.c.token_file,
                      "backup", path)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertGreater(os.path.getsize(path), 200 * 200)
        r = ledgerctl("backup", "verify", path)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)

    def test_plain_http_on_https_port(self):
        """Plain HTTP on the HTTPS port gets a plain 400 saying so."""
        st, _, b = http_request(self.c.addr(1), "GET", "/health")
        self.assertEqual(st, 400)
        self.assertEqual(b["error"]["code"], "https_required")

    def test_sighup_reloads_certificates(self):
        """SIGHUP loads node 3's new certificate without a restart: new
        HTTPS connections get it, Raft keeps working with it; a broken file
        is refused with the old certificate kept."""
        nid = 3
        ca, cert, key = self.c.tls_files(f"node{nid}")

        def served():
            raw = socket.create_connection((HOST, self.c.nodes[nid].api_port),
                                           timeout=10 * SLOW)
            t = tls_context(ca).wrap_socket(raw, server_hostname=HOST)
            der = t.getpeercert(binary_form=True)
            t.close()
            return der

        def on_disk():
            with open(cert) as f:
                return ssl.PEM_cert_to_DER_cert(f.read())

        old = served()
        self.assertEqual(old, on_disk())
        self.c.make_node_cert(nid, replace=True)
        new = on_disk()
        self.assertNotEqual(old, new)
        self.assertEqual(served(), old, "changed before SIGHUP")
        self.c.signal(nid, signal.SIGHUP)
        wait_until(lambda: served() == new, timeout=20,
                   msg="the new certificate to be served")
        self.assertIn("SIGHUP: certificates reloaded", self.c.log_text(nid))

        # Raft connections made with the new certificate work: restart
        # node 1 so it dials node 3 afresh, then commit through node 3.
        self.c.stop(1)
        self.c.start_node(1)
        self.c.wait_healthy()
        s = f"reload-{os.getpid()}"
        self.c.append_retry(s, [{"id": "r1", "type": "t", "data": {}}],
                            ids=[nid])
        self.c.wait_verify_agree()

        # A file that does not load: refused, the new one stays in use.
        with open(cert) as f:
            good = f.read()
        with open(cert, "w") as f:
            f.write("not a certificate\n")
        try:
            self.c.signal(nid, signal.SIGHUP)
            wait_until(lambda: "certificates not reloaded" in
                       self.c.log_text(nid), timeout=20,
                       msg="the refused reload to be logged")
            self.assertEqual(served(), new)
        finally:
            with open(cert, "w") as f:
                f.write(good)


class TlsCatchUpTest(HarnessTestCase):
    """A follower that missed more than the leader's log keeps catches up
    by snapshot install plus pulling events from a peer's API: over https
    when TLS is on."""

    def test_catch_up_over_https(self):
        c = self.track(Cluster(3, token=TOKEN, tls=True, name="tls-snap",
                               extra_args=["--snapshot-threshold", "64",
                                           "--snapshot-trailing", "32"]))
        c.start()
        leader = c.leader()
        lagger = c.followers(leader)[0]
        s = f"snap-{os.getpid()}"
        c.append_ok(leader, s, [{"type": "t", "id": "pre", "data": {}}])
        c.wait_caught_up(lagger)
        c.kill9(lagger)
        last = None
        for b in range(120):
            last = c.append_ok(leader, s, [{"type": "t", "id": f"{b}-{i}",
                                            "data": {"i": i}}
                                           for i in range(5)])
        wait_until(lambda: "snapshot" in c.log_text(leader), timeout=30,
                   msg="the leader to take a snapshot")
        c.restart(lagger)
        c.wait_healthy()
        c.wait_caught_up(lagger, timeout_ms=30000)
        st, _, h = c.head(lagger, s, consistency="any")
        self.assertEqual(st, 200, h)
        self.assertEqual((h["last_seq"], h["head_hash"]),
                         (last["last_seq"], last["hash"]))
        c.wait_verify_agree()


class ClientAuthTest(HarnessTestCase):
    """--tls-client-auth none|optional|require on one-node clusters."""

    def start(self, mode, n=1):
        extra = [] if mode is None else ["--tls-client-auth", mode]
        c = self.track(Cluster(n, tls=True, extra_args=extra,
                               name=f"tls-{mode}"))
        c.start()
        other = tempfile.mkdtemp(prefix="tls-other-")
        make_cert(other, client="client")
        return c, other

    def call(self, c, cert=None):
        """GET /health over HTTPS with the given client cert (None, "ours",
        or a (cert, key) pair); the status, or the exception."""
        ca, ccert, ckey = c.tls_files("client")
        if cert == "ours":
            cert = (ccert, ckey)
        ctx = tls_context(ca, *(cert or ()))
        try:
            st, _, _ = http_request(c.addr(1), "GET", "/health", tls=ctx,
                                    timeout=10)
            return st
        except (ssl.SSLError, ConnectionError) as e:
            return e

    def test_none(self):
        """Default: no client certificate asked for; one sent is ignored."""
        c, other = self.start(None)
        self.assertEqual(self.call(c), 200)
        self.assertEqual(self.call(c, "ours"), 200)

    def test_optional(self):
        """optional: without a certificate or with the CA's: served; one
        from another CA: refused."""
        c, other = self.start("optional")
        self.assertEqual(self.call(c), 200)
        self.assertEqual(self.call(c, "ours"), 200)
        bad = self.call(c, (os.path.join(other, "client.pem"),
                            os.path.join(other, "client.key")))
        self.assertIsInstance(bad, Exception)

    def test_require(self):
        """require: no certificate, no answer; the CA's: served. Nodes
        present their own certificate to each other: a write through a
        follower is forwarded to the leader."""
        c, other = self.start("require", n=2)
        self.assertIsInstance(self.call(c), Exception)
        self.assertEqual(self.call(c, "ours"), 200)
        bad = self.call(c, (os.path.join(other, "client.pem"),
                            os.path.join(other, "client.key")))
        self.assertIsInstance(bad, Exception)
        # ledgerctl with and without its client certificate.
        ca, cert, key = c.tls_files("client")
        r = ledgerctl("--endpoints", c.addr(1), "--tls-ca", ca, "--tls-cert",
                      cert, "--tls-key", key, "append", "s", '{"a":1}')
        self.assertEqual(r.returncode, 0, r.stderr)
        r = ledgerctl("--endpoints", c.addr(1), "--tls-ca", ca, "read", "s")
        self.assertEqual(r.returncode, 1, r.stdout)
        follower = c.followers()[0]
        st, _, b = c.append(follower, "fwd", [{"type": "t", "data": {}}])
        self.assertEqual(st, 201, b)


class CtlHttpsTest(HarnessTestCase):
    """ledgerctl cluster up --tls, and ledgerctl over https."""

    def test_cluster_up_tls_and_ledgerctl(self):
        d = tempfile.mkdtemp(prefix="tls-ctl-")
        rp = free_port_range(3)
        ap = free_port_range(3, avoid=range(rp, rp + 3))
        r = ledgerctl("cluster", "up", "--tls", "--dir", d, "--raft-port",
                      str(rp), "--api-port", str(ap), timeout=180)
        self.addCleanup(lambda: ledgerctl("cluster", "down", "--dir", d))
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn("TLS is on", r.stdout)
        tls = os.path.join(d, "tls")
        for f in ("ca.pem", "ca.key", "node1.pem", "node1.key", "node2.pem",
                  "node3.key", "client.pem", "client.key"):
            self.assertTrue(os.path.exists(os.path.join(tls, f)), f)
        for f in ("ca.key", "node1.key", "client.key", "../token"):
            mode = stat.S_IMODE(os.stat(os.path.join(tls, f)).st_mode)
            self.assertEqual(mode, 0o600, f)
        with open(os.path.join(d, "token")) as f:
            token = f.read().strip()
        self.assertGreaterEqual(len(token), 32)
        # The node certificates name the node and its address.
        out = subprocess.run(["openssl", "x509", "-noout", "-subject",
                              "-ext", "subjectAltName", "-in",
                              os.path.join(tls, "node2.pem")],
                             capture_output=True, text=True).stdout
        self.assertIn("CN = ledger-node-2", out)
        self.assertIn("IP Address:127.0.0.1", out)

        ca = os.path.join(tls, "ca.pem")
        tok = os.path.join(d, "token")
        eps = ",".join(f"{HOST}:{ap + i}" for i in range(3))
        # Flags, plain HOST:PORT endpoints.
        r = ledgerctl("--tls-ca", ca, "--token-file", tok, "--endpoints",
                      eps, "append", "s1", '{"x":1}')
        self.assertEqual(r.returncode, 0, r.stderr)
        # Environment, https:// endpoints.
        env = {"LEDGER_TLS_CA": ca, "LEDGER_TLS_CERT":
               os.path.join(tls, "client.pem"), "LEDGER_TLS_KEY":
               os.path.join(tls, "client.key"), "LEDGER_TOKEN": token,
               "LEDGER_ENDPOINTS": ",".join(f"https://{HOST}:{ap + i}"
                                            for i in range(3))}
        r = ledgerctl("read", "s1", env=env)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn('"x":1', r.stdout)
        r = ledgerctl("verify", env=env)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        # Without the CA the nodes' certificates do not verify.
        r = ledgerctl("--token-file", tok, "--endpoints",
                      f"https://{HOST}:{ap}", "status")
        self.assertEqual(r.returncode, 1)
        # Plain http to an HTTPS port says so.
        r = ledgerctl("--token-file", tok, "--endpoints", f"{HOST}:{ap}",
                      "status")
        self.assertEqual(r.returncode, 1)
        self.assertIn("https_required", r.stderr)
        # A second `cluster up` restarts with the same certificates.
        r = ledgerctl("cluster", "down", "--dir", d)
        self.assertEqual(r.returncode, 0, r.stderr)
        r = ledgerctl("cluster", "up", "--dir", d, timeout=180)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        r = ledgerctl("read", "s1", env=env)
        self.assertEqual(r.returncode, 0, r.stderr)


class SafeDefaultsTest(unittest.TestCase):
    """ledgerd refuses an address other hosts can reach without TLS and a
    token file, unless --insecure."""

    def run_ledgerd(self, *extra):
        d = tempfile.mkdtemp(prefix="tls-safe-")
        rp = free_ports(1)[0]
        return subprocess.run(
            [LEDGERD, "--id", "1", "--data-dir", d, "--raft-addr",
             f"{HOST}:{rp}", "--api-addr", "198.19.255.253:8001", *extra],
            capture_output=True, text=True, timeout=30 * SLOW)

    def test_refused_without_tls_and_token(self):
        r = self.run_ledgerd()
        self.assertEqual(r.returncode, 2, r.stderr)
        lines = r.stderr.strip().splitlines()
        self.assertEqual(len(lines), 1, r.stderr)
        self.assertIn("refusing to listen on 198.19.255.253:8001 without TLS "
                      "and a token file", lines[0])
        self.assertIn("--insecure", lines[0])

    def test_token_alone_is_not_enough(self):
        d = tempfile.mkdtemp(prefix="tls-tok-")
        tok = os.path.join(d, "token")
        with open(tok, "w") as f:
            f.write("x\n")
        r = self.run_ledgerd("--token-file", tok)
        self.assertEqual(r.returncode, 2)
        self.assertIn("without TLS:", r.stderr)

    def test_insecure_lets_it_try(self):
        """With --insecure the check passes; the bind then fails here (no
        such address on this host), which proves the refusal was the
        check."""
        r = self.run_ledgerd("--insecure")
        self.assertNotIn("refusing", r.stderr)
        self.assertEqual(r.returncode, 1, r.stderr)

    def test_loopback_needs_nothing(self):
        d = tempfile.mkdtemp(prefix="tls-lo-")
        rp, ap = free_ports(2)
        p = subprocess.Popen(
            [LEDGERD, "--id", "1", "--data-dir", d, "--raft-addr",
             f"{HOST}:{rp}", "--api-addr", f"{HOST}:{ap}", "--bootstrap",
             f"1={HOST}:{rp}@{HOST}:{ap}"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            wait_until(lambda: http_request(f"{HOST}:{ap}", "GET",
                                            "/health")[0] == 200,
                       timeout=30, msg="a loopback node without TLS")
        finally:
            p.send_signal(signal.SIGTERM)
            p.wait(60)


if __name__ == "__main__":
    unittest.main()
