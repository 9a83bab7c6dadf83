"""A deliberately simple reference model of the pagedkv scheduler (docs/rules.md rules 34-46).

It sits on top of the reference KV-cache manager of reference_model.py and follows the rules
literally, one block per rule, with plain lists: `running` is a list in admission order and
`waiting` a list whose head is found by a scan (its front in FCFS mode, its smallest
(priority, arrival_time, request_id) in PRIORITY mode). Where the rules are silent it does what
vLLM v1's synchronous scheduler does. test_scheduler_differential.py drives it and the C++
scheduler with the same workloads and compares every step.

Example:
    mgr = RefKVCacheManager(num_pages=64, page_size=16, max_model_len=256)
    sched = RefScheduler(RefSchedulerConfig(max_num_seqs=4, max_num_batched_tokens=64,
                                            max_model_len=256), mgr)
    sched.add_request(RefRequest("a", list(range(40)), hasher=StandInHasher()),
                      RefSamplingParams(max_tokens=3), eos_token_id=2)
    out = sched.schedule()                  # "a" is new, 40 tokens, pages [1, 2, 3]
    sched.update_from_output(out, {"a": [7]})

Decisions the rules leave open (the C++ scheduler makes the same ones):
  - Rule 43 with min_tokens: before min_tokens outputs only max_model_len ends a request.
  - Rule 46: the admission lookup records its statistics into a scratch object; only an
    admitted request's lookup is recorded into the manager's statistics (`stats`).
  - Rule 39 (a) counts pages per group as rule 18 does; only full-attention groups are
    supported, since the rules do not say how a sliding window would shrink that count.
"""

from __future__ import annotations

import enum
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Optional

from reference_model import RefKVCacheManager, RefRequest, RefStats, cdiv


# --------------------------------------------------------------------------------------------
# Configuration and sampling parameters
# --------------------------------------------------------------------------------------------


@dataclass
class RefSchedulerConfig:
    max_num_seqs: int = 32
    max_num_batched_tokens: int = 512
    max_model_len: int = 2048
    enable_chunked_prefill: bool = True
    long_prefill_token_threshold: int = 0  # 0 turns it off
    policy: str = "fcfs"  # "fcfs" or "priority"
    reserve_full_prompt: bool = True  # rule 39 (a)

    def validate(self) -> None:  # rule 45
        if self.max_num_seqs < 1 or self.max_num_batched_tokens < 1 or self.max_model_len < 1:
            raise ValueError("max_num_seqs, max_num_batched_tokens and max_model_len must be >= 1")
        if self.long_prefill_token_threshold < 0:
            raise ValueError(f"long_prefill_token_threshold must be >= 0, "
                             f"got {self.long_prefill_token_threshold}")
        if self.policy not in ("fcfs", "priority"):
            raise ValueError(f"policy must be 'fcfs' or 'priority', got {self.policy!r}")
        if not self.enable_chunked_prefill and self.max_num_batched_tokens < self.max_model_len:
            raise ValueError(f"with chunked prefill off, max_num_batched_tokens "
                             f"({self.max_num_batched_tokens}) must be >= max_model_len "
                             f"({self.max_model_len})")
        if self.max_num_batched_tokens < self.max_num_seqs:
            raise ValueError(f"max_num_batched_tokens ({self.max_num_batched_tokens}) must be "
                             f">= max_num_seqs ({self.max_num_seqs})")


@dataclass
class RefSamplingParams:
    max_tokens: int = 16
    min_tokens: int = 0
    ignore_eos: bool = False
    stop_token_ids: list = field(default_factory=list)

    def validate(self) -> None:
        if self.max_tokens < 1:
            raise ValueError(f"max_tokens must be >= 1, got {self.max_tokens}")
        if not 0 <= self.min_tokens <= self.max_tokens:
            raise ValueError(f"need 0 <= min_tokens ({self.min_tokens}) <= max_tokens "
                             f"({self.max_tokens})")


class Status(enum.Enum):
    WAITING = "waiting"
    RUNNING = "running"
    PREEMPTED = "preempted"
    FINISHED = "finished"


@dataclass
class RefSchedRequest:
    """What the scheduler keeps about one request besides its tokens (in `request`)."""

    request: RefRequest
    params: RefSamplingParams
    eos_token_id: Optional[int]
    priority: int
    arrival_time: float
    status: Status = Status.WAITING
    num_preemptions: int = 0
    finish_reason: Optional[str] = None

    @property
    def request_id(self) -> str:
        return self.request.request_id

    @property
    def num_output_tokens(self) -> int:
        return self.request.num_tokens - self.request.num_prompt_tokens


# --------------------------------------------------------------------------------------------
# The step's output and the per-request results
# --------------------------------------------------------------------------------------------


