#!/usr/bin/env python3
"""The clinical traffic probes of demo.sh's "clinical classes" phase and gateway/bench/classes.sh
(Python standard library only; dcmtk's storescu for imaging). Every subcommand is bounded in time
and prints one JSON object a line on stdout, the last one its result.

  clinical.py mqtt-sub HOST SECONDS      telemonitoring, the central station: subscribes to the
                                          vital-signs topic on the broker at HOST:1883 and records
                                          each message's one-way delay (receive time - the send
                                          time it carries); prints {"event": "subscribed"} first
  clinical.py mqtt-pub HOST SECONDS      telemonitoring, the bedside monitor: a vital-sign message
                                          every 20 ms (MQTT 3.1.1, QoS 0) carrying seq and send time
  clinical.py video-recv BIND SECONDS    telemedicine: receives the RTP-like stream on BIND:20000;
                                          loss, one-way delay, jitter
  clinical.py video-send DST SECONDS     telemedicine: 30 frames/s, each a burst of 17 datagrams of
                                          1000 bytes (4.08 Mbit/s) to DST:20000
  clinical.py imaging DST SECONDS DIR STREAMS [PORT]
                                          imaging: STREAMS concurrent `storescu` associations that
                                          store DIR/*.dcm to DST:PORT (11112) over and over; Mbit/s
                                          of DICOM files acknowledged
  clinical.py summary VARIANT PHASE ROUND FILE...
                                          the probes' results (each FILE's last JSON line) merged
                                          into one JSON line with these three tags: delays, jitter,
                                          loss, Mbit/s

Times: send and receive times are CLOCK_REALTIME in ns. The sites are network namespaces of one
machine and share that clock, so receive - send is the one-way delay with no clock offset.

Why a minimal MQTT client here rather than `mosquitto_pub -l` and `mosquitto_sub -F '%U %p'`: the
send time is taken right before the socket write and the receive time right after the socket read,
in one process each, with TCP_NODELAY set explicitly; with the mosquitto clients the times would
cross a pipe and a C client's stdio buffering. The broker stays the real mosquitto.

Jitter of the video stream: per packet, |delay - previous delay| in arrival order (its p99), and
the interarrival jitter estimate of RFC 3550 §6.4.1 (J += (|D(i-1,i)| - J) / 16, in ms here
rather than RTP timestamp units).
"""

import json
import os
import re
import select
import socket
import struct
import subprocess
import sys
import time

MQTT_PORT = 1883  # telemonitoring class (MQTT)
VIDEO_PORT = 20000  # telemedicine class (RTP range 16384-32767)
DICOM_PORT = 11112  # imaging class (DICOM; 104 is the other DICOM port)
TOPIC = "icu/bed-7/vitals"
MQTT_INTERVAL = 0.020  # s between vital-sign messages
FPS, BURST, DGRAM = 30, 17, 1000  # video: frames/s, datagrams a frame, bytes a datagram
VIDEO_HEADER = struct.Struct("!IQ")  # sequence number, send time (ns): 12 bytes
GRACE = 2.0  # s receivers wait after the senders' time for what is still in flight


def emit(obj):
    sys.stdout.write(json.dumps(obj, separators=(",", ":")) + "\n")
    sys.stdout.flush()


