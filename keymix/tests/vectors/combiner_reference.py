#!/usr/bin/env python3
"""Independent reference implementation of the keymix v1 combiner (docs/design.md#combiner).

Recomputes every vector in combiner.json from its inputs with nothing but Python's hashlib and
hmac, and exits non-zero on the first mismatch. It shares no code with the Rust implementation,
so agreement means the documented construction, not just the code, produced the vectors.

    python3 keymix/tests/vectors/combiner_reference.py [path/to/combiner.json]
"""
import hashlib
import hmac
import json
import pathlib
import struct
import sys

TRANSCRIPT = b"qgw v1 keymix transcript"
IKM = b"qgw v1 keymix ikm"
PSK = b"qgw v1 keymix psk"
CHAIN = b"qgw v1 keymix chain"
GENESIS = b"qgw v1 keymix genesis"
CHAIN_TAG = b"qgw v1 chain tag"
CONFIRM = b"qgw v1 confirm"


def hkdf_extract(salt: bytes, ikm: bytes) -> bytes:  # RFC 5869 §2.2
    return hmac.new(salt, ikm, hashlib.sha256).digest()


def hkdf_expand_32(prk: bytes, info: bytes) -> bytes:  # RFC 5869 §2.3, L = 32: one block
    return hmac.new(prk, info + b"\x01", hashlib.sha256).digest()


def lp(data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + data


def genesis(static_psk):
    ikm = b"\x00" if static_psk is None else b"\x01" + static_psk
    return hkdf_extract(GENESIS, ikm)


def epoch(v):
    h = bytes.fromhex
    ids = v["qkd_key_ids"] or []
    qkd_key = h(v["qkd_key"]) if v["qkd_key"] is not None else b""
    th = hashlib.sha256(
        TRANSCRIPT
        + struct.pack(">QB", v["epoch"], v["sources"])
        + lp(h(v["initiator"])) + lp(h(v["responder"]))
        + h(v["mlkem_ek"]) + h(v["mlkem_ct"])
        + struct.pack(">I", len(ids)) + b"".join(lp(i.encode()) for i in ids)
    ).digest()
    ikm = IKM + bytes([v["sources"]]) + h(v["mlkem_shared"]) + lp(qkd_key)
    prk = hkdf_extract(h(v["previous_chain"]), ikm)
    psk, chain = hkdf_expand_32(prk, PSK + th), hkdf_expand_32(prk, CHAIN + th)
    chain_tag = hmac.new(chain, CHAIN_TAG, hashlib.sha256).digest()[:16]
    confirm = hmac.new(psk, CONFIRM + th, hashlib.sha256).digest()[:16]
    return th, psk, chain, chain_tag, confirm


def main():
    default = pathlib.Path(__file__).with_name("combiner.json")
    doc = json.loads(pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else default).read_text())
    failures = 0
    for g in doc["genesis"]:
        psk = bytes.fromhex(g["static_psk"]) if g["static_psk"] else None
        if genesis(psk).hex() != g["chain"]:
            print(f"genesis mismatch for static_psk={g['static_psk']}")
            failures += 1
    for v in doc["epochs"]:
        th, psk, chain, chain_tag, confirm = epoch(v)
        outputs = (("transcript_hash", th), ("psk", psk), ("chain", chain),
                   ("chain_tag", chain_tag), ("confirm", confirm))
        for name, got in outputs:
            if got.hex() != v[name]:
                print(f"{v['name']}: {name} mismatch")
                failures += 1
    total = len(doc["genesis"]) + len(doc["epochs"])
    print(f"combiner reference: {total - failures} passed, {failures} failed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
