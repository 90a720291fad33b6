#!/usr/bin/env bash
# Start, restart and replay behaviour of two real qgw sites (hybrid: on, qkd.policy: required, no
# persistent keepalive), with wireguard-go (plain, no keepalive) as the comparison where it means
# something. Run by hand as root, not by CI. Two namespaces joined by a veth:
#
#   qgwsr-a 10.230.0.1 (sr-ul-a) ──────── (sr-ul-b) 10.230.0.2 qgwsr-b
#   tunnel 10.231.0.1/24 (qgwsr-a | wgsr-a)        tunnel 10.231.0.2/24 (qgwsr-b | wgsr-b)
#   KME simulator in qgwsr-a: KME_A 127.0.0.1:8441 (site A), KME_B 10.230.0.1:8442 (site B)
#
# Site A is the hybrid master, site B the slave (pinned by qkd.role). A pinger in qgwsr-a sends an
# ICMP echo to 10.231.0.2 every 20 ms for the whole of each run (raw socket; send errors while a
# tunnel or its route is missing are ignored), and logs every request and reply with its time, so
# a time is "qgw up (or wireguard-go) started -> first echo reply received after it", to within
# the 20 ms ping interval. Each case repeated N times (median, min, max = worst case):
#
#   start-a-first  site A started, 2 s later site B; time from B's start
#   start-b-first  site B started, 2 s later site A; time from A's start
#   restart-b      traffic flowing for -s s (6), site B's process killed with SIGKILL, started again
#                  1 s later; time from the new start (site A untouched)
#   restart-a      the same with site A
#   wireguard-go: the same four cases; each side is `wireguard-go -f`, configured with `wg set`
#   (key, port, peer, endpoint, no keepalive) and `ip` once its device exists, all inside the timed
#   start. With plain WireGuard "master" means nothing: A is simply the side that pings.
#   replay: a qgw pair with rekey_after_seconds: 5 (the shortest allowed for hybrid peers), the
#   underlay captured on sr-ul-b for 12 s, one complete recorded exchange extracted (the master's
#   Init: 4 fragments of kind 1 with one exchange_id; its Response; the WireGuard handshake after
#   it), and after 6 s (newer epochs made the recording old) for every round and phase
#   (-p, default none,init@3,init@1000,exchange@1000), -R s each (20):
#     none        nothing replayed (the baseline)
#     init@R      the 4 Init fragments, in a loop, R datagrams/s, from 10.230.0.1:51820 (the master's
#                 address and port: raw socket) to 10.230.0.2:51820
#     exchange@R  the whole exchange: its master->slave datagrams (Init, WireGuard initiation) from
#                 A to B and its slave->master datagrams (Response, WireGuard response) from B to A,
#                 R datagrams/s each way
#   then: epochs installed at each site in the window (audit log epoch_installed; expected
#   20 s / 5 s = 4), echoes lost in the window, hybrid drop counters by reason, rejects and ML-DSA
#   verifications (qgw status --json before and after), per site.
#
#   sudo gateway/bench/start-restart.sh [-n N] [-o DIR] [-s SETTLE] [-k REKEY] [-r ROUNDS] [-R SECS]
#                                       [-p PHASES] [-c PARTS] [-B]
#   sudo gateway/bench/start-restart.sh cleanup     # remove what a killed run left behind
#
#   -n  repetitions of every start/restart case (5)   -o  results directory (new /tmp/qgw-sr.*)
#   -s  seconds of traffic before a kill (6; 2 puts the kill within REKEY_TIMEOUT of the handshake)
#   -k  rekey_after_seconds of the start/restart runs (default: none, i.e. 120)
#   -r  rounds of the replay phases (default N, at most 3)   -R  seconds per replay phase (20)
#   -p  replay phases (none,init@3,init@1000,exchange@1000)
#   -c  parts to run: comma list of qgw,wg,replay (all)   -B  skip the release build
#
# Output: results.txt (META, one RESULT line per measurement, one REPLAY line per replay phase),
# table.md (the tables, also printed), and per run: each process's log, the underlay capture
# (<run>.pcap) with a decoded timeline (<run>.timeline.txt: every hybrid and WireGuard message
# around the starts and kills), the ping log, audit logs and status snapshots.
# Traffic stays inside the namespaces this script creates; every loop is bounded in count and
# time; every process it starts is bounded in time and ended by PID (only while it runs in one of
# this script's namespaces) on exit, also on failure or Ctrl-C. Nothing is ended by name.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=lib.sh source-path=SCRIPTDIR
source "$here/lib.sh" # repo, BIN; log/die, start/stop_pid/child_of, cleanup, keys, KME, qgw and wireguard-go

NS_A=qgwsr-a NS_B=qgwsr-b
VETH_A=sr-ul-a VETH_B=sr-ul-b
UL_A=10.230.0.1 UL_B=10.230.0.2 TN_A=10.231.0.1 TN_B=10.231.0.2
PORT=51820 MTU=1420 REPLAY_REKEY=5
PING_INTERVAL=0.02
GAP=2        # seconds between the two starts
DOWN=1       # seconds a killed site stays down
WAIT_UP=40   # seconds to wait for a first reply before recording a timeout
CAPTURE_SECS=12 AGE_SECS=6

