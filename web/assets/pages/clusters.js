// The pattern list (/clusters) with its filters and sort.

import { main, params, el, fill, link, errorPanel, slot } from "../dom.js";
import { fmtCount, fmtAgo } from "../format.js";
import { template, service, badge } from "../widgets.js";
import { api } from "../api.js";
import { sparkline } from "../charts.js";
import { refreshing } from "../live.js";

const SORTS = [["emerging", "Emerging"], ["rate", "Rate"], ["count", "Count"], ["first_seen", "First seen"], ["last_seen", "Last seen"]];

export async function clusters() {
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
        el("td", { class: "num" }, fmtCount(c.total_count),
          c.untraced_count ? el("div", { class: "muted", "data-untraced": String(c.untraced_count) }, fmtCount(c.untraced_count), " no trace") : null),
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
