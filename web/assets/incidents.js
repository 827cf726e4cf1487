// Incidents as the overview shows them: a lead sentence, then each incident as a card with its
// culprit, onset and whether it still goes on, its patterns, its counters and its hints (with
// the evidence that matched and the exact next commands; possibilities, never verdicts).

import { el, link } from "./dom.js";
import { fmtCount, fmtAgo, fmtTime, fmtClock } from "./format.js";
import { template, service } from "./widgets.js";

const ROLES = { callee: "the callee of the failing calls", caller: "the caller itself", self: "reported its own error" };

/** How a pattern's occurrences count in its incident, when not as its failed requests. */
const COUNTED_AS = {
  untraced: " (no trace holds them: not counted as requests)",
  echo: " (an echo of the failures above: not counted again)",
};

/** Counters listed on a card before the rest fold into one line. */
const COUNTERS_SHOWN = 4;
/** Hints shown per incident (the best supported first; the first one open). */
const HINTS_SHOWN = 3;

/** The sentence the overview leads with: how many incidents go on, and since when. */
export function incidentLead(doc) {
  const active = doc.incidents.filter((i) => stateOf(i) === "active");
  const recovering = doc.incidents.filter((i) => stateOf(i) === "recovering");
  const ended = doc.incidents.length - active.length - recovering.length;
  const recoveringText = recovering.length
    ? " " + (recovering.length === 1 ? "1 more is recovering (its fault stopped)." : recovering.length + " more are recovering (their faults stopped).")
    : "";
  if (!active.length && recovering.length) {
    const last = recovering.reduce((a, b) => (b.recovering_since_unix_ms > a.recovering_since_unix_ms ? b : a));
    return el("p", { class: "lead recovering", "data-active-incidents": "0", "data-recovering-incidents": String(recovering.length) },
      recovering.length === 1 ? "1 incident is recovering: its failures stopped and its counters stopped moving away at "
        : recovering.length + " incidents are recovering: their failures stopped and their counters stopped moving away, the last at ",
      fmtTime(last.recovering_since_unix_ms), " (", fmtAgo(last.recovering_since_unix_ms), ").",
      ended ? " " + ended + " ended." : "");
  }
  if (!active.length) {
    return el("p", { class: "lead calm", "data-active-incidents": "0" }, "No active incident",
      ended ? " (" + ended + " ended recently, listed below)" : "",
      ". ", fmtCount(doc.series_judged), " counter series judged",
      doc.unjudged.length ? ", " + fmtCount(doc.unjudged.length + doc.unjudged_omitted) + " not judged yet" : "", ".");
  }
  const first = active.reduce((a, b) => (b.onset_unix_ms < a.onset_unix_ms ? b : a));
  return el("p", { class: "lead alarm", "data-active-incidents": String(active.length) },
    active.length === 1 ? "1 incident is going on" : active.length + " incidents are going on",
    ", the first since ", fmtTime(first.onset_unix_ms), " (", fmtAgo(first.onset_unix_ms), ").",
    recoveringText, ended ? " " + ended + " ended." : "");
}

/** Where an incident stands: `active`, `recovering` or `ended` (an older agent's document
 *  says only whether it is active). */
export function stateOf(inc) {
  if (!inc.active) return "ended";
  return inc.state === "recovering" ? "recovering" : "active";
}

/** The badge class of each state. */
const STATE_BADGE = { active: "err", recovering: "recovering", ended: "ended" };

/** Whether each fold of a card (the card itself, each hint) is open, by the person's last
 *  click: the cards are rebuilt on every live update, and a refresh must not close what
 *  someone is reading nor open what they closed. */
const folds = new Map();

/** A <details> whose open state survives rebuilds: `key` names it, `initial` is its state
 *  until someone toggles it. */
export function fold(key, initial, attrs, ...children) {
  const open = folds.has(key) ? folds.get(key) : initial;
  const node = el("details", Object.assign({}, attrs, { open }), ...children);
  // A click on the summary (also Enter or Space on it) is the person's toggle; the toggle
  // event would also fire for the state the card was built with.
  const summary = node.querySelector(":scope > summary");
  if (summary) summary.addEventListener("click", () => folds.set(key, !node.open));
  return node;
}