N=5 OUT="" BUILD=1 SETTLE=6 REKEY="" ROUNDS="" REPLAY_SECS=20
PHASES="none,init@3,init@1000,exchange@1000" PARTS="qgw,wg,replay"
BENCH_NAME=start-restart BENCH_NS=("$NS_A" "$NS_B") QGW_IF=qgwsr
BENCH_STALE=(/var/run/wireguard/wgsr-a.sock /var/run/wireguard/wgsr-b.sock /run/qgw/qgwsr-a.sock /run/qgw/qgwsr-b.sock)

# ------------------------------------------------------------------ the Python helper
write_helper() { # $WD/sr.py: pinger, pcap decoding, replay sender, tables (standard library only)
  cat > "$WD/sr.py" << 'PY'
"""start-restart.sh's helper; standard library only.

  sr.py ping DST SECONDS INTERVAL LOG     ICMP echo every INTERVAL s for at most SECONDS; LOG gets
                                          "S n t_send [err=errno]" and "R n t_send t_recv" lines
  sr.py loss LOG T1 T2                    echoes sent in [T1, T2): sent, lost, longest outage
  sr.py extract PCAP A B DIR              one complete recorded exchange -> DIR/{init,a2b,b2a}.hex
  sr.py replay SRC DST SECONDS RATE FILE  FILE's datagrams in a loop, RATE/s, from SRC:51820 (raw)
  sr.py timeline PCAP A EVENTS [HEX...]   the underlay's hybrid and WireGuard messages with events
  sr.py status-delta BEFORE AFTER         drops, rejects and ML-DSA verifications between snapshots
  sr.py table RESULTS                     the markdown tables
"""
import json
import os
import select
import signal
import socket
import statistics
import struct
import sys
import time

PORT = 51820
KINDS = {1: "Init", 2: "Response", 3: "EpochRequest", 4: "Reject"}
WG = {1: "wg-initiation", 2: "wg-response", 3: "wg-cookie", 4: "wg-data"}


def csum(b):
    if len(b) % 2:
        b += b"\0"
    s = sum(struct.unpack(f"!{len(b) // 2}H", b))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def ping(dst, seconds, interval, path):
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    sock = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
    sock.setblocking(False)
    ident = os.getpid() & 0xFFFF
    sent = {}  # 16-bit sequence -> (n, t_send)
    n, start = 0, time.monotonic()
    end = start + float(seconds)
    with open(path, "w", buffering=1) as log:
        while n < 1_000_000:
            now = time.monotonic()
            if now >= end:
                break
            due = start + n * float(interval)
            if now >= due:
                seq = n & 0xFFFF
                body = b"qgw-start-restart-" * 2
                chk = csum(struct.pack("!BBHHH", 8, 0, 0, ident, seq) + body)
                t = time.time()
                err = ""
                try:
                    sock.sendto(struct.pack("!BBHHH", 8, 0, chk, ident, seq) + body, (dst, 0))
                except OSError as e:  # no route or device while a tunnel is down
                    err = f" err={e.errno}"
                sent[seq] = (n, t)
                log.write(f"S {n} {t:.6f}{err}\n")
                n += 1
                continue
            ready, _, _ = select.select([sock], [], [], max(0.0, min(due, end) - now))
            for _ in range(64) if ready else []:
                try:
                    data, addr = sock.recvfrom(4096)
                except BlockingIOError:
                    break
                t = time.time()
                icmp = data[(data[0] & 0x0F) * 4 :]
                if addr[0] != dst or len(icmp) < 8:
                    continue
                typ, _, _, rid, rseq = struct.unpack("!BBHHH", icmp[:8])
                if typ == 0 and rid == ident and rseq in sent:
                    k, ts = sent[rseq]
                    log.write(f"R {k} {ts:.6f} {t:.6f}\n")


def loss(path, t1, t2):
    t1, t2 = float(t1), float(t2)
    sent, got = {}, set()
    for line in open(path):
        f = line.split()
        if f[0] == "S" and t1 <= float(f[2]) < t2:
            sent[int(f[1])] = float(f[2])
        elif f[0] == "R":
            got.add(int(f[1]))
    lost = sorted(k for k in sent if k not in got)
    longest, run = 0.0, None
    for k in lost:
        run = run if run and run[1] == k - 1 else [k, k]
        run[1] = k
        longest = max(longest, sent[run[1]] - sent[run[0]])
    print(f"sent={len(sent)} lost={len(lost)} longest_outage_s={longest:.2f}")


def pcap_udp(path):
    """(t, src, sport, dst, dport, payload, length) of every IPv4 UDP datagram in a pcap file (the
    payload as captured: a capture with a short snap length truncates it; length is the real one)."""
    data = open(path, "rb").read()
    if len(data) < 24:
        return
    e = "<" if data[:4] in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1") else ">"
    nano = data[:4] in (b"\x4d\x3c\xb2\xa1", b"\xa1\xb2\x3c\x4d")
    link = struct.unpack(e + "I", data[20:24])[0]
    at = 24
    while at + 16 <= len(data):
        sec, frac, incl, _ = struct.unpack(e + "IIII", data[at : at + 16])
        frame = data[at + 16 : at + 16 + incl]
        at += 16 + incl
        t = sec + frac / (1e9 if nano else 1e6)
        if link == 1 and frame[12:14] == b"\x08\x00":
            ip = frame[14:]
        elif link == 113 and frame[14:16] == b"\x08\x00":
            ip = frame[16:]
        elif link in (101, 228):
            ip = frame
        else:
            continue
        if len(ip) < 28 or ip[0] >> 4 != 4 or ip[9] != 17:
            continue
        ihl = (ip[0] & 0x0F) * 4
        total = struct.unpack("!H", ip[2:4])[0]
        sport, dport = struct.unpack("!HH", ip[ihl : ihl + 4])
        yield t, socket.inet_ntoa(ip[12:16]), sport, socket.inet_ntoa(ip[16:20]), dport, ip[ihl + 8 : total], total - ihl - 8


def hybrid(p):
    return len(p) >= 40 and p[0] == 0x51 and p[1] == 1 and p[2] in KINDS


def describe(p, length=None):
    length = len(p) if length is None else length
    if hybrid(p):
        return f"{KINDS[p[2]]} {p[3] + 1}/{p[4]} x={p[16:20].hex()}"
    if len(p) >= 4 and p[0] in WG and p[1:4] == b"\0\0\0":
        if p[0] == 4:
            return "wg-keepalive" if length == 32 else "wg-data"
        return WG[p[0]]
    return f"udp {length} bytes"


def tai64n(b):  # Unix seconds of a TAI64N label (2^62 + 10 + Unix seconds, as WireGuard)
    return struct.unpack(">Q", b[:8])[0] - (1 << 62) - 10 + struct.unpack(">I", b[8:12])[0] / 1e9


def extract(path, a, b, out):
    pk = [x for x in pcap_udp(path) if x[2] == PORT and x[4] == PORT and len(x[5]) == x[6]]
    a2b = [(t, p) for t, s, _, d, _, p, _ in pk if s == a and d == b]
    b2a = [(t, p) for t, s, _, d, _, p, _ in pk if s == b and d == a]
    ids = dict.fromkeys(p[16:24] for _, p in a2b if hybrid(p) and p[2] == 1)
    for x in ids:
        init, resp = {}, {}
        for t, p in a2b:
            if hybrid(p) and p[2] == 1 and p[16:24] == x:
                init.setdefault(p[3], (t, p))
        for t, p in b2a:
            if hybrid(p) and p[2] == 2 and p[16:24] == x:
                resp.setdefault(p[3], (t, p))
        ni, nr = next(iter(init.values()))[1][4], (next(iter(resp.values()))[1][4] if resp else 0)
        if len(init) != ni or not resp or len(resp) != nr:
            continue
        last = max(t for t, _ in resp.values())
        wgi = next(((t, p) for t, p in a2b if t >= last and describe(p) == "wg-initiation"), None)
        wgr = next(((t, p) for t, p in b2a if wgi and t >= wgi[0] and describe(p) == "wg-response"), None)
        fwd = [init[i][1] for i in sorted(init)] + ([wgi[1]] if wgi else [])
        back = [resp[i][1] for i in sorted(resp)] + ([wgr[1]] if wgr else [])
        for name, ds in (("init", fwd[:ni]), ("a2b", fwd), ("b2a", back)):
            with open(os.path.join(out, name + ".hex"), "w") as f:
                f.writelines(d.hex() + "\n" for d in ds)
        body = init[0][1][24:]
        epoch = struct.unpack("<Q", body[:8])[0]
        print(f"exchange={x.hex()} epoch={epoch} genesis={body[8] & 1} sources=0x{body[9]:02x} "
              f"init_timestamp={tai64n(body[10:22]):.3f} init_sent={min(t for t, _ in init.values()):.3f} "
              f"init_fragments={ni} init_bytes={sum(len(p) for _, p in init.values())} "
              f"response_fragments={nr} wg_initiation={'yes' if wgi else 'no'} wg_response={'yes' if wgr else 'no'} "
              f"captured_exchanges={len(ids)}")
        return
    sys.exit(f"no complete exchange (Init and Response, all fragments) among {len(ids)} captured")


def replay(src, dst, seconds, rate, path):
    datagrams = [bytes.fromhex(l.strip()) for l in open(path) if l.strip()]
    sock = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_UDP)
    sock.bind((src, 0))
    pseudo = socket.inet_aton(src) + socket.inet_aton(dst)
    wire = []
    for d in datagrams:  # UDP header from the real port, with a correct checksum
        hdr = struct.pack("!HHHH", PORT, PORT, 8 + len(d), 0)
        c = csum(pseudo + struct.pack("!BBH", 0, 17, 8 + len(d)) + hdr + d) or 0xFFFF
        wire.append(struct.pack("!HHHH", PORT, PORT, 8 + len(d), c) + d)
    rate, seconds = float(rate), float(seconds)
    count, errors, sent = int(rate * seconds), 0, 0
    start = time.monotonic()
    for i in range(count):
        due = start + i / rate
        now = time.monotonic()
        if now > start + seconds + 2:
            break
        if due > now:
            time.sleep(due - now)
        try:
            sock.sendto(wire[i % len(wire)], (dst, 0))
            sent += 1
        except OSError:
            errors += 1
    print(f"sent={sent} errors={errors} seconds={time.monotonic() - start:.2f} datagrams={len(wire)}")


