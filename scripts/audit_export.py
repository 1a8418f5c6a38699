#!/usr/bin/python3
"""Recompute the hash chain of a `ledgerctl export` (from position 1, every
stream) without the cluster: each line's hash must follow from its fields
and the previous line's hash (docs/store.md, "Hash chain"). An auditor who
kept an earlier head hash (a backup's X-Ledger-Hash, a published value)
can then check that the log still extends it.

Usage: scripts/audit_export.py EXPORT.jsonl [--expect-hash POSITION:HEX]
Exit 0 and one line when the chain holds; 1 with the first bad line.

`data` is taken from the line byte for byte (ledgerctl writes the stored
JSON text there, between "data": and the ,"ts": that follows it), because
the hash covers those exact bytes: re-encoding it would change numbers such
as 1.5e3.
"""
import argparse
import hashlib
import json
import struct
import sys


def lp(b):
    return struct.pack(">I", len(b)) + b


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("export")
    ap.add_argument("--expect-hash", action="append", default=[],
                    metavar="POSITION:HEX")
    a = ap.parse_args()
    expect = {}
    for e in a.expect_hash:
        pos, hx = e.split(":", 1)
        expect[int(pos)] = hx.lower()
    prev = bytes(32)
    n = 0
    with open(a.export, "rb") as f:
        for n, line in enumerate(f, 1):
            line = line.rstrip(b"\n")
            e = json.loads(line)
            if e["position"] != n:
                sys.exit(f"line {n}: position {e['position']}, expected {n} "
                         "(export from position 1, every stream)")
            data = line[line.index(b',"data":') + 8:line.rindex(b',"ts":')]
            h = hashlib.sha256(
                prev + struct.pack(">Q", e["position"]) +
                lp(e["stream"].encode()) + struct.pack(">Q", e["seq"]) +
                lp(e["type"].encode()) + lp((e["id"] or "").encode()) +
                struct.pack(">q", e["ts"]) + lp(data)).digest()
            if h.hex() != e["hash"]:
                sys.exit(f"line {n}: hash {e['hash']} does not follow from "
                         "its fields and the previous line")
            if n in expect and expect.pop(n) != e["hash"]:
                sys.exit(f"line {n}: hash {e['hash']} is not the expected "
                         "one")
            prev = h
    if expect:
        sys.exit(f"positions {sorted(expect)} are not in the export")
    print(f"{a.export}: {n} events, chain holds, head {prev.hex()}")


if __name__ == "__main__":
    main()
