#!/usr/bin/env python3
"""Throughput of the Python reference model (tests/python/reference_model.py) on the request
lifecycle workload - the yardstick a plain Python page manager sets for the C++ one.

Workload (fixed seed): 10,000 requests of U[1024, 4096] tokens, page size 16, 65,536 pages;
every second request starts with one of 64 shared prefixes of U[512, 2048] tokens; at most 128
requests are held at once, the oldest is freed when a new one needs room. Each request is one
prefix lookup + one allocation of the rest of its prompt; the pages it maps (hit + new) count
as processed pages.

Hashing is excluded: hashes are precomputed before the clock starts. A page that lies wholly
inside a shared prefix gets its prefix's hash for that position, every other page a unique one
(what a chained hash gives when the tail tokens are random). Only the manager calls
(get_computed_pages, allocate_slots, free) are timed, in wall time and in this process's CPU
time (the better figure on a shared machine).

    /usr/bin/python3 bench/reference_lifecycle.py [--requests N] [--repetitions R]
"""

from __future__ import annotations

import argparse
import collections
import pathlib
import random
import statistics
import sys
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent / "tests" / "python"))
from reference_model import RefKVCacheManager, RefRequest, cdiv  # noqa: E402

PAGE_SIZE = 16
NUM_PAGES = 65_536
MAX_HELD = 128
NUM_PREFIXES = 64


def make_workload(num_requests: int, seed: int = 0) -> list[tuple[int, list[int]]]:
    """(num_tokens, page hashes) per request."""
    rng = random.Random(seed)
    prefix_lens = [rng.randint(512, 2048) for _ in range(NUM_PREFIXES)]
    next_unique = NUM_PREFIXES << 32
    out = []
    for i in range(num_requests):
        num_tokens = rng.randint(1024, 4096)
        shared_pages = 0
        prefix = 0
        if i % 2 == 1:
            prefix = rng.randrange(NUM_PREFIXES)
            shared_pages = min(prefix_lens[prefix], num_tokens) // PAGE_SIZE
        hashes = []
        for page in range(num_tokens // PAGE_SIZE):
            if page < shared_pages:
                hashes.append((prefix << 32) | page)
            else:
                hashes.append(next_unique)
                next_unique += 1
        out.append((num_tokens, hashes))
    return out


def run_once(workload) -> tuple[float, float, int, int, int]:
    """Returns (wall seconds, CPU seconds, pages mapped, pages newly allocated, hit pages)."""
    mgr = RefKVCacheManager(NUM_PAGES, PAGE_SIZE, max_model_len=8192, enable_caching=True)
    held: collections.deque[RefRequest] = collections.deque()
    mapped = allocated = hit = 0
    elapsed = cpu = 0.0
    for i, (num_tokens, hashes) in enumerate(workload):
        # Built outside the clock: the tokens only matter for events (off here).
        req = RefRequest(f"r{i}", [0] * num_tokens, page_hashes_fn=lambda ps, h=hashes: h)
        t0, c0 = time.perf_counter(), time.process_time()
        if len(held) == MAX_HELD:
            mgr.free(held.popleft())
        while True:
            pages, n_hit = mgr.get_computed_pages(req)
            new = mgr.allocate_slots(req, num_tokens - n_hit, n_hit, pages)
            if new is not None or not held:
                break
            mgr.free(held.popleft())
        elapsed += time.perf_counter() - t0
        cpu += time.process_time() - c0
        assert new is not None, "the pool is too small for one request"
        req.num_computed_tokens = num_tokens
        held.append(req)
        mapped += cdiv(num_tokens, PAGE_SIZE)
        allocated += len(new[0])
        hit += len(pages[0])
    t0, c0 = time.perf_counter(), time.process_time()
    while held:
        mgr.free(held.popleft())
    elapsed += time.perf_counter() - t0
    cpu += time.process_time() - c0
    mgr.verify()
    assert mgr.page_pool.get_num_free_pages() == NUM_PAGES - 1
    return elapsed, cpu, mapped, allocated, hit


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=10_000)
    parser.add_argument("--repetitions", type=int, default=3)
    args = parser.parse_args()
    workload = make_workload(args.requests)
    walls, cpus = [], []
    for _ in range(args.repetitions):
        wall, cpu, mapped, allocated, hit = run_once(workload)
        walls.append(wall)
        cpus.append(cpu)
    wall, cpu = statistics.median(walls), statistics.median(cpus)
    print(f"reference model, lifecycle workload: {args.requests} requests, page size {PAGE_SIZE}, "
          f"{NUM_PAGES} pages, <= {MAX_HELD} held")
    print(f"  pages mapped {mapped} (hit {hit}, new {allocated}); prefix hit rate "
          f"{hit / mapped:.3f}")
    print(f"  wall time: median {wall:.3f} s of {args.repetitions} "
          f"(min {min(walls):.3f}, max {max(walls):.3f}); CPU time: median {cpu:.3f} s")
    print(f"  throughput (wall): {mapped / wall / 1e6:.3f} M pages/s mapped, "
          f"{allocated / wall / 1e6:.3f} M pages/s allocated")
    print(f"  throughput (CPU):  {mapped / cpu / 1e6:.3f} M pages/s mapped, "
          f"{allocated / cpu / 1e6:.3f} M pages/s allocated")

if __name__ == "__main__":
    main()
