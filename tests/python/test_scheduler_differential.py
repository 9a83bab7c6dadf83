"""Differential test: the C++ scheduler (pagedkv.Scheduler, through the bindings) against the
reference scheduler of reference_scheduler.py (rules 34-46), driven by the same random
workloads.

Each seed draws a configuration (page size, a tight pool so that preemption is common, budget,
max_num_seqs, chunked prefill on or off, long-prefill threshold, FCFS or PRIORITY, the
whole-sequence check on or off) and a stream of requests (shared system prompts, salts,
stop tokens, min_tokens, ignore_eos, priorities, explicit arrival times, invalid requests),
aborts in every state, and sampled tokens from one seeded RNG fed to both sides. After every
call the test compares everything observable: the step's output (scheduled ids and token
counts in order, page ids, computed counts, preemptions in order, finished ids), the results
and finish reasons, queue sizes, prefix-cache statistics, every live request's pages and the
free-queue order; and it calls the real scheduler's verify(). At the end every request has
finished and every usable page is free on both sides.

The model hashes pages with exact stand-ins (StandInHasher): two pages share a hash exactly
when their content, prefix and salt are equal, as with the real hashes (rule 13).
"""

from __future__ import annotations

import random

import pytest

import pagedkv
from reference_model import RefKVCacheManager, RefRequest, StandInHasher, cdiv
from reference_scheduler import RefSamplingParams, RefScheduler, RefSchedulerConfig

if not hasattr(pagedkv, "Scheduler"):
    pytest.skip("pagedkv.Scheduler is not built in this tree yet", allow_module_level=True)

EOS = 2
STOP = 7
SYSTEM_PROMPTS = [list(range(1000, 1000 + n)) for n in (9, 17, 30)]
PIECES = [list(range(100 * i, 100 * i + n)) for i, n in enumerate((3, 5, 8, 13), start=1)]
TOKENS = [EOS, STOP, 3, 4, 5, 6, 8, 9]  # what the "model" samples


# ---------------------------------------------------------------------------- normalising


def pages(x):
    """Page ids per group as lists, or None."""
    return None if x is None else [list(g) for g in x]


def norm_output(out) -> dict:
    cached = out.scheduled_cached_reqs
    return {
        "new": [(r.req_id, pages(r.page_ids), r.num_computed_tokens)
                for r in out.scheduled_new_reqs],
        "cached": (list(cached.req_ids), set(cached.resumed_req_ids),
                   [pages(p) for p in cached.new_page_ids], list(cached.num_computed_tokens)),
        "num_scheduled_tokens": list(out.num_scheduled_tokens.items()),
        "total": out.total_num_scheduled_tokens,
        "preempted": list(out.preempted_req_ids),
        "finished": set(out.finished_req_ids),
    }


def norm_reason(reason):
    if reason is None:
        return None
    text = str(reason).lower()
    return text.rsplit(".", 1)[-1]  # an enum's repr "FinishReason.stop" -> "stop"


def norm_results(results) -> list:
    """(request id, tokens, finished, reason) of every result carrying a token or a finish."""
    out = []
    for r in results:
        rid = getattr(r, "request_id", None) or getattr(r, "req_id")
        item = (rid, list(r.new_token_ids), bool(r.finished), norm_reason(r.finish_reason))
        if item[1] or item[2]:
            out.append(item)
    return out


def norm_stats(s) -> tuple:
    return (s.requests, s.queries, s.hits, s.resumed_requests, s.resumed_queries,
            s.resumed_hits)


def value(x):
    """A count the bindings may give as a property or as a method."""
    return x() if callable(x) else x


def prefix_stats(scheduler):
    """The real scheduler's prefix-cache statistics of admitted requests (rule 46)."""
    stats = scheduler.stats
    return getattr(stats, "prefix_cache_stats", stats)


def outcome(fn):
    """The call's result, or ("error", exception type name) when it raised."""
    try:
        return fn()
    except Exception as e:  # noqa: BLE001 - compared between the sides
        return ("error", type(e).__name__)


