#!/usr/bin/env python3
"""The unseen lab: faultline judged on a service chain its developers never tuned it on.

A media pipeline of four real Go services (lab/unseen/, stdlib net/http, logrus text lines and
stdlib `log` lines, W3C traceparent, spans posted as OTLP/JSON by three of them, the fourth
sends none), with fault mechanics of its own. This script builds them (GOPATH mode, offline,
against Debian's /usr/share/gocode), writes a faultline configuration from the README's
documented keys, starts the agent first (`--agent-lead` seconds before the services, with other
socket churn on the node), drives traffic, injects one fault at a time after a baseline and
records through the API, 10 s and 30 s after each onset: the top incident, its culprit, hints and
counters, the emerging patterns' counts against the failed requests it counted itself (traced
and untraced records apart, `clusters[].untraced_count`), the incidents' `failures` and
`untraced_records`, the trace page's culprit for a failed request, and with `--watch-end SECS`
how long after the heal that incident ended (and the failures and patterns it kept).
`--quiet SECS` runs no fault at all instead.

    gateway ──> thumbnailer
       └──────> metadata ──> blobstore (no spans, stdlib log)

Faults (`--faults`, in this order by default):
  time-wait   gateway calls metadata with a new connection per request (DisableKeepAlives):
              TIME-WAIT on metadata's port; nothing fails. Culprit: gateway (the caller).
  goroutines  thumbnailer starts a goroutine per request blocked on a channel nobody reads;
              nothing fails. Culprit: thumbnailer.
  abort       thumbnailer's handler panics with http.ErrAbortHandler: net/http closes the
              connection unanswered and logs nothing; gateway sees EOF. Culprit: thumbnailer.
  slow        blobstore answers after 2.5 s, past metadata's 800 ms wait for headers; blobstore
              logs nothing wrong. Culprit: blobstore.
  close-wait  metadata never reads or closes blobstore's response bodies: blobstore's 3 s idle
              timeout closes its end, CLOSE-WAIT piles up in metadata (client side) until its
              512 fds run out. Culprit: metadata (the client that leaks).
  refused     blobstore is killed (SIGKILL) and restarted 35 s later: connection refused.
              Culprit: blobstore.

Python standard library only. Results: a JSON file and a table on stdout.

    scripts/lab/unseen.py --faultline target/debug/faultline [--faults abort,slow] [--quiet 300]
"""

import argparse
import json
import os
import random
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import http.client

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
LAB = os.path.join(ROOT, "lab", "unseen")
SERVICES = ["gateway", "thumbnailer", "metadata", "blobstore"]
GOCODE = "/usr/share/gocode"

FAULTS = {
    # name: (service with the switch or None, switch, expected culprit, expected counter words)
    "time-wait": ("gateway", "fresh-conn", "gateway", "TIME-WAIT on metadata's port"),
    "goroutines": ("thumbnailer", "leak", "thumbnailer", "thumbnailer goroutines"),
    "abort": ("thumbnailer", "abort", "thumbnailer", "(none needed) EOF pattern"),
    "slow": ("blobstore", "slow", "blobstore", "(none needed) timeout pattern"),
    "close-wait": ("metadata", "keep-body", "metadata", "CLOSE-WAIT to blobstore's port / metadata fds"),
    "refused": (None, None, "blobstore", "(none needed) refused pattern"),
}
# Faults that fail no request at first: their onset is the injection, not the first failure.
COUNTER_FAULTS = {"time-wait", "goroutines", "close-wait"}


def log(msg):
    print(time.strftime("%H:%M:%S", time.gmtime()), msg, flush=True)


def free_port(used):
    """A port in 20000-29999 that binds now (services on a node rarely use ephemeral ports)."""
    for _ in range(500):
        p = random.randint(20000, 29999)
        if p in used:
            continue
        s = socket.socket()
        try:
            s.bind(("127.0.0.1", p))
        except OSError:
            continue
        finally:
            s.close()
        used.add(p)
        return p
    raise SystemExit("no free port found in 20000-29999")


