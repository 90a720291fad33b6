#!/usr/bin/env python3
"""Tables and checks for the clinical-classes scenario (scripts/demo/clinical.sh), Python
standard library only.

  clinical_report.py table RESULTS.jsonl     the markdown table (median over rounds per tunnel
                                             and traffic; losses summed) and the issue's targets
                                             evaluated as text
  clinical_report.py brief RESULTS.jsonl [VARIANT]
                                             demo.sh's summary lines: the imaging-load runs
  clinical_report.py delivered RESULTS.jsonl exit 1 if a probe delivered nothing in a run
  clinical_report.py classes STATUS           a status's per-class counters, one line a class
  clinical_report.py check STATUS_OFF STATUS_ON RESULTS.jsonl
                                             demo-check's checks, no timing: one "ok ..." or
                                             "FAIL ..." line each; exit 1 if any failed
                                             (STATUS_ON "-": classes on was not run)

RESULTS.jsonl holds clinical.sh's lines: {"variant", "phase", "round", tm_*, video_*, imaging_*}.
STATUS_* are `qgw status --json` of site A with classes off and on.

The targets (classes on, under imaging load): telemonitoring p99 <= 2 x its idle p99 and <= 1/10
of the classes-off figure; video jitter p99 <= 5 ms; imaging >= 90 % of the remaining capacity,
where remaining = imaging alone (classes off, no other flow) - the video rate - the
telemonitoring rate, all counted as application bytes (DICOM files, video datagrams, MQTT
packets).
"""

import json
import statistics
import sys

VARIANTS = {
    "qgw-on": "qgw, classes on",
    "qgw-off": "qgw, classes off",
    "kernel": "qgw + kernel HTB on TUN (classes off)",
    "wggo": "wireguard-go",
    "underlay": "no tunnel (the rig's floor)",
}
PHASES = {"idle": "idle", "load": "imaging load", "imaging": "imaging alone"}
CLASSES = ("telemonitoring", "telemedicine", "imaging", "default")


def load(path):
    rows = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.startswith("{"):
                rows.append(json.loads(line))
    return rows


def median(rows, key):
    vals = [r[key] for r in rows if r.get(key) is not None]
    return statistics.median(vals) if vals else None


def total(rows, key):
    vals = [r[key] for r in rows if r.get(key) is not None]
    return sum(vals) if vals else None


def fmt(x, digits=2):
    return "–" if x is None else "%.*f" % (digits, x)


def grouped(rows):
    groups = {}
    for r in rows:
        groups.setdefault((r["variant"], r["phase"]), []).append(r)
    return groups


def table(path):
    rows = load(path)
    groups = grouped(rows)
    rounds = max((r["round"] for r in rows), default=0)
    print("| tunnel | traffic | telemonitoring delay p50 / p99 / max (ms) | lost | video delay p99 (ms) "
          "| video jitter p99 (ms) | RFC 3550 jitter (ms) | video lost | imaging (Mbit/s) |")
    print("|---|---|---|---|---|---|---|---|---|")
    order = [(v, p) for v in VARIANTS for p in PHASES] + sorted(k for k in groups if k[0] not in VARIANTS)
    for key in order:
        g = groups.get(key)
        if not g:
            continue
        tm = "–"
        if median(g, "tm_p99_ms") is not None:
            tm = "%s / %s / %s" % (fmt(median(g, "tm_p50_ms")), fmt(median(g, "tm_p99_ms")), fmt(median(g, "tm_max_ms")))
        lost = lambda k, n: "–" if total(g, k) is None else "%d of %d" % (total(g, k), total(g, n))  # noqa: E731
        print("| %s | %s | %s | %s | %s | %s | %s | %s | %s |" % (
            VARIANTS.get(key[0], key[0]), PHASES.get(key[1], key[1]), tm, lost("tm_lost", "tm_sent"),
            fmt(median(g, "video_delay_p99_ms")), fmt(median(g, "video_jitter_p99_ms")),
            fmt(median(g, "video_rfc3550_jitter_ms")), lost("video_lost", "video_sent"),
            fmt(median(g, "imaging_mbit_s"), 1)))
    print()
    print("Medians of %d round(s) per row; losses summed over the rounds." % rounds)
    targets(groups)


def targets(groups):
    def m(variant, phase, key):
        return median(groups.get((variant, phase), []), key)

    def verdict(ok):
        return "–" if ok is None else ("yes" if ok else "NO")

    on_load, on_idle, off_load = m("qgw-on", "load", "tm_p99_ms"), m("qgw-on", "idle", "tm_p99_ms"), m("qgw-off", "load", "tm_p99_ms")
    lines = []
    if on_load is not None and on_idle is not None:
        lines.append("telemonitoring p99 under load <= 2x idle (classes on): %s ms vs 2 x %s ms: %s"
                     % (fmt(on_load), fmt(on_idle), verdict(on_load <= 2 * on_idle)))
    if on_load is not None and off_load is not None:
        lines.append("telemonitoring p99 under load <= 1/10 of classes off: %s ms vs %s / 10 ms: %s"
                     % (fmt(on_load), fmt(off_load), verdict(on_load <= off_load / 10)))
    jit = m("qgw-on", "load", "video_jitter_p99_ms")
    if jit is not None:
        lines.append("video jitter p99 under load <= 5 ms (classes on): %s ms: %s" % (fmt(jit), verdict(jit <= 5)))
    alone, img = m("qgw-off", "imaging", "imaging_mbit_s"), m("qgw-on", "load", "imaging_mbit_s")
    video, tm = m("qgw-on", "load", "video_mbit_s"), m("qgw-on", "load", "tm_mbit_s")
    if None not in (alone, img, video, tm):
        remaining = alone - video - tm
        lines.append("imaging >= 90 %% of the remaining capacity (classes on): remaining = %s (imaging alone, "
                     "classes off) - %s (video) - %s (telemonitoring) = %s Mbit/s; imaging got %s Mbit/s = %.1f %%: %s"
                     % (fmt(alone, 1), fmt(video, 2), fmt(tm, 3), fmt(remaining, 1), fmt(img, 1),
                        100 * img / remaining, verdict(img >= 0.9 * remaining)))
    if lines:
        print()
        print("Targets:")
        for line in lines:
            print("- " + line)


