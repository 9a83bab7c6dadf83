"""A deliberately simple reference model of the pagedkv page pool and KV-cache manager.

Written straight from docs/rules.md rules 1-25 with plain lists and dicts, so
that it is easy to check by reading. The differential test (test_differential.py) drives it
and the C++ implementation with the same operations and compares every observable result.

Nothing here imports pagedkv. Page hashes are opaque hashable values: either the bytes that a
real ``pagedkv.Request`` computes (the differential test passes them in through
``RefRequest(page_hashes_fn=...)``), or the exact, collision-free stand-ins of
``StandInHasher`` (the model's own tests and the benchmark).

Example (the start of rule 5):
    mgr = RefKVCacheManager(num_pages=11, page_size=16, max_model_len=1024)
    req0 = RefRequest("r0", list(range(64)), hasher=StandInHasher())
    pages, hit = mgr.get_computed_pages(req0)        # [[]], 0
    mgr.allocate_slots(req0, 64 - hit, hit, pages)   # [[1, 2, 3, 4]]

Deliberate simplicity: the free queue is an OrderedDict used as an ordered set, the prefix
index a dict of lists, each request's pages a list per group; every mutator checks all its
arguments before changing anything, as pagedkv promises (strong guarantee).
"""

from __future__ import annotations

import math
from collections import Counter, OrderedDict
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

NULL_PAGE = 0


class CapacityError(RuntimeError):
    """Not enough free pages (mirrors pagedkv.CapacityError)."""


def cdiv(a: int, b: int) -> int:
    return (a + b - 1) // b


# --------------------------------------------------------------------------------------------
# Hashes and requests
# --------------------------------------------------------------------------------------------


class StandInHasher:
    """Exact stand-in for the chained page hash (rule 13).

    Every distinct (parent, tokens, extra keys) triple gets the next small integer, so two
    pages share a hash exactly when their whole prefix, tokens and extra keys are equal.
    """

    def __init__(self) -> None:
        self._ids: dict[tuple, int] = {}

    def hash_page(self, parent: Optional[int], tokens: tuple, extra: tuple) -> int:
        key = (parent, tokens, extra)
        if key not in self._ids:
            self._ids[key] = len(self._ids) + 1
        return self._ids[key]