@dataclass
class RefNewRequestData:
    req_id: str
    page_ids: list  # per group: every page of the request
    num_computed_tokens: int


@dataclass
class RefCachedRequestData:
    req_ids: list = field(default_factory=list)
    resumed_req_ids: set = field(default_factory=set)
    # per request: per group the pages added this step (all pages when resumed), or None
    new_page_ids: list = field(default_factory=list)
    num_computed_tokens: list = field(default_factory=list)


@dataclass
class RefSchedulerOutput:
    scheduled_new_reqs: list
    scheduled_cached_reqs: RefCachedRequestData
    num_scheduled_tokens: OrderedDict  # request id -> n, in output order (rule 41)
    total_num_scheduled_tokens: int
    preempted_req_ids: list  # in preemption order
    finished_req_ids: set  # finished or aborted since the previous step


@dataclass
class RefRequestResult:
    request_id: str
    new_token_ids: list
    finished: bool
    finish_reason: Optional[str]  # "stop", "length" or None


@dataclass
class _Step:
    """The plan of one step while it is being built."""

    budget: int
    num_tokens: OrderedDict = field(default_factory=OrderedDict)  # id -> n, output order
    pages: dict = field(default_factory=dict)  # id -> pages for the output
    computed_before: dict = field(default_factory=dict)  # id -> computed before this step
    running_pass: list = field(default_factory=list)  # ids scheduled by the running pass
    admitted: list = field(default_factory=list)  # ids admitted, in order
    preempted: list = field(default_factory=list)  # ids, in preemption order


# --------------------------------------------------------------------------------------------
# The scheduler
# --------------------------------------------------------------------------------------------