def timeline(path, a, events, *replayed):
    """Events and the underlay's messages; runs of transport packets and of replayed datagrams
    (payloads that begin like one in a `replayed` hex file) collapse into one line each."""
    ev = [(float(l.split()[1]), "EVENT " + l.split()[0]) for l in open(events) if l.strip()]
    t0 = min(t for t, _ in ev)
    known = [bytes.fromhex(l.strip()) for f in replayed if os.path.exists(f) for l in open(f) if l.strip()]
    rows = []
    for t, s, sp, d, dp, p, n in pcap_udp(path):
        if PORT not in (sp, dp):
            continue
        way = "a->b " if s == a else "b->a "
        rep = any(k.startswith(p) if len(p) < len(k) else p == k for k in known) if p else False
        rows.append((t, way + ("recorded " + describe(p, n) if rep else describe(p, n)), rep))
    out, run = [], []

    def flush():
        if run:
            n = {k: sum(1 for _, w in run if w == k) for k in dict.fromkeys(w for _, w in run)}
            out.append(f"{run[0][0] - t0:10.3f}   " + ", ".join(f"{k} x{v}" for k, v in n.items())
                       + (f"  (until {run[-1][0] - t0:.3f})" if len(run) > 1 else ""))
            run.clear()

    for t, what, rep in sorted(rows + [(t, w, False) for t, w in ev]):
        if rep or what.endswith(("wg-data", "wg-keepalive")):
            run.append((t, what.split(" x=")[0] if rep else what))
            continue
        flush()
        out.append(f"{t - t0:10.3f}   {what}")
    flush()
    print("\n".join(out))


