#!/usr/bin/env python3
"""Tables and verdicts for gateway/bench/impaired.sh and soak.sh; standard library only.

  bench_report.py max-gap AUDIT_LOG...       longest time (s) between epoch installs, or "-"
  bench_report.py epochs-between T1 T2 AUDIT_LOG...   epochs installed in (T1, T2], unix s
  bench_report.py first-after T AUDIT_LOG...  seconds from T to the next epoch install, or "none"
  bench_report.py impaired RESULTS           markdown table of impaired.sh's RESULT lines
  bench_report.py soak SAMPLES.csv WARMUP_S  per process: RSS, fds and threads, flat or not
  bench_report.py ping-logs PING_OUT SENT RECV   `ping -D -O` output -> probe.py's "seq unix_ms"
  bench_report.py lost-outside SENT RECV SECS T...   losses outside [T, T+SECS] for every T
"""
import csv
import json
import statistics
import sys
from datetime import datetime


def epoch_times(paths):
    """Unix seconds of every epoch_installed record (docs/audit.md §2-3), sorted."""
    out = []
    for path in paths:
        with open(path, errors="replace") as f:
            for line in f:
                if '"event":"epoch_installed"' in line:
                    t = json.loads(line[: line.rfind(',"hash"')] + "}")["time"]
                    dt = datetime.strptime(t, "%Y-%m-%dT%H:%M:%S.%fZ")
                    out.append((dt - datetime(1970, 1, 1)).total_seconds())
    return sorted(out)


def max_gap(paths):
    t = epoch_times(paths)
    print(f"{max(b - a for a, b in zip(t, t[1:])):.1f}" if len(t) >= 2 else "-")


def epochs_between(since, until, paths):
    print(sum(1 for t in epoch_times(paths) if float(since) < t <= float(until)))


def first_after(since, paths):
    later = [t - float(since) for t in epoch_times(paths) if t > float(since)]
    print(f"{later[0]:.1f}" if later else "none")


def fields(line):
    return dict(kv.split("=", 1) for kv in line.split()[1:] if "=" in kv)


def spread(values):
    if not values:
        return "-"
    m = statistics.median(values)
    return f"{m:.2f}" if len(values) == 1 else f"{m:.2f} [{min(values):.2f}–{max(values):.2f}]"


def impaired(path):
    rows = [fields(l) for l in open(path) if l.startswith("RESULT ")]
    profiles = list(dict.fromkeys(r["profile"] for r in rows))
    of = lambda p, impl: [r for r in rows if r["profile"] == p and r["impl"] == impl]
    mb = lambda rs: [float(r["mbps"]) for r in rs if r.get("status") == "ok"]
    col = lambda rs, k: ", ".join(r.get(k, "-") for r in rs)
    print("TCP (iperf3, one stream a -> b), median [min–max] over rounds; retransmits and the datagrams "
          "the relay's full socket buffer dropped (a bottleneck's tail drop, not injected), per round\n")
    print("| profile | RTT ms wg-go / qgw | wireguard-go Mbit/s | qgw Mbit/s | qgw ÷ wg-go | retransmits wg-go / qgw "
          "| relay buffer drops wg-go / qgw |")
    print("|---|--:|--:|--:|--:|--:|--:|")
    for p in profiles:
        wg, q = of(p, "wireguard-go"), of(p, "qgw")
        fails = sum(r.get("status") != "ok" for r in wg + q)
        ratio = "-"
        if mb(wg) and mb(q) and statistics.median(mb(wg)) > 0:
            ratio = f"{statistics.median(mb(q)) / statistics.median(mb(wg)):.2f}"
        note = f" ({fails} iperf3 runs failed)" if fails else ""
        print(f"| {p}{note} | {col(wg, 'rtt_ms')} / {col(q, 'rtt_ms')} | {spread(mb(wg))} | {spread(mb(q))} | "
              f"{ratio} | {col(wg, 'retr')} / {col(q, 'retr')} | {col(wg, 'rcvbuf_m')} / {col(q, 'rcvbuf_m')} |")
    print("\nqgw rotation (rekey every 10 s) and the UDP probe streams (both ways, 100/s each, after "
          "iperf3), summed over rounds\n")
    print("| profile | epochs A / B | of them during iperf3 | longest gap A / B (s) | probes sent | lost | "
          "lost at the relay | others, ±1 s of an epoch install | others, elsewhere | relay's injected loss "
          "(all datagrams) | audit verify |")
    print("|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|---|")
    for p in profiles:
        q = of(p, "qgw")
        total = lambda k: sum(int(r.get(f"a2b_{k}", 0)) + int(r.get(f"b2a_{k}", 0)) for r in q)
        pairs = lambda a, b: ", ".join(f"{r.get(a, '-')} / {r.get(b, '-')}" for r in q)
        recv = sum(int(r["relay_received"]) for r in q)
        lost = sum(int(r["relay_lost"]) for r in q)
        inj = f"{lost} of {recv} ({100 * lost / recv:.2f} %)" if recv else "-"
        print(f"| {p} | {pairs('epochs_a', 'epochs_b')} | {pairs('iperf_epochs_a', 'iperf_epochs_b')} | "
              f"{pairs('max_gap_a', 'max_gap_b')} | {total('sent')} | {total('lost')} | {total('lost_relay')} | "
              f"{total('lost_near_rotation')} | {total('lost_elsewhere')} | {inj} | {col(q, 'audit')} |")


