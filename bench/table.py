#!/usr/bin/python3
"""table.py: render bench/table.sh's rows (make bench-table).

Reads the rows `spectra bench --json` wrote (one JSON object per line,
tagged with "system" and "scenario"), and prints:

  1. the design's table (strong, causal, eventual: p95, throughput,
     availability) from spectra's rows at the most clients, beside the
     design's own figures;
  2. every row, with the ratio of its throughput (and p99) to its peer's;
  3. the availability runs (one node killed partway through);
  4. the goals of the benchmark issue, each met or missed and by how much.

It writes the whole result as one JSON document (--json) and a chart of
p99 latency against throughput per row (--svg). Standard library only.
"""
import argparse
import datetime
import json
import math
import sys

from benchlib import errors, host_info, load, ms

# The design table (DESIGN.md, "The table we must beat").
DESIGN = {
    "strong": {"p95_ms": 120.0, "ops": 2500.0, "availability": 0.999},
    "causal": {"p95_ms": 45.0, "ops": 8200.0, "availability": 0.9999},
    "eventual": {"p95_ms": 15.0, "ops": 25000.0, "availability": 0.99999},
}

# Each spectra row and the row of a peer that asks the same of the system.
PEERS = {
    ("spectra", "strong_write"): ("etcd", "put"),
    ("spectra", "strong_read"): ("etcd", "range"),
    ("spectra", "strong_stale_read"): ("etcd", "serializable_range"),
    ("spectra", "eventual_quorum_write"): ("redis", "set_wait2"),
    ("spectra", "eventual_one_write"): ("redis", "set"),
    ("spectra", "eventual_one_read"): ("redis", "get"),
    ("spectra", "causal_write"): ("spectra", "eventual_one_write"),
    ("spectra", "causal_read"): ("spectra", "eventual_one_read"),
}

LABELS = {
    "strong_write": "strong write (SET)",
    "strong_read": "strong read (linearizable)",
    "strong_stale_read": "strong read (stale, local)",
    "causal_write": "causal write",
    "causal_read": "causal read",
    "eventual_quorum_write": "eventual QUORUM write",
    "eventual_one_write": "eventual ONE write",
    "eventual_one_read": "eventual ONE read",
    "put": "put",
    "range": "range (linearizable)",
    "serializable_range": "range (serializable)",
    "set": "SET",
    "set_wait2": "SET + WAIT 2",
    "get": "GET (primary + replicas)",
}

# Rows of the design-format table: level, write scenario, read scenario,
# availability run, design-rate run, and the 5x-rate runs (write, read).
LEVELS = [
    ("strong", "strong_write", "strong_read", "strong_write_kill_leader", "design_strong_write",
     "x5_strong_write", "x5_strong_read"),
    ("causal", "causal_write", "causal_read", "causal_write_kill_node", "design_causal_write",
     "x5_causal_write", "x5_causal_read"),
    ("eventual", "eventual_quorum_write", "eventual_one_read",
     "eventual_quorum_write_kill_node", "design_eventual_write",
     "x5_eventual_write", "x5_eventual_read"),
]

COLORS = {"spectra": "#1f5fbf", "etcd": "#2e8b3e", "redis": "#c0392b"}


def served(r):
    """What the servers delivered in the window: for an open loop, every
    success inside it (an overloaded one spends its window on ops queued
    during the warm-up, which its recorded ops leave out)."""
    return r.get("served_ops_per_s") or r["ops_per_s"]


class Table:
    def __init__(self, rows):
        self.rows = rows
        self.closed = {}
        self.special = {}
        for r in rows:
            key = (r["system"], r["scenario"], r["clients"])
            if r.get("fault") or r.get("mode") == "open":
                self.special[(r["system"], r["scenario"])] = r
            else:
                self.closed[key] = r
        self.clients = sorted({k[2] for k in self.closed})

    def get(self, system, scenario, clients):
        return self.closed.get((system, scenario, clients))

    def ratio(self, system, scenario, clients):
        peer = PEERS.get((system, scenario))
        if not peer:
            return None
        a, b = self.get(system, scenario, clients), self.get(peer[0], peer[1], clients)
        if not a or not b or b["ops_per_s"] <= 0:
            return None
        return {
            "peer": "%s/%s" % peer,
            "ops": a["ops_per_s"] / b["ops_per_s"],
            "p99": a["p99_us"] / b["p99_us"] if b["p99_us"] else None,
        }


