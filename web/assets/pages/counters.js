// The node counters page (/counters): the services' traffic, listen queues, sockets by port and
// state, processes, tasks, the agent's own runtime and which sources are read.

import { main, params, el, fill, link, errorPanel, slot, stat } from "../dom.js";
import { fmtCount, fmtAgo, signed, fmtBytes, fmtPercent } from "../format.js";
import { api } from "../api.js";
import { lineChart, seriesPoints, taskSeries, signedNote } from "../charts.js";
import { refreshing } from "../live.js";

/** A listener whose accept queue holds this fraction of its backlog is marked near full. */
const QUEUE_NEAR_FULL = 0.8;
/** Rows of the listener table before idle listeners are folded into one line. */
const LISTENER_ROWS = 5;

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

/** The prefix of a log source's health detail when its glob matches no file (written by the
 *  agent's pipeline): such a source is running but reads nothing, and is shown so. */
const NO_FILE = "no file matches";

/** The log sources (`logs <glob>` components of /api/v1/health) as source rows: an
 *  unreadable directory is failing with the error, a glob that matches nothing says so. */
function logSources(health) {
  const components = (health && health.components) || {};
  return Object.entries(components)
    .filter(([name]) => name.startsWith("logs "))
    .map(([name, c]) => {
      const detail = c.detail || "";
      const status = c.state === "failing" ? "unreadable" : detail.startsWith(NO_FILE) ? "no file" : "available";
      return { name, status, reason: detail };
    });
}

function sourcesPanel(snap, health) {
  const list = (snap.sources || []).concat(logSources(health));
  const down = list.filter((s) => s.status !== "available");
  const badgeClass = (s) => s.status === "available" ? "ok" : s.status === "no file" ? "surge" : "err";
  return el("section", { class: "panel", id: "sources", "aria-labelledby": "h-sources" },
    el("h2", { id: "h-sources" }, "Sources"),
    list.length ? el("ul", { class: "sources" }, list.map((s) => el("li", { class: s.status.replace(" ", "-"), "data-source": s.name },
      el("span", { class: "badge " + badgeClass(s) }, s.status === "available" ? "ok" : s.status), " ",
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
  // A process never read has nothing to draw; one that stopped answering keeps its past,
  // named as not read now (the API's pid is 0 then, which is no process id).
  const drawn = procs.filter((p) => p.current || p.fds.points.some((v) => v !== null));
  const who = (p, what) => (p.current && p.pid ? p.name + " [" + p.pid + "] " + what : p.name + " " + what + " (not read now)");
  const fds = drawn.flatMap((p) => [
    { name: who(p, "fds"), points: seriesPoints(snap, p.fds), note: signedNote(seriesPoints(snap, p.fds)) },
    { name: who(p, "threads"), points: seriesPoints(snap, p.threads) }]);
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

/** Requests and failed requests per second of every service (five-second means, from its
 *  SERVER spans and access lines): the traffic series the diagnosis and "what moved" judge,
 *  kept per second only. */
function trafficPanel(snap, minute, t0, t1) {
  const list = snap.traffic || [];
  const chart = (title, pick) => lineChart(title, list.map((s) => {
    const points = seriesPoints(snap, pick(s));
    return { name: s.service, points, note: signedNote(points) };
  }), t0, t1, { height: 100 });
  return el("section", { class: "panel", id: "traffic", "aria-labelledby": "h-traffic" },
    el("h2", { id: "h-traffic" }, "Traffic per service"),
    minute ? el("p", { class: "empty" }, "Kept per second for 15 minutes only: see the last 15 min.")
      : list.length ? [
        el("p", { class: "axisnote" }, "Per second, each point the mean of the 5 s before it; a service is drawn from its first request."),
        chart("Requests per second", (s) => s.requests),
        chart("Failed requests per second", (s) => s.errors)]
        : el("p", { class: "empty" }, "No request seen yet (SERVER spans or access lines)."));
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

/** The ports the active incidents' socket counters are on (not node-wide totals), in the
 *  incidents' order, keyed as the port charts are, with the relation the diagnosis stated. */
function incidentPorts(doc) {
  const out = [];
  for (const inc of (doc.incidents || []).filter((i) => i.active)) {
    for (const k of inc.counters) {
      const key = k.anomaly.key;
      if (key.series !== "port_state" || k.relation === "node_wide") continue;
      const name = (key.side === "local" ? "local :" : "remote →:") + key.port;
      if (!out.some((f) => f.key === name)) out.push({ key: name, culprit: k.relation === "culprit" ? inc.culprit.service : null });
    }
  }
  return out;
}

/** " — <service>, culprit of an active incident" for a port chart the incidents name. */
function portOwner(f) {
  if (!f) return "";
  return f.culprit ? " — " + f.culprit + ", culprit of an active incident" : " — in an active incident";
}

export async function counters() {
  const minute = params.get("resolution") === "minute";
  const body = slot();
  fill(main, el("h1", null, "Node counters"),
    el("p", { class: "axisnote" }, "History: ",
      minute ? link("/counters", null, "last 15 min, every sample") : el("strong", null, "last 15 min, every sample"), " · ",
      minute ? el("strong", null, "last 24 h, per minute (peaks)") : link("/counters", { resolution: "minute" }, "last 24 h, per minute (peaks)")),
    body);
  await refreshing(["counters"], async () => {
    try {
      const [snap, health, doc] = await Promise.all([
        api("/api/v1/counters" + (minute ? "?resolution=minute" : "")),
        // Health names each log source's state; the page still shows the counters without it.
        api("/api/v1/health").catch(() => null),
        // The active incidents' ports lead the port charts; without them, the snapshot's order.
        api("/api/v1/incidents").catch(() => ({ incidents: [] })),
      ]);
      const t1 = Math.max(snap.sampled_at_unix_ms, snap.history_start_unix_ms + 1);
      const t0 = snap.history_start_unix_ms;
      const byPort = new Map();
      for (const s of snap.sockets || []) {
        const key = (s.side === "local" ? "local :" : "remote →:") + s.port;
        if (!byPort.has(key)) byPort.set(key, []);
        byPort.get(key).push(s);
      }
      const focus = incidentPorts(doc);
      const rank = (key) => { const i = focus.findIndex((f) => f.key === key); return i < 0 ? focus.length : i; };
      const ports = [...byPort.entries()].sort((a, b) => rank(a[0]) - rank(b[0]));
      const portCharts = ports.map(([key, list]) => lineChart("Sockets, " + key + portOwner(focus.find((f) => f.key === key)), list.map((s) => {
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
            trafficPanel(snap, minute, t0, t1),
            listenersPanel(snap, t0, t1),
            el("section", { class: "panel" }, el("h2", null, "TCP sockets by port and state"),
              portCharts.length ? portCharts : (unavailable(sourceStatus(snap, "sockets.proc")) || unavailable(sourceStatus(snap, "sockets.netlink")) || el("p", { class: "empty" }, "No socket samples yet."))),
            processesPanel(snap, t0, t1)),
          el("div", null,
            sourcesPanel(snap, health),
            stateTotalsPanel(snap, t0, t1),
            tasksPanel(snap, t0, t1),
            runtimePanel(snap, t0, t1),
            namedPanel(snap, "Sockstat", "/proc/net/sockstat", snap.sockstat, "sockstat", t0, t1),
            namedPanel(snap, "Protocol counter rates", "per second", snap.protocol_rates, "protocol", t0, t1))));
    } catch (err) { fill(body, errorPanel(err)); }
  });
}
