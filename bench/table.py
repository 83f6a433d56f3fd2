#!/usr/bin/env python3
"""Turns the harness's raw rows into the table of medians and ratios to the baseline.

Each row: `SCENARIO:SUBJECT RESULT requests=.. duration_us=.. p50_us=.. ... cpu_ticks=..`.
CPU per request = (utime + stime of the server over the run) / requests served.
"""
import statistics
import sys
from collections import defaultdict

NAMES = {
    "a": "(a) hot cached redirect",
    "b": "(b) Zipf over N links",
    "c": "(c) Zipf, cache off",
    "d": "(d) unknown codes (404)",
    "e": "(e) durable creates",
    "h": "(h) Zipf, clicks off/on/exact",
}
# Scenario (h) compares snip with snip itself, run with `--click-mode off`.
BASES = ("baseline", "off")


def parse(path, tick):
    runs = defaultdict(list)
    for line in open(path):
        label, _, *fields = line.split()
        f = {k: float(v) for k, v in (x.split("=") for x in fields)}
        secs = f["duration_us"] / 1e6
        errors = f["connect_errors"] + f["read_errors"] + f["write_errors"] + f["timeouts"]
        runs[label].append({
            "rps": f["requests"] / secs,
            "p50": f["p50_us"], "p99": f["p99_us"], "p999": f["p999_us"],
            "cpu_us": f["cpu_ticks"] / tick * 1e6 / max(f["requests"], 1),
            "errors": errors,
            "requests": f["requests"],
        })
    return runs


def med(runs, key):
    return statistics.median(r[key] for r in runs)


def main():
    runs = parse(sys.argv[1], float(sys.argv[2]))
    print(f"{'scenario':<28} {'subject':<9} {'req/s':>10} {'p50 ms':>8} {'p99 ms':>8} "
          f"{'p99.9 ms':>9} {'CPU µs/req':>11} {'× base req/s':>13} {'× base CPU':>11} {'errors':>7}")
    for s in sorted({k.split(":")[0] for k in runs}):
        base = next((runs[f"{s}:{b}"] for b in BASES if f"{s}:{b}" in runs), None)
        for subject in (*BASES, "snip", "before", "exact"):
            r = runs.get(f"{s}:{subject}")
            if not r:
                continue
            ratio = cpu_ratio = "-"
            if subject in ("snip", "before", "exact") and base:
                ratio = f"{med(r, 'rps') / med(base, 'rps'):.2f}"
                cpu_ratio = f"{med(r, 'cpu_us') / med(base, 'cpu_us'):.2f}"
            print(f"{NAMES.get(s, s):<28} {subject:<9} {med(r, 'rps'):>10.0f} "
                  f"{med(r, 'p50') / 1000:>8.3f} {med(r, 'p99') / 1000:>8.3f} "
                  f"{med(r, 'p999') / 1000:>9.3f} {med(r, 'cpu_us'):>11.2f} "
                  f"{ratio:>13} {cpu_ratio:>11} {int(sum(x['errors'] for x in r)):>7}")
    print(f"(medians of {max(len(v) for v in runs.values())} alternating runs per row)")


if __name__ == "__main__":
    main()