/** The title as a headline and the rest: the diagnosis titles an incident "<leading hint> —
 *  in <service>: <the change>"; the hint's name leads and the change goes on a line of its own. */
export function titleParts(inc) {
  const hint = inc.hints.length ? inc.hints[0].title : null;
  if (hint && inc.title.startsWith(hint + " — ")) return [hint, inc.title.slice(hint.length + 3)];
  return [inc.title, null];
}

/** One incident: where it lives, what shows it, and what to check next (hints, never verdicts).
 *  Folded to its head line (headline, culprit, onset, failures) unless `open`: with several
 *  incidents the first is read in full and the others are one line each. `processes` (the
 *  counters' watched processes, or null) says why a check could not name a pid; `onItsPage`
 *  leaves out the link to the incident's own page. */
export function incidentCard(inc, open, processes, onItsPage) {
  const c = inc.culprit;
  const who = c.service
    ? el("p", { class: "culprit" }, "Culprit: ", service(c.service), c.role ? el("span", { class: "muted" }, " — " + (ROLES[c.role] || c.role)) : null,
      c.seen_in.length ? el("span", { class: "muted" }, " · seen by ", c.seen_in.map((s, i) => (i ? [", ", service(s)] : service(s)))) : null)
    : el("p", { class: "culprit unsure" }, "Culprit not known",
      c.seen_in.length ? [" — seen in ", c.seen_in.map(service)] : null);
  const reasons = c.reasoning.length ? el("ul", { class: "reasons" }, c.reasoning.map((r) => el("li", null, r))) : null;
  const patterns = inc.patterns.length
    ? el("div", null, el("h3", null, "Patterns"),
      inc.failures ? el("p", { class: "muted", "data-failures": String(inc.failures) },
        fmtCount(inc.failures), inc.failures === 1 ? " failed request" : " failed requests",
        inc.patterns.length > 1 ? ", each counted once across its patterns" : "",
        inc.untraced_records ? el("span", { "data-untraced": String(inc.untraced_records) }, "; ", fmtCount(inc.untraced_records),
          inc.untraced_records === 1 ? " line" : " lines", " no trace holds, not counted as requests") : null) : null,
      el("ul", { class: "plain" }, inc.patterns.map((p) => el("li", { class: "incident-pattern" },
        link("/cluster", { id: p.id }, template(p.text)),
        el("span", { class: "muted" }, " · ", patternCount(p, inc),
          COUNTED_AS[p.counted_as] || "",
          " · since ", fmtTime(p.onset_unix_ms), " · last ", fmtAgo(p.last_seen_unix_ms), " · "),
        p.services.flatMap((s, i) => (i ? [" ", service(s)] : [service(s)]))))))
    : el("p", { class: "muted" }, "No error pattern: the counters below broke from their usual level on their own.");
  const [headline, rest] = titleParts(inc);
  const state = stateOf(inc);
  const head = el("summary", { class: "head" },
    el("span", { class: "badge " + STATE_BADGE[state], "data-state": state }, state),
    " ", el("strong", { class: "headline" }, headline),
    c.service ? [" ", service(c.service)] : null,
    el("span", { class: "muted glance" }, " · since ", fmtClock(inc.onset_unix_ms),
      state === "recovering" ? " · stopped " + fmtClock(inc.recovering_since_unix_ms) : "",
      state === "ended" ? " · ended " + fmtClock(endedAt(inc)) : "",
      inc.reopened_unix_ms ? " · reopened " + fmtClock(inc.reopened_unix_ms) : "",
      inc.failures ? " · " + fmtCount(inc.failures) + (inc.failures === 1 ? " failed request" : " failed requests") : ""),
    rest ? el("span", { class: "title-rest", title: rest }, rest) : null);
  return fold("incident " + inc.id, Boolean(open),
    { class: "incident " + state, id: "incident-" + inc.id, "data-active": String(inc.active), "data-state": state },
    head,
    el("p", { class: "when" }, "Onset ", fmtTime(inc.onset_unix_ms), " (", fmtAgo(inc.onset_unix_ms), ") · ",
      inc.ongoing_at_start ? el("span", { class: "muted", "data-ongoing-at-start": "true" },
        "already going on when the agent started: the onset is its previous run's record, or unknown (before its first look) · ") : "",
      state === "active" ? [el("strong", null, "still active"), ", last signal ", fmtAgo(inc.last_active_unix_ms)]
        : state === "recovering"
          ? el("span", { "data-recovering-since": String(inc.recovering_since_unix_ms) }, el("strong", null, "recovering"),
            ": its fault stopped at ", fmtTime(inc.recovering_since_unix_ms), " (", fmtAgo(inc.recovering_since_unix_ms),
            ") — no failure since, and its counters no longer move away from their usual levels; it ends once they are back or have stayed still a while")
          : el("span", { "data-ended": String(endedAt(inc)) }, "ended: its fault stopped at ", fmtTime(endedAt(inc)), " (", fmtAgo(endedAt(inc)),
            "), its last failure or the last time its own counters moved away from their usual levels"),
      inc.reopened_unix_ms ? el("span", { "data-reopened": String(inc.reopened_unix_ms) },
        " · reopened ", fmtTime(inc.reopened_unix_ms), ": its fault came back after it had ended") : "",
      onItsPage ? "" : [" · ", link("/incident", { id: inc.id }, "its page, with what moved with it")]),
    who, reasons, patterns, countersList(inc.counters, inc.id), inc.hints.slice(0, HINTS_SHOWN).map((h, i) => hint(h, i, inc.id, c.service, processes)));
}

