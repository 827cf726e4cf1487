// One incident (/incident?id=): its card, open, and what moved with it — a URL to paste into
// an incident channel. For an incident of counters only (a TIME-WAIT storm, a CLOSE-WAIT leak
// before any error) what moved is its own counters and the series around its onset, ranked by
// relation to its culprit; for one with patterns, its first pattern's answer.

import { main, params, el, fill, link, errorPanel, slot } from "../dom.js";
import { template } from "../widgets.js";
import { api } from "../api.js";
import { refreshing } from "../live.js";
import { incidentCard, incidentHead } from "../incidents.js";
import { movedBody } from "../moved.js";

export async function incident() {
  const id = params.get("id") || "";
  const card = slot(), moved = slot();
  fill(moved, el("p", { class: "empty", "data-loading": "true" }, "Comparing the node's counters with the incident…"));
  fill(main,
    el("h1", null, "Incident"),
    el("p", { class: "axisnote" }, link("/", null, "← every incident on the overview")),
    el("section", { class: "panel", id: "incident" }, card),
    el("section", { class: "panel", id: "moved", "aria-labelledby": "h-moved" },
      el("h2", { id: "h-moved" }, "What moved with it"), moved));
  await refreshing(["clusters", "counters"], async () => {
    try {
      const detail = await api("/api/v1/incidents/" + encodeURIComponent(id));
      fill(card, incidentCard(detail, true, null, true));
      const first = detail.patterns[0];
      const head = first
        ? el("p", { class: "moved-pattern" }, "With its first pattern: ", link("/cluster", { id: first.id }, template(first.text)))
        : incidentHead(detail, true);
      fill(moved, detail.moved ? movedBody(detail.moved, null, head)
        : el("p", { class: "empty" }, "What moved cannot be answered: its first pattern is no longer known."));
    } catch (err) { fill(card, errorPanel(err)); fill(moved); }
  });
}