def build(tmp):
    """Builds the four services offline in GOPATH mode; returns {service: binary}."""
    if not os.path.isdir(os.path.join(GOCODE, "src/github.com/sirupsen/logrus")):
        raise SystemExit("logrus is missing: apt-get install golang-github-sirupsen-logrus-dev")
    gopath = os.path.join(tmp, "gopath")
    os.makedirs(os.path.join(gopath, "src"))
    os.symlink(LAB, os.path.join(gopath, "src", "unseenlab"))
    env = dict(os.environ, GO111MODULE="off", GOPATH=gopath + ":" + GOCODE, GOFLAGS="",
               GOCACHE=os.environ.get("GOCACHE", os.path.join(tmp, "gocache")))
    out = {}
    for s in SERVICES:
        b = os.path.join(tmp, "bin", s)
        subprocess.run(["go", "build", "-o", b, "unseenlab/" + s], env=env, check=True, cwd=tmp)
        out[s] = b
    return out


class Get:
    """GETs JSON from the agent's API."""

    def __init__(self, base):
        self.base = base

    def __call__(self, path, timeout=5):
        try:
            with urllib.request.urlopen(self.base + path, timeout=timeout) as r:
                return json.loads(r.read())
        except (urllib.error.URLError, OSError, ValueError) as e:
            return {"_error": str(e)}


class Churn:
    """Other socket activity on the node: a TCP echo service with one short connection every
    100 ms, and a burst of 300 connections every 90 s."""

    def __init__(self, port):
        self.port = port
        self.stop = threading.Event()
        self.srv = socket.socket()
        self.srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.srv.bind(("127.0.0.1", port))
        self.srv.listen(512)
        threading.Thread(target=self._serve, daemon=True).start()
        threading.Thread(target=self._client, daemon=True).start()

    def _serve(self):
        self.srv.settimeout(0.5)
        while not self.stop.is_set():
            try:
                c, _ = self.srv.accept()
            except OSError:
                continue
            try:
                c.settimeout(1)
                c.sendall(c.recv(64))
            except OSError:
                pass
            c.close()

    def _one(self):
        try:
            c = socket.create_connection(("127.0.0.1", self.port), timeout=1)
            c.sendall(b"ping\n")
            c.recv(64)
            c.close()
        except OSError:
            pass

    def _client(self):
        last_burst = time.time()
        while not self.stop.is_set():
            self._one()
            if time.time() - last_burst > 90:
                last_burst = time.time()
                for _ in range(300):
                    self._one()
            time.sleep(0.1)


class Traffic:
    """Keep-alive clients of gateway at about `rate` requests a second; every answer kept."""

    def __init__(self, port, rate, threads=4):
        self.port = port
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.results = []  # (unix s, ok, status or error text, trace id)
        # Start times of the requests still waiting for their answer, by thread. A request is
        # kept in `results` when it is answered, dated when it started: one that started before
        # a heal and is still in flight then is missing from a count taken at the heal. Seen on
        # the slow fault: 196 failed requests counted at the heal, 200 failed (one per thread).
        self.in_flight = {}
        self.interval = threads / rate
        for _ in range(threads):
            threading.Thread(target=self._run, daemon=True).start()

    def _run(self):
        conn = None
        me = threading.get_ident()
        while not self.stop.is_set():
            t = time.time()
            with self.lock:
                self.in_flight[me] = t
            mid = random.randint(1, 99999)
            ok, what, tid = False, "", ""
            try:
                if conn is None:
                    conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
                conn.request("GET", "/media/%d" % mid)
                r = conn.getresponse()
                r.read()
                ok, what, tid = r.status == 200, str(r.status), r.getheader("X-Trace-Id") or ""
            except (OSError, http.client.HTTPException) as e:
                what = type(e).__name__ + ": " + str(e)
                conn = None
            with self.lock:
                self.results.append((t, ok, what, tid))
                self.in_flight.pop(me, None)
            time.sleep(max(0.0, self.interval - (time.time() - t)))

    def settle(self, until, limit=15):
        """Waits (at most `limit` s) until every request started before `until` is answered."""
        deadline = time.time() + limit
        while time.time() < deadline:
            with self.lock:
                if all(t >= until for t in self.in_flight.values()):
                    return True
            time.sleep(0.1)
        return False

    def window(self, since, until):
        with self.lock:
            return [r for r in self.results if since <= r[0] < until]


