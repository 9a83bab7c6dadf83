"""pagedkv.PagePool, KVEvent and HBMPageManager through the Python bindings.

Covers the API surface, the worked example of docs/rules.md rule 5, events, and the
Python exception each error maps to (checking that a failed call changes nothing).
"""

from __future__ import annotations

import numpy as np
import pytest

import pagedkv

PS = 16


def state(pool: pagedkv.PagePool) -> tuple:
    """Everything observable about a pool except its event buffer."""
    n = pool.num_pages
    return (pool.get_all_free_pages(), [pool.ref_count(p) for p in range(n)],
            [pool.page_hash(p) for p in range(n)], pool.num_cached_pages(),
            pool.num_evictions())


def request(rid: str, shared: int, tail: int = 0, tail_base: int = 10_000, **kw):
    return pagedkv.Request(rid, list(range(shared)) + list(range(tail_base, tail_base + tail)),
                           **kw)


def longest_hit(pool, req, max_pages):
    hits = []
    for h in req.page_hashes(PS)[:max_pages]:
        got = pool.get_cached_page(h, [0])
        if got is None:
            break
        hits += got
    return hits


def test_construction_and_observers():
    pool = pagedkv.PagePool(5, True)
    pool.verify()
    assert pool.num_pages == 5
    assert pool.null_page == 0
    assert pool.enable_caching and not pool.enable_kv_events
    assert pool.get_num_free_pages() == 4
    assert pool.get_all_free_pages() == [1, 2, 3, 4]
    assert pool.get_usage() == 0.0
    assert pool.get_new_pages(1) == [1]
    assert pool.get_usage() == pytest.approx(0.25)
    assert pool.ref_count(1) == 1 and pool.ref_count(0) == 0
    assert pool.page_hash(1) is None
    assert "PagePool" in repr(pool)


def test_worked_example_of_rule_5():
    pool = pagedkv.PagePool(11, True)
    req0 = request("req0", 48, 7, 1000)
    req1 = request("req1", 48, 7, 2000)
    req2 = request("req2", 48, 7, 3000)
    p0 = pool.get_new_pages(4)
    assert p0 == [1, 2, 3, 4]
    pool.cache_full_pages(req0, p0, 0, 3, PS)
    hits = longest_hit(pool, req1, 3)
    assert hits == [1, 2, 3]
    pool.touch(hits)
    p1 = hits + pool.get_new_pages(1)
    assert p1 == [1, 2, 3, 5]
    pool.free_pages(p0[::-1])
    pool.free_pages(p1[::-1])
    pool.verify()
    assert pool.get_all_free_pages() == [6, 7, 8, 9, 10, 4, 5, 3, 2, 1]
    hits = longest_hit(pool, req2, 3)
    assert hits == [1, 2, 3]
    pool.touch(hits)
    p2 = hits + pool.get_new_pages(1)
    assert p2 == [1, 2, 3, 6]
    pool.free_pages(p2[::-1])
    assert pool.get_all_free_pages() == [7, 8, 9, 10, 4, 5, 6, 3, 2, 1]
    assert pool.get_new_pages(10) == [7, 8, 9, 10, 4, 5, 6, 3, 2, 1]
    pool.verify()


def test_touch_takes_a_flat_list_or_one_list_per_group():
    pool = pagedkv.PagePool(6, True)
    pool.touch([1, 2])
    pool.touch(([2], [3, 0]))
    pool.touch([[4], []])
    pool.verify()
    assert [pool.ref_count(p) for p in range(6)] == [0, 1, 2, 1, 1, 0]
    assert pool.get_all_free_pages() == [5]


def test_cached_pages_keep_their_hash_until_reallocated():
    pool = pagedkv.PagePool(4, True)
    req = request("r", 32)
    pages = pool.get_new_pages(2)
    pool.cache_full_pages(req, pages, 0, 2, PS)
    hashes = req.page_hashes(PS)
    assert all(isinstance(h, bytes) and len(h) == 16 for h in hashes)
    assert [pool.page_hash(p) for p in pages] == hashes
    pool.free_pages(pages[::-1])
    assert pool.get_cached_page(hashes[0], [0]) == [1]  # free but still cached
    assert pool.num_cached_pages() == 2
    assert pool.get_new_pages(2) == [3, 2]  # page 2 evicted now
    assert pool.page_hash(2) is None
    assert pool.get_cached_page(hashes[1], [0]) is None
    assert pool.num_evictions() == 1


def test_sha256_hashes_are_32_bytes_everywhere():
    pool = pagedkv.PagePool(4, True, enable_kv_events=True, hash_algorithm="sha256")
    assert pool.hash_algorithm == "sha256"
    req = request("r", 16, hash_algorithm="sha256")
    pages = pool.get_new_pages(1)
    pool.cache_full_pages(req, pages, 0, 1, PS)
    (h,) = req.page_hashes(PS)
    assert len(h) == 32
    assert pool.page_hash(pages[0]) == h
    assert pool.get_cached_page(h, [0]) == pages
    (ev,) = pool.take_events()
    assert ev.page_hashes == [h]


