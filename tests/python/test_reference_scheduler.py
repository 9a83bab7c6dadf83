"""Tests of the reference scheduler itself (no pagedkv needed): each checks one rule of
docs/rules.md (34-46) on the model, so that the differential test compares the C++ scheduler
against something known to follow the rules.

Most scenarios use page size 4 and pools of a few pages, so that every page is accounted for.
"""

import random

import pytest

from reference_model import RefKVCacheManager, RefRequest, StandInHasher
from reference_scheduler import (
    RefSamplingParams,
    RefScheduler,
    RefSchedulerConfig,
    Status,
)

PS = 4
EOS = 2
TOKEN = 5  # a token that stops nothing


class Harness:
    """A scheduler over a small pool, plus helpers to add requests and run steps."""

    def __init__(self, num_pages: int, max_model_len: int = 64, **config) -> None:
        config.setdefault("max_num_seqs", 8)
        config.setdefault("max_num_batched_tokens", 64)
        self.hasher = StandInHasher()
        self.mgr = RefKVCacheManager(num_pages, PS, max_model_len)
        self.sched = RefScheduler(RefSchedulerConfig(max_model_len=max_model_len, **config),
                                  self.mgr)

    def add(self, rid: str, prompt, max_tokens: int = 16, min_tokens: int = 0,
            ignore_eos: bool = False, stop=(), priority: int = 0, salt=None) -> None:
        self.sched.add_request(RefRequest(rid, list(prompt), cache_salt=salt, hasher=self.hasher),
                               RefSamplingParams(max_tokens, min_tokens, ignore_eos, list(stop)),
                               eos_token_id=EOS, priority=priority)

    def producers(self, out) -> list[str]:
        """The scheduled requests that produce a token this step (rule 43)."""
        return [rid for rid in out.num_scheduled_tokens
                if self.req(rid).num_computed_tokens >= self.req(rid).num_tokens]

    def step(self, tokens=None):
        """schedule() + update_from_output(), every producer sampling TOKEN unless `tokens`
        says otherwise; returns (output, results by id)."""
        out = self.sched.schedule()
        self.sched.verify()
        sampled = {rid: [(tokens or {}).get(rid, TOKEN)] for rid in self.producers(out)}
        results = self.sched.update_from_output(out, sampled)
        self.sched.verify()
        return out, {r.request_id: r for r in results}

    def req(self, rid: str) -> RefRequest:
        return self.sched.requests[rid].request

    def pages(self, rid: str) -> list[int]:
        return self.mgr.get_page_ids(rid)[0]

    def free(self) -> list[int]:
        return self.mgr.page_pool.get_all_free_pages()


def prompt(start: int, n: int) -> list[int]:
    """n distinct tokens that share nothing with other starts (and avoid EOS)."""
    return list(range(start * 1000 + 10, start * 1000 + 10 + n))


# ---------------------------------------------------------------------------- running pass


def test_decoding_requests_get_one_token_and_prefill_a_chunk():  # rule 34
    h = Harness(64, long_prefill_token_threshold=8)
    h.add("a", prompt(1, 6))
    h.add("b", prompt(2, 20))
    out, _ = h.step()
    assert list(out.num_scheduled_tokens.items()) == [("a", 6), ("b", 8)]
    out, _ = h.step()
    assert list(out.num_scheduled_tokens.items()) == [("a", 1), ("b", 8)]
    out, _ = h.step()
    assert list(out.num_scheduled_tokens.items()) == [("a", 1), ("b", 4)]


def test_running_pass_stops_when_the_budget_runs_out_without_preempting():  # rule 34
    h = Harness(64, max_num_seqs=4, max_num_batched_tokens=16)
    h.add("a", prompt(1, 16))
    h.add("b", prompt(2, 16))
    out, _ = h.step()
    assert list(out.num_scheduled_tokens.items()) == [("a", 16)]  # budget 0: b waits
    out, _ = h.step()
    assert list(out.num_scheduled_tokens.items()) == [("a", 1), ("b", 15)]
    out, _ = h.step()
    # b's remaining token and a's decode both fit; nothing was preempted on the way
    assert list(out.num_scheduled_tokens.items()) == [("a", 1), ("b", 1)]
    assert out.preempted_req_ids == []


