#!/usr/bin/env python3
"""Checks every deployment file of deploy/ with a real validator, and the agent's /metrics with
real Prometheus parsers. Run by the test command (scripts/test.sh) after the build:

    python3 deploy/check.py --binary target/debug/faultline

- systemd unit: `systemd-analyze verify` (where systemd-analyze exists; said when it does not);
- Kubernetes DaemonSet: `kubernetes-validate --strict` against the Kubernetes schema;
- OpenTelemetry Collector config: structurally (no Collector binary is installable here): every
  component it names is a type of the contrib distribution (otel-collector/contrib-components.txt)
  and every pipeline's receivers, processors and exporters are defined;
- Prometheus: `promtool check config` on the scrape config, `promtool check rules` on the
  recording rules and on every Grafana panel expression written as a recording rule;
- /metrics of the real binary: parsed by `promtool check metrics` and by the Python
  prometheus_client parser, and every metric the rules and the dashboard query exists in it.

Exits non-zero with one line per failure.
"""

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request

import yaml
from prometheus_client.parser import text_string_to_metric_families

HERE = os.path.dirname(os.path.abspath(__file__))
failures = []


def fail(what, why):
    failures.append(f"{what}: {why}")
    print(f"FAIL {what}: {why}")


def ok(what):
    print(f"ok   {what}")


def run(cmd, **kw):
    return subprocess.run(cmd, capture_output=True, text=True, **kw)


def check_systemd(binary):
    unit = os.path.join(HERE, "systemd", "faultline.service")
    tool = shutil.which("systemd-analyze")
    if tool is None:
        print("skip systemd unit: systemd-analyze is not installed on this machine")
        return
    text = open(unit).read()
    if "/usr/local/bin/faultline" not in text:
        fail("systemd unit", "ExecStart no longer names /usr/local/bin/faultline")
        return
    with tempfile.TemporaryDirectory() as tmp:
        # verify insists that ExecStart's binary exists: point it at the one just built.
        copy = os.path.join(tmp, "faultline.service")
        open(copy, "w").write(text.replace("/usr/local/bin/faultline", os.path.abspath(binary)))
        out = run([tool, "verify", "--man=no", copy])
        if out.returncode != 0 or out.stderr.strip():
            fail("systemd unit", (out.stderr or out.stdout).strip())
        else:
            ok("systemd unit (systemd-analyze verify)")


def check_kubernetes():
    manifest = os.path.join(HERE, "kubernetes", "faultline.yaml")
    out = run(["kubernetes-validate", "--strict", manifest])
    if out.returncode != 0:
        fail("kubernetes manifest", (out.stdout + out.stderr).strip())
        return
    docs = [d for d in yaml.safe_load_all(open(manifest)) if d]
    ds = next(d for d in docs if d["kind"] == "DaemonSet")
    spec = ds["spec"]["template"]["spec"]
    container = spec["containers"][0]
    mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
    if not mounts.get("/var/log", {}).get("readOnly"):
        fail("kubernetes manifest", "host logs must be mounted read-only")
    if mounts.get("/var/log", {}).get("mountPropagation") != "HostToContainer":
        fail("kubernetes manifest", "host logs must receive the host's later mounts "
             "(mountPropagation: HostToContainer)")
    if "limits" not in container.get("resources", {}):
        fail("kubernetes manifest", "the agent container has no resource limits")
    token = [e for e in container.get("env", []) if e["name"] == "FAULTLINE_TOKEN"]
    if not token or "secretKeyRef" not in token[0].get("valueFrom", {}):
        fail("kubernetes manifest", "the web token must come from a Secret")
    ok("kubernetes manifest (kubernetes-validate --strict)")