def test_a_chain_of_another_algorithm_is_refused_and_changes_nothing():
    pool = pagedkv.PagePool(4, True, enable_kv_events=True)  # xxh3_128
    assert pool.hash_algorithm == "xxh3_128"
    req = request("r", 16, hash_algorithm="sha256")
    pages = pool.get_new_pages(1)
    with pytest.raises(ValueError, match="sha256.*xxh3_128"):
        pool.cache_full_pages(req, pages, 0, 1, PS)
    assert pool.page_hash(pages[0]) is None
    assert pool.take_events() == []
    pool.verify()


def test_page_id_results_are_list_like_and_zero_copy():
    pool = pagedkv.PagePool(8, True)
    pages = pool.get_new_pages(3)
    assert pages == [1, 2, 3] and pages != [1, 2] and len(pages) == 3
    assert list(pages) == [1, 2, 3] and pages[-1] == 3 and pages[1:] == [2, 3]
    assert 2 in pages and 9 not in pages and repr(pages) == "[1, 2, 3]"
    assert [0] + pages == [0, 1, 2, 3] and pages + [4] == [1, 2, 3, 4]
    view = np.asarray(pages)
    assert view.dtype == np.int32 and view.tolist() == [1, 2, 3]
    with pytest.raises(ValueError):
        view[0] = 5  # read-only
    pool.free_pages(pages[::-1])  # a slice is a list, PageIds itself is read in place
    pool.touch(pool.get_new_pages(2))
    assert pool.get_all_free_pages() == [6, 7, 3, 2, 1]


def test_get_cached_prefix_matches_per_page_lookups():
    pool = pagedkv.PagePool(11, True)
    req = request("r", 64)
    pages = pool.get_new_pages(4)
    pool.cache_full_pages(req, pages[:2] + [0] + pages[3:], 0, 4, PS)  # page 2 not cached
    assert pool.get_cached_prefix(req.page_hashes(PS)) == pages[:2]
    assert longest_hit(pool, req, 4) == pages[:2]
    assert pool.get_cached_prefix(req.page_hashes(PS), group_id=1) == []


def test_lookup_over_several_groups_misses_if_any_group_misses():
    pool = pagedkv.PagePool(6, True)
    req = request("r", 16)
    (h,) = req.page_hashes(PS)
    a, b = pool.get_new_pages(1), pool.get_new_pages(1)
    pool.cache_full_pages(req, a, 0, 1, PS, kv_cache_group_id=0)
    assert pool.get_cached_page(h, [0, 1]) is None
    pool.cache_full_pages(req, b, 0, 1, PS, 1)
    assert pool.get_cached_page(h, [0, 1]) == [a[0], b[0]]
    assert pool.get_cached_page(h, [1]) == b


def test_duplicate_hashes_are_kept_and_lookup_returns_the_first():
    pool = pagedkv.PagePool(6, True)
    r1, r2 = request("a", 16), request("b", 16)
    p1, p2 = pool.get_new_pages(1), pool.get_new_pages(1)
    pool.cache_full_pages(r1, p1, 0, 1, PS)
    pool.cache_full_pages(r2, p2, 0, 1, PS)
    (h,) = r1.page_hashes(PS)
    assert pool.num_cached_pages() == 2
    assert pool.get_cached_page(h, [0]) == p1


def test_events_stored_removed_and_all_cleared():
    pool = pagedkv.PagePool(4, True, enable_kv_events=True)
    req = request("r", 32, lora_id=3)
    hashes = req.page_hashes(PS)
    pages = pool.get_new_pages(2)
    pool.cache_full_pages(req, pages, 0, 1, PS)
    pool.cache_full_pages(req, pages, 1, 2, PS, 0)
    first, second = pool.take_events()
    assert first.kind == "stored" and first.parent_hash is None
    assert second.kind == "stored"
    assert second.parent_hash == hashes[0]
    assert second.page_hashes == [hashes[1]]
    assert second.token_ids == list(range(16, 32))
    assert second.page_size == PS and second.lora_id == 3 and second.group_id == 0
    assert second.page_ids == [pages[1]]
    assert "stored" in repr(second)

    pool.free_pages(pages[::-1])
    pool.get_new_pages(3)  # 3, then 2 and 1 evicted
    removed = pool.take_events()
    assert [e.kind for e in removed] == ["removed", "removed"]
    assert [e.page_ids for e in removed] == [[2], [1]]
    assert [e.page_hashes for e in removed] == [[hashes[1]], [hashes[0]]]
    assert pool.take_events() == []


def test_reset_prefix_cache():
    pool = pagedkv.PagePool(5, True, enable_kv_events=True)
    req = request("r", 32)
    pages = pool.get_new_pages(2)
    pool.cache_full_pages(req, pages, 0, 2, PS)
    pool.take_events()
    before = state(pool)
    assert pool.reset_prefix_cache() is False  # pages are held
    assert state(pool) == before
    pool.free_pages(pages[::-1])
    order = pool.get_all_free_pages()
    assert pool.reset_prefix_cache() is True
    assert pool.get_all_free_pages() == order
    assert pool.num_cached_pages() == 0
    assert [e.kind for e in pool.take_events()] == ["all_cleared"]
    pool.verify()


