"""Tests of the reference model itself (no pagedkv needed): each checks one rule of
docs/rules.md on the model, so that the differential test compares the C++
implementation against something known to follow the rules."""

import copy

import pytest

from reference_model import (
    CapacityError,
    RefGroup,
    RefKVCacheManager,
    RefPagePool,
    RefRequest,
    StandInHasher,
)

PS = 16


@pytest.fixture
def hasher():
    return StandInHasher()


def make_req(hasher, rid, tokens, **kw):
    return RefRequest(rid, list(tokens), hasher=hasher, **kw)


def schedule(mgr, req, lookahead=0, resumed=False):
    """Lookup + allocate the whole rest of the prompt, as a scheduler admits a request."""
    hits, n_hit = mgr.get_computed_pages(req, resumed)
    new = mgr.allocate_slots(req, req.num_tokens - n_hit, n_hit, hits, lookahead)
    if new is not None:
        req.num_computed_tokens = req.num_tokens
    return hits[0], new


def snapshot(mgr):
    return copy.deepcopy((mgr.page_pool.ref, mgr.page_pool.key, mgr.page_pool.index,
                          mgr.page_pool.get_all_free_pages(), mgr.page_pool.events,
                          mgr.req_pages, mgr.num_cached))


# ---------------------------------------------------------------------------- pool rules


def test_null_page_is_taken_and_queue_starts_in_id_order():  # rule 1
    pool = RefPagePool(6, enable_caching=True)
    assert pool.null_page == 0
    assert pool.get_all_free_pages() == [1, 2, 3, 4, 5]
    assert pool.get_new_pages(5) == [1, 2, 3, 4, 5]
    pool.free_pages([0])  # the null page is ignored
    pool.touch([0])
    assert pool.get_num_free_pages() == 0
    pool.verify()


def test_usage_counts_usable_pages_only():  # rule 2
    pool = RefPagePool(5, enable_caching=True)
    assert pool.get_usage() == 0.0
    pool.get_new_pages(2)
    assert pool.get_usage() == 0.5
    pool.get_new_pages(2)
    assert pool.get_usage() == 1.0


def test_get_new_pages_beyond_free_raises_and_changes_nothing():  # rule 3
    pool = RefPagePool(4, enable_caching=True)
    pool.get_new_pages(1)
    with pytest.raises(CapacityError):
        pool.get_new_pages(3)
    with pytest.raises(ValueError):
        pool.get_new_pages(-1)
    assert pool.get_all_free_pages() == [2, 3]
    assert pool.ref == [0, 1, 0, 0]


def test_reallocating_a_cached_page_evicts_it_with_one_removed_event(hasher):  # rules 3, 7
    pool = RefPagePool(4, enable_caching=True, enable_kv_events=True)
    req = make_req(hasher, "a", range(2 * PS))
    pages = pool.get_new_pages(2)
    pool.cache_full_pages(req, pages, 0, 2, PS)
    h = req.page_hashes(PS)
    pool.free_pages(reversed(pages))
    assert pool.get_cached_page(h[1], [0]) == [2]  # lazy eviction: still a hit
    pool.take_events()
    assert pool.get_new_pages(2) == [3, 2]
    assert pool.get_cached_page(h[1], [0]) is None
    assert pool.get_cached_page(h[0], [0]) == [1]
    events = pool.take_events()
    assert [(e.kind, e.page_hashes, e.page_ids) for e in events] == [("removed", [h[1]], [2])]
    pool.verify()


def test_free_appends_pages_reaching_zero_in_given_order():  # rules 4, 6
    pool = RefPagePool(6, enable_caching=True)
    a = pool.get_new_pages(3)  # [1, 2, 3]
    pool.touch([2])
    pool.free_pages([3, 2, 1])
    assert pool.get_all_free_pages() == [4, 5, 3, 1]
    pool.free_pages([2])  # the last holder frees it: tail as of now
    assert pool.get_all_free_pages() == [4, 5, 3, 1, 2]
    assert a == [1, 2, 3]
    pool.verify()


