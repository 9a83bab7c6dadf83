"""Differential test: the C++ page pool and KV-cache manager (through the bindings) against the
reference model of reference_model.py, driven by the same random operation sequences.

After every operation the test compares everything observable - returned pages, hit lengths,
every page's ref count and hash, the free-queue order, usage, events, each request's pages,
statistics - and calls verify() on the real objects. Small pools make eviction and allocation
failure common.

Two drivers share one harness per level (pool, manager):
  - hypothesis rule-based state machines (derandomized: the same sequences on every run; on a
    failure hypothesis prints the shrunk sequence of steps);
  - long seeded random runs, which reach deeper states than the shrinkable sequences.
Page hashes of the model come from the real requests (hashing is tested elsewhere).
"""

from __future__ import annotations

import random

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, precondition, rule

import pagedkv
from reference_model import (
    CapacityError,
    RefGroup,
    RefKVCacheManager,
    RefPagePool,
    RefRequest,
)

# Building blocks of prompts: a few shared pieces so that prefixes repeat and hits happen.
PIECES = [
    list(range(100, 105)),
    list(range(200, 208)),
    list(range(300, 313)),
    list(range(400, 403)),
    list(range(500, 516)),
    list(range(600, 607)),
]
# Shared "system prompts" (several pages long at every page size) that prompts may start with.
SYSTEM_PROMPTS = [[], list(range(1000, 1024)), list(range(2000, 2037))]
TAIL_TOKENS = [1, 2, 3]
SALTS = [None, "tenant-b"]
LORAS = [None, 7]
ALGOS = ["xxh3_128", "sha256"]


def error_kind(exc: BaseException) -> str:
    """The error category, comparable between the model and pagedkv."""
    if isinstance(exc, (CapacityError, pagedkv.CapacityError)):
        return "capacity"
    if isinstance(exc, ValueError):
        return "value"
    if isinstance(exc, IndexError):
        return "index"
    if isinstance(exc, RuntimeError):
        return "state"
    raise exc  # anything else (AssertionError = pagedkv.InternalError, TypeError...) is a bug


def call_both(real_fn, ref_fn):
    """Calls both sides and returns (real result, model result); a side that raised gives
    ("error", kind) instead, so results and failures compare alike."""
    try:
        real = real_fn()
    except Exception as e:  # noqa: BLE001 - classified below
        real = ("error", error_kind(e))
    try:
        ref = ref_fn()
    except Exception as e:  # noqa: BLE001
        ref = ("error", error_kind(e))
    return real, ref


def groups(x):
    """Pages per group as a list of lists (or None)."""
    if x is None:
        return None
    return [list(g) for g in x]


def norm_event(e) -> tuple:
    kind = str(e.kind)
    if kind == "removed":
        return (kind, [bytes(h) for h in e.page_hashes], e.group_id, list(e.page_ids))
    if kind == "all_cleared":
        return (kind,)
    parent = None if e.parent_hash is None else bytes(e.parent_hash)
    return (kind, parent, [bytes(h) for h in e.page_hashes], list(e.token_ids), e.page_size,
            e.lora_id, e.group_id, list(e.page_ids))


def compare_pools(real: "pagedkv.PagePool", ref: RefPagePool, where: str) -> None:
    real.verify()
    ref.verify()
    n = ref.num_pages
    assert real.null_page == ref.null_page == 0, where
    assert real.get_all_free_pages() == ref.get_all_free_pages(), where
    assert real.get_num_free_pages() == ref.get_num_free_pages(), where
    assert real.get_usage() == pytest.approx(ref.get_usage(), abs=1e-12), where
    assert [real.ref_count(p) for p in range(1, n)] == ref.ref[1:], where
    real_hashes = [real.page_hash(p) for p in range(n)]
    assert [None if h is None else bytes(h) for h in real_hashes] == \
        [ref.page_hash(p) for p in range(n)], where
    assert [norm_event(e) for e in real.take_events()] == \
        [norm_event(e) for e in ref.take_events()], where