class Lab:
    def __init__(self, args, tmp):
        self.args, self.tmp = args, tmp
        used = set()
        self.ports = {s: free_port(used) for s in SERVICES}
        self.admin = {s: free_port(used) for s in SERVICES}
        self.web, self.grpc, self.http = free_port(used), free_port(used), free_port(used)
        self.churn_port = free_port(used)
        self.procs = {}
        self.logdir = os.path.join(tmp, "logs")
        os.makedirs(self.logdir)
        self.bins = build(tmp)
        self.api = Get("http://127.0.0.1:%d" % self.web)
        self.agent = None

    def config(self):
        lines = ['data_dir = "%s"' % os.path.join(self.tmp, "data"), "",
                 "[web]", 'listen = "127.0.0.1:%d"' % self.web, "",
                 "[otlp]", 'grpc_listen = "127.0.0.1:%d"' % self.grpc,
                 'http_listen = "127.0.0.1:%d"' % self.http, ""]
        for s in SERVICES:
            lines += ["[[logs]]", 'path = "%s/%s.log"' % (self.logdir, s), 'service = "%s"' % s, ""]
        for s in SERVICES:
            lines += ["[[tasks]]", 'name = "%s"' % s,
                      'url = "http://127.0.0.1:%d/debug/pprof/goroutine?debug=1"' % self.admin[s], ""]
        for s in SERVICES:
            lines += ["[[counters.processes]]", 'name = "%s"' % s, "listen_port = %d" % self.ports[s], ""]
        path = os.path.join(self.tmp, "faultline.toml")
        with open(path, "w") as f:
            f.write("\n".join(lines))
        subprocess.run([self.args.faultline, "config", "--check", path], check=True,
                       stdout=subprocess.DEVNULL)
        return path

    def start_agent(self):
        cfg = self.config()
        self.agent_log = open(os.path.join(self.tmp, "agent.log"), "ab")
        self.agent = subprocess.Popen([self.args.faultline, "run", "--config", cfg],
                                      stdout=self.agent_log, stderr=subprocess.STDOUT)
        for _ in range(100):
            if self.api("/api/v1/health").get("status") == "ok":
                return
            time.sleep(0.2)
        raise SystemExit("agent not healthy; see %s/agent.log" % self.tmp)

    def start(self, s):
        argv = [self.bins[s], "-listen", "127.0.0.1:%d" % self.ports[s],
                "-admin", "127.0.0.1:%d" % self.admin[s]]
        if s != "blobstore":
            argv += ["-otlp", "http://127.0.0.1:%d/v1/traces" % self.http]
        if s == "gateway":
            argv += ["-peer", "thumbnailer=127.0.0.1:%d" % self.ports["thumbnailer"],
                     "-peer", "metadata=127.0.0.1:%d" % self.ports["metadata"]]
        if s == "metadata":
            argv += ["-peer", "blobstore=127.0.0.1:%d" % self.ports["blobstore"]]

        def limits():
            if s == "metadata":  # a container's modest fd limit
                resource.setrlimit(resource.RLIMIT_NOFILE, (512, 512))

        out = open(os.path.join(self.logdir, s + ".log"), "ab")
        self.procs[s] = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, preexec_fn=limits)
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", self.ports[s]), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.05)
        raise SystemExit("%s did not start" % s)

    def kill(self, s, sig=signal.SIGKILL):
        p = self.procs.pop(s, None)
        if p and p.poll() is None:
            p.send_signal(sig)
            p.wait(timeout=10)

    def switch(self, s, name, on):
        req = urllib.request.Request("http://127.0.0.1:%d/fault?name=%s&on=%d"
                                     % (self.admin[s], name, 1 if on else 0), method="POST")
        urllib.request.urlopen(req, timeout=5).read()

    def stop_all(self):
        for s in list(self.procs):
            self.kill(s, signal.SIGTERM)
        if self.agent and self.agent.poll() is None:
            self.agent.send_signal(signal.SIGTERM)
            try:
                self.agent.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.agent.kill()