def test_free_errors_change_nothing():  # rule 4 + strong guarantee
    pool = RefPagePool(4, enable_caching=True)
    pool.get_new_pages(2)
    before = (list(pool.ref), pool.get_all_free_pages())
    with pytest.raises(IndexError):
        pool.free_pages([1, 4])
    with pytest.raises(RuntimeError):
        pool.free_pages([1, 3])  # 3 is free
    with pytest.raises(RuntimeError):
        pool.free_pages([2, 2])  # repeats count
    assert (pool.ref, pool.get_all_free_pages()) == before


def test_worked_example_of_rule_5(hasher):  # rule 5
    mgr = RefKVCacheManager(11, PS, 1024)
    prefix = list(range(100, 100 + 3 * PS))
    req0 = make_req(hasher, "req0", prefix + list(range(PS)))
    req1 = make_req(hasher, "req1", prefix + list(range(500, 500 + PS)))
    assert schedule(mgr, req0) == ([], [[1, 2, 3, 4]])
    assert schedule(mgr, req1) == ([1, 2, 3], [[5]])
    mgr.free(req0)
    mgr.free(req1)
    assert mgr.page_pool.get_all_free_pages() == [6, 7, 8, 9, 10, 4, 5, 3, 2, 1]
    req2 = make_req(hasher, "req2", prefix + list(range(900, 900 + PS)))
    assert schedule(mgr, req2) == ([1, 2, 3], [[6]])
    mgr.free(req2)
    assert mgr.page_pool.get_all_free_pages() == [7, 8, 9, 10, 4, 5, 6, 3, 2, 1]
    assert mgr.page_pool.get_new_pages(10) == [7, 8, 9, 10, 4, 5, 6, 3, 2, 1]
    mgr.page_pool.verify()


def test_touch_unlinks_free_pages_and_lowers_free_count():  # rule 8
    pool = RefPagePool(5, enable_caching=True)
    pool.get_new_pages(2)
    pool.free_pages([2, 1])
    pool.touch([3, 1, 1])
    assert pool.ref[1] == 2 and pool.ref[3] == 1
    assert pool.get_all_free_pages() == [4, 2]
    with pytest.raises(IndexError):
        pool.touch([2, 5])
    assert pool.ref[2] == 0
    pool.verify()


def test_duplicate_hashes_are_all_indexed_and_first_inserted_wins(hasher):  # rule 9
    pool = RefPagePool(6, enable_caching=True)
    ra = make_req(hasher, "a", range(PS))
    rb = make_req(hasher, "b", range(PS))
    pa = pool.get_new_pages(1)
    pb = pool.get_new_pages(1)
    pool.cache_full_pages(ra, pa, 0, 1, PS)
    pool.cache_full_pages(rb, pb, 0, 1, PS)
    h = ra.page_hashes(PS)[0]
    assert rb.page_hashes(PS)[0] == h
    assert pool.index[(h, 0)] == [1, 2]
    assert pool.get_cached_page(h, [0]) == [1]
    pool.free_pages(pa)
    pool.get_new_pages(4)  # 3, 4, 5 and then 1 (evicted)
    assert pool.get_cached_page(h, [0]) == [2]
    pool.verify()


def test_reset_prefix_cache_fails_while_held_and_keeps_queue_order(hasher):  # rule 10
    pool = RefPagePool(5, enable_caching=True, enable_kv_events=True)
    req = make_req(hasher, "a", range(2 * PS))
    pages = pool.get_new_pages(2)
    pool.cache_full_pages(req, pages, 0, 2, PS)
    pool.take_events()
    assert pool.reset_prefix_cache() is False
    assert pool.page_hash(1) is not None and pool.take_events() == []
    pool.free_pages(reversed(pages))
    order = pool.get_all_free_pages()
    assert pool.reset_prefix_cache() is True
    assert pool.get_all_free_pages() == order
    assert pool.page_hash(1) is None and pool.get_cached_page(req.page_hashes(PS)[0], [0]) is None
    assert [e.kind for e in pool.take_events()] == ["all_cleared"]
    pool.verify()


