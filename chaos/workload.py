"""The chaos workload: concurrent clients appending to several streams and
reading them back, recording every operation to a JSON-lines history.

History records (one JSON object a line, "t" = seconds since the run began,
time.monotonic()):
  {"type":"invoke","op":N,"client":C,"f":"append","stream":S,"ids":[...],
   "expected_version":V|null,"node":NID,"t":T}
  {"type":"invoke","op":N,"client":C,"f":"read","stream":S,"from":F,
   "consistency":"strong","node":NID,"t":T}
  {"type":"ok"|"fail"|"info","op":N,"client":C,"node":NID,"t":T,
   "result":{...},"error":"...","duplicate":bool,"attempts":[[NID,"201"],...]}
"ok" is an acknowledgement, "fail" a definite failure (nothing was
appended), "info" an indeterminate outcome (timeouts, connection errors,
503 leader_unreachable / outcome_unknown / unavailable, 5xx).

Every append carries unique event ids "c{client}-{n}"; a timed-out or
uncertain attempt is retried with the same ids on another node.
"""
import http.client
import json

import cluster as cl
import random
import socket
import threading
import time

# Error codes that say the write was not carried out (nothing appended).
DEFINITE_503 = {"no_leader", "not_leader", "shutting_down", "out_of_memory",
                "overloaded"}
# 4xx codes that end an operation at once as a definite failure.
FINAL_4XX = {"version_conflict", "duplicate_id_conflict", "bad_event",
             "bad_body", "bad_name", "rejected", "malformed_body"}


class History:
    def __init__(self, path, t0):
        self.f = open(path, "w")
        self.lock = threading.Lock()
        self.t0 = t0
        self.next_op = 0

    def now(self):
        return round(time.monotonic() - self.t0, 6)

    def new_op(self):
        with self.lock:
            self.next_op += 1
            return self.next_op

    def write(self, rec):
        rec.setdefault("t", self.now())
        line = json.dumps(rec, separators=(",", ":"))
        with self.lock:
            self.f.write(line + "\n")

    def close(self):
        with self.lock:
            self.f.flush()
            self.f.close()


class Conn:
    """Keep-alive HTTP connections of one client, one per node."""

    def __init__(self, addr_of, timeout):
        self.addr_of = addr_of
        self.timeout = timeout
        self.conns = {}

    def request(self, nid, method, path, body=None):
        """(status, headers, body); raises OSError/HTTPException.
        A refused connection raises ConnectionRefusedError before anything
        was sent."""
        c = self.conns.get(nid)
        if c is None:
            host, port = self.addr_of(nid).rsplit(":", 1)
            c = cl.SEC.connection(host, int(port), self.timeout)
            try:
                c.connect()
            except OSError:
                c.close()
                raise
            self.conns[nid] = c
        data = json.dumps(body).encode() if body is not None else None
        hdrs = cl.SEC.headers({"Content-Type": "application/json"}
                              if data else {})
        try:
            c.request(method, path, body=data, headers=hdrs)
            r = c.getresponse()
            raw = r.read()
        except (OSError, http.client.HTTPException):
            c.close()
            self.conns.pop(nid, None)
            raise
        h = {k.lower(): v for k, v in r.getheaders()}
        if r.will_close:
            c.close()
            self.conns.pop(nid, None)
        try:
            parsed = json.loads(raw) if raw else None
        except ValueError:
            parsed = None
        return r.status, h, parsed

    def close(self):
        for c in self.conns.values():
            c.close()
        self.conns = {}


def classify_append(status, headers, body):
    """'ok', 'final' (definite failure, stop), 'definite' (nothing
    appended, retry) or 'uncertain' (may have been appended, retry)."""
    code = ""
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        code = body["error"].get("code", "")
    if status == 201:
        return "ok", code
    if status == 429:
        return "definite", code or "queue_full"
    if 400 <= status < 500:
        return "final", code or str(status)
    if status == 503 and code in DEFINITE_503:
        return "definite", code
    return "uncertain", code or str(status)


