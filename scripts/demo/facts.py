#!/usr/bin/env python3
"""Reads the facts demo.sh summarises (Python standard library only). Each prints one line.

  facts.py status STATUS_JSON      hybrid role, epoch, key sources and QKD key ID of the first peer
                                   (`qgw status --json`), as "ROLE EPOCH SOURCES KEY_ID"
  facts.py epochs LOG [PEER]       the "hybrid epoch installed" lines of a qgw log (of one peer, if
                                   named): "COUNT WITH_QKD LAST_EPOCH KEY_IDS SUMMARY", e.g.
                                   "3 3 3 3 3x x25519+mlkem+qkd"
  facts.py peers STATUS_JSON       one line a peer of `qgw status --json`: "NAME ROLE EPOCH SOURCES
                                   QKD_KEY_IDS INSTALLED" (key IDs comma-separated or "-"; INSTALLED,
                                   the epochs since start by key sources, e.g. "4x x25519+mlkem+qkd")
  facts.py epoch-keys LOG PEER     the QKD key IDs of each epoch of PEER in a qgw log, one line an
                                   epoch: "EPOCH SOURCES KEY_ID[,KEY_ID...]" (IDs in source order)
  facts.py sources STATUS_JSON     one line a peer with QKD sources: "NAME SOURCE[; SOURCE...]", each
                                   "KME -> PEER_SAE (N delivered, N failed, last RESULT)"; peers
                                   whose status has no per-source list are left out
  facts.py metric METRICS NAME     sum of every sample of NAME in a Prometheus text file, or "n/a"
  facts.py iperf IPERF_JSON        received Gbit/s of an `iperf3 -J` client run, or "n/a"
  facts.py kme ADMIN_STATE_JSON    "ISSUED DELIVERED" from the simulator's GET /admin/state
  facts.py links ADMIN_STATE_JSON [KEY_BITS]
                                   one line a QKD link of GET /admin/state: "KME-KME CONSUMED_KEYS
                                   RELAYED STORED_KEYS LENGTH_KM RATE_KBPS" (keys of KEY_BITS, 256)
"""

import json
import re
import sys
from collections import Counter

ANSI = re.compile(r"\x1b\[[0-9;]*m")


def status(path):
    with open(path) as f:
        peer = (json.load(f).get("peers") or [{}])[0]
    sources = "+".join(peer.get("key_sources") or []) or "none"
    print(peer.get("hybrid", "off"), peer.get("epoch", 0), sources, peer.get("qkd_key_id") or "-")


def installed(path, peer=None):
    """The "hybrid epoch installed" lines of a qgw log (of PEER only, if given), colours removed."""
    with open(path, errors="replace") as f:
        for line in f:
            line = ANSI.sub("", line)
            if "hybrid epoch installed" not in line:
                continue
            m = re.search(r'\bpeer="?([^"\s]+)', line)
            if peer is None or (m and m.group(1) == peer):
                yield line


def epochs(path, peer=None):
    count, labels, key_ids, last = 0, Counter(), set(), 0
    for line in installed(path, peer):
        count += 1
        m = re.search(r'sources="?([a-z0-9+]+)', line)
        labels[m.group(1) if m else "?"] += 1
        m = re.search(r"\bepoch=(\d+)", line)
        if m:
            last = max(last, int(m.group(1)))
        m = re.search(r"qkd_key_ids=\[([^\]]*)\]", line)
        if m:
            key_ids.update(re.findall(r"[0-9a-fA-F-]{36}", m.group(1)))
    with_qkd = sum(n for label, n in labels.items() if "qkd" in label.split("+"))
    summary = ", ".join("%dx %s" % (n, label) for label, n in labels.most_common()) or "none"
    print(count, with_qkd, last, len(key_ids), summary)


def epoch_keys(path, peer):
    for line in installed(path, peer):
        epoch = re.search(r"\bepoch=(\d+)", line)
        sources = re.search(r'sources="?([a-z0-9+]+)', line)
        ids = re.search(r"qkd_key_ids=\[([^\]]*)\]", line)
        found = re.findall(r"[0-9a-fA-F-]{36}", ids.group(1)) if ids else []
        print(epoch.group(1) if epoch else "?", sources.group(1) if sources else "?", ",".join(found) or "-")


def peers(path):
    with open(path) as f:
        for peer in json.load(f).get("peers") or []:
            ids = peer.get("qkd_key_ids") or ([peer["qkd_key_id"]] if peer.get("qkd_key_id") else [])
            by_source = Counter(peer.get("epochs_by_source") or {})
            done = ", ".join("%dx %s" % (n, label) for label, n in by_source.most_common()) or "none"
            sources = "+".join(peer.get("key_sources") or []) or "none"
            print(peer.get("name", "?"), peer.get("hybrid", "off"), peer.get("epoch", 0), sources, ",".join(ids) or "-", done)


def sources(path):
    with open(path) as f:
        for peer in json.load(f).get("peers") or []:
            listed = [
                "%s -> %s (%d delivered, %d failed, last %s)"
                % (s.get("kme", "?"), s.get("peer_sae_id", "?"), s.get("delivered", 0), s.get("failed", 0), s.get("last") or "-")
                for s in peer.get("qkd_sources") or []
            ]
            if listed:
                print(peer.get("name", "?"), "; ".join(listed))


def links(path, key_bits=256):
    with open(path) as f:
        state = json.load(f)
    for link in state.get("links") or []:
        print(
            "-".join(link.get("kmes") or ["?", "?"]),
            link.get("consumed_bits", 0) // int(key_bits),
            link.get("keys_relayed", 0),
            link.get("stored_key_count", 0),
            "%g" % link.get("length_km", 0),
            link.get("secret_key_rate_bps", 0) // 1000,
        )


def metric(path, name):
    total, seen = 0.0, False
    sample = re.compile(r"^%s(\{[^}]*\})?\s+(\S+)" % re.escape(name))
    with open(path, errors="replace") as f:
        for line in f:
            m = sample.match(line)
            if m:
                try:
                    total += float(m.group(2))
                    seen = True
                except ValueError:
                    pass
    print(("%g" % total) if seen else "n/a")


def iperf(path):
    try:
        with open(path) as f:
            end = json.load(f)["end"]
        bps = end["sum_received"]["bits_per_second"]
        print("%.2f" % (bps / 1e9))
    except (OSError, ValueError, KeyError, TypeError):
        print("n/a")


def kme(path):
    try:
        with open(path) as f:
            stats = json.load(f)["stats"]
        print(stats.get("keys_issued", "n/a"), stats.get("keys_delivered", "n/a"))
    except (OSError, ValueError, KeyError, TypeError):
        print("n/a n/a")


def main(argv):
    commands = {
        "status": status,
        "epochs": epochs,
        "epoch-keys": epoch_keys,
        "peers": peers,
        "sources": sources,
        "metric": metric,
        "iperf": iperf,
        "kme": kme,
        "links": links,
    }
    if len(argv) >= 3 and argv[1] in commands:
        try:
            commands[argv[1]](*argv[2:])
            return 0
        except (OSError, ValueError, TypeError) as e:
            print("n/a (%s)" % e, file=sys.stderr)
            return 1
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
