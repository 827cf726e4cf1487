// An incident as a card: its culprit, patterns, counters and hints (never verdicts).

import { el, link } from "./dom.js";
import { fmtCount, fmtAgo, fmtTime } from "./format.js";
import { template, service } from "./widgets.js";

const ROLES = { callee: "the callee of the failing calls", caller: "the caller itself", self: "reported its own error" };

/** One incident: where it lives, what shows it, and what to check next (hints, never verdicts). */
export function incidentCard(inc) {
  const c = inc.culprit;
  const who = c.service
    ? el("p", { class: "culprit" }, "Culprit: ", service(c.service), c.role ? el("span", { class: "muted" }, " — " + (ROLES[c.role] || c.role)) : null)
    : el("p", { class: "culprit" }, "Culprit not known",
      c.seen_in.length ? [" — seen in ", c.seen_in.map(service)] : null);
  const reasons = c.reasoning.length ? el("ul", { class: "reasons" }, c.reasoning.map((r) => el("li", null, r))) : null;
  const patterns = inc.patterns.length
    ? el("div", null, el("h3", null, "Patterns"),
      el("ul", { class: "plain" }, inc.patterns.map((p) => el("li", null,
        link("/cluster", { id: p.id }, template(p.text)),
        el("span", { class: "muted" }, " · ", fmtCount(p.count), " · since ", fmtAgo(p.onset_unix_ms), " · ", p.services.map(service))))))
    : null;
  const counters = inc.counters.length
    ? el("div", null, el("h3", null, "Counters"),
      el("ul", { class: "plain" }, inc.counters.map((k) => el("li", { class: "counter " + k.relation },
        el("span", null, k.anomaly.evidence), el("span", { class: "muted" }, " — " + k.relation_text)))))
    : null;
  const hints = inc.hints.slice(0, 3).map((h, i) => el("details", { class: "hint", open: i === 0 },
    el("summary", null, el("span", { class: "badge hintb" }, "hint"), " ", h.title),
    el("p", { class: "muted" }, "A possibility with the evidence that matched, not a verdict."),
    el("h4", null, "Evidence"), el("ul", null, h.evidence.map((e) => el("li", null, e))),
    el("h4", null, "Likely causes"), el("ol", null, h.causes.map((e) => el("li", null, e))),
    el("h4", null, "Next checks"), el("ul", { class: "checks" }, h.checks.map((k) => el("li", null,
      k.what, el("pre", null, el("code", null, k.command)),
      k.complete ? null : el("span", { class: "muted" }, "Fill in the <…> part: the incident does not say it.")))),
    el("h4", null, "Ruled out if"), el("ul", null, h.ruled_out_by.map((e) => el("li", null, e)))));
  return el("article", { class: "incident" + (inc.active ? " active" : ""), id: "incident-" + inc.id },
    el("div", { class: "head" },
      el("span", { class: "badge " + (inc.active ? "err" : "ended") }, inc.active ? "active" : "ended"),
      " ", el("strong", null, inc.title)),
    el("p", { class: "muted" }, "Since ", fmtTime(inc.onset_unix_ms), " (", fmtAgo(inc.onset_unix_ms), ")",
      inc.active ? null : [" · last active ", fmtAgo(inc.last_active_unix_ms)]),
    who, reasons, patterns, counters, hints);
}