/** The line that names an incident of counters only above what moved with it: its headline,
 *  culprit, and a link to its page. */
export function incidentHead(inc, onItsPage) {
  const [headline] = titleParts(inc);
  return el("p", { class: "moved-pattern moved-incident", "data-incident": inc.id },
    el("span", { class: "badge " + STATE_BADGE[stateOf(inc)] }, "incident"), " ",
    onItsPage ? el("strong", null, headline) : link("/incident", { id: inc.id }, headline),
    inc.culprit.service ? [" ", service(inc.culprit.service)] : null,
    el("span", { class: "muted" }, " · no error pattern: its own counters and what moved around its onset"));
}

/** When an ended incident ended (an older agent's document says only its last signal). */
function endedAt(inc) {
  return inc.ended_unix_ms ?? inc.last_active_unix_ms;
}

/** A pattern's occurrences on its incident's card: its failed requests, and apart from them
 *  its lines no trace holds when the incident counts those apart (an exporter's or an accept
 *  loop's lines sharing the pattern of the requests that failed with them). */
function patternCount(p, inc) {
  const plural = (n, one, many) => fmtCount(n) + (n === 1 ? one : many);
  if (p.counted_as === "untraced") return plural(p.count, " line", " lines");
  if (p.counted_as === "failures" && p.untraced && p.untraced < p.count && inc.untraced_records) {
    return el("span", { "data-pattern-untraced": String(p.untraced) }, plural(p.count - p.untraced, " failure", " failures"),
      " + ", plural(p.untraced, " line", " lines"), " no trace holds");
  }
  return plural(p.count, " failure", " failures");
}

/** Opens the card of incident `id` (a link to it from a pattern row). */
export function openIncident(id) {
  folds.set("incident " + id, true);
  const node = document.getElementById("incident-" + id);
  if (node) node.open = true;
}

/** Whether an incomplete check wants a pid (`<pid>` left in its command). */
export function wantsPid(check) {
  return !check.complete && check.command.includes("<pid>");
}

/** Why a check's <…> part is left to fill in, from what the agent knows: a process it
 *  watches but finds no longer running (a callee that is down has no pid), or one it does
 *  not watch at all. */