def test_fcfs_victims_are_taken_from_the_end_and_self_preemption_ends_the_pass():  # rules 35-36
    # 5 usable pages; a holds 2, b 2 (first chunk of 8), c 1; b's next chunk needs 2 more.
    h = Harness(6, long_prefill_token_threshold=8, reserve_full_prompt=False)
    h.add("a", prompt(1, 6))
    h.add("b", prompt(2, 16))
    h.add("c", prompt(3, 4))
    out, _ = h.step()
    assert list(out.num_scheduled_tokens.items()) == [("a", 6), ("b", 8), ("c", 4)]
    assert h.free() == []
    c_pages = h.pages("c")
    out, _ = h.step()
    # b fails, c (last) is preempted, b still fails, b is its own victim: the pass ends
    assert out.preempted_req_ids == ["c", "b"]
    assert list(out.num_scheduled_tokens.items()) == [("a", 1)]
    assert out.scheduled_new_reqs == [] and out.scheduled_cached_reqs.req_ids == ["a"]
    # victims keep their original relative order at the front of `waiting` (rule 36)
    assert [e.request_id for e in h.sched.waiting] == ["b", "c"]
    for rid in ("b", "c"):
        e = h.sched.requests[rid]
        assert e.status == Status.PREEMPTED and e.num_preemptions == 1
        assert e.request.num_computed_tokens == 0 and h.pages(rid) == []
    assert h.req("c").num_tokens == 5  # c keeps its output token
    assert h.free()[0] == c_pages[0]


def test_priority_self_preemption_ends_the_running_pass():  # rule 35
    h = Harness(5, policy="priority")
    h.add("a", prompt(1, 7), priority=5)
    h.step()
    h.add("b", prompt(2, 8), priority=0)  # more urgent, but admitted after a
    out, _ = h.step()
    assert list(out.num_scheduled_tokens) == ["a", "b"] and h.free() == []
    out, _ = h.step()
    # a needs a third page; the least urgent running request is a itself: b is not reached
    # even though the budget is not spent
    assert out.preempted_req_ids == ["a"]
    assert list(out.num_scheduled_tokens.items()) == []
    assert [e.request_id for e in h.sched.running] == ["b"]
    out, _ = h.step()
    assert list(out.num_scheduled_tokens.items()) == [("b", 1)]


def test_priority_victim_already_scheduled_gives_its_tokens_back():  # rule 35
    # 8 usable pages. a (least urgent) is admitted first and decodes; b, c, d come later.
    h = Harness(9, policy="priority", max_num_seqs=4, max_num_batched_tokens=12,
                reserve_full_prompt=False)
    h.add("a", prompt(1, 6), priority=9)
    h.step()
    h.add("b", prompt(2, 4), priority=0)
    h.add("c", prompt(3, 5), priority=1)
    h.add("d", prompt(4, 12), priority=2)
    out, _ = h.step()
    assert list(out.num_scheduled_tokens.items()) == [("a", 1), ("b", 4), ("c", 5), ("d", 2)]
    assert h.free() == [7, 8]
    out, _ = h.step()
    # a (1 token) and b, c are scheduled; d's chunk of 9 needs 2 pages, 1 is free: the victim
    # is a, already scheduled, so it leaves the output and its token goes back to the budget
    assert out.preempted_req_ids == ["a"]
    assert list(out.num_scheduled_tokens.items()) == [("b", 1), ("c", 1), ("d", 9)]
    assert out.total_num_scheduled_tokens == 11
    cached = out.scheduled_cached_reqs
    assert cached.req_ids == ["b", "c", "d"]
    assert cached.new_page_ids == [[[7]], None, [[8, 2]]]  # a's pages went back (2, 1)
    assert h.sched.requests["a"].status == Status.PREEMPTED and h.pages("a") == []
    assert [e.request_id for e in h.sched.running] == ["b", "c", "d"]


def test_preempted_step_admits_nothing():  # rule 37
    h = Harness(6, long_prefill_token_threshold=8, reserve_full_prompt=False)
    h.add("a", prompt(1, 6))
    h.add("b", prompt(2, 16))
    h.add("c", prompt(3, 4))
    h.step()
    out, _ = h.step()
    assert out.preempted_req_ids and not out.scheduled_new_reqs
    assert not out.scheduled_cached_reqs.resumed_req_ids


# ---------------------------------------------------------------------------- admission


