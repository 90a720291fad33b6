#!/usr/bin/env python3
"""Paced, numbered UDP probe streams through a tunnel, and what happened to each datagram.

Used by impaired.sh and soak.sh (gateway/bench/); standard library only.

  probe.py send --bind IP --to IP:PORT --rate PPS --seconds S --size BYTES [--marker TEXT] --log FILE
      sends rate*seconds datagrams on an absolute schedule; each carries its sequence number and,
      if given, the marker text (to look for on the underlay); FILE gets "seq unix_ms" per datagram.
  probe.py recv --bind IP:PORT --log FILE --max-seconds S [--idle S]
      logs "seq unix_ms" per datagram received; stops after max-seconds, or after idle seconds
      without a datagram once one arrived.
  probe.py attribute --sent FILE --recv FILE --dir a2b|b2a --wire-len N
                     [--drops RELAY_DROPS] [--audit LOG]... [--window S]
      prints key=value: sent, received, lost, duplicates, reordered; lost_relay (lost datagrams
      matched to a relay drop of the same direction and wire length within 200 ms after sending);
      of the others, lost_near_rotation (sent within --window s of an epoch_installed record in any
      --audit log) and lost_elsewhere; the sequence numbers of unexplained losses.
"""
import argparse
import socket
import struct
import sys
import time

from bench_report import epoch_times  # same directory


def now_ms():
    return int(time.time() * 1000)


def send(a):
    host, port = a.to.rsplit(":", 1)
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((a.bind, 0))
    fill = a.marker.encode() or b"\0"
    pad = fill * (a.size // len(fill) + 1)
    count = int(a.rate * a.seconds)
    start = time.monotonic()
    with open(a.log, "w") as log:
        for seq in range(count):
            due = start + seq / a.rate
            delay = due - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            payload = (struct.pack(">Q", seq) + pad)[: a.size]
            try:
                sock.sendto(payload, (host, int(port)))
            except OSError:
                pass  # no route while a tunnel is down: counted as lost by the receiver
            log.write(f"{seq} {now_ms()}\n")


def recv(a):
    host, port = a.bind.rsplit(":", 1)
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((host, int(port)))
    sock.settimeout(0.5)
    deadline = time.monotonic() + a.max_seconds
    last = None
    with open(a.log, "w") as log:
        while time.monotonic() < deadline:
            if last is not None and time.monotonic() - last > a.idle:
                break
            try:
                data = sock.recv(65536)
            except socket.timeout:
                continue
            if len(data) >= 8:
                last = time.monotonic()
                log.write(f"{struct.unpack('>Q', data[:8])[0]} {now_ms()}\n")
                log.flush()


def read_pairs(path):
    out = []
    with open(path) as f:
        for line in f:
            p = line.split()
            if len(p) >= 2:
                out.append((int(p[0]), int(p[1])))
    return out


def attribute(a):
    sent = dict(read_pairs(a.sent))
    received = read_pairs(a.recv)
    seen, dups, reordered, top = set(), 0, 0, -1
    for seq, _ in received:
        if seq in seen:
            dups += 1
            continue
        seen.add(seq)
        if seq < top:
            reordered += 1
        top = max(top, seq)
    lost = sorted(s for s in sent if s not in seen)
    drops = []
    if a.drops:
        with open(a.drops) as f:
            for line in f:
                p = line.split()
                if len(p) >= 3 and p[1] == a.dir and int(p[2]) == a.wire_len:
                    drops.append(int(p[0]))
    drops.sort()
    used = [False] * len(drops)
    epochs = [int(t * 1000) for t in epoch_times(a.audit)]
    window = int(a.window * 1000)
    relay, near, elsewhere = [], [], []
    for seq in lost:
        t = sent[seq]
        match = next((i for i, d in enumerate(drops) if not used[i] and t - 5 <= d <= t + 200), None)
        if match is not None:
            used[match] = True
            relay.append(seq)
        elif any(abs(t - e) <= window for e in epochs):
            near.append(seq)
        else:
            elsewhere.append(seq)
    out = {
        "sent": len(sent), "received": len(seen), "lost": len(lost), "duplicates": dups,
        "reordered": reordered, "lost_relay": len(relay), "lost_near_rotation": len(near),
        "lost_elsewhere": len(elsewhere), "relay_drops_of_this_size": len(drops),
        "epochs_seen": len(epochs),
        "unexplained_seqs": ",".join(map(str, (near + elsewhere)[:50])) or "-",
    }
    print(" ".join(f"{k}={v}" for k, v in out.items()))


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("send")
    s.add_argument("--bind", required=True)
    s.add_argument("--to", required=True)
    s.add_argument("--rate", type=float, required=True)
    s.add_argument("--seconds", type=float, required=True)
    s.add_argument("--size", type=int, default=200)
    s.add_argument("--marker", default="")
    s.add_argument("--log", required=True)
    r = sub.add_parser("recv")
    r.add_argument("--bind", required=True)
    r.add_argument("--log", required=True)
    r.add_argument("--max-seconds", type=float, required=True)
    r.add_argument("--idle", type=float, default=5.0)
    t = sub.add_parser("attribute")
    t.add_argument("--sent", required=True)
    t.add_argument("--recv", required=True)
    t.add_argument("--dir", choices=["a2b", "b2a"], required=True)
    t.add_argument("--wire-len", type=int, required=True)
    t.add_argument("--drops")
    t.add_argument("--audit", action="append", default=[])
    t.add_argument("--window", type=float, default=1.0)
    a = p.parse_args()
    if a.cmd == "send" and (a.rate <= 0 or a.rate * a.seconds > 1_000_000):
        sys.exit("send: rate must be > 0 and rate*seconds at most 1e6")
    {"send": send, "recv": recv, "attribute": attribute}[a.cmd](a)


if __name__ == "__main__":
    main()
