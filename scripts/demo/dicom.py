#!/usr/bin/env python3
"""DICOM helpers for demo.sh (Python standard library only, plus dcmtk's dump2dcm).

  dicom.py make OUTDIR COUNT     write COUNT synthetic CT instances (one study, one series)
  dicom.py compare SENT RECEIVED check that every sent instance arrived with the same data set

`make` draws a 512x512, 16-bit CT-like phantom per slice (body, spine, lungs, a lesion that moves
from slice to slice, deterministic noise), writes it as raw little-endian pixels next to a dcmtk
dump file, and lets `dump2dcm` build a DICOM Part 10 file in Explicit VR Little Endian. Everything
is synthetic: the patient is DEMO^PATIENT and every UID is a fresh 2.25.<UUID> UID.

`compare` matches files by SOP Instance UID and compares the data set bytes, i.e. everything after
the File Meta Information (group 0002). The meta group legitimately differs between sender and
receiver (storescp writes its own implementation UID and the source AE title), the data set must
not. It also hashes the Pixel Data value on both sides. Exit status 1 if anything differs or is
missing; the last line is the summary that demo.sh shows.
"""

import array
import hashlib
import math
import os
import random
import struct
import subprocess
import sys
import uuid

ROWS = COLS = 512
CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2"
EXPLICIT_VR_LE = "1.2.840.10008.1.2.1"
# VRs whose explicit-VR header has 2 reserved bytes and a 4-byte length (PS3.5 §7.1.2).
LONG_VRS = {b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"SV", b"UC", b"UN", b"UR", b"UT", b"UV"}
UNDEFINED = 0xFFFFFFFF


def uid():
    """A UUID-derived UID (PS3.5 §B.2): no registered root needed, at most 44 characters."""
    return "2.25.%d" % uuid.uuid4().int


def phantom(slice_no, count):
    """Stored values (HU + 1024) of one axial slice, as little-endian 16-bit words."""
    rng = random.Random(4242 + slice_no)
    z = (slice_no - (count - 1) / 2.0) / max(count, 1)  # -0.5 .. 0.5 through the stack
    cx, cy = COLS / 2.0, ROWS / 2.0 + 10
    # (centre x, centre y, half axis x, half axis y, HU), painted in order; later ones win.
    shapes = [
        (cx, cy, 220, 160, 40),  # soft tissue
        (cx - 95, cy - 20, 70, 95 - 20 * abs(z), -820),  # right lung
        (cx + 95, cy - 20, 70, 95 - 20 * abs(z), -820),  # left lung
        (cx, cy - 40, 40, 45, 50),  # heart
        (cx, cy + 110, 28, 26, 700),  # vertebral body
        (cx, cy + 110, 14, 12, 250),  # spinal canal (marrow)
        (cx - 90 + 40 * z, cy - 40, 9, 9, 60),  # a nodule that moves with the slice
    ]
    words = array.array("H", bytes(ROWS * COLS * 2))
    for y in range(ROWS):
        row = [0] * COLS  # air: -1024 HU
        for sx, sy, ax, ay, hu in shapes:
            dy = (y - sy) / ay
            if dy * dy >= 1.0:
                continue
            half = ax * math.sqrt(1.0 - dy * dy)
            x0, x1 = max(0, int(sx - half)), min(COLS, int(sx + half) + 1)
            row[x0:x1] = [hu + 1024] * (x1 - x0)
        base = y * COLS
        for x in range(COLS):
            v = row[x]
            if v:
                v += rng.randint(-12, 12)
            words[base + x] = min(max(v, 0), 4095)
    if sys.byteorder == "big":
        words.byteswap()
    return words.tobytes()