def test_lookup_over_groups_misses_if_any_group_misses(hasher):  # rule 14
    pool = RefPagePool(5, enable_caching=True)
    req = make_req(hasher, "a", range(PS))
    p0 = pool.get_new_pages(1)
    p1 = pool.get_new_pages(1)
    pool.cache_full_pages(req, p0, 0, 1, PS, kv_cache_group_id=0)
    h = req.page_hashes(PS)[0]
    assert pool.get_cached_page(h, [0, 1]) is None
    pool.cache_full_pages(req, p1, 0, 1, PS, kv_cache_group_id=1)
    assert pool.get_cached_page(h, [0, 1]) == [1, 2]


def test_caching_a_page_twice_is_an_error_that_changes_nothing(hasher):
    pool = RefPagePool(5, enable_caching=True)
    req = make_req(hasher, "a", range(2 * PS))
    pages = pool.get_new_pages(2)
    pool.cache_full_pages(req, pages, 0, 1, PS)
    with pytest.raises(RuntimeError):
        pool.cache_full_pages(req, [pages[0], pages[1]], 0, 2, PS)
    with pytest.raises(ValueError):
        pool.cache_full_pages(req, pages, 1, 3, PS)
    assert pool.page_hash(pages[1]) is None
    pool.verify()


# ---------------------------------------------------------------------------- hashes


def test_only_full_pages_get_hashes(hasher):  # rule 12
    req = make_req(hasher, "a", range(PS + 5))
    assert len(req.page_hashes(PS)) == 1
    req.append_output_token_ids(list(range(PS - 5)))
    assert len(req.page_hashes(PS)) == 2


def test_salt_keys_page_zero_and_isolates_tenants(hasher):  # rule 13
    a = make_req(hasher, "a", range(2 * PS), cache_salt="t1")
    b = make_req(hasher, "b", range(2 * PS), cache_salt="t2")
    c = make_req(hasher, "c", range(2 * PS), cache_salt="t1")
    d = make_req(hasher, "d", range(2 * PS), lora_id=3)
    assert a.page_hashes(PS)[0] != b.page_hashes(PS)[0]
    assert a.page_hashes(PS)[1] != b.page_hashes(PS)[1]  # chained: page 1 differs too
    assert a.page_hashes(PS) == c.page_hashes(PS)
    assert d.page_hashes(PS)[0] != make_req(hasher, "e", range(2 * PS)).page_hashes(PS)[0]


# ---------------------------------------------------------------------------- manager


def test_48_token_prompt_hits_at_most_two_pages(hasher):  # rule 16
    mgr = RefKVCacheManager(10, PS, 1024)
    a = make_req(hasher, "a", range(3 * PS))
    assert schedule(mgr, a) == ([], [[1, 2, 3]])
    b = make_req(hasher, "b", range(3 * PS))
    hits, n = mgr.get_computed_pages(b)
    assert (hits, n) == ([[1, 2]], 2 * PS)
    # 49 tokens: now all 3 full pages may hit
    c = make_req(hasher, "c", list(range(3 * PS)) + [7])
    assert mgr.get_computed_pages(c) == ([[1, 2, 3]], 3 * PS)


def test_hit_stops_at_first_miss(hasher):  # rule 16
    mgr = RefKVCacheManager(10, PS, 1024)
    schedule(mgr, make_req(hasher, "a", range(4 * PS)))
    tokens = list(range(4 * PS + 1))
    tokens[PS + 3] = 999  # page 1 differs, so pages 2, 3 cannot hit either
    assert mgr.get_computed_pages(make_req(hasher, "b", tokens)) == ([[1]], PS)


