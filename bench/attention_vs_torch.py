#!/usr/bin/env python3
"""Prefill attention: pagedkv.paged_attention vs PyTorch matmul-softmax-matmul.

Same data on both sides: Llama-3-8B shape (32 q heads, 8 kv heads, head_dim 128) by default,
one request whose q_len new tokens are the whole context (causal). PyTorch (CPU, float32,
torch.set_num_threads(threads)) computes softmax(Q K^T * scale + causal_mask) V with K/V
repeated for GQA; pagedkv reads the same K/V from shuffled pages (page size 16) stored as
float32 or bfloat16, with the same number of OpenMP threads (OMP_NUM_THREADS is set before
import). Reports the median of --reps runs and the ratio torch_time / pagedkv_time (> 1 means
pagedkv is faster), plus the max abs difference of the outputs.

  PYTHONPATH=build-*/python /usr/bin/python3 bench/attention_vs_torch.py [--threads 2]
      [--lengths 512 1024 2048 4096]   (torch through a generic BLAS needs minutes at 4096)
"""

import argparse
import os
import statistics
import sys
import time


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--reps", type=int, default=5)
    p.add_argument("--lengths", type=int, nargs="+", default=[512, 1024, 2048])
    p.add_argument("--q-heads", type=int, default=32)
    p.add_argument("--kv-heads", type=int, default=8)
    p.add_argument("--head-dim", type=int, default=128)
    p.add_argument("--page-size", type=int, default=16)
    return p.parse_args()


ARGS = parse_args()
os.environ["OMP_NUM_THREADS"] = str(ARGS.threads)

import numpy as np  # noqa: E402
import torch  # noqa: E402

import pagedkv  # noqa: E402


def median_time(fn, reps):
    fn()  # warm-up (allocations, thread pools)
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def bf16_bits(x):
    u = np.asarray(x, dtype=np.float32).view(np.uint32).astype(np.uint64)
    return ((u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype(np.uint16)


def main():
    torch.set_num_threads(ARGS.threads)
    hq, hkv, d, ps = ARGS.q_heads, ARGS.kv_heads, ARGS.head_dim, ARGS.page_size
    scale = 1.0 / np.sqrt(d)
    rng = np.random.default_rng(0)
    print(f"# shape q_heads={hq} kv_heads={hkv} head_dim={d} page_size={ps} "
          f"threads={ARGS.threads} reps={ARGS.reps} isa={pagedkv.active_isa()}")
    print(f"{'q_len':>6} {'torch_f32_ms':>13} {'pkv_f32_ms':>11} {'ratio_f32':>9} "
          f"{'pkv_bf16_ms':>12} {'ratio_bf16':>10} {'max_abs_diff':>12}")
    for n in ARGS.lengths:
        q = rng.uniform(-1, 1, (n, hq, d)).astype(np.float32)
        k = rng.uniform(-1, 1, (n, hkv, d)).astype(np.float32)
        v = rng.uniform(-1, 1, (n, hkv, d)).astype(np.float32)

        # PyTorch: [heads, tokens, dim] with K/V repeated per q head.
        tq = torch.from_numpy(q).transpose(0, 1).contiguous()
        tk = torch.from_numpy(k).transpose(0, 1).repeat_interleave(hq // hkv, dim=0).contiguous()
        tv = torch.from_numpy(v).transpose(0, 1).repeat_interleave(hq // hkv, dim=0).contiguous()
        mask = torch.full((n, n), float("-inf")).triu(1)

        def torch_attention():
            with torch.no_grad():
                s = torch.matmul(tq, tk.transpose(1, 2)) * scale + mask
                return torch.matmul(torch.softmax(s, dim=-1), tv)

        # pagedkv: the same K/V in shuffled HND pages.
        npages = -(-n // ps)
        ids = rng.permutation(np.arange(1, npages + 1)).astype(np.int32)
        k_pages = np.zeros((hkv, npages + 1, ps, d), np.float32)
        v_pages = np.zeros_like(k_pages)
        pos = np.arange(n)
        k_pages[:, ids[pos // ps], pos % ps] = k.transpose(1, 0, 2)
        v_pages[:, ids[pos // ps], pos % ps] = v.transpose(1, 0, 2)
        k_bf16, v_bf16 = bf16_bits(k_pages), bf16_bits(v_pages)
        qsl = np.array([0, n], np.int32)
        lens = np.array([n], np.int32)
        table = ids[None, :]

        def pkv(kp, vp):
            return lambda: pagedkv.paged_attention(q, kp, qsl, lens, table, scale, value_pages=vp)

        t_torch = median_time(torch_attention, ARGS.reps)
        t_f32 = median_time(pkv(k_pages, v_pages), ARGS.reps)
        t_bf16 = median_time(pkv(k_bf16, v_bf16), ARGS.reps)
        diff = np.abs(pkv(k_pages, v_pages)() - torch_attention().transpose(0, 1).numpy()).max()
        print(f"{n:>6} {t_torch * 1e3:>13.2f} {t_f32 * 1e3:>11.2f} {t_torch / t_f32:>9.2f} "
              f"{t_bf16 * 1e3:>12.2f} {t_torch / t_bf16:>10.2f} {diff:>12.2e}")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
