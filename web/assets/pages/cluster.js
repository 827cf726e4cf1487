// One pattern (/cluster?id=): where it starts, its rate, what moved, templates, parameters,
// samples and the traces it occurs in.

import { main, params, el, fill, link, errorPanel, slot, stat } from "../dom.js";
import { fmtCount, fmtAgo, fmtTime } from "../format.js";
import { template, service, badge } from "../widgets.js";
import { api } from "../api.js";
import { barChart } from "../charts.js";
import { refreshing } from "../live.js";
import { culpritPanel } from "../culprit.js";
import { movedBody } from "../moved.js";
import { traceTable } from "./traces.js";

export async function cluster() {
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
          c.untraced_count ? untracedStat(c) : null,
          stat("First seen", fmtAgo(c.first_seen_unix_ms)), stat("Last seen", fmtAgo(c.last_seen_unix_ms)),
          stat("Templates", String(c.template_count)), servicesStat(d),
          (d.seen_in || []).length ? stat("Seen in", d.seen_in.map((x) => x.source.replace(/_/g, " ") + " " + fmtCount(x.occurrences)).join(" · ")) : null),
        el("section", { class: "panel" }, barChart("Occurrences per minute", d.per_minute)),
        movedSection,
        el("div", { class: "grid2" },
          templatesPanel(d),
          el("section", { class: "panel" }, el("h2", null, "Parameter values"),
            d.parameters.length ? d.parameters.map(distribution) : el("p", { class: "empty" }, "No parameters."))),
        d.stack ? el("section", { class: "panel", "aria-labelledby": "h-stack" },
          el("h2", { id: "h-stack" }, "Stack (latest)"),
          el("p", { class: "muted" }, d.stack.top_frame ? ["Top application frame ", el("code", null, d.stack.top_frame)] : "No application frame found",
            d.stack.trace_id ? [" · ", link("/trace", { id: d.stack.trace_id }, "trace")] : null),
          el("pre", { class: "stack" }, d.stack.text)) : null,
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

/** Of its failures, the records with no trace id, each counted once: a request without a
 *  trace, or a line of no request at all (an exporter's, an accept loop's). An incident that
 *  counts failures by trace lists them apart. */
function untracedStat(c) {
  return el("div", { "data-untraced": String(c.untraced_count),
    title: "Records with no trace id count one each; beside failures counted by trace, an incident lists them apart from its failed requests." },
  el("span", { class: "label" }, "Without a trace"),
  el("span", { class: "big" }, fmtCount(c.untraced_count)), el("span", { class: "muted" }, " of " + fmtCount(c.total_count)));
}

/** The services of the pattern with the occurrences each reported: the service where a
 *  failure starts and the callers that echoed it each count it once. */
function servicesStat(d) {
  const counts = new Map((d.service_occurrences || []).map((v) => [v.value, v.count]));
  const names = d.summary.services.concat([...counts.keys()].filter((s) => !d.summary.services.includes(s)));
  return el("div", { class: "services-stat" }, el("span", { class: "label" }, "Services"),
    el("span", null, names.flatMap((s, i) => [i ? " · " : null, el("span", { class: "svc-count" }, service(s),
      counts.has(s) ? el("span", { class: "muted" }, " " + fmtCount(counts.get(s))) : null)])));
}

/** Its templates with the reports each had (log records and error spans, so a failure that
 *  a log line and its span both reported is two reports here and one failure above) and the
 *  services that wrote them (a caller that only echoed the failure in its trace wrote none). */
function templatesPanel(d) {
  const reports = d.templates.reduce((a, t) => a + t.count, 0);
  return el("section", { class: "panel", id: "templates" }, el("h2", null, "Templates"),
    el("table", null, el("thead", null, el("tr", null, el("th", null, "Template"), el("th", { class: "num" }, "Reports"), el("th", null, "Written by"))),
      el("tbody", null, d.templates.map((t) => el("tr", null, el("td", null, template(t.template)), el("td", { class: "num" }, fmtCount(t.count)), el("td", null, t.services.map(service)))))),
    reports > d.summary.total_count ? el("p", { class: "muted", "data-reports": String(reports) },
      "Reports are log records and error spans: ", fmtCount(reports), " reports of ", fmtCount(d.summary.total_count),
      " failures (a failure is counted once per trace however many records report it).") : null);
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