def make_prompt(piece_ids: list[int], tail: list[int], system: int = 0) -> list[int]:
    prompt = list(SYSTEM_PROMPTS[system % len(SYSTEM_PROMPTS)])
    prompt += [t for i in piece_ids for t in PIECES[i % len(PIECES)]]
    prompt += [TAIL_TOKENS[t % len(TAIL_TOKENS)] for t in tail]
    return prompt or [TAIL_TOKENS[0]]


class Pair:
    """One request on both sides."""

    def __init__(self, rid: str, prompt: list[int], salt, lora, algo: str):
        self.real = pagedkv.Request(rid, prompt, cache_salt=salt, lora_id=lora,
                                    hash_algorithm=algo)
        self.ref = RefRequest(rid, prompt, cache_salt=salt, lora_id=lora, hash_algorithm=algo,
                              page_hashes_fn=self._real_hashes)
        self.running = False
        self.preempted = False  # its lookups count as resumed

    def _real_hashes(self, page_size: int) -> list[bytes]:
        return [bytes(h) for h in self.real.page_hashes(page_size)]

    @property
    def rid(self) -> str:
        return self.ref.request_id

    def set_computed(self, n: int) -> None:
        self.real.num_computed_tokens = n
        self.ref.num_computed_tokens = n

    def append(self, token: int) -> None:
        self.real.append_output_token_ids([token])
        self.ref.append_output_token_ids([token])


# ============================================================================ manager level


