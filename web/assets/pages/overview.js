// The overview page (/): incidents first, then what is emerging, what moved, the node.

import { main, params, el, fill, link, errorPanel, slot } from "../dom.js";
import { fmtCount, fmtAgo, windowMs } from "../format.js";
import { template, service, badge } from "../widgets.js";
import { api } from "../api.js";
import { lineChart, sparkline, seriesPoints, taskSeries, movingSockets } from "../charts.js";
import { refreshing } from "../live.js";
import { culpritLine } from "../culprit.js";
import { incidentCard, incidentLead } from "../incidents.js";
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
        el("a", { href: "#incident-" + ongoing.id }, "incident since " + fmtAgo(ongoing.onset_unix_ms))) : null,
      el("span", null, el("span", { class: "big" }, fmtCount(c.rate_per_minute)), " /min"),
      el("span", null, fmtCount(c.total_count), " total"),
      el("span", null, "first seen ", fmtAgo(c.first_seen_unix_ms)),
      el("span", null, c.services.map(service))),
    culpritLine(c.culprit));
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

export async function overview() {
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
        el("section", { class: "panel", id: "now", "aria-labelledby": "h-emerging" }, el("h2", { id: "h-emerging" }, "Error patterns now"), emerging),
        el("section", { class: "panel", id: "moved", "aria-labelledby": "h-moved" },
          el("h2", { id: "h-moved" }, "What moved with it"), moved)),
      el("section", { class: "panel", "aria-labelledby": "h-node" }, el("h2", { id: "h-node" }, "Node"), node)),
    el("section", { class: "panel", "aria-labelledby": "h-recent" }, el("h2", { id: "h-recent" }, "Most frequent patterns"), recent));

  await Promise.all([
    refreshing(["clusters", "counters"], async () => {
      try {
        const doc = await api("/api/v1/incidents");
        const active = doc.incidents.filter((i) => i.active), ended = doc.incidents.filter((i) => !i.active);
        // Ended incidents fold away while one goes on: the page leads with what is happening.
        fill(incidents, incidentLead(doc), active.map(incidentCard),
          ended.length && active.length
            ? el("details", { class: "ended-incidents" }, el("summary", null, ended.length + " ended incident" + (ended.length === 1 ? "" : "s")), ended.map(incidentCard))
            : ended.map(incidentCard));
      } catch (err) { fill(incidents, errorPanel(err)); }
    }),
    refreshing(["clusters", "counters"], async () => {
      const t1 = Date.now(), t0 = t1 - span;
      try {
        const [em, top, doc] = await Promise.all([
          api("/api/v1/clusters?emerging=true&limit=20"),
          api("/api/v1/clusters?sort=rate&limit=15&window=" + encodeURIComponent(windowText)),
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
        // The first pattern of the top active incident, else the top emerging pattern, else
        // the one that appeared most recently.
        const doc = await api("/api/v1/incidents");
        const lead = doc.incidents.find((i) => i.active && i.patterns.length);
        let top = [];
        if (lead) {
          top = [(await api("/api/v1/clusters/" + encodeURIComponent(lead.patterns[0].id))).summary];
        } else {
          const em = await api("/api/v1/clusters?emerging=true&limit=1");
          top = em.clusters.length ? em.clusters : (await api("/api/v1/clusters?sort=first_seen&limit=1")).clusters;
        }
        if (!top.length) { fill(moved, el("p", { class: "empty" }, "No error pattern yet: nothing to compare the counters with.")); return; }
        const movedDoc = await api("/api/v1/clusters/" + encodeURIComponent(top[0].id) + "/moved");
        fill(moved, movedBody(movedDoc, top[0]));
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