def status_delta(before, after):
    try:
        p0 = json.load(open(before))["peers"][0]
        p1 = json.load(open(after))["peers"][0]
    except (OSError, ValueError, KeyError, IndexError):
        print("drops=? rejects=? verifications=? epoch=?")
        return
    diff = lambda k: {r: v - p0.get(k, {}).get(r, 0) for r, v in p1.get(k, {}).items()
                      if v - p0.get(k, {}).get(r, 0)}
    fmt = lambda d: ",".join(f"{r}:{v}" for r, v in sorted(d.items())) or "-"
    print(f"drops={fmt(diff('hybrid_drops'))} rejects={fmt(diff('hybrid_rejects'))} "
          f"verifications={p1.get('pq_signature_verifications', 0) - p0.get('pq_signature_verifications', 0)} "
          f"epoch={p0.get('epoch')}->{p1.get('epoch')}")


def fields(line):
    return dict(kv.split("=", 1) for kv in line.split()[1:] if "=" in kv)


def spread(xs, timeouts=0, limit=None):
    if not xs and not timeouts:
        return "-"
    note = f", {timeouts} timeout (> {limit} s)" if timeouts else ""
    if not xs:
        return f"no reply{note}"
    return f"{statistics.median(xs):.3f} [{min(xs):.3f} – {max(xs):.3f}]{note}"


