// Where an error starts (the culprit verdict of a trace or a pattern), as a line and as a panel.

import { el } from "./dom.js";
import { fmtCount } from "./format.js";
import { service } from "./widgets.js";

const ROLE_TEXT = {
  callee: "the callee: it closed, reset, refused or hung; its callers only saw the error",
  caller: "the caller fails on its own (its name lookups, its local ports, its own timeouts)",
  self: "it reported the error itself",
};

/** One line: "starts in <callee> (seen by <caller>, <edge>) in 412 of 415 traces", with the
 *  services as chips; an unresolved verdict says it is unsure. */
export function culpritLine(c) {
  if (!c) return null;
  const seen = c.seen_by.length ? [" (seen by ", c.seen_by.flatMap((s, i) => (i ? [", ", service(s)] : [service(s)])),
    c.edge ? ["; ", c.edge.caller, " → ", c.edge.callee, c.edge.operation ? " " + c.edge.operation : "",
      c.edge.address ? " " + c.edge.address : ""] : null, ")"] : null;
  const count = c.traces_total > 1 ? " in " + fmtCount(c.traces_agreeing) + " of " + fmtCount(c.traces_total) + " traces" : "";
  return el("p", { class: "culprit" + (c.resolved ? "" : " unsure") },
    c.resolved ? "Starts in " : "Shows in ", service(c.service), seen, count,
    c.resolved ? null : el("span", { class: "muted" }, " — callee unknown"));
}

/** The culprit with its reasoning and evidence. */
export function culpritPanel(c, title) {
  if (!c) return null;
  return el("section", { class: "panel culprit-panel", "aria-labelledby": "h-culprit" },
    el("h2", { id: "h-culprit" }, title),
    culpritLine(c),
    el("p", null, el("span", { class: "label" }, "Role "), ROLE_TEXT[c.role] || c.role, " · fault: ", c.fault.replace(/_/g, " ")),
    el("p", { class: "reason" }, c.reasoning),
    c.evidence.length ? el("details", { open: "" }, el("summary", null, "Evidence"),
      el("ul", { class: "evidence" }, c.evidence.map((e) => el("li", null, el("code", null, e))))) : null);
}
