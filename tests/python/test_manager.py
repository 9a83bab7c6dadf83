"""pagedkv.KVCacheManager, KVCacheConfig, KVCacheGroupSpec and PrefixCacheStats through the
Python bindings: the API surface, the reference-semantics rules a Python user sees first
(16, 18, 19, 20, 22, 23, 25, 29, 30), and the Python exception each error maps to (checking
that a failed call changes nothing).
"""

from __future__ import annotations

import gc

import pytest

import pagedkv

PS = 16


def request(rid: str, shared: int, tail: int = 0, tail_base: int = 10_000, **kw):
    """First `shared` tokens 0.. (shared by such requests), then `tail` unique tokens."""
    return pagedkv.Request(rid, list(range(shared)) + list(range(tail_base, tail_base + tail)),
                           **kw)


def admit(m: pagedkv.KVCacheManager, r: pagedkv.Request, lookahead: int = 0,
          resumed: bool = False):
    """Lookup + allocation of the rest of the prompt; advances num_computed_tokens."""
    hits, n = m.get_computed_pages(r, resumed=resumed)
    new = m.allocate_slots(r, r.num_tokens - n, n, hits, lookahead)
    if new is not None:
        r.num_computed_tokens = r.num_tokens
    return n, new


def state(m: pagedkv.KVCacheManager, ids) -> tuple:
    """Everything observable about a manager except its event buffer."""
    pool = m.page_pool
    n = pool.num_pages
    s = m.stats
    return (pool.get_all_free_pages(), [pool.ref_count(p) for p in range(n)],
            [pool.page_hash(p) for p in range(n)], [m.get_page_ids(i) for i in ids],
            m.num_requests, (s.requests, s.queries, s.hits, s.resumed_requests))


# ---------------------------------------------------------------- construction and config


def test_default_constructor_builds_one_full_attention_group():
    m = pagedkv.KVCacheManager(64, PS, 1024)
    assert m.num_groups == 1
    c = m.config
    assert (c.num_pages, c.max_model_len, c.enable_caching) == (64, 1024, True)
    assert c.hash_algorithm == "xxh3_128"
    assert c.groups[0].kind == "full_attention"
    assert c.groups[0].page_size == PS
    assert m.usage == 0.0
    assert m.num_requests == 0
    assert "KVCacheManager" in repr(m)
    m.verify()


def test_sliding_window_constructor_argument():
    m = pagedkv.KVCacheManager(64, PS, 1024, sliding_window=32)
    g = m.config.groups[0]
    assert (g.kind, g.page_size, g.sliding_window) == ("sliding_window", PS, 32)


def test_from_config_with_several_groups():
    config = pagedkv.KVCacheConfig(
        num_pages=64, max_model_len=1024,
        groups=[pagedkv.KVCacheGroupSpec.full_attention(16),
                pagedkv.KVCacheGroupSpec("sliding_window", page_size=32, sliding_window=64)],
        enable_kv_events=True)
    assert config.lcm_page_size == 32
    assert config.num_usable_pages == 63
    m = pagedkv.KVCacheManager.from_config(config)
    assert m.num_groups == 2
    a = request("a", 100)
    assert admit(m, a) == (0, [[1, 2, 3, 4, 5, 6, 7], [8, 9, 10, 11]])
    # rule 25: B shares 80 tokens; full attention accepts 80, the hit is the lcm multiple 64.
    b = request("b", 80, 20)
    hits, n = m.get_computed_pages(b)
    assert (hits, n) == ([[1, 2, 3, 4], [8, 9]], 64)
    m.verify()


def test_config_fields_are_editable_and_validated():
    config = pagedkv.KVCacheConfig(16, 256, [pagedkv.KVCacheGroupSpec()])
    config.hash_algorithm = "sha256"
    config.num_speculative_tokens = 1
    assert config.hash_algorithm == "sha256"
    config.num_pages = 1
    with pytest.raises(ValueError, match="num_pages"):
        config.validate()
    with pytest.raises(ValueError, match="num_pages"):
        pagedkv.KVCacheManager.from_config(config)
    with pytest.raises(ValueError):
        pagedkv.KVCacheGroupSpec("mamba")
    with pytest.raises(ValueError, match="sliding_window"):
        pagedkv.KVCacheGroupSpec("sliding_window", page_size=16)
    assert pagedkv.KVCacheGroupSpec.full_attention(8) == pagedkv.KVCacheGroupSpec(page_size=8)


@pytest.mark.parametrize("args", [(1, PS, 64), (16, 0, 64), (16, PS, 0)])
def test_invalid_constructor_arguments_raise_value_error(args):
    with pytest.raises(ValueError):
        pagedkv.KVCacheManager(*args)