def design_table(t, out):
    top = t.clients[-1] if t.clients else None
    rows = []
    out.append("The design's table, measured: spectra, 5 nodes, %s clients (closed loop);"
               % ("{:,}".format(top) if top else "-"))
    out.append("availability: one node killed -9 partway through a write run (see below)")
    out.append("")
    out.append("%-9s | %-28s %11s %10s | %-12s | %s" % (
        "level", "row", "ops/s", "p95 ms", "availability", "design: p95, ops/s, availability"))
    out.append("-" * 108)
    for level, write, read, fault, design_rate, x5w, x5r in LEVELS:
        d = DESIGN[level]
        f = t.special.get(("spectra", fault))
        avail = "%.3f%%" % (100 * f["availability"]) if f else "-"
        for i, scen in enumerate((write, read)):
            r = t.get("spectra", scen, top)
            if not r:
                continue
            out.append("%-9s | %-28s %11.0f %10.1f | %-12s | %s" % (
                level if i == 0 else "", LABELS[scen], r["ops_per_s"], ms(r["p95_us"]),
                avail if i == 0 else "",
                "%g ms, %s ops/s, %g%%" % (d["p95_ms"], "{:,}".format(int(d["ops"])),
                                          100 * d["availability"]) if i == 0 else ""))
            rows.append({"level": level, "scenario": scen, "clients": top,
                         "ops_per_s": r["ops_per_s"], "p95_ms": ms(r["p95_us"]),
                         "availability": f["availability"] if f else None,
                         "design": d})
        for scen, label in ((design_rate, "write at design rate"), (x5w, "write at 5x design"),
                            (x5r, "read at 5x design")):
            o = t.special.get(("spectra", scen))
            if o:
                out.append("%-9s | %-28s %11.0f %10.1f | %-12s |%s" % (
                    "", label, served(o), ms(o["p95_us"]), "",
                    "  %d errors, %d unfinished" % (errors(o), o.get("unfinished", 0))
                    if errors(o) or o.get("unfinished") else ""))
    out.append("")
    out.append("Rows 'at design rate' and 'at 5x design': an open loop at that throughput over "
               "10,000 connections;")
    out.append("ops/s is what succeeded inside the window; latency counts from each request's "
               "scheduled start,")
    out.append("so a server that falls behind shows it.")
    return rows


def all_rows(t, out):
    out.append("")
    out.append("Every row (closed loop, each connection one request in flight)")
    out.append("")
    out.append("%7s | %-7s %-27s %10s %8s %8s %9s %9s %6s | %-28s %6s %6s" % (
        "clients", "system", "row", "ops/s", "p50 ms", "p95 ms", "p99 ms", "p99.9 ms", "err",
        "peer", "x ops", "x p99"))
    out.append("-" * 146)
    for c in t.clients:
        for system in ("spectra", "etcd", "redis"):
            for (s, scen, cl), r in t.closed.items():
                if s != system or cl != c:
                    continue
                rat = t.ratio(system, scen, c)
                out.append("%7d | %-7s %-27s %10.0f %8.2f %8.2f %9.2f %9.2f %6d | %-28s %6s %6s" % (
                    c, system, LABELS.get(scen, scen), r["ops_per_s"], ms(r["p50_us"]),
                    ms(r["p95_us"]), ms(r["p99_us"]), ms(r["p999_us"]), errors(r),
                    rat["peer"] if rat else "", "%.2f" % rat["ops"] if rat else "",
                    "%.2f" % rat["p99"] if rat and rat["p99"] else ""))
    out.append("")
    out.append("x ops: this row's ops/s over its peer's; x p99: its p99 over the peer's "
               "(below 1 is better).")
    for (system, scen, c), r in t.closed.items():
        if errors(r):
            out.append("errors of %s %s at %d clients: %s" % (
                system, LABELS.get(scen, scen), c,
                ", ".join("%s %d" % kv for kv in sorted(r["errors"].items()))))


def availability(t, out):
    runs = [r for r in t.special.values() if r.get("fault")]
    if not runs:
        return []
    out.append("")
    out.append("Availability: one node killed with SIGKILL partway through an open loop at a "
               "fixed rate")
    out.append("(--timeout 2000 ms: a request unanswered that long fails; --failover: a "
               "connection that drops")
    out.append("moves to the next node)")
    out.append("")
    out.append("%-8s %-34s %8s %10s %9s %10s %14s %8s" % (
        "system", "run", "clients", "ok ops", "failed", "available", "longest gap", "ok/s"))
    out.append("-" * 110)
    res = []
    for r in sorted(runs, key=lambda r: (r["system"], r["scenario"])):
        out.append("%-8s %-34s %8d %10d %9d %9.3f%% %11.0f ms %8.0f" % (
            r["system"], r["scenario"], r["clients"], r["ok"], errors(r),
            100 * r["availability"], r["max_gap_ms"], r["ops_per_s"]))
        res.append({"system": r["system"], "scenario": r["scenario"],
                    "availability": r["availability"], "max_gap_ms": r["max_gap_ms"],
                    "fault_at_s": r.get("fault_ran_at_s"), "errors": r["errors"]})
    out.append("")
    out.append("available: requests that succeeded, of all scheduled in the window; gap: the "
               "longest stretch")
    out.append("of the window with no request succeeding.")
    return res