class RefScheduler:
    def __init__(self, config: RefSchedulerConfig, manager: RefKVCacheManager) -> None:
        config.validate()
        if config.max_model_len != manager.max_model_len:
            raise ValueError(f"config max_model_len {config.max_model_len} != manager "
                             f"max_model_len {manager.max_model_len}")
        if any(g.sliding for g in manager.groups):
            raise NotImplementedError("rule 39 (a) is modelled for full-attention groups only")
        self.config = config
        self.manager = manager
        self.requests: dict[str, RefSchedRequest] = {}
        self.waiting: list[RefSchedRequest] = []
        self.running: list[RefSchedRequest] = []
        self.finished_req_ids: set[str] = set()
        self._num_added = 0

    # ---------------------------------------------------------------- queries

    @property
    def num_waiting(self) -> int:
        return len(self.waiting)

    @property
    def num_running(self) -> int:
        return len(self.running)

    @property
    def has_unfinished_requests(self) -> bool:
        return bool(self.waiting or self.running)

    @property
    def stats(self) -> RefStats:
        """Prefix-cache statistics of admitted requests (rule 46), fresh and resumed apart."""
        return self.manager.stats

    # ---------------------------------------------------------------- requests in and out

    def add_request(self, request: RefRequest, sampling_params: RefSamplingParams,
                    eos_token_id: Optional[int] = None, priority: int = 0,
                    arrival_time: Optional[float] = None) -> None:
        # rule 45: 1 <= prompt length < max_model_len
        n = request.num_tokens
        if not 1 <= n < self.config.max_model_len:
            raise ValueError(f"prompt of {n} tokens, need 1 <= length < max_model_len "
                             f"({self.config.max_model_len})")
        # rule 29: a prompt needing more pages than the pool has usable can never run
        pages = sum(cdiv(n, g.page_size) for g in self.manager.groups)
        usable = self.manager.page_pool.num_pages - 1
        if pages > usable:
            raise ValueError(f"prompt of {n} tokens needs {pages} pages, the pool has {usable}")
        if request.request_id in self.requests:
            raise ValueError(f"request {request.request_id} already added")
        if request.num_computed_tokens != 0 or n != request.num_prompt_tokens:
            raise ValueError("a new request has no computed or output tokens")
        sampling_params.validate()
        # rule 45: arrival_time defaults to the order of the add_request calls
        if arrival_time is None:
            arrival_time = float(self._num_added)
        self._num_added += 1
        entry = RefSchedRequest(request, sampling_params, eos_token_id, priority, arrival_time)
        self.requests[request.request_id] = entry
        self.waiting.append(entry)

    def abort_request(self, request_id: str) -> bool:
        """Rule 44: frees the request at once, whatever its state. False if it is unknown
        (never added, or already finished)."""
        entry = self.requests.get(request_id)
        if entry is None:
            return False
        if entry.status == Status.RUNNING:
            self.running.remove(entry)
        else:  # waiting or preempted: it holds no pages, the free below changes nothing
            self.waiting.remove(entry)
        self._finish(entry, "abort")
        return True

    def _finish(self, entry: RefSchedRequest, reason: str) -> None:  # rule 44
        self.manager.free(entry.request)
        entry.status = Status.FINISHED
        entry.finish_reason = reason
        del self.requests[entry.request_id]
        self.finished_req_ids.add(entry.request_id)

    # ---------------------------------------------------------------- one step

    def schedule(self) -> RefSchedulerOutput:
        step = _Step(budget=self.config.max_num_batched_tokens)
        self._running_pass(step)
        if not step.preempted:  # rule 37
            self._admit_waiting(step)
        output = self._make_output(step)
        # rule 41: computed += n for every scheduled request, after the output is made
        for rid, n in step.num_tokens.items():
            self.requests[rid].request.num_computed_tokens += n
        self.finished_req_ids = set()
        assert output.total_num_scheduled_tokens <= self.config.max_num_batched_tokens
        assert len(self.running) <= self.config.max_num_seqs
        return output

    def _running_pass(self, step: _Step) -> None:
        i = 0
        while i < len(self.running) and step.budget > 0:  # rule 34
            entry = self.running[i]
            r = entry.request
            n = r.num_tokens - r.num_computed_tokens
            thr = self.config.long_prefill_token_threshold
            if 0 < thr < n:
                n = thr
            n = min(n, step.budget)
            assert n > 0  # synchronous scheduling: every running request has work

            # rule 35: allocate; on failure preempt a victim and retry, until it succeeds or
            # r itself is the victim
            while True:
                new_pages = self.manager.allocate_slots(r, n)
                if new_pages is not None:
                    break
                victim = self._pick_victim()
                if victim.request_id in step.num_tokens:
                    # PRIORITY only: a victim already scheduled this step gives its tokens back
                    # and leaves the output; it sat before r in `running`
                    step.budget += step.num_tokens.pop(victim.request_id)
                    del step.pages[victim.request_id]
                    del step.computed_before[victim.request_id]
                    step.running_pass.remove(victim.request_id)
                    i -= 1
                self._preempt(victim, step)
                if victim is entry:
                    break
            if new_pages is None:  # r was the victim: the running pass ends for this step
                break

            step.num_tokens[entry.request_id] = n
            step.computed_before[entry.request_id] = r.num_computed_tokens
            # rule 40: only the page ids added this step; None when no group got one
            step.pages[entry.request_id] = new_pages if any(new_pages) else None
            step.running_pass.append(entry.request_id)
            step.budget -= n
            i += 1

    def _pick_victim(self) -> RefSchedRequest:  # rule 35
        if self.config.policy == "fcfs":
            return self.running[-1]
        # the largest (priority, arrival_time); on a tie the first such one in `running`
        return max(self.running, key=lambda e: (e.priority, e.arrival_time))

    def _preempt(self, victim: RefSchedRequest, step: _Step) -> None:  # rule 36
        self.running.remove(victim)
        self.manager.free(victim.request)
        victim.status = Status.PREEMPTED
        victim.request.num_computed_tokens = 0
        victim.num_preemptions += 1
        if self.config.policy == "fcfs":
            self.waiting.insert(0, victim)
        else:
            self.waiting.append(victim)  # the head is found by a scan (rule 37)
        step.preempted.append(victim.request_id)

    def _head_of_waiting(self) -> RefSchedRequest:  # rule 37
        if self.config.policy == "fcfs":
            return self.waiting[0]
        return min(self.waiting, key=lambda e: (e.priority, e.arrival_time, e.request_id))

    def _lookup(self, entry: RefSchedRequest) -> tuple[list[list[int]], int]:
        """Rule 38's prefix lookup; its statistics go to a scratch object (rule 46)."""
        kept = self.manager.stats
        self.manager.stats = RefStats()
        try:
            return self.manager.get_computed_pages(entry.request,
                                                   resumed=entry.num_preemptions > 0)
        finally:
            self.manager.stats = kept

    def _whole_sequence_fits(self, entry: RefSchedRequest, hits: list[list[int]]) -> bool:
        """Rule 39 (a), counting pages as rule 18 does (a free hit page needs a free page)."""
        pool = self.manager.page_pool
        num_tokens = min(entry.request.num_tokens, self.config.max_model_len)
        needed = 0
        for g, group_hits in zip(self.manager.groups, hits):
            needed += cdiv(num_tokens, g.page_size) - len(group_hits)
            needed += sum(1 for p in group_hits if pool.ref_count(p) == 0)
        return needed <= pool.get_num_free_pages()

    def _admit_waiting(self, step: _Step) -> None:
        # rule 37
        while self.waiting and step.budget > 0 and len(self.running) < self.config.max_num_seqs:
            entry = self._head_of_waiting()
            r = entry.request
            assert r.num_computed_tokens == 0

            # rule 38
            hits, hit = self._lookup(entry)
            n = r.num_tokens - hit
            thr = self.config.long_prefill_token_threshold
            if 0 < thr < n:
                n = thr
            if not self.config.enable_chunked_prefill and n > step.budget:
                break
            n = min(n, step.budget)

            # rule 39: (a) the whole sequence fits, (b) the chunk fits (allocate_slots)
            if self.config.reserve_full_prompt and not self._whole_sequence_fits(entry, hits):
                break
            if self.manager.allocate_slots(r, n, hit, hits) is None:
                break

            # rule 46: only an admitted request's lookup counts (rule 22: with caching on)
            if self.manager.enable_caching:
                self.manager.stats.record(r.num_tokens, hit, entry.num_preemptions > 0)

            # rule 40
            self.waiting.remove(entry)
            self.running.append(entry)
            entry.status = Status.RUNNING
            r.num_computed_tokens = hit
            step.num_tokens[entry.request_id] = n
            step.computed_before[entry.request_id] = hit
            step.pages[entry.request_id] = self.manager.get_page_ids(entry.request_id)
            step.admitted.append(entry.request_id)
            step.budget -= n

    def _make_output(self, step: _Step) -> RefSchedulerOutput:
        new_reqs = []
        cached = RefCachedRequestData()

        def add_cached(rid: str) -> None:
            cached.req_ids.append(rid)
            cached.new_page_ids.append(step.pages[rid])
            cached.num_computed_tokens.append(step.computed_before[rid])

        for rid in step.running_pass:
            add_cached(rid)
        for rid in step.admitted:
            entry = self.requests[rid]
            if entry.num_preemptions == 0:  # never scheduled before
                new_reqs.append(RefNewRequestData(rid, step.pages[rid],
                                                  step.computed_before[rid]))
            else:  # resumed after a preemption: all its pages
                add_cached(rid)
                cached.resumed_req_ids.add(rid)
        return RefSchedulerOutput(
            scheduled_new_reqs=new_reqs,
            scheduled_cached_reqs=cached,
            num_scheduled_tokens=OrderedDict(step.num_tokens),
            total_num_scheduled_tokens=sum(step.num_tokens.values()),
            preempted_req_ids=list(step.preempted),
            finished_req_ids=set(self.finished_req_ids))

    # ---------------------------------------------------------------- after the forward pass

    def update_from_output(self, output: RefSchedulerOutput,
                           sampled: dict[str, list[int]]) -> list[RefRequestResult]:
        """Rules 43-44. `sampled` maps a request id to its one sampled token; requests that
        produce none (a partial prefill chunk) may be absent or map to []."""
        results = []
        for rid in output.num_scheduled_tokens:
            entry = self.requests.get(rid)
            if entry is None:  # aborted after this step was scheduled
                continue
            r = entry.request
            tokens = list(sampled.get(rid, []))
            if r.num_computed_tokens < r.num_tokens:  # rule 43: a partial prefill chunk
                if tokens:
                    raise ValueError(f"request {rid} is in prefill and produces no token")
                continue
            if len(tokens) != 1:
                raise ValueError(f"request {rid} needs exactly one token, got {tokens}")
            token = tokens[0]
            r.append_output_token_ids([token])
            reason = self._check_stop(entry, token)
            if reason is not None:
                self.running.remove(entry)
                self._finish(entry, reason)
            results.append(RefRequestResult(rid, [token], reason is not None, reason))
        return results

    def _check_stop(self, entry: RefSchedRequest, token: int) -> Optional[str]:  # rule 43
        p = entry.params
        at_max_len = entry.request.num_tokens >= self.config.max_model_len
        if entry.num_output_tokens < p.min_tokens:
            return "length" if at_max_len else None
        if not p.ignore_eos and entry.eos_token_id is not None and token == entry.eos_token_id:
            return "stop"
        if token in p.stop_token_ids:
            return "stop"
        if at_max_len or entry.num_output_tokens >= p.max_tokens:
            return "length"
        return None

    # ---------------------------------------------------------------- invariants

    def verify(self) -> None:
        self.manager.verify()
        assert len(self.running) <= self.config.max_num_seqs
        assert all(e.status == Status.RUNNING for e in self.running)
        assert all(e.status in (Status.WAITING, Status.PREEMPTED) for e in self.waiting)
        assert len(self.running) + len(self.waiting) == len(self.requests)
        for e in self.waiting:
            assert e.request.num_computed_tokens == 0
            assert self.manager.get_page_ids(e.request_id) == [[] for _ in self.manager.groups]
        for e in self.running:  # every running request was scheduled at least once
            assert 0 < e.request.num_computed_tokens <= e.request.num_tokens
