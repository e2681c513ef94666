#!/usr/bin/env python3
"""Reference verifier for RedForge audit exports (JSON format), written from
hub/audit/DESIGN.md alone, with the Python standard library only.

    python3 verify_export.py EXPORT.json   # prints OK <count> <head_hash>, exit 0
    python3 verify_export.py --hash        # reads one record (JSON) on stdin, prints its hash

It recomputes every record's v1 hash and checks the links; for an
unfiltered export it also requires ids 1, 2, 3, ... and checks the trailer.
"""
import hashlib
import json
import sys
from datetime import datetime, timezone


def es_number(f):
    """ECMAScript Number.prototype.toString of a double (RFC 8785 3.2.2.3)."""
    if f != f or f in (float("inf"), float("-inf")):
        raise ValueError("number out of range")
    if f == 0:
        return "0"
    sign = "-" if f < 0 else ""
    s = repr(abs(f))  # shortest round-trip digits
    mant, _, exp = s.partition("e")
    exp = int(exp) if exp else 0
    ip, _, fp = mant.partition(".")
    digits = (ip + fp).lstrip("0")
    # value = 0.DIGITS x 10^n
    n = len(ip) + exp if ip != "0" else exp - (len(fp) - len(fp.lstrip("0")))
    digits = digits.rstrip("0")
    k = len(digits)
    if k <= n <= 21:
        return sign + digits + "0" * (n - k)
    if 0 < n <= 21:
        return sign + digits[:n] + "." + digits[n:]
    if -6 < n <= 0:
        return sign + "0." + "0" * (-n) + digits
    e = n - 1
    return sign + digits[0] + ("." + digits[1:] if k > 1 else "") + "e" + ("+" if e >= 0 else "-") + str(abs(e))


def jcs(v):
    """RFC 8785 canonical JSON of a parsed value."""
    if v is None:
        return "null"
    if v is True:
        return "true"
    if v is False:
        return "false"
    if isinstance(v, int):
        if abs(v) > 2**53:
            raise ValueError("integer beyond 2^53")
        return str(v)
    if isinstance(v, float):
        return es_number(v)
    if isinstance(v, str):
        return json.dumps(v, ensure_ascii=False)
    if isinstance(v, list):
        return "[" + ",".join(jcs(x) for x in v) + "]"
    if isinstance(v, dict):
        items = sorted(v.items(), key=lambda kv: kv[0].encode("utf-16-be"))
        return "{" + ",".join(json.dumps(k, ensure_ascii=False) + ":" + jcs(x) for k, x in items) + "}"
    raise ValueError("unexpected JSON value")


def no_duplicates(pairs):
    d = {}
    for k, v in pairs:
        if k in d:
            raise ValueError("duplicate member " + k)
        d[k] = v
    return d


def record_hash(r):
    t = datetime.fromisoformat(r["time"].replace("Z", "+00:00")).astimezone(timezone.utc)
    details = jcs(r["details"]) if "details" in r else ""
    fields = ["redforge-audit-v1", str(r["id"]), t.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
              r["user_id"], r["username"], r["action"], r["resource_type"], r["resource_id"],
              details, r["ip"], r["user_agent"], r["prev_hash"]]
    pre = b"".join(str(len(b)).encode() + b":" + b + b"," for b in (f.encode("utf-8") for f in fields))
    return "v1:" + hashlib.sha256(pre).hexdigest()


def main():
    if sys.argv[1:] == ["--hash"]:
        print(record_hash(json.loads(sys.stdin.read(), object_pairs_hook=no_duplicates)))
        return 0
    with open(sys.argv[1], encoding="utf-8") as f:
        doc = json.load(f, object_pairs_hook=no_duplicates)
    if doc.get("format") != "redforge-audit-export" or doc.get("version") != 1 or doc.get("hash") != "v1":
        print("FAIL not a v1 RedForge audit export")
        return 1
    full = not doc["filtered"]
    prev = None
    for r in doc["records"]:
        if record_hash(r) != r["hash"]:
            print("FAIL record %d does not match its hash" % r["id"])
            return 1
        if full and r["id"] != (prev["id"] + 1 if prev else 1):
            print("FAIL record %d out of sequence" % r["id"])
            return 1
        if r["id"] == 1 and r["prev_hash"] != "":
            print("FAIL record 1 has a prev_hash")
            return 1
        if prev and r["id"] == prev["id"] + 1 and r["prev_hash"] != prev["hash"]:
            print("FAIL record %d prev_hash mismatch" % r["id"])
            return 1
        prev = r
    head = prev["hash"] if prev else ""
    if doc["count"] != len(doc["records"]) or doc["head_hash"] != head:
        print("FAIL trailer does not match the records")
        return 1
    print("OK %d %s" % (len(doc["records"]), head))
    return 0


if __name__ == "__main__":
    sys.exit(main())