def table(path):
    lines = open(path).read().splitlines()
    res = [fields(l) for l in lines if l.startswith("RESULT ")]
    rep = [fields(l) for l in lines if l.startswith("REPLAY ")]
    meta = next((fields(l) for l in lines if l.startswith("META ")), {})
    limit = meta.get("wait_up", "?")
    if res:
        print("Seconds from the (re)started site's process start to the first echo reply a -> b through "
              f"the tunnel (echo every {meta.get('ping_interval_s', '?')} s); median [min – max] over n runs. "
              f"qgw rekey_after_seconds: {meta.get('rekey', '?')}; starts {meta.get('gap_s', '?')} s apart; "
              f"kill -9 after {meta.get('settle_s', '?')} s of traffic, restart {meta.get('down_s', '?')} s later\n")
        print("| case | qgw (hybrid, QKD required) | n | wireguard-go (plain) | n |")
        print("|---|--:|--:|--:|--:|")
        names = {"start-a-first": "start, A (master) first, then B", "start-b-first": "start, B (slave) first, then A",
                 "restart-b": "kill -9 + restart of B (slave)", "restart-a": "kill -9 + restart of A (master)"}
        for case, label in names.items():
            cells = []
            for impl in ("qgw", "wireguard-go"):
                rs = [r for r in res if r["impl"] == impl and r["case"] == case]
                xs = [float(r["secs"]) for r in rs if r["secs"] != "timeout"]
                cells += [spread(xs, len(rs) - len(xs), limit), str(len(rs))]
            print(f"| {label} | {cells[0]} | {cells[1]} | {cells[2]} | {cells[3]} |")
    if rep:
        print("\nReplay of a recorded exchange into a running qgw pair (rekey_after_seconds: 5); per phase "
              "median [min – max] over rounds; drops, rejects and verifications summed over rounds\n")
        print("| phase | datagrams/s (each way) | seconds | rounds | replayed datagrams | epochs A | epochs B "
              "| expected | echoes lost / sent | longest outage s | drops at B (slave) | drops at A (master) "
              "| rejects B / A | ML-DSA verifications B / A |")
        print("|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|---|---|---|--:|")
        for ph in dict.fromkeys(r["phase"] for r in rep):
            rs = [r for r in rep if r["phase"] == ph]
            med = lambda k: spread([float(r[k]) for r in rs]).replace(".000", "")
            total = lambda k: sum(int(r[k]) for r in rs if r[k].lstrip("-").isdigit())

            def merged(k):
                acc = {}
                for r in rs:
                    for kv in r[k].split(","):
                        if ":" in kv:
                            name, v = kv.split(":")
                            acc[name] = acc.get(name, 0) + int(v)
                return ", ".join(f"{n} {v}" for n, v in sorted(acc.items())) or "-"

            print(f"| {ph} | {rs[0]['rate']} | {rs[0]['secs']} | {len(rs)} | {total('replayed')} | "
                  f"{med('epochs_a')} | {med('epochs_b')} | {rs[0]['expected']} | "
                  f"{total('ping_lost')} / {total('ping_sent')} | {max(float(r['outage']) for r in rs):.2f} | "
                  f"{merged('drops_b')} | {merged('drops_a')} | {merged('rejects_b')} / {merged('rejects_a')} | "
                  f"{total('verif_b')} / {total('verif_a')} |")


def main():
    cmd, a = sys.argv[1], sys.argv[2:]
    {
        "ping": lambda: ping(*a),
        "loss": lambda: loss(*a),
        "extract": lambda: extract(*a),
        "replay": lambda: replay(*a),
        "timeline": lambda: timeline(*a),
        "status-delta": lambda: status_delta(*a),
        "table": lambda: table(*a),
    }.get(cmd, lambda: sys.exit(__doc__))()


if __name__ == "__main__":
    main()
PY
}

# ------------------------------------------------------------------ set-up
configs() { # tag rekey-seconds-or-empty (empty: qgw's default)
  qgw_config a $UL_B "$OUT/$1.audit-a.jsonl" "$2"
  qgw_config b $UL_A "$OUT/$1.audit-b.jsonl" "$2"
}

# ------------------------------------------------------------------ one run's processes
declare -A WRAP=() PROC=() # site -> PID of the timeout wrapper, of the daemon itself
declare -a RUN=()          # this run's helpers (pinger, tcpdump)
PINGLOG="" EVENTS="" LIVES=0
RUN_LIFE=0 # seconds: every daemon and helper of a run is bounded by it (set per kind of run in main)

event() { echo "$1 $2" >> "$EVENTS"; }

start_qgw() { # site tag
  LIVES=$((LIVES + 1))
  qgw_up "$1" "$OUT/$2.qgw-$1-$LIVES.log" $RUN_LIFE
  WRAP[$1]=$last
  PROC[$1]=$(child_of "$last") || die "qgw at site $1 did not start"
}

start_wg() { # site tag: wireguard-go, then its configuration (all part of the timed start)
  local s=$1 ep=$UL_B
  [[ $s == b ]] && ep=$UL_A
  LIVES=$((LIVES + 1))
  wg_go_up "$s" "wgsr-$s" $ep verbose $RUN_LIFE "$OUT/$2.wg-$s-$LIVES.log"
  WRAP[$s]=$last
  PROC[$s]=$(child_of "${WRAP[$s]}") || die "wireguard-go at site $s did not start"
}

kill_site() { # site: SIGKILL the daemon (a PID this script started, in its namespace)
  local p=${PROC[$1]}
  in_our_ns "$p" || die "site $1's daemon (pid $p) is not running in our namespace"
  kill -KILL "$p"
  wait "${WRAP[$1]}" 2> /dev/null || true
}

begin_run() { # tag: pinger a -> b and an underlay capture on sr-ul-a
  PINGLOG="$OUT/$1.ping" EVENTS="$OUT/$1.events" LIVES=0
  : > "$EVENTS"
  RUN=()
  start $NS_A "$OUT/$1.tcpdump.log" timeout -k 5 $RUN_LIFE tcpdump -i $VETH_A -n -s 160 -U -w "$OUT/$1.pcap" "udp port $PORT"
  RUN+=("$last")
  local _
  for _ in $(seq 100); do grep -q 'listening on' "$OUT/$1.tcpdump.log" && break; sleep 0.05; done
  start $NS_A "$OUT/$1.pinger.log" python3 "$WD/sr.py" ping $TN_B $RUN_LIFE $PING_INTERVAL "$PINGLOG"
  RUN+=("$last")
  event run_start "$EPOCHREALTIME"
}