def test_allocate_counts_free_hit_pages_and_changes_nothing_on_failure(hasher):  # rule 18
    mgr = RefKVCacheManager(6, PS, 1024, enable_kv_events=True)
    a = make_req(hasher, "a", range(3 * PS))
    schedule(mgr, a)  # pages 1, 2, 3
    mgr.free(a)  # queue [4, 5, 3, 2, 1]
    mgr.take_events()
    b = make_req(hasher, "b", range(5 * PS))  # hits 1, 2, 3 (free): needs 3 + 2 new = 5 > ...
    other = make_req(hasher, "o", range(1000, 1000 + PS))
    assert schedule(mgr, other)[1] == [[4]]  # now only 4 free pages
    before = snapshot(mgr)
    hits, n = mgr.get_computed_pages(b)
    assert (hits, n) == ([[1, 2, 3]], 3 * PS)
    assert mgr.allocate_slots(b, 5 * PS - n, n, hits) is None
    assert snapshot(mgr) == before
    assert mgr.get_page_ids("b") == [[]]
    mgr.verify()
    # with one page fewer it fits exactly: 3 touched free hits + 1 new page
    c = make_req(hasher, "c", range(4 * PS))
    hits, n = mgr.get_computed_pages(c)
    assert mgr.allocate_slots(c, 4 * PS - n, n, hits) == [[5]]
    assert mgr.page_pool.get_num_free_pages() == 0
    mgr.verify()


def test_lookahead_and_max_model_len_bound_the_slots(hasher):  # rule 18
    mgr = RefKVCacheManager(20, PS, 3 * PS)
    a = make_req(hasher, "a", range(PS + 1))
    assert mgr.allocate_slots(a, PS + 1, num_lookahead_tokens=PS - 1) == [[1, 2]]
    a.num_computed_tokens = PS + 1
    a.append_output_token_ids([5])
    assert mgr.allocate_slots(a, 1, num_lookahead_tokens=4 * PS) == [[3]]  # capped at 3 pages
    assert mgr.get_page_ids("a") == [[1, 2, 3]]


def test_identical_prompt_in_same_step_hits_and_drafts_are_not_cached(hasher):  # rule 19
    mgr = RefKVCacheManager(20, PS, 1024)
    a = make_req(hasher, "a", range(2 * PS + 4))
    hits, n = mgr.get_computed_pages(a)
    mgr.allocate_slots(a, a.num_tokens, 0, hits, num_lookahead_tokens=2 * PS)
    assert mgr.num_cached["a"] == [2]  # lookahead slots exist but are not cached
    assert mgr.page_pool.page_hash(3) is None
    b = make_req(hasher, "b", range(2 * PS + 4))
    assert mgr.get_computed_pages(b) == ([[1, 2]], 2 * PS)


def test_chunked_prefill_caches_each_chunk_once(hasher):  # rule 19, 21
    mgr = RefKVCacheManager(20, PS, 1024, enable_kv_events=True)
    a = make_req(hasher, "a", range(3 * PS + 2), lora_id=9)
    h = a.page_hashes(PS)
    assert mgr.allocate_slots(a, PS + 3) == [[1, 2]]
    a.num_computed_tokens = PS + 3
    assert mgr.allocate_slots(a, 2 * PS - 1) == [[3, 4]]
    a.num_computed_tokens = 3 * PS + 2
    events = mgr.take_events()
    assert [(e.kind, e.parent_hash, e.page_hashes, e.page_ids) for e in events] == [
        ("stored", None, [h[0]], [1]), ("stored", h[0], [h[1], h[2]], [2, 3])]
    assert events[1].token_ids == list(range(PS, 3 * PS))
    assert events[1].lora_id == 9 and events[1].page_size == PS and events[1].group_id == 0


def test_decode_caches_a_page_when_it_fills(hasher):  # rules 12, 19
    mgr = RefKVCacheManager(20, PS, 1024)
    a = make_req(hasher, "a", range(PS + PS - 1))
    schedule(mgr, a)
    assert mgr.page_pool.page_hash(2) is None
    a.append_output_token_ids([77])
    assert mgr.allocate_slots(a, 1) == [[]]
    assert mgr.page_pool.page_hash(2) == a.page_hashes(PS)[1]
    a.num_computed_tokens += 1
    a.append_output_token_ids([78])
    assert mgr.allocate_slots(a, 1) == [[3]]


