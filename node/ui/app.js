/* ledger console (node/ui/app.js): polls this node's API once a second and
 * draws the cluster's state. No libraries, nothing loaded from elsewhere.
 *
 * Data: GET /v1/cluster (a follower relays the leader's view; when it
 * cannot, it answers with its own, node_state != "leader", which the page
 * says) and GET /v1/cluster/history?since_ms=T (the leader's per-second
 * samples; only the new ones after the first call). The bearer token the
 * user types is kept in sessionStorage (gone when the tab closes) and sent
 * with every call.
 *
 * Fixed DOM interface (CONTRACT.md "Console and roles"): #tolerance's text
 * starts with the number of further voters the cluster can lose; #leader
 * holds the leader's id; #members has one tr[data-member-id] per member
 * with data-role and data-state. */
"use strict";

(function () {
  const REFRESH_MS = 1000;
  const TIMEOUT_MS = 4500;
  const WINDOW_MS = 10 * 60 * 1000;
  const GAP_MS = 2500; /* A longer pause between samples breaks a line. */
  const TOKEN_KEY = "ledger.token";
  const COLORS = ["#2f5fd0", "#d0442f", "#14804a", "#a15c00", "#7a3fc0",
                  "#0f7c8a", "#b8327a", "#5c6b00"];
  const SVGNS = "http://www.w3.org/2000/svg";

  const $ = (id) => document.getElementById(id);
  let samples = [];      /* History samples, oldest first. */
  let historyFrom = 0;   /* Node id whose ring `samples` came from. */
  let lastOk = 0;        /* Date.now() of the last good /v1/cluster. */
  let lagUnit = "ms";
  let lastCluster = null;

  /* ---- Formatting ------------------------------------------------------ */

  function fmtMs(ms) {
    if (ms === null || ms === undefined) return "–";
    if (ms < 1000) return ms + " ms";
    const s = ms / 1000;
    if (s < 60) return s.toFixed(s < 10 ? 1 : 0) + " s";
    const m = Math.floor(s / 60);
    if (m < 60) return m + " m " + Math.floor(s % 60) + " s";
    const h = Math.floor(m / 60);
    if (h < 48) return h + " h " + (m % 60) + " m";
    return Math.floor(h / 24) + " d " + (h % 24) + " h";
  }

  function fmtBytes(b) {
    if (b === null || b === undefined) return "–";
    const units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let i = 0;
    while (b >= 1024 && i < units.length - 1) { b /= 1024; i++; }
    return (i === 0 ? b : b.toFixed(b < 10 ? 1 : 0)) + " " + units[i];
  }

  function fmtNum(v) {
    if (v === null || v === undefined) return "–";
    if (Math.abs(v) >= 1e6) return (v / 1e6).toFixed(1) + "M";
    if (Math.abs(v) >= 1e4) return (v / 1e3).toFixed(0) + "k";
    return String(Math.abs(v) >= 100 ? Math.round(v)
                                     : Math.round(v * 10) / 10);
  }

  /* ---- API ------------------------------------------------------------- */

  async function api(path) {
    const headers = { "Accept": "application/json" };
    const token = sessionStorage.getItem(TOKEN_KEY);
    if (token) headers["Authorization"] = "Bearer " + token;
    const ctl = new AbortController();
    const timer = setTimeout(() => ctl.abort(), TIMEOUT_MS);
    try {
      const r = await fetch(path, { headers, signal: ctl.signal,
                                    cache: "no-store" });
      let body = null;
      try { body = await r.json(); } catch (e) { body = null; }
      return { status: r.status, body };
    } finally {
      clearTimeout(timer);
    }
  }

  function errText(res) {
    const e = res.body && res.body.error;
    return e ? e.code + ": " + e.message : "HTTP " + res.status;
  }

  /* ---- Banner ---------------------------------------------------------- */

  function banner(text, bad) {
    const b = $("banner");
    b.hidden = !text;
    b.textContent = text || "";
    b.classList.toggle("bad", !!bad);
  }

  /* ---- Summary and table ----------------------------------------------- */

  function renderTolerance(c) {
    const el = $("tolerance");
    const card = el.parentElement;
    const voters = c.members.filter((m) => m.role === "voter");
    const live = voters.filter((m) => m.reachable !== false).length;
    const quorum = Math.floor(voters.length / 2) + 1;
    let n;
    let text;
    if (c.leader_id === 0 || c.node_state !== "leader") {
      n = c.leader_id === 0 ? 0 : null;
      text = c.leader_id === 0 ? "no leader: writes are stopped"
                               : "unknown: the leader cannot be reached";
    } else {
      n = c.fault_tolerance !== null && c.fault_tolerance !== undefined
        ? c.fault_tolerance : Math.max(0, live - quorum);
      text = "can lose " + n + " more voter" + (n === 1 ? "" : "s") +
        (n === 0 ? ": one more failure stops writes" : "") +
        " (" + live + " of " + voters.length + " voters reachable, quorum " +
        quorum + ")";
    }
    el.querySelector(".num").textContent = n === null ? "?" : String(n);
    el.querySelector(".text").textContent = text;
    const cls = n === null ? "unknown" : n === 0 ? "bad" : "ok";
    el.className = "value " + cls;
    card.className = "card tol " + cls;
  }

  const COLUMNS = [
    ["Id", (m) => String(m.id)],
    ["Role", (m) => m.role],
    ["State", null], /* A pill, filled below. */
    ["Reachable", (m) => m.reachable === null || m.reachable === undefined
      ? "–" : (m.reachable ? "yes" : "no")],
    ["Applied", (m) => String(m.applied_index), "n"],
    ["Lag (entries)", (m) => String(m.lag_entries), "n"],
    ["Lag", (m) => fmtMs(m.lag_ms), "n"],
    ["Last contact", (m) => m.last_contact_ms === null ? "–"
      : (m.last_contact_ms === 0 ? "now" : fmtMs(m.last_contact_ms) + " ago"),
     "n"],
    ["Stable for", (m) => m.stable_ms === null || m.stable_ms === undefined
      ? "–" : fmtMs(m.stable_ms)],
    ["Disk free", (m) => m.disk_free_bytes === null ||
      m.disk_free_bytes === undefined ? "–" : fmtBytes(m.disk_free_bytes),
     "n"],
    ["Version", (m) => m.version || "–"],
    ["API address", (m) => m.api_addr || "–"],
  ];

  function renderRow(tr, m) {
    if (tr.cells.length === 0) {
      COLUMNS.forEach(([label, , cls]) => {
        const td = tr.insertCell();
        td.dataset.label = label;
        if (cls) td.className = cls;
      });
    }
    tr.dataset.memberId = String(m.id);
    tr.dataset.role = m.role;
    tr.dataset.state = m.state;
    COLUMNS.forEach(([, fn], i) => {
      const td = tr.cells[i];
      if (fn) {
        td.textContent = fn(m);
        return;
      }
      let pill = td.firstChild;
      if (!pill) {
        pill = document.createElement("span");
        td.appendChild(pill);
      }
      pill.className = "pill " + m.state;
      pill.textContent = m.state;
    });
    const disk = tr.cells[9];
    const low = m.disk_free_bytes !== null && m.disk_size_bytes &&
      m.disk_free_bytes < m.disk_size_bytes * 0.1;
    disk.classList.toggle("low", !!low);
    if (m.stable_since) tr.cells[8].title = "since " + m.stable_since;
  }

  function renderMembers(c) {
    const tbody = $("members").tBodies[0];
    const seen = new Set();
    const members = c.members.slice().sort((a, b) => a.id - b.id);
    members.forEach((m, i) => {
      const key = String(m.id);
      seen.add(key);
      let tr = tbody.querySelector('tr[data-member-id="' + key + '"]');
      if (!tr) tr = tbody.insertRow();
      if (tbody.rows[i] !== tr) tbody.insertBefore(tr, tbody.rows[i] || null);
      renderRow(tr, m);
    });
    Array.from(tbody.rows).forEach((tr) => {
      if (!seen.has(tr.dataset.memberId)) tr.remove();
    });
  }

  function renderCluster(c) {
    lastCluster = c;
    $("leader").textContent = c.leader_id ? String(c.leader_id) : "none";
    $("term").textContent = String(c.term);
    $("commit").textContent = String(c.commit_index);
    const ch = c.membership_change;
    $("change").textContent = ch
      ? "change: member " + ch.id + " → " + ch.role + " (" + ch.step + ")"
      : "\u00a0";
    $("source").textContent = "via " + location.host + (c.node_state ===
      "leader" ? " · leader's view (node " + c.node_id + ")"
      : " · node " + c.node_id + "'s own view (" + c.node_state + ")");
    if (c.leader_id === 0) {
      banner("No leader: node " + c.node_id + " (" + c.node_state +
             ") knows none. Writes are stopped until a majority of voters " +
             "is back.", true);
    } else if (c.node_state !== "leader") {
      banner("Cannot reach the leader (node " + c.leader_id + ") from " +
             location.host + ": showing node " + c.node_id + "'s own " +
             "view; reachability, lag and disk of other members are " +
             "unknown.", true);
    } else {
      banner("");
    }
    renderTolerance(c);
    renderMembers(c);
  }

  /* ---- Charts ---------------------------------------------------------- */

  function svgEl(name, attrs, parent) {
    const e = document.createElementNS(SVGNS, name);
    for (const k in attrs) e.setAttribute(k, attrs[k]);
    if (parent) parent.appendChild(e);
    return e;
  }

  function niceMax(v, floor) {
    if (!(v > floor)) return floor;
    const p = Math.pow(10, Math.floor(Math.log10(v)));
    for (const f of [1, 2, 2.5, 5, 10]) if (v <= f * p) return f * p;
    return 10 * p;
  }

  /* series: [{name, color, points: [[t_ms, value]]}]; x spans the
   * WINDOW_MS up to `now` (the newest sample's time); y from 0 to at
   * least `floor`. */
  function drawChart(svg, legend, series, now, fmt, floor) {
    const W = Math.max(200, svg.clientWidth || 600);
    const H = 180;
    const L = 48, R = 8, T = 10, B = 20;
    svg.setAttribute("viewBox", "0 0 " + W + " " + H);
    while (svg.firstChild) svg.removeChild(svg.firstChild);
    const t0 = now - WINDOW_MS;
    let max = 0;
    series.forEach((s) => s.points.forEach(([t, v]) => {
      if (t >= t0 && v > max) max = v;
    }));
    max = niceMax(max, floor);
    const x = (t) => L + (W - L - R) * (t - t0) / WINDOW_MS;
    const y = (v) => T + (H - T - B) * (1 - v / max);
    for (let i = 0; i <= 2; i++) {
      const v = max * i / 2;
      svgEl("line", { x1: L, x2: W - R, y1: y(v), y2: y(v), class: "axis" },
            svg);
      svgEl("text", { x: L - 4, y: y(v) + 4, "text-anchor": "end",
                      class: "tick" }, svg).textContent = fmt(v);
    }
    [[-10, "-10 min"], [-5, "-5 min"], [0, "now"]].forEach(([m, label]) => {
      svgEl("text", { x: x(now + m * 60000), y: H - 4,
                      "text-anchor": m === -10 ? "start" : m === 0 ? "end"
                                                            : "middle",
                      class: "tick" }, svg).textContent = label;
    });
    if (series.every((s) => s.points.length === 0)) {
      svgEl("text", { x: W / 2, y: H / 2, "text-anchor": "middle",
                      class: "empty" }, svg).textContent =
        "no samples yet (the leader keeps one a second)";
    }
    series.forEach((s) => {
      let d = "";
      let prev = null;
      s.points.forEach(([t, v]) => {
        if (t < t0) return;
        d += (prev === null || t - prev > GAP_MS ? "M" : "L") +
          x(t).toFixed(1) + " " + y(v).toFixed(1);
        prev = t;
      });
      if (d) svgEl("path", { d, class: "line", stroke: s.color }, svg);
    });
    legend.textContent = "";
    series.forEach((s) => {
      const span = document.createElement("span");
      const sw = document.createElement("i");
      sw.style.background = s.color;
      span.appendChild(sw);
      const last = s.points.length ? s.points[s.points.length - 1][1] : null;
      span.appendChild(document.createTextNode(
        s.name + (last === null ? "" : ": " + fmt(last))));
      legend.appendChild(span);
    });
  }

  function renderCharts() {
    const now = samples.length ? samples[samples.length - 1].t_ms
                               : Date.now();
    drawChart($("chart-throughput"), $("legend-throughput"), [
      { name: "appends/s", color: COLORS[0],
        points: samples.map((s) => [s.t_ms, s.appends_per_s]) },
      { name: "events/s", color: COLORS[2],
        points: samples.map((s) => [s.t_ms, s.events_per_s]) },
    ], now, fmtNum, 10);
    const ids = new Set();
    samples.forEach((s) => s.members.forEach((m) => ids.add(m.id)));
    const series = Array.from(ids).sort((a, b) => a - b).map((id, i) => ({
      name: "node " + id, color: COLORS[i % COLORS.length],
      points: samples.flatMap((s) => s.members.filter((m) => m.id === id)
        .map((m) => [s.t_ms, lagUnit === "ms" ? m.lag_ms : m.lag_entries])),
    }));
    drawChart($("chart-lag"), $("legend-lag"), series, now,
              lagUnit === "ms" ? (v) => fmtMs(Math.round(v)) : fmtNum,
              lagUnit === "ms" ? 1000 : 10);
  }

  /* ---- Refresh loop ---------------------------------------------------- */

  async function refreshHistory() {
    const since = samples.length ? samples[samples.length - 1].t_ms : 0;
    const res = await api("/v1/cluster/history?since_ms=" + since);
    if (res.status !== 200 || !res.body) return;
    const h = res.body;
    if (h.node_id !== historyFrom) {
      /* Another leader, another ring: start over from all it has. */
      historyFrom = h.node_id;
      samples = [];
      if (since !== 0) return refreshHistory();
    }
    samples = samples.concat(h.samples);
    const newest = samples.length ? samples[samples.length - 1].t_ms : 0;
    samples = samples.filter((s) => s.t_ms > newest - WINDOW_MS);
  }

  async function refresh() {
    try {
      const res = await api("/v1/cluster");
      if (res.status === 401 || res.status === 403) {
        banner((res.status === 401 ? "This cluster needs a token: "
                                   : "This token may not read: ") +
               errText(res), true);
        $("token").focus();
      } else if (res.status !== 200 || !res.body) {
        banner("This node answered " + errText(res), true);
      } else {
        lastOk = Date.now();
        renderCluster(res.body);
        await refreshHistory();
      }
    } catch (e) {
      const ago = lastOk ? " (last answer " +
        fmtMs(Date.now() - lastOk) + " ago)" : "";
      banner("Cannot reach " + location.host + ": " +
             (e.name === "AbortError" ? "no answer within " +
              TIMEOUT_MS / 1000 + " s" : e.message) + ago, true);
    }
    document.body.classList.toggle(
      "stale", lastOk === 0 || Date.now() - lastOk > 3 * REFRESH_MS);
    $("updated").textContent = lastOk
      ? "Last update " + new Date(lastOk).toLocaleTimeString() + "." : "";
    renderCharts();
    setTimeout(refresh, REFRESH_MS);
  }

  /* ---- Controls -------------------------------------------------------- */

  function setup() {
    $("token-form").addEventListener("submit", (ev) => {
      ev.preventDefault();
      const v = $("token").value.trim();
      if (v) sessionStorage.setItem(TOKEN_KEY, v);
      $("token").value = "";
      $("token").placeholder = v ? "token set" : $("token").placeholder;
    });
    $("token-clear").addEventListener("click", () => {
      sessionStorage.removeItem(TOKEN_KEY);
      $("token").placeholder = "bearer token (if the cluster has one)";
    });
    if (sessionStorage.getItem(TOKEN_KEY)) $("token").placeholder = "token set";
    $("lag-switch").addEventListener("click", (ev) => {
      const b = ev.target.closest("button");
      if (!b) return;
      lagUnit = b.dataset.unit;
      Array.from($("lag-switch").children).forEach((x) =>
        x.classList.toggle("on", x === b));
      renderCharts();
    });
    window.addEventListener("resize", () => {
      if (lastCluster) renderCharts();
    });
    refresh();
  }

  setup();
})();