end_run() { # tag
  local s p
  event run_end "$EPOCHREALTIME"
  for s in a b; do [[ -n "${WRAP[$s]:-}" ]] && stop_pid "${WRAP[$s]}"; done
  WRAP=() PROC=()
  for p in "${RUN[@]}"; do stop_pid "$p"; done
  python3 "$WD/sr.py" timeline "$OUT/$1.pcap" $UL_A "$EVENTS" "$WD/a2b.hex" "$WD/b2a.hex" \
    > "$OUT/$1.timeline.txt" 2>&1 || true
}

wait_reply() { # T: seconds from T to the first echo reply received after T, or "timeout"
  local deadline=$((SECONDS + WAIT_UP)) d
  while ((SECONDS <= deadline)); do
    d=$(awk -v t="$1" '$1 == "R" && $4 + 0 > t + 0 { printf "%.3f", $4 - t; exit }' "$PINGLOG")
    [[ -n "$d" ]] && { echo "$d"; return 0; }
    sleep 0.05
  done
  echo timeout
}

result() { # impl case rep secs tag
  echo "RESULT impl=$1 case=$2 rep=$3 secs=$4 run=$5" | tee -a "$OUT/results.txt" >&2
}

timed_up() { # impl up-function site event case rep tag: SITE (re)started at a recorded time T,
  local t d # then the RESULT of CASE: seconds from T to the first echo reply after it
  t=$EPOCHREALTIME
  event "$4" "$t"
  $2 "$3" "$7"
  d=$(wait_reply "$t")
  result "$1" "$5" "$6" "$d" "$7"
}

# One run: both sites started in ORDER (ab or ba); for ab also a restart of b, then of a.
start_restart_run() { # impl(qgw|wireguard-go) rep order
  local impl=$1 rep=$2 order=$3 first=${3:0:1} second=${3:1:1} tag s
  local up=start_qgw
  [[ $impl == wireguard-go ]] && up=start_wg
  tag="${impl%%-*}-r$rep-$order"
  RUN_LIFE=$SR_LIFE
  [[ $impl == qgw ]] && configs "$tag" "$REKEY"
  begin_run "$tag"
  event "start_$first" "$EPOCHREALTIME"
  $up "$first" "$tag"
  sleep $GAP
  timed_up "$impl" $up "$second" "start_$second" "start-$first-first" "$rep" "$tag"
  if [[ $order == ab ]]; then
    for s in b a; do
      sleep "$SETTLE"
      event "kill_$s" "$EPOCHREALTIME"
      kill_site $s
      sleep $DOWN
      timed_up "$impl" $up "$s" "restart_$s" "restart-$s" "$rep" "$tag"
    done
  fi
  sleep 0.5
  end_run "$tag"
}

# ------------------------------------------------------------------ replay
kv() { sed -n "s/.*\b$1=\([^ ]*\).*/\1/p" <<< "$2"; } # key "k=v ..." -> v

status_json() { # site file
  ip netns exec "$(ns_of "$1")" "$BIN/qgw" status "qgwsr-$1" --json > "$2" 2> /dev/null || true
}

replay_phase() { # round phase
  local r=$1 ph=$2 kind=${2%@*} rate=${2#*@} tag="replay-r$1-${2/@/-}" s t1 t2
  [[ $kind == none ]] && rate=0
  for s in a b; do status_json $s "$OUT/$tag.status-$s-before.json"; done
  log "replay round $r: $ph for ${REPLAY_SECS}s"
  local senders=()
  t1=$EPOCHREALTIME
  event "${tag}_start" "$t1"
  case $kind in
    none) sleep "$REPLAY_SECS" ;;
    init | exchange)
      local fwd=init
      [[ $kind == exchange ]] && fwd=a2b
      start $NS_A "$OUT/$tag.send-a2b.out" timeout -k 5 $((REPLAY_SECS + 30)) \
        python3 "$WD/sr.py" replay $UL_A $UL_B "$REPLAY_SECS" "$rate" "$WD/$fwd.hex"
      senders+=("$last")
      if [[ $kind == exchange ]]; then
        start $NS_B "$OUT/$tag.send-b2a.out" timeout -k 5 $((REPLAY_SECS + 30)) \
          python3 "$WD/sr.py" replay $UL_B $UL_A "$REPLAY_SECS" "$rate" "$WD/b2a.hex"
        senders+=("$last")
      fi
      for s in "${senders[@]}"; do wait "$s" || log "a replay sender failed (see $OUT/$tag.send-*.out)"; done
      ;;
    *) die "unknown replay phase $ph (none, init@RATE, exchange@RATE)" ;;
  esac
  t2=$EPOCHREALTIME
  event "${tag}_end" "$t2"
  sleep 1.5 # late replies and counters
  for s in a b; do status_json $s "$OUT/$tag.status-$s-after.json"; done
  local replayed=0 f
  for f in "$OUT/$tag".send-*.out; do
    [[ -e "$f" ]] || continue
    replayed=$((replayed + $(sed -n 's/^sent=\([0-9]*\).*/\1/p' "$f" | head -n 1)))
  done
  local ea eb lossl da db
  ea=$(python3 "$here/bench_report.py" epochs-between "$t1" "$t2" "$OUT/replay.audit-a.jsonl")
  eb=$(python3 "$here/bench_report.py" epochs-between "$t1" "$t2" "$OUT/replay.audit-b.jsonl")
  lossl=$(python3 "$WD/sr.py" loss "$PINGLOG" "$t1" "$t2")
  da=$(python3 "$WD/sr.py" status-delta "$OUT/$tag.status-a-before.json" "$OUT/$tag.status-a-after.json")
  db=$(python3 "$WD/sr.py" status-delta "$OUT/$tag.status-b-before.json" "$OUT/$tag.status-b-after.json")
  echo "REPLAY round=$r phase=$ph rate=$rate secs=$REPLAY_SECS replayed=$replayed epochs_a=$ea epochs_b=$eb" \
    "expected=$((REPLAY_SECS / REPLAY_REKEY)) ping_sent=$(kv sent "$lossl") ping_lost=$(kv lost "$lossl")" \
    "outage=$(kv longest_outage_s "$lossl") drops_a=$(kv drops "$da") drops_b=$(kv drops "$db")" \
    "rejects_a=$(kv rejects "$da") rejects_b=$(kv rejects "$db") verif_a=$(kv verifications "$da")" \
    "verif_b=$(kv verifications "$db") epoch_a=$(kv epoch "$da") epoch_b=$(kv epoch "$db")" | tee -a "$OUT/results.txt" >&2
}

