#!/usr/bin/env python3
"""Decode attention against its two ceilings, as a Markdown table.

Runs build/bench/attention_bench on the decode grid (shuffled pages, the same pages in order, a
read-only pass over the same K/V bytes in address order and one in the shuffled pages' order)
plus the FMA peak, once per thread count, and prints per case: paging overhead (shuffled / in
order), what the page order costs the read-only pass alone (its shuffled / address-order time),
bandwidth against both read-only passes, FLOP/s against the FMA peak, which ceiling binds (the
larger of read-only time and FLOPs / peak) and the fraction of that ceiling reached (ceiling time
/ shuffled time). Medians of the repetitions. --shared adds the rows where 64 requests read the
same 256 tokens' pages (K/V stay in the caches): the kernel's arithmetic rate against the FMA
peak with memory out of the way.

  scripts/attention_table.py --threads 1 2 --repetitions 5
  scripts/attention_table.py --model qwen2_7b --dtypes bfloat16 float32 --cases 1x32768 8x8192
"""
import argparse
import json
import os
import re
import subprocess
import sys

DTYPES = ["float32", "float16", "bfloat16", "int8", "fp8_e4m3"]
CASES = ["1x4096", "1x16384", "1x32768", "8x4096"]


def run_bench(bench, filt, threads, reps, min_time):
    env = dict(os.environ, OMP_NUM_THREADS=str(threads))
    cmd = [bench, f"--benchmark_filter={filt}", "--benchmark_format=json",
           f"--benchmark_repetitions={reps}", "--benchmark_report_aggregates_only=true",
           f"--benchmark_min_time={min_time}"]
    out = subprocess.run(cmd, env=env, check=True, capture_output=True, text=True).stdout
    rows = {}
    for b in json.loads(out)["benchmarks"]:
        # One repetition reports the run itself; more report aggregates, of which the median.
        if b.get("run_type") == "aggregate" and b.get("aggregate_name") != "median":
            continue
        name = b["run_name"].removesuffix("/real_time")
        rows[name] = b
    return rows


def seconds(b):
    scale = {"ns": 1e-9, "us": 1e-6, "ms": 1e-3, "s": 1.0}[b["time_unit"]]
    return b["real_time"] * scale


def fma_peak_flops(rows):
    """The widest FMA peak row the run measured."""
    return (rows.get("peak/fma/avx512") or rows.get("peak/fma/avx2"))["FLOPS"]


def table(rows, model, dtypes, page_sizes, cases, threads):
    peak_flops = fma_peak_flops(rows)
    print(f"\nThreads: {threads}; FMA peak {peak_flops / 1e9:.0f} GFLOP/s\n")
    print("| KV dtype | page size | batch x ctx | shuffled (us) | in order (us) | shuffled / in order "
          "| read-only (us) | read shuffled (us) | read shuffled / read-only | bandwidth / read-only "
          "| bandwidth / read shuffled | GFLOP/s | / FMA peak | binds | / binding ceiling |")
    print("| --- " * 15 + "|")
    for dt in dtypes:
        for ps in page_sizes:
            for case in cases:
                b, c = case.split("x")
                base = f"decode/{model}/{dt}/ps{ps}/b{b}/ctx{c}"
                if f"{base}/paged" not in rows:
                    continue
                paged, inorder = rows[f"{base}/paged"], rows[f"{base}/contiguous"]
                t, t_in = seconds(paged), seconds(inorder)
                t_read = seconds(rows[f"{base}/read_only"])
                t_read_shuffled = seconds(rows[f"{base}/read_shuffled"])
                flops = paged["FLOPS"] * t
                t_compute = flops / peak_flops
                binds = "memory" if t_read >= t_compute else "compute"
                ceiling = max(t_read, t_compute)
                label = f"{b} x {int(c) // 1024}k" if int(c) % 1024 == 0 else f"{b} x {c}"
                print(f"| {dt} | {ps} | {label} | {t * 1e6:.0f} | {t_in * 1e6:.0f} | {t / t_in:.2f} "
                      f"| {t_read * 1e6:.0f} | {t_read_shuffled * 1e6:.0f} | {t_read_shuffled / t_read:.2f} "
                      f"| {t_read / t:.2f} | {t_read_shuffled / t:.2f} | {paged['FLOPS'] / 1e9:.0f} "
                      f"| {t_compute / t:.2f} | {binds} | {ceiling / t:.2f} |")


def shared_table(rows, model, dtypes, threads):
    peak_flops = fma_peak_flops(rows)
    print(f"\nK/V in cache (64 requests reading the same 256 tokens), threads: {threads}\n")
    print("| KV dtype | time (us) | GFLOP/s | / FMA peak |")
    print("| --- " * 4 + "|")
    for dt in dtypes:
        row = rows.get(f"decode/{model}/{dt}/ps16/b64/ctx256/shared")
        if row:
            print(f"| {dt} | {seconds(row) * 1e6:.0f} | {row['FLOPS'] / 1e9:.0f} "
                  f"| {row['FLOPS'] / peak_flops:.2f} |")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bench", default="build/bench/attention_bench")
    ap.add_argument("--model", default="llama3_8b")
    ap.add_argument("--dtypes", nargs="+", default=DTYPES)
    ap.add_argument("--page-sizes", nargs="+", type=int, default=[16, 128])
    ap.add_argument("--cases", nargs="+", default=CASES, help="BATCHxCTX")
    ap.add_argument("--threads", nargs="+", type=int, default=[2])
    ap.add_argument("--repetitions", type=int, default=3)
    ap.add_argument("--min-time", type=float, default=0.2)
    ap.add_argument("--shared", action="store_true", help="also the K/V-in-cache rows")
    args = ap.parse_args()
    cases = "|".join(f"b{c.split('x')[0]}/ctx{c.split('x')[1]}" for c in args.cases)
    filt = (f"peak/fma|decode/{args.model}/({'|'.join(map(re.escape, args.dtypes))})/"
            f"ps({'|'.join(map(str, args.page_sizes))})/({cases})/(paged|contiguous|read_only|read_shuffled)/")
    if args.shared:
        filt += f"|decode/{args.model}/({'|'.join(map(re.escape, args.dtypes))})/ps16/b64/ctx256/shared"
    for threads in args.threads:
        rows = run_bench(args.bench, filt, threads, args.repetitions, args.min_time)
        table(rows, args.model, args.dtypes, args.page_sizes, args.cases, threads)
        if args.shared:
            shared_table(rows, args.model, args.dtypes, threads)
    return 0


if __name__ == "__main__":
    sys.exit(main())
