// faultline dashboard. Plain JavaScript, no dependencies, no build step.
//
// Safety rule: every string that comes from the API (log messages, templates, span names,
// service names) is inserted with textContent or as an attribute value through
// setAttribute; nothing is ever parsed as HTML. Links are built from fixed paths plus
// encodeURIComponent, so data can never choose a URL scheme.
//
// Page state lives in the query string, so a URL pasted into an incident channel opens the
// same view. Live updates arrive over Server-Sent Events (/api/v1/events); each event makes
// the current page refetch what it shows, at most one request per kind at a time.
"use strict";

(function () {
  const SVG_NS = "http://www.w3.org/2000/svg";
  const main = document.getElementById("main");
  const params = new URLSearchParams(location.search);

  // ---------- DOM helpers ----------

  /** Creates an element; string/number children become text nodes, never markup. */
  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    setAttrs(node, attrs);
    append(node, children);
    return node;
  }

  function svgEl(tag, attrs, ...children) {
    const node = document.createElementNS(SVG_NS, tag);
    setAttrs(node, attrs);
    append(node, children);
    return node;
  }

  function setAttrs(node, attrs) {
    if (!attrs) return;
    for (const [key, value] of Object.entries(attrs)) {
      if (value === null || value === undefined || value === false) continue;
      node.setAttribute(key, value === true ? "" : String(value));
    }
  }

  function append(node, children) {
    for (const child of children.flat(Infinity)) {
      if (child === null || child === undefined || child === false) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
  }

  /** Replaces a node's children; null/false children are skipped like in el(). */
  function fill(node, ...children) {
    node.replaceChildren();
    append(node, children);
    return node;
  }

  function link(path, query, ...children) {
    const qs = new URLSearchParams();
    for (const [k, v] of Object.entries(query || {})) {
      if (v !== null && v !== undefined && v !== "") qs.set(k, v);
    }
    const s = qs.toString();
    return el("a", { href: path + (s ? "?" + s : "") }, ...children);
  }

  // ---------- formatting ----------

  function fmtCount(n) {
    if (n === null || n === undefined || Number.isNaN(n)) return "–";
    const a = Math.abs(n);
    if (a >= 1e9) return (n / 1e9).toFixed(1) + "G";
    if (a >= 1e6) return (n / 1e6).toFixed(1) + "M";
    if (a >= 1e4) return (n / 1e3).toFixed(1) + "k";
    if (Number.isInteger(n)) return String(n);
    return a >= 100 ? n.toFixed(0) : a >= 10 ? n.toFixed(1) : n.toFixed(2);
  }

  function fmtAgo(ms) {
    if (!ms) return "–";
    const s = Math.max(0, (Date.now() - ms) / 1000);
    if (s < 60) return Math.round(s) + " s ago";
    if (s < 3600) return Math.round(s / 60) + " min ago";
    if (s < 86400) return (s / 3600).toFixed(1) + " h ago";
    return (s / 86400).toFixed(1) + " d ago";
  }

  function fmtClock(ms) {
    const d = new Date(ms);
    return String(d.getHours()).padStart(2, "0") + ":" + String(d.getMinutes()).padStart(2, "0");
  }

  function fmtTime(ms) {
    const d = new Date(ms);
    return d.toISOString().replace("T", " ").replace(/\.\d+Z$/, "Z");
  }

  function fmtDuration(us) {
    if (us >= 1e6) return (us / 1e6).toFixed(2) + " s";
    if (us >= 1e3) return (us / 1e3).toFixed(1) + " ms";
    return us + " µs";
  }

  /** The template with its masked parameters (<IP>, <NUM>, <*> ...) highlighted. */
  function template(text, tag) {
    const node = el(tag || "span", { class: "template" });
    const parts = String(text).split(/(<[A-Z_*][A-Z0-9_*]{0,15}>)/);
    parts.forEach((part, i) => {
      if (!part) return;
      node.append(i % 2 === 1 ? el("span", { class: "param" }, part) : document.createTextNode(part));
    });
    return node;
  }

  // A service keeps its colour on every page, so the colour comes from its name: FNV-1a with
  // a final mix (similar names such as "frontend"/"orders" landed on near hues with a plain
  // multiplicative hash), then one of 24 hues spread by the golden angle.
  function serviceColor(name) {
    let h = 0x811c9dc5;
    for (let i = 0; i < name.length; i++) h = Math.imul(h ^ name.charCodeAt(i), 0x01000193) >>> 0;
    h ^= h >>> 16;
    h = Math.imul(h, 0x85ebca6b) >>> 0;
    h ^= h >>> 13;
    return "hsl(" + Math.round(((h >>> 0) % 24) * 137.508 % 360) + " 62% 55%)";
  }

  function service(name) {
    const node = el("span", { class: "svc" }, name);
    node.style.setProperty("--svc", serviceColor(name));
    return node;
  }

  function badge(emergence) {
    if (!emergence) return null;
    return el("span", { class: "badge " + emergence.kind }, emergence.kind);
  }

  // ---------- data ----------

  async function api(path) {
    const response = await fetch(path, { credentials: "same-origin", headers: { Accept: "application/json" } });
    let body = null;
    try { body = await response.json(); } catch (_) { body = null; }
    if (!response.ok) {
      const message = body && body.message ? body.message : response.status + " " + response.statusText;
      const error = new Error(message);
      error.status = response.status;
      throw error;
    }
    return body;
  }

  function errorPanel(err) {
    return el("div", { class: "panel error-box", role: "alert" }, "Could not load: ", err.message);
  }

  // ---------- charts (SVG) ----------

  const CHART_W = 600;
  const PALETTE = ["#ff6b5b", "#7aa2ff", "#ffb547", "#5fd38d", "#c792ea", "#4dd0e1", "#f48fb1", "#aed581"];

  function niceMax(v) {
    if (!(v > 0)) return 1;
    const p = Math.pow(10, Math.floor(Math.log10(v)));
    for (const m of [1, 2, 2.5, 5, 10]) if (m * p >= v) return m * p;
    return 10 * p;
  }

  function timeTicks(t0, t1) {
    const span = t1 - t0;
    const steps = [60e3, 120e3, 300e3, 600e3, 900e3, 1800e3, 3600e3, 7200e3, 21600e3, 43200e3, 86400e3];
    const step = steps.find((s) => span / s <= 7) || 86400e3;
    const ticks = [];
    for (let t = Math.ceil(t0 / step) * step; t <= t1; t += step) ticks.push(t);
    return ticks;
  }

  /**
   * A line chart over the time range [t0, t1]; series = [{name, points: [[t, v|null]...]}].
   * The legend lists each series' latest value as text, which is also what a screen reader gets.
   */
  function lineChart(title, series, t0, t1, opts) {
    opts = opts || {};
    const W = opts.width || CHART_W, H = opts.height || 120, padL = 36, padR = 8, padT = 6, padB = 16;
    const w = W - padL - padR, h = H - padT - padB;
    let max = 0;
    for (const s of series) for (const [t, v] of s.points) if (v !== null && t >= t0 && t <= t1 && v > max) max = v;
    max = niceMax(max);
    const x = (t) => padL + ((t - t0) / (t1 - t0 || 1)) * w;
    const y = (v) => padT + h - (v / max) * h;
    const svg = svgEl("svg", { class: "chart", viewBox: "0 0 " + W + " " + H, role: "img", "aria-label": title });
    for (const frac of [0, 0.5, 1]) {
      svg.append(svgEl("line", { class: "gridline", x1: padL, x2: padL + w, y1: y(max * frac), y2: y(max * frac) }));
      svg.append(svgEl("text", { x: padL - 4, y: y(max * frac) + 3, "text-anchor": "end" }, fmtCount(max * frac)));
    }
    for (const t of timeTicks(t0, t1)) {
      svg.append(svgEl("line", { class: "gridline", x1: x(t), x2: x(t), y1: padT, y2: padT + h }));
      svg.append(svgEl("text", { x: x(t), y: H - 3, "text-anchor": "middle" }, fmtClock(t)));
    }
    const legend = el("ul", { class: "legend" });
    series.forEach((s, i) => {
      const color = s.color || PALETTE[i % PALETTE.length];
      let d = "", pen = false, last = null;
      for (const [t, v] of s.points) {
        if (v === null || t < t0 || t > t1) { pen = false; continue; }
        d += (pen ? "L" : "M") + x(t).toFixed(1) + " " + y(v).toFixed(1);
        pen = true;
        last = v;
      }
      if (d) svg.append(svgEl("path", { d, fill: "none", stroke: color, "stroke-width": s.width || 1.6, "stroke-linejoin": "round" }));
      // A series that knows its current value shows it (null: none now, e.g. a failing target)
      // rather than its last point, which may be from before the failure.
      const shown = "current" in s ? s.current : last;
      const item = el("li", null, s.name, " ", el("span", { class: "val" }, fmtCount(shown)), s.note ? el("span", { class: "moved" }, " " + s.note) : null);
      item.style.setProperty("--c", color);
      legend.append(item);
    });
    addCrosshair(svg, { x, t0, t1, padT, h, series });
    return el("div", { class: "chartbox" }, el("h3", null, title), svg, legend);
  }

  // Hovering a chart draws a crosshair at that time on every chart of the page, with each
  // series' value there: charts share the time axis, so the eye can line up what moved.
  const crosshairs = [];

  function addCrosshair(svg, chart) {
    const line = svgEl("line", { class: "now", y1: chart.padT, y2: chart.padT + chart.h, visibility: "hidden" });
    const label = svgEl("text", { class: "hover", y: chart.padT + 10, visibility: "hidden" });
    svg.append(line, label);
    const entry = { svg, chart, line, label };
    crosshairs.push(entry);
    const toTime = (event) => {
      const box = svg.getBoundingClientRect();
      const vb = svg.viewBox.baseVal;
      const px = ((event.clientX - box.left) / box.width) * vb.width;
      return chart.t0 + ((px - chart.x(chart.t0)) / (chart.x(chart.t1) - chart.x(chart.t0))) * (chart.t1 - chart.t0);
    };
    svg.addEventListener("pointermove", (event) => showCrosshairs(toTime(event)));
    svg.addEventListener("pointerleave", () => showCrosshairs(null));
  }

  function showCrosshairs(t) {
    // Charts replaced by a refresh are gone from the page: forget them.
    for (let i = crosshairs.length - 1; i >= 0; i--) if (!crosshairs[i].svg.isConnected) crosshairs.splice(i, 1);
    for (const { chart, line, label } of crosshairs) {
      if (t === null || t < chart.t0 || t > chart.t1) {
        line.setAttribute("visibility", "hidden");
        label.setAttribute("visibility", "hidden");
        continue;
      }
      const xx = chart.x(t);
      line.setAttribute("x1", xx); line.setAttribute("x2", xx);
      line.setAttribute("visibility", "visible");
      const values = chart.series.map((s) => {
        let best = null;
        for (const p of s.points) if (p[1] !== null && (best === null || Math.abs(p[0] - t) < Math.abs(best[0] - t))) best = p;
        return best ? s.name + " " + fmtCount(best[1]) : null;
      }).filter(Boolean).slice(0, 3);
      label.textContent = fmtClock(t) + "  " + values.join(" · ");
      const right = xx > chart.x(chart.t0) + (chart.x(chart.t1) - chart.x(chart.t0)) * 0.6;
      label.setAttribute("x", right ? xx - 4 : xx + 4);
      label.setAttribute("text-anchor", right ? "end" : "start");
      label.setAttribute("visibility", "visible");
    }
  }

  /** Per-minute counts as [t, v] points at each minute's middle. */
  function minutePoints(mc) {
    return (mc.counts || []).map((c, i) => [mc.start_unix_ms + i * 60000 + 30000, c]);
  }

  /** A small area sparkline over [t0, t1]. */
  function sparkline(mc, t0, t1, calm, label) {
    const W = 260, H = 34;
    const pts = minutePoints(mc).filter(([t]) => t >= t0 && t <= t1);
    const max = Math.max(1, ...pts.map(([, v]) => v));
    const x = (t) => ((t - t0) / (t1 - t0 || 1)) * W;
    const y = (v) => H - 2 - (v / max) * (H - 4);
    const svg = svgEl("svg", { class: "spark" + (calm ? " calm" : ""), viewBox: "0 0 " + W + " " + H, preserveAspectRatio: "none", role: "img", "aria-label": label });
    if (pts.length) {
      let line = "";
      pts.forEach(([t, v], i) => { line += (i ? "L" : "M") + x(t).toFixed(1) + " " + y(v).toFixed(1); });
      const area = line + "L" + x(pts[pts.length - 1][0]).toFixed(1) + " " + H + "L" + x(pts[0][0]).toFixed(1) + " " + H + "Z";
      svg.append(svgEl("path", { class: "area", d: area }), svgEl("path", { class: "line", d: line }));
    }
    return svg;
  }

  /** Bars of per-minute counts (cluster timeline). */
  function barChart(title, mc) {
    const W = 1300, H = 170, padL = 36, padB = 16, padT = 6, w = W - padL - 8, h = H - padT - padB;
    // Show at least half an hour, so that a young pattern is a narrow bar at the right end
    // rather than one bar across the whole chart.
    const raw = mc.counts || [];
    const counts = Array(Math.max(0, 30 - raw.length)).fill(0).concat(raw);
    const t0 = mc.start_unix_ms - (counts.length - raw.length) * 60000;
    const t1 = t0 + Math.max(1, counts.length) * 60000;
    const max = niceMax(Math.max(0, ...counts));
    const svg = svgEl("svg", { class: "chart bars", viewBox: "0 0 " + W + " " + H, role: "img", "aria-label": title });
    for (const frac of [0, 0.5, 1]) {
      const yy = padT + h - frac * h;
      svg.append(svgEl("line", { class: "gridline", x1: padL, x2: padL + w, y1: yy, y2: yy }));
      svg.append(svgEl("text", { x: padL - 4, y: yy + 3, "text-anchor": "end" }, fmtCount(max * frac)));
    }
    const bw = w / Math.max(1, counts.length);
    counts.forEach((c, i) => {
      if (!c) return;
      const bh = (c / max) * h;
      svg.append(svgEl("rect", { x: padL + i * bw + 0.5, y: padT + h - bh, width: Math.max(1, bw - 1), height: bh },
        svgEl("title", null, fmtClock(t0 + i * 60000) + ": " + c)));
    });
    for (const t of timeTicks(t0, t1)) {
      svg.append(svgEl("text", { x: padL + ((t - t0) / (t1 - t0)) * w, y: H - 3, "text-anchor": "middle" }, fmtClock(t)));
    }
    return el("div", { class: "chartbox" }, el("h3", null, title), svg);
  }

  function seriesPoints(snapshot, series) {
    return (series.points || []).map((v, i) => [snapshot.history_start_unix_ms + i * snapshot.step_ms, v]);
  }

  /** How much a series moved over the window: last minus first known value. */
  function moved(points) {
    const known = points.filter(([, v]) => v !== null);
    if (known.length < 2) return 0;
    return known[known.length - 1][1] - known[0][1];
  }

  /** A task target as a chart series: a failing one says so and why, and shows no count. */
  function taskSeries(snapshot, t) {
    const points = seriesPoints(snapshot, t.history);
    return {
      name: t.target + (t.error ? " (failing: " + t.error + ")" : ""),
      points,
      current: t.error ? null : t.current,
      note: t.error ? "" : signedNote(points),
    };
  }

  /** A socket series' name, as the API renders it from the series vocabulary. */
  function socketLabel(s) {
    return s.label || s.state;
  }

  function signed(n) {
    return (n > 0 ? "+" : "") + fmtCount(n);
  }

  /** The sockets that moved most over the window, as chart series. */
  function movingSockets(snapshot, limit) {
    return (snapshot.sockets || [])
      .map((s) => { const points = seriesPoints(snapshot, s.history); return { s, points, delta: moved(points) }; })
      .sort((a, b) => Math.abs(b.delta) - Math.abs(a.delta) || b.s.current - a.s.current)
      .slice(0, limit)
      .map(({ s, points, delta }) => ({ name: socketLabel(s), points, note: delta ? signed(delta) : "" }));
  }

  // ---------- live updates ----------

  const listeners = { clusters: [], traces: [], counters: [] };
  function onLive(kind, fn) { listeners[kind].push(fn); }

  // Browsers allow about six HTTP/1.1 connections per host, shared by all tabs, and each
  // EventSource holds one. So the tabs of one agent elect a leader (Web Locks) that alone
  // holds the stream and relays its events to the others over a BroadcastChannel. Where
  // those APIs are missing (plain http beyond loopback is not a secure context), each tab
  // opens its own stream.
  function startLive() {
    const badgeNode = document.getElementById("live");
    const status = (text, cls) => { badgeNode.textContent = text; badgeNode.className = "live " + cls; };
    const deliver = (kind) => { if (listeners[kind]) for (const fn of listeners[kind]) fn(); };
    if (!window.EventSource) { status("no live updates", "off"); return; }

    const open = (relay) => {
      const source = new EventSource("/api/v1/events");
      window.addEventListener("pagehide", () => source.close());
      source.addEventListener("hello", () => { status("live", "on"); if (relay) relay.postMessage("hello"); });
      source.onerror = () => { status("reconnecting", "off"); if (relay) relay.postMessage("error"); };
      for (const kind of Object.keys(listeners)) {
        source.addEventListener(kind, () => { deliver(kind); if (relay) relay.postMessage(kind); });
      }
      return source;
    };

    if (!(window.BroadcastChannel && navigator.locks && window.isSecureContext)) { open(null); return; }
    const channel = new BroadcastChannel("faultline-live");
    let leader = null, lastHeard = 0;
    channel.onmessage = (event) => {
      if (leader) {
        // A new follower asks whether the stream is up.
        if (event.data === "ask") channel.postMessage(leader.readyState === 1 ? "ping" : "error");
        return;
      }
      lastHeard = Date.now();
      if (event.data === "hello" || event.data === "ping") status("live", "on");
      else if (event.data === "error") status("reconnecting", "off");
      else if (event.data !== "ask") deliver(event.data);
    };
    channel.postMessage("ask");
    setInterval(() => {
      if (leader) channel.postMessage(leader.readyState === 1 ? "ping" : "error");
      else if (Date.now() - lastHeard > 25000) status("waiting for the live stream", "off");
    }, 10000);
    navigator.locks.request("faultline-live-stream", () => {
      leader = open(channel);
      return new Promise(() => {}); // Hold the lock until this tab goes away.
    });
  }

  /** Runs `load` now and on each live event of `kinds`; never two at once, never a backlog. */
  function refreshing(kinds, load) {
    let running = false, again = false;
    async function run() {
      if (running) { again = true; return; }
      running = true;
      try { await load(); } finally {
        running = false;
        if (again) { again = false; run(); }
      }
    }
    for (const k of kinds) onLive(k, run);
    return run();
  }

  /** A section whose content is replaced on refresh. */
  function slot(cls) { return el("div", { class: cls || "" }); }

  // ---------- pages ----------

  function windowMs(text, fallback) {
    const m = /^([1-9][0-9]{0,5})([smhd])$/.exec(text || "");
    if (!m) return fallback;
    return Number(m[1]) * { s: 1e3, m: 60e3, h: 3600e3, d: 86400e3 }[m[2]];
  }

  const ROLE_TEXT = {
    callee: "the callee: it closed, reset, refused or hung; its callers only saw the error",
    caller: "the caller fails on its own (its name lookups, its local ports, its own timeouts)",
    self: "it reported the error itself",
  };

  /** One line: "starts in <callee> (seen by <caller>, <edge>) in 412 of 415 traces", with the
   *  services as chips; an unresolved verdict says it is unsure. */
  function culpritLine(c) {
    if (!c) return null;
    const seen = c.seen_by.length ? [" (seen by ", c.seen_by.map(service),
      c.edge ? [", ", c.edge.caller, " → ", c.edge.callee, c.edge.operation ? " " + c.edge.operation : "",
        c.edge.address ? " " + c.edge.address : ""] : null, ")"] : null;
    const count = c.traces_total > 1 ? " in " + fmtCount(c.traces_agreeing) + " of " + fmtCount(c.traces_total) + " traces" : "";
    return el("p", { class: "culprit" + (c.resolved ? "" : " unsure") },
      c.resolved ? "Starts in " : "Shows in ", service(c.service), seen, count,
      c.resolved ? null : el("span", { class: "muted" }, " — callee unknown"));
  }

  /** The culprit with its reasoning and evidence. */
  function culpritPanel(c, title) {
    if (!c) return null;
    return el("section", { class: "panel culprit-panel", "aria-labelledby": "h-culprit" },
      el("h2", { id: "h-culprit" }, title),
      culpritLine(c),
      el("p", null, el("span", { class: "label" }, "Role "), ROLE_TEXT[c.role] || c.role, " · fault: ", c.fault.replace(/_/g, " ")),
      el("p", { class: "reason" }, c.reasoning),
      c.evidence.length ? el("details", { open: "" }, el("summary", null, "Evidence"),
        el("ul", { class: "evidence" }, c.evidence.map((e) => el("li", null, el("code", null, e))))) : null);
  }

  function patternRow(c, t0, t1) {
    const e = c.emergence;
    const label = "occurrences per minute of " + c.canonical_template;
    return el("article", { class: "pattern" },
      el("div", null, badge(e), link("/cluster", { id: c.id }, template(c.canonical_template))),
      el("div", { class: "spark" }, sparkline(c.sparkline, t0, t1, !e, label)),
      el("div", { class: "meta" },
        e ? el("span", { class: "reason" }, e.reason) : null,
        el("span", null, el("span", { class: "big" }, fmtCount(c.rate_per_minute)), " /min"),
        el("span", null, fmtCount(c.total_count), " total"),
        el("span", null, "first seen ", fmtAgo(c.first_seen_unix_ms)),
        el("span", null, c.services.map(service))),
      culpritLine(c.culprit));
  }

  // ---------- incidents ----------

  const ROLES = { callee: "the callee of the failing calls", caller: "the caller itself", self: "reported its own error" };

  /** One incident: where it lives, what shows it, and what to check next (hints, never verdicts). */
  function incidentCard(inc) {
    const c = inc.culprit;
    const who = c.service
      ? el("p", { class: "culprit" }, "Culprit: ", service(c.service), c.role ? el("span", { class: "muted" }, " — " + (ROLES[c.role] || c.role)) : null)
      : el("p", { class: "culprit" }, "Culprit not known",
        c.seen_in.length ? [" — seen in ", c.seen_in.map(service)] : null);
    const reasons = c.reasoning.length ? el("ul", { class: "reasons" }, c.reasoning.map((r) => el("li", null, r))) : null;
    const patterns = inc.patterns.length
      ? el("div", null, el("h3", null, "Patterns"),
        el("ul", { class: "plain" }, inc.patterns.map((p) => el("li", null,
          link("/cluster", { id: p.id }, template(p.text)),
          el("span", { class: "muted" }, " · ", fmtCount(p.count), " · since ", fmtAgo(p.onset_unix_ms), " · ", p.services.map(service))))))
      : null;
    const counters = inc.counters.length
      ? el("div", null, el("h3", null, "Counters"),
        el("ul", { class: "plain" }, inc.counters.map((k) => el("li", { class: "counter " + k.relation },
          el("span", null, k.anomaly.evidence), el("span", { class: "muted" }, " — " + k.relation_text)))))
      : null;
    const hints = inc.hints.slice(0, 3).map((h, i) => el("details", { class: "hint", open: i === 0 },
      el("summary", null, el("span", { class: "badge hintb" }, "hint"), " ", h.title),
      el("p", { class: "muted" }, "A possibility with the evidence that matched, not a verdict."),
      el("h4", null, "Evidence"), el("ul", null, h.evidence.map((e) => el("li", null, e))),
      el("h4", null, "Likely causes"), el("ol", null, h.causes.map((e) => el("li", null, e))),
      el("h4", null, "Next checks"), el("ul", { class: "checks" }, h.checks.map((k) => el("li", null,
        k.what, el("pre", null, el("code", null, k.command)),
        k.complete ? null : el("span", { class: "muted" }, "Fill in the <…> part: the incident does not say it.")))),
      el("h4", null, "Ruled out if"), el("ul", null, h.ruled_out_by.map((e) => el("li", null, e)))));
    return el("article", { class: "incident" + (inc.active ? " active" : ""), id: "incident-" + inc.id },
      el("div", { class: "head" },
        el("span", { class: "badge " + (inc.active ? "err" : "ended") }, inc.active ? "active" : "ended"),
        " ", el("strong", null, inc.title)),
      el("p", { class: "muted" }, "Since ", fmtTime(inc.onset_unix_ms), " (", fmtAgo(inc.onset_unix_ms), ")",
        inc.active ? null : [" · last active ", fmtAgo(inc.last_active_unix_ms)]),
      who, reasons, patterns, counters, hints);
  }

  async function overview() {
    const span = windowMs(params.get("window"), 30 * 60e3);
    const windowText = params.get("window") || "30m";
    const emerging = slot(), node = slot(), recent = slot(), moved = slot(), incidents = slot();
    fill(main, 
      el("h1", null, "What is happening on this node"),
      el("section", { class: "panel", id: "incidents", "aria-labelledby": "h-incidents" }, el("h2", { id: "h-incidents" }, "Incidents"), incidents),
      el("p", { class: "axisnote" }, "Patterns and counters share one time axis: the last ", windowText,
        " (", link("/", { window: "15m" }, "15m"), " · ", link("/", { window: "30m" }, "30m"), " · ",
        link("/", { window: "1h" }, "1h"), ")."),
      el("div", { class: "grid2" },
        el("div", null,
          el("section", { class: "panel", "aria-labelledby": "h-emerging" }, el("h2", { id: "h-emerging" }, "Emerging now"), emerging),
          el("section", { class: "panel", id: "moved", "aria-labelledby": "h-moved" },
            el("h2", { id: "h-moved" }, "What moved with it"), moved)),
        el("section", { class: "panel", "aria-labelledby": "h-node" }, el("h2", { id: "h-node" }, "Node"), node)),
      el("section", { class: "panel", "aria-labelledby": "h-recent" }, el("h2", { id: "h-recent" }, "Most frequent patterns"), recent));

    await Promise.all([
      refreshing(["clusters", "counters"], async () => {
        try {
          const doc = await api("/api/v1/incidents");
          fill(incidents, ...(doc.incidents.length
            ? doc.incidents.map(incidentCard)
            : [el("p", { class: "empty" }, "No incident: no emerging pattern and no counter broke from its usual level (",
              fmtCount(doc.series_judged), " series judged",
              doc.unjudged.length ? ", " + (doc.unjudged.length + doc.unjudged_omitted) + " not judged yet" : "", ").")]));
        } catch (err) { fill(incidents, errorPanel(err)); }
      }),
      refreshing(["clusters"], async () => {
        const t1 = Date.now(), t0 = t1 - span;
        try {
          const [em, top] = await Promise.all([
            api("/api/v1/clusters?emerging=true&limit=20"),
            api("/api/v1/clusters?sort=rate&limit=15&window=" + encodeURIComponent(windowText)),
          ]);
          fill(emerging, ...(em.clusters.length
            ? em.clusters.map((c) => patternRow(c, t0, t1))
            : [el("p", { class: "empty" }, "Nothing is emerging. New error patterns and surges show up here without a reload.")]));
          const calm = top.clusters.filter((c) => !c.emergence);
          fill(recent, ...(calm.length
            ? calm.map((c) => patternRow(c, t0, t1))
            : [el("p", { class: "empty" }, "No other patterns in this window.")]));
        } catch (err) { fill(emerging, errorPanel(err)); }
      }),
      refreshing(["clusters", "counters"], async () => {
        try {
          // The top emerging pattern, else the one that appeared most recently.
          const em = await api("/api/v1/clusters?emerging=true&limit=1");
          const top = em.clusters.length ? em.clusters : (await api("/api/v1/clusters?sort=first_seen&limit=1")).clusters;
          if (!top.length) { fill(moved, el("p", { class: "empty" }, "No error pattern yet: nothing to compare the counters with.")); return; }
          const doc = await api("/api/v1/clusters/" + encodeURIComponent(top[0].id) + "/moved");
          fill(moved, movedBody(doc, top[0]));
        } catch (err) { fill(moved, errorPanel(err)); }
      }),
      refreshing(["counters"], async () => {
        const t1 = Date.now(), t0 = t1 - span;
        try {
          const snap = await api("/api/v1/counters");
          const tasks = (snap.tasks || []).map((t) => taskSeries(snap, t));
          fill(node, 
            lineChart("TCP sockets that moved (state, port)", movingSockets(snap, 4), t0, t1),
            lineChart("Goroutines / tasks", tasks, t0, t1),
            lineChart("Protocol counters (/s)", (snap.protocol_rates || []).map((s) => ({ name: s.name, points: seriesPoints(snap, s.history) })), t0, t1, { height: 100 }));
        } catch (err) { fill(node, errorPanel(err)); }
      }),
    ]);
  }

  function signedNote(points) {
    const d = moved(points);
    return d ? signed(d) : "";
  }

  const SORTS = [["emerging", "Emerging"], ["rate", "Rate"], ["count", "Count"], ["first_seen", "First seen"], ["last_seen", "Last seen"]];

  async function clusters() {
    const state = {
      q: params.get("q") || "", service: params.get("service") || "", window: params.get("window") || "",
      emerging: params.get("emerging") === "true", sort: params.get("sort") || "emerging", cursor: params.get("cursor") || "",
    };
    const sortSelect = el("select", { name: "sort", id: "f-sort" }, SORTS.map(([v, label]) => el("option", { value: v, selected: v === state.sort }, label)));
    const form = el("form", { class: "filters", method: "get", action: "/clusters", role: "search" },
      el("label", null, "Text", el("input", { name: "q", id: "f-q", type: "search", value: state.q, placeholder: "reset by peer" })),
      el("label", null, "Service", el("input", { name: "service", value: state.service, placeholder: "user-svc" })),
      el("label", null, "Seen within", el("input", { name: "window", value: state.window, placeholder: "15m", size: 6, pattern: "[1-9][0-9]{0,5}[smhd]" })),
      el("label", null, "Sort", sortSelect),
      el("label", { class: "check" }, el("input", { type: "checkbox", name: "emerging", value: "true", checked: state.emerging }), "Emerging only"),
      el("button", { type: "submit" }, "Apply"));
    const body = slot();
    fill(main, el("h1", null, "Error patterns"), form, el("section", { class: "panel" }, body));

    const sortLink = (key, label) => {
      const q = Object.assign({}, state, { sort: key, cursor: "", emerging: state.emerging ? "true" : "" });
      const a = link("/clusters", q, label);
      if (state.sort === key) a.setAttribute("aria-sort", "descending");
      return a;
    };
    await refreshing(["clusters"], async () => {
      const q = new URLSearchParams();
      for (const k of ["q", "service", "window", "sort", "cursor"]) if (state[k]) q.set(k, state[k]);
      if (state.emerging) q.set("emerging", "true");
      q.set("limit", "100");
      try {
        const page = await api("/api/v1/clusters?" + q.toString());
        const t1 = Date.now(), t0 = t1 - 60 * 60e3;
        const rows = page.clusters.map((c) => el("tr", null,
          el("td", null, badge(c.emergence), link("/cluster", { id: c.id }, template(c.canonical_template)),
            c.emergence ? el("div", { class: "muted" }, c.emergence.reason) : null),
          el("td", { class: "num" }, fmtCount(c.rate_per_minute)),
          el("td", { class: "num" }, fmtCount(c.total_count)),
          el("td", null, c.services.map(service)),
          el("td", { class: "num" }, fmtAgo(c.first_seen_unix_ms)),
          el("td", { class: "num" }, fmtAgo(c.last_seen_unix_ms)),
          el("td", null, sparkline(c.sparkline, t0, t1, !c.emergence, "last hour"))));
        const next = page.next_cursor
          ? link("/clusters", Object.assign({}, state, { cursor: page.next_cursor, emerging: state.emerging ? "true" : "" }), "Next page →")
          : null;
        fill(body, 
          el("p", { class: "muted" }, page.total + " pattern" + (page.total === 1 ? "" : "s") + " match."),
          rows.length ? el("table", null,
            el("thead", null, el("tr", null,
              el("th", null, sortLink("emerging", "Pattern")), el("th", { class: "num" }, sortLink("rate", "/min")),
              el("th", { class: "num" }, sortLink("count", "Count")), el("th", null, "Services"),
              el("th", { class: "num" }, sortLink("first_seen", "First seen")), el("th", { class: "num" }, sortLink("last_seen", "Last seen")),
              el("th", null, "Last hour"))),
            el("tbody", null, rows)) : el("p", { class: "empty" }, "No pattern matches these filters."),
          el("div", { class: "pager" }, state.cursor ? link("/clusters", Object.assign({}, state, { cursor: "", emerging: state.emerging ? "true" : "" }), "← First page") : null, next));
      } catch (err) { fill(body, errorPanel(err)); }
    });
  }

  async function cluster() {
    const id = params.get("id") || "";
    const body = slot();
    // Kept across refreshes of the page body: it refreshes itself, with the counters too.
    const moved = slot();
    const movedSection = el("section", { class: "panel", id: "moved", "aria-labelledby": "h-moved" },
      el("h2", { id: "h-moved" }, "What moved with it"), moved);
    fill(main, body);
    refreshing(["clusters", "counters"], async () => {
      try {
        fill(moved, movedBody(await api("/api/v1/clusters/" + encodeURIComponent(id) + "/moved"), null));
      } catch (err) { fill(moved, errorPanel(err)); }
    });
    await refreshing(["clusters"], async () => {
      try {
        const d = await api("/api/v1/clusters/" + encodeURIComponent(id));
        const traces = await api("/api/v1/traces?limit=20&cluster=" + encodeURIComponent(id)).catch(() => ({ traces: [] }));
        const c = d.summary;
        fill(body, 
          el("p", { class: "muted" }, link("/clusters", null, "← Patterns"), " · pattern ", el("code", null, c.id)),
          el("h1", null, badge(c.emergence), template(c.canonical_template)),
          c.emergence ? el("p", { class: "reason" }, c.emergence.reason) : null,
          culpritPanel(d.culprit, "Where it starts"),
          el("div", { class: "stats" },
            stat("Rate", fmtCount(c.rate_per_minute) + " /min"),
            stat("Failures", fmtCount(c.total_count) + (d.reports > c.total_count ? " (" + fmtCount(d.reports) + " reports)" : "")),
            stat("First seen", fmtAgo(c.first_seen_unix_ms)), stat("Last seen", fmtAgo(c.last_seen_unix_ms)),
            stat("Templates", String(c.template_count)), el("div", null, el("span", { class: "label" }, "Services"), el("span", null, c.services.map(service))),
            (d.seen_in || []).length ? stat("Seen in", d.seen_in.map((x) => x.source.replace(/_/g, " ") + " " + fmtCount(x.occurrences)).join(" · ")) : null),
          el("section", { class: "panel" }, barChart("Occurrences per minute", d.per_minute)),
          movedSection,
          el("div", { class: "grid2" },
            el("section", { class: "panel" }, el("h2", null, "Templates"),
              el("table", null, el("thead", null, el("tr", null, el("th", null, "Template"), el("th", { class: "num" }, "Count"), el("th", null, "Services"))),
                el("tbody", null, d.templates.map((t) => el("tr", null, el("td", null, template(t.template)), el("td", { class: "num" }, fmtCount(t.count)), el("td", null, t.services.map(service))))))),
            el("section", { class: "panel" }, el("h2", null, "Parameter values"),
              d.parameters.length ? d.parameters.map(distribution) : el("p", { class: "empty" }, "No parameters."))),
          el("div", { class: "grid2" },
            el("section", { class: "panel" }, el("h2", null, "Samples"),
              d.samples.length ? d.samples.map((s) => el("div", { class: "sample" },
                el("div", { class: "muted" }, fmtTime(s.time_unix_ms), " ", service(s.service), " ", el("span", { class: "lvl-" + s.level }, s.level),
                  s.trace_id ? [" · ", link("/trace", { id: s.trace_id }, "trace")] : null),
                el("pre", { class: "msg" }, s.message))) : el("p", { class: "empty" }, "No samples kept.")),
            el("section", { class: "panel" }, el("h2", null, "Traces it occurs in"), traceTable(traces.traces, d.trace_ids))));
      } catch (err) { fill(body, errorPanel(err)); }
    });
  }

  // ---------- what moved with it ----------

  function fmtSecond(ms) {
    const d = new Date(ms);
    return fmtClock(ms) + ":" + String(d.getSeconds()).padStart(2, "0");
  }

  /**
   * The answer of /api/v1/clusters/{id}/moved: the verdict in a sentence, then each moved
   * counter with its evidence and a small chart on the document's time axis, the onset marked.
   * `pattern` (a cluster row) names the pattern when the panel is not on its own page.
   */
  function movedBody(doc, pattern) {
    const head = pattern ? el("p", { class: "moved-pattern" }, badge(pattern.emergence),
      link("/cluster", { id: pattern.id }, template(pattern.canonical_template))) : null;
    const onset = el("p", { class: "axisnote" }, "Onset ", fmtSecond(doc.onset_unix_ms),
      doc.onset_source === "emergence" ? " (when it started emerging)" : " (first seen)",
      doc.onset_precision_ms > 1000 ? ", known to ±" + Math.round(doc.onset_precision_ms / 1000) + " s" : "",
      doc.search_start_unix_ms ? ["; each counter's usual level from ", fmtSecond(doc.baseline_start_unix_ms), " to ",
        fmtSecond(doc.search_start_unix_ms), ", changes looked for until ", fmtSecond(doc.search_end_unix_ms), "."] : ".");
    const summary = el("p", { class: doc.verdict === "moved" ? "reason" : "empty", "data-verdict": doc.verdict }, doc.summary);
    if (doc.verdict !== "moved") return [head, summary, doc.verdict === "not_enough_history" ? null : onset];
    return [head, summary, onset, el("ol", { class: "moved-list" }, doc.moved.map((m) => el("li", { class: "moved-item" },
      el("p", { class: "evidence" }, m.evidence),
      movedChart(doc, m))))];
  }

  /** One moved counter (line) over the pattern's occurrences (bars, own scale), onset marked. */
  function movedChart(doc, m) {
    const W = CHART_W, H = 96, padL = 36, padR = 8, padT = 6, padB = 16;
    const w = W - padL - padR, h = H - padT - padB;
    const at = (i) => doc.history_start_unix_ms + i * doc.step_ms;
    const points = (m.history.points || []).map((v, i) => [at(i), v]);
    const occ = (doc.pattern.points || []).map((v, i) => [at(i), v]);
    const t0 = doc.history_start_unix_ms, t1 = Math.max(t0 + 1, at(Math.max(points.length, occ.length) - 1));
    let max = 0;
    for (const [, v] of points) if (v !== null && v > max) max = v;
    max = niceMax(max);
    const occMax = Math.max(1, ...occ.map(([, v]) => v || 0));
    const x = (t) => padL + ((t - t0) / (t1 - t0)) * w;
    const y = (v) => padT + h - (v / max) * h;
    const title = m.label + " and the pattern's occurrences";
    const svg = svgEl("svg", { class: "chart moved-chart", viewBox: "0 0 " + W + " " + H, role: "img", "aria-label": title });
    for (const frac of [0, 0.5, 1]) {
      svg.append(svgEl("line", { class: "gridline", x1: padL, x2: padL + w, y1: y(max * frac), y2: y(max * frac) }));
      svg.append(svgEl("text", { x: padL - 4, y: y(max * frac) + 3, "text-anchor": "end" }, fmtCount(max * frac)));
    }
    for (const t of timeTicks(t0, t1)) {
      svg.append(svgEl("text", { x: x(t), y: H - 3, "text-anchor": "middle" }, fmtClock(t)));
    }
    const bw = Math.max(1, w / Math.max(1, occ.length));
    for (const [t, v] of occ) {
      if (!v) continue;
      const bh = (v / occMax) * h * 0.5;
      svg.append(svgEl("rect", { class: "occ", x: x(t) - bw / 2, y: padT + h - bh, width: bw, height: bh }));
    }
    let d = "", pen = false;
    for (const [t, v] of points) {
      if (v === null) { pen = false; continue; }
      d += (pen ? "L" : "M") + x(t).toFixed(1) + " " + y(v).toFixed(1);
      pen = true;
    }
    if (d) svg.append(svgEl("path", { class: "counter", d }));
    const ox = x(doc.onset_unix_ms);
    // The label goes on the side of the marker with room for it.
    const right = ox > padL + w * 0.7;
    svg.append(svgEl("line", { class: "onset", x1: ox, x2: ox, y1: padT, y2: padT + h }),
      svgEl("text", { class: "onset-label", x: right ? ox - 3 : ox + 3, y: padT + 9, "text-anchor": right ? "end" : "start" },
        "errors " + fmtSecond(doc.onset_unix_ms)));
    // The change point sits on the line, where the series left its usual range.
    const atChange = points.find(([t, v]) => t >= m.changed_at_unix_ms && v !== null);
    svg.append(svgEl("circle", { class: "change", cx: x(m.changed_at_unix_ms), cy: y(atChange ? atChange[1] : m.after), r: 3 },
      svgEl("title", null, m.label + " left its usual range at " + fmtSecond(m.changed_at_unix_ms))));
    addCrosshair(svg, { x, t0, t1, padT, h, series: [{ name: m.label, points }, { name: "errors", points: occ }] });
    return svg;
  }

  function stat(label, value) {
    return el("div", null, el("span", { class: "label" }, label), el("span", { class: "big" }, value));
  }

  function distribution(p) {
    const total = p.top.reduce((a, v) => a + v.count, 0) + p.other_count;
    const rows = p.top.map((v) => {
      const bar = el("div", { class: "bar" });
      bar.style.width = (total ? (100 * v.count) / total : 0).toFixed(1) + "%";
      return [el("code", null, v.value), el("div", null, bar), el("span", { class: "num" }, fmtCount(v.count))];
    });
    if (p.other_count) rows.push([el("span", { class: "muted" }, "other values"), el("div"), el("span", { class: "num" }, fmtCount(p.other_count))]);
    return [el("h3", null, template(p.name)), el("div", { class: "dist" }, rows)];
  }

  function traceTable(summaries, ids) {
    if (summaries && summaries.length) {
      return el("table", null,
        el("thead", null, el("tr", null, el("th", null, "Trace"), el("th", null, "Root"), el("th", { class: "num" }, "Duration"), el("th", { class: "num" }, "Errors"), el("th", null, "When"))),
        el("tbody", null, summaries.map((t) => el("tr", null,
          el("td", null, link("/trace", { id: t.trace_id }, el("code", null, t.trace_id.slice(0, 16) + "…"))),
          el("td", null, service(t.root_service), t.root_name),
          el("td", { class: "num" }, fmtDuration(t.duration_us)),
          el("td", { class: "num" }, t.error_count ? el("span", { class: "badge err" }, String(t.error_count)) : "0"),
          el("td", { class: "num" }, fmtAgo(t.start_unix_us / 1000))))));
    }
    if (ids && ids.length) return el("ul", null, ids.map((id) => el("li", null, link("/trace", { id }, el("code", null, id)))));
    return el("p", { class: "empty" }, "No trace carried this pattern (the services may not send trace ids).");
  }

  async function traces() {
    const state = { cluster: params.get("cluster") || "", service: params.get("service") || "", errors: params.get("errors") === "true" };
    const form = el("form", { class: "filters", method: "get", action: "/traces", role: "search" },
      el("label", null, "Pattern id", el("input", { name: "cluster", value: state.cluster })),
      el("label", null, "Service", el("input", { name: "service", value: state.service })),
      el("label", { class: "check" }, el("input", { type: "checkbox", name: "errors", value: "true", checked: state.errors }), "With errors only"),
      el("button", { type: "submit" }, "Apply"));
    const body = slot();
    fill(main, el("h1", null, "Call chains"), form, el("section", { class: "panel" }, body));
    await refreshing(["traces"], async () => {
      const q = new URLSearchParams({ limit: "100" });
      if (state.cluster) q.set("cluster", state.cluster);
      if (state.service) q.set("service", state.service);
      if (state.errors) q.set("errors", "true");
      try {
        const page = await api("/api/v1/traces?" + q.toString());
        fill(body, page.traces.length ? traceTable(page.traces) : el("p", { class: "empty" }, "No trace matches."));
      } catch (err) { fill(body, errorPanel(err)); }
    });
  }

  async function trace() {
    const id = params.get("id") || "";
    const body = slot();
    fill(main, body);
    const templates = new Map();
    await refreshing(["traces"], async () => {
      try {
        const chain = await api("/api/v1/traces/" + encodeURIComponent(id));
        await patternTemplates(chain.cluster_ids, templates);
        fill(body, ...renderChain(chain, templates));
      } catch (err) { fill(body, errorPanel(err)); }
    });
  }

  /** Fills `known` (cluster id → canonical template) for `ids`, at most 20 lookups; a pattern
   *  that cannot be read (evicted, or the API failed) keeps its bare id. */
  async function patternTemplates(ids, known) {
    const wanted = ids.filter((cid) => !known.has(cid)).slice(0, 20);
    await Promise.all(wanted.map(async (cid) => {
      try {
        const detail = await api("/api/v1/clusters/" + encodeURIComponent(cid));
        known.set(cid, detail.summary.canonical_template);
      } catch (_) { /* shown as its id */ }
    }));
  }

  function logLine(log, t0) {
    return el("div", { class: "log" },
      el("span", { class: "muted" }, "+" + fmtDuration(log.time_unix_us - t0)),
      el("span", { class: "lvl-" + log.level }, log.level),
      el("span", { class: "msg" }, log.message),
      log.cluster_id ? link("/cluster", { id: log.cluster_id }, "pattern") : el("span"));
  }

  function renderChain(chain, templates) {
    const spans = chain.spans;
    const t0 = Math.min(...spans.map((s) => s.start_unix_us));
    const t1 = Math.max(...spans.map((s) => s.start_unix_us + s.duration_us));
    const total = Math.max(1, t1 - t0);
    const services = [...new Set(spans.map((s) => s.service))];
    const origin = spans.find((s) => s.span_id === chain.error_origin_span_id);
    const rows = spans.map((s) => {
      const isOrigin = s.span_id === chain.error_origin_span_id;
      const bar = el("div", { class: "bar" + (s.status === "error" ? " error" : "") });
      const left = (100 * (s.start_unix_us - t0)) / total;
      const width = (100 * s.duration_us) / total;
      bar.style.left = left.toFixed(2) + "%";
      bar.style.width = Math.max(0.3, width).toFixed(2) + "%";
      bar.style.setProperty("--svc", serviceColor(s.service));
      const dur = el("span", { class: "dur" }, fmtDuration(s.duration_us));
      if (left + width > 88) {
        // No room after the bar: write the duration inside its right end.
        dur.classList.add("inside");
        dur.style.right = Math.max(0, 100 - left - width + 0.5).toFixed(2) + "%";
      } else {
        dur.style.left = (left + width + 0.5).toFixed(2) + "%";
      }
      const indent = el("span", { class: "indent" });
      indent.style.width = (s.depth * 14) + "px";
      return el("div", { class: "span-row" + (isOrigin ? " origin" : ""), id: "span-" + s.span_id },
        el("div", { class: "span-name" }, indent, service(s.service), " ", s.name,
          s.status === "error" ? el("span", { class: "badge err" }, "error") : null,
          isOrigin ? el("span", { class: "origin-tag" }, "◀ error starts here") : null),
        el("div", { class: "track", title: s.name + " " + fmtDuration(s.duration_us) + (s.status_message ? " — " + s.status_message : "") }, bar, dur),
        s.logs.length || s.status_message ? el("div", { class: "logs" },
          s.status_message ? el("div", { class: "log" }, el("span"), el("span", { class: "lvl-error" }, "status"), el("span", { class: "msg" }, s.status_message), el("span")) : null,
          s.logs.map((l) => logLine(l, t0))) : null);
    });
    return [
      el("p", { class: "muted" }, link("/traces", null, "← Call chains"), " · trace ", el("code", null, chain.trace_id)),
      el("h1", null, spans.length ? spans[0].name : "Empty trace"),
      el("div", { class: "stats" },
        stat("Duration", fmtDuration(total)), stat("Spans", String(spans.length)),
        stat("Started", fmtAgo(t0 / 1000)),
        el("div", null, el("span", { class: "label" }, "Services"), el("span", null, services.map(service)))),
      origin && !chain.culprit ? el("p", { class: "reason" }, "The error starts in ", service(origin.service), " ", origin.name,
        origin.status_message ? ": " + origin.status_message : "", " (", el("a", { href: "#span-" + origin.span_id }, "jump"), ")") : null,
      culpritPanel(chain.culprit, "Where the error starts"),
      origin && chain.culprit ? el("p", { class: "muted" }, el("a", { href: "#span-" + origin.span_id }, "Jump to the span where it starts")) : null,
      chain.cluster_ids.length ? el("section", { class: "panel", "aria-labelledby": "h-trace-patterns" },
        el("h2", { id: "h-trace-patterns" }, "Error patterns in this trace"),
        el("ul", { class: "trace-patterns" }, chain.cluster_ids.map((cid) => el("li", null,
          link("/cluster", { id: cid }, templates.has(cid) ? template(templates.get(cid)) : el("code", null, cid)))))) : null,
      el("section", { class: "panel waterfall", "aria-label": "Waterfall of the call chain" }, rows),
      chain.unattached_logs.length ? el("section", { class: "panel" }, el("h2", null, "Logs without a known span"), chain.unattached_logs.map((l) => logLine(l, t0))) : null,
    ];
  }

  // ---------- counters page ----------

  /** A listener whose accept queue holds this fraction of its backlog is marked near full. */
  const QUEUE_NEAR_FULL = 0.8;
  /** Rows of the listener table before idle listeners are folded into one line. */
  const LISTENER_ROWS = 5;

  function fmtBytes(n) {
    if (n === null || n === undefined) return "–";
    const units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let i = 0;
    while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
    return (i === 0 ? String(n) : n.toFixed(n >= 100 ? 0 : 1)) + " " + units[i];
  }

  function fmtPercent(f) {
    return f === null || f === undefined ? "–" : (100 * f).toFixed(f < 0.1 ? 1 : 0) + "%";
  }

  /** The change over the last minute of a series, as a table cell ("–" when unknown). */
  function deltaCell(series) {
    const d = series ? series.delta_1m : null;
    if (d === null || d === undefined) return el("td", { class: "num muted" }, "–");
    return el("td", { class: "num" + (d > 0 ? " up" : "") }, d ? signed(d) : "0");
  }

  /** A horizontal gauge filled to `frac` (0..1), marked `warn` or `full`. */
  function gauge(frac, level) {
    const bar = el("div", { class: "fill" });
    bar.style.width = (Math.min(1, Math.max(0, frac || 0)) * 100).toFixed(1) + "%";
    return el("div", { class: "gauge" + (level ? " " + level : "") }, bar);
  }

  function sourceStatus(snap, name) {
    return (snap.sources || []).find((s) => s.name === name) || null;
  }

  /** "unavailable: why" for a source that was not read, as text; null when it was. */
  function unavailable(source) {
    if (!source || source.status === "available") return null;
    return el("p", { class: "unavailable", role: "status" },
      el("span", { class: "badge err" }, source.status), " ", source.name, source.reason ? ": " + source.reason : "");
  }

  function sourcesPanel(snap) {
    const list = snap.sources || [];
    const down = list.filter((s) => s.status !== "available");
    return el("section", { class: "panel", "aria-labelledby": "h-sources" },
      el("h2", { id: "h-sources" }, "Sources"),
      list.length ? el("ul", { class: "sources" }, list.map((s) => el("li", { class: s.status },
        el("span", { class: "badge " + (s.status === "available" ? "ok" : "err") }, s.status === "available" ? "ok" : s.status), " ",
        el("code", null, s.name), s.reason ? [": ", el("span", { class: "why" }, s.reason)] : null)))
        : el("p", { class: "empty" }, "No sample yet."),
      down.length ? el("p", { class: "muted" }, "Values of a source that is not read are left out, never shown as 0.") : null);
  }

  function queueLevel(l) {
    if (l.backlog === null || l.backlog === undefined || !l.backlog) return null;
    if (l.queue >= l.backlog) return "full";
    return l.fill >= QUEUE_NEAR_FULL ? "warn" : null;
  }

  function hostPort(address, port) {
    return (String(address).includes(":") ? "[" + address + "]" : address) + ":" + port;
  }

  function listenersPanel(snap, t0, t1) {
    const list = snap.listeners || [];
    const totals = snap.socket_totals;
    const body = [];
    if (!totals) {
      body.push(el("p", { class: "empty" }, "No socket source can be read, so accept queues are unknown."));
    } else if (!list.length) {
      body.push(el("p", { class: "empty" }, "No listening TCP socket."));
    } else {
      // The store keeps one queue history per port (listeners of a port summed): its change
      // is shown once, on the port's first listener.
      // Idle listeners (empty queue, nothing in the window) beyond a few are one line, so the
      // ones that hold connections stand out.
      const busy = (l) => l.queue > 0 || l.history.points.some((v) => v) || l.history.delta_1m;
      const idle = list.filter((l) => !busy(l));
      const idleShown = Math.max(0, LISTENER_ROWS - (list.length - idle.length));
      const folded = idle.slice(idleShown);
      const shown = list.filter((l) => !folded.includes(l));
      const seenPorts = new Set();
      const rows = shown.map((l) => {
        const level = queueLevel(l);
        const firstOfPort = !seenPorts.has(l.port);
        seenPorts.add(l.port);
        const tag = level === "full" ? el("span", { class: "badge err" }, "full: connections dropped")
          : level === "warn" ? el("span", { class: "badge surge" }, "near full") : null;
        return el("tr", { class: "listener" + (level ? " " + level : "") },
          el("td", null, el("code", null, hostPort(l.address, l.port)), " ", tag),
          el("td", { class: "num" }, fmtCount(l.queue)),
          l.backlog === null || l.backlog === undefined
            ? el("td", { class: "num muted", title: "/proc/net/tcp does not report backlogs; netlink does" }, "unknown")
            : el("td", { class: "num" }, fmtCount(l.backlog)),
          el("td", { class: "fillcell" }, l.fill === null || l.fill === undefined ? el("span", { class: "muted" }, "–")
            : [gauge(l.fill, level), el("span", { class: "num" }, fmtPercent(l.fill))]),
          firstOfPort ? deltaCell(l.history) : el("td", { class: "num muted", title: "see the first listener of this port" }, "″"));
      });
      body.push(el("table", { class: "listeners" },
        el("thead", null, el("tr", null, el("th", null, "Listening on"), el("th", { class: "num" }, "Accept queue"),
          el("th", { class: "num" }, "Backlog"), el("th", null, "Fill"), el("th", { class: "num" }, "Port Δ 1 min"))),
        el("tbody", null, rows)));
      if (folded.length) {
        body.push(el("p", { class: "muted" }, folded.length + " more with an empty accept queue: ",
          folded.map((l) => hostPort(l.address, l.port)).join(", "), "."));
      }
      if (snap.listeners_omitted) body.push(el("p", { class: "muted" }, "+ " + snap.listeners_omitted + " more listening sockets with shorter queues."));
      // The store keeps one queue history per port: one line per port that held connections.
      const ports = new Map();
      for (const l of list) if (busy(l) && !ports.has(l.port)) ports.set(l.port, l);
      body.push(ports.size ? lineChart("Accept queue length per port", [...ports.values()].map((l) => {
        const points = seriesPoints(snap, l.history);
        return { name: ":" + l.port, points, note: signedNote(points) };
      }), t0, t1, { height: 100 }) : el("p", { class: "muted" }, "No accept queue held a connection in this window."));
    }
    return el("section", { class: "panel", "aria-labelledby": "h-listen" },
      el("h2", { id: "h-listen" }, "Listen sockets: accept queue vs backlog"),
      el("p", { class: "axisnote" }, "A queue at its backlog drops new connections (TcpExt ListenOverflows): a SYN flood or a service that accepts too slowly."),
      body);
  }

  function stateTotalsPanel(snap, t0, t1) {
    const totals = snap.socket_totals;
    if (!totals) {
      return el("section", { class: "panel", "aria-labelledby": "h-states" },
        el("h2", { id: "h-states" }, "Sockets by state"),
        unavailable(sourceStatus(snap, "sockets.proc")) || unavailable(sourceStatus(snap, "sockets.netlink"))
          || el("p", { class: "empty" }, "No socket sample yet."));
    }
    const shown = totals.by_state.filter((s) => s.current || s.history.delta_1m);
    const family = (list) => list.length ? list.map((s) => (s.state_name || s.state) + " " + fmtCount(s.count)).join(", ") : "none";
    const other = totals.other_ports;
    return el("section", { class: "panel", "aria-labelledby": "h-states" },
      el("h2", { id: "h-states" }, "Sockets by state"),
      el("table", { class: "states" },
        el("thead", null, el("tr", null, el("th", null, "State"), el("th", { class: "num" }, "Sockets"), el("th", { class: "num" }, "Δ 1 min"))),
        el("tbody", null,
          shown.map((s) => el("tr", null, el("td", null, s.state_name || s.state), el("td", { class: "num" }, fmtCount(s.current)), deltaCell(s.history))),
          el("tr", { class: "total" }, el("td", null, "All"), el("td", { class: "num" }, fmtCount(totals.total)), el("td")))),
      el("p", { class: "muted" }, "Counted by ", totals.source === "netlink" ? "netlink sock_diag" : "/proc/net/tcp", ". IPv4: ", family(totals.ipv4), ". IPv6: ", family(totals.ipv6), "."),
      el("p", null, "Other ports (", fmtCount(other.port_groups), " port groups beyond the top ones): ",
        el("span", { class: "big" }, fmtCount(other.total)), " sockets",
        other.by_state.length ? " — " + other.by_state.map((s) => (s.state_name || s.state) + " " + fmtCount(s.count)).join(", ") : "",
        other.history.delta_1m ? el("span", { class: "moved" }, " " + signed(other.history.delta_1m) + " in 1 min") : null),
      lineChart("Node sockets by state", totals.by_state.filter((s) => s.current || s.history.points.some((v) => v)).map((s) => {
        const points = seriesPoints(snap, s.history);
        return { name: s.state_name || s.state, points, note: signedNote(points) };
      }), t0, t1, { height: 110 }));
  }

  function tasksPanel(snap, t0, t1) {
    const tasks = snap.tasks || [];
    const series = tasks.map((t) => taskSeries(snap, t));
    // The agent's own runtime, drawn like any target: faultline watches itself.
    if (snap.runtime) {
      const points = seriesPoints(snap, snap.runtime.alive_tasks.history);
      series.push({ name: "faultline (tokio tasks)", points, note: signedNote(points) });
    }
    const failing = tasks.filter((t) => t.error);
    return el("section", { class: "panel", "aria-labelledby": "h-tasks" },
      el("h2", { id: "h-tasks" }, "Goroutines / tasks"),
      lineChart("Tasks per target", series, t0, t1),
      failing.length ? el("ul", { class: "failing" }, failing.map((t) => el("li", null,
        el("span", { class: "badge err" }, "failing"), " ", el("strong", null, t.target), t.source ? " (" + t.source + ")" : "", ": ", t.error,
        t.last_success_unix_ms ? el("span", { class: "muted" }, " — last read ", fmtAgo(t.last_success_unix_ms), t.last_value !== null && t.last_value !== undefined ? ": " + fmtCount(t.last_value) : "") : el("span", { class: "muted" }, " — never read")))) : null);
  }

  function runtimePanel(snap, t0, t1) {
    const rt = snap.runtime;
    if (!rt) return el("section", { class: "panel" }, el("h2", null, "faultline itself"), el("p", { class: "empty" }, "No sample yet."));
    const alive = seriesPoints(snap, rt.alive_tasks.history), queue = seriesPoints(snap, rt.global_queue_depth.history);
    const delta = (s) => s.delta_1m === null || s.delta_1m === undefined ? "" : " (" + signed(s.delta_1m) + " in 1 min)";
    return el("section", { class: "panel", "aria-labelledby": "h-runtime" },
      el("h2", { id: "h-runtime" }, "faultline itself (tokio runtime)"),
      el("div", { class: "stats" },
        stat("Alive tasks", fmtCount(rt.alive_tasks.current) + delta(rt.alive_tasks.history)),
        stat("Global queue", fmtCount(rt.global_queue_depth.current)),
        stat("Workers busy", fmtPercent(rt.busy_ratio)),
        stat("Workers", String(rt.workers))),
      lineChart("Runtime tasks and queue", [
        { name: "alive tasks", points: alive, note: signedNote(alive) },
        { name: "global queue", points: queue, note: signedNote(queue) }], t0, t1, { height: 90 }));
  }

  function processesPanel(snap, t0, t1) {
    const procs = snap.processes || [];
    const rows = procs.map((p) => {
      const now = p.current;
      if (!now) {
        return el("tr", { class: "failing" }, el("td", null, p.name),
          el("td", { colspan: 4 }, el("span", { class: "badge err" }, "unavailable"), " ", p.error || "not read"));
      }
      const frac = now.fd_limit ? now.open_fds / now.fd_limit : null;
      const level = frac === null ? null : frac >= 0.95 ? "full" : frac >= QUEUE_NEAR_FULL ? "warn" : null;
      return el("tr", null,
        el("td", null, p.name, el("span", { class: "muted" }, " [" + p.pid + "]")),
        el("td", { class: "fillcell" },
          frac === null ? null : gauge(frac, level),
          el("span", { class: "num" }, fmtCount(now.open_fds), " / ", now.fd_limit ? fmtCount(now.fd_limit) : "no limit"),
          p.fds.delta_1m ? el("span", { class: "moved" }, " " + signed(p.fds.delta_1m)) : null),
        el("td", { class: "num" }, fmtCount(now.threads)),
        el("td", { class: "num" }, fmtBytes(now.rss_bytes)),
        deltaCell(p.rss_bytes));
    });
    // A process never read has nothing to draw; one that stopped answering keeps its past.
    const drawn = procs.filter((p) => p.current || p.fds.points.some((v) => v !== null));
    const fds = drawn.flatMap((p) => [
      { name: p.name + " [" + p.pid + "] fds", points: seriesPoints(snap, p.fds), note: signedNote(seriesPoints(snap, p.fds)) },
      { name: p.name + " [" + p.pid + "] threads", points: seriesPoints(snap, p.threads) }]);
    const rss = drawn.map((p) => ({ name: p.name, points: seriesPoints(snap, p.rss_bytes).map(([t, v]) => [t, v === null ? null : v / 1048576]) }));
    return el("section", { class: "panel", "aria-labelledby": "h-procs" },
      el("h2", { id: "h-procs" }, "Processes"),
      procs.length ? el("table", { class: "procs" },
        el("thead", null, el("tr", null, el("th", null, "Process"), el("th", null, "Open fds / limit"), el("th", { class: "num" }, "Threads"),
          el("th", { class: "num" }, "RSS"), el("th", { class: "num" }, "RSS Δ 1 min"))),
        el("tbody", null, rows)) : el("p", { class: "empty" }, "No process watched."),
      lineChart("File descriptors and threads", fds, t0, t1),
      lineChart("Resident memory (MiB)", rss, t0, t1, { height: 90 }));
  }

  /** A panel of named series, or why its source is not read. */
  function namedPanel(snap, title, chartTitle, list, sourceName, t0, t1) {
    const down = unavailable(sourceStatus(snap, sourceName));
    const series = (list || []).map((s) => {
      const points = seriesPoints(snap, s.history);
      return { name: s.name + (s.unit ? " (" + s.unit + ")" : ""), points, note: signedNote(points) };
    });
    return el("section", { class: "panel" }, el("h2", null, title), down,
      series.length ? lineChart(chartTitle, series, t0, t1) : down ? null : el("p", { class: "empty" }, "No sample yet."));
  }

  async function counters() {
    const minute = params.get("resolution") === "minute";
    const body = slot();
    fill(main, el("h1", null, "Node counters"),
      el("p", { class: "axisnote" }, "History: ",
        minute ? link("/counters", null, "last 15 min, every sample") : el("strong", null, "last 15 min, every sample"), " · ",
        minute ? el("strong", null, "last 24 h, per minute (peaks)") : link("/counters", { resolution: "minute" }, "last 24 h, per minute (peaks)")),
      body);
    await refreshing(["counters"], async () => {
      try {
        const snap = await api("/api/v1/counters" + (minute ? "?resolution=minute" : ""));
        const t1 = Math.max(snap.sampled_at_unix_ms, snap.history_start_unix_ms + 1);
        const t0 = snap.history_start_unix_ms;
        const byPort = new Map();
        for (const s of snap.sockets || []) {
          const key = (s.side === "local" ? "local :" : "remote →:") + s.port;
          if (!byPort.has(key)) byPort.set(key, []);
          byPort.get(key).push(s);
        }
        const portCharts = [...byPort.entries()].map(([key, list]) => lineChart("Sockets, " + key, list.map((s) => {
          const points = seriesPoints(snap, s.history);
          return { name: s.state_name || s.state, points, note: signedNote(points) };
        }), t0, t1, { height: 110 }));
        const other = snap.socket_totals ? snap.socket_totals.other_ports : null;
        if (other && other.port_groups) {
          const points = seriesPoints(snap, other.history);
          portCharts.push(lineChart("Sockets, other ports (" + other.port_groups + " port groups)", [{ name: "all states", points, note: signedNote(points) }], t0, t1, { height: 90 }));
        }
        const step = snap.step_ms >= 60000 ? "one point per minute (the minute's peak)" : "sampled every " + (snap.step_ms % 1000 ? snap.step_ms + " ms" : snap.step_ms / 1000 + " s");
        fill(body,
          el("p", { class: "axisnote" }, step[0].toUpperCase() + step.slice(1), "; latest ", fmtAgo(snap.sampled_at_unix_ms), ". Δ 1 min: change since the sample a minute before the latest."),
          el("div", { class: "grid2" },
            el("div", null,
              listenersPanel(snap, t0, t1),
              el("section", { class: "panel" }, el("h2", null, "TCP sockets by port and state"),
                portCharts.length ? portCharts : (unavailable(sourceStatus(snap, "sockets.proc")) || unavailable(sourceStatus(snap, "sockets.netlink")) || el("p", { class: "empty" }, "No socket samples yet."))),
              processesPanel(snap, t0, t1)),
            el("div", null,
              sourcesPanel(snap),
              stateTotalsPanel(snap, t0, t1),
              tasksPanel(snap, t0, t1),
              runtimePanel(snap, t0, t1),
              namedPanel(snap, "Sockstat", "/proc/net/sockstat", snap.sockstat, "sockstat", t0, t1),
              namedPanel(snap, "Protocol counter rates", "per second", snap.protocol_rates, "protocol", t0, t1))));
      } catch (err) { fill(body, errorPanel(err)); }
    });
  }

  // ---------- theme, keyboard, routing ----------

  function setupTheme() {
    const stored = localStorage.getItem("faultline-theme");
    if (stored === "light" || stored === "dark") document.documentElement.setAttribute("data-theme", stored);
    document.getElementById("theme").addEventListener("click", () => {
      const current = document.documentElement.getAttribute("data-theme")
        || (matchMedia("(prefers-color-scheme: dark)").matches ? "dark" : "light");
      const next = current === "dark" ? "light" : "dark";
      document.documentElement.setAttribute("data-theme", next);
      localStorage.setItem("faultline-theme", next);
    });
  }

  function setupKeys() {
    const pages = { o: "/", p: "/clusters", t: "/traces", c: "/counters" };
    document.addEventListener("keydown", (event) => {
      const typing = /^(INPUT|SELECT|TEXTAREA)$/.test(document.activeElement && document.activeElement.tagName);
      if (typing || event.ctrlKey || event.metaKey || event.altKey) return;
      if (event.key === "/") {
        const search = document.getElementById("f-q");
        if (search) { event.preventDefault(); search.focus(); }
      } else if (pages[event.key]) {
        location.href = pages[event.key];
      }
    });
  }

  const routes = { "/": ["overview", overview], "/clusters": ["clusters", clusters], "/cluster": ["clusters", cluster],
    "/traces": ["traces", traces], "/trace": ["traces", trace], "/counters": ["counters", counters] };

  function start() {
    setupTheme();
    setupKeys();
    const [name, page] = routes[location.pathname] || routes["/"];
    for (const a of document.querySelectorAll("nav a")) {
      if (a.getAttribute("data-page") === name) a.setAttribute("aria-current", "page");
    }
    startLive();
    page().then(() => {
      // Time to first render with data, read by the browser tests and the render benchmark.
      document.body.setAttribute("data-ready-ms", String(Math.round(performance.now())));
      document.body.setAttribute("data-ready", "true");
    });
  }

  start();
})();