def make(outdir, count):
    os.makedirs(outdir, exist_ok=True)
    study, series, frame = uid(), uid(), uid()
    files = []
    for n in range(1, count + 1):
        sop = uid()
        raw = os.path.join(outdir, "slice-%02d.raw" % n)
        with open(raw, "wb") as f:
            f.write(phantom(n, count))
        z = -100.0 + 5.0 * n
        dump = os.path.join(outdir, "slice-%02d.dump" % n)
        with open(dump, "w", encoding="ascii") as f:
            f.write(
                "\n".join(
                    [
                        "(0008,0005) CS [ISO_IR 100]",
                        "(0008,0008) CS [ORIGINAL\\PRIMARY\\AXIAL]",
                        "(0008,0016) UI [%s]" % CT_IMAGE_STORAGE,
                        "(0008,0018) UI [%s]" % sop,
                        "(0008,0020) DA [20240101]",
                        "(0008,0030) TM [120000]",
                        "(0008,0050) SH [DEMO0001]",
                        "(0008,0060) CS [CT]",
                        "(0008,0070) LO [qgw demo (synthetic data)]",
                        "(0008,0080) LO [Site A Hospital (demo)]",
                        "(0008,1030) LO [SYNTHETIC DEMO CT - NOT A REAL PATIENT]",
                        "(0008,103e) LO [Chest axial 5 mm (synthetic)]",
                        "(0010,0010) PN [DEMO^PATIENT]",
                        "(0010,0020) LO [DEMO-0001]",
                        "(0010,0030) DA [19700101]",
                        "(0010,0040) CS [O]",
                        "(0018,0050) DS [5]",
                        "(0018,0060) DS [120]",
                        "(0020,000d) UI [%s]" % study,
                        "(0020,000e) UI [%s]" % series,
                        "(0020,0010) SH [1]",
                        "(0020,0011) IS [1]",
                        "(0020,0013) IS [%d]" % n,
                        "(0020,0032) DS [-175\\-175\\%g]" % z,
                        "(0020,0037) DS [1\\0\\0\\0\\1\\0]",
                        "(0020,0052) UI [%s]" % frame,
                        "(0020,1041) DS [%g]" % z,
                        "(0028,0002) US 1",
                        "(0028,0004) CS [MONOCHROME2]",
                        "(0028,0010) US %d" % ROWS,
                        "(0028,0011) US %d" % COLS,
                        "(0028,0030) DS [0.68359375\\0.68359375]",
                        "(0028,0100) US 16",
                        "(0028,0101) US 12",
                        "(0028,0102) US 11",
                        "(0028,0103) US 0",
                        "(0028,0301) CS [NO]",
                        "(0028,1050) DS [40]",
                        "(0028,1051) DS [400]",
                        "(0028,1052) DS [-1024]",
                        "(0028,1053) DS [1]",
                        "(7fe0,0010) OW =%s" % raw,
                        "",
                    ]
                )
            )
        out = os.path.join(outdir, "CT-%02d.dcm" % n)
        subprocess.run(["dump2dcm", "-q", "+te", dump, out], check=True)
        os.remove(raw)
        os.remove(dump)
        files.append(out)
    total = sum(os.path.getsize(f) for f in files)
    print("%d instances, %d bytes, study %s" % (len(files), total, study))


class Malformed(Exception):
    pass


def element(buf, pos):
    """(tag, vr, value start, value length) of the explicit-VR LE element at pos."""
    if pos + 8 > len(buf):
        raise Malformed("truncated element header at %d" % pos)
    group, elem = struct.unpack_from("<HH", buf, pos)
    tag = (group << 16) | elem
    if group == 0xFFFE:  # item / delimiters carry no VR
        (length,) = struct.unpack_from("<I", buf, pos + 4)
        return tag, None, pos + 8, length
    vr = bytes(buf[pos + 4 : pos + 6])
    if vr in LONG_VRS:
        if pos + 12 > len(buf):
            raise Malformed("truncated element header at %d" % pos)
        (length,) = struct.unpack_from("<I", buf, pos + 8)
        return tag, vr, pos + 12, length
    (length,) = struct.unpack_from("<H", buf, pos + 6)
    return tag, vr, pos + 8, length