def incidents_since(doc, t0_ms):
    return [i for i in doc.get("incidents", []) if i.get("onset_unix_ms", 0) >= t0_ms - 5000]


def brief_incident(i):
    if not i:
        return None
    c = i.get("culprit") or {}
    return {
        "id": i.get("id"), "title": i.get("title"), "active": i.get("active"),
        "onset_unix_ms": i.get("onset_unix_ms"), "ended_unix_ms": i.get("ended_unix_ms"),
        "culprit": c.get("service"), "role": c.get("role"), "seen_in": c.get("seen_in"),
        "reasoning": c.get("reasoning"),
        "hints": [h.get("rule_id") + ": " + h.get("title", "") for h in i.get("hints", [])],
        "hint_evidence": [h.get("evidence") for h in i.get("hints", [])[:1]],
        "counters": [{"label": k.get("anomaly", {}).get("label"), "relation": k.get("relation_text"),
                      "supporting": k.get("supporting"),
                      "evidence": k.get("anomaly", {}).get("evidence"),
                      "caveat": k.get("anomaly", {}).get("caveat")} for k in i.get("counters", [])[:4]],
        # Failed requests as the incident counts them (one per trace), and the records of its
        # patterns that no trace holds, which it lists apart.
        "failures": i.get("failures"), "untraced_records": i.get("untraced_records"),
        "patterns": [{"text": p.get("text"), "count": p.get("count"), "untraced": p.get("untraced"),
                      "counted_as": p.get("counted_as"), "services": p.get("services"),
                      "culprit": (p.get("culprit") or {}).get("reasoning")} for p in i.get("patterns", [])],
    }


def snapshot(lab, traffic, fault, t0, onset, base_counts, label):
    now = time.time()
    doc = lab.api("/api/v1/incidents")
    incs = doc.get("incidents", [])
    new = incidents_since(doc, int(t0 * 1000))
    clusters = lab.api("/api/v1/clusters?limit=200").get("clusters", [])
    if isinstance(clusters, dict):
        clusters = clusters.get("clusters", [])
    rows = traffic.window(t0, now)
    failed = [r for r in rows if not r[1]]
    emerging = []
    for c in clusters:
        if not c.get("emergence") and c.get("id") in base_counts:
            continue
        if c.get("last_seen_unix_ms", 0) < t0 * 1000:
            continue
        total, untraced = c.get("total_count", 0), c.get("untraced_count", 0)
        b_total, b_untraced = base_counts.get(c.get("id"), (0, 0))
        emerging.append({"id": c.get("id"), "template": c.get("canonical_template"),
                         "count_since_fault": total - b_total,
                         "untraced_since_fault": untraced - b_untraced,
                         "total_count": total, "untraced_count": untraced, "services": c.get("services"),
                         "culprit": (c.get("culprit") or {}).get("headline")})
    trace = None
    if failed:
        tid = next((r[3] for r in failed if r[3]), "")
        if tid:
            tp = lab.api("/api/v1/traces/" + tid)
            cul = tp.get("culprit") or {}
            origin = tp.get("error_origin_span_id")
            origin_svc = next((sp.get("service") for sp in tp.get("spans", [])
                               if sp.get("span_id") == origin), None)
            trace = {"trace_id": tid, "starts_in": cul.get("headline"), "culprit": cul.get("service"),
                     "error_origin_service": origin_svc, "error": tp.get("_error")}
    top = incs[0] if incs else None
    top_new = new[0] if new else None
    detail = lab.api("/api/v1/incidents/" + top["id"]) if top else None
    return {
        "at": label, "secs_after_onset": round(now - onset, 1), "unix": now,
        "load": open("/proc/loadavg").read().strip(),
        "requests": len(rows), "failed_requests": len(failed),
        "failure_kinds": sorted({r[2] for r in failed})[:5],
        "top_incident": brief_incident(detail if detail and "_error" not in detail else top),
        "top_new_incident": brief_incident(top_new),
        "incidents": [(i.get("title"), (i.get("culprit") or {}).get("service"), i.get("active"),
                       i.get("failures"), i.get("untraced_records")) for i in incs[:6]],
        "unjudged": [u.get("label", u) if isinstance(u, dict) else u for u in doc.get("unjudged", [])[:10]],
        "node_signals": [s.get("anomaly", {}).get("label") + " — " + s.get("reason", "")
                         for s in doc.get("node_signals", [])[:5]],
        "emerging_patterns": emerging,
        "trace": trace,
    }


