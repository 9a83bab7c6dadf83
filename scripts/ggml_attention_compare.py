#!/usr/bin/env python3
"""Decode and prefill attention: ggml's CPU flash attention vs pagedkv's paged attention.

ggml is not part of pagedkv: build it yourself (CPU backend, shared libraries) and pass its
source and build directories. The script compiles bench/ggml/ggml_attention_timer.cpp (a small
driver written against ggml's public API, ggml.h and ggml-cpu.h) into a temporary directory,
times ggml_flash_attn_ext with it, and times the same shapes with pagedkv's
build/bench/attention_bench (Google Benchmark, --benchmark_format=json). Each case runs ggml
then pagedkv back to back, with the same thread count (OMP_NUM_THREADS and ggml's n_threads),
and compares medians of --reps repetitions after warm-up.

What each side computes (same shapes, scale 1/sqrt(head_dim), float32 queries, float32 out):
  ggml     ggml_flash_attn_ext(q, k, v, mask, scale, max_bias=0, logit_softcap=0), default
           precision, no sinks. K and V are contiguous per head and per sequence (ggml's best
           case; --kv-layout nhd times llama.cpp's token-major cache view instead); batch
           decode puts the sequences in ggml's 4th dimension, each with its own K/V. Decode has
           no mask; prefill has a float16 causal mask. ggml converts the queries to the K type
           for its dot products (float16 / bfloat16 caches).
  pagedkv  the `paged` rows of attention_bench: page size 16, each request's pages shuffled,
           float32 queries; bfloat16 caches also get a row against `paged_bf16q` (bf16 queries).
Ratio = ggml time / pagedkv time: > 1 means pagedkv is faster.

  /usr/bin/python3 scripts/ggml_attention_compare.py --ggml-src /work/ggml-src \\
      --ggml-build /work/ggml-build [--threads 1 2] [--cases decode prefill] [--filter REGEX]
  /usr/bin/python3 scripts/ggml_attention_compare.py --ggml-src ... --ggml-build ... --check
      (ggml against a float64 NumPy reference on small shapes; no timing)
"""

import argparse
import json
import math
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DRIVER_SRC = REPO / "bench" / "ggml" / "ggml_attention_timer.cpp"
GGML_LIBS = ("ggml", "ggml-base", "ggml-cpu")
KV_TYPE = {"float32": "f32", "float16": "f16", "bfloat16": "bf16"}


@dataclass(frozen=True)
class Model:
    name: str
    q_heads: int
    kv_heads: int
    head_dim: int


LLAMA = Model("llama3_8b", 32, 8, 128)
QWEN = Model("qwen2_7b", 28, 4, 128)


@dataclass(frozen=True)
class Case:
    kind: str  # "decode" or "prefill"
    model: Model
    dtype: str  # pagedkv dtype name
    batch: int
    ctx: int
    q_len: int

    @property
    def name(self):
        if self.kind == "decode":
            return f"decode/{self.model.name}/{self.dtype}/b{self.batch}/ctx{self.ctx}"
        return f"prefill/{self.model.name}/{self.dtype}/q{self.q_len}/ctx{self.ctx}"

    def pagedkv_rows(self):
        """(label, attention_bench benchmark name) pairs to compare against."""
        if self.kind == "prefill":
            name = f"prefill/{self.model.name}/{self.dtype}/ps16/q{self.q_len}/ctx{self.ctx}"
            return [("", name)]
        base = f"decode/{self.model.name}/{self.dtype}/ps16/b{self.batch}/ctx{self.ctx}"
        rows = [("", base + "/paged")]
        if self.dtype == "bfloat16":
            rows.append((" (pagedkv bf16 q)", base + "/paged_bf16q"))
        return rows