def test_free_releases_pages_in_reverse(hasher):  # rule 20
    mgr = RefKVCacheManager(8, PS, 1024)
    a = make_req(hasher, "a", range(3 * PS))
    schedule(mgr, a)
    mgr.free(a)
    assert mgr.page_pool.get_all_free_pages() == [4, 5, 6, 7, 3, 2, 1]
    assert mgr.get_page_ids("a") == [[]]
    mgr.free(a)  # a request without pages frees nothing
    mgr.verify()


def test_stats_count_tokens(hasher):  # rule 22
    mgr = RefKVCacheManager(20, PS, 1024)
    schedule(mgr, make_req(hasher, "a", range(3 * PS)))
    mgr.get_computed_pages(make_req(hasher, "b", range(3 * PS)))
    assert (mgr.stats.requests, mgr.stats.queries, mgr.stats.hits) == (2, 6 * PS, 2 * PS)


def test_common_prefix_counts_pages_held_by_every_running_request(hasher):
    mgr = RefKVCacheManager(20, PS, 1024)
    a = make_req(hasher, "a", range(3 * PS))
    b = make_req(hasher, "b", list(range(2 * PS)) + [1] * PS)
    schedule(mgr, a)
    schedule(mgr, b)
    assert mgr.get_num_common_prefix_pages(a, 2) == [2]
    assert mgr.get_num_common_prefix_pages(a, 1) == [0]


def test_caching_disabled_never_hits_or_hashes(hasher):
    mgr = RefKVCacheManager(10, PS, 1024, enable_caching=False)
    schedule(mgr, make_req(hasher, "a", range(3 * PS)))
    assert mgr.get_computed_pages(make_req(hasher, "b", range(3 * PS))) == ([[]], 0)
    assert all(mgr.page_pool.page_hash(p) is None for p in range(10))
    mgr.verify()


def test_speculative_decoding_drops_one_more_hit_page(hasher):  # rule 17
    mgr = RefKVCacheManager(20, PS, 1024, num_speculative_tokens=2)
    schedule(mgr, make_req(hasher, "a", range(4 * PS)))
    assert mgr.get_computed_pages(make_req(hasher, "b", range(4 * PS))) == ([[1, 2]], 2 * PS)


def test_request_larger_than_the_pool_is_a_capacity_error(hasher):  # rule 29
    mgr = RefKVCacheManager(4, PS, 1024)
    big = make_req(hasher, "big", range(3 * PS + 1))
    with pytest.raises(CapacityError):
        mgr.allocate_slots(big, big.num_tokens)
    assert mgr.get_page_ids("big") == [[]]
    mgr.verify()


def test_invalid_allocations_raise_and_change_nothing(hasher):  # rule 18, strong guarantee
    mgr = RefKVCacheManager(10, PS, 4 * PS)
    a = make_req(hasher, "a", range(2 * PS))
    schedule(mgr, a)
    b = make_req(hasher, "b", range(2 * PS + 1))
    d = make_req(hasher, "d", range(500, 500 + 3 * PS))
    assert mgr.allocate_slots(d, PS) == [[3]]
    d.num_computed_tokens = PS
    before = snapshot(mgr)
    with pytest.raises(ValueError):
        mgr.allocate_slots(b, -1)
    with pytest.raises(ValueError):
        mgr.allocate_slots(b, 4 * PS + 1)  # beyond max_model_len
    with pytest.raises(ValueError):
        mgr.allocate_slots(b, 1, PS, [[1], []])  # two groups of hits, one group
    with pytest.raises(IndexError):
        mgr.allocate_slots(b, 1, PS, [[10]])
    with pytest.raises(RuntimeError):
        mgr.allocate_slots(d, 1, PS, [[1]])  # hits for a request that holds pages
    other = make_req(hasher, "c", range(2 * PS + 1), hash_algorithm="sha256")
    with pytest.raises(ValueError):
        mgr.get_computed_pages(other)
    with pytest.raises(ValueError):
        mgr.get_num_common_prefix_pages(a, 0)
    assert snapshot(mgr) == before