class RefRequest:
    """The parts of a request the cache layers read: tokens, salt, LoRA id, computed count.

    Page hashes come from ``page_hashes_fn(page_size)`` when given (e.g. a real request's
    ``page_hashes``), otherwise from ``hasher``.
    """

    def __init__(
        self,
        request_id: str,
        prompt_token_ids: list[int],
        cache_salt: Optional[str] = None,
        lora_id: Optional[int] = None,
        hasher: Optional[StandInHasher] = None,
        page_hashes_fn: Optional[Callable[[int], list]] = None,
        hash_algorithm: str = "xxh3_128",
    ) -> None:
        assert hasher is not None or page_hashes_fn is not None
        self.request_id = request_id
        self.all_token_ids = list(prompt_token_ids)
        self.num_prompt_tokens = len(prompt_token_ids)
        self.cache_salt = cache_salt
        self.lora_id = lora_id
        self.num_computed_tokens = 0
        self.hash_algorithm = hash_algorithm
        self._hasher = hasher
        self._page_hashes_fn = page_hashes_fn

    @property
    def num_tokens(self) -> int:
        return len(self.all_token_ids)

    def append_output_token_ids(self, ids: list[int]) -> None:
        self.all_token_ids.extend(ids)

    def page_hashes(self, page_size: int) -> list:
        """Hashes of the full pages only (rule 12), chained from page 0 (rule 13)."""
        if self._page_hashes_fn is not None:
            return list(self._page_hashes_fn(page_size))
        hashes = []
        parent = None
        for i in range(self.num_tokens // page_size):
            tokens = tuple(self.all_token_ids[i * page_size:(i + 1) * page_size])
            salt = self.cache_salt if i == 0 else None  # the salt is a page-0 key only
            parent = self._hasher.hash_page(parent, tokens, (self.lora_id, salt))
            hashes.append(parent)
        return hashes


# --------------------------------------------------------------------------------------------
# Events
# --------------------------------------------------------------------------------------------


@dataclass
class RefEvent:
    kind: str  # "stored", "removed" or "all_cleared"
    parent_hash: Any = None
    page_hashes: list = field(default_factory=list)
    token_ids: list = field(default_factory=list)
    page_size: int = 0
    lora_id: Optional[int] = None
    group_id: int = 0
    page_ids: list = field(default_factory=list)


# --------------------------------------------------------------------------------------------
# Page pool (rules 1-11)
# --------------------------------------------------------------------------------------------


class RefPagePool:
    def __init__(self, num_pages: int, enable_caching: bool, enable_kv_events: bool = False):
        if num_pages < 2:
            raise ValueError(f"num_pages must be >= 2, got {num_pages}")
        self.num_pages = num_pages
        self.enable_caching = enable_caching
        self.enable_kv_events = enable_kv_events
        self.null_page = NULL_PAGE
        self.ref = [0] * num_pages
        # page id -> (hash, group) or None
        self.key: list[Optional[tuple]] = [None] * num_pages
        # (hash, group) -> page ids in insertion order (rule 9)
        self.index: dict[tuple, list[int]] = {}
        # the free queue, head first; an OrderedDict used as an ordered set
        self.free_queue: OrderedDict[int, None] = OrderedDict()
        for p in range(1, num_pages):  # rule 1: page 0 is taken as the null page
            self.free_queue[p] = None
        self.events: list[RefEvent] = []

    # --- checks shared by the mutators (all run before anything changes) ---

    def _check_id(self, p: int) -> None:
        if not 0 <= p < self.num_pages:
            raise IndexError(f"page id {p} out of range [0, {self.num_pages})")

    def _emit(self, event: RefEvent) -> None:
        if self.enable_kv_events:
            self.events.append(event)

    # --- rule 3 ---

    def get_new_pages(self, n: int) -> list[int]:
        if n < 0:
            raise ValueError(f"n must be >= 0, got {n}")
        if n > len(self.free_queue):
            raise CapacityError(f"cannot get {n} pages, {len(self.free_queue)} free")
        out = []
        for _ in range(n):
            p, _ = self.free_queue.popitem(last=False)
            self._evict(p)
            self.ref[p] = 1
            out.append(p)
        return out

    def _evict(self, p: int) -> None:
        key = self.key[p]
        if key is None:
            return
        self.index[key].remove(p)
        if not self.index[key]:
            del self.index[key]
        self.key[p] = None
        self._emit(RefEvent("removed", page_hashes=[key[0]], group_id=key[1], page_ids=[p]))

    # --- rules 4, 6 ---

    def free_pages(self, ordered: list[int]) -> None:
        ordered = list(ordered)
        for p in ordered:
            self._check_id(p)
        for p, times in Counter(ordered).items():
            if p != NULL_PAGE and times > self.ref[p]:
                raise RuntimeError(f"page {p} freed {times} times, ref count {self.ref[p]}")
        for p in ordered:
            if p != NULL_PAGE:
                self.ref[p] -= 1
        for p in ordered:
            if p != NULL_PAGE and self.ref[p] == 0:
                self.free_queue[p] = None

    # --- rule 8 ---

    def touch(self, pages: list[int]) -> None:
        pages = list(pages)
        for p in pages:
            self._check_id(p)
        for p in pages:
            if p == NULL_PAGE:
                continue
            if self.ref[p] == 0:
                del self.free_queue[p]
            self.ref[p] += 1

    # --- lookups (rules 9, 14) ---

    def get_cached_page(self, page_hash, group_ids: list[int]) -> Optional[list[int]]:
        out = []
        for g in group_ids:
            pages = self.index.get((page_hash, g))
            if not pages:
                return None
            out.append(pages[0])
        return out

    # --- caching (rules 12, 13, 19, 21) ---

    def cache_full_pages(self, request: RefRequest, pages: list[int], num_cached_pages: int,
                         num_full_pages: int, page_size: int, kv_cache_group_id: int = 0) -> None:
        pages = list(pages)
        if page_size <= 0:
            raise ValueError(f"page_size must be > 0, got {page_size}")
        hashes = request.page_hashes(page_size)
        if not 0 <= num_cached_pages <= num_full_pages:
            raise ValueError(f"need 0 <= num_cached_pages ({num_cached_pages}) <= "
                             f"num_full_pages ({num_full_pages})")
        if num_full_pages > len(pages) or num_full_pages > len(hashes):
            raise ValueError(f"num_full_pages {num_full_pages} exceeds pages ({len(pages)}) "
                             f"or full pages of the request ({len(hashes)})")
        to_cache = pages[num_cached_pages:num_full_pages]
        for p in to_cache:
            self._check_id(p)
        seen = set()
        for p in to_cache:
            if p == NULL_PAGE:
                continue
            if self.ref[p] == 0:
                raise RuntimeError(f"page {p} is free")
            if self.key[p] is not None:
                raise RuntimeError(f"page {p} already carries a hash")
            if p in seen:
                raise RuntimeError(f"page {p} appears twice")
            seen.add(p)
        if not self.enable_caching or num_cached_pages == num_full_pages:
            return
        stored_hashes, stored_pages = [], []
        for i in range(num_cached_pages, num_full_pages):
            p = pages[i]
            if p == NULL_PAGE:
                continue
            key = (hashes[i], kv_cache_group_id)
            self.key[p] = key
            self.index.setdefault(key, []).append(p)
            stored_hashes.append(hashes[i])
            stored_pages.append(p)
        if not self.enable_kv_events:
            return
        self._emit(RefEvent(
            "stored",
            parent_hash=hashes[num_cached_pages - 1] if num_cached_pages > 0 else None,
            page_hashes=stored_hashes,
            token_ids=request.all_token_ids[num_cached_pages * page_size:
                                            num_full_pages * page_size],
            page_size=page_size,
            lora_id=request.lora_id,
            group_id=kv_cache_group_id,
            page_ids=stored_pages))

    # --- rule 10 ---

    def reset_prefix_cache(self) -> bool:
        if len(self.free_queue) != self.num_pages - 1:
            return False
        self.index = {}
        self.key = [None] * self.num_pages
        self._emit(RefEvent("all_cleared"))
        return True

    # --- observers (rules 2, 11) ---

    def get_num_free_pages(self) -> int:
        return len(self.free_queue)

    def get_usage(self) -> float:
        usable = self.num_pages - 1
        return (usable - len(self.free_queue)) / usable

    def get_all_free_pages(self) -> list[int]:
        return list(self.free_queue)

    def ref_count(self, p: int) -> int:
        self._check_id(p)
        return self.ref[p]

    def page_hash(self, p: int):
        self._check_id(p)
        return None if self.key[p] is None else self.key[p][0]

    def take_events(self) -> list[RefEvent]:
        out, self.events = self.events, []
        return out

    def verify(self) -> None:
        assert NULL_PAGE not in self.free_queue and self.key[NULL_PAGE] is None
        for p in range(1, self.num_pages):
            assert self.ref[p] >= 0, p
            assert (self.ref[p] == 0) == (p in self.free_queue), p
            if self.key[p] is not None:
                assert p in self.index[self.key[p]], p
        for key, pages in self.index.items():
            assert pages and len(set(pages)) == len(pages), key
            for p in pages:
                assert self.key[p] == key, (key, p)
        if not self.enable_caching:
            assert not self.index


# --------------------------------------------------------------------------------------------
# KV-cache manager, one full-attention group (rules 16-22)
# --------------------------------------------------------------------------------------------


@dataclass
class RefStats:
    """Rule 22, in tokens; lookups of requests resumed after a preemption count separately."""

    requests: int = 0
    queries: int = 0
    hits: int = 0
    resumed_requests: int = 0
    resumed_queries: int = 0
    resumed_hits: int = 0
    window_capacity: int = 1000
    # (queries, hits) of every fresh lookup, oldest first; the window is the last entries
    history: list = field(default_factory=list)

    def record(self, num_tokens: int, num_hit_tokens: int, resumed: bool) -> None:
        if resumed:
            self.resumed_requests += 1
            self.resumed_queries += num_tokens
            self.resumed_hits += num_hit_tokens
        else:
            self.requests += 1
            self.queries += num_tokens
            self.hits += num_hit_tokens
            self.history.append((num_tokens, num_hit_tokens))

    @property
    def windowed_hit_rate(self) -> float:
        window = self.history[-self.window_capacity:]
        queries = sum(q for q, _ in window)
        return sum(h for _, h in window) / queries if queries else 0.0


@dataclass
class RefGroup:
    """One KV-cache group: "full_attention" or "sliding_window" (window in tokens)."""

    kind: str
    page_size: int
    sliding_window: int = 0

    @property
    def sliding(self) -> bool:
        return self.kind == "sliding_window"


class RefKVCacheManager:
    """KV-cache groups over one pool (rules 16-25, 29). By default one full-attention group of
    `page_size`; `sliding_window` makes that group a sliding-window one; `groups` (a list of
    RefGroup) gives several groups, whose ids are their indices."""

    def __init__(self, num_pages: int, page_size: int, max_model_len: int,
                 enable_caching: bool = True, enable_kv_events: bool = False,
                 hash_algorithm: str = "xxh3_128", num_speculative_tokens: int = 0,
                 sliding_window: Optional[int] = None, groups: Optional[list[RefGroup]] = None):
        if groups is None:
            groups = [RefGroup("sliding_window", page_size, sliding_window) if sliding_window
                      else RefGroup("full_attention", page_size)]
        if max_model_len <= 0 or num_speculative_tokens < 0 or not groups:
            raise ValueError("max_model_len must be > 0, num_speculative_tokens >= 0, "
                             "and there must be a group")
        for g in groups:
            if g.page_size <= 0 or (g.sliding and g.sliding_window < 1):
                raise ValueError(f"bad group {g}")
        if num_speculative_tokens > 0 and (len(groups) > 1 or groups[0].sliding):
            raise NotImplementedError("the model drops speculative hit pages for one "
                                      "full-attention group only")
        self.page_pool = RefPagePool(num_pages, enable_caching, enable_kv_events)
        self.groups = groups
        self.lcm = 1
        for g in groups:
            self.lcm = math.lcm(self.lcm, g.page_size)
        self.max_model_len = max_model_len
        self.enable_caching = enable_caching
        self.hash_algorithm = hash_algorithm
        self.num_speculative_tokens = num_speculative_tokens
        # request id -> per group: its pages in token order (null pages first when skipped)
        self.req_pages: dict[str, list[list[int]]] = {}
        # request id -> per group: how many leading pages were given to the prefix cache
        self.num_cached: dict[str, list[int]] = {}
        self.stats = RefStats()

    def _check_algorithm(self, request: RefRequest) -> None:
        if request.hash_algorithm != self.hash_algorithm:
            raise ValueError(f"request hashes with {request.hash_algorithm}, "
                             f"the manager with {self.hash_algorithm}")

    # ---------------------------------------------------------------- lookups

    def _find_hit(self, gid: int, hashes: list, max_length: int) -> list[int]:
        """The hit pages of one group for a prefix of at most max_length tokens."""
        g = self.groups[gid]
        max_pages = max_length // g.page_size
        if not g.sliding:  # rule 16: left to right, stop at the first miss
            hits = []
            for h in hashes[:max_pages]:
                found = self.page_pool.get_cached_page(h, [gid])
                if found is None:
                    break
                hits.append(found[0])
            return hits
        # rule 24: scan from the right for `needed` contiguous cached pages; the pages to
        # their left are the null page. Without such a run, the run starting at page 0 counts.
        needed = cdiv(g.sliding_window - 1, g.page_size)
        hits = [NULL_PAGE] * max_pages
        run = 0
        for i in range(max_pages - 1, -1, -1):
            found = self.page_pool.get_cached_page(hashes[i], [gid])
            if found is None:
                run = 0
                continue
            hits[i] = found[0]
            run += 1
            if run >= needed:
                return hits[:i + run]
        return hits[:run]

    def get_computed_pages(self, request: RefRequest,
                           resumed: bool = False) -> tuple[list[list[int]], int]:
        self._check_algorithm(request)
        if not self.enable_caching:
            return [[] for _ in self.groups], 0
        # rules 16, 25: at most num_tokens - 1 tokens, a multiple of the lcm of the page sizes,
        # and a length every group accepts (shrink until no group shortens it)
        length = (request.num_tokens - 1) // self.lcm * self.lcm
        while True:
            hits = [self._find_hit(gid, request.page_hashes(g.page_size), length)
                    for gid, g in enumerate(self.groups)]
            accepted = min(len(h) * g.page_size for h, g in zip(hits, self.groups))
            accepted = accepted // self.lcm * self.lcm
            # a single group's hit needs no second pass: searching again up to it finds it again
            settled = accepted == length or len(self.groups) == 1
            length = accepted
            if settled:
                break
        if self.num_speculative_tokens > 0 and hits[0]:
            hits[0].pop()  # rule 17 (one full-attention group)
            length -= self.groups[0].page_size
        self.stats.record(request.num_tokens, length, resumed)
        return hits, length

    # ---------------------------------------------------------------- allocation

    def allocate_slots(self, request: RefRequest, num_new_tokens: int,
                       num_new_computed_tokens: int = 0,
                       new_computed_pages: Optional[list[list[int]]] = None,
                       num_lookahead_tokens: int = 0) -> Optional[list[list[int]]]:
        rid = request.request_id
        num_groups = len(self.groups)
        # --- every check first: a failed call changes nothing ---
        self._check_algorithm(request)
        if min(num_new_tokens, num_new_computed_tokens, num_lookahead_tokens) < 0:
            raise ValueError("negative token count")
        computed = request.num_computed_tokens
        total = computed + num_new_computed_tokens + num_new_tokens
        if computed + num_new_computed_tokens > request.num_tokens:
            raise ValueError(f"{computed + num_new_computed_tokens} computed tokens > "
                             f"{request.num_tokens} tokens")
        if total > self.max_model_len:
            raise ValueError(f"{total} tokens > max_model_len {self.max_model_len}")
        if new_computed_pages is None:
            hits = [[] for _ in self.groups]
        else:
            if len(new_computed_pages) != num_groups:
                raise ValueError(f"{len(new_computed_pages)} groups of hit pages, "
                                 f"the manager has {num_groups}")
            hits = [list(h) for h in new_computed_pages]
        for g, group_hits in zip(self.groups, hits):
            if len(group_hits) * g.page_size > num_new_computed_tokens:
                raise ValueError("hit pages cover more than num_new_computed_tokens")
            for p in group_hits:
                self.page_pool._check_id(p)
            real_pages = [p for p in group_hits if p != NULL_PAGE]
            if NULL_PAGE in group_hits and (not g.sliding or
                                            group_hits[:len(group_hits) - len(real_pages)] !=
                                            [NULL_PAGE] * (len(group_hits) - len(real_pages))):
                raise ValueError("null hit pages only as a prefix of a sliding-window group")
        has_hits = any(hits)
        if has_hits and not self.enable_caching:
            raise ValueError("hit pages with caching off")
        if rid in self.req_pages:
            for g, pages in zip(self.groups, self.req_pages[rid]):
                if has_hits:
                    raise RuntimeError(f"hit pages for request {rid}, which already holds pages")
                if computed > len(pages) * g.page_size:
                    raise RuntimeError(f"{computed} computed tokens, {len(pages)} pages held")
        elif computed != 0:
            raise RuntimeError(f"{computed} computed tokens, but request {rid} holds no pages")

        # --- plan: what each group frees (window), touches, takes (rules 18, 23, 29) ---
        need_tokens = min(total + num_lookahead_tokens, self.max_model_len)
        current = self.req_pages.get(rid, [[] for _ in self.groups])
        skipped, new_counts = [], []
        free_needed = freed_by_skip = held_after = 0
        for gid, g in enumerate(self.groups):
            pages = current[gid]
            skip = []
            if g.sliding:
                num_skipped_pages = max(0, computed - g.sliding_window + 1) // g.page_size
                # right to left, the order they go back to the pool
                skip = [p for p in reversed(pages[:num_skipped_pages]) if p != NULL_PAGE]
            skipped.append(skip)
            freed_by_skip += sum(1 for p in skip if self.page_pool.ref[p] == 1)
            num_new = max(0, cdiv(need_tokens, g.page_size) - len(pages) - len(hits[gid]))
            new_counts.append(num_new)
            free_needed += num_new + sum(1 for p in hits[gid]
                                         if p != NULL_PAGE and self.page_pool.ref[p] == 0)
            held_after += (sum(1 for p in pages if p != NULL_PAGE) - len(skip) +
                           sum(1 for p in hits[gid] if p != NULL_PAGE) + num_new)
        if held_after > self.page_pool.num_pages - 1:
            raise CapacityError(f"{held_after} pages needed, the pool has "
                                f"{self.page_pool.num_pages - 1}")
        if free_needed > self.page_pool.get_num_free_pages() + freed_by_skip:
            return None  # nothing has changed

        # --- apply: every group's window drops and hits first, then the new pages ---
        if rid not in self.req_pages:
            self.req_pages[rid] = [[] for _ in self.groups]
            self.num_cached[rid] = [len(h) for h in hits]
        for gid in range(num_groups):
            pages = self.req_pages[rid][gid]
            self.page_pool.free_pages(skipped[gid])
            for i, p in enumerate(pages):
                if p in skipped[gid]:
                    pages[i] = NULL_PAGE
            self.page_pool.touch(hits[gid])
            pages.extend(hits[gid])
        new_pages = []
        for gid in range(num_groups):
            new_pages.append(self.page_pool.get_new_pages(new_counts[gid]))
            self.req_pages[rid][gid].extend(new_pages[gid])

        if self.enable_caching:  # rule 19: never the lookahead tokens
            num_to_cache = min(total, request.num_tokens)
            for gid, g in enumerate(self.groups):
                num_full = num_to_cache // g.page_size
                if num_full > self.num_cached[rid][gid]:
                    self.page_pool.cache_full_pages(request, self.req_pages[rid][gid],
                                                    self.num_cached[rid][gid], num_full,
                                                    g.page_size, gid)
                    self.num_cached[rid][gid] = num_full
        return new_pages

    # ---------------------------------------------------------------- release, queries

    def free(self, request: RefRequest) -> None:  # rule 20
        per_group = self.req_pages.pop(request.request_id, [])
        self.num_cached.pop(request.request_id, None)
        ordered = []
        for pages in per_group:
            ordered += reversed(pages)
        self.page_pool.free_pages(ordered)

    def get_page_ids(self, request_id: str) -> list[list[int]]:
        if request_id not in self.req_pages:
            return [[] for _ in self.groups]
        return [list(pages) for pages in self.req_pages[request_id]]

    def get_num_common_prefix_pages(self, request: RefRequest,
                                    num_running_requests: int) -> list[int]:
        if num_running_requests < 1:
            raise ValueError(f"num_running_requests must be >= 1, got {num_running_requests}")
        out = []
        for gid, g in enumerate(self.groups):
            n = 0
            if not g.sliding and request.request_id in self.req_pages:
                for p in self.req_pages[request.request_id][gid]:
                    if self.page_pool.ref[p] != num_running_requests:
                        break
                    n += 1
            out.append(n)
        return out

    def reset_prefix_cache(self) -> bool:
        return self.page_pool.reset_prefix_cache()

    @property
    def usage(self) -> float:
        return self.page_pool.get_usage()

    def take_events(self) -> list[RefEvent]:
        return self.page_pool.take_events()

    def verify(self) -> None:
        self.page_pool.verify()
        holders = [0] * self.page_pool.num_pages
        for per_group in self.req_pages.values():
            for g, pages in zip(self.groups, per_group):
                real_pages = [p for p in pages if p != NULL_PAGE]
                assert len(set(real_pages)) == len(real_pages)
                assert pages[:len(pages) - len(real_pages)] == \
                    [NULL_PAGE] * (len(pages) - len(real_pages))  # null pages form a prefix
                assert g.sliding or len(real_pages) == len(pages)
                for p in real_pages:
                    holders[p] += 1
        # the manager is the pool's only user: every reference belongs to a request
        for p in range(1, self.page_pool.num_pages):
            assert holders[p] == self.page_pool.ref[p], (p, holders[p], self.page_pool.ref[p])