class ManagerHarness:
    """One real KVCacheManager and one model, plus the requests the 'scheduler' holds."""

    def __init__(self, num_pages: int, page_size: int, max_model_len: int,
                 enable_caching: bool, algo: str, mode: str = "full", window: int = 0):
        """mode: "full" (one full-attention group), "sliding" (one sliding-window group of
        `window` tokens), "hybrid" (full attention of page_size + sliding window of
        2 * page_size pages), "spec" (full attention with speculative decoding, rule 17)."""
        self.page_size = page_size
        self.max_model_len = max_model_len
        self.algo = algo
        if mode == "hybrid":
            specs = [("full_attention", page_size, 0), ("sliding_window", 2 * page_size, window)]
            self.real = pagedkv.KVCacheManager.from_config(pagedkv.KVCacheConfig(
                num_pages, max_model_len, [pagedkv.KVCacheGroupSpec(*g) for g in specs],
                enable_caching=enable_caching, hash_algorithm=algo, enable_kv_events=True))
            self.ref = RefKVCacheManager(num_pages, page_size, max_model_len,
                                         enable_caching=enable_caching, enable_kv_events=True,
                                         hash_algorithm=algo,
                                         groups=[RefGroup(*g) for g in specs])
        else:
            kw = dict(enable_caching=enable_caching, hash_algorithm=algo, enable_kv_events=True,
                      sliding_window=window if mode == "sliding" else None,
                      num_speculative_tokens=2 if mode == "spec" else 0)
            self.real = pagedkv.KVCacheManager(num_pages, page_size, max_model_len, **kw)
            self.ref = RefKVCacheManager(num_pages, page_size, max_model_len, **kw)
        self.num_groups = len(self.ref.groups)
        self.reqs: dict[str, Pair] = {}
        self.next_id = 0
        self.log: list[str] = []
        self.check("init")

    # --- what the scheduler does ---

    def new_request(self, piece_ids, tail, salt_idx: int, lora_idx: int, system: int = 0) -> None:
        # leave room for a few decode steps
        prompt = make_prompt(piece_ids, tail, system)[: self.max_model_len - 8]
        rid = f"r{self.next_id}"
        self.next_id += 1
        self.reqs[rid] = Pair(rid, prompt, SALTS[salt_idx % 2], LORAS[lora_idx % 2], self.algo)
        self.log.append(f"new {rid} len={len(prompt)}")

    def waiting(self) -> list[Pair]:
        return [p for p in self.reqs.values() if not p.running]

    def running(self) -> list[Pair]:
        return [p for p in self.reqs.values() if p.running]

    def schedule(self, pick: int, chunk: int, lookahead: int) -> None:
        """Admits a waiting request: prefix lookup, then allocation of all or part of the rest."""
        pair = self.waiting()[pick % len(self.waiting())]
        real_hits, real_n = self.real.get_computed_pages(pair.real, resumed=pair.preempted)
        ref_hits, ref_n = self.ref.get_computed_pages(pair.ref, resumed=pair.preempted)
        where = f"get_computed_pages({pair.rid}, resumed={pair.preempted})"
        assert (groups(real_hits), real_n) == (ref_hits, ref_n), where
        rest = pair.ref.num_tokens - ref_n
        num_new = rest if chunk <= 0 else min(rest, chunk)
        real_new, ref_new = call_both(
            lambda: groups(self.real.allocate_slots(pair.real, num_new, real_n, real_hits,
                                                    lookahead)),
            lambda: self.ref.allocate_slots(pair.ref, num_new, ref_n, ref_hits, lookahead))
        where = f"allocate_slots({pair.rid}, {num_new}, {ref_n}, hits={ref_hits}, {lookahead})"
        self.log.append(f"{where} -> {ref_new}")
        assert real_new == ref_new, where
        if isinstance(ref_new, list):
            pair.set_computed(ref_n + num_new)
            pair.running = True
        self.check(where)

    def step(self, pick: int, chunk: int, token: int, lookahead: int) -> None:
        """One scheduler step of a running request: the next prefill chunk, or one decode
        token (appended first, as the sampler does)."""
        pair = self.running()[pick % len(self.running())]
        computed = pair.ref.num_computed_tokens
        if computed == pair.ref.num_tokens:
            if pair.ref.num_tokens >= self.max_model_len:
                return
            pair.append(TAIL_TOKENS[token % len(TAIL_TOKENS)])
        rest = pair.ref.num_tokens - computed
        num_new = rest if chunk <= 0 else min(rest, chunk)
        real_new, ref_new = call_both(
            lambda: groups(self.real.allocate_slots(pair.real, num_new, 0, None, lookahead)),
            lambda: self.ref.allocate_slots(pair.ref, num_new, 0, None, lookahead))
        where = f"step allocate_slots({pair.rid}, {num_new}, lookahead={lookahead})"
        self.log.append(f"{where} -> {ref_new}")
        assert real_new == ref_new, where
        if isinstance(ref_new, list):
            pair.set_computed(computed + num_new)
        self.check(where)

    def finish(self, pick: int) -> None:
        pair = self.running()[pick % len(self.running())]
        self._free(pair, "finish")
        del self.reqs[pair.rid]

    def preempt(self, pick: int) -> None:
        """Preemption by recompute: pages freed, computed count reset, back to waiting."""
        pair = self.running()[pick % len(self.running())]
        self._free(pair, "preempt")
        pair.set_computed(0)
        pair.running = False
        pair.preempted = True

    def invalid_allocate(self, kind: int, pick: int) -> None:
        """An allocation that must fail with the same error on both sides and change nothing."""
        pairs = list(self.reqs.values())
        if not pairs:
            return
        pair = pairs[pick % len(pairs)]
        ps = self.page_size
        computed = pair.ref.num_computed_tokens
        kind %= 5
        if kind == 0:
            args = (-1, 0, None, 0)  # negative count
        elif kind == 1:
            args = (self.max_model_len - computed + 1, 0, None, 0)  # beyond max_model_len
        elif kind == 2:
            args = (1, 0, [[]] * (self.num_groups + 1), 0)  # one group of hits too many
        elif kind == 3:
            args = (0, pair.ref.num_tokens - computed + 1, None, 0)  # hit beyond the tokens
        else:  # a hit page id out of range
            if pair.running or pair.ref.num_tokens <= ps or not self.ref.enable_caching:
                return
            args = (1, ps, [[self.ref.page_pool.num_pages]] + [[]] * (self.num_groups - 1), 0)
        real, ref = call_both(lambda: self.real.allocate_slots(pair.real, *args),
                              lambda: self.ref.allocate_slots(pair.ref, *args))
        where = f"invalid allocate_slots({pair.rid}, {args})"
        self.log.append(where)
        assert isinstance(ref, tuple), where
        assert real == ref, where
        self.check(where)

    def abort_waiting(self, pick: int) -> None:
        pair = self.waiting()[pick % len(self.waiting())]
        self._free(pair, "abort")
        del self.reqs[pair.rid]

    def _free(self, pair: Pair, why: str) -> None:
        self.real.free(pair.real)
        self.ref.free(pair.ref)
        where = f"{why} free({pair.rid})"
        self.log.append(where)
        self.check(where)

    def reset_prefix_cache(self) -> None:
        real, ref = self.real.reset_prefix_cache(), self.ref.reset_prefix_cache()
        where = "reset_prefix_cache()"
        self.log.append(where)
        assert real == ref, where
        self.check(where)

    # --- comparison ---

    def check(self, where: str) -> None:
        where = f"after {where}; steps: {self.log[-12:]}"
        self.real.verify()
        self.ref.verify()
        # the manager's events first (what a consumer drains); the pool has none left then
        assert [norm_event(e) for e in self.real.take_events()] == \
            [norm_event(e) for e in self.ref.take_events()], where
        compare_pools(self.real.page_pool, self.ref.page_pool, where)
        assert self.real.usage == pytest.approx(self.ref.usage, abs=1e-12), where
        for rid, pair in self.reqs.items():
            assert groups(self.real.get_page_ids(rid)) == self.ref.get_page_ids(rid), where
        running = self.running()
        for pair in running:
            real_common = self.real.get_num_common_prefix_pages(pair.real, len(running))
            assert list(real_common) == \
                self.ref.get_num_common_prefix_pages(pair.ref, len(running)), where
        real_stats, ref_stats = self.real.stats, self.ref.stats
        fields = ("requests", "queries", "hits", "resumed_requests", "resumed_queries",
                  "resumed_hits")
        assert [getattr(real_stats, f) for f in fields] == \
            [getattr(ref_stats, f) for f in fields], where
        assert real_stats.windowed_hit_rate == \
            pytest.approx(ref_stats.windowed_hit_rate, rel=1e-12), where