function unfilled(check, culprit, processes) {
  const parts = [...new Set(Array.from(check.command.matchAll(/<([a-z_]+)>/g), (m) => "<" + m[1] + ">"))];
  const which = parts.length ? parts.join(", ") : "<…>";
  if (wantsPid(check) && culprit && processes) {
    const proc = processes.find((p) => p.name === culprit);
    if (proc && !proc.current) {
      return "faultline watches the process of " + culprit + " and finds none running now ("
        + (proc.error || "not read") + "): it may be down. Once it runs again, fill in its pid.";
    }
    if (!proc) {
      return "faultline watches no process named " + culprit + " ([[counters.processes]]), so it does not know its pid: fill in the " + which + " part.";
    }
  }
  return "Fill in the " + which + " part: the incident does not say it.";
}

/** The incident's counters: related ones listed, node-wide totals (which move with any
 *  traffic) and the rest past a few folded into one line. */
function countersList(counters, incident) {
  if (!counters.length) return null;
  const item = (k) => el("li", { class: "counter " + k.relation + (k.supporting ? " supporting" : "") },
    el("span", null, k.anomaly.evidence), latestOf(k.anomaly), el("span", { class: "muted" }, " — " + k.relation_text),
    k.supporting ? el("span", { class: "muted" }, " · beside the fault: it does not keep the incident active") : null,
    !k.supporting && k.moving_away === false && k.anomaly.active
      ? el("span", { class: "muted", "data-still": "true" }, " · no longer moving away from its usual level") : null,
    k.anomaly.caveat ? el("div", { class: "caveat" }, "Caveat: ", k.anomaly.caveat) : null);
  const related = counters.filter((k) => k.relation !== "node_wide");
  const shown = related.slice(0, COUNTERS_SHOWN);
  const folded = related.slice(COUNTERS_SHOWN).concat(counters.filter((k) => k.relation === "node_wide"));
  return el("div", null, el("h3", null, "Counters"),
    shown.length ? el("ul", { class: "plain" }, shown.map(item)) : null,
    folded.length ? fold("counters " + incident, false, { class: "more-counters" },
      el("summary", null, shown.length ? "+ " : "", folded.length, " ",
        folded.every((k) => k.relation === "node_wide") ? "node-wide counter" + (folded.length === 1 ? "" : "s") + " (they move with any traffic on the node)" : "more counter" + (folded.length === 1 ? "" : "s")),
      el("ul", { class: "plain" }, folded.map(item))) : null);
}

/** A counter's latest point where it differs from the level its evidence quotes: the evidence
 *  is written when the change is raised, and a counter the incident keeps after the detector's
 *  window is only re-read (a leak's CLOSE-WAIT "climbing 35.5 → 300" while it is at 981). */
function latestOf(a) {
  const unit = (a.unit || "").startsWith("/") ? a.unit : "";
  const now = fmtCount(a.latest) + unit;
  return now === fmtCount(a.reached) + unit ? null : el("span", { class: "latest", "data-latest": String(a.latest) }, " · now ", now);
}

/** One hint: what matched, then the exact commands to check next, the likely causes and what
 *  would rule it out. */
function hint(h, i, incident, culprit, processes) {
  return fold("hint " + incident + " " + h.rule_id, i === 0, { class: "hint" },
    el("summary", null, el("span", { class: "badge hintb" }, "hint"), " ", h.title),
    el("p", { class: "muted" }, "A possibility with the evidence that matched, not a verdict."),
    el("h4", null, "Evidence"), el("ul", null, h.evidence.map((e) => el("li", null, e))),
    el("h4", null, "Next checks"), el("ul", { class: "checks" }, h.checks.map((k) => el("li", null,
      k.what, el("pre", null, el("code", null, k.command)),
      k.complete ? null : el("span", { class: "muted unfilled" }, unfilled(k, culprit, processes))))),
    el("h4", null, "Likely causes"), el("ol", null, h.causes.map((e) => el("li", null, e))),
    el("h4", null, "Ruled out if"), el("ul", null, h.ruled_out_by.map((e) => el("li", null, e))));
}