def test_two_identical_prompts_in_one_step_share_pages():  # rules 19, 38, 42
    h = Harness(16)
    h.add("a", prompt(1, 10))
    h.add("b", prompt(1, 10))
    out, _ = h.step()
    (a, b) = out.scheduled_new_reqs
    assert (a.req_id, a.num_computed_tokens) == ("a", 0)
    assert (b.req_id, b.num_computed_tokens) == ("b", 8)  # 2 of a's pages, written this step
    assert b.page_ids[0][:2] == a.page_ids[0][:2] and b.page_ids[0][2] != a.page_ids[0][2]
    assert list(out.num_scheduled_tokens.items()) == [("a", 10), ("b", 2)]
    st = h.sched.stats
    assert (st.requests, st.queries, st.hits) == (2, 20, 8)


def test_resumed_request_rehits_its_own_pages():  # rules 36, 38, 40
    h = Harness(5)
    h.add("a", prompt(1, 8), max_tokens=2)
    h.add("b", prompt(2, 7))
    out, _ = h.step()
    assert [r.page_ids for r in out.scheduled_new_reqs] == [[[1, 2]], [[3, 4]]]
    out, results = h.step()
    # a needs a third page: b (last) is preempted; its full page 3 keeps its hash
    assert out.preempted_req_ids == ["b"] and out.scheduled_cached_reqs.new_page_ids == [[[4]]]
    assert results["a"].finish_reason == "length"  # and a is freed at once (rule 44)
    assert h.free() == [3, 4, 2, 1]
    out, _ = h.step()
    assert out.finished_req_ids == {"a"}
    # b resumes with 8 tokens (7 prompt + 1 output) and hits its own page 3
    assert out.scheduled_new_reqs == []
    cached = out.scheduled_cached_reqs
    assert cached.req_ids == ["b"] and cached.resumed_req_ids == {"b"}
    assert cached.num_computed_tokens == [4]
    assert cached.new_page_ids == [[[3, 4]]]  # all its pages
    assert list(out.num_scheduled_tokens.items()) == [("b", 4)]
    st = h.sched.stats
    assert (st.resumed_requests, st.resumed_queries, st.resumed_hits) == (1, 8, 4)
    assert (st.requests, st.queries, st.hits) == (2, 15, 0)


def test_chunked_prefill_off_stops_admission_at_an_over_budget_prompt():  # rules 38, 46
    h = Harness(64, max_model_len=64, enable_chunked_prefill=False, max_num_batched_tokens=64)
    h.add("a", prompt(1, 10))
    h.add("b", prompt(2, 60))
    h.add("c", prompt(3, 5))  # would fit, but does not overtake b
    out, _ = h.step()
    assert list(out.num_scheduled_tokens.items()) == [("a", 10)]
    assert h.sched.stats.requests == 1  # b's lookup did not count (rule 46)
    out, _ = h.step()
    assert list(out.num_scheduled_tokens.items()) == [("a", 1), ("b", 60)]
    assert h.sched.stats.requests == 2


def test_chunked_prefill_on_splits_the_prompt_over_the_budget():  # rules 26, 38
    h = Harness(64, max_num_batched_tokens=16)
    h.add("a", prompt(1, 10))
    h.add("b", prompt(2, 30))
    out, _ = h.step()
    assert list(out.num_scheduled_tokens.items()) == [("a", 10), ("b", 6)]
    out, results = h.step()
    assert list(out.num_scheduled_tokens.items()) == [("a", 1), ("b", 15)]
    assert set(results) == {"a"}  # b's partial chunk produces nothing (rule 43)


def test_whole_sequence_check_blocks_admission_and_can_be_turned_off():  # rule 39
    for reserve, admitted in ((True, ["a"]), (False, ["a", "b"])):
        # 6 usable pages; a takes 1 for its first chunk, b needs 6 as a whole, 1 for its chunk
        h = Harness(7, long_prefill_token_threshold=4, reserve_full_prompt=reserve)
        h.add("a", prompt(1, 20))
        h.add("b", prompt(2, 24))
        out, _ = h.step()
        assert list(out.num_scheduled_tokens) == admitted


def test_waiting_request_never_preempts_and_later_ones_do_not_overtake():  # rule 39
    h = Harness(5)
    h.add("a", prompt(1, 12))  # 3 of 4 usable pages
    h.add("b", prompt(2, 8))  # needs 2: does not fit
    h.add("c", prompt(3, 2))  # would fit
    out, _ = h.step()
    assert list(out.num_scheduled_tokens) == ["a"] and out.preempted_req_ids == []


def test_max_num_seqs_bounds_admission():  # rule 37
    h = Harness(64, max_num_seqs=2)
    for i in range(4):
        h.add(f"r{i}", prompt(i, 3))
    out, _ = h.step()
    assert list(out.num_scheduled_tokens) == ["r0", "r1"]


