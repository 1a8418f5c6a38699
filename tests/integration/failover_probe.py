"""Failover as clients feel it: the measurement behind issue 11 point 5,
shared by scripts/gray.py (the tool that prints the figures) and
test_failover_gray.py (the test that asserts them).

One round on a running harness.Cluster of three nodes:

1. Wait for a healthy cluster with every node caught up; L is the leader,
   F1 and F2 the followers.
2. Start the clients (default four): client k writes through follower
   F1 or F2 (alternating) only, one request at a time on a keep-alive
   connection, each append one event with a unique id `gK-N`, a client
   timeout (default 10 s). A client retries an answer other than 201 after
   50 ms with the same id (Retry-After is not honoured: the figures measure
   the cluster, not a client's back-off); after a timeout or a broken
   connection it reconnects and retries the same id.
3. Once every client has been acknowledged, inject one fault on L; t0 is
   the moment it is in full effect: `stop` (SIGSTOP, SIGCONT after --duration), `cut` (nftables drop
   every packet between L and its peers, both ways, for --duration;
   network namespaces, root only; clients still reach every node) or
   `kill` (kill -9; restarted after --duration).
4. Heal at t0 + duration and keep the clients running until every client
   has been acknowledged again for a request sent after the heal (at most
   --settle seconds), then stop them.

Figures of a round (seconds after t0):
- `first_ack`: the first 201 for a request sent at or after t0 (an answer
  that was on its way at t0 is no failover);
- `all_answered`: the time by which every client had an answer (any
  status) to a request sent at or after t0; a client timeout counts as the
  end of that wait and shows as `timeout` among the answers;
- `longest_gap`: the longest stretch without any 201 (of any client)
  between the last acknowledgement before t0 and the end of the round;
  `gap_at` is where that stretch begins;
- `new_leader`: when a follower first reported a leader other than L
  (its /health, polled every 50 ms);
- `answers`: every answer that came at or after t0 (also to the requests
  in flight at t0), by status and error code (`201`,
  `503 outcome_unknown`, `timeout`, `conn: ...`), until the end of the
  round.
"""
import collections
import http.client
import json
import signal
import socket
import threading
import time

import harness

FAULTS = ("stop", "cut", "kill")


class Client(threading.Thread):
    """One writer through one node; records (t_send, t_done, outcome)."""

    def __init__(self, cid, host, port, timeout, stream):
        super().__init__(daemon=True)
        self.cid = cid
        self.host = host
        self.port = port
        self.timeout = timeout
        self.stream = stream
        self.records = []
        self.lock = threading.Lock()
        self.halt = threading.Event()
        self.conn = None
        self.n = 0

    def _connect(self):
        self.conn = http.client.HTTPConnection(self.host, self.port,
                                               timeout=self.timeout)

    def _drop(self):
        if self.conn is not None:
            self.conn.close()
            self.conn = None

    def _attempt(self, body):
        """One request: the outcome string."""
        if self.conn is None:
            self._connect()
        try:
            self.conn.request("POST", f"/v1/streams/{self.stream}/events",
                              body=body,
                              headers={"Content-Type": "application/json"})
            r = self.conn.getresponse()
            raw = r.read()
            if r.will_close:
                self._drop()
        except socket.timeout:
            self._drop()
            return "timeout"
        except (OSError, http.client.HTTPException) as e:
            self._drop()
            return f"conn: {type(e).__name__}"
        if r.status == 201:
            return "201"
        code = ""
        try:
            code = json.loads(raw)["error"]["code"]
        except (ValueError, KeyError, TypeError):
            pass
        return f"{r.status} {code}".strip()

    def run(self):
        body = None
        while not self.halt.is_set():
            if body is None:
                self.n += 1
                body = json.dumps({"events": [{
                    "type": "gray", "id": f"g{self.cid}-{self.n}",
                    "data": {"c": self.cid, "n": self.n}}]}).encode()
            t_send = time.monotonic()
            out = self._attempt(body)
            t_done = time.monotonic()
            with self.lock:
                self.records.append((t_send, t_done, out))
            if out == "201" or out.startswith("4"):
                body = None  # done (a 4xx is final: nothing to retry)
            else:
                self.halt.wait(0.05)
        self._drop()

    def snapshot(self):
        with self.lock:
            return list(self.records)


class LeaderWatch(threading.Thread):
    """Polls the followers' /health every 50 ms; notes the first time one
    of them names a leader other than `old`."""

    def __init__(self, addrs, old):
        super().__init__(daemon=True)
        self.addrs = addrs
        self.old = old
        self.seen = None  # (t, leader id)
        self.halt = threading.Event()

    def run(self):
        while not self.halt.is_set() and self.seen is None:
            for addr in self.addrs:
                try:
                    _, _, b = harness.http_request(addr, "GET", "/health",
                                                   timeout=0.5)
                except (OSError, http.client.HTTPException, ValueError):
                    continue
                lid = b.get("leader_id") if isinstance(b, dict) else None
                if lid and lid != self.old:
                    self.seen = (time.monotonic(), lid)
                    return
            self.halt.wait(0.05)


def figures(records_by_client, t0, t_end):
    """The round's figures from every client's records (see the module
    comment); times in seconds after t0."""
    acks = sorted(d for recs in records_by_client for (s, d, o) in recs
                  if o == "201")
    first_ack = None
    for recs in records_by_client:
        for s, d, o in recs:
            if o == "201" and s >= t0 and (first_ack is None or d < first_ack):
                first_ack = d
    answered = []
    answers = collections.Counter()
    for recs in records_by_client:
        after = [(s, d, o) for (s, d, o) in recs if s >= t0]
        answered.append(min((d for s, d, o in after), default=None))
        for s, d, o in recs:
            if d >= t0:
                answers[o] += 1
    before = [a for a in acks if a < t0]
    points = ([before[-1]] if before else [t0]) + \
        [a for a in acks if t0 <= a <= t_end] + [t_end]
    gap, gap_at = 0.0, points[0]
    for a, b in zip(points, points[1:]):
        if b - a > gap:
            gap, gap_at = b - a, a
    return {
        "first_ack": None if first_ack is None else first_ack - t0,
        "all_answered": (None if any(x is None for x in answered)
                         else max(answered) - t0),
        "longest_gap": gap,
        "gap_at": gap_at - t0,
        "answers": dict(answers.most_common()),
    }