def run_fault(lab, traffic, fault, args):
    svc, sw, expected, counter = FAULTS[fault]
    before = lab.api("/api/v1/incidents")
    clusters = lab.api("/api/v1/clusters?limit=200").get("clusters", [])
    base_counts = {c["id"]: (c.get("total_count", 0), c.get("untraced_count", 0))
                   for c in clusters if isinstance(c, dict)}
    log("fault %s: on (expected culprit %s; counter %s)" % (fault, expected, counter))
    t0 = time.time()
    if fault == "refused":
        lab.kill("blobstore")
    else:
        lab.switch(svc, sw, True)
    onset = t0 if fault in COUNTER_FAULTS else None
    first_incident = None
    snaps = []
    t0_ms = int(t0 * 1000)
    pre_ids = {i.get("id") for i in before.get("incidents", [])}
    deadline = t0 + args.fault_secs + 60
    while time.time() < deadline:
        now = time.time()
        if onset is None:
            f = [r for r in traffic.window(t0, now) if not r[1]]
            if f:
                onset = min(r[0] for r in f)
        if onset is not None:
            doc = lab.api("/api/v1/incidents", timeout=3)
            new = [i for i in doc.get("incidents", []) if i.get("id") not in pre_ids]
            if first_incident is None and new:
                first_incident = {"secs_after_onset": round(now - onset, 1), "title": new[0].get("title"),
                                  "culprit": (new[0].get("culprit") or {}).get("service")}
                log("  first new incident after %.1f s: %s" % (now - onset, first_incident))
            for mark in (10, 30):
                if now - onset >= mark and not any(s["at"] == "+%ds" % mark for s in snaps):
                    snaps.append(snapshot(lab, traffic, fault, t0, onset, base_counts, "+%ds" % mark))
                    top = snaps[-1]["top_incident"] or {}
                    log("  +%ds: top incident %r culprit %s hints %s; failed %d" % (
                        mark, top.get("title"), top.get("culprit"), top.get("hints", [])[:2],
                        snaps[-1]["failed_requests"]))
            if len(snaps) == 2 and now - t0 >= args.fault_secs:
                break
        if fault == "refused" and now - t0 >= 35 and "blobstore" not in lab.procs:
            lab.start("blobstore")
            log("  blobstore restarted")
        time.sleep(1)
    if args.keep:
        # The counters as the agent held them before the heal: a recorded fixture's source.
        with open(os.path.join(lab.tmp, "counters-%s.json" % fault), "w") as fh:
            json.dump(lab.api("/api/v1/counters", timeout=10), fh)
    # Heal.
    if fault == "refused":
        if "blobstore" not in lab.procs:
            lab.start("blobstore")
    elif fault in ("close-wait", "goroutines"):
        # What leaked stays leaked until the process restarts (and a process out of fds cannot
        # accept the switch's request any more).
        lab.kill(svc, signal.SIGTERM)
        lab.start(svc)
    else:
        lab.switch(svc, sw, False)
    log("fault %s: off" % fault)
    end = time.time()
    # The requests of the fault, the last of them answered after the heal (see Traffic).
    at_heal = traffic.window(t0, end)
    settled = traffic.settle(end)
    rows = traffic.window(t0, end)
    ended = watch_end(lab, snaps, end, args.watch_end)
    if args.keep:
        # And after the heal's watch: how the fault's counters drained (recovery's input).
        with open(os.path.join(lab.tmp, "counters-%s-healed.json" % fault), "w") as fh:
            json.dump(lab.api("/api/v1/counters", timeout=10), fh)
    # Counts once the last lines and spans are in: each pattern's growth over the fault
    # against the requests that failed in it.
    time.sleep(5)
    grown = []
    for c in lab.api("/api/v1/clusters?limit=200").get("clusters", []):
        b_total, b_untraced = base_counts.get(c.get("id"), (0, 0))
        d = c.get("total_count", 0) - b_total
        if d > 0:
            # Of its growth, the records without a trace id: the rest is what should equal the
            # failed requests when the services carry trace ids.
            u = c.get("untraced_count", 0) - b_untraced
            grown.append({"template": c.get("canonical_template"), "count_during_fault": d,
                          "untraced_during_fault": u, "traced_during_fault": d - u,
                          "services": c.get("services")})
    grown.sort(key=lambda g: -g["count_during_fault"])
    # The incidents raised since the injection, as they count the fault once it is over.
    counted = [{"id": i.get("id"), "title": i.get("title"),
                "culprit": (i.get("culprit") or {}).get("service"), "active": i.get("active"),
                "failures": i.get("failures"), "untraced_records": i.get("untraced_records")}
               for i in lab.api("/api/v1/incidents").get("incidents", []) if i.get("id") not in pre_ids]
    return {"fault": fault, "expected_culprit": expected, "expected_counter": counter,
            "load": open("/proc/loadavg").read().strip(),
            "injected_unix": t0, "onset_unix": onset, "healed_unix": end,
            "requests": len(rows), "failed_requests": sum(1 for r in rows if not r[1]),
            # What this script counted before it waited for the requests in flight at the heal.
            "failed_requests_answered_by_heal": sum(1 for r in at_heal if not r[1]),
            "in_flight_settled": settled,
            "first_new_incident": first_incident, "snapshots": snaps, "patterns_grown": grown[:8],
            "new_incidents_counted": counted, "after_heal": ended}


