#!/usr/bin/env bash
# The deployment files agree with the worker and with each other: the
# Kubernetes manifests parse (python3-yaml) and their port, probe paths,
# grace and probe timings fit the worker's defaults, read from
# include/rbee/worker.h (RBEE_WORKER_OPTIONS_INIT) and the built worker's
# --help; systemd's TimeoutStopSec and the env file's drain, and the
# Containerfile's port, user and drain, too. No cluster is needed (none
# is available here). SKIP (77) without python3 and its yaml module.
here=$(cd "$(dirname "$0")/.." && pwd)
py=$(command -v python3 || true)
if [ -z "$py" ] || ! "$py" -c 'import yaml' 2>/dev/null; then
  echo "test_deploy_manifests: SKIP: needs python3 with yaml (apt-get install python3-yaml)"
  exit 77
fi
exec "$py" - "$here" "${RBEE_TEST_test_worker:-}" <<'PY'
import os, re, subprocess, sys

import yaml

here, worker = sys.argv[1], sys.argv[2]
failures = []


def check(cond, what):
    print(("ok: " if cond else "FAIL: ") + what)
    if not cond:
        failures.append(what)


# ---- the worker's defaults, from the public header ------------------------
hdr = open(os.path.join(here, "include/rbee/worker.h")).read()
body = re.search(r"typedef struct rbee_worker_options \{(.*?)\} rbee_worker_options;", hdr, re.S).group(1)
body = re.sub(r"/\*.*?\*/", "", body, flags=re.S)
fields = re.findall(r"([A-Za-z_][A-Za-z0-9_]*)\s*;", body)
init = re.search(r"#define RBEE_WORKER_OPTIONS_INIT\s*\\?\s*\{(.*?)\}", hdr, re.S).group(1)
init = init.replace("\\\n", " ")
values = [v.strip() for v in init.split(",")]
check(len(fields) == len(values), "worker.h: %d option fields, %d INIT values" % (len(fields), len(values)))
d = dict(zip(fields, values))
port = int(d["port"])
drain_s = int(d["drain_timeout_ms"]) / 1000.0
print("worker defaults: port %d, drain %.0f s" % (port, drain_s))
if worker and os.access(worker, os.X_OK):
    helptext = subprocess.run([worker, "--help"], capture_output=True, text=True).stdout
    check("(default %d)" % port in helptext and "(default %g)" % drain_s in helptext,
          "--help says the same defaults (port %d, drain %g s)" % (port, drain_s))
# The drain's last moments (worker.c: 2 s for cancelled job threads, 2 s for
# [CANCELLED], 2 s for the stopped heartbeat) before the exit.
MOMENTS = 6

# ---- Kubernetes ------------------------------------------------------------
kdir = os.path.join(here, "deploy/kubernetes")
docs = []
for name in sorted(os.listdir(kdir)):
    if name.endswith(".yaml"):
        with open(os.path.join(kdir, name)) as f:
            docs += [(name, x) for x in yaml.safe_load_all(f) if x]
kinds = {x["kind"]: x for _, x in docs}
check({"Deployment", "Service", "Secret"} <= set(kinds), "manifests parse: " + ", ".join(sorted(kinds)))
dep, svc, sec = kinds["Deployment"], kinds["Service"], kinds["Secret"]
pod = dep["spec"]["template"]["spec"]
c = pod["containers"][0]
env = {e["name"]: e for e in c.get("env", [])}
ports = {p.get("name"): p["containerPort"] for p in c["ports"]}
kport = int(env["RBEE_PORT"]["value"]) if "RBEE_PORT" in env else port
kdrain = float(env["RBEE_DRAIN_TIMEOUT"]["value"]) if "RBEE_DRAIN_TIMEOUT" in env else drain_s
check(kport == port, "RBEE_PORT %d is the worker's default %d" % (kport, port))
check(kdrain == drain_s, "RBEE_DRAIN_TIMEOUT %g s is the worker's default %g s" % (kdrain, drain_s))
check(list(ports.values()) == [kport], "containerPort %s is RBEE_PORT %d" % (list(ports.values()), kport))


def probe_port(p):
    v = p["httpGet"]["port"]
    return ports.get(v) if isinstance(v, str) else v


probes = {k: c.get(k) for k in ("startupProbe", "livenessProbe", "readinessProbe")}
check(all(probes.values()), "startup, liveness and readiness probes are there")
for k, path in (("startupProbe", "/health"), ("livenessProbe", "/health"), ("readinessProbe", "/ready")):
    p = probes[k]
    check(p["httpGet"]["path"] == path and probe_port(p) == kport,
          "%s: GET %s on port %s" % (k, p["httpGet"]["path"], probe_port(p)))