def fmt_answers(answers):
    return ", ".join(f"{k} x{v}" for k, v in answers.items()) or "none"


def fmt_s(x):
    return "never" if x is None else f"{x:.2f} s"


class NodeDied(AssertionError):
    """A node exited although nothing stopped it (a crash)."""


def check_alive(c):
    """Raise NodeDied when a node started by c exited on its own."""
    for nid, n in c.nodes.items():
        if n.proc is not None and n.proc.poll() is not None:
            code = n.proc.returncode
            c.kill9(nid)  # reaps it: the next round starts it again
            raise NodeDied(f"node {nid} exited on its own with code {code} "
                           f"(negative: killed by that signal); see "
                           f"{n.log_path}")


def settle_cluster(c, timeout=60):
    """Every node running, healthy and caught up; returns the leader.
    Raises NodeDied if a node crashed since the last round."""
    check_alive(c)
    for nid, n in c.nodes.items():
        if not n.alive():
            c.start_node(nid)
    c.wait_healthy(timeout=timeout)
    lid = c.leader(timeout=timeout)
    for nid in c.ids():
        def caught_up():
            if any(n.proc is not None and n.proc.poll() is not None
                   for n in c.nodes.values()):
                return "a node died"  # check_alive says which
            st, _, _ = c.get(nid, "/health?caught_up=1&timeout_ms=2000",
                             timeout=10)
            return st == 200
        harness.wait_until(caught_up, timeout=120, interval=0.2,
                           msg=f"node {nid} to catch up")
        check_alive(c)
    return lid


def run_round(c, fault, duration=8.0, clients=4, timeout=10.0, settle=20.0,
              log=None):
    """One fault on the leader of harness.Cluster c (see the module
    comment); returns the figures plus 'fault', 'leader', 'new_leader'."""
    if fault not in FAULTS:
        raise ValueError(f"unknown fault {fault!r}: one of {FAULTS}")
    if fault == "cut" and c.net is None:
        raise ValueError("the cut fault needs a cluster in network "
                         "namespaces (Cluster(net=harness.netns()))")
    say = log or (lambda msg: None)
    lid = settle_cluster(c)
    fol = [i for i in c.ids() if i != lid]
    stream = harness.unique("gray")
    cl = []
    for k in range(clients):
        node = c.nodes[fol[k % len(fol)]]
        cl.append(Client(k, node.host, node.api_port, timeout, stream))
    for x in cl:
        x.start()
    watch = None
    healed = False
    try:
        def warmed():
            return all(any(o == "201" for _, _, o in x.snapshot())
                       for x in cl)
        harness.wait_until(warmed, timeout=30, msg="every client acked")
        # Half a second of steady load before the fault.
        time.sleep(0.5)
        watch = LeaderWatch([c.addr(i) for i in fol], lid)
        if fault == "stop":
            c.signal(lid, signal.SIGSTOP)
            t0 = time.monotonic()
        elif fault == "cut":
            c.isolate(lid)  # about 8 nft calls: t0 is when all are in
            t0 = time.monotonic()
        else:
            c.signal(lid, signal.SIGKILL)
            t0 = time.monotonic()
            c.kill9(lid)  # reaps it (the exit takes tens of ms)
        watch.start()
        say(f"{fault}: leader {lid} at t0; followers {fol} take the writes")
        while time.monotonic() < t0 + duration:
            time.sleep(0.05)
        t_heal = time.monotonic()
        if fault == "stop":
            c.signal(lid, signal.SIGCONT)
        elif fault == "cut":
            c.heal()
        else:
            c.start_node(lid)
        healed = True
        say(f"{fault}: healed at {t_heal - t0:.2f} s")

        def again():
            return all(any(o == "201" and s >= t_heal
                           for s, _, o in x.snapshot()) for x in cl)
        end = t_heal + settle * harness.SLOW
        while not again() and time.monotonic() < end:
            time.sleep(0.05)
        t_end = time.monotonic()
    finally:
        if not healed:
            if fault == "stop":
                c.signal(lid, signal.SIGCONT)
            elif fault == "cut":
                c.heal()
        if watch is not None:
            watch.halt.set()
        for x in cl:
            x.halt.set()
        for x in cl:
            x.join(timeout + 5)
    check_alive(c)
    recs = [x.snapshot() for x in cl]
    fig = figures(recs, t0, t_end)
    fig.update({"fault": fault, "leader": lid, "followers": fol,
                "duration": duration,
                "new_leader": (None if watch.seen is None
                               else watch.seen[0] - t0),
                "new_leader_id": watch.seen[1] if watch.seen else None})
    return fig


def describe(fig):
    return (f"{fig['fault']:<4} leader {fig['leader']}: new leader "
            f"{fig['new_leader_id'] or '-'} known at "
            f"{fmt_s(fig['new_leader'])}; first ack {fmt_s(fig['first_ack'])};"
            f" every client answered by {fmt_s(fig['all_answered'])}; "
            f"longest without an ack {fig['longest_gap']:.2f} s (from "
            f"{fig['gap_at']:+.2f} s); answers: {fmt_answers(fig['answers'])}")