MANAGER_PAGE_SIZES = [1, 2, 4, 4, 8, 16]


class ManagerMachine(RuleBasedStateMachine):
    @initialize(num_pages=st.integers(5, 40), ps_idx=st.integers(0, len(MANAGER_PAGE_SIZES) - 1),
                caching=st.sampled_from([True, True, True, False]), algo=st.sampled_from(ALGOS),
                mode=st.sampled_from(["full"] * 4 + ["sliding", "sliding", "hybrid", "spec"]),
                window=st.sampled_from([2, 3, 5, 8, 13, 20]))
    def setup(self, num_pages, ps_idx, caching, algo, mode, window):
        self.h = ManagerHarness(num_pages, MANAGER_PAGE_SIZES[ps_idx], 96, caching, algo, mode,
                                window)

    @precondition(lambda self: len(self.h.reqs) < 8)
    @rule(pieces=st.lists(st.integers(0, 5), min_size=1, max_size=3),
          tail=st.lists(st.integers(0, 2), max_size=4), salt=st.integers(0, 1),
          lora=st.sampled_from([0, 0, 0, 1]), system=st.integers(0, 2))
    def new_request(self, pieces, tail, salt, lora, system):
        self.h.new_request(pieces, tail, salt, lora, system)

    @precondition(lambda self: self.h.waiting())
    @rule(pick=st.integers(0, 7), chunk=st.sampled_from([0, 0, 0, 1, 3, 7, 16]),
          lookahead=st.sampled_from([0, 0, 0, 1, 5]))
    def schedule(self, pick, chunk, lookahead):
        self.h.schedule(pick, chunk, lookahead)

    @precondition(lambda self: self.h.running())
    @rule(pick=st.integers(0, 7), chunk=st.sampled_from([0, 0, 2, 5]), token=st.integers(0, 2),
          lookahead=st.sampled_from([0, 0, 0, 3]))
    def step(self, pick, chunk, token, lookahead):
        self.h.step(pick, chunk, token, lookahead)

    @precondition(lambda self: self.h.running())
    @rule(pick=st.integers(0, 7))
    def finish(self, pick):
        self.h.finish(pick)

    @precondition(lambda self: self.h.running())
    @rule(pick=st.integers(0, 7))
    def preempt(self, pick):
        self.h.preempt(pick)

    @precondition(lambda self: self.h.waiting())
    @rule(pick=st.integers(0, 7))
    def abort_waiting(self, pick):
        self.h.abort_waiting(pick)

    @rule(kind=st.integers(0, 4), pick=st.integers(0, 7))
    def invalid_allocate(self, kind, pick):
        self.h.invalid_allocate(kind, pick)

    @rule()
    def reset_prefix_cache(self):
        self.h.reset_prefix_cache()


