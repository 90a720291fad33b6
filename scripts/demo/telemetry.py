#!/usr/bin/env python3
"""ICU telemetry for demo.sh's MQTT step (Python standard library only).

  telemetry.py publish COUNT SECONDS SENT_FILE   print COUNT vital-sign messages, one JSON object a
                                                  line, evenly over SECONDS, to stdout (for
                                                  `mosquitto_pub -l`) and to SENT_FILE
  telemetry.py check SENT_FILE RECEIVED_FILE     every message arrived exactly once, in order, with
                                                  the same bytes; exit 1 otherwise

The values are synthetic (a bedside monitor of bed 7 for DEMO^PATIENT): heart rate, SpO2,
respiratory rate and non-invasive blood pressure with a little deterministic variation, and a
sequence number so that loss, duplication and reordering can be told apart.
"""

import hashlib
import json
import math
import random
import sys
import time


def publish(count, seconds, sent_path):
    rng = random.Random(7)
    interval = seconds / max(count, 1)
    start = time.monotonic()
    with open(sent_path, "w", encoding="ascii") as sent:
        for seq in range(1, count + 1):
            t = seq * interval
            msg = {
                "bed": 7,
                "patient": "DEMO^PATIENT",
                "seq": seq,
                "t_ms": round(t * 1000),
                "hr": round(72 + 6 * math.sin(t / 3) + rng.uniform(-2, 2)),
                "spo2": rng.choice((97, 98, 98, 99)),
                "rr": 14 + rng.randint(-1, 1),
                "nibp": "%d/%d" % (118 + rng.randint(-4, 4), 78 + rng.randint(-3, 3)),
            }
            line = json.dumps(msg, separators=(",", ":"))
            sent.write(line + "\n")
            sys.stdout.write(line + "\n")
            sys.stdout.flush()
            delay = start + seq * interval - time.monotonic()
            if delay > 0:
                time.sleep(delay)
    return 0


def check(sent_path, received_path):
    with open(sent_path, encoding="ascii") as f:
        sent = f.read().splitlines()
    try:
        with open(received_path, encoding="ascii", errors="replace") as f:
            received = f.read().splitlines()
    except FileNotFoundError:
        received = []
    seqs = []
    for line in received:
        try:
            seqs.append(json.loads(line)["seq"])
        except (ValueError, KeyError, TypeError):
            seqs.append(None)
    expected = set(range(1, len(sent) + 1))
    missing = len(expected - set(seqs))
    duplicates = len(seqs) - len(set(seqs))
    in_order = all(a is not None and b is not None and a < b for a, b in zip(seqs, seqs[1:]))
    sha_sent = hashlib.sha256("\n".join(sent).encode()).hexdigest()
    sha_recv = hashlib.sha256("\n".join(received).encode()).hexdigest()
    good = missing == 0 and duplicates == 0 and in_order and sha_sent == sha_recv
    print(
        "%d published / %d received, %d missing, %d duplicates, %s; payload SHA-256 %s %s"
        % (
            len(sent),
            len(received),
            missing,
            duplicates,
            "in order" if in_order else "OUT OF ORDER",
            sha_recv[:16],
            "matches" if sha_sent == sha_recv else "DIFFERS from sent " + sha_sent[:16],
        )
    )
    return 0 if good else 1


def main(argv):
    if len(argv) == 5 and argv[1] == "publish":
        return publish(int(argv[2]), float(argv[3]), argv[4])
    if len(argv) == 4 and argv[1] == "check":
        return check(argv[2], argv[3])
    print(__doc__.split("\n\n")[1], file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
