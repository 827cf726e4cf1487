// The overview page (/): incidents first, then what is emerging, what moved, the node.

import { main, params, el, fill, link, errorPanel, slot } from "../dom.js";
import { fmtCount, fmtAgo, windowMs } from "../format.js";
import { template, service, badge } from "../widgets.js";
import { api } from "../api.js";
import { lineChart, sparkline, seriesPoints, taskSeries, movingSockets } from "../charts.js";
import { refreshing } from "../live.js";
import { culpritLine } from "../culprit.js";
import { incidentCard } from "../incidents.js";
import { movedBody } from "../moved.js";

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