def test_unknown_hash_algorithm_raises_value_error():
    with pytest.raises(ValueError):
        pagedkv.KVCacheManager(16, PS, 64, hash_algorithm="md5")


def test_page_pool_keeps_the_manager_alive():
    m = pagedkv.KVCacheManager(11, PS, 1024)
    pool = m.page_pool
    del m
    gc.collect()
    assert pool.num_pages == 11
    assert pool.get_num_free_pages() == 10
    pool.verify()


# ---------------------------------------------------------------- lifecycle and rules


def test_last_prompt_token_is_always_recomputed():
    m = pagedkv.KVCacheManager(64, PS, 1024)
    admit(m, request("a", 48))
    hits, n = m.get_computed_pages(request("b", 48))  # rule 16: 48 tokens -> 2 pages
    assert (hits, n) == ([[1, 2]], 32)


def test_worked_example_free_queue_order():
    m = pagedkv.KVCacheManager(11, PS, 1024)
    r0, r1 = request("r0", 64), request("r1", 48, 16, 7000)
    assert admit(m, r0) == (0, [[1, 2, 3, 4]])
    assert admit(m, r1) == (48, [[5]])
    m.free(r0)
    m.free(r1)
    assert m.page_pool.get_all_free_pages() == [6, 7, 8, 9, 10, 4, 5, 3, 2, 1]
    m.verify()


def test_identical_prompt_in_same_step_hits():
    m = pagedkv.KVCacheManager(64, PS, 1024)
    a = request("a", 50)
    assert m.allocate_slots(a, 50) == [[1, 2, 3, 4]]  # not computed yet
    hits, n = m.get_computed_pages(request("b", 50))
    assert (hits, n) == ([[1, 2, 3]], 48)


def test_failed_allocation_returns_none_and_changes_nothing():
    m = pagedkv.KVCacheManager(7, PS, 1024)  # 6 usable pages
    a = request("a", 48)
    admit(m, a)
    m.free(a)
    admit(m, request("c", 0, 48, 5000))
    b = request("b", 64)
    hits, n = m.get_computed_pages(b)
    assert n == 48
    before = state(m, ["a", "b", "c"])
    assert m.allocate_slots(b, 16, n, hits) is None  # rule 18: 1 new + 3 free hit pages > 3
    assert state(m, ["a", "b", "c"]) == before
    m.verify()


def test_request_that_can_never_fit_raises_capacity_error():
    m = pagedkv.KVCacheManager(11, PS, 4096)  # 10 usable pages
    r = request("r", 0, 161)
    before = state(m, ["r"])
    with pytest.raises(pagedkv.CapacityError, match="11.*10"):
        m.allocate_slots(r, 161)
    assert isinstance(pagedkv.CapacityError("x"), RuntimeError)
    assert state(m, ["r"]) == before


def test_lookahead_slots_are_allocated_but_never_cached():
    m = pagedkv.KVCacheManager(64, PS, 1024)
    r = request("r", 40)
    assert m.allocate_slots(r, 40, num_lookahead_tokens=24) == [[1, 2, 3, 4]]
    assert m.page_pool.num_cached_pages() == 2


def test_decode_steps_and_free_by_id():
    m = pagedkv.KVCacheManager(64, 4, 1024)
    r = request("r", 6)
    admit(m, r)
    for t in range(7):
        r.append_output_token_ids([100 + t])
        assert m.allocate_slots(r, 1) is not None
        r.num_computed_tokens = r.num_tokens
    assert len(m.get_page_ids("r")[0]) == 4  # 13 tokens
    assert m.has_request("r")
    m.free("r")
    assert not m.has_request("r")
    m.free(r)  # unknown by now: no-op
    assert m.page_pool.get_num_free_pages() == 63
    m.verify()


def test_every_page_is_free_after_all_requests_finish():
    m = pagedkv.KVCacheManager(128, 8, 1024)
    reqs = [request(f"r{i}", 8 * (i % 3) + 5, 3 + i, 1000 * (i + 1)) for i in range(10)]
    for r in reqs:
        assert admit(m, r)[1] is not None
    assert m.usage > 0
    for r in reqs:
        m.free(r)
        m.verify()
    assert m.page_pool.get_num_free_pages() == 127
    assert m.usage == 0.0


def test_sliding_window_pages_outside_the_window_become_null():
    m = pagedkv.KVCacheManager(64, PS, 4096, sliding_window=32)
    r = request("r", 100)
    admit(m, r)
    r.append_output_token_ids([7])
    assert m.allocate_slots(r, 1) == [[]]
    assert m.get_page_ids("r") == [[0, 0, 0, 0, 5, 6, 7]]  # rule 23
    m.verify()


