// "What moved with it": the verdict of /api/v1/clusters/{id}/moved (or, for an incident of
// counters only, the `moved` of /api/v1/incidents/{id}) and its charts.

import { el, svgEl, link } from "./dom.js";
import { fmtCount, fmtClock, fmtSecond } from "./format.js";
import { template, badge } from "./widgets.js";
import { CHART_W, niceMax, timeTicks, addCrosshair } from "./charts.js";

/**
 * The answer of /api/v1/clusters/{id}/moved: the verdict in a sentence, then each moved
 * counter with its evidence and a small chart on the document's time axis, the onset marked.
 * `pattern` (a cluster row) names the pattern when the panel is not on its own page; `head`
 * (an element) names an incident of counters only instead.
 */
export function movedBody(doc, pattern, head) {
  if (pattern) {
    head = el("p", { class: "moved-pattern" }, badge(pattern.emergence),
      link("/cluster", { id: pattern.id }, template(pattern.canonical_template)));
  }
  const onset = el("p", { class: "axisnote" }, "Onset ", fmtSecond(doc.onset_unix_ms), ONSET_SOURCES[doc.onset_source] || "",
    doc.onset_precision_ms > 1000 ? ", known to ±" + Math.round(doc.onset_precision_ms / 1000) + " s" : "",
    doc.search_start_unix_ms ? ["; each counter's usual level from ", fmtSecond(doc.baseline_start_unix_ms), " to ",
      fmtSecond(doc.search_start_unix_ms), ", changes looked for until ", fmtSecond(doc.search_end_unix_ms), "."] : ".");
  const summary = el("p", { class: doc.verdict === "moved" ? "reason" : "empty", "data-verdict": doc.verdict }, doc.summary);
  const unjudged = unjudgedList(doc);
  if (doc.verdict !== "moved") return [head, summary, doc.verdict === "not_enough_history" ? null : onset, unjudged];
  return [head, summary, onset, el("ol", { class: "moved-list" }, doc.moved.map((m) => el("li", {
    class: "moved-item", "data-relation": m.relation || "node_wide", "data-confidence": m.confidence || "high",
    "data-earlier": m.earlier ? "true" : "false" },
    el("p", { class: "moved-relation" }, m.own ? [ownTag(), " "] : null, m.earlier ? [earlierTag(), " "] : null,
      relationTag(m.relation), " ", m.relation_text || ""),
    el("p", { class: "evidence" }, m.evidence),
    (m.caveats || []).length ? el("ul", { class: "moved-caveats" },
      m.caveats.map((c) => el("li", null, "Caveat (low confidence): ", c))) : null,
    movedChart(doc, m)))), unjudged];
}

/** Where the onset of the answer was taken from, in words. */
const ONSET_SOURCES = {
  emergence: " (when it started emerging)",
  first_seen: " (first seen)",
  incident: " (the incident's onset: when its first counter left its usual level)",
};

/** One of an incident's own counters (what made it an incident): listed first. */
function ownTag() {
  return el("span", { class: "badge moved-own", title: "one of the counters that make this incident" }, "incident's counter");
}

/** A change that had settled before the errors began: listed last, and said so. */
function earlierTag() {
  return el("span", { class: "badge moved-earlier", title: "changed well before the errors began and had settled by then" },
    "earlier");
}

/** The relation of a moved counter to the pattern, as a short tag ("culprit", "node-wide"). */
function relationTag(relation) {
  const names = { culprit: "culprit", service: "pattern's service", peer: "peer", node_wide: "node-wide" };
  return el("span", { class: "badge relation-" + (relation || "node_wide") }, names[relation] || "node-wide");
}

/** The series the answer could not judge, and why, folded: a person sees what was not looked at. */
function unjudgedList(doc) {
  const rows = doc.unjudged || [];
  if (!rows.length) return null;
  const more = doc.unjudged_omitted ? " (and " + fmtCount(doc.unjudged_omitted) + " more)" : "";
  return el("details", { class: "moved-unjudged" },
    el("summary", null, fmtCount(rows.length) + " series could not be judged" + more),
    el("ul", null, rows.map((u) => el("li", null, el("strong", null, u.label), ": ", u.reason))));
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
      (doc.incident_id ? "onset " : "errors ") + fmtSecond(doc.onset_unix_ms)));
  // The change point sits on the line, where the series left its usual range.
  const atChange = points.find(([t, v]) => t >= m.changed_at_unix_ms && v !== null);
  svg.append(svgEl("circle", { class: "change", cx: x(m.changed_at_unix_ms), cy: y(atChange ? atChange[1] : m.after), r: 3 },
    svgEl("title", null, m.label + " left its usual range at " + fmtSecond(m.changed_at_unix_ms))));
  const series = [{ name: m.label, points }];
  if (!doc.incident_id) series.push({ name: "errors", points: occ });
  addCrosshair(svg, { x, t0, t1, padT, h, series });
  return svg;
}