def check_collector():
    config = yaml.safe_load(open(os.path.join(HERE, "otel-collector", "config.yaml")))
    known = set()
    for line in open(os.path.join(HERE, "otel-collector", "contrib-components.txt")):
        line = line.strip()
        if line and not line.startswith("#"):
            kind, name = line.split()
            known.add((kind, name))
    before = len(failures)
    sections = {"receivers": "receiver", "processors": "processor", "exporters": "exporter",
                "extensions": "extension"}
    for section, kind in sections.items():
        for name in config.get(section) or {}:
            component_type = name.split("/", 1)[0]
            if (kind, component_type) not in known:
                fail("collector config", f"{kind} {component_type!r} is not a contrib component")
    service = config.get("service") or {}
    for ext in service.get("extensions", []):
        if ext not in (config.get("extensions") or {}):
            fail("collector config", f"extension {ext!r} is used but not defined")
    pipelines = service.get("pipelines") or {}
    if not pipelines:
        fail("collector config", "no pipelines")
    for pname, pipeline in pipelines.items():
        if pname.split("/", 1)[0] not in ("traces", "logs", "metrics"):
            fail("collector config", f"pipeline {pname!r} is not traces, logs or metrics")
        for section in ("receivers", "processors", "exporters"):
            for name in pipeline.get(section, []):
                if name not in (config.get(section) or {}):
                    fail("collector config", f"pipeline {pname}: {section[:-1]} {name!r} is not defined")
        if not pipeline.get("receivers") or not pipeline.get("exporters"):
            fail("collector config", f"pipeline {pname} needs receivers and exporters")
    if len(failures) == before:
        ok("collector config (structural: contrib components, pipelines defined)")


def grafana_expressions():
    dash = json.load(open(os.path.join(HERE, "grafana", "faultline.json")))
    exprs = []
    for panel in dash["panels"]:
        for target in panel.get("targets", []):
            exprs.append((panel["title"], target["expr"]))
    return exprs


def check_prometheus():
    promtool = shutil.which("promtool")
    if promtool is None:
        fail("prometheus", "promtool is not installed (Debian package prometheus)")
        return
    with tempfile.TemporaryDirectory() as tmp:
        # The config names files of a Prometheus host; check it against stand-ins of them.
        text = open(os.path.join(HERE, "prometheus", "prometheus.yml")).read()
        text = text.replace("/etc/prometheus/", tmp + "/")
        open(os.path.join(tmp, "faultline.token"), "w").write("token\n")
        os.makedirs(os.path.join(tmp, "faultline-targets"))
        shutil.copy(os.path.join(HERE, "prometheus", "faultline.rules.yml"), tmp)
        config = os.path.join(tmp, "prometheus.yml")
        open(config, "w").write(text)
        out = run([promtool, "check", "config", config])
        if out.returncode != 0:
            fail("prometheus scrape config", (out.stdout + out.stderr).strip())
        else:
            ok("prometheus scrape config and rules (promtool check config)")
        # Grafana's expressions, each as a recording rule, so promtool parses every one.
        rules = {"groups": [{"name": "grafana-panels", "rules": [
            {"record": f"faultline:panel_{i}", "expr": e}
            for i, (_, e) in enumerate(grafana_expressions())]}]}
        path = os.path.join(tmp, "grafana.rules.yml")
        yaml.safe_dump(rules, open(path, "w"))
        out = run([promtool, "check", "rules", path])
        if out.returncode != 0:
            fail("grafana dashboard queries", (out.stdout + out.stderr).strip())
        else:
            ok(f"grafana dashboard queries ({len(rules['groups'][0]['rules'])}, promtool check rules)")


def announced_dashboard(text):
    """The address the agent's start line announces (`dashboard=http://ADDR/`), or None."""
    match = re.search(r'dashboard[=":\s]+http://([^/\s"]+)/', text)
    return match.group(1) if match else None


