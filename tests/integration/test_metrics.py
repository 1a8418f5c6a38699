"""Metrics by Prometheus' conventions (docs/operations.md "Metrics",
"Alerts"): `promtool check metrics` is clean on every node, the leader's
per-member gauges included; the alerting rules in docs/monitoring/ pass
`promtool check rules` and their unit tests (`promtool test rules`); the
alerts and the Grafana dashboard use only metrics the nodes expose, in
valid PromQL.

promtool comes with Debian's package prometheus (scripts/deps.sh).
"""
import json
import os
import re
import shutil
import subprocess
import tempfile

from harness import ClusterTestCase, unique, wait_until

HERE = os.path.dirname(os.path.abspath(__file__))
MONITORING = os.path.normpath(os.path.join(HERE, "../../docs/monitoring"))
ALERTS = os.path.join(MONITORING, "ledger-alerts.yml")
ALERTS_TEST = os.path.join(MONITORING, "ledger-alerts.test.yml")
DASHBOARD = os.path.join(MONITORING, "grafana-ledger.json")

NAME = re.compile(r"\bledger_[a-z0-9_]+")


def promtool(*args, stdin=None):
    path = shutil.which("promtool")
    if path is None:
        raise AssertionError("promtool not found: install Debian's package "
                             "prometheus (scripts/deps.sh does)")
    p = subprocess.run([path, *args], input=stdin, capture_output=True,
                       timeout=120, cwd=MONITORING)
    return p.returncode, (p.stdout + p.stderr).decode(errors="replace")


def exposed_names(text):
    """Names in an exposition: of every family (# TYPE, also when it has
    no sample yet) and of every sample (histograms add _bucket, _sum and
    _count)."""
    return ({m.group(1) for m in
             re.finditer(r"(?m)^([a-zA-Z_:][a-zA-Z0-9_:]*)[{ ]", text)} |
            set(re.findall(r"(?m)^# TYPE (\S+) ", text)))


def dashboard_exprs():
    with open(DASHBOARD) as f:
        d = json.load(f)
    out = []
    for p in d["panels"]:
        for t in p.get("targets", []):
            out.append((p["title"], t["expr"]))
    return d, out


class MetricsTest(ClusterTestCase):

    def metrics(self, nid):
        st, h, body = self.c.get(nid, "/metrics")
        self.assertEqual(st, 200)
        self.assertTrue(h["content-type"].startswith("text/plain"))
        return body.decode()

    def exposed(self):
        """Every node's /metrics, once every family has samples (appends
        done, the leader's member gauges filled)."""
        c = self.c
        leader = c.leader()
        s = unique("m")
        for i in range(5):
            c.append_ok(c.followers(leader)[i % 2], s, [{"type": "t"}])
        c.get(leader, "/v1/streams/no-such-stream")  # a 404 series

        def ready():
            t = self.metrics(leader)
            return t if "ledger_member_last_contact_seconds{" in t and \
                "ledger_cluster_fault_tolerance 1" in t else None
        texts = {leader: wait_until(ready, timeout=30,
                                    msg="the leader's member gauges")}
        for nid in c.followers(leader):
            texts[nid] = self.metrics(nid)
        return leader, texts

    def test_promtool_check_metrics_is_clean_on_every_node(self):
        leader, texts = self.exposed()
        for nid, text in texts.items():
            rc, out = promtool("check", "metrics", stdin=text.encode())
            self.assertEqual((rc, out.strip()), (0, ""),
                             f"node {nid} (leader {leader}):\n{out}")
            # Base units: no millisecond names anywhere.
            self.assertNotRegex(text, r"(?m)^ledger_\w*_ms[{ ]")
        lt = texts[leader]
        for name in ("ledger_member_lag_seconds", "ledger_member_lag_entries",
                     "ledger_member_last_contact_seconds",
                     "ledger_member_reachable", "ledger_cluster_voters",
                     "ledger_cluster_fault_tolerance",
                     "ledger_disk_free_bytes", "ledger_build_info"):
            self.assertIn(f"\n{name}", lt)
        follower = next(t for n, t in texts.items() if n != leader)
        self.assertNotIn("ledger_member_", follower)
        self.assertIn("ledger_disk_free_bytes", follower)
        # promtool does flag what the old names did.
        rc, out = promtool(
            "check", "metrics",
            stdin=b"# HELP ledger_member_lag_ms x\n"
                  b"# TYPE ledger_member_lag_ms gauge\n"
                  b"ledger_member_lag_ms{id=\"1\"} 3\n")
        self.assertNotEqual(rc, 0)
        self.assertIn("abbreviated units", out)

    def test_alert_rules_pass_promtool(self):
        rc, out = promtool("check", "rules", ALERTS)
        self.assertEqual(rc, 0, out)
        self.assertIn("SUCCESS", out)
        rc, out = promtool("test", "rules", ALERTS_TEST)
        self.assertEqual(rc, 0, out)

    def test_alerts_and_dashboard_use_exposed_metrics(self):
        _, texts = self.exposed()
        exposed = set()
        for t in texts.values():
            exposed |= exposed_names(t)
        with open(ALERTS) as f:
            alerts = re.sub(r"(?m)^\s*#.*$", "", f.read())
        used = set(NAME.findall(alerts))
        d, exprs = dashboard_exprs()
        self.assertGreaterEqual(len(exprs), 10)
        for _, e in exprs:
            used |= set(NAME.findall(e))
        self.assertEqual(used - exposed, set(),
                         "names in the alerts or the dashboard that no node "
                         "exposes")
        for want in ("ledger_cluster_fault_tolerance", "ledger_store_failed",
                     "ledger_member_lag_seconds", "ledger_disk_free_bytes",
                     "ledger_raft_is_leader"):
            self.assertIn(want, used)
        # Every panel's query is valid PromQL: promtool parses them as
        # recording rules, Grafana's variables filled in.
        self.assertEqual(d["uid"], "ledger-overview")
        rules = ["groups:", "  - name: dashboard", "    rules:"]
        for i, (title, e) in enumerate(exprs):
            e = e.replace("$__rate_interval", "1m").replace("$job", "ledger")
            self.assertNotIn("$", e, title)
            rules += [f"      - record: dashboard:panel_{i}",
                      f"        expr: {json.dumps(e)}"]
        with tempfile.NamedTemporaryFile("w", suffix=".yml",
                                         delete=False) as f:
            f.write("\n".join(rules) + "\n")
        try:
            rc, out = promtool("check", "rules", f.name)
        finally:
            os.unlink(f.name)
        self.assertEqual(rc, 0, out)