def skip_undefined(buf, pos, end_tag):
    """Position after the delimiter end_tag, walking nested items and sequences."""
    while pos < len(buf):
        tag, _vr, start, length = element(buf, pos)
        if tag == end_tag:
            return start
        if length == UNDEFINED:
            inner_end = 0xFFFEE00D if tag == 0xFFFEE000 else 0xFFFEE0DD
            pos = skip_undefined(buf, start, inner_end)
        elif tag == 0xFFFEE000:  # defined-length item: its elements follow
            pos = start
        else:
            pos = start + length
    raise Malformed("missing delimiter")


def parse(path):
    """Meta group values, the data set bytes and the Pixel Data value of a Part 10 file."""
    with open(path, "rb") as f:
        buf = f.read()
    if len(buf) < 144 or buf[128:132] != b"DICM":
        raise Malformed("%s: no DICM preamble" % path)
    tag, vr, start, length = element(buf, 132)
    if tag != 0x00020000 or vr != b"UL" or length != 4:
        raise Malformed("%s: no (0002,0000) group length" % path)
    (group_len,) = struct.unpack_from("<I", buf, start)
    data_start = start + 4 + group_len
    meta, pos = {}, 132
    while pos < data_start:
        tag, vr, start, length = element(buf, pos)
        meta[tag] = buf[start : start + length].rstrip(b"\0 ").decode("ascii", "replace")
        pos = start + length
    if pos != data_start:
        raise Malformed("%s: group 0002 length does not match its elements" % path)
    if meta.get(0x00020010) != EXPLICIT_VR_LE:
        raise Malformed("%s: transfer syntax %s, expected Explicit VR LE" % (path, meta.get(0x00020010)))
    dataset = buf[data_start:]
    pixels, pos = None, 0
    while pos < len(dataset):
        tag, vr, start, length = element(dataset, pos)
        if length == UNDEFINED:
            pos = skip_undefined(dataset, start, 0xFFFEE0DD)
            continue
        if tag == 0x7FE00010:
            pixels = dataset[start : start + length]
        pos = start + length
    if pixels is None:
        raise Malformed("%s: no Pixel Data" % path)
    return meta, dataset, pixels


def compare(sent_dir, recv_dir):
    def index(d):
        out = {}
        for name in sorted(os.listdir(d)):
            path = os.path.join(d, name)
            if os.path.isfile(path):
                meta, dataset, pixels = parse(path)
                out[meta.get(0x00020003)] = (name, dataset, pixels)
        return out

    sent, recv = index(sent_dir), index(recv_dir)
    identical, total_bytes, whole = 0, 0, hashlib.sha256()
    for sop, (name, dataset, pixels) in sorted(sent.items(), key=lambda kv: kv[1][0]):
        got = recv.get(sop)
        ds_sha = hashlib.sha256(dataset).hexdigest()
        px_sha = hashlib.sha256(pixels).hexdigest()
        if got is None:
            print("%s: MISSING at site B (SOP Instance UID %s)" % (name, sop))
            continue
        ok = got[1] == dataset and hashlib.sha256(got[2]).hexdigest() == px_sha
        print(
            "%s -> %s: data set %d bytes sha256 %s, pixel data sha256 %s: %s"
            % (name, got[0], len(dataset), ds_sha[:16], px_sha[:16], "identical" if ok else "DIFFERENT")
        )
        if ok:
            identical += 1
            total_bytes += len(dataset)
            whole.update(dataset)
    extra = len(set(recv) - set(sent))
    if extra:
        print("%d unexpected instance(s) received" % extra)
    good = identical == len(sent) and len(sent) > 0 and extra == 0
    print(
        "%d/%d DICOM instances byte-identical (%d data set bytes, combined SHA-256 %s)"
        % (identical, len(sent), total_bytes, whole.hexdigest()[:16])
    )
    return 0 if good else 1


def main(argv):
    try:
        if len(argv) == 4 and argv[1] == "make":
            make(argv[2], int(argv[3]))
            return 0
        if len(argv) == 4 and argv[1] == "compare":
            return compare(argv[2], argv[3])
    except (Malformed, OSError, subprocess.CalledProcessError) as e:
        print("dicom.py: %s" % e)
        return 1
    print(__doc__.split("\n\n")[1], file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