def moving_away(incident):
    """The labels of an incident's own counters (not supporting ones) still moving away."""
    return [k.get("anomaly", {}).get("label") for k in incident.get("counters", [])
            if k.get("moving_away") and not k.get("supporting")]


def watch_end(lab, snaps, healed, limit):
    """Polls the top incident at +30 s for up to `limit` seconds after the heal: when it said
    "recovering" (the fault stopped) and when it turned inactive (seconds after the heal, its
    `ended_unix_ms`), and what it still shows then; when it is still active at the end, which of
    its own counters were still moving away (what kept it active)."""
    top = next((s["top_incident"] for s in snaps[::-1] if s.get("top_incident")), None)
    if not limit or not top:
        return None
    recovering, state = None, None
    while time.time() - healed < limit:
        doc = lab.api("/api/v1/incidents/" + top["id"], timeout=3)
        if doc.get("state") == "recovering" and recovering is None:
            recovering = round(time.time() - healed, 1)
        if doc.get("state") != state:
            state = doc.get("state")
            log("  its incident is %s %.1f s after the heal (own counters moving away: %s)" % (
                state, time.time() - healed, ", ".join(moving_away(doc)) or "none"))
        if doc.get("active") is False:
            log("  its incident ended %.1f s after the heal: %d failures, %d patterns" % (
                time.time() - healed, doc.get("failures") or 0, len(doc.get("patterns", []))))
            return {"recovering_after_heal_secs": recovering,
                    "ended_after_heal_secs": round(time.time() - healed, 1), "incident": brief_incident(doc)}
        time.sleep(2)
    doc = lab.api("/api/v1/incidents/" + top["id"])
    moving = moving_away(doc)
    log("  its incident is still %s %d s after the heal (own counters still moving away: %s)" % (
        doc.get("state"), limit, ", ".join(moving) or "none"))
    return {"recovering_after_heal_secs": recovering, "still_active_after_secs": limit,
            "state": doc.get("state"), "moving_away": moving, "incident": brief_incident(doc)}