def test_priority_head_is_smallest_priority_then_arrival_then_id():  # rule 37
    h = Harness(64, policy="priority", max_num_seqs=1)
    for rid, priority, arrival in (("late", 1, 0.0), ("y", 0, 5.0), ("x", 0, 5.0),
                                   ("first", 0, 1.0)):
        h.sched.add_request(RefRequest(rid, prompt(len(rid), 3), hasher=h.hasher),
                            RefSamplingParams(max_tokens=1), priority=priority,
                            arrival_time=arrival)
    order = []
    while h.sched.has_unfinished_requests:
        out, _ = h.step()
        order += list(out.num_scheduled_tokens)
    assert order == ["first", "x", "y", "late"]


# ---------------------------------------------------------------------------- stop checks


def test_eos_before_min_tokens_is_ignored():  # rule 43
    h = Harness(64)
    h.add("a", prompt(1, 3), min_tokens=2, max_tokens=8)
    _, res = h.step({"a": EOS})
    assert not res["a"].finished
    _, res = h.step({"a": EOS})
    assert (res["a"].finished, res["a"].finish_reason) == (True, "stop")


def test_ignore_eos_and_stop_tokens():  # rule 43
    h = Harness(64)
    h.add("a", prompt(1, 3), ignore_eos=True, stop=[7], max_tokens=8)
    _, res = h.step({"a": EOS})
    assert not res["a"].finished
    _, res = h.step({"a": 7})
    assert res["a"].finish_reason == "stop"
    assert h.sched.requests == {} and len(h.free()) == 63


def test_stop_token_before_min_tokens_is_ignored():  # rule 43
    h = Harness(64)
    h.add("a", prompt(1, 3), stop=[7], min_tokens=1, max_tokens=8)
    _, res = h.step({"a": 7})
    assert res["a"].finish_reason == "stop"  # the first output already reaches min_tokens
    h.add("b", prompt(2, 3), stop=[7], min_tokens=2, max_tokens=8)
    _, res = h.step({"b": 7})
    assert not res["b"].finished


def test_length_by_max_tokens_and_by_max_model_len():  # rule 43
    h = Harness(64, max_model_len=16)
    h.add("a", prompt(1, 3), max_tokens=2)
    h.add("b", prompt(2, 14), max_tokens=8, min_tokens=8)  # max_model_len wins over min_tokens
    _, res = h.step()
    assert not res["a"].finished and not res["b"].finished
    _, res = h.step()
    assert res["a"].finish_reason == "length" and res["b"].finish_reason == "length"
    out, _ = h.step()
    assert out.finished_req_ids == {"a", "b"} and out.num_scheduled_tokens == {}


def test_eos_wins_over_length_on_the_last_token():  # rule 43 order
    h = Harness(64)
    h.add("a", prompt(1, 3), max_tokens=1)
    _, res = h.step({"a": EOS})
    assert res["a"].finish_reason == "stop"


def test_finished_requests_are_freed_in_output_order():  # rule 44
    h = Harness(16)
    h.add("a", prompt(1, 6), max_tokens=1)
    h.add("b", prompt(2, 6), max_tokens=1)
    out, _ = h.step()
    a, b = (r.page_ids[0] for r in out.scheduled_new_reqs)
    assert h.free()[-4:] == list(reversed(a)) + list(reversed(b))
    assert h.sched.running == []


# ---------------------------------------------------------------------------- abort


def test_abort_waiting_running_and_preempted_requests_frees_at_once():  # rule 44
    h = Harness(6, long_prefill_token_threshold=8, reserve_full_prompt=False)
    h.add("a", prompt(1, 6))
    h.add("b", prompt(2, 16))
    h.add("c", prompt(3, 4))
    h.add("w", prompt(4, 4))  # waits behind a full pool
    h.step()
    h.step()  # c and b are preempted
    assert h.sched.requests["b"].status == Status.PREEMPTED
    free_before = len(h.free())
    assert h.sched.abort_request("b") and h.sched.abort_request("w")
    assert len(h.free()) == free_before  # neither holds pages
    a_pages = h.pages("a")
    assert h.sched.abort_request("a")  # running: its pages go back at once, in reverse
    assert h.free()[-2:] == list(reversed(a_pages))
    assert not h.sched.abort_request("a")  # already gone
    h.sched.verify()
    out, _ = h.step()
    assert out.finished_req_ids == {"a", "b", "w"}
    assert list(out.scheduled_cached_reqs.resumed_req_ids) == ["c"]
    assert h.sched.num_running == 1 and h.sched.num_waiting == 0