def goals(t, out):
    g = []

    def add(name, met, detail):
        g.append({"goal": name, "met": met, "detail": detail})

    for c in t.clients:
        for scen, peer in (("strong_write", "put"), ("strong_read", "range")):
            a, b = t.get("spectra", scen, c), t.get("etcd", peer, c)
            if a and b:
                x = a["ops_per_s"] / b["ops_per_s"]
                ok = x >= 3 and a["p99_us"] <= b["p99_us"]
                add("spectra %s >= 3x etcd %s at equal or better p99, %d clients" % (scen, peer, c),
                    ok, "%.2fx ops/s; p99 %.1f vs %.1f ms" % (x, ms(a["p99_us"]), ms(b["p99_us"])))
        a, b = t.get("spectra", "eventual_quorum_write", c), t.get("redis", "set_wait2", c)
        if a and b:
            x = a["ops_per_s"] / b["ops_per_s"]
            add("eventual QUORUM write >= Redis SET + WAIT 2, %d clients" % c, x >= 1,
                "%.2fx" % x)
        for kind in ("write", "read"):
            a = t.get("spectra", "causal_" + kind, c)
            b = t.get("spectra", "eventual_one_" + kind, c)
            if a and b:
                x = a["ops_per_s"] / b["ops_per_s"]
                add("causal %s >= 0.8x eventual ONE %s, %d clients" % (kind, kind, c), x >= 0.8,
                    "%.2fx" % x)
    for level, write, read, _, _, x5w, x5r in LEVELS:
        d = DESIGN[level]
        for scen in (x5w, x5r):
            r = t.special.get(("spectra", scen))
            if not r:
                continue
            xo = served(r) / d["ops"]
            p95 = ms(r["p95_us"])
            add("%s: 5x the design's %s throughput (%s ops/s, 10,000 clients, open loop) "
                "with p95 <= %g ms" % (scen, level, "{:,}".format(int(5 * d["ops"])),
                                       d["p95_ms"] / 5),
                xo >= 5 * 0.98 and p95 <= d["p95_ms"] / 5 and not errors(r),
                "%.2fx throughput served; p95 %.1f ms (%.2f of the design's %g ms)%s" % (
                    xo, p95, p95 / d["p95_ms"], d["p95_ms"],
                    "; %d errors" % errors(r) if errors(r) else ""))
    out.append("")
    out.append("Goals (benchmark issue)")
    out.append("")
    for x in g:
        out.append("  %-6s %s: %s" % ("met" if x["met"] else "MISSED", x["goal"], x["detail"]))
    return g


# ---- the chart ---------------------------------------------------------------

