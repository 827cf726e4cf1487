// faultline dashboard: the entry module. Plain JavaScript ES modules, no dependencies, no
// build step; each page and concern is a module of its own (see the imports below).
//
// Page state lives in the query string, so a URL pasted into an incident channel opens the
// same view. Live updates arrive over Server-Sent Events (/api/v1/events); each event makes
// the current page refetch what it shows, at most one request per kind at a time.

import { startLive } from "./live.js";
import { overview } from "./pages/overview.js";
import { clusters } from "./pages/clusters.js";
import { cluster } from "./pages/cluster.js";
import { traces } from "./pages/traces.js";
import { trace } from "./pages/trace.js";
import { counters } from "./pages/counters.js";
import { incident } from "./pages/incident.js";

function setupTheme() {
  const stored = localStorage.getItem("faultline-theme");
  if (stored === "light" || stored === "dark") document.documentElement.setAttribute("data-theme", stored);
  document.getElementById("theme").addEventListener("click", () => {
    const current = document.documentElement.getAttribute("data-theme")
      || (matchMedia("(prefers-color-scheme: dark)").matches ? "dark" : "light");
    const next = current === "dark" ? "light" : "dark";
    document.documentElement.setAttribute("data-theme", next);
    localStorage.setItem("faultline-theme", next);
  });
}

function setupKeys() {
  const pages = { o: "/", p: "/clusters", t: "/traces", c: "/counters" };
  document.addEventListener("keydown", (event) => {
    const typing = /^(INPUT|SELECT|TEXTAREA)$/.test(document.activeElement && document.activeElement.tagName);
    if (typing || event.ctrlKey || event.metaKey || event.altKey) return;
    if (event.key === "/") {
      const search = document.getElementById("f-q");
      if (search) { event.preventDefault(); search.focus(); }
    } else if (pages[event.key]) {
      location.href = pages[event.key];
    }
  });
}

const routes = { "/": ["overview", overview], "/clusters": ["clusters", clusters], "/cluster": ["clusters", cluster],
  "/traces": ["traces", traces], "/trace": ["traces", trace], "/counters": ["counters", counters],
  "/incident": ["overview", incident] };

function start() {
  setupTheme();
  setupKeys();
  const [name, page] = routes[location.pathname] || routes["/"];
  for (const a of document.querySelectorAll("nav a")) {
    if (a.getAttribute("data-page") === name) a.setAttribute("aria-current", "page");
  }
  startLive();
  page().then(() => {
    // Time to first render with data, read by the browser tests and the render benchmark.
    document.body.setAttribute("data-ready-ms", String(Math.round(performance.now())));
    document.body.setAttribute("data-ready", "true");
  });
}

start();