def append_op(hist, conn, client, nid_order, stream, ids, expected=None,
              stop=None, attempts=4, pause=0.3, node_ok=None):
    """One append operation with retries: writes invoke and completion
    records. Returns (outcome, result_or_error_body)."""
    op = hist.new_op()
    body = {"events": [{"type": "chaos", "id": i, "data": {"c": client}}
                       for i in ids]}
    if expected is not None:
        body["expected_version"] = expected
    hist.write({"type": "invoke", "op": op, "client": client, "f": "append",
                "stream": stream, "ids": ids, "expected_version": expected,
                "node": nid_order[0]})
    tried, uncertain, last_err, last_body = [], False, "", None
    for k in range(attempts):
        nid = nid_order[k % len(nid_order)]
        if node_ok is not None and k > 0 and not node_ok(nid):
            nid = next((x for x in nid_order if node_ok(x)), nid)
        try:
            st, h, b = conn.request(nid, "POST",
                                    f"/v1/streams/{stream}/events", body)
        except ConnectionRefusedError:
            tried.append([nid, "refused"])
            last_err = "connection refused"
            cls = "definite"
        except socket.timeout:
            tried.append([nid, "timeout"])
            last_err, cls = "timeout", "uncertain"
        except (OSError, http.client.HTTPException) as e:
            tried.append([nid, type(e).__name__])
            last_err, cls = f"{type(e).__name__}: {e}", "uncertain"
        else:
            cls, code = classify_append(st, h, b)
            tried.append([nid, f"{st} {code}".strip()])
            last_err, last_body = f"{st} {code}".strip(), b
            if cls == "ok":
                hist.write({"type": "ok", "op": op, "client": client,
                            "node": nid, "result": b,
                            "duplicate": "x-ledger-duplicate" in h,
                            "attempts": tried})
                return "ok", b
            if cls == "final":
                hist.write({"type": "fail", "op": op, "client": client,
                            "node": nid, "error": last_err,
                            "attempts": tried})
                return "fail", b
        uncertain = uncertain or cls == "uncertain"
        if stop is not None and stop.is_set():
            break
        if k + 1 < attempts:
            # A refused connection: the next node soon (not at once, or a
            # cluster that is all down burns every attempt in a moment).
            # After a timeout the next node at once: the client has waited
            # its deadline already.
            last = tried[-1][1]
            time.sleep(0 if last == "timeout" else
                       pause / 3 if last == "refused" else pause)
    typ = "info" if uncertain else "fail"
    hist.write({"type": typ, "op": op, "client": client,
                "node": tried[-1][0] if tried else None, "error": last_err,
                "attempts": tried})
    return typ, last_body


def read_op(hist, conn, client, nid, stream, from_seq):
    op = hist.new_op()
    hist.write({"type": "invoke", "op": op, "client": client, "f": "read",
                "stream": stream, "from": from_seq, "consistency": "strong",
                "node": nid})
    try:
        st, _, b = conn.request(
            nid, "GET", f"/v1/streams/{stream}/events?from={from_seq}"
            f"&limit=1000&consistency=strong")
    except (OSError, http.client.HTTPException) as e:
        hist.write({"type": "info", "op": op, "client": client, "node": nid,
                    "error": f"{type(e).__name__}"})
        return None
    if st != 200 or not isinstance(b, dict):
        code = ""
        if isinstance(b, dict) and isinstance(b.get("error"), dict):
            code = b["error"].get("code", "")
        hist.write({"type": "fail", "op": op, "client": client, "node": nid,
                    "error": f"{st} {code}".strip()})
        return None
    evs = [[e["seq"], e.get("id")] for e in b.get("events", [])]
    hist.write({"type": "ok", "op": op, "client": client, "node": nid,
                "result": {"last_seq": b.get("last_seq"), "events": evs}})
    return b


class Workload:
    def __init__(self, hist, node_ids, addr_of, clients=6, streams=5,
                 seed=1, timeout=8.0, think=(0.005, 0.03), node_ok=None):
        self.hist = hist
        self.node_ids = node_ids      # callable: the current node ids
        self.addr_of = addr_of
        self.n_clients = clients
        self.streams = [f"s{i}" for i in range(streams)]
        self.seed = seed
        self.timeout = timeout
        self.think = think
        self.node_ok = node_ok
        self.stop = threading.Event()
        self.threads = []
        self.counters = {"ok": 0, "fail": 0, "info": 0}
        self.lock = threading.Lock()

    def start(self):
        for c in range(self.n_clients):
            t = threading.Thread(target=self._client, args=(c,), daemon=True,
                                 name=f"client-{c}")
            t.start()
            self.threads.append(t)

    def _client(self, c):
        rng = random.Random(self.seed * 1000 + c)
        conn = Conn(self.addr_of, self.timeout)
        known = {s: 0 for s in self.streams}
        n = 0
        try:
            while not self.stop.is_set():
                ids = self.node_ids()
                first = rng.choice(ids)
                order = [first] + [x for x in rng.sample(ids, len(ids))
                                   if x != first]
                s = rng.choice(self.streams)
                r = rng.random()
                if r < 0.15:
                    b = read_op(self.hist, conn, c, first, s,
                                max(1, known[s] - 20))
                    if b:
                        known[s] = max(known[s], b.get("last_seq", 0))
                    out = "ok" if b else "fail"
                else:
                    expected = known[s] if r < 0.35 else None
                    k = 1 if expected is not None else rng.choice((1, 1, 2, 3))
                    ids_ = []
                    for _ in range(k):
                        n += 1
                        ids_.append(f"c{c}-{n}")
                    out, b = append_op(self.hist, conn, c, order, s, ids_,
                                       expected, stop=self.stop,
                                       node_ok=self.node_ok)
                    if out == "ok":
                        known[s] = max(known[s], b.get("last_seq", 0))
                    elif isinstance(b, dict) and isinstance(
                            b.get("error"), dict) and \
                            b["error"].get("last_seq") is not None:
                        known[s] = max(known[s], b["error"]["last_seq"])
                with self.lock:
                    self.counters[out] = self.counters.get(out, 0) + 1
                self.stop.wait(rng.uniform(*self.think))
        finally:
            conn.close()

    def halt(self, timeout=120):
        self.stop.set()
        for t in self.threads:
            t.join(timeout)
        return all(not t.is_alive() for t in self.threads)
