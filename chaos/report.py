"""The chaos report: summary.md and timeline.png in the report directory."""
import json
import os

import checker


def _ops(report_dir):
    path = os.path.join(report_dir, "history.jsonl")
    if not os.path.exists(path):
        return {}
    return checker.pair_ops(checker.load_history(path))


def _pct(a, b):
    return f"{100.0 * a / b:.1f}%" if b else "n/a"


def _quantile(xs, q):
    if not xs:
        return 0.0
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))]


def stats(ops, end_t):
    apps = [o for o in ops.values() if o.get("f") == "append"]
    reads = [o for o in ops.values() if o.get("f") == "read"]
    cnt = {k: sum(1 for o in apps if o["outcome"] == k)
           for k in ("ok", "fail", "info")}
    rcnt = {k: sum(1 for o in reads if o["outcome"] == k)
            for k in ("ok", "fail", "info")}
    lat = [o["t_done"] - o["t_invoke"] for o in apps
           if o["outcome"] == "ok" and o.get("t_done") is not None]
    secs = max(1, int(end_t) + 1)
    busy = set(int(o["t_done"]) for o in apps
               if o["outcome"] == "ok" and o.get("t_done") is not None)
    dups = sum(1 for o in apps if o.get("duplicate"))
    conflicts = sum(1 for o in apps if o["outcome"] == "fail" and
                    "version_conflict" in str(o.get("error")))
    errors = {}
    for o in apps + reads:
        if o["outcome"] != "ok":
            k = f"{o['f']} {o['outcome']}: {o.get('error') or 'no answer'}"
            errors[k] = errors.get(k, 0) + 1
    retried = sum(1 for o in apps if len(o.get("attempts") or []) > 1)
    return {"appends": cnt, "reads": rcnt, "latency": lat,
            "seconds": secs, "seconds_with_ack": len(busy),
            "duplicates": dups, "retried": retried,
            "conflicts": conflicts, "errors": errors,
            "events_acked": sum(len(o.get("ids") or []) for o in apps
                                if o["outcome"] == "ok")}


def timeline_png(path, ops, faults, leaders, end_t):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "matplotlib is missing (apt-get install python3-matplotlib)"
    secs = max(1, int(end_t) + 1)
    thr = [0] * secs
    fails = [0] * secs
    lat_t, lat_v, lat_c = [], [], []
    for o in ops.values():
        if o.get("f") != "append" or o.get("t_done") is None:
            continue
        b = min(secs - 1, max(0, int(o["t_done"])))
        if o["outcome"] == "ok":
            thr[b] += 1
            lat_t.append(o["t_done"])
            lat_v.append(1000 * (o["t_done"] - o["t_invoke"]))
            lat_c.append("tab:blue")
        else:
            fails[b] += 1
            lat_t.append(o["t_done"])
            lat_v.append(1000 * (o["t_done"] - o["t_invoke"]))
            lat_c.append("tab:red" if o["outcome"] == "fail"
                         else "tab:orange")
    fig, axes = plt.subplots(3, 1, figsize=(13, 8), sharex=True,
                             gridspec_kw={"height_ratios": [3, 3, 1.4]})
    ax1, ax2, ax3 = axes
    xs = list(range(secs))
    ax1.step(xs, thr, where="post", color="tab:blue", label="acknowledged")
    ax1.step(xs, fails, where="post", color="tab:red",
             label="failed / indeterminate")
    ax1.set_ylabel("appends / s")
    ax1.legend(loc="upper right", fontsize=8)
    ax2.scatter(lat_t, lat_v, s=3, c=lat_c, alpha=0.6, linewidths=0)
    ax2.set_yscale("log")
    ax2.set_ylabel("append latency ms\n(blue ok, orange indet., red fail)")
    lt = [r["t"] for r in leaders] + [end_t]
    lv = [r["leader"] for r in leaders] + [leaders[-1]["leader"]
                                          if leaders else 0]
    ax3.step(lt, lv, where="post", color="black")
    ax3.set_ylabel("leader id\n(0 = none)")
    ax3.set_xlabel("seconds since the load started")
    colors = {"kill": "tab:red", "pause": "tab:purple",
              "partition": "tab:orange", "membership": "tab:green",
              "transfer": "tab:cyan", "restart-all": "tab:brown",
              "disk-full": "tab:gray"}
    top = max(thr + fails + [1])
    for f in faults:
        if f.get("end") is None:
            continue
        for ax in axes:
            ax.axvspan(f["start"], f["end"], alpha=0.15,
                       color=colors.get(f["fault"], "gray"), linewidth=0)
        ax1.text(f["start"], top * 1.02, f["fault"], fontsize=7,
                 rotation=30, va="bottom")
    ax1.set_ylim(0, top * 1.25)
    ax1.set_xlim(0, secs)
    fig.suptitle("ledger chaos run: throughput, latency and leader "
                 "(shaded: fault windows)")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return None


