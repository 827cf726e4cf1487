// One call chain (/trace?id=): the waterfall, where the error starts, its patterns and logs.

import { main, params, el, fill, link, errorPanel, slot, stat } from "../dom.js";
import { fmtAgo, fmtDuration } from "../format.js";
import { template, serviceColor, service } from "../widgets.js";
import { api } from "../api.js";
import { refreshing } from "../live.js";
import { culpritPanel } from "../culprit.js";

export async function trace() {
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
    el("span", { class: "msg" }, log.message,
      // The stack joined to the record (a Go panic's goroutine dump), folded.
      log.stack ? el("details", { class: "stack" }, el("summary", null, "stack"), el("pre", null, log.stack)) : null),
    log.cluster_id ? link("/cluster", { id: log.cluster_id }, "pattern") : el("span"));
}

function renderChain(chain, templates) {
  const spans = chain.spans;
  const t0 = Math.min(...spans.map((s) => s.start_unix_us));
  const t1 = Math.max(...spans.map((s) => s.start_unix_us + s.duration_us));
  const total = Math.max(1, t1 - t0);
  const services = [...new Set(spans.map((s) => s.service))];
  const origin = spans.find((s) => s.span_id === chain.error_origin_span_id);
  // The first error span is not where the error starts when the verdict names its callee (a
  // callee out of fds that closed without a word, and could post no span): the tag says so
  // instead of contradicting the verdict above it.
  const culprit = chain.culprit && chain.culprit.resolved ? chain.culprit.service : null;
  const elsewhere = Boolean(origin && culprit && culprit !== origin.service);
  const originTag = elsewhere
    ? "◀ first seen here — starts in " + culprit + (services.includes(culprit) ? "" : " (no span in this trace)")
    : "◀ error starts here";
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
        isOrigin ? el("span", { class: "origin-tag" + (elsewhere ? " elsewhere" : "") }, originTag) : null),
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