def raised(result) -> bool:
    return isinstance(result, tuple) and len(result) == 2 and result[0] == "error"


# ---------------------------------------------------------------------------- the harness


class Both:
    """The real scheduler and the model over pools of the same shape."""

    def __init__(self, seed: int, num_pages: int, page_size: int, max_model_len: int,
                 **config) -> None:
        self.seed = seed
        self.num_pages = num_pages
        self.page_size = page_size
        self.max_model_len = max_model_len
        self.config = config
        self.kv = pagedkv.KVCacheManager(num_pages=num_pages, page_size=page_size,
                                         max_model_len=max_model_len)
        self.real = pagedkv.Scheduler(
            pagedkv.SchedulerConfig(max_model_len=max_model_len, **config), self.kv)
        self.mgr = RefKVCacheManager(num_pages, page_size, max_model_len)
        self.ref = RefScheduler(RefSchedulerConfig(max_model_len=max_model_len, **config),
                                self.mgr)
        self.hasher = StandInHasher()
        self.step_no = 0
        self.log: list[str] = []

    def where(self, what: str) -> str:
        tail = "\n  ".join(self.log[-12:])
        return f"seed {self.seed} step {self.step_no}: {what}; config {self.config}\n  {tail}"

    def check(self, what: str) -> None:
        self.real.verify()
        self.ref.verify()
        where = self.where(what)
        assert self.kv.page_pool.get_all_free_pages() == \
            self.mgr.page_pool.get_all_free_pages(), where
        assert (value(self.real.num_waiting), value(self.real.num_running),
                value(self.real.has_unfinished_requests)) == \
            (self.ref.num_waiting, self.ref.num_running, self.ref.has_unfinished_requests), where
        assert norm_stats(prefix_stats(self.real)) == norm_stats(self.ref.stats), where
        for e in self.ref.running:
            assert pages(self.kv.get_page_ids(e.request_id)) == \
                self.mgr.get_page_ids(e.request_id), where

    # --- calls on both sides ---

    def add(self, rid: str, prompt: list[int], salt, max_tokens: int, min_tokens: int,
            ignore_eos: bool, stop: list[int], priority: int, arrival_time) -> bool:
        real = outcome(lambda: self.real.add_request(
            pagedkv.Request(rid, prompt, cache_salt=salt),
            pagedkv.SamplingParams(max_tokens=max_tokens, min_tokens=min_tokens,
                                   ignore_eos=ignore_eos, stop_token_ids=stop),
            eos_token_id=EOS, priority=priority, arrival_time=arrival_time))
        ref = outcome(lambda: self.ref.add_request(
            RefRequest(rid, prompt, cache_salt=salt, hasher=self.hasher),
            RefSamplingParams(max_tokens, min_tokens, ignore_eos, stop),
            eos_token_id=EOS, priority=priority, arrival_time=arrival_time))
        what = (f"add {rid} len={len(prompt)} salt={salt} max={max_tokens} min={min_tokens} "
                f"ignore_eos={ignore_eos} stop={stop} prio={priority} arrival={arrival_time}")
        self.log.append(f"{what} -> {ref}")
        # both accept or both refuse (the model raises ValueError; the types are in the message)
        assert raised(real) == raised(ref), self.where(f"{what}: real {real}, model {ref}")
        self.check(what)
        return not raised(ref)

    def abort(self, rid: str) -> None:
        real = outcome(lambda: self.real.abort_request(rid))
        self.ref.abort_request(rid)
        self.log.append(f"abort {rid} -> {real}")
        assert not raised(real), self.where(f"abort {rid}: {real}")
        self.check(f"abort {rid}")

    def schedule(self):
        self.step_no += 1
        real_out = self.real.schedule()
        ref_out = self.ref.schedule()
        real_n, ref_n = norm_output(real_out), norm_output(ref_out)
        self.log.append(f"schedule -> {ref_n['num_scheduled_tokens']} "
                        f"preempted {ref_n['preempted']} finished {sorted(ref_n['finished'])}")
        for key in ref_n:
            assert real_n[key] == ref_n[key], self.where(f"schedule(): {key} differs: "
                                                         f"real {real_n[key]}, "
                                                         f"model {ref_n[key]}")
        self.check("schedule")
        return real_out, ref_out

    def update(self, real_out, ref_out, rng: random.Random) -> int:
        """Samples a token for every scheduled request that produces one (rule 43), feeds the
        same tokens to both sides, compares the results; returns the number finished."""
        sampled = {}
        for rid in ref_out.num_scheduled_tokens:
            e = self.ref.requests.get(rid)
            if e is not None and e.request.num_computed_tokens >= e.request.num_tokens:
                sampled[rid] = [rng.choice(TOKENS)]
        real_res = norm_results(self.real.update_from_output(real_out, sampled))
        ref_res = norm_results(self.ref.update_from_output(ref_out, sampled))
        self.log.append(f"update {sampled} -> {[r for r in ref_res if r[2]]}")
        assert real_res == ref_res, self.where(f"update_from_output: real {real_res}, "
                                               f"model {ref_res}")
        self.check("update_from_output")
        return sum(r[2] for r in ref_res)


