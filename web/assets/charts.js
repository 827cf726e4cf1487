// SVG charts on a shared time axis (line charts with a crosshair across all charts of the
// page, sparklines, per-minute bars) and the helpers that turn API series into chart series.

import { el, svgEl } from "./dom.js";
import { fmtCount, fmtClock, signed } from "./format.js";

export const CHART_W = 600;
const PALETTE = ["#ff6b5b", "#7aa2ff", "#ffb547", "#5fd38d", "#c792ea", "#4dd0e1", "#f48fb1", "#aed581"];

export function niceMax(v) {
  if (!(v > 0)) return 1;
  const p = Math.pow(10, Math.floor(Math.log10(v)));
  for (const m of [1, 2, 2.5, 5, 10]) if (m * p >= v) return m * p;
  return 10 * p;
}

export function timeTicks(t0, t1) {
  const span = t1 - t0;
  const steps = [60e3, 120e3, 300e3, 600e3, 900e3, 1800e3, 3600e3, 7200e3, 21600e3, 43200e3, 86400e3];
  const step = steps.find((s) => span / s <= 7) || 86400e3;
  const ticks = [];
  for (let t = Math.ceil(t0 / step) * step; t <= t1; t += step) ticks.push(t);
  return ticks;
}

/**
 * A line chart over the time range [t0, t1]; series = [{name, points: [[t, v|null]...]}].
 * The legend lists each series' latest value as text, which is also what a screen reader gets.
 */
export function lineChart(title, series, t0, t1, opts) {
  opts = opts || {};
  const W = opts.width || CHART_W, H = opts.height || 120, padL = 36, padR = 8, padT = 6, padB = 16;
  const w = W - padL - padR, h = H - padT - padB;
  let max = 0;
  for (const s of series) for (const [t, v] of s.points) if (v !== null && t >= t0 && t <= t1 && v > max) max = v;
  max = niceMax(max);
  const x = (t) => padL + ((t - t0) / (t1 - t0 || 1)) * w;
  const y = (v) => padT + h - (v / max) * h;
  const svg = svgEl("svg", { class: "chart", viewBox: "0 0 " + W + " " + H, role: "img", "aria-label": title });
  for (const frac of [0, 0.5, 1]) {
    svg.append(svgEl("line", { class: "gridline", x1: padL, x2: padL + w, y1: y(max * frac), y2: y(max * frac) }));
    svg.append(svgEl("text", { x: padL - 4, y: y(max * frac) + 3, "text-anchor": "end" }, fmtCount(max * frac)));
  }
  for (const t of timeTicks(t0, t1)) {
    svg.append(svgEl("line", { class: "gridline", x1: x(t), x2: x(t), y1: padT, y2: padT + h }));
    svg.append(svgEl("text", { x: x(t), y: H - 3, "text-anchor": "middle" }, fmtClock(t)));
  }
  const legend = el("ul", { class: "legend" });
  series.forEach((s, i) => {
    const color = s.color || PALETTE[i % PALETTE.length];
    let d = "", pen = false, last = null;
    for (const [t, v] of s.points) {
      if (v === null || t < t0 || t > t1) { pen = false; continue; }
      d += (pen ? "L" : "M") + x(t).toFixed(1) + " " + y(v).toFixed(1);
      pen = true;
      last = v;
    }
    if (d) svg.append(svgEl("path", { d, fill: "none", stroke: color, "stroke-width": s.width || 1.6, "stroke-linejoin": "round" }));
    // A series that knows its current value shows it (null: none now, e.g. a failing target)
    // rather than its last point, which may be from before the failure.
    const shown = "current" in s ? s.current : last;
    const item = el("li", null, s.name, " ", el("span", { class: "val" }, fmtCount(shown)), s.note ? el("span", { class: "moved" }, " " + s.note) : null);
    item.style.setProperty("--c", color);
    legend.append(item);
  });
  addCrosshair(svg, { x, t0, t1, padT, h, series });
  return el("div", { class: "chartbox" }, el("h3", null, title), svg, legend);
}

