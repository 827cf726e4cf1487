// The DOM helpers every page builds with, and the page's own state (its <main> and query string).
//
// Safety rule of the whole dashboard: every string that comes from the API (log messages,
// templates, span names, service names) is inserted with textContent or as an attribute value
// through setAttribute; nothing is ever parsed as HTML. Links are built from fixed paths plus
// encoded query strings, so data can never choose a URL scheme.

const SVG_NS = "http://www.w3.org/2000/svg";
export const main = document.getElementById("main");
export const params = new URLSearchParams(location.search);

/** Creates an element; string/number children become text nodes, never markup. */
export function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  setAttrs(node, attrs);
  append(node, children);
  return node;
}

export function svgEl(tag, attrs, ...children) {
  const node = document.createElementNS(SVG_NS, tag);
  setAttrs(node, attrs);
  append(node, children);
  return node;
}

function setAttrs(node, attrs) {
  if (!attrs) return;
  for (const [key, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    node.setAttribute(key, value === true ? "" : String(value));
  }
}

function append(node, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

/** Replaces a node's children; null/false children are skipped like in el(). */
export function fill(node, ...children) {
  node.replaceChildren();
  append(node, children);
  return node;
}

export function link(path, query, ...children) {
  const qs = new URLSearchParams();
  for (const [k, v] of Object.entries(query || {})) {
    if (v !== null && v !== undefined && v !== "") qs.set(k, v);
  }
  const s = qs.toString();
  return el("a", { href: path + (s ? "?" + s : "") }, ...children);
}
export function errorPanel(err) {
  return el("div", { class: "panel error-box", role: "alert" }, "Could not load: ", err.message);
}

/** A section whose content is replaced on refresh. */
export function slot(cls) { return el("div", { class: cls || "" }); }

export function stat(label, value) {
  return el("div", null, el("span", { class: "label" }, label), el("span", { class: "big" }, value));
}