# ---------------------------------------------------------------------------- workloads


def random_config(rng: random.Random) -> dict:
    page_size = rng.choice([4, 8, 16])
    max_model_len = rng.choice([64, 128])
    # tight: from half of one longest request (rule 29 refuses longer prompts) to a few of them
    longest = cdiv(max_model_len, page_size)
    num_pages = 1 + rng.choice([longest // 2, longest, longest, longest + 2, longest + 6])
    chunked = rng.random() < 0.75
    max_num_seqs = rng.choice([1, 2, 4, 8, 16])
    budget = (rng.choice([16, 32, 48, 96]) if chunked else
              max_model_len + rng.choice([0, 0, 32]))
    budget = max(budget, max_num_seqs)
    return dict(num_pages=num_pages, page_size=page_size, max_model_len=max_model_len,
                max_num_seqs=max_num_seqs, max_num_batched_tokens=budget,
                enable_chunked_prefill=chunked,
                long_prefill_token_threshold=rng.choice([0, 0, 0, 6, 20]),
                policy=rng.choice(["fcfs", "priority"]),
                reserve_full_prompt=rng.random() < 0.6)


def random_request(rng: random.Random, both: Both, rid: str, arrival: list[float],
                   priority: int) -> tuple:
    """Arguments of Both.add: mostly valid requests, sometimes one that must be refused."""
    mml = both.max_model_len
    usable_tokens = (both.num_pages - 1) * both.page_size
    prompt = list(rng.choice(SYSTEM_PROMPTS)) if rng.random() < 0.6 else []
    for _ in range(rng.randrange(0, 6)):
        prompt += rng.choice(PIECES)
    prompt += [rng.randrange(3, 60) for _ in range(rng.randrange(0, 8))]
    # a valid request fits: the whole of it (prompt + outputs) in the pool, or it never finishes
    prompt = (prompt or [rng.randrange(3, 60)])[:min(mml, usable_tokens) - 1]
    room = min(mml, usable_tokens) - len(prompt)
    max_tokens = rng.randrange(1, min(room, 24) + 1)
    min_tokens = rng.randrange(0, max_tokens + 1) if rng.random() < 0.3 else 0
    if rng.random() < 0.04:  # rules 29, 45 and the sampling parameters: refused
        kind = rng.randrange(6)
        if kind == 0:
            prompt = []
        elif kind == 1:
            prompt = list(range(10, 10 + mml))  # length max_model_len
        elif kind == 2 and usable_tokens < mml - 1:
            prompt = list(range(10, 11 + usable_tokens))  # one token more than the pool holds
        elif kind == 3:
            max_tokens = 0
        elif kind == 4:
            min_tokens = max_tokens + 1
        elif both.ref.requests:
            rid = rng.choice(sorted(both.ref.requests))  # a live id again
    if rng.random() < 0.3:  # explicit arrival times, sometimes out of order
        arrival.append(arrival[-1] + rng.choice([-2.5, 0.5, 1.0]) if arrival else 0.0)
        arrival_time = arrival[-1]
    else:
        arrival_time = None
    return (rid, prompt, rng.choice([None, None, "tenant-b"]), max_tokens, min_tokens,
            rng.random() < 0.15, [STOP] if rng.random() < 0.3 else [], priority,
            arrival_time)


def run(seed: int, num_requests: int, urgency_grows=None, **overrides) -> Both:
    rng = random.Random(seed)
    cfg = {**random_config(rng), **overrides}
    both = Both(seed, **cfg)
    arrival: list[float] = []
    # Half the runs make later requests more urgent, so that in PRIORITY mode a victim often
    # sits before the request that needs pages and was already scheduled (rule 35).
    if urgency_grows is None:
        urgency_grows = rng.random() < 0.5
    added = done = 0
    while done < num_requests:
        while added < num_requests and rng.random() < 0.45:
            priority = (10 - 10 * added // num_requests - rng.randrange(2) if urgency_grows
                        else rng.randrange(3))
            accepted = both.add(*random_request(rng, both, f"r{added}", arrival, priority))
            added += 1
            done += not accepted  # a refused request counts as done
        if rng.random() < 0.04 and both.ref.requests:  # abort in any state
            both.abort(rng.choice(sorted(both.ref.requests)))
            done += 1
        real_out, ref_out = both.schedule()
        if rng.random() < 0.01 and ref_out.num_scheduled_tokens:  # abort mid-step
            both.abort(rng.choice(list(ref_out.num_scheduled_tokens)))
            done += 1
        done += both.update(real_out, ref_out, rng)
        assert both.step_no < 60 * num_requests, both.where("no progress")
    both.schedule()  # reports the last finishes
    assert not both.ref.has_unfinished_requests
    assert value(both.real.num_waiting) == value(both.real.num_running) == 0
    # rule 30: every usable page is free again (check() compared the order after each call)
    assert len(both.kv.page_pool.get_all_free_pages()) == cfg["num_pages"] - 1
    return both


@pytest.mark.parametrize("seed", range(40))
def test_scheduler_matches_reference_model(seed):
    run(seed, 60)


@pytest.mark.parametrize("policy", ["fcfs", "priority"])
def test_long_run_through_the_tightest_pool(policy):
    """Room for one longest request and a little more: preemption on most steps."""
    both = run(1000 + len(policy), 300, num_pages=18, page_size=4, max_model_len=64,
               max_num_seqs=8, max_num_batched_tokens=32, enable_chunked_prefill=True,
               long_prefill_token_threshold=0, policy=policy, reserve_full_prompt=False)
    assert both.step_no > 300


@pytest.mark.parametrize("seed", range(20))
@pytest.mark.parametrize("budget", [16, 24])
def test_priority_victims_scheduled_earlier_give_their_tokens_back(seed, budget):
    """Later requests more urgent and a small budget: a victim already scheduled in the step
    returns its tokens, and a later request's chunk grows by them (rule 35)."""
    run(seed, 100, urgency_grows=True, num_pages=18, page_size=4, max_model_len=64,
        max_num_seqs=8, max_num_batched_tokens=budget, enable_chunked_prefill=True,
        long_prefill_token_threshold=0, policy="priority", reserve_full_prompt=False)


@pytest.mark.parametrize("seed", range(10))
def test_chunked_prefill_off_waits_for_budget_for_a_whole_prompt(seed):
    """A roomy pool and a budget of max_model_len: admission stops at a prompt that does not
    fit the budget left (rule 38)."""
    run(seed, 60, num_pages=49, page_size=8, max_model_len=128, max_num_seqs=8,
        max_num_batched_tokens=128, enable_chunked_prefill=False,
        long_prefill_token_threshold=0, reserve_full_prompt=True)
