// The overview page (/): incidents first, then what is emerging, what moved, the node.

import { main, params, el, fill, link, errorPanel, slot } from "../dom.js";
import { fmtCount, fmtAgo, windowMs } from "../format.js";
import { template, service, badge } from "../widgets.js";
import { api } from "../api.js";
import { lineChart, sparkline, seriesPoints, taskSeries, movingSockets } from "../charts.js";
import { refreshing } from "../live.js";
import { culpritLine } from "../culprit.js";
import { incidentCard, incidentLead, incidentHead, openIncident, wantsPid, fold } from "../incidents.js";
import { movedBody } from "../moved.js";

/** A pattern row; `ongoing` (an active incident) marks a pattern that no longer emerges but
 *  still occurs in it. */
function patternRow(c, t0, t1, ongoing) {
  const e = c.emergence;
  const label = "occurrences per minute of " + c.canonical_template;
  return el("article", { class: "pattern" + (ongoing ? " ongoing" : "") },
    el("div", null, e ? badge(e) : ongoing ? el("span", { class: "badge ongoing" }, "ongoing") : null,
      link("/cluster", { id: c.id }, template(c.canonical_template))),
    el("div", { class: "spark" }, sparkline(c.sparkline, t0, t1, !e && !ongoing, label)),
    el("div", { class: "meta" },
      e ? el("span", { class: "reason" }, e.reason) : null,
      ongoing ? el("span", { class: "reason" }, "no longer new, still occurring: ",
        incidentLink(ongoing)) : null,
      el("span", null, el("span", { class: "big" }, fmtCount(c.rate_per_minute)), " /min"),
      el("span", null, fmtCount(c.total_count), " total", c.untraced_count ? " (" + fmtCount(c.untraced_count) + " with no trace)" : ""),
      el("span", null, "first seen ", fmtAgo(c.first_seen_unix_ms)),
      el("span", null, c.services.map(service))),
    culpritLine(c.culprit));
}

/** A link to an incident's card that opens it (the cards past the first are folded). */
function incidentLink(inc) {
  const a = el("a", { href: "#incident-" + inc.id }, "incident since " + fmtAgo(inc.onset_unix_ms));
  a.addEventListener("click", () => openIncident(inc.id));
  return a;
}

/** Most patterns of active incidents read one by one for the "now" panel. */
const ONGOING_LOOKUPS = 10;

/** The patterns of active incidents that no longer emerge (a steady outage stops being "new"
 *  after the emergence window), each with its incident, at most ONGOING_LOOKUPS. */
async function ongoingPatterns(incidents, emerging) {
  const seen = new Set(emerging.map((c) => c.id));
  const wanted = [];
  for (const inc of incidents.filter((i) => i.active)) {
    for (const p of inc.patterns) {
      if (!seen.has(p.id) && wanted.length < ONGOING_LOOKUPS) { seen.add(p.id); wanted.push([p.id, inc]); }
    }
  }
  const rows = await Promise.all(wanted.map(async ([id, inc]) => {
    try { return [(await api("/api/v1/clusters/" + encodeURIComponent(id))).summary, inc]; } catch (_) { return null; }
  }));
  return rows.filter(Boolean);
}

/** The overview's default time axis: the last 30 minutes, or since the agent started when
 *  it is younger (so a young agent's data spans the charts instead of being a sliver at
 *  their right edge), at least AXIS_MIN_MS. */
const AXIS_DEFAULT_MS = 30 * 60e3;
const AXIS_MIN_MS = 5 * 60e3;

/** The agent's start (Unix ms) from /api/v1/health, null when it cannot be read. */
async function agentStart() {
  try {
    const health = await api("/api/v1/health");
    return typeof health.started_at_unix === "number" ? health.started_at_unix * 1000 : null;
  } catch (_) { return null; }
}

/** The processes of the latest counters (kept by the node panel), for the checks that want a
 *  pid; read here when the node panel has not loaded yet. */
