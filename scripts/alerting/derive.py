#!/usr/bin/env python3
"""The configurations scripts/alerting-check.sh runs, each derived from the shipped one and checked
to differ from it only where the check needs it to.

  derive.py rules SRC DST FACTOR
      DST = SRC (Prometheus alert rules) with every `for:` divided by FACTOR (rounded up, at least
      1 s), everything else byte for byte the same. Then checks, independently of how the copy was
      made: line by line, only `for:` lines differ; parsed as YAML, the groups are identical once
      `for` is taken out of every rule, and each copied `for` is the scaled original. Prints one
      line per rule with a `for:` (name, original, copy).
  derive.py prometheus SRC DST SITE RULES ALERTMANAGER TARGET INTERVAL
      DST = SRC (Prometheus configuration) with the global and the `qgw` job's scrape and
      evaluation intervals (and the scrape timeout) set to INTERVAL, RULES as the one rule file,
      ALERTMANAGER (host:port) as the one Alertmanager, and TARGET labelled site=SITE as the
      `qgw` job's one target. Job name, metrics path and the rest are kept.
  derive.py alertmanager SRC DST URL GROUP REPEAT
      DST = SRC (Alertmanager configuration) with group_wait and group_interval set to GROUP,
      repeat_interval to REPEAT and every webhook url to URL; then checks, line by line and as
      parsed YAML, that nothing else differs.

Exit status 1 with a message on stderr when a check fails. Needs PyYAML (Debian: python3-yaml).
"""

import math
import re
import sys

import yaml

UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "y": 31536000}
FOR_LINE = re.compile(r"^(\s+)for:\s*(\S+)\s*$")


def seconds(duration):
    """A Prometheus duration ("2m", "1h30m", "15s") in seconds."""
    parts = re.findall(r"(\d+)(ms|s|m|h|d|w|y)", duration)
    if not parts or "".join(n + u for n, u in parts) != duration:
        raise SystemExit(f"derive: not a Prometheus duration: {duration!r}")
    return sum(int(n) * UNITS[u] for n, u in parts)


def scaled(duration, factor):
    return f"{max(1, math.ceil(seconds(duration) / factor))}s"


def only_lines_differ(src_text, dst_text, allowed, what):
    """Fails unless the two texts have the same lines except ones matching `allowed` in both
    (same indentation and key). Returns the number of differing lines."""
    a, b = src_text.splitlines(), dst_text.splitlines()
    if len(a) != len(b):
        raise SystemExit(f"derive: {what}: {len(a)} lines became {len(b)}")
    changed = 0
    for n, (x, y) in enumerate(zip(a, b), 1):
        if x == y:
            continue
        mx, my = allowed.match(x), allowed.match(y)
        if not (mx and my and mx.group(1) == my.group(1)):
            raise SystemExit(f"derive: {what}: line {n} differs beyond what may change:\n  {x}\n  {y}")
        changed += 1
    return changed


def rules(src, dst, factor):
    factor = float(factor)
    text = open(src, encoding="utf-8").read()
    out = []
    for line in text.splitlines(keepends=True):
        m = FOR_LINE.match(line.rstrip("\n"))
        out.append(f"{m.group(1)}for: {scaled(m.group(2), factor)}\n" if m else line)
    copy = "".join(out)
    with open(dst, "w", encoding="utf-8") as f:
        f.write(copy)

    # The checks: they read the two files again and do not reuse the substitution above.
    changed = only_lines_differ(text, open(dst, encoding="utf-8").read(), FOR_LINE, "rules copy")
    original, derived = yaml.safe_load(text), yaml.safe_load(open(dst, encoding="utf-8"))
    fors = []
    for g_src, g_dst in zip(original["groups"], derived["groups"], strict=True):
        for r_src, r_dst in zip(g_src["rules"], g_dst["rules"], strict=True):
            f_src, f_dst = r_src.pop("for", None), r_dst.pop("for", None)
            if (f_src is None) != (f_dst is None):
                raise SystemExit(f"derive: rule {r_src.get('alert')}: `for` added or removed")
            if f_src is not None:
                if seconds(f_dst) != seconds(scaled(f_src, factor)):
                    raise SystemExit(f"derive: rule {r_src.get('alert')}: for {f_src} became {f_dst}")
                fors.append((r_src.get("alert") or r_src.get("record"), f_src, f_dst))
    if original != derived:
        raise SystemExit("derive: the rules differ beyond `for` (expressions, labels or annotations)")
    if changed != len(fors):
        raise SystemExit(f"derive: {changed} lines changed for {len(fors)} `for` fields")
    for name, f_src, f_dst in fors:
        print(f"{name} {f_src} {f_dst}")


def prometheus(src, dst, site, rule_file, alertmanager, target, interval):
    config = yaml.safe_load(open(src, encoding="utf-8"))
    config["global"]["scrape_interval"] = interval
    config["global"]["evaluation_interval"] = interval
    config["rule_files"] = [rule_file]
    config["alerting"]["alertmanagers"] = [{"static_configs": [{"targets": [alertmanager]}]}]
    jobs = [j for j in config["scrape_configs"] if j.get("job_name") == "qgw"]
    if len(jobs) != 1:
        raise SystemExit(f"derive: {src}: expected one scrape job called qgw, found {len(jobs)}")
    job = jobs[0]
    job["scrape_interval"] = interval
    job["scrape_timeout"] = interval
    job["static_configs"] = [{"targets": [target], "labels": {"site": site}}]
    with open(dst, "w", encoding="utf-8") as f:
        f.write(f"# Derived from {src} by scripts/alerting/derive.py for {site}.\n")
        yaml.safe_dump(config, f, sort_keys=False)


TIMINGS = ("group_wait", "group_interval", "repeat_interval")


def alertmanager(src, dst, url, group, repeat):
    text = open(src, encoding="utf-8").read()
    keys = "|".join(TIMINGS)
    copy = re.sub(r"^(\s*)(group_wait|group_interval):\s*\S+", rf"\1\2: {group}", text, flags=re.M)
    copy = re.sub(r"^(\s*)repeat_interval:\s*\S+", rf"\1repeat_interval: {repeat}", copy, flags=re.M)
    copy = re.sub(r"^(\s*-?\s*)url:\s*\S+", rf"\1url: {url}", copy, flags=re.M)
    with open(dst, "w", encoding="utf-8") as f:
        f.write(copy)

    allowed = re.compile(rf"^(\s*(?:-\s*)?(?:{keys}|url):)")
    changed = only_lines_differ(text, open(dst, encoding="utf-8").read(), allowed, "alertmanager copy")
    original, derived = yaml.safe_load(text), yaml.safe_load(open(dst, encoding="utf-8"))

    def mask(node):
        if isinstance(node, dict):
            return {k: ("*" if k in TIMINGS or k == "url" else mask(v)) for k, v in node.items()}
        if isinstance(node, list):
            return [mask(v) for v in node]
        return node

    if mask(original) != mask(derived):
        raise SystemExit("derive: the Alertmanager copy differs beyond its timings and url")
    print(f"{changed} lines changed: group_wait, group_interval {group}, repeat_interval {repeat}, url {url}")


COMMANDS = {"rules": (rules, 3), "prometheus": (prometheus, 7), "alertmanager": (alertmanager, 5)}

if __name__ == "__main__":
    if len(sys.argv) < 2 or sys.argv[1] not in COMMANDS or len(sys.argv) - 2 != COMMANDS[sys.argv[1]][1]:
        raise SystemExit(__doc__)
    COMMANDS[sys.argv[1]][0](*sys.argv[2:])