def all_cases():
    """The attention_bench shapes compared: decode of both models at every float cache,
    contexts 1k-32k at batch 1 and batch 8 x 4k; causal prefill of 512-2048 new tokens."""
    cases = []
    for model in (LLAMA, QWEN):
        for dtype in KV_TYPE:
            for batch, ctx in ((1, 1024), (1, 4096), (1, 16384), (1, 32768), (8, 4096)):
                cases.append(Case("decode", model, dtype, batch, ctx, 1))
    for dtype in KV_TYPE:
        for q, ctx in ((512, 512), (1024, 1024), (2048, 2048), (512, 4096)):
            cases.append(Case("prefill", LLAMA, dtype, 1, ctx, q))
    cases.append(Case("prefill", QWEN, "bfloat16", 1, 2048, 2048))
    return cases


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--ggml-src", type=Path, required=True, help="ggml source tree (include/)")
    p.add_argument("--ggml-build", type=Path, required=True,
                   help="ggml CMake build directory (libggml, libggml-base, libggml-cpu .so)")
    p.add_argument("--pagedkv-bench", type=Path, default=REPO / "build/bench/attention_bench")
    p.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    p.add_argument("--cases", nargs="+", choices=["decode", "prefill"],
                   default=["decode", "prefill"])
    p.add_argument("--filter", default="", help="regex on case names (e.g. 'llama.*ctx4096')")
    p.add_argument("--reps", type=int, default=5, help="repetitions; the median is reported")
    p.add_argument("--warmup", type=int, default=2, help="untimed ggml calls before timing")
    p.add_argument("--min-time", type=float, default=0.2,
                   help="seconds per repetition (both sides; at least one call)")
    p.add_argument("--max-other-load", type=float, default=0.25,
                   help="repeat a case while other processes used more cores than this")
    p.add_argument("--attempts", type=int, default=3, help="tries per case (quietest kept)")
    p.add_argument("--quiet-timeout", type=float, default=60.0,
                   help="seconds to wait for a quiet machine before each try")
    p.add_argument("--kv-layout", choices=["hnd", "nhd"], default="hnd")
    p.add_argument("--cxx", default="g++")
    p.add_argument("--json", type=Path, help="also write every measurement here")
    p.add_argument("--check", action="store_true",
                   help="compare ggml with a NumPy reference on small shapes, then exit")
    return p.parse_args()


def find_lib_dir(build):
    for root, _, files in os.walk(build):
        if all(f"lib{name}.so" in files for name in GGML_LIBS):
            return Path(root)
    sys.exit(f"no directory under {build} holds lib{{{','.join(GGML_LIBS)}}}.so "
             "(build ggml with shared libraries, the default)")


def compile_driver(args, out_dir):
    include = args.ggml_src / "include"
    if not (include / "ggml.h").is_file() or not (include / "ggml-cpu.h").is_file():
        sys.exit(f"{include} has no ggml.h / ggml-cpu.h")
    lib_dir = find_lib_dir(args.ggml_build)
    exe = out_dir / "ggml_attention_timer"
    cmd = [args.cxx, "-std=c++20", "-O2", "-Wall", "-Wextra", f"-I{include}", str(DRIVER_SRC),
           "-o", str(exe), f"-L{lib_dir}", *[f"-l{n}" for n in GGML_LIBS],
           f"-Wl,-rpath,{lib_dir}"]
    subprocess.run(cmd, check=True)
    return exe, lib_dir


def driver_cmd(exe, model, kv_type, batch, ctx, q_len, threads, layout):
    return [str(exe), "--q-heads", str(model.q_heads), "--kv-heads", str(model.kv_heads),
            "--head-dim", str(model.head_dim), "--batch", str(batch), "--ctx", str(ctx),
            "--q-len", str(q_len), "--kv-type", kv_type, "--kv-layout", layout,
            "--threads", str(threads)]


def env_threads(threads):
    return dict(os.environ, OMP_NUM_THREADS=str(threads))


def time_ggml(exe, case, threads, args):
    cmd = driver_cmd(exe, case.model, KV_TYPE[case.dtype], case.batch, case.ctx, case.q_len,
                     threads, args.kv_layout)
    cmd += ["--warmup", str(args.warmup), "--reps", str(args.reps),
            "--min-time", str(args.min_time)]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True,
                         env=env_threads(threads)).stdout
    return json.loads(out)


def time_pagedkv(case, threads, args):
    """Median real time in microseconds of each pagedkv row of `case`, by benchmark name."""
    names = [name for _, name in case.pagedkv_rows()]
    pattern = "^(" + "|".join(re.escape(n) for n in names) + ")/real_time$"
    cmd = [str(args.pagedkv_bench), f"--benchmark_filter={pattern}",
           f"--benchmark_repetitions={args.reps}", "--benchmark_report_aggregates_only=true",
           f"--benchmark_min_time={args.min_time}", "--benchmark_format=json"]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True,
                         env=env_threads(threads)).stdout
    scale = {"ns": 1e-3, "us": 1.0, "ms": 1e3, "s": 1e6}
    medians, runs = {}, {}
    for b in json.loads(out)["benchmarks"]:
        name = b["run_name"].removesuffix("/real_time")
        us = b["real_time"] * scale[b["time_unit"]]
        if b.get("aggregate_name") == "median":
            medians[name] = us
        elif b.get("run_type") == "iteration":  # --reps 1 reports no aggregates
            runs.setdefault(name, []).append(us)
    for name, times in runs.items():
        medians.setdefault(name, statistics.median(times))
    return medians


