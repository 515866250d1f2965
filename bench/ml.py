#!/usr/bin/python3
"""ml.py: render bench/ml.sh's rows (make bench-ml).

Reads the rows `spectra bench --json` wrote (one JSON object per line,
tagged with "system" and "scenario"), prints every row with its ops/s,
p50/p95/p99, errors and its ratio to its peer's row (ops/s and p99), and
writes the whole result as one JSON document (--json). Standard library
only.
"""
import argparse
import datetime
import json
import sys

from benchlib import errors, host_info, load, ms

# Each spectra row and the peer row that asks the same of its system.
PEERS = {
    "feature_write": ("redis", "hset"),
    "feature_read": ("redis", "hmget"),
    "feature_batch": ("redis", "multi_hset"),
    "eventual_feature_write": ("redis", "hset_wait2"),
    "eventual_feature_read": ("redis", "hmget"),
    "model_read": ("etcd", "get"),
    "model_stale_read": ("etcd", "get_serializable"),
    "model_register": ("etcd", "put"),
}

ORDER = {
    "spectra": list(PEERS),
    "redis": ["hset", "hmget", "multi_hset", "hset_wait2"],
    "etcd": ["get", "get_serializable", "put"],
}

LABELS = {
    ("spectra", "feature_write"): "FEATURE.SET, causal view",
    ("spectra", "feature_read"): "FEATURE.GET, causal view",
    ("spectra", "feature_batch"): "MULTI 2 FEATURE.SET EXEC, causal",
    ("spectra", "eventual_feature_write"): "FEATURE.SET, eventual QUORUM",
    ("spectra", "eventual_feature_read"): "FEATURE.GET, eventual QUORUM",
    ("spectra", "model_read"): "MODEL.GET ALIAS, linearizable",
    ("spectra", "model_stale_read"): "LEVEL stale MODEL.GET ALIAS",
    ("spectra", "model_register"): "MODEL.REGISTER",
    ("redis", "hset"): "HSET (primary)",
    ("redis", "hmget"): "HMGET (primary + replicas)",
    ("redis", "multi_hset"): "MULTI 2 HSET EXEC (primary)",
    ("redis", "hset_wait2"): "HSET + WAIT 2 (primary)",
    ("etcd", "get"): "GET, linearizable",
    ("etcd", "get_serializable"): "GET, serializable",
    ("etcd", "put"): "PUT",
}


def label(system, scenario):
    return LABELS.get((system, scenario), scenario)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rows", required=True)
    ap.add_argument("--json")
    ap.add_argument("--elapsed", type=float)
    ap.add_argument("--keys", type=int)
    ap.add_argument("--seconds", type=float)
    ap.add_argument("--warmup", type=float)
    ap.add_argument("--versions", type=int)
    ap.add_argument("--model-bytes", type=int)
    ap.add_argument("--model-record-bytes", type=int)
    ap.add_argument("--register-bytes", type=int)
    ap.add_argument("--spectrad", default="")
    ap.add_argument("--etcd", default="")
    ap.add_argument("--redis", default="")
    a = ap.parse_args()

    rows = load(a.rows, "ml.py")
    by = {(r["system"], r["scenario"], r["clients"]): r for r in rows}
    clients = sorted({r["clients"] for r in rows})
    host = host_info()

    def ratio(scenario, c):
        peer = PEERS.get(scenario)
        x, y = by.get(("spectra", scenario, c)), by.get(peer + (c,)) if peer else None
        if not x or not y or y["ops_per_s"] <= 0:
            return None
        return {"row": "spectra/" + scenario, "peer": "%s/%s" % peer, "clients": c,
                "ops": x["ops_per_s"] / y["ops_per_s"],
                "p99": x["p99_us"] / y["p99_us"] if y["p99_us"] else None}

    out = []
    out.append("The ML layer beside its peers: spectra 5 nodes, Redis primary + 4 replicas, "
               "etcd 5 members;")
    out.append("closed loop (each connection one request in flight), %gs per row after %gs "
               "warm-up, %s keys" % (a.seconds or 0, a.warmup or 0,
                                     "{:,}".format(a.keys) if a.keys else "-"))
    out.append("")
    head = "%7s | %-7s %-33s %9s %8s %8s %8s %6s | %-22s %6s %6s" % (
        "clients", "system", "row", "ops/s", "p50 ms", "p95 ms", "p99 ms", "err",
        "peer", "x ops", "x p99")
    out.append(head)
    out.append("-" * len(head))
    pairs = []
    for c in clients:
        for system in ("spectra", "redis", "etcd"):
            for scen in ORDER[system]:
                r = by.get((system, scen, c))
                if not r:
                    continue
                rat = ratio(scen, c) if system == "spectra" else None
                if rat:
                    pairs.append(rat)
                peer = PEERS.get(scen) if system == "spectra" else None
                out.append("%7d | %-7s %-33s %9.0f %8.2f %8.2f %8.2f %6d | %-22s %6s %6s" % (
                    c, system, label(system, scen), r["ops_per_s"], ms(r["p50_us"]),
                    ms(r["p95_us"]), ms(r["p99_us"]), errors(r),
                    "%s %s" % (peer[0], peer[1]) if peer else "",
                    "%.2f" % rat["ops"] if rat else "",
                    "%.2f" % rat["p99"] if rat and rat["p99"] is not None else ""))
        out.append("")
    out.append("x ops: the spectra row's ops/s over its peer's; x p99: its p99 over the peer's "
               "(below 1 is better).")
    out.append("Feature rows: 64-byte clicks values; spectra on every node, Redis writes on the "
               "primary,")
    out.append("HMGET (the peer of both feature reads) on the primary and replicas. etcd: one key "
               "read by")
    out.append("every member's gateway, holding %s bytes (MODEL.GET's reply: %s versions, the "
               "record %s bytes);" % (a.model_bytes, a.versions, a.model_record_bytes or "-"))
    out.append("PUTs of %s bytes (a one-version model's reply)." % a.register_bytes)
    for (system, scen, c), r in sorted(by.items()):
        if errors(r):
            out.append("errors of %s %s at %d clients: %s" % (
                system, label(system, scen), c,
                ", ".join("%s %d" % kv for kv in sorted(r["errors"].items()))))
    if a.elapsed is not None:
        out.append("")
        out.append("The whole run took %d min %02d s." % (a.elapsed // 60, a.elapsed % 60))
    out.append("Machine: %s cores (%s), %s GiB, %s." % (
        host["cores"], host["cpu"], host["memory_gib"], host["kernel"]))
    print("\n".join(out))
    if a.json:
        doc = {
            "benchmark": "ml",
            "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "host": host,
            "versions": {"spectrad": a.spectrad, "etcd": a.etcd, "redis": a.redis},
            "params": {"clients": clients, "seconds": a.seconds, "warmup_s": a.warmup,
                       "keys": a.keys, "value_size": 64, "loop": "closed", "pipeline": 1,
                       "model_versions": a.versions, "etcd_model_value_bytes": a.model_bytes,
                       "model_record_bytes": a.model_record_bytes,
                       "etcd_put_value_bytes": a.register_bytes},
            "elapsed_s": a.elapsed,
            "pairs": pairs,
            "text": "\n".join(out),
            "rows": rows,
        }
        with open(a.json, "w") as f:
            json.dump(doc, f, indent=1)
        print("wrote %s" % a.json)


if __name__ == "__main__":
    main()
