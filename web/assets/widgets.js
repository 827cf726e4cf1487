// Small pieces shared by the pattern, trace and incident views: a pattern template with its
// masked parameters, a service chip (one colour per name on every page), an emergence badge.

import { el } from "./dom.js";

/** The template with its masked parameters (<IP>, <NUM>, <*> ...) highlighted. */
export function template(text, tag) {
  const node = el(tag || "span", { class: "template" });
  const parts = String(text).split(/(<[A-Z_*][A-Z0-9_*]{0,15}>)/);
  parts.forEach((part, i) => {
    if (!part) return;
    node.append(i % 2 === 1 ? el("span", { class: "param" }, part) : document.createTextNode(part));
  });
  return node;
}

// A service keeps its colour on every page, so the colour comes from its name: FNV-1a with
// a final mix (similar names such as "frontend"/"orders" landed on near hues with a plain
// multiplicative hash), then one of 24 hues spread by the golden angle.
export function serviceColor(name) {
  let h = 0x811c9dc5;
  for (let i = 0; i < name.length; i++) h = Math.imul(h ^ name.charCodeAt(i), 0x01000193) >>> 0;
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b) >>> 0;
  h ^= h >>> 13;
  return "hsl(" + Math.round(((h >>> 0) % 24) * 137.508 % 360) + " 62% 55%)";
}

export function service(name) {
  const node = el("span", { class: "svc" }, name);
  node.style.setProperty("--svc", serviceColor(name));
  return node;
}

export function badge(emergence) {
  if (!emergence) return null;
  return el("span", { class: "badge " + emergence.kind }, emergence.kind);
}
