// The call chain list (/traces) and the trace table other pages reuse.

import { main, params, el, fill, link, errorPanel, slot } from "../dom.js";
import { fmtAgo, fmtDuration } from "../format.js";
import { service } from "../widgets.js";
import { api } from "../api.js";
import { refreshing } from "../live.js";

export function traceTable(summaries, ids) {
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

export async function traces() {
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