def test_common_prefix_pages_and_reset_prefix_cache():
    m = pagedkv.KVCacheManager(64, 4, 256)
    a, b = request("a", 12, 3, 100), request("b", 12, 3, 200)
    admit(m, a)
    admit(m, b)
    assert m.get_num_common_prefix_pages(a, 2) == [3]
    assert m.get_num_common_prefix_pages(request("ghost", 4), 2) == [0]
    assert m.reset_prefix_cache() is False
    m.free(a)
    m.free(b)
    assert m.reset_prefix_cache() is True
    assert m.get_computed_pages(request("c", 12, 3, 300))[1] == 0


# ---------------------------------------------------------------- statistics and events


def test_stats_count_tokens():
    m = pagedkv.KVCacheManager(64, PS, 1024)
    admit(m, request("a", 48))
    b = request("b", 48)
    admit(m, b)
    s = m.stats
    assert (s.requests, s.queries, s.hits) == (2, 96, 32)
    assert s.hit_rate == pytest.approx(32 / 96)
    assert s.windowed_hit_rate == pytest.approx(32 / 96)
    assert s.window_capacity == 1000
    assert (s.resumed_requests, s.resumed_queries, s.resumed_hits) == (0, 0, 0)
    m.reset_stats()
    assert m.stats.requests == 0


def test_resumed_requests_are_counted_separately():
    m = pagedkv.KVCacheManager(64, PS, 1024)
    a = request("a", 48)
    admit(m, a)
    m.free(a)
    a.num_computed_tokens = 0
    admit(m, a, resumed=True)  # resumes and re-hits its own two cached pages
    s = m.stats
    assert (s.requests, s.queries, s.hits) == (1, 48, 0)
    assert (s.resumed_requests, s.resumed_queries, s.resumed_hits) == (1, 48, 32)
    assert s.resumed_hit_rate == pytest.approx(32 / 48)


def test_prefix_cache_stats_window():
    s = pagedkv.PrefixCacheStats(window_capacity=2)
    s.record(10, 10)
    s.record(10, 0)
    s.record(10, 5)
    assert s.window_size == 2
    assert s.windowed_hit_rate == pytest.approx(5 / 20)
    assert s.hit_rate == pytest.approx(15 / 30)
    with pytest.raises(ValueError):
        s.record(5, 6)
    assert s.requests == 3
    s.verify()


def test_events_report_stored_and_removed_pages():
    m = pagedkv.KVCacheManager(4, 4, 256, enable_kv_events=True)  # 3 usable pages
    a = request("a", 9, lora_id=7)
    admit(m, a)
    (ev,) = m.take_events()
    assert ev.kind == "stored"
    assert ev.parent_hash is None
    assert ev.page_hashes == a.page_hashes(4)
    assert list(ev.token_ids) == list(range(8))
    assert (ev.page_size, ev.lora_id, ev.group_id, list(ev.page_ids)) == (4, 7, 0, [1, 2])
    m.free(a)  # pages 1, 2 cached; page 3 (partial) not
    admit(m, request("b", 0, 12, 900))
    kinds = [e.kind for e in m.take_events()]
    assert kinds == ["removed", "removed", "stored"]
    assert m.take_events() == []


def test_events_are_off_by_default():
    m = pagedkv.KVCacheManager(16, 4, 256)
    admit(m, request("a", 9))
    assert m.take_events() == []


# ---------------------------------------------------------------- plan, then apply


def test_plan_allocation_changes_nothing_and_reports_the_counts():
    # rule 18: 6 usable pages; A's 3 pages are cached and free, C holds 3 others.
    m = pagedkv.KVCacheManager(7, PS, 1024)
    a = request("a", 48)
    admit(m, a)
    m.free(a)
    c = request("c", 0, 48, 5000)
    admit(m, c)
    b = request("b", 64)
    hits, n = m.get_computed_pages(b)
    before = state(m, ["a", "b", "c"])
    generation = m.generation
    plan = m.plan_allocation(b, 16, n, hits)
    assert state(m, ["a", "b", "c"]) == before and m.generation == generation
    assert (plan.status, plan.ok, plan.request_id) == ("not_enough_free_pages", False, "b")
    assert (plan.num_free_pages_needed, plan.num_evictable_hit_pages,
            plan.num_free_pages_available, plan.num_pages_held_after) == (4, 3, 3, 4)
    assert (plan.num_tokens_need_slot, plan.num_tokens_to_cache) == (64, 64)
    (g,) = plan.groups
    assert (g.hit_pages, g.num_evictable_hits, g.num_new_pages) == ([1, 2, 3], 3, 1)
    assert (g.dropped_pages, g.cache_begin, g.cache_end, g.num_free_pages_needed) == (
        [], 3, 4, 4)
    assert "not_enough_free_pages" in repr(plan)
    with pytest.raises(RuntimeError, match="not_enough_free_pages"):
        m.apply(plan)
    assert state(m, ["a", "b", "c"]) == before