def brief(path, variant=None):
    """demo.sh's lines: one per variant (or VARIANT's alone) of its imaging-load runs."""
    rows = [r for r in load(path) if r["phase"] == "load" and variant in (None, r["variant"])]
    for v in dict.fromkeys(r["variant"] for r in rows):  # in the order they ran
        g = [r for r in rows if r["variant"] == v]
        if not g:
            continue
        line = "telemonitoring p50/p99 %s/%s ms, video jitter p99 %s ms, imaging %s Mbit/s; lost %s/%s messages, %s/%s video packets" % (
            fmt(median(g, "tm_p50_ms")), fmt(median(g, "tm_p99_ms")), fmt(median(g, "video_jitter_p99_ms")),
            fmt(median(g, "imaging_mbit_s"), 1), total(g, "tm_lost"), total(g, "tm_sent"),
            total(g, "video_lost"), total(g, "video_sent"))
        print(line if variant else "%-17s %s" % (VARIANTS.get(v, v) + ":", line))


def probe_checks(rows):
    """(delivered?, text) for every probe of every run: telemonitoring and video unless imaging
    ran alone, imaging unless idle."""
    checks = []
    for r in rows:
        what = "%s %s" % (r["variant"], r["phase"])
        if r["phase"] != "imaging":
            checks.append((bool(r.get("tm_received")), "%s: telemonitoring delivered %s of %s" % (what, r.get("tm_received"), r.get("tm_sent"))))
            checks.append((bool(r.get("video_received")), "%s: video delivered %s of %s" % (what, r.get("video_received"), r.get("video_sent"))))
        if r["phase"] != "idle":
            checks.append((bool(r.get("imaging_stored")), "%s: imaging stored %s instances" % (what, r.get("imaging_stored"))))
    return checks


def delivered(path):
    """Exit 1, naming the run and probe, if a probe delivered nothing (total loss)."""
    empty = [text for good, text in probe_checks(load(path)) if not good]
    print("; ".join(empty) if empty else "every probe delivered")
    return 1 if empty else 0


def classes(path):
    """One line per class of a `qgw status --json`'s first peer: what the scheduler did."""
    if not classes_of(path):
        print("(no classes in this status)")
    for c in classes_of(path):
        print("%-15s %9d packets %12d bytes %6d drops (%d overflow, %d CoDel) %6d CE  queue p99 %s ms" % (
            c.get("name"), c.get("packets", 0), c.get("bytes", 0), c.get("drops", 0), c.get("drops_overflow", 0),
            c.get("drops_codel", 0), c.get("ecn_marked", 0), fmt(c.get("queue_delay_p99_ms"))))


def classes_of(path):
    """The first peer's classes array (empty when absent: a qgw without classes)."""
    with open(path, encoding="utf-8") as f:
        st = json.load(f)
    peers = st.get("peers") or [{}]
    return peers[0].get("classes") or []


def on_checks(status_on):
    """With classes on: the four classes listed, the probes classified, telemonitoring not dropped."""
    try:
        on = {c.get("name"): c for c in classes_of(status_on)}
    except (OSError, ValueError) as e:
        return [(False, "classes on: no status: %s" % e)]
    checks = [(sorted(on) == sorted(CLASSES), "classes on: the peer lists the four classes (%s)" % ", ".join(sorted(on)))]
    for n in CLASSES[:3]:
        pk = on.get(n, {}).get("packets", 0)
        checks.append((pk > 0, "classes on: %s classified %d packets" % (n, pk)))
    drops = on.get("telemonitoring", {}).get("drops")
    checks.append((drops == 0, "classes on: telemonitoring dropped %s packets" % drops))
    return checks


def check(status_off, status_on, results):
    checks = []
    try:
        off = classes_of(status_off)
        checks.append((off == [], "classes off: the peer's classes array is empty (%d entries)" % len(off)))
    except (OSError, ValueError) as e:
        checks.append((False, "classes off: no status: %s" % e))
    if status_on != "-":
        checks += on_checks(status_on)
    try:
        rows = load(results)
    except (OSError, ValueError) as e:
        rows = []
        checks.append((False, "probe results: %s" % e))
    checks += probe_checks(rows)
    for good, text in checks:
        print("%s %s" % ("ok" if good else "FAIL", text))
    return 0 if checks and all(g for g, _ in checks) else 1


def main(argv):
    if len(argv) == 3 and argv[1] == "table":
        table(argv[2])
        return 0
    if len(argv) in (3, 4) and argv[1] == "brief":
        brief(*argv[2:])
        return 0
    if len(argv) == 3 and argv[1] == "delivered":
        return delivered(argv[2])
    if len(argv) == 3 and argv[1] == "classes":
        classes(argv[2])
        return 0
    if len(argv) == 5 and argv[1] == "check":
        return check(argv[2], argv[3], argv[4])
    print(__doc__.split("\n\n")[1], file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