def soak(path, warmup):
    """Flat: after `warmup` s of a process's life, compare its first and last quarter."""
    samples = {}
    for r in csv.DictReader(open(path)):
        samples.setdefault((r["site"], r["pid"]), []).append(r)
    ok = True
    print("| site | pid | samples | RSS first / last quarter (MiB) | growth | fds first / last max "
          "| threads first / last max | verdict |")
    print("|---|--:|--:|--:|--:|--:|--:|---|")
    for (site, pid), rs in samples.items():
        t0 = float(rs[0]["t"])
        rs = [r for r in rs if float(r["t"]) - t0 >= warmup]
        if len(rs) < 4:
            print(f"| {site} | {pid} | {len(rs)} | - | - | - | - | too short to judge |")
            continue
        q = max(1, len(rs) // 4)
        first, last = rs[:q], rs[-q:]
        rss = lambda xs: statistics.mean(int(x["rss_kb"]) for x in xs) / 1024
        top = lambda xs, k: max(int(x[k]) for x in xs)
        growth = (rss(last) - rss(first)) / rss(first)
        flat = (growth <= 0.10 and top(last, "fds") <= top(first, "fds") + 2
                and top(last, "threads") <= top(first, "threads"))
        ok &= flat
        print(f"| {site} | {pid} | {len(rs)} | {rss(first):.1f} / {rss(last):.1f} | {100 * growth:+.1f} % | "
              f"{top(first, 'fds')} / {top(last, 'fds')} | {top(first, 'threads')} / {top(last, 'threads')} | "
              f"{'flat' if flat else 'GROWING'} |")
    print(f"\nFLAT={'yes' if ok else 'no'}")


def ping_logs(out, sent_path, recv_path):
    """Sent and received sequence numbers with times from `ping -D -O` (send time of a reply:
    receive time minus the RTT; of an unanswered one: when ping reported it, minus 0.2 s)."""
    sent, recv, transmitted = {}, {}, 0
    for line in open(out, errors="replace"):
        if "packets transmitted" in line:
            transmitted = int(line.split()[0])
        if not line.startswith("[") or "icmp_seq=" not in line:
            continue
        ts = float(line[1 : line.index("]")])
        seq = int(line.split("icmp_seq=")[1].split()[0])
        if "no answer yet" in line:
            sent.setdefault(seq, ts - 0.2)
        elif " bytes from " in line:
            rtt = float(line.split("time=")[1].split()[0]) / 1000 if "time=" in line else 0
            sent[seq] = ts - rtt
            recv[seq] = ts
    known = sorted(sent)
    for seq in range(1, transmitted + 1):  # unreported ones (the last): interpolate
        if seq not in sent and known:
            near = min(known, key=lambda k: abs(k - seq))
            sent[seq] = sent[near] + 0.2 * (seq - near)
    with open(sent_path, "w") as f:
        f.writelines(f"{k} {int(v * 1000)}\n" for k, v in sorted(sent.items()))
    with open(recv_path, "w") as f:
        f.writelines(f"{k} {int(v * 1000)}\n" for k, v in sorted(recv.items()))


def lost_outside(sent_path, recv_path, secs, times):
    pairs = lambda p: dict((int(a), int(b)) for a, b in (l.split()[:2] for l in open(p) if l.strip()))
    sent, recv = pairs(sent_path), pairs(recv_path)
    windows = [(float(t) * 1000, float(t) * 1000 + float(secs) * 1000) for t in times if t]
    lost = sorted(s for s in sent if s not in recv)
    inside = [s for s in lost if any(a <= sent[s] <= b for a, b in windows)]
    runs, longest = [], 0.0  # the longest run of consecutive lost sequence numbers, in seconds
    for s in lost:
        if runs and runs[-1][1] == s - 1:
            runs[-1][1] = s
        else:
            runs.append([s, s])
    for a, b in runs:
        longest = max(longest, (sent[b] - sent[a]) / 1000)
    print(f"sent={len(sent)} received={len(recv)} lost={len(lost)} lost_in_windows={len(inside)} "
          f"lost_outside={len(lost) - len(inside)} longest_outage_s={longest:.1f}")


def main():
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "max-gap":
        max_gap(args)
    elif cmd == "epochs-between":
        epochs_between(args[0], args[1], args[2:])
    elif cmd == "first-after":
        first_after(args[0], args[1:])
    elif cmd == "impaired":
        impaired(args[0])
    elif cmd == "ping-logs":
        ping_logs(*args)
    elif cmd == "lost-outside":
        lost_outside(args[0], args[1], args[2], args[3:])
    elif cmd == "soak":
        soak(args[0], float(args[1]))
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
