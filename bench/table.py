#!/usr/bin/env python3
"""Turns the harness's raw rows into the table of medians and ratios to the baseline.

Each row: `SCENARIO:SUBJECT RESULT requests=.. duration_us=.. p50_us=.. ... cpu_ticks=..
store_ticks=.. load_ticks=..`. CPU per request = (utime + stime of the server over the run) /
requests served; the store's (PostgreSQL's processes) likewise; the load generator's CPU as a
share of one core over the run.

The table leads with CPU per request against the baseline: on this 2-core machine the load
generator (wrk with a Lua script, one core) saturates first, so a throughput ratio alone
compares two saturated load generators. A run whose wrk used >= 90 % of its core is marked
`LG-bound`: its req/s says more about wrk than about the server.
"""
import statistics
import sys
from collections import defaultdict

NAMES = {
    "A": "(A) hot, both at once",
    "U": "(U) uniform, both at once",
    "a": "(a) hot cached redirect",
    "b": "(b) Zipf over N links",
    "c": "(c) Zipf, cache off",
    "d": "(d) unknown codes (404)",
    "e": "(e) durable creates",
    "h": "(h) Zipf, clicks off/on/exact",
    "u": "(u) uniform 10k, new visitors",
    "w": "(w) creates per write level",
}
LOAD_BOUND = 0.90
# Scenarios measured with the baseline at the same time (bench/run.sh's measure_pair): the two
# wrk share the load core, so each is bound at half of it.
PAIRED = ("A", "U")
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
            "store_us": f.get("store_ticks", 0) / tick * 1e6 / max(f["requests"], 1),
            "load": f.get("load_ticks", 0) / tick / secs,
            "errors": errors,
            "requests": f["requests"],
        })
    return runs


def med(runs, key):
    return statistics.median(r[key] for r in runs)


def paired(r, base):
    """The CPU ratio round by round (each round measures the subject right after its baseline,
    so slow drift of the machine cancels): median, and the range."""
    ratios = sorted(x["cpu_us"] / b["cpu_us"] for x, b in zip(r, base) if b["cpu_us"] > 0)
    if not ratios:
        return "-"
    return f"{statistics.median(ratios):.2f} ({ratios[0]:.2f}-{ratios[-1]:.2f})"


def main():
    runs = parse(sys.argv[1], float(sys.argv[2]))
    with_store = any(r["store_us"] > 0 for v in runs.values() for r in v)
    print(f"{'scenario':<30} {'subject':<9} {'CPU µs/req':>11} {'× base CPU':>11} "
          f"{'per round':>17} "
          + (f"{'+store µs/req':>14} " if with_store else "")
          + f"{'req/s':>10} {'× base req/s':>13} {'wrk CPU':>8} {'p50 ms':>8} {'p99 ms':>8} "
          f"{'p99.9 ms':>9} {'errors':>7}")
    bound = False
    for s in sorted({k.split(":")[0] for k in runs}):
        base = next((runs[f"{s}:{b}"] for b in BASES if f"{s}:{b}" in runs), None)
        for subject in (*BASES, "snip", "before", "exact", "one", "quorum", "all"):
            r = runs.get(f"{s}:{subject}")
            if not r:
                continue
            ratio = cpu_ratio = rounds = "-"
            if subject in ("snip", "before", "exact") and base:
                ratio = f"{med(r, 'rps') / med(base, 'rps'):.2f}"
                cpu_ratio = f"{med(r, 'cpu_us') / med(base, 'cpu_us'):.2f}"
                rounds = paired(r, base)
            load = med(r, "load")
            limit = LOAD_BOUND / 2 if s in PAIRED else LOAD_BOUND
            mark = " LG-bound" if load >= limit else ""
            bound |= bool(mark)
            store = f"{med(r, 'store_us'):>14.2f} " if with_store else ""
            print(f"{NAMES.get(s, s):<30} {subject:<9} {med(r, 'cpu_us'):>11.2f} {cpu_ratio:>11} "
                  f"{rounds:>17} "
                  f"{store}{med(r, 'rps'):>10.0f} {ratio:>13} {load * 100:>7.0f}% "
                  f"{med(r, 'p50') / 1000:>8.3f} {med(r, 'p99') / 1000:>8.3f} "
                  f"{med(r, 'p999') / 1000:>9.3f} {int(sum(x['errors'] for x in r)):>7}{mark}")
    print(f"(medians of {max(len(v) for v in runs.values())} alternating runs per row; CPU µs/req "
          "is the server's own; +store: PostgreSQL's processes per request; per round: the CPU "
          "ratio to the baseline measured just before, median (min-max) over the rounds)")
    if bound:
        print(f"LG-bound: wrk used >= {LOAD_BOUND:.0%} of its core (of half of it in (A) and "
              "(U), where two wrk share it); that row's req/s is the load generator's limit, "
              "compare CPU µs/req instead")
    if any(k.split(":")[0] in PAIRED for k in runs):
        print("(A), (U): the baseline and snip loaded at the same time, both servers on one core: "
              "per round is the ratio of the same seconds")


if __name__ == "__main__":
    main()