replay_run() {
  local tag=replay s
  RUN_LIFE=$REPLAY_LIFE
  log "replay: qgw pair with rekey_after_seconds: $REPLAY_REKEY"
  configs "$tag" "$REPLAY_REKEY"
  begin_run "$tag"
  event start_a "$EPOCHREALTIME"
  start_qgw a "$tag"
  event start_b "$EPOCHREALTIME"
  start_qgw b "$tag"
  [[ "$(wait_reply "$EPOCHREALTIME")" != timeout ]] || die "replay: no tunnel in ${WAIT_UP}s; see $OUT/$tag.qgw-a-1.log"
  sleep $AGE_SECS
  log "replay: recording the underlay on $VETH_B for ${CAPTURE_SECS}s"
  start $NS_B "$OUT/replay.record.log" timeout -k 5 $((CAPTURE_SECS + 30)) tcpdump -i $VETH_B -n -s 0 -U \
    -w "$OUT/replay.record.pcap" "udp port $PORT"
  local rec=$last _
  for _ in $(seq 100); do grep -q 'listening on' "$OUT/replay.record.log" && break; sleep 0.05; done
  event record_start "$EPOCHREALTIME"
  sleep $CAPTURE_SECS
  stop_pid "$rec"
  event record_end "$EPOCHREALTIME"
  python3 "$WD/sr.py" extract "$OUT/replay.record.pcap" $UL_A $UL_B "$WD" | tee "$OUT/replay.recorded.txt" >&2 \
    || die "replay: no complete exchange recorded"
  cp "$WD/init.hex" "$WD/a2b.hex" "$WD/b2a.hex" "$OUT/" # the recorded datagrams (public wire bytes)
  sleep $AGE_SECS # newer epochs: the recording is old now
  local r ph
  for ((r = 1; r <= ROUNDS; r++)); do
    for ph in ${PHASES//,/ }; do
      replay_phase "$r" "$ph"
      sleep 2
    done
  done
  end_run "$tag"
  for s in a b; do
    "$BIN/qgw" audit verify --key "$OUT/$s.mldsa.pub" "$OUT/replay.audit-$s.jsonl"* > "$OUT/replay.audit-verify-$s.log" 2>&1 \
      && echo "AUDIT site=$s verify=ok" || echo "AUDIT site=$s verify=FAILED"
  done | tee -a "$OUT/results.txt" >&2
}

# ------------------------------------------------------------------ main
cleanup_command "$@"
while getopts ":n:o:s:k:r:R:p:c:Bh" opt; do
  case "$opt" in
    n) N=$OPTARG ;; o) OUT=$OPTARG ;; s) SETTLE=$OPTARG ;; k) REKEY=$OPTARG ;; r) ROUNDS=$OPTARG ;;
    R) REPLAY_SECS=$OPTARG ;; p) PHASES=$OPTARG ;; c) PARTS=$OPTARG ;; B) BUILD=0 ;;
    h) sed -n '2,56p' "$0"; exit 0 ;;
    *) die "bad option; see -h" ;;
  esac