def write(report_dir, runner, verdict, passed, schedule, faults_enabled):
    """Write summary.md (and timeline.png); return the markdown."""
    ops = _ops(report_dir)
    faults = runner.fault_log
    leaders = runner.leader_log
    end_t = max([o["t_done"] or o["t_invoke"] for o in ops.values()] +
                [f.get("end") or 0 for f in faults] + [1])
    s = stats(ops, end_t)
    png_err = timeline_png(os.path.join(report_dir, "timeline.png"), ops,
                           faults, leaders, end_t)
    a = runner.a
    changes = sum(1 for i in range(1, len(leaders))
                  if leaders[i]["leader"] and
                  (leaders[i]["leader"], leaders[i]["term"]) !=
                  (leaders[i - 1]["leader"], leaders[i - 1]["term"]))
    no_leader = 0.0
    for i, r in enumerate(leaders):
        nxt = leaders[i + 1]["t"] if i + 1 < len(leaders) else end_t
        if not r["leader"]:
            no_leader += nxt - r["t"]
    ap = s["appends"]
    total = sum(ap.values())
    lat = s["latency"]
    L = []
    L.append(f"# Chaos run: {'PASS' if passed else 'FAIL'}")
    L.append("")
    L.append(f"- seed {a.seed}, {a.nodes} nodes, {a.duration:.0f} s, mode "
             f"{runner.mode}, {a.clients} clients, ledgerd `{a.ledgerd}`")
    L.append(f"- faults enabled: {', '.join(faults_enabled)}")
    roles = getattr(a, "roles", None)
    if roles:
        L.append(f"- roles mode: automatic roles, voters {roles[0]}, "
                 f"standbys {roles[1]}, dead after {roles[2]} s")
    L.append(f"- replay: `chaos/run --nodes {a.nodes} --duration "
             f"{a.duration:g} --faults {','.join(faults_enabled)} --seed "
             f"{a.seed}" + (f" --roles {','.join(map(str, roles))}"
                            if roles else "") + "`")
    L.append("")
    L.append("## Verdict")
    L.append("")
    if verdict is None:
        L.append("The checker did not run (see findings).")
    elif verdict.ok:
        L.append("Checker: **PASS**: every acknowledged event is present "
                 "exactly once on every node, nothing unsent or failed "
                 "appeared, seqs and positions are gapless, every node's "
                 "hash chain verifies and all nodes agree, no "
                 "expected_version was won twice, every strong read saw "
                 "every earlier acknowledgement.")
    else:
        L.append("Checker: **FAIL**")
        L.append("")
        L.append("```")
        L.extend(verdict.lines())
        L.append("```")
    if runner.findings:
        L.append("")
        L.append("Findings of the runner (each fails the run):")
        L.append("")
        for f in runner.findings:
            L.append(f"- {f}")
    warnings = getattr(runner, "warnings", [])
    if warnings:
        L.append("")
        L.append("Warnings (reported, the run does not fail for them):")
        L.append("")
        for w in warnings:
            L.append(f"- {w}")
    windows = getattr(runner, "gap_windows", [])
    ov_gap, ov_at = getattr(runner, "gap_overall", (0.0, None))
    L.append("")
    L.append("## Failover")
    L.append("")
    if getattr(runner, "gap_line", None):
        mark = ("PASS" if not any(w["over"] for w in windows) else
                "WARN" if warnings and not any(
                    "failover:" in f for f in runner.findings) else "FAIL")
        L.append(f"Longest stretch without an acknowledgement, single-node "
                 f"faults (limit {a.max_gap_s:g} s): **{mark}**: "
                 f"{runner.gap_line}.")
    if ov_at is not None:
        L.append(f"Overall, the longest stretch without an acknowledged "
                 f"append was {ov_gap:.2f} s (from t={ov_at:.1f}s).")
    L.append("")
    L.append("## Operations")
    L.append("")
    L.append("| | ok | failed | indeterminate | total |")
    L.append("|---|---|---|---|---|")
    L.append(f"| appends | {ap['ok']} | {ap['fail']} | {ap['info']} | "
             f"{total} |")
    rd = s["reads"]
    L.append(f"| strong reads | {rd['ok']} | {rd['fail']} | {rd['info']} | "
             f"{sum(rd.values())} |")
    L.append("")
    L.append(f"- events acknowledged: {s['events_acked']}; appends retried: "
             f"{s['retried']}, of which answered as duplicates: "
             f"{s['duplicates']}")
    L.append(f"- expected_version appends refused with 409 "
             f"version_conflict (a correct answer, not an outage): "
             f"{s['conflicts']}")
    L.append(f"- availability: {_pct(ap['ok'], total - s['conflicts'])} of "
             f"appends (not counting version conflicts) "
             f"acknowledged; {s['seconds_with_ack']} of {s['seconds']} "
             f"seconds had at least one acknowledgement "
             f"({_pct(s['seconds_with_ack'], s['seconds'])})")
    if lat:
        L.append(f"- acknowledged append latency (with retries): p50 "
                 f"{1000 * _quantile(lat, .5):.1f} ms, p99 "
                 f"{1000 * _quantile(lat, .99):.1f} ms, max "
                 f"{1000 * max(lat):.0f} ms")
    L.append(f"- leader changes: {changes}; time without a known leader: "
             f"{no_leader:.1f} s")
    if s["errors"]:
        top = sorted(s["errors"].items(), key=lambda kv: -kv[1])[:12]
        L.append("- failures by answer: " + "; ".join(
            f"{k} ×{n}" for k, n in top))
    if verdict is not None:
        st = verdict.stats
        L.append(f"- final state: {st.get('events')} events in "
                 f"{st.get('streams')} streams, position "
                 f"{st.get('final_position')}, identical on "
                 f"{st.get('nodes')} nodes")
    L.append("")
    L.append("## Faults applied")
    L.append("")
    L.append("| start s | end s | fault | longest without ack | what "
             "happened |")
    L.append("|---|---|---|---|---|")
    by_start = {w["start"]: w for w in windows}
    for f in faults:
        notes = "; ".join(f["notes"]).replace("|", "/")
        w = by_start.get(f["start"])
        gap = "" if w is None else (
            f"{w['gap']:.2f} s{' (single node)' if w['single'] else ''}"
            f"{' **over**' if w['over'] else ''}")
        L.append(f"| {f['start']:.1f} | {f.get('end') or 0:.1f} | "
                 f"{f['fault']} | {gap} | {notes} |")
    L.append("")
    L.append("## Timeline")
    L.append("")
    if png_err:
        L.append(f"No picture: {png_err}.")
    else:
        L.append("![timeline](timeline.png)")
        L.append("")
        L.append("Top: acknowledged and failed appends per second. Middle: "
                 "latency of each append (log scale). Bottom: the leader's "
                 "id (0: none). Shaded bands: fault windows.")
    L.append("")
    L.append("Files: `history.jsonl` (every operation), `final.json` (every "
             "node's events and verify), `checker.json`, `faults.json`, "
             "`schedule.json`, `logs/` (node logs).")
    md = "\n".join(L) + "\n"
    with open(os.path.join(report_dir, "summary.md"), "w") as f:
        f.write(md)
    return md


if __name__ == "__main__":
    print(json.dumps({"usage": "imported by chaos/runner.py"}))