let processes = null;
async function processesFor(doc) {
  if (!doc.incidents.some((i) => i.hints.some((h) => h.checks.some(wantsPid)))) return null;
  if (!processes) {
    try { processes = (await api("/api/v1/counters")).processes || []; } catch (_) { return null; }
  }
  return processes;
}

/** The socket series the active incidents name (not node-wide totals), for the node chart. */
function incidentSockets(doc) {
  const out = [];
  for (const inc of doc.incidents.filter((i) => i.active)) {
    for (const k of inc.counters) {
      const key = k.anomaly.key;
      if (key.series !== "port_state" || k.relation === "node_wide") continue;
      out.push({ port: key.port, side: key.side, state: key.state, who: k.relation === "culprit" ? inc.culprit.service : null });
    }
  }
  return out;
}

export async function overview() {
  const chosen = params.get("window");
  const span = windowMs(chosen, AXIS_DEFAULT_MS);
  const emerging = slot(), node = slot(), recent = slot(), moved = slot(), incidents = slot();
  // Said while the answer is computed (it reads every counter series, a second or more on a
  // loaded node): an empty box beside a NEW pattern reads as "nothing moved".
  fill(moved, el("p", { class: "empty", "data-loading": "true" }, "Comparing the node's counters with the top incident or error pattern…"));
  const axisNote = el("span");
  fill(main,
    el("h1", null, "What is happening on this node"),
    el("section", { class: "panel", id: "incidents", "aria-labelledby": "h-incidents" }, el("h2", { id: "h-incidents" }, "Incidents"), incidents),
    el("p", { class: "axisnote" }, "Patterns and counters share one time axis: ", axisNote,
      " (", link("/", { window: "15m" }, "15m"), " · ", link("/", { window: "30m" }, "30m"), " · ",
      link("/", { window: "1h" }, "1h"), ")."),
    el("div", { class: "grid2" },
      el("div", null,
        el("section", { class: "panel", id: "now", "aria-labelledby": "h-emerging" }, el("h2", { id: "h-emerging" }, "Error patterns now"), emerging),
        el("section", { class: "panel", id: "moved", "aria-labelledby": "h-moved" },
          el("h2", { id: "h-moved" }, "What moved with it"), moved)),
      el("section", { class: "panel", "aria-labelledby": "h-node" }, el("h2", { id: "h-node" }, "Node"), node)),
    el("section", { class: "panel", "aria-labelledby": "h-recent" }, el("h2", { id: "h-recent" }, "Most frequent patterns"), recent));

  const started = chosen ? null : await agentStart();
  /** [t0, t1] now: the chosen window, else the default cut to the agent's age. */
  const axis = () => {
    const t1 = Date.now();
    if (chosen || started === null) return [t1 - span, t1];
    return [Math.min(t1 - AXIS_MIN_MS, Math.max(t1 - span, started)), t1];
  };
  const young = !chosen && started !== null && Date.now() - started < span;
  fill(axisNote, chosen ? "the last " + chosen
    : young ? ["since the agent started, ", el("span", { "data-axis-from": String(started) }, fmtAgo(started)), " (at least the last 5 min)"]
      : "the last 30m");

  await Promise.all([
    refreshing(["clusters", "counters"], async () => {
      try {
        const doc = await api("/api/v1/incidents");
        const procs = await processesFor(doc);
        const active = doc.incidents.filter((i) => i.active), ended = doc.incidents.filter((i) => !i.active);
        // Ended incidents fold away while one goes on: the page leads with what is happening.
        // The first card is open, the others are one line each until clicked.
        fill(incidents, incidentLead(doc), active.map((inc, i) => incidentCard(inc, i === 0, procs)),
          ended.length && active.length
            ? fold("ended incidents", false, { class: "ended-incidents" }, el("summary", null, ended.length + " ended incident" + (ended.length === 1 ? "" : "s")), ended.map((inc) => incidentCard(inc, false, procs)))
            : ended.map((inc, i) => incidentCard(inc, i === 0, procs)));
      } catch (err) { fill(incidents, errorPanel(err)); }
    }),
    refreshing(["clusters", "counters"], async () => {
      const [t0, t1] = axis();
      try {
        const [em, top, doc] = await Promise.all([
          api("/api/v1/clusters?emerging=true&limit=20"),
          api("/api/v1/clusters?sort=rate&limit=15&window=" + encodeURIComponent(chosen || "30m")),
          api("/api/v1/incidents"),
        ]);
        const ongoing = await ongoingPatterns(doc.incidents, em.clusters);
        const activeCount = doc.incidents.filter((i) => i.active).length;
        const rows = em.clusters.map((c) => patternRow(c, t0, t1, null)).concat(ongoing.map(([c, inc]) => patternRow(c, t0, t1, inc)));
        fill(emerging, ...(rows.length ? rows
          : activeCount
            ? [el("p", { class: "empty" }, "No error pattern goes with the active incident", activeCount === 1 ? "" : "s",
              " above: counters broke from their usual level without an error line.")]
            : [el("p", { class: "empty" }, "Nothing is emerging. New error patterns and surges show up here without a reload.")]));
        const shownIds = new Set(ongoing.map(([c]) => c.id));
        const calm = top.clusters.filter((c) => !c.emergence && !shownIds.has(c.id));
        fill(recent, ...(calm.length
          ? calm.map((c) => patternRow(c, t0, t1, null))
          : [el("p", { class: "empty" }, "No other patterns in this window.")]));
      } catch (err) { fill(emerging, errorPanel(err)); }
    }),
    refreshing(["clusters", "counters"], async () => {
      try {
        // The top active incident: of counters only, its own answer (its counters around its
        // onset, related to its culprit); else its first pattern's. With no active incident, the
        // top emerging pattern, else the one that appeared most recently, else the latest
        // incident of counters only. A row and its answer are read at once.
        const doc = await api("/api/v1/incidents");
        /** Fills the panel with the answer of an incident of counters only; false when it has none. */
        const ofIncident = async (inc) => {
          if (!inc || inc.patterns.length) return false;
          const detail = await api("/api/v1/incidents/" + encodeURIComponent(inc.id));
          if (!detail.moved) return false;
          fill(moved, movedBody(detail.moved, null, incidentHead(detail)));
          return true;
        };
        const top = doc.incidents.find((i) => i.active);
        if (await ofIncident(top)) return;
        const lead = top && top.patterns.length ? top : doc.incidents.find((i) => i.active && i.patterns.length);
        let id = lead ? lead.patterns[0].id : null, row = null;
        if (!id) {
          const em = await api("/api/v1/clusters?emerging=true&limit=1");
          const first = em.clusters.length ? em.clusters : (await api("/api/v1/clusters?sort=first_seen&limit=1")).clusters;
          if (first.length) { id = first[0].id; row = first[0]; }
        }
        // No pattern at all: the latest incident, when it is of counters only (ended).
        if (!id && await ofIncident(doc.incidents[0])) return;
        if (!id) { fill(moved, el("p", { class: "empty" }, "No error pattern and no incident yet: nothing to compare the counters with.")); return; }
        const path = "/api/v1/clusters/" + encodeURIComponent(id);
        const [movedDoc, detail] = await Promise.all([api(path + "/moved"), row ? null : api(path)]);
        fill(moved, movedBody(movedDoc, row || detail.summary));
      } catch (err) { fill(moved, errorPanel(err)); }
    }),
    refreshing(["counters"], async () => {
      const [t0, t1] = axis();
      try {
        const [snap, doc] = await Promise.all([api("/api/v1/counters"), api("/api/v1/incidents").catch(() => ({ incidents: [] }))]);
        processes = snap.processes || [];
        const tasks = (snap.tasks || []).map((t) => taskSeries(snap, t));
        fill(node,
          lineChart("TCP sockets that moved (state, port)", movingSockets(snap, 4, incidentSockets(doc)), t0, t1),
          lineChart("Goroutines / tasks", tasks, t0, t1),
          lineChart("Protocol counters (/s)", (snap.protocol_rates || []).map((s) => ({ name: s.name, points: seriesPoints(snap, s.history) })), t0, t1, { height: 100 }));
      } catch (err) { fill(node, errorPanel(err)); }
    }),
  ]);
}