def test_apply_equals_allocate_slots_on_a_twin_manager():
    planned, direct = (pagedkv.KVCacheManager(16, 4, 256, sliding_window=8) for _ in range(2))
    reqs = [request(f"r{i}", 12 * (i % 2), 5 + i, 100 * i) for i in range(4)]
    for step in range(12):
        for r in reqs:
            hits_p, n = planned.get_computed_pages(r) if step == 0 else ([[]], 0)
            hits_d, _ = direct.get_computed_pages(r) if step == 0 else ([[]], 0)
            new = r.num_tokens - r.num_computed_tokens - n if step == 0 else 1
            if step > 0:
                r.append_output_token_ids([7])
            plan = planned.plan_allocation(r, new, n, hits_p, num_lookahead_tokens=step % 3)
            got = direct.allocate_slots(r, new, n, hits_d, step % 3)
            assert plan.ok == (got is not None)
            if plan.ok:
                assert planned.apply(plan) == got
                r.num_computed_tokens = r.num_computed_tokens + n + new
            ids = [q.request_id for q in reqs]
            assert state(planned, ids) == state(direct, ids)
    planned.verify()
    direct.verify()


def test_stale_plan_is_refused_and_changes_nothing():
    m = pagedkv.KVCacheManager(16, 4, 256)
    a, b = request("a", 10), request("b", 13)
    admit(m, a)
    plan = m.plan_allocation(b, 13)
    m.free(a)
    before = state(m, ["a", "b"])
    with pytest.raises(RuntimeError, match="stale"):
        m.apply(plan)
    assert state(m, ["a", "b"]) == before
    plan = m.plan_allocation(b, 13)
    assert [len(p) for p in m.apply(plan)] == [4]
    with pytest.raises(RuntimeError, match="stale"):
        m.apply(plan)  # at most once
    m.verify()


def test_plan_keeps_its_request_alive():
    m = pagedkv.KVCacheManager(16, 4, 256)
    plan = m.plan_allocation(request("short-lived", 9), 9)
    gc.collect()
    assert plan.request_id == "short-lived"
    assert m.apply(plan) == [[1, 2, 3]]
    m.verify()


# ---------------------------------------------------------------- errors change nothing


@pytest.fixture
def busy():
    m = pagedkv.KVCacheManager(32, 4, 64)
    a, b = request("a", 10), request("b", 8, 5, 700)
    admit(m, a)
    admit(m, b)
    return m, a, b


@pytest.mark.parametrize("call, exc", [
    (lambda m, a, b: m.allocate_slots(a, -1), ValueError),
    (lambda m, a, b: m.allocate_slots(a, 1, -1), ValueError),
    (lambda m, a, b: m.allocate_slots(a, 1, 0, None, -1), ValueError),
    (lambda m, a, b: m.allocate_slots(a, 60), ValueError),  # beyond max_model_len
    (lambda m, a, b: m.allocate_slots(request("n", 8), 8, 0, [[], []]), ValueError),
    (lambda m, a, b: m.allocate_slots(request("n", 10), 2, 8, [[0, 1]]), ValueError),
    (lambda m, a, b: m.allocate_slots(request("n", 10), 2, 8, [[1, 32]]), IndexError),
    (lambda m, a, b: (setattr(b, "num_computed_tokens", 0),  # b holds pages: no hits
                      m.allocate_slots(b, 1, 4, [[1]])), RuntimeError),
    (lambda m, a, b: m.allocate_slots(request("n", 8, hash_algorithm="sha256"), 8), ValueError),
    (lambda m, a, b: m.get_computed_pages(request("n", 8, hash_algorithm="sha256")), ValueError),
    (lambda m, a, b: m.get_num_common_prefix_pages(a, 0), ValueError),
    (lambda m, a, b: m.allocate_slots(request("n", 8), "x"), TypeError),
])
def test_errors_map_to_python_exceptions_and_change_nothing(busy, call, exc):
    m, a, b = busy
    before = state(m, ["a", "b", "n"])
    with pytest.raises(exc):
        call(m, a, b)
    assert state(m, ["a", "b", "n"]) == before
    m.verify()