def scrape_metrics(binary):
    """Starts the real agent on loopback, feeds it an error line, returns its /metrics text.

    The agent binds port 0 itself and announces the address: a port picked here and bound
    later could be taken in between by another process."""
    with tempfile.TemporaryDirectory() as tmp:
        log = os.path.join(tmp, "svc.log")
        open(log, "w").close()
        stderr_path = os.path.join(tmp, "agent.stderr")
        cmd = [binary, "run", "--data-dir", os.path.join(tmp, "data"),
               "--listen", "127.0.0.1:0", "--otlp-grpc", "127.0.0.1:0",
               "--otlp-http", "127.0.0.1:0", "--log", f"{log}=checkout"]
        with open(stderr_path, "w") as stderr:
            agent = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=stderr)
        try:
            deadline = time.time() + 30
            address = None
            while address is None:
                address = announced_dashboard(open(stderr_path).read())
                if address is None:
                    if agent.poll() is not None or time.time() > deadline:
                        raise RuntimeError("the agent announced no dashboard: "
                                           + open(stderr_path).read()[-2000:])
                    time.sleep(0.2)
            base = f"http://{address}"
            while time.time() < deadline:
                try:
                    urllib.request.urlopen(base + "/api/v1/health", timeout=2).read()
                    break
                except OSError:
                    time.sleep(0.2)
            with open(log, "a") as f:
                f.write('{"level":"error","msg":"call failed","error":"read tcp '
                        '127.0.0.1:5000->127.0.0.1:8080: read: connection reset by peer"}\n')
            while time.time() < deadline:
                text = urllib.request.urlopen(base + "/metrics", timeout=5).read().decode()
                # A pattern of its own: cluster_id="other" is there from the start.
                pattern = re.search(r'faultline_cluster_events_total\{cluster_id="(?!other")', text)
                if pattern and "faultline_tcp_sockets{" in text:
                    return text
                time.sleep(0.3)
            raise RuntimeError("the agent's /metrics never showed a pattern and the socket counts")
        finally:
            agent.send_signal(signal.SIGTERM)
            try:
                agent.wait(timeout=10)
            except subprocess.TimeoutExpired:
                agent.kill()
                agent.wait()


def check_metrics(binary):
    try:
        text = scrape_metrics(binary)
    except Exception as err:  # noqa: BLE001 - any failure to get the page is the failure
        fail("/metrics", str(err))
        return
    promtool = shutil.which("promtool")
    if promtool:
        out = run([promtool, "check", "metrics"], input=text)
        # promtool lints too (e.g. counters without _total); only parse errors fail here.
        if out.returncode != 0 and "error while linting" in (out.stdout + out.stderr):
            fail("/metrics (promtool check metrics)", (out.stdout + out.stderr).strip()[:2000])
        else:
            ok("/metrics parses (promtool check metrics)")
    try:
        families = {f.name for f in text_string_to_metric_families(text)}
        names = set()
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                names.add(sample.name)
        ok(f"/metrics parses (prometheus_client: {len(families)} families)")
    except Exception as err:  # noqa: BLE001 - the parser's own error is the message
        fail("/metrics (prometheus_client parser)", str(err))
        return
    # Pattern series are bounded: the sum beyond the bound is always exported, and HELP says so.
    help_text = next((f.documentation for f in text_string_to_metric_families(text)
                      if f.name == "faultline_cluster_events"), "")
    if 'faultline_cluster_events_total{cluster_id="other"}' not in text or '"other"' not in help_text:
        fail("/metrics", 'no bounded pattern series: cluster_id="other" or its HELP is missing')
    else:
        ok('/metrics bounds pattern series (cluster_id="other", said in HELP)')
    used = set()
    for _, expr in grafana_expressions():
        used.update(re.findall(r"\bfaultline_[a-z_]+", expr))
    for rule in yaml.safe_load(open(os.path.join(HERE, "prometheus", "faultline.rules.yml")))["groups"][0]["rules"]:
        used.update(re.findall(r"\bfaultline_[a-z_]+", rule["expr"]))
    missing = sorted(m for m in used if m not in names and m not in families)
    if missing:
        fail("dashboard and rules", f"query metrics the agent does not export: {missing}")
    else:
        ok(f"dashboard and rules query only exported metrics ({len(used)})")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--binary", required=True, help="the faultline binary to check /metrics of")
    args = parser.parse_args()
    if not os.access(args.binary, os.X_OK):
        sys.exit(f"deploy/check.py: {args.binary} is not an executable faultline binary")
    check_systemd(args.binary)
    check_kubernetes()
    check_collector()
    check_prometheus()
    check_metrics(args.binary)
    if failures:
        print(f"{len(failures)} deployment check(s) failed")
        sys.exit(1)
    print("every deployment check passed")


if __name__ == "__main__":
    main()