def percentile(values, p):
    """Nearest-rank percentile of a sorted list, None when empty."""
    if not values:
        return None
    rank = max(1, -(-len(values) * p // 100))  # ceil(n * p / 100)
    return values[int(rank) - 1]


def ms_stats(prefix, ns_values):
    """p50, p99 and max of nanosecond values, in ms, keyed PREFIX_p50_ms ..."""
    v = sorted(ns_values)
    out = {}
    for name, x in (("p50", percentile(v, 50)), ("p99", percentile(v, 99)), ("max", v[-1] if v else None)):
        out["%s_%s_ms" % (prefix, name)] = None if x is None else round(x / 1e6, 3)
    return out


# ---------------------------------------------------------------- MQTT 3.1.1 (OASIS, §2 and §3)
def mqtt_packet(kind, body):
    """Fixed header (type and flags byte, remaining length as a base-128 varint, §2.2.3) + body."""
    n, length = len(body), b""
    while True:
        n, digit = n // 128, n % 128
        length += bytes([digit | (0x80 if n else 0)])
        if not n:
            return bytes([kind]) + length + body


def mqtt_str(s):
    b = s.encode()
    return struct.pack("!H", len(b)) + b


def mqtt_connect(host, client_id):
    """A TCP connection with TCP_NODELAY, CONNECT (clean session, no keep-alive), CONNACK checked."""
    sock = socket.create_connection((host, MQTT_PORT), timeout=10)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.sendall(mqtt_packet(0x10, mqtt_str("MQTT") + bytes([4, 0x02]) + struct.pack("!H", 0) + mqtt_str(client_id)))
    ack = recv_exact(sock, 4)
    if ack[0] != 0x20 or ack[3] != 0:
        raise SystemExit("mqtt: CONNACK refused: %s" % ack.hex())
    return sock


def recv_exact(sock, n):
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise SystemExit("mqtt: connection closed by the broker")
        buf += chunk
    return buf


def mqtt_frames(buf):
    """Splits complete packets off BUF: ([(type byte, body)], rest)."""
    out, pos = [], 0
    while True:
        mult, length, i = 1, 0, pos + 1
        while i < len(buf):
            length += (buf[i] & 0x7F) * mult
            mult *= 128
            i += 1
            if not buf[i - 1] & 0x80:
                break
        else:
            return out, buf[pos:]
        if i + length > len(buf):
            return out, buf[pos:]
        out.append((buf[pos], buf[i : i + length]))
        pos = i + length


def mqtt_sub(host, seconds):
    sock = mqtt_connect(host, "central-station-classes")
    sock.sendall(mqtt_packet(0x82, struct.pack("!H", 1) + mqtt_str(TOPIC) + b"\x00"))
    frames, buf = [], b""
    while not frames:
        buf += recv_exact(sock, 1)
        frames, buf = mqtt_frames(buf)
    if frames[0][0] != 0x90:
        raise SystemExit("mqtt: no SUBACK")
    emit({"event": "subscribed"})
    delays, seqs, deadline = [], set(), time.monotonic() + seconds + GRACE
    sock.setblocking(False)
    while time.monotonic() < deadline:
        ready, _, _ = select.select([sock], [], [], max(0.0, deadline - time.monotonic()))
        if not ready:
            continue
        chunk = sock.recv(65536)
        now = time.time_ns()
        if not chunk:
            break
        frames, buf = mqtt_frames(buf + chunk)
        for kind, body in frames:
            if kind >> 4 != 3:  # only PUBLISH (QoS 0: topic, then the payload)
                continue
            (tlen,) = struct.unpack_from("!H", body)
            msg = json.loads(body[2 + tlen :])
            seqs.add(msg["seq"])
            delays.append(now - msg["t_ns"])
    sock.close()
    emit(dict(probe="mqtt-sub", received=len(seqs), duplicates=len(delays) - len(seqs), **ms_stats("delay", delays)))


def mqtt_pub(host, seconds):
    sock = mqtt_connect(host, "bed-7-monitor-classes")
    start, seq, sent_bytes = time.monotonic(), 0, 0
    while True:
        due = start + seq * MQTT_INTERVAL
        if due >= start + seconds:
            break
        pause = due - time.monotonic()
        if pause > 0:
            time.sleep(pause)
        seq += 1
        # A bedside monitor's reading (synthetic values), its sequence number and send time.
        payload = '{"bed":7,"seq":%d,"t_ns":%d,"hr":%d,"spo2":98,"rr":14}' % (seq, time.time_ns(), 70 + seq % 7)
        packet = mqtt_packet(0x30, mqtt_str(TOPIC) + payload.encode())
        sock.sendall(packet)
        sent_bytes += len(packet)
    sock.sendall(mqtt_packet(0xE0, b""))  # DISCONNECT
    sock.close()
    emit({"probe": "mqtt-pub", "sent": seq, "mbit_s": round(sent_bytes * 8 / seconds / 1e6, 3)})


# ---------------------------------------------------------------- RTP-like video
def video_send(dst, seconds):
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    pad = bytes(DGRAM - VIDEO_HEADER.size)
    start, frame, seq, errors = time.monotonic(), 0, 0, 0
    while start + frame / FPS < start + seconds:
        pause = start + frame / FPS - time.monotonic()
        if pause > 0:
            time.sleep(pause)
        for _ in range(BURST):
            try:
                sock.sendto(VIDEO_HEADER.pack(seq, time.time_ns()) + pad, (dst, VIDEO_PORT))
            except OSError:
                errors += 1  # e.g. ENOBUFS: counted as sent, so it shows as loss
            seq += 1
        frame += 1
    emit({"probe": "video-send", "sent": seq, "send_errors": errors, "mbit_s": round(FPS * BURST * DGRAM * 8 / 1e6, 2)})


def video_recv(bind, seconds):
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    sock.bind((bind, VIDEO_PORT))
    emit({"event": "listening"})
    deadline = time.monotonic() + seconds + GRACE
    delays, diffs, seqs, jitter, jitter_max, prev = [], [], set(), 0.0, 0.0, None
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            break
        sock.settimeout(left)
        try:
            data = sock.recv(2048)
        except socket.timeout:
            break
        now = time.time_ns()
        if len(data) < VIDEO_HEADER.size:
            continue
        seq, sent = VIDEO_HEADER.unpack_from(data)
        d = now - sent
        seqs.add(seq)
        delays.append(d)
        if prev is not None:
            diffs.append(abs(d - prev))
            jitter += (abs(d - prev) - jitter) / 16  # RFC 3550 §6.4.1
            jitter_max = max(jitter_max, jitter)
        prev = d
    out = dict(probe="video-recv", received=len(seqs), duplicates=len(delays) - len(seqs))
    out.update(ms_stats("delay", delays))
    out.update(ms_stats("jitter", diffs))
    out.update(rfc3550_jitter_ms=round(jitter / 1e6, 3), rfc3550_jitter_max_ms=round(jitter_max / 1e6, 3))
    emit(out)


# ---------------------------------------------------------------- DICOM bulk (dcmtk storescu)
STORE_OK = re.compile(r"Received Store Response \(Success")


def imaging(dst, seconds, directory, streams, port=DICOM_PORT):
    files = sorted(os.path.join(directory, f) for f in os.listdir(directory) if f.endswith(".dcm"))
    if not files:
        raise SystemExit("imaging: no .dcm file in %s" % directory)
    sizes = [os.path.getsize(f) for f in files]
    cmd = ["storescu", "-v", "-aet", "SITE_A_MODALITY", "-aec", "SITE_B_PACS", "-xe", "--repeat", "100000", dst, str(port)]
    # dcmtk 3.6.7 leaves Nagle on unless TCP_NODELAY=1 is in the environment: each store would then
    # wait ~40 ms for a delayed ACK (PACS such as dcm4che set TCP_NODELAY by default).
    env = dict(os.environ, TCP_NODELAY="1")
    procs = [subprocess.Popen(cmd + files, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env) for _ in range(streams)]
    start = time.monotonic()
    deadline = start + seconds
    done = []  # (time, bytes) of every acknowledged store
    nth = [0] * streams
    by_fd = {p.stdout.fileno(): i for i, p in enumerate(procs)}
    try:
        while time.monotonic() < deadline and by_fd:
            ready, _, _ = select.select(list(by_fd), [], [], max(0.0, deadline - time.monotonic()))
            for fd in ready:
                i = by_fd[fd]
                line = procs[i].stdout.readline()
                if not line:
                    del by_fd[fd]
                elif STORE_OK.search(line):
                    done.append((time.monotonic(), sizes[nth[i] % len(sizes)]))
                    nth[i] += 1
    finally:
        for p in procs:  # ended by their PIDs: only the processes started here
            p.terminate()
        for p in procs:
            try:
                p.wait(5)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
    # The rate between the first and the last acknowledgement: whole files only, no partial one.
    mbit = None
    if len(done) >= 2 and done[-1][0] > done[0][0]:
        mbit = round(sum(b for _, b in done[1:]) * 8 / (done[-1][0] - done[0][0]) / 1e6, 1)
    emit({"probe": "imaging", "stored": len(done), "bytes": sum(b for _, b in done), "mbit_s": mbit, "streams": streams})


# ---------------------------------------------------------------- summary
def last_json(path):
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            lines = [line for line in f.read().splitlines() if line.startswith("{")]
    except FileNotFoundError:
        return {}
    for line in reversed(lines):
        try:
            obj = json.loads(line)
        except ValueError:
            continue
        if "probe" in obj:
            return obj
    return {}


def summary(variant, phase, rnd, paths):
    got = {}
    for p in paths:
        obj = last_json(p)
        if obj:
            got[obj["probe"]] = obj
    pub, sub = got.get("mqtt-pub", {}), got.get("mqtt-sub", {})
    vs, vr, img = got.get("video-send", {}), got.get("video-recv", {}), got.get("imaging")
    out = {"variant": variant, "phase": phase, "round": rnd}
    if pub or sub:
        out.update(tm_sent=pub.get("sent"), tm_received=sub.get("received", 0), tm_mbit_s=pub.get("mbit_s"))
        out["tm_lost"] = None if pub.get("sent") is None else pub["sent"] - sub.get("received", 0)
        for k in ("p50", "p99", "max"):
            out["tm_%s_ms" % k] = sub.get("delay_%s_ms" % k)
    if vs or vr:
        out.update(video_sent=vs.get("sent"), video_received=vr.get("received", 0), video_mbit_s=vs.get("mbit_s"))
        out["video_lost"] = None if vs.get("sent") is None else vs["sent"] - vr.get("received", 0)
        for k in ("delay_p50_ms", "delay_p99_ms", "jitter_p99_ms", "rfc3550_jitter_ms"):
            out["video_" + k] = vr.get(k)
    if img is not None:
        out["imaging_mbit_s"] = img.get("mbit_s")
        out["imaging_stored"] = img.get("stored")
    emit(out)


def main(argv):
    try:
        cmd, args = argv[1], argv[2:]
        if cmd == "mqtt-sub" and len(args) == 2:
            return mqtt_sub(args[0], float(args[1]))
        if cmd == "mqtt-pub" and len(args) == 2:
            return mqtt_pub(args[0], float(args[1]))
        if cmd == "video-send" and len(args) == 2:
            return video_send(args[0], float(args[1]))
        if cmd == "video-recv" and len(args) == 2:
            return video_recv(args[0], float(args[1]))
        if cmd == "imaging" and len(args) in (4, 5):
            return imaging(args[0], float(args[1]), args[2], int(args[3]), *map(int, args[4:]))
        if cmd == "summary" and len(args) >= 4:
            return summary(args[0], args[1], int(args[2]), args[3:])
    except (IndexError, ValueError) as e:
        print("clinical.py: %s" % e, file=sys.stderr)
    print(__doc__.split("\n\n")[1], file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv) or 0)