ManagerMachine.TestCase.settings = settings(
    max_examples=150, stateful_step_count=40, deadline=None, derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
TestManagerDifferential = ManagerMachine.TestCase


def run_manager_random(seed: int, num_ops: int, mode: str = "full") -> None:
    rng = random.Random(seed)
    h = ManagerHarness(num_pages=rng.choice([12, 24, 40]), page_size=rng.choice([2, 4, 16]),
                       max_model_len=96, enable_caching=True, algo=rng.choice(ALGOS), mode=mode,
                       window=rng.choice([3, 7, 16, 33]))
    ops = ["new"] * 15 + ["schedule"] * 25 + ["step"] * 40 + ["finish"] * 8 + ["preempt"] * 6 + \
        ["abort"] * 3 + ["reset"] * 1 + ["invalid"] * 2
    for _ in range(num_ops):
        op = rng.choice(ops)
        if op == "new" and len(h.reqs) < 12:
            h.new_request([rng.randrange(len(PIECES)) for _ in range(rng.randint(1, 3))],
                          [rng.randrange(3) for _ in range(rng.randint(0, 5))],
                          rng.randrange(2), int(rng.random() < 0.2), rng.randrange(3))
        elif op == "schedule" and h.waiting():
            h.schedule(rng.randrange(12), rng.choice([0, 0, 0, 4, 9]), rng.choice([0, 0, 0, 3]))
        elif op == "step" and h.running():
            h.step(rng.randrange(12), rng.choice([0, 0, 6]), rng.randrange(3),
                   rng.choice([0, 0, 0, 2]))
        elif op == "finish" and h.running():
            h.finish(rng.randrange(12))
        elif op == "preempt" and h.running():
            h.preempt(rng.randrange(12))
        elif op == "abort" and h.waiting():
            h.abort_waiting(rng.randrange(12))
        elif op == "reset":
            h.reset_prefix_cache()
        elif op == "invalid":
            h.invalid_allocate(rng.randrange(5), rng.randrange(12))
    for pair in list(h.reqs.values()):
        h._free(pair, "drain")
    # rule 30 at this level: everything is free again
    assert h.real.page_pool.get_num_free_pages() == h.ref.page_pool.num_pages - 1


@pytest.mark.parametrize("seed,mode", [(s, "full") for s in range(4)] +
                         [(4, "sliding"), (5, "sliding"), (6, "hybrid"), (7, "hybrid"),
                          (8, "spec")])
def test_manager_long_random_runs_match_the_model(seed, mode):
    run_manager_random(seed, 3000, mode)


# ============================================================================ pool level


class Chain:
    """Pages the test got in one get_new_pages call, with a request whose full pages they can
    cache (as a manager would)."""

    def __init__(self, pair: Pair, pages: list[int], group: int):
        self.pair = pair
        self.pages = pages
        self.group = group
        self.num_cached = 0


class PoolHarness:
    PAGE_SIZE = 4

    def __init__(self, num_pages: int, enable_caching: bool, algo: str):
        self.algo = algo
        self.real = pagedkv.PagePool(num_pages, enable_caching, enable_kv_events=True,
                                     hash_algorithm=algo)
        self.ref = RefPagePool(num_pages, enable_caching, enable_kv_events=True)
        self.caching = enable_caching
        self.num_pages = num_pages
        self.held: list[int] = []  # one entry per reference the test owns
        self.chains: list[Chain] = []
        self.next_id = 0
        self.log: list[str] = []
        self.check("init")

    def _both(self, what: str, real_fn, ref_fn):
        real, ref = call_both(real_fn, ref_fn)
        self.log.append(what)
        return real, ref, f"{what}; steps: {self.log[-12:]}"

    def get_new_pages(self, n: int, piece_ids, salt_idx: int, group: int) -> None:
        real, ref, where = self._both(f"get_new_pages({n})", lambda: self.real.get_new_pages(n),
                                      lambda: self.ref.get_new_pages(n))
        assert (real if isinstance(real, tuple) else list(real)) == ref, where
        if not isinstance(ref, tuple) and ref:
            self.held += ref
            ps = self.PAGE_SIZE
            prompt = (make_prompt(piece_ids, []) * (n + 1))[: n * ps + 1]
            pair = Pair(f"p{self.next_id}", prompt, SALTS[salt_idx % 2], None, self.algo)
            self.next_id += 1
            self.chains.append(Chain(pair, ref, group))
        self.check(where)

    def free(self, picks: list[int]) -> None:
        """Frees distinct held pages, in the order picked."""
        chosen = []
        for i in picks:
            distinct = sorted(set(self.held) - set(chosen))
            if distinct:
                chosen.append(distinct[i % len(distinct)])
        real, ref, where = self._both(f"free_pages({chosen})",
                                      lambda: self.real.free_pages(chosen),
                                      lambda: self.ref.free_pages(chosen))
        assert real == ref, where
        for p in chosen:
            self.held.remove(p)
        self.check(where)

    def free_invalid(self, kind: int, pick: int) -> None:
        """A free that must fail and change nothing: a bad id, a free page, or a repeat beyond
        the ref count."""
        held = sorted(set(self.held))
        free = self.ref.get_all_free_pages()
        if kind == 0 or (kind == 1 and not free) or (kind == 2 and not held):
            bad = [self.num_pages + pick % 3] if pick % 2 else [-1 - pick % 3]
            seq = (held[:1] + bad) if held else bad
        elif kind == 1:
            seq = held[:1] + [free[pick % len(free)]]
        else:
            p = held[pick % len(held)]
            seq = [p] * (self.ref.ref[p] + 1)
        real, ref, where = self._both(f"free_pages({seq}) [invalid]",
                                      lambda: self.real.free_pages(seq),
                                      lambda: self.ref.free_pages(seq))
        assert isinstance(ref, tuple), where
        assert real == ref, where
        self.check(where)

    def touch(self, ids: list[int]) -> None:
        real, ref, where = self._both(f"touch({ids})", lambda: self.real.touch(ids),
                                      lambda: self.ref.touch(ids))
        assert real == ref, where
        if not isinstance(ref, tuple):
            self.held += [p for p in ids if p != 0]
        self.check(where)

    def touch_hit(self, chain_pick: int, page_pick: int, groups_pick: int) -> None:
        """A lookup of a known hash, then a touch of what it found (a prefix hit)."""
        if not self.chains:
            return
        chain = self.chains[chain_pick % len(self.chains)]
        hashes = [bytes(h) for h in chain.pair.real.page_hashes(self.PAGE_SIZE)]
        h = hashes[page_pick % len(hashes)]
        group_ids = [[0], [1], [0, 1]][groups_pick % 3]
        real, ref, where = self._both(f"get_cached_page(hash {page_pick % len(hashes)} of "
                                      f"{chain.pair.rid}, {group_ids})",
                                      lambda: self.real.get_cached_page(h, group_ids),
                                      lambda: self.ref.get_cached_page(h, group_ids))
        assert (None if real is None else list(real)) == ref, where
        if ref:
            self.touch(ref)

    def cache(self, chain_pick: int, count: int) -> None:
        """Caches the next `count` full pages of a chain whose pages are all still held."""
        live = [c for c in self.chains if all(self.ref.ref[p] > 0 for p in c.pages)]
        if not live:
            return
        chain = live[chain_pick % len(live)]
        num_full = min(len(chain.pages), chain.num_cached + count)
        args = (chain.pages, chain.num_cached, num_full, self.PAGE_SIZE, chain.group)
        real, ref, where = self._both(
            f"cache_full_pages({chain.pair.rid}, {args})",
            lambda: self.real.cache_full_pages(chain.pair.real, *args),
            lambda: self.ref.cache_full_pages(chain.pair.ref, *args))
        assert real == ref, where
        if not isinstance(ref, tuple):
            chain.num_cached = num_full
        self.check(where)

    def cache_invalid(self, chain_pick: int, kind: int) -> None:
        """A caching call that must fail and change nothing (caching on only)."""
        if not self.chains or not self.caching:
            return
        chain = self.chains[chain_pick % len(self.chains)]
        n = len(chain.pages)
        if kind == 0:  # beyond the pages given
            args = (chain.pages, 0, n + 1, self.PAGE_SIZE, chain.group)
        elif kind == 1:  # cached count above the full count
            args = (chain.pages, 1, 0, self.PAGE_SIZE, chain.group)
        else:  # pages that already carry a hash (or, if none does, beyond the request)
            hashed = [p for p in range(1, self.num_pages) if self.ref.key[p] is not None]
            if hashed:
                args = ([hashed[0]] + chain.pages, 0, 1, self.PAGE_SIZE, chain.group)
            else:
                args = (chain.pages + chain.pages[:1], 0, n + 1, self.PAGE_SIZE, chain.group)
        real, ref, where = self._both(
            f"cache_full_pages({chain.pair.rid}, {args}) [invalid]",
            lambda: self.real.cache_full_pages(chain.pair.real, *args),
            lambda: self.ref.cache_full_pages(chain.pair.ref, *args))
        assert isinstance(ref, tuple), where
        assert isinstance(real, tuple), where
        self.check(where)

    def reset_prefix_cache(self) -> None:
        real, ref, where = self._both("reset_prefix_cache()", self.real.reset_prefix_cache,
                                      self.ref.reset_prefix_cache)
        assert real == ref, where
        self.check(where)

    def check(self, where: str) -> None:
        compare_pools(self.real, self.ref, where)


class PoolMachine(RuleBasedStateMachine):
    @initialize(num_pages=st.integers(3, 20), caching=st.sampled_from([True, True, False]),
                algo=st.sampled_from(ALGOS))
    def setup(self, num_pages, caching, algo):
        self.h = PoolHarness(num_pages, caching, algo)

    @rule(n=st.integers(0, 8), pieces=st.lists(st.integers(0, 5), min_size=1, max_size=2),
          salt=st.integers(0, 1), group=st.sampled_from([0, 0, 1]))
    def get_new_pages(self, n, pieces, salt, group):
        self.h.get_new_pages(n, pieces, salt, group)

    @precondition(lambda self: self.h.held)
    @rule(picks=st.lists(st.integers(0, 40), min_size=1, max_size=6))
    def free(self, picks):
        self.h.free(picks)

    @rule(kind=st.integers(0, 2), pick=st.integers(0, 40))
    def free_invalid(self, kind, pick):
        self.h.free_invalid(kind, pick)

    @rule(ids=st.lists(st.integers(0, 20), max_size=4), bad=st.sampled_from([False] * 5 + [True]))
    def touch(self, ids, bad):
        ids = [i % self.h.num_pages for i in ids] + ([self.h.num_pages] if bad else [])
        self.h.touch(ids)

    @rule(chain=st.integers(0, 20), page=st.integers(0, 20), grp=st.integers(0, 2))
    def touch_hit(self, chain, page, grp):
        self.h.touch_hit(chain, page, grp)

    @rule(chain=st.integers(0, 20), count=st.integers(0, 4))
    def cache(self, chain, count):
        self.h.cache(chain, count)

    @rule(chain=st.integers(0, 20), kind=st.integers(0, 2))
    def cache_invalid(self, chain, kind):
        self.h.cache_invalid(chain, kind)

    @rule()
    def reset_prefix_cache(self):
        self.h.reset_prefix_cache()


PoolMachine.TestCase.settings = settings(
    max_examples=150, stateful_step_count=40, deadline=None, derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
TestPoolDifferential = PoolMachine.TestCase


def run_pool_random(seed: int, num_ops: int) -> None:
    rng = random.Random(1000 + seed)
    h = PoolHarness(rng.choice([6, 12, 30]), enable_caching=True, algo=rng.choice(ALGOS))
    ops = ["get"] * 20 + ["free"] * 20 + ["free_invalid"] * 5 + ["touch"] * 10 + \
        ["touch_hit"] * 15 + ["cache"] * 20 + ["cache_invalid"] * 5 + ["reset"] * 3
    for _ in range(num_ops):
        op = rng.choice(ops)
        if op == "get":
            h.get_new_pages(rng.randint(0, 6), [rng.randrange(len(PIECES))], rng.randrange(2),
                            rng.choice([0, 0, 1]))
        elif op == "free" and h.held:
            h.free([rng.randrange(40) for _ in range(rng.randint(1, 5))])
        elif op == "free_invalid":
            h.free_invalid(rng.randrange(3), rng.randrange(40))
        elif op == "touch":
            h.touch([rng.randrange(h.num_pages) for _ in range(rng.randint(0, 3))])
        elif op == "touch_hit":
            h.touch_hit(rng.randrange(40), rng.randrange(40), rng.randrange(3))
        elif op == "cache":
            h.cache(rng.randrange(40), rng.randint(1, 4))
        elif op == "cache_invalid":
            h.cache_invalid(rng.randrange(40), rng.randrange(3))
        elif op == "reset":
            h.reset_prefix_cache()


@pytest.mark.parametrize("seed", range(4))
def test_pool_long_random_runs_match_the_model(seed):
    run_pool_random(seed, 3000)


# ============================================================================ fixed scenarios


def test_worked_example_of_rule_5_matches_the_model():
    """Rule 5 step by step on both sides (11 pages, page size 16)."""
    h = ManagerHarness(11, 16, 1024, enable_caching=True, algo="xxh3_128")
    prefix = list(range(100, 148))
    for rid, tail in (("req0", 0), ("req1", 500)):
        h.reqs[rid] = Pair(rid, prefix + list(range(tail, tail + 16)), None, None, "xxh3_128")
    h.schedule(0, 0, 0)
    assert h.ref.get_page_ids("req0") == [[1, 2, 3, 4]]
    h.schedule(0, 0, 0)
    assert h.ref.get_page_ids("req1") == [[1, 2, 3, 5]]
    h.finish(0)
    h.finish(0)
    assert h.real.page_pool.get_all_free_pages() == [6, 7, 8, 9, 10, 4, 5, 3, 2, 1]
    h.reqs["req2"] = Pair("req2", prefix + list(range(900, 916)), None, None, "xxh3_128")
    h.schedule(0, 0, 0)
    h.finish(0)
    assert h.real.page_pool.get_all_free_pages() == [7, 8, 9, 10, 4, 5, 6, 3, 2, 1]
    assert list(h.real.page_pool.get_new_pages(10)) == [7, 8, 9, 10, 4, 5, 6, 3, 2, 1]


def test_windowed_hit_rate_covers_the_latest_1000_lookups():
    """Rule 22: 2500 lookups whose hit rate changes over time; the windowed rate must follow
    the latest 1000 of them on both sides."""
    h = ManagerHarness(64, 4, 96, enable_caching=True, algo="xxh3_128")
    h.new_request([2, 4], [0], 0, 0)
    h.schedule(0, 0, 0)  # cache a prompt so that lookups of it hit
    rng = random.Random(7)
    for i in range(2500):
        hit_prob = 0.8 if i < 1200 else 0.1
        prompt = make_prompt([2, 4] if rng.random() < hit_prob else [3, 5], [i % 3])
        pair = Pair(f"q{i}", prompt, None, None, "xxh3_128")
        real_hits, real_n = h.real.get_computed_pages(pair.real)
        ref_hits, ref_n = h.ref.get_computed_pages(pair.ref)
        assert (groups(real_hits), real_n) == (ref_hits, ref_n)
        if i % 100 == 99:
            h.check(f"lookup {i}")
    assert h.real.stats.window_size == 1000
    assert h.real.stats.windowed_hit_rate < h.real.stats.hit_rate