def session(args, faults, result):
    """Agent first, services after `agent_lead`, a baseline, then `faults` one at a time (or the
    quiet run); appends to `result` and writes it to args.out after each fault."""
    tmp = tempfile.mkdtemp(prefix="unseen-lab-")
    lab = Lab(args, tmp)
    log("lab in %s: services %s, admin %s, agent web %d otlp-http %d, churn %d" % (
        tmp, lab.ports, lab.admin, lab.web, lab.http, lab.churn_port))
    churn = Churn(lab.churn_port)
    result["sessions"].append({"tmp": tmp, "ports": lab.ports, "admin": lab.admin, "web": lab.web,
                               "load_at_start": open("/proc/loadavg").read().strip(), "faults": faults})
    traffic = None
    try:
        lab.start_agent()
        log("agent up on http://127.0.0.1:%d; services in %d s" % (lab.web, args.agent_lead))
        time.sleep(args.agent_lead)
        for s in reversed(SERVICES):
            lab.start(s)
        traffic = Traffic(lab.ports["gateway"], args.rate)
        log("services up, traffic at %.0f/s" % args.rate)
        if args.quiet:
            t0 = time.time()
            half = False
            seen = {}
            while time.time() - t0 < args.quiet:
                doc = lab.api("/api/v1/incidents", timeout=3)
                for i in doc.get("incidents", []):
                    if i.get("id") not in seen:
                        seen[i["id"]] = brief_incident(i)
                        log("  incident at +%.0f s: %s" % (time.time() - t0, i.get("title")))
                if not half and time.time() - t0 > args.quiet / 2:
                    half = True
                    log("  restarting blobstore (SIGTERM, start): a service restart as noise")
                    lab.kill("blobstore", signal.SIGTERM)
                    lab.start("blobstore")
                time.sleep(2)
            rows = traffic.window(t0, time.time())
            doc = lab.api("/api/v1/incidents")
            result["quiet"] = {"secs": args.quiet, "requests": len(rows),
                               "failed_requests": sum(1 for r in rows if not r[1]),
                               "failure_kinds": sorted({r[2] for r in rows if not r[1]})[:5],
                               "incidents_seen": list(seen.values()),
                               "incidents_at_end": [brief_incident(i) for i in doc.get("incidents", [])],
                               "node_signals": [s.get("anomaly", {}).get("label") + " — " + s.get("reason", "")
                                                for s in doc.get("node_signals", [])],
                               "unjudged": len(doc.get("unjudged", []))}
            log("quiet run: %d incidents seen, %d failed of %d requests" % (
                len(seen), result["quiet"]["failed_requests"], len(rows)))
        else:
            time.sleep(args.baseline)
            for i, f in enumerate(faults):
                if i:
                    time.sleep(args.gap)
                result["faults"].append(run_fault(lab, traffic, f, args))
                with open(args.out, "w") as fh:
                    json.dump(result, fh, indent=1)
        if args.hold:
            log("holding %d s: dashboard http://127.0.0.1:%d/" % (args.hold, lab.web))
            time.sleep(args.hold)
    finally:
        if traffic:
            traffic.stop.set()
        churn.stop.set()
        lab.stop_all()
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--faultline", required=True, help="the faultline binary (copy it first)")
    ap.add_argument("--faults", default=",".join(FAULTS), help="comma-separated, in order")
    ap.add_argument("--quiet", type=int, default=0, help="no fault: traffic for SECS, then report")
    ap.add_argument("--agent-lead", type=int, default=150, help="agent start before the services (s)")
    ap.add_argument("--baseline", type=int, default=120, help="healthy traffic before the first fault (s)")
    ap.add_argument("--fault-secs", type=int, default=40, help="how long a fault stays on (s)")
    ap.add_argument("--gap", type=int, default=150, help="healthy traffic between faults (s)")
    ap.add_argument("--rate", type=float, default=25, help="requests a second to gateway")
    ap.add_argument("--out", default="unseen-results.json")
    ap.add_argument("--watch-end", type=int, default=0,
                    help="after each heal, poll up to SECS for the fault's incident to end (before the gap)")
    ap.add_argument("--hold", type=int, default=0, help="keep everything running SECS at the end")
    ap.add_argument("--keep", action="store_true",
                    help="keep the temporary directories, with the counters before each heal and after its watch")
    ap.add_argument("--fresh", action="store_true",
                    help="a new agent, chain and baseline for each fault (else one agent for all)")
    args = ap.parse_args()
    faults = [f for f in args.faults.split(",") if f] if not args.quiet else []
    for f in faults:
        if f not in FAULTS:
            raise SystemExit("unknown fault %r (known: %s)" % (f, ", ".join(FAULTS)))
    result = {"load_at_start": open("/proc/loadavg").read().strip(), "faults": [], "sessions": []}
    if args.fresh and not args.quiet:
        # One agent, one chain and one baseline per fault: no earlier incident is around.
        for f in faults:
            session(args, [f], result)
    else:
        session(args, faults, result)
    result["load_at_end"] = open("/proc/loadavg").read().strip()
    with open(args.out, "w") as fh:
        json.dump(result, fh, indent=1)
    print(table(result))


