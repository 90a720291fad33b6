#!/usr/bin/env python3
"""Altered copies of an audit log for scripts/demo-check.sh (Python standard library only).

  tamper.py snapshot LIVE_LOG OUT        copy the complete lines of a log that is still being written
  tamper.py MODE LOG OUT                 write an altered copy; print the 1-based line it touched

MODE is one of
  edit       change one character of a field value in a middle record (not its signature)
  delete     delete a middle record
  swap       swap two adjacent middle records
  duplicate  repeat a middle record right after itself (a replayed record)

Each of these must make `qgw audit verify` fail and name a line. (Cutting records off the end is
not among them: the unsigned tail of a log cannot be told from a log that simply ends earlier.)
"""

import json
import sys

# Fields that carry the record chain or signature rather than the audited facts.
CHAIN_FIELDS = {"sig", "signature", "mac", "prev", "prev_hash", "hash", "chain", "seq"}


def read_lines(path):
    with open(path, "rb") as f:
        data = f.read()
    lines = data.split(b"\n")
    return [line + b"\n" for line in lines[:-1] if line]  # the last element is "" or partial


def edit(line):
    """The line with one character of a (non-chain) field value changed, as raw bytes."""
    text = line.decode("utf-8")
    record = json.loads(text)
    editable = [
        k
        for k, v in record.items()
        if k not in CHAIN_FIELDS and not isinstance(v, (dict, list, bool)) and v not in (None, "")
    ]
    # An audited fact (peer, epoch, sources, ...) first; the timestamp or event name otherwise.
    editable.sort(key=lambda k: k in ("time", "event"))
    for key in editable:
        needle = '"%s":' % key
        at = text.find(needle)
        if at < 0:
            continue
        pos = at + len(needle)
        while text[pos] in ' "':
            pos += 1
        old = text[pos]
        new = ("1" if old != "1" else "2") if old.isdigit() else ("x" if old != "x" else "y")
        return (text[:pos] + new + text[pos + 1 :]).encode("utf-8"), key
    raise SystemExit("tamper.py: no field to edit in %r" % text[:80])


def main(argv):
    if len(argv) != 4:
        print(__doc__, file=sys.stderr)
        return 2
    mode, src, out = argv[1:]
    lines = read_lines(src)
    if mode == "snapshot":
        with open(out, "wb") as f:
            f.writelines(lines)
        print(len(lines))
        return 0
    if len(lines) < 4:
        raise SystemExit("tamper.py: %s has %d records, need at least 4" % (src, len(lines)))
    mid = len(lines) // 2  # 0-based; never the first or the last record
    touched = mid + 1
    if mode == "edit":
        lines[mid], key = edit(lines[mid])
        what = "field %s" % key
    elif mode == "delete":
        del lines[mid]
        what = "deleted"
    elif mode == "swap":
        lines[mid], lines[mid + 1] = lines[mid + 1], lines[mid]
        what = "swapped with line %d" % (touched + 1)
    elif mode == "duplicate":
        lines.insert(mid + 1, lines[mid])
        what = "repeated as line %d" % (touched + 1)
    else:
        print(__doc__, file=sys.stderr)
        return 2
    with open(out, "wb") as f:
        f.writelines(lines)
    print("line %d (%s)" % (touched, what))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