def machine():
    model = platform.processor() or "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{model}, {os.cpu_count()} CPUs"


def ggml_commit(src):
    try:
        return subprocess.run(["git", "-C", str(src), "rev-parse", "HEAD"], check=True,
                              capture_output=True, text=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown (not a git checkout)"


def fmt_us(x):
    return "-" if x is None else (f"{x:.0f}" if x >= 100 else f"{x:.1f}")


class OtherLoad:
    """CPU time other processes used while a block ran, in cores: all busy time in /proc/stat
    minus the time of this script's finished children (the two benchmark processes)."""

    def __enter__(self):
        self.start = self._sample()
        return self

    def __exit__(self, *exc):
        busy0, child0, wall0 = self.start
        busy1, child1, wall1 = self._sample()
        self.cores = max(0.0, (busy1 - busy0) - (child1 - child0)) / max(wall1 - wall0, 1e-9)

    @staticmethod
    def _sample():
        fields = [int(x) for x in Path("/proc/stat").read_text().split("\n")[0].split()[1:8]]
        user, nice, system, _idle, _iowait, irq, softirq = fields
        busy = (user + nice + system + irq + softirq) / os.sysconf("SC_CLK_TCK")
        t = os.times()
        return busy, t.children_user + t.children_system, time.monotonic()


def wait_quiet(limit, timeout):
    """Waits (at most `timeout` seconds) until other processes use at most `limit` cores over a
    2-second window."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with OtherLoad() as load:
            time.sleep(2)
        if load.cores <= limit:
            return


def measure(exe, case, threads, args):
    """ggml then pagedkv on `case`, once the machine is quiet; repeated (up to --attempts) while
    other processes used more than --max-other-load cores meanwhile, keeping the quietest try."""
    best = None
    for _ in range(args.attempts):
        wait_quiet(args.max_other_load, args.quiet_timeout)
        with OtherLoad() as load:
            g = time_ggml(exe, case, threads, args)
            p = time_pagedkv(case, threads, args)
        if best is None or load.cores < best[2]:
            best = (g, p, load.cores)
        if load.cores <= args.max_other_load:
            break
    return best


def compare(exe, args):
    rx = re.compile(args.filter) if args.filter else None
    cases = [c for c in all_cases() if c.kind in args.cases and (not rx or rx.search(c.name))]
    if not cases:
        sys.exit("no case matches --cases / --filter")
    if not args.pagedkv_bench.is_file():
        sys.exit(f"{args.pagedkv_bench} not found (build the attention_bench target)")
    print(f"machine: {machine()}; ggml commit {ggml_commit(args.ggml_src)}")
    print(f"medians of {args.reps} repetitions (>= {args.min_time} s each); ggml K/V layout "
          f"{args.kv_layout}; pagedkv page size 16, shuffled pages; ratio > 1: pagedkv faster; "
          "other load: cores other processes used meanwhile")
    records = []
    for threads in args.threads:
        print(f"\nthreads: {threads}\n")
        print("| case | ggml (us) | pagedkv (us) | ggml / pagedkv | other load |")
        print("| --- | --- | --- | --- | --- |")
        ratios = {"decode": [], "prefill": []}
        for case in cases:
            g, p, other = measure(exe, case, threads, args)
            for label, bench_name in case.pagedkv_rows():
                pk = p.get(bench_name)
                ratio = g["median_us"] / pk if pk else None
                if ratio and not label:
                    ratios[case.kind].append(ratio)
                print(f"| {case.name}{label} | {fmt_us(g['median_us'])} | {fmt_us(pk)} | "
                      f"{'-' if ratio is None else f'{ratio:.2f}'} | {other:.2f} |", flush=True)
                records.append({"case": case.name + label, "threads": threads,
                                "ggml_us": g["median_us"], "ggml_reps_us": g["reps_us"],
                                "pagedkv_bench": bench_name, "pagedkv_us": pk, "ratio": ratio,
                                "other_load_cores": other})
        for kind, rs in ratios.items():
            if rs:
                gm = math.exp(statistics.fmean(math.log(r) for r in rs))
                print(f"\n{kind}, {threads} thread(s): geometric mean ratio {gm:.2f} over "
                      f"{len(rs)} cases (float32 queries on both sides' rows), "
                      f"range {min(rs):.2f}-{max(rs):.2f}")
    if args.json:
        args.json.write_text(json.dumps({"machine": machine(),
                                         "ggml_commit": ggml_commit(args.ggml_src),
                                         "kv_layout": args.kv_layout, "reps": args.reps,
                                         "results": records}, indent=1))


def round_to(x, kv_type, np):
    """x (float32) rounded to kv_type the way ggml stores it (round to nearest even)."""
    if kv_type == "f16":
        return x.astype(np.float16).astype(np.float32)
    if kv_type == "bf16":
        u = x.astype(np.float32).view(np.uint32).astype(np.uint64)
        u = ((u + 0x7FFF + ((u >> 16) & 1)) >> 16) << 16
        return u.astype(np.uint32).view(np.float32)
    return x


def reference(q, k, v, q_len, np):
    """Float64 attention. q [B, Hq, Q, D], k/v [B, Hkv, C, D] -> [B, Hq, Q, D]; row i of the
    q_len new tokens (at the end of the context) sees keys j <= C - Q + i."""
    b, hq, _, d = q.shape
    ctx = k.shape[2]
    group = hq // k.shape[1]
    kk = np.repeat(k.astype(np.float64), group, axis=1)
    vv = np.repeat(v.astype(np.float64), group, axis=1)
    s = np.einsum("bhqd,bhkd->bhqk", q.astype(np.float64), kk) / math.sqrt(d)
    visible = np.arange(ctx)[None, :] <= (ctx - q_len + np.arange(q_len))[:, None]
    s = np.where(visible, s, -np.inf)
    p = np.exp(s - s.max(axis=-1, keepdims=True))
    p /= p.sum(axis=-1, keepdims=True)
    return np.einsum("bhqk,bhkd->bhqd", p, vv)


def check(exe):
    """ggml's output against a float64 reference on small shapes that reach each of its CPU
    paths: split-KV decode (one sequence, >= 512 keys), per-row decode (several sequences),
    tiled prefill (>= 64 query rows) and short prefill; every K/V type and both layouts."""
    import numpy as np

    model = Model("check", 4, 2, 128)
    shapes = [(1, 700, 1), (3, 100, 1), (1, 300, 80), (1, 50, 7)]  # (batch, ctx, q_len)
    tolerance = {"f32": 1e-6, "f16": 2e-3, "bf16": 1e-3}
    worst_ok = True
    print("| kv type | layout | batch x ctx, q_len | max abs diff (ref, f32 q) | "
          "max abs diff (ref, q rounded to kv type) | max abs out |")
    print("| --- | --- | --- | --- | --- | --- |")
    for kv_type in ("f32", "f16", "bf16"):
        for layout in ("hnd", "nhd"):
            for batch, ctx, q_len in shapes:
                with tempfile.TemporaryDirectory() as d:
                    cmd = driver_cmd(exe, model, kv_type, batch, ctx, q_len, 2, layout)
                    cmd += ["--warmup", "0", "--reps", "1", "--min-time", "0", "--dump", d]
                    subprocess.run(cmd, check=True, capture_output=True, env=env_threads(2))
                    hd = model.head_dim

                    def load(name, heads, tokens, d=d, hd=hd):
                        a = np.fromfile(Path(d) / name, dtype=np.float32)
                        return a.reshape(batch, heads, tokens, hd)

                    q = load("q.f32", model.q_heads, q_len)
                    k = load("k.f32", model.kv_heads, ctx)
                    v = load("v.f32", model.kv_heads, ctx)
                    out = load("out.f32", model.q_heads, q_len)
                ref = reference(q, k, v, q_len, np)
                ref_q = reference(round_to(q, kv_type, np), k, v, q_len, np)
                diff = float(np.abs(out - ref).max())
                diff_q = float(np.abs(out - ref_q).max())
                worst_ok &= diff <= tolerance[kv_type]
                print(f"| {kv_type} | {layout} | {batch} x {ctx}, {q_len} | {diff:.2e} | "
                      f"{diff_q:.2e} | {float(np.abs(ref).max()):.3f} |")
    print("\n" + ("ok" if worst_ok else "FAILED") + f": tolerances {tolerance}")
    return 0 if worst_ok else 1


def main():
    args = parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        exe, lib_dir = compile_driver(args, Path(tmp))
        print(f"ggml libraries: {lib_dir}")
        if args.check:
            return check(exe)
        compare(exe, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