st, lv, rd = probes["startupProbe"], probes["livenessProbe"], probes["readinessProbe"]
start_budget = st["periodSeconds"] * st["failureThreshold"]
check(start_budget >= 120, "startup probe waits %d s for the port (rbee-hive waits 120 s)" % start_budget)
live_budget = lv["periodSeconds"] * lv["failureThreshold"]
check(live_budget >= 30 and lv["timeoutSeconds"] >= 2,
      "liveness tolerates %d s of failures, %d s timeout (a load never fails /health)"
      % (live_budget, lv["timeoutSeconds"]))
check(rd["periodSeconds"] <= 10 and rd["failureThreshold"] == 1,
      "readiness every %d s, out at the first 503 (drain)" % rd["periodSeconds"])
grace = pod["terminationGracePeriodSeconds"]
check(grace > kdrain + MOMENTS,
      "terminationGracePeriodSeconds %d > drain %g s + %d s of last moments" % (grace, kdrain, MOMENTS))
check("preStop" not in c.get("lifecycle", {}), "no preStop hook (the worker keeps listening while it drains)")
check("preStop" in open(os.path.join(kdir, "worker.yaml")).read(), "the manifest says why there is no preStop")
check(c["resources"]["limits"].get("nvidia.com/gpu") == 1, "one GPU in the limits")
tok = env.get("RBEE_API_TOKEN", {}).get("valueFrom", {}).get("secretKeyRef", {})
check(tok.get("name") == sec["metadata"]["name"] and tok.get("key") in sec.get("stringData", {}),
      "RBEE_API_TOKEN comes from Secret %s key %s" % (tok.get("name"), tok.get("key")))
check(env.get("RBEE_BIND", {}).get("value") not in (None, "127.0.0.1") and tok,
      "binds beyond loopback, so the token is required and given")
check(pod.get("enableServiceLinks") is False, "enableServiceLinks: false (no RBEE_PORT-like variables)")
check(pod["securityContext"].get("runAsNonRoot") is True, "runAsNonRoot")
sp = svc["spec"]["ports"][0]
tp = sp["targetPort"]
check((ports.get(tp) if isinstance(tp, str) else tp) == kport, "Service targetPort %s is the container port" % tp)
check(svc["spec"]["selector"].items() <= dep["spec"]["template"]["metadata"]["labels"].items(),
      "Service selects the Deployment's pods")

# ---- the Containerfile -----------------------------------------------------
cf = open(os.path.join(here, "deploy/container/Containerfile")).read()
uid = re.search(r"^USER (\d+)", cf, re.M)
check(uid and int(uid.group(1)) == pod["securityContext"]["runAsUser"] and int(uid.group(1)) != 0,
      "Containerfile USER %s is the pod's runAsUser, not root" % (uid and uid.group(1)))
cport = re.search(r"RBEE_PORT=(\d+)", cf)
check(cport and int(cport.group(1)) == kport and re.search(r"^EXPOSE %d" % kport, cf, re.M),
      "Containerfile RBEE_PORT and EXPOSE are %d" % kport)
cdrain = re.search(r"RBEE_DRAIN_TIMEOUT=(\d+)", cf)
check(cdrain and float(cdrain.group(1)) == kdrain, "Containerfile drain %s s" % (cdrain and cdrain.group(1)))
check(re.search(r'^ENTRYPOINT \["', cf, re.M) and "HEALTHCHECK" in cf and "/health" in cf,
      "exec-form ENTRYPOINT (the worker is PID 1) and a HEALTHCHECK on /health")

# ---- systemd ---------------------------------------------------------------
sdir = os.path.join(here, "deploy/systemd")
envf = dict(re.findall(r"^([A-Z_]+)=(.*)$", open(os.path.join(sdir, "worker.env")).read(), re.M))
sdrain = float(envf.get("RBEE_DRAIN_TIMEOUT", drain_s))
for unit in ("rbee-worker.service", "rbee-worker@.service"):
    u = dict(re.findall(r"^([A-Za-z]+)=(.*)$", open(os.path.join(sdir, unit)).read(), re.M))
    stop = float(u["TimeoutStopSec"])
    check(stop > sdrain + MOMENTS, "%s: TimeoutStopSec %g > drain %g s + %d s" % (unit, stop, sdrain, MOMENTS))
    check(u.get("Type") == "notify" and u.get("KillMode") == "mixed" and "WatchdogSec" in u,
          "%s: Type=notify, KillMode=mixed, WatchdogSec" % unit)
    check("75" in u.get("RestartForceExitStatus", "") and "75" in u.get("SuccessExitStatus", ""),
          "%s: exit 75 is a success that restarts" % unit)
check(int(envf.get("RBEE_PORT", port)) == port, "worker.env RBEE_PORT is the default %d" % port)

if failures:
    print("%d check(s) failed" % len(failures))
    sys.exit(1)
PY
