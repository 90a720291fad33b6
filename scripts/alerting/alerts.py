#!/usr/bin/env python3
"""scripts/alerting-check.sh's webhook receiver for Alertmanager, and its readers of what the
receiver recorded and of what Prometheus reports.

  alerts.py serve HOST PORT LOG
      An HTTP server (Python's http.server) on HOST:PORT. Every POST body (an Alertmanager webhook
      notification, JSON) is appended to LOG as one line {"received": <unix time>, "payload": ...},
      flushed at once; GET answers 200 "ready". Runs until killed.
  alerts.py received LOG ALERT STATUS SITE SINCE
      Prints the receive time of the first notification at or after SINCE (unix time) that carries
      alert ALERT with label site=SITE in status STATUS (firing or resolved); exit status 1 if
      there is none yet.
  alerts.py count LOG
      Prints the number of notifications in LOG and the alert names they carry.
  alerts.py active SITE [ALERT]  (Prometheus /api/v1/alerts JSON on stdin)
      Prints one line per active alert whose name starts with Qgw (for SITE; only ALERT if given):
      name, state (pending or firing) and activeAt as unix time.
"""

import http.server
import json
import re
import sys
import threading
import time
from datetime import datetime, timezone

MAX_BODY = 1 << 20  # a notification is a few KiB; refuse anything absurd


def serve(host, port, log):
    lock = threading.Lock()
    out = open(log, "a", encoding="utf-8")

    class Receiver(http.server.BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 (http.server's naming)
            received = time.time()
            length = int(self.headers.get("Content-Length") or 0)
            if not 0 < length <= MAX_BODY:
                self.send_error(413 if length else 411)
                return
            try:
                payload = json.loads(self.rfile.read(length))
            except ValueError:
                self.send_error(400, "not JSON")
                return
            with lock:
                out.write(json.dumps({"received": received, "payload": payload}) + "\n")
                out.flush()
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def do_GET(self):  # noqa: N802
            self.send_response(200)
            self.send_header("Content-Length", "6")
            self.end_headers()
            self.wfile.write(b"ready\n")

        def log_message(self, *args):
            pass  # the LOG is the record; no per-request noise

    http.server.ThreadingHTTPServer((host, int(port)), Receiver).serve_forever()


def notifications(log):
    try:
        with open(log, encoding="utf-8") as f:
            for line in f:
                if line.endswith("\n"):  # a line still being written is read next time
                    yield json.loads(line)
    except FileNotFoundError:
        return


def received(log, alert, status, site, since):
    for n in notifications(log):
        if n["received"] < float(since):
            continue
        for a in n["payload"].get("alerts", []):
            labels = a.get("labels", {})
            if labels.get("alertname") == alert and labels.get("site") == site and a.get("status") == status:
                print(f"{n['received']:.3f}")
                return 0
    return 1


def count(log):
    seen = list(notifications(log))
    names = sorted({a["labels"].get("alertname", "?") for n in seen for a in n["payload"].get("alerts", [])})
    print(len(seen), " ".join(names))
    return 0


def unix_time(rfc3339):
    """Prometheus's activeAt ("2026-12-06T13:53:28.123456789Z", nanoseconds) as unix time."""
    m = re.fullmatch(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?Z", rfc3339)
    if not m:
        raise SystemExit(f"alerts: unexpected time {rfc3339!r}")
    whole = datetime.fromisoformat(m.group(1)).replace(tzinfo=timezone.utc).timestamp()
    return whole + float("0." + (m.group(2) or "0"))


def active(site, alert=None):
    data = json.load(sys.stdin)
    for a in data.get("data", {}).get("alerts", []):
        labels = a.get("labels", {})
        name = labels.get("alertname", "")
        if not name.startswith("Qgw") or labels.get("site") != site or alert not in (None, name):
            continue
        print(name, a.get("state"), f"{unix_time(a['activeAt']):.3f}")
    return 0


COMMANDS = {"serve": (serve, (3,)), "received": (received, (5,)), "count": (count, (1,)), "active": (active, (1, 2))}

if __name__ == "__main__":
    if len(sys.argv) < 2 or sys.argv[1] not in COMMANDS or len(sys.argv) - 2 not in COMMANDS[sys.argv[1]][1]:
        raise SystemExit(__doc__)
    sys.exit(COMMANDS[sys.argv[1]][0](*sys.argv[2:]) or 0)