def svg_chart(t, path):
    series = {}
    for (system, scen, c), r in t.closed.items():
        series.setdefault((system, scen), []).append((c, r["ops_per_s"], ms(r["p99_us"])))
    pts = [p for s in series.values() for p in s if p[1] > 0 and p[2] > 0]
    if not pts:
        return
    W, H, L, R, T, B = 1000, 640, 80, 300, 50, 60
    xs = [p[1] for p in pts]
    ys = [p[2] for p in pts]
    x0, x1 = 10 ** math.floor(math.log10(min(xs))), 10 ** math.ceil(math.log10(max(xs)))
    y0, y1 = 10 ** math.floor(math.log10(min(ys))), 10 ** math.ceil(math.log10(max(ys)))

    def X(v):
        return L + (math.log10(v) - math.log10(x0)) / (math.log10(x1) - math.log10(x0)) * (W - L - R)

    def Y(v):
        return H - B - (math.log10(v) - math.log10(y0)) / (math.log10(y1) - math.log10(y0)) * (H - T - B)

    e = []
    e.append('<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" '
             'font-family="DejaVu Sans, sans-serif" font-size="12">' % (W, H))
    e.append('<rect width="100%" height="100%" fill="white"/>')
    e.append('<text x="%d" y="24" font-size="16">p99 latency against throughput, '
             'closed loop, per row (1,000 and 10,000 clients)</text>' % L)
    d = x0
    while d <= x1 * 1.0001:
        e.append('<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="#ddd"/>' % (X(d), T, X(d), H - B))
        e.append('<text x="%.1f" y="%d" text-anchor="middle">%s</text>' % (X(d), H - B + 18, "{:,}".format(int(d))))
        d *= 10
    d = y0
    while d <= y1 * 1.0001:
        e.append('<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="#ddd"/>' % (L, Y(d), W - R, Y(d)))
        e.append('<text x="%d" y="%.1f" text-anchor="end">%g</text>' % (L - 6, Y(d) + 4, d))
        d *= 10
    e.append('<rect x="%d" y="%d" width="%d" height="%d" fill="none" stroke="#444"/>' % (L, T, W - L - R, H - T - B))
    e.append('<text x="%d" y="%d" text-anchor="middle">throughput, ops/s (log)</text>' % ((L + W - R) / 2, H - 16))
    e.append('<text x="18" y="%d" transform="rotate(-90 18 %d)" text-anchor="middle">p99 latency, ms (log)</text>' % ((T + H - B) / 2, (T + H - B) / 2))
    legend_y = T
    for i, ((system, scen), s) in enumerate(sorted(series.items())):
        s.sort()
        color = COLORS.get(system, "#555")
        dash = ["", "6,3", "2,3", "8,3,2,3"][i % 4]
        if len(s) > 1:
            e.append('<polyline fill="none" stroke="%s" stroke-width="1.5"%s points="%s"/>' % (
                color, ' stroke-dasharray="%s"' % dash if dash else "",
                " ".join("%.1f,%.1f" % (X(p[1]), Y(p[2])) for p in s)))
        for c, x, y in s:
            r = 3 if c < 10000 else 5
            e.append('<circle cx="%.1f" cy="%.1f" r="%d" fill="%s"><title>%s %s, %d clients: '
                     '%.0f ops/s, p99 %.2f ms</title></circle>' % (
                         X(x), Y(y), r, color, system, scen, c, x, y))
        e.append('<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="%s" stroke-width="1.5"%s/>' % (
            W - R + 14, legend_y + 8, W - R + 40, legend_y + 8, color,
            ' stroke-dasharray="%s"' % dash if dash else ""))
        e.append('<text x="%d" y="%d">%s: %s</text>' % (W - R + 46, legend_y + 12, system,
                                                        LABELS.get(scen, scen)))
        legend_y += 18
    e.append('<text x="%d" y="%d" fill="#555">small dot: 1,000 clients; large: 10,000</text>' % (W - R + 14, legend_y + 14))
    e.append("</svg>")
    with open(path, "w") as f:
        f.write("\n".join(e) + "\n")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rows", required=True)
    ap.add_argument("--json")
    ap.add_argument("--svg")
    ap.add_argument("--elapsed", type=float)
    ap.add_argument("--spectrad", default="")
    ap.add_argument("--etcd", default="")
    ap.add_argument("--redis", default="")
    a = ap.parse_args()
    t = Table(load(a.rows, "table.py"))
    out = []
    design = design_table(t, out)
    all_rows(t, out)
    avail = availability(t, out)
    g = goals(t, out)
    if a.elapsed is not None:
        out.append("")
        out.append("The whole run took %d min %02d s." % (a.elapsed // 60, a.elapsed % 60))
    host = host_info()
    out.append("Machine: %s cores (%s), %s GiB, %s." % (
        host["cores"], host["cpu"], host["memory_gib"], host["kernel"]))
    print("\n".join(out))
    pairs = []
    for (s, scen, c) in t.closed:
        rat = t.ratio(s, scen, c)
        if rat:
            pairs.append(dict(rat, row="%s/%s" % (s, scen), clients=c))
    if a.json:
        doc = {
            "benchmark": "table",
            "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "host": host,
            "versions": {"spectrad": a.spectrad, "etcd": a.etcd, "redis": a.redis},
            "elapsed_s": a.elapsed,
            "design_table": design,
            "pairs": pairs,
            "availability": avail,
            "goals": g,
            "text": "\n".join(out),
            "rows": t.rows,
        }
        with open(a.json, "w") as f:
            json.dump(doc, f, indent=1)
        print("wrote %s" % a.json)
    if a.svg:
        svg_chart(t, a.svg)
        print("wrote %s" % a.svg)


if __name__ == "__main__":
    main()