def test_resumed_requests_are_counted_separately(hasher):  # rule 22
    mgr = RefKVCacheManager(20, PS, 1024)
    a = make_req(hasher, "a", range(3 * PS))
    schedule(mgr, a)
    mgr.free(a)
    a.num_computed_tokens = 0
    assert schedule(mgr, a, resumed=True)[0] == [1, 2]
    s = mgr.stats
    assert (s.requests, s.queries, s.hits) == (1, 3 * PS, 0)
    assert (s.resumed_requests, s.resumed_queries, s.resumed_hits) == (1, 3 * PS, 2 * PS)


# ---------------------------------------------------------------------------- sliding window


def test_pages_leaving_the_window_become_null_and_are_freed_right_to_left(hasher):  # rule 23
    mgr = RefKVCacheManager(20, 4, 1024, sliding_window=6)
    a = make_req(hasher, "a", range(17))
    assert mgr.allocate_slots(a, 17) == [[1, 2, 3, 4, 5]]
    a.num_computed_tokens = 17
    a.append_output_token_ids([0])
    # 17 computed, window 6: tokens before 12 are out, pages 0..2 (tokens 0..11) are dropped
    assert mgr.allocate_slots(a, 1) == [[]]
    assert mgr.get_page_ids("a") == [[0, 0, 0, 4, 5]]
    assert mgr.page_pool.get_all_free_pages()[-3:] == [3, 2, 1]
    mgr.verify()


def test_sliding_window_hit_needs_contiguous_pages_from_the_right(hasher):  # rule 24
    mgr = RefKVCacheManager(30, 4, 1024, sliding_window=8)  # needs cdiv(7, 4) = 2 pages
    a = make_req(hasher, "a", range(25))
    mgr.allocate_slots(a, 25)  # pages 1..7, 6 full pages cached
    mgr.free(a)
    # queue [8..29, 7, 6, 5, 4, 3, 2, 1]: reallocating up to page 5 evicts page indices 5, 4
    queue = mgr.page_pool.get_all_free_pages()
    mgr.page_pool.get_new_pages(queue.index(5) + 1)
    b = make_req(hasher, "b", range(25))
    hits, n = mgr.get_computed_pages(b)
    # from the right: indices 5, 4 miss; 3 and 2 are the first two contiguous cached pages
    assert (hits, n) == ([[0, 0, 3, 4]], 16)
    # a window of one page accepts the rightmost cached page alone
    mgr1 = RefKVCacheManager(30, 4, 1024, sliding_window=5)  # cdiv(4, 4) = 1 page
    c = make_req(hasher, "c", range(9))
    mgr1.allocate_slots(c, 9)
    d = make_req(hasher, "d", range(9))
    assert mgr1.get_computed_pages(d) == ([[0, 2]], 8)


def test_hit_length_is_accepted_by_every_group_and_a_multiple_of_the_lcm(hasher):  # rule 25
    groups = [RefGroup("full_attention", 4), RefGroup("sliding_window", 8, 8)]
    mgr = RefKVCacheManager(40, 4, 1024, groups=groups)
    a = make_req(hasher, "a", range(30))
    assert mgr.allocate_slots(a, 30) == [[1, 2, 3, 4, 5, 6, 7, 8], [9, 10, 11, 12]]
    b = make_req(hasher, "b", range(30))
    hits, n = mgr.get_computed_pages(b)
    # at most 29 tokens; lcm 8 -> 24; the full group has 6 pages of 4, the window group 3 of 8
    assert n == 24
    assert hits == [[1, 2, 3, 4, 5, 6], [0, 0, 11]]
    mgr.verify()