// Hovering a chart draws a crosshair at that time on every chart of the page, with each
// series' value there: charts share the time axis, so the eye can line up what moved.
const crosshairs = [];

export function addCrosshair(svg, chart) {
  const line = svgEl("line", { class: "now", y1: chart.padT, y2: chart.padT + chart.h, visibility: "hidden" });
  const label = svgEl("text", { class: "hover", y: chart.padT + 10, visibility: "hidden" });
  svg.append(line, label);
  const entry = { svg, chart, line, label };
  crosshairs.push(entry);
  const toTime = (event) => {
    const box = svg.getBoundingClientRect();
    const vb = svg.viewBox.baseVal;
    const px = ((event.clientX - box.left) / box.width) * vb.width;
    return chart.t0 + ((px - chart.x(chart.t0)) / (chart.x(chart.t1) - chart.x(chart.t0))) * (chart.t1 - chart.t0);
  };
  svg.addEventListener("pointermove", (event) => showCrosshairs(toTime(event)));
  svg.addEventListener("pointerleave", () => showCrosshairs(null));
}

function showCrosshairs(t) {
  // Charts replaced by a refresh are gone from the page: forget them.
  for (let i = crosshairs.length - 1; i >= 0; i--) if (!crosshairs[i].svg.isConnected) crosshairs.splice(i, 1);
  for (const { chart, line, label } of crosshairs) {
    if (t === null || t < chart.t0 || t > chart.t1) {
      line.setAttribute("visibility", "hidden");
      label.setAttribute("visibility", "hidden");
      continue;
    }
    const xx = chart.x(t);
    line.setAttribute("x1", xx); line.setAttribute("x2", xx);
    line.setAttribute("visibility", "visible");
    const values = chart.series.map((s) => {
      let best = null;
      for (const p of s.points) if (p[1] !== null && (best === null || Math.abs(p[0] - t) < Math.abs(best[0] - t))) best = p;
      return best ? s.name + " " + fmtCount(best[1]) : null;
    }).filter(Boolean).slice(0, 3);
    label.textContent = fmtClock(t) + "  " + values.join(" · ");
    const right = xx > chart.x(chart.t0) + (chart.x(chart.t1) - chart.x(chart.t0)) * 0.6;
    label.setAttribute("x", right ? xx - 4 : xx + 4);
    label.setAttribute("text-anchor", right ? "end" : "start");
    label.setAttribute("visibility", "visible");
  }
}

/** Per-minute counts as [t, v] points at each minute's middle. */
function minutePoints(mc) {
  return (mc.counts || []).map((c, i) => [mc.start_unix_ms + i * 60000 + 30000, c]);
}

/** A small area sparkline over [t0, t1]. */
export function sparkline(mc, t0, t1, calm, label) {
  const W = 260, H = 34;
  const pts = minutePoints(mc).filter(([t]) => t >= t0 && t <= t1);
  const max = Math.max(1, ...pts.map(([, v]) => v));
  const x = (t) => ((t - t0) / (t1 - t0 || 1)) * W;
  const y = (v) => H - 2 - (v / max) * (H - 4);
  const svg = svgEl("svg", { class: "spark" + (calm ? " calm" : ""), viewBox: "0 0 " + W + " " + H, preserveAspectRatio: "none", role: "img", "aria-label": label });
  if (pts.length) {
    let line = "";
    pts.forEach(([t, v], i) => { line += (i ? "L" : "M") + x(t).toFixed(1) + " " + y(v).toFixed(1); });
    const area = line + "L" + x(pts[pts.length - 1][0]).toFixed(1) + " " + H + "L" + x(pts[0][0]).toFixed(1) + " " + H + "Z";
    svg.append(svgEl("path", { class: "area", d: area }), svgEl("path", { class: "line", d: line }));
  }
  return svg;
}