def test_caching_off_never_caches():
    pool = pagedkv.PagePool(5, False)
    req = request("r", 32)
    pages = pool.get_new_pages(2)
    pool.cache_full_pages(req, pages, 0, 2, PS)
    assert pool.num_cached_pages() == 0
    assert pool.get_cached_page(req.page_hashes(PS)[0], [0]) is None


# ---- errors: the Python exception, and nothing changed ------------------------------------


def test_constructor_errors():
    with pytest.raises(ValueError):
        pagedkv.PagePool(1, True)
    with pytest.raises(ValueError):
        pagedkv.HBMPageManager(8, 0)


def test_get_new_pages_errors():
    pool = pagedkv.PagePool(4, True)
    pool.get_new_pages(1)
    before = state(pool)
    with pytest.raises(pagedkv.CapacityError):
        pool.get_new_pages(3)
    with pytest.raises(RuntimeError):  # CapacityError is a RuntimeError
        pool.get_new_pages(3)
    with pytest.raises(ValueError):
        pool.get_new_pages(-1)
    assert state(pool) == before
    pool.verify()


def test_free_pages_errors():
    pool = pagedkv.PagePool(5, True)
    pool.get_new_pages(2)
    before = state(pool)
    with pytest.raises(IndexError):
        pool.free_pages([1, 5])
    with pytest.raises(IndexError):
        pool.free_pages([-1])
    with pytest.raises(RuntimeError):
        pool.free_pages([2, 3])  # 3 is free
    with pytest.raises(RuntimeError):
        pool.free_pages([1, 1])  # beyond its ref count
    with pytest.raises(TypeError):
        pool.free_pages(["x"])
    assert state(pool) == before
    pool.verify()


def test_touch_errors():
    pool = pagedkv.PagePool(5, True)
    before = state(pool)
    with pytest.raises(IndexError):
        pool.touch([1, 9])
    with pytest.raises(IndexError):
        pool.touch([[1], [9]])
    with pytest.raises(TypeError):
        pool.touch([1.5])
    assert state(pool) == before


def test_cache_full_pages_errors():
    pool = pagedkv.PagePool(8, True, enable_kv_events=True)
    req = request("r", 48, 5)
    pages = pool.get_new_pages(4)
    pool.cache_full_pages(req, pages, 0, 1, PS)
    pool.take_events()
    before = state(pool)
    with pytest.raises(ValueError):
        pool.cache_full_pages(req, pages, 1, 2, 0)
    with pytest.raises(ValueError):
        pool.cache_full_pages(req, pages, 2, 1, PS)
    with pytest.raises(ValueError):
        pool.cache_full_pages(req, pages, 1, 4, PS)  # only 3 full pages
    with pytest.raises(ValueError):
        pool.cache_full_pages(req, pages[:2], 1, 3, PS)
    with pytest.raises(IndexError):
        pool.cache_full_pages(req, [1, 8, 3], 1, 3, PS)
    with pytest.raises(RuntimeError):
        pool.cache_full_pages(req, pages, 0, 2, PS)  # page 1 already carries a hash
    with pytest.raises(RuntimeError):
        pool.cache_full_pages(req, [1, 6, 3], 1, 3, PS)  # page 6 is free
    with pytest.raises(RuntimeError):
        pool.cache_full_pages(req, [1, 2, 2], 1, 3, PS)  # repeated page
    assert state(pool) == before
    assert pool.take_events() == []
    pool.verify()


def test_query_errors():
    pool = pagedkv.PagePool(4, True)
    with pytest.raises(IndexError):
        pool.ref_count(4)
    with pytest.raises(IndexError):
        pool.page_hash(-1)
    with pytest.raises(ValueError):
        pool.get_cached_page(b"", [0])
    with pytest.raises(ValueError):
        pool.get_cached_page(b"\x01" * 16, [-1])


# ---- HBMPageManager (seed 002) -------------------------------------------------------------


def test_hbm_page_manager():
    mgr = pagedkv.HBMPageManager(10, 16)
    assert mgr.page_size == 16
    assert mgr.current_page_index == 0
    assert mgr.num_free_pages == 9
    assert mgr.alloc_prefill_hbm_pages(40) == [1, 2, 3]
    assert mgr.alloc_hbm_pages(2) == [4, 5]
    assert mgr.alloc_hbm_pages(5) == []  # only 4 free: seed behaviour, no error
    assert mgr.alloc_hbm_pages(0) == []
    assert mgr.alloc_prefill_hbm_pages(0) == []
    mgr.free_hbm_pages([0, 5, 1])  # the dummy page is ignored
    assert mgr.num_free_pages == 6
    assert mgr.alloc_hbm_pages(6) == [6, 7, 8, 9, 5, 1]
    with pytest.raises(RuntimeError):
        mgr.free_hbm_pages([5, 5])
    with pytest.raises(IndexError):
        mgr.free_hbm_pages([10])
    assert mgr.num_free_pages == 0
    mgr.verify()