def test_abort_after_schedule_skips_the_request_in_update():  # rule 44
    h = Harness(16)
    h.add("a", prompt(1, 4))
    out = h.sched.schedule()
    h.sched.abort_request("a")
    assert h.sched.update_from_output(out, {"a": [TOKEN]}) == []
    assert len(h.free()) == 15


# ---------------------------------------------------------------------------- validation


def test_validation():  # rules 29, 45
    with pytest.raises(ValueError):
        Harness(64, max_model_len=128, enable_chunked_prefill=False, max_num_batched_tokens=64)
    with pytest.raises(ValueError):
        Harness(64, max_num_seqs=8, max_num_batched_tokens=4)
    with pytest.raises(ValueError):
        Harness(64, policy="lifo")
    h = Harness(5, max_model_len=64)
    for bad in ([], prompt(1, 64)):
        with pytest.raises(ValueError):
            h.add("x", bad)
    with pytest.raises(ValueError):
        h.add("x", prompt(1, 17))  # 5 pages, 4 usable (rule 29)
    for kw in (dict(max_tokens=0), dict(max_tokens=2, min_tokens=3),
               dict(max_tokens=2, min_tokens=-1)):
        with pytest.raises(ValueError):
            h.add("x", prompt(1, 3), **kw)
    h.add("x", prompt(1, 16))
    with pytest.raises(ValueError):
        h.add("x", prompt(1, 3))  # duplicate id
    assert h.sched.num_waiting == 1


# ---------------------------------------------------------------------------- random runs


def random_run(seed: int, num_requests: int) -> None:
    """Hundreds of random requests through a tight pool: invariants after every step, every
    request finishes, and every usable page is free at the end (rule 30)."""
    rng = random.Random(seed)
    ps = PS
    num_pages = rng.choice([9, 13, 24])
    max_model_len = rng.choice([32, 64])
    chunked = rng.random() < 0.7
    budget = rng.choice([16, 24, 64]) if chunked else max_model_len + rng.choice([0, 16])
    config = dict(max_num_seqs=rng.choice([2, 4, 8]), max_num_batched_tokens=budget,
                  enable_chunked_prefill=chunked,
                  long_prefill_token_threshold=rng.choice([0, 0, 5, 12]),
                  policy=rng.choice(["fcfs", "priority"]),
                  reserve_full_prompt=rng.random() < 0.7)
    h = Harness(num_pages, max_model_len, **config)
    usable_tokens = (num_pages - 1) * ps
    systems = [prompt(900 + i, rng.randrange(4, 12)) for i in range(3)]
    added = finished = steps = 0
    while finished < num_requests:
        while added < num_requests and rng.random() < 0.4:
            p = list(rng.choice(systems)) if rng.random() < 0.6 else []
            p += [rng.randrange(3, 40) for _ in range(rng.randrange(1, 20))]
            p = p[:max_model_len - 1]
            limit = min(max_model_len, usable_tokens) - len(p)
            if limit < 1:
                continue
            max_tokens = rng.randrange(1, min(limit, 12) + 1)
            h.add(f"r{added}", p, max_tokens=max_tokens,
                  min_tokens=rng.randrange(0, max_tokens + 1) if rng.random() < 0.3 else 0,
                  ignore_eos=rng.random() < 0.2, stop=[7] if rng.random() < 0.3 else [],
                  priority=rng.randrange(3), salt=rng.choice([None, "s"]))
            added += 1
        if added and rng.random() < 0.02:
            live = sorted(h.sched.requests)
            if live:
                h.sched.abort_request(rng.choice(live))
                finished += 1
        out = h.sched.schedule()
        h.sched.verify()
        assert sum(out.num_scheduled_tokens.values()) == out.total_num_scheduled_tokens
        assert out.total_num_scheduled_tokens <= budget
        assert h.sched.num_running <= config["max_num_seqs"]
        sampled = {rid: [rng.choice([EOS, 7, 3, 4, 5, 6, 8])] for rid in h.producers(out)}
        results = h.sched.update_from_output(out, sampled)
        finished += sum(r.finished for r in results)
        h.sched.verify()
        steps += 1
        assert steps < 40 * num_requests, "no progress"
    assert not h.sched.has_unfinished_requests
    assert len(h.free()) == num_pages - 1


@pytest.mark.parametrize("seed", range(12))
def test_random_requests_all_finish_and_free_every_page(seed):  # rules 30, 41
    random_run(seed, 200)
