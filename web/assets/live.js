// Live updates: one Server-Sent Events stream per agent (shared by its tabs) and the
// refresh loop every page runs its loads through.

const listeners = { clusters: [], traces: [], counters: [] };
function onLive(kind, fn) { listeners[kind].push(fn); }

// Browsers allow about six HTTP/1.1 connections per host, shared by all tabs, and each
// EventSource holds one. So the tabs of one agent elect a leader (Web Locks) that alone
// holds the stream and relays its events to the others over a BroadcastChannel. Where
// those APIs are missing (plain http beyond loopback is not a secure context), each tab
// opens its own stream.
export function startLive() {
  const badgeNode = document.getElementById("live");
  const status = (text, cls) => { badgeNode.textContent = text; badgeNode.className = "live " + cls; };
  const deliver = (kind) => { if (listeners[kind]) for (const fn of listeners[kind]) fn(); };
  if (!window.EventSource) { status("no live updates", "off"); return; }

  const open = (relay) => {
    const source = new EventSource("/api/v1/events");
    window.addEventListener("pagehide", () => source.close());
    source.addEventListener("hello", () => { status("live", "on"); if (relay) relay.postMessage("hello"); });
    source.onerror = () => { status("reconnecting", "off"); if (relay) relay.postMessage("error"); };
    for (const kind of Object.keys(listeners)) {
      source.addEventListener(kind, () => { deliver(kind); if (relay) relay.postMessage(kind); });
    }
    return source;
  };

  if (!(window.BroadcastChannel && navigator.locks && window.isSecureContext)) { open(null); return; }
  const channel = new BroadcastChannel("faultline-live");
  let leader = null, lastHeard = 0;
  channel.onmessage = (event) => {
    if (leader) {
      // A new follower asks whether the stream is up.
      if (event.data === "ask") channel.postMessage(leader.readyState === 1 ? "ping" : "error");
      return;
    }
    lastHeard = Date.now();
    if (event.data === "hello" || event.data === "ping") status("live", "on");
    else if (event.data === "error") status("reconnecting", "off");
    else if (event.data !== "ask") deliver(event.data);
  };
  channel.postMessage("ask");
  setInterval(() => {
    if (leader) channel.postMessage(leader.readyState === 1 ? "ping" : "error");
    else if (Date.now() - lastHeard > 25000) status("waiting for the live stream", "off");
  }, 10000);
  navigator.locks.request("faultline-live-stream", () => {
    leader = open(channel);
    return new Promise(() => {}); // Hold the lock until this tab goes away.
  });
}

/** Runs `load` now and on each live event of `kinds`; never two at once, never a backlog. */
export function refreshing(kinds, load) {
  let running = false, again = false;
  async function run() {
    if (running) { again = true; return; }
    running = true;
    try { await load(); } finally {
      running = false;
      if (again) { again = false; run(); }
    }
  }
  for (const k of kinds) onLive(k, run);
  return run();
}