done
[[ "$N" =~ ^[0-9]+$ && $N -ge 1 && $N -le 50 ]] || die "-n must be 1..50"
ROUNDS=${ROUNDS:-$((N < 3 ? N : 3))}
[[ "$ROUNDS" =~ ^[0-9]+$ && $ROUNDS -ge 1 && $ROUNDS -le 50 ]] || die "-r must be 1..50"
[[ "$SETTLE" =~ ^[0-9]+$ && $SETTLE -ge 1 && $SETTLE -le 120 ]] || die "-s must be 1..120"
[[ -z "$REKEY" || ("$REKEY" =~ ^[0-9]+$ && $REKEY -ge 5 && $REKEY -le 165) ]] || die "-k must be 5..165"
[[ "$REPLAY_SECS" =~ ^[0-9]+$ && $REPLAY_SECS -ge 5 && $REPLAY_SECS -le 120 ]] || die "-R must be 5..120"
for ph in ${PHASES//,/ }; do
  [[ $ph == none || $ph =~ ^(init|exchange)@[0-9]+$ ]] || die "-p: bad phase $ph"
  [[ $ph == none ]] || ((${ph#*@} >= 1 && ${ph#*@} <= 5000)) || die "-p: rate 1..5000 datagrams/s"
done
for p in ${PARTS//,/ }; do [[ $p =~ ^(qgw|wg|replay)$ ]] || die "-c: parts are qgw, wg, replay"; done
want() { [[ ",$PARTS," == *",$1,"* ]]; }
[[ $EUID -eq 0 ]] || die "run as root (network namespaces, TUN, raw sockets)"
ensure_tcpdump
need ip python3 tcpdump timeout awk
if want wg; then
  command -v wg > /dev/null || die "missing wg (apt-get install wireguard-tools)"
  find_wireguard_go
fi
[[ -n "$OUT" ]] || OUT="$(mktemp -d /tmp/qgw-sr.XXXXXX)"
mkdir -p "$OUT"
rm -f "$OUT"/*.audit-?.jsonl*
WD="$(mktemp -d /tmp/qgw-sr-keys.XXXXXX)"
arm_cleanup
# shellcheck disable=SC2119 # no examples to build
[[ $BUILD == 1 ]] && build_release
for b in qgw qkd-kme-sim; do [[ -x "$BIN/$b" ]] || die "missing $BIN/$b (drop -B)"; done
# The run uses copies: a build of the shared tree during the run cannot change the binary under it.
mkdir "$WD/bin"
cp "$BIN/qgw" "$BIN/qkd-kme-sim" "$WD/bin/"
BIN="$WD/bin"
want qgw && n_qgw=1 || n_qgw=0
want wg && n_wg=1 || n_wg=0
n_ph=$(tr ',' '\n' <<< "$PHASES" | grep -c .)
SR_LIFE=$((GAP + 3 * WAIT_UP + 2 * (SETTLE + DOWN) + 60))                                 # one start/restart run
REPLAY_LIFE=$((WAIT_UP + CAPTURE_SECS + 2 * AGE_SECS + ROUNDS * n_ph * (REPLAY_SECS + 15) + 60)) # the replay run
LIFE=$((2 * N * (n_qgw + n_wg) * (SR_LIFE + 10) + REPLAY_LIFE + 300))                       # the KME simulator
write_helper
pair_setup $VETH_A $VETH_B
others=$(ip netns list | awk '{print $1}' | grep -vxE "$NS_A|$NS_B" | grep -E '^qgw' | sort | tr '\n' ',' | sed 's/,$//' || true)
dirty=""
[[ -n "$(git -C "$repo" status --porcelain --untracked-files=no 2> /dev/null)" ]] && dirty="+dirty"
read -r l1 l5 l15 _ < /proc/loadavg
echo "META date=$(date -u +%FT%TZ) kernel=$(uname -r) cores=$(nproc) loadavg=$l1,$l5,$l15" \
  "other_qgw_namespaces=${others:-none} qgw=$(git -C "$repo" rev-parse --short HEAD)$dirty" \
  "wireguard_go=$([[ -n "$WGGO" ]] && "$WGGO" --version | awk 'NR==1{print $2}' || echo -)" \
  "qgw_sha256=$(sha256sum "$BIN/qgw" | cut -c1-12) n=$N rounds=$ROUNDS settle_s=$SETTLE gap_s=$GAP down_s=$DOWN ping_interval_s=$PING_INTERVAL" \
  "rekey=${REKEY:-120(default)} replay_rekey=$REPLAY_REKEY replay_s=$REPLAY_SECS phases=$PHASES wait_up=$WAIT_UP" \
  | tee "$OUT/results.txt" >&2
kme_start "$OUT/kme.log" "$LIFE"
t_begin=$SECONDS
for ((rep = 1; rep <= N; rep++)); do
  for impl in qgw wireguard-go; do
    [[ $impl == qgw ]] && ! want qgw && continue
    [[ $impl == wireguard-go ]] && ! want wg && continue
    log "round $rep/$N: $impl"
    start_restart_run "$impl" "$rep" ab
    start_restart_run "$impl" "$rep" ba
  done
done
want replay && replay_run
stop_pid "$KME_PID"
read -r l1 l5 l15 _ < /proc/loadavg
echo "END wall_s=$((SECONDS - t_begin)) loadavg=$l1,$l5,$l15" | tee -a "$OUT/results.txt" >&2
python3 "$WD/sr.py" table "$OUT/results.txt" | tee "$OUT/table.md"
log "results: $OUT"
