#!/usr/bin/env python3
"""An independent verifier of a Hawiya audit export (`hawiya audit export`), written from the
format in store/src/audit/mod.rs's module doc only: JSON lines, {"entry": ...} in order, then
{"checkpoint": ...}. Recomputes every entry's hash and link and checks each checkpoint's
hash against the chain (its signature is the audit key's, which this script leaves to
`hawiya audit verify --trust`). Prints "intact N" or the first break; exits 0 or 1.

    verify_audit.py export.jsonl
"""
import hashlib
import json
import struct
import sys


def entry_hash(prev: bytes, seq: int, at: int, node: str, event: str, fields: str) -> bytes:
    h = hashlib.sha256(b"hawiya-audit-entry-v1\0")
    h.update(prev)
    h.update(struct.pack(">Qq", seq, at))
    for part in (node, event, fields):
        data = part.encode("utf-8")
        h.update(struct.pack(">I", len(data)))
        h.update(data)
    return h.digest()


def main(path: str) -> int:
    entries, checkpoints = [], []
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.strip():
                item = json.loads(line)
                (entries if "entry" in item else checkpoints).append(item.get("entry") or item["checkpoint"])
    hashes, prev = {}, None
    for e in entries:
        if prev is not None and e["seq"] != prev["seq"] + 1:
            print(f"break: entries {prev['seq'] + 1} to {e['seq'] - 1} missing")
            return 1
        computed = entry_hash(bytes.fromhex(e["prev"]), e["seq"], e["at"], e["node"], e["event"], e["fields"])
        if computed.hex() != e["hash"]:
            print(f"break: entry {e['seq']} does not hash to its hash")
            return 1
        if prev is not None and e["prev"] != prev["hash"]:
            print(f"break: entry {e['seq']} is not chained to entry {prev['seq']}")
            return 1
        if prev is None and e["seq"] == 1 and e["prev"] != "00" * 32:
            print("break: entry 1 is chained to something")
            return 1
        hashes[e["seq"]] = e["hash"]
        prev = e
    for c in checkpoints:
        if c["seq"] not in hashes:
            print(f"break: checkpoint {c['seq']} covers an entry that is not there")
            return 1
        if hashes[c["seq"]] != c["hash"]:
            print(f"break: checkpoint {c['seq']} signed another chain")
            return 1
    print(f"intact {len(entries)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