def table(result):
    """The results as a Markdown table: one row per fault (or the quiet run's summary)."""
    if "quiet" in result:
        q = result["quiet"]
        return "quiet run %d s: %d of %d requests failed; incidents: %s" % (
            q["secs"], q["failed_requests"], q["requests"],
            "; ".join("%s (culprit %s)" % (i["title"], i["culprit"]) for i in q["incidents_seen"]) or "none")
    out = ["| fault | expected | first new incident | top at +10 s | top at +30 s | hints (+30 s) "
           "| top counter (+30 s) | patterns vs failed (traced + untraced) | incidents' failures "
           "(+ untraced records) |", "|---|---|---|---|---|---|---|---|---|"]
    for f in result["faults"]:
        first = f["first_new_incident"]
        snaps = {s["at"]: s for s in f["snapshots"]}

        def top(at):
            t = (snaps.get(at) or {}).get("top_incident") or {}
            return "%s: %s" % (t.get("culprit"), (t.get("title") or "none")[:70])
        t30 = (snaps.get("+30s") or {}).get("top_incident") or {}
        counters = t30.get("counters") or [{}]
        grown = ", ".join("%s ×%d (%d + %d)" % (g["template"][:50], g["count_during_fault"],
                                                g.get("traced_during_fault", g["count_during_fault"]),
                                                g.get("untraced_during_fault", 0))
                          for g in f["patterns_grown"][:3])
        counted = "; ".join("%s %s (+%s)" % (i["culprit"], i["failures"], i["untraced_records"])
                            for i in f.get("new_incidents_counted", [])[:3])
        out.append("| %s | %s | %s | %s | %s | %s | %s | %s vs %d failed | %s |" % (
            f["fault"], f["expected_culprit"],
            "%s after %.0f s" % (first["culprit"], first["secs_after_onset"]) if first else "none",
            top("+10s"), top("+30s"), ", ".join(h.split(":")[0] for h in t30.get("hints", [])),
            counters[0].get("label"), grown or "none", f["failed_requests"], counted or "none"))
    return "\n".join(out)


if __name__ == "__main__":
    main()
