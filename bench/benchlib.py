"""benchlib: what the benchmark reports share (bench/table.py, bench/ml.py).

host_info() describes the machine a run was made on; load() reads the JSON
lines `spectra bench --json` appends; ms() and errors() read its rows.
"""
import json
import os
import platform
import sys


def ms(us):
    return us / 1000.0


def errors(r):
    return sum(r["errors"].values())


def host_info():
    """cores, cpu model, memory in GiB and kernel ("Linux 6.1.0-...")."""
    info = {"cores": os.cpu_count(), "cpu": None, "memory_gib": None,
            "kernel": platform.system() + " " + platform.release()}
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                info["cpu"] = line.split(":", 1)[1].strip()
                break
        for line in open("/proc/meminfo"):
            if line.startswith("MemTotal"):
                info["memory_gib"] = round(int(line.split()[1]) / 1024 / 1024, 1)
                break
    except OSError:
        pass
    return info


def load(path, who):
    """The rows of a --json file; exits naming `who` on a bad line."""
    rows = []
    with open(path) as f:
        for n, line in enumerate(f, 1):
            line = line.strip()
            if not line:
                continue
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as e:
                sys.exit("%s: %s line %d: %s" % (who, path, n, e))
    return rows
