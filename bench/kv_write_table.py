#!/usr/bin/env python3
"""Markdown table of kv_write_bench results: every write row against memcpy of the same bytes.

Takes the JSON files of kv_write_bench runs (--benchmark_out=FILE, with
--benchmark_repetitions and --benchmark_report_aggregates_only=true), one per thread count, and
prints one line per case and kernel: for each run the memcpy GB/s (the faster of the memcpy/
and memcpy_mt/ medians of the same bytes), the write GB/s (median) and their ratio. Cases whose
ratio is under --min (default 0.8) in any run are marked (bold) and listed on stderr.
--baseline takes the JSON files of an earlier build, in the same order, and adds its ratios.

  python3 bench/kv_write_table.py t1.json t2.json [--baseline old1.json old2.json] [--min 0.8]
"""

import argparse
import json
import re
import sys

ROW = re.compile(r"^(?P<kernel>[a-z_]+)/(?P<case>[^/]+/[^/]+/ps\d+/[a-z0-9_]+)(?P<input>/in_\w+)?$")


def load(path):
    """Returns ({name: median bytes/s}, threads) of one run."""
    with open(path) as f:
        doc = json.load(f)
    medians, threads = {}, 1
    for b in doc["benchmarks"]:
        if b.get("aggregate_name") != "median":
            continue
        medians[b["run_name"]] = b["bytes_per_second"]
        threads = max(threads, int(b.get("threads", 1)))
    return medians, threads


def rows_of(medians):
    """Yields (case, kernel label, write bytes/s, memcpy bytes/s)."""
    for name, bps in sorted(medians.items()):
        m = ROW.match(name)
        if not m or m["kernel"].startswith("memcpy"):
            continue
        case = m["case"]
        base = max(medians.get(f"{k}/{case}", 0.0) for k in ("memcpy", "memcpy_mt"))
        label = m["kernel"] + (f" {m['input'][1:]}" if m["input"] else "")
        yield case, label, bps, base


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("runs", nargs="+", help="kv_write_bench JSON outputs, one per thread count")
    p.add_argument("--min", type=float, default=0.8)
    p.add_argument("--baseline", nargs="*", default=[], help="an earlier build's JSON outputs")
    args = p.parse_args()
    runs = [load(r) for r in args.runs]
    baseline = {}
    for i, path in enumerate(args.baseline):
        for case, label, bps, base in rows_of(load(path)[0]):
            baseline.setdefault((case, label), [None] * len(args.baseline))[i] = bps / base
    base_threads = [load(path)[1] for path in args.baseline]
    table = {}
    for i, (medians, _) in enumerate(runs):
        for case, label, bps, base in rows_of(medians):
            table.setdefault((case, label), [None] * len(runs))[i] = (base, bps)
    head = ["shape / step / page size / cache dtype", "kernel"]
    for _, threads in runs:
        head += [f"memcpy GB/s ({threads}T)", f"write GB/s ({threads}T)", f"ratio ({threads}T)"]
    head += [f"ratio before ({threads}T)" for threads in base_threads]
    print("| " + " | ".join(head) + " |")
    print("|" + " --- |" * len(head))
    low = []
    for (case, label), cells in sorted(table.items()):
        line = [case.replace("/", " / "), label]
        for cell, (_, threads) in zip(cells, runs):
            if cell is None:
                line += ["-", "-", "-"]
                continue
            base, bps = cell
            ratio = bps / base if base else float("nan")
            mark = "**" if ratio < args.min else ""
            line += [f"{base / 1e9:.1f}", f"{bps / 1e9:.1f}", f"{mark}{ratio:.2f}{mark}"]
            if ratio < args.min:
                low.append(f"{threads}T {case} {label}: {ratio:.2f}")
        for old in baseline.get((case, label), [None] * len(base_threads)):
            line.append("-" if old is None else f"{old:.2f}")
        print("| " + " | ".join(line) + " |")
    print(f"\n{len(low)} ratios under {args.min}", file=sys.stderr)
    for entry in low:
        print("  " + entry, file=sys.stderr)


if __name__ == "__main__":
    main()