/** Bars of per-minute counts (cluster timeline). */
export function barChart(title, mc) {
  const W = 1300, H = 170, padL = 36, padB = 16, padT = 6, w = W - padL - 8, h = H - padT - padB;
  // Show at least half an hour, so that a young pattern is a narrow bar at the right end
  // rather than one bar across the whole chart.
  const raw = mc.counts || [];
  const counts = Array(Math.max(0, 30 - raw.length)).fill(0).concat(raw);
  const t0 = mc.start_unix_ms - (counts.length - raw.length) * 60000;
  const t1 = t0 + Math.max(1, counts.length) * 60000;
  const max = niceMax(Math.max(0, ...counts));
  const svg = svgEl("svg", { class: "chart bars", viewBox: "0 0 " + W + " " + H, role: "img", "aria-label": title });
  for (const frac of [0, 0.5, 1]) {
    const yy = padT + h - frac * h;
    svg.append(svgEl("line", { class: "gridline", x1: padL, x2: padL + w, y1: yy, y2: yy }));
    svg.append(svgEl("text", { x: padL - 4, y: yy + 3, "text-anchor": "end" }, fmtCount(max * frac)));
  }
  const bw = w / Math.max(1, counts.length);
  counts.forEach((c, i) => {
    if (!c) return;
    const bh = (c / max) * h;
    svg.append(svgEl("rect", { x: padL + i * bw + 0.5, y: padT + h - bh, width: Math.max(1, bw - 1), height: bh },
      svgEl("title", null, fmtClock(t0 + i * 60000) + ": " + c)));
  });
  for (const t of timeTicks(t0, t1)) {
    svg.append(svgEl("text", { x: padL + ((t - t0) / (t1 - t0)) * w, y: H - 3, "text-anchor": "middle" }, fmtClock(t)));
  }
  return el("div", { class: "chartbox" }, el("h3", null, title), svg);
}

export function seriesPoints(snapshot, series) {
  return (series.points || []).map((v, i) => [snapshot.history_start_unix_ms + i * snapshot.step_ms, v]);
}

/** How much a series moved over the window: last minus first known value. */
function moved(points) {
  const known = points.filter(([, v]) => v !== null);
  if (known.length < 2) return 0;
  return known[known.length - 1][1] - known[0][1];
}

/** A task target as a chart series: a failing one says so and why, and shows no count. */
export function taskSeries(snapshot, t) {
  const points = seriesPoints(snapshot, t.history);
  return {
    name: t.target + (t.error ? " (failing: " + t.error + ")" : ""),
    points,
    current: t.error ? null : t.current,
    note: t.error ? "" : signedNote(points),
  };
}

/** A socket series' name, as the API renders it from the series vocabulary. */
function socketLabel(s) {
  return s.label || s.state;
}

/**
 * The socket series to chart, at most `limit`: first those the active incidents name (in
 * their order; `focus` = [{port, side, state, who}], `who` the culprit named after the
 * label), then the other states of those ports that moved, then the rest that rose most,
 * then what fell. A fall is mostly an old port draining (a previous run's TIME-WAIT going to
 * 0), which says little beside a rise; other programs' churn comes after the incident's own
 * ports whatever its size.
 */
export function movingSockets(snapshot, limit, focus) {
  focus = focus || [];
  const same = (f, s) => f.port === s.port && f.side === s.side;
  const group = (r) => {
    const at = focus.findIndex((f) => same(f, r.s) && f.state === r.s.state);
    if (at >= 0) return [0, at];
    if (r.delta && focus.some((f) => same(f, r.s))) return [1, 0];
    return [r.delta > 0 ? 2 : 3, 0];
  };
  return (snapshot.sockets || [])
    .map((s) => { const points = seriesPoints(snapshot, s.history); return { s, points, delta: moved(points) }; })
    .map((r) => Object.assign(r, { group: group(r) }))
    .sort((a, b) => a.group[0] - b.group[0] || a.group[1] - b.group[1]
      || Math.abs(b.delta) - Math.abs(a.delta) || b.s.current - a.s.current)
    .slice(0, limit)
    .map(({ s, points, delta }) => {
      const f = focus.find((x) => same(x, s) && x.who);
      return { name: socketLabel(s) + (f ? " (" + f.who + ")" : ""), points, note: delta ? signed(delta) : "" };
    });
}

export function signedNote(points) {
  const d = moved(points);
  return d ? signed(d) : "";
}
