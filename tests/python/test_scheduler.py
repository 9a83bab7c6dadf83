"""pagedkv.Scheduler and its config, params and outputs through the Python bindings: the API
surface (vLLM's names), the scheduling rules a Python user sees first (34-46), and the Python
exception each error maps to (checking that a failed call changes nothing).
"""

from __future__ import annotations

import gc
import random

import pytest

import pagedkv

PS = 4  # page size of the small scenarios
EOS = 2


def make(num_pages=64, max_model_len=64, page_size=PS, **cfg):
    kv = pagedkv.KVCacheManager(num_pages=num_pages, page_size=page_size,
                                max_model_len=max_model_len)
    args = dict(max_num_seqs=4, max_num_batched_tokens=64, max_model_len=max_model_len)
    args.update(cfg)
    return kv, pagedkv.Scheduler(pagedkv.SchedulerConfig(**args), kv)


def add(sched, rid, n, base=1000, max_tokens=50, **kw):
    sched.add_request(pagedkv.Request(rid, list(range(base, base + n))),
                      pagedkv.SamplingParams(max_tokens=max_tokens,
                                             min_tokens=kw.pop("min_tokens", 0),
                                             stop_token_ids=kw.pop("stop_token_ids", [])),
                      eos_token_id=EOS, **kw)


def sampled_for(sched, out, token=7):
    """One token for every scheduled request whose computed tokens reached its length."""
    tokens = {}
    for rid in out.num_scheduled_tokens:
        seq = sched.get_sequence(rid)
        if seq is not None and seq.num_computed_tokens >= seq.num_tokens:
            tokens[rid] = [token]
    return tokens


def step(sched, token=7):
    out = sched.schedule()
    sched.verify()
    results = sched.update_from_output(out, sampled_for(sched, out, token))
    sched.verify()
    return out, results


def state(sched, kv):
    """Everything observable about a scheduler and its manager."""
    seqs = {rid: (s.status, s.num_tokens, s.num_computed_tokens, s.num_preemptions)
            for rid in sched.running_req_ids + sched.waiting_req_ids
            for s in [sched.get_sequence(rid)]}
    st = sched.stats
    pc = st.prefix_cache_stats
    return (sched.running_req_ids, sched.waiting_req_ids, seqs,
            kv.page_pool.get_all_free_pages(), st.num_steps, st.num_preemptions,
            pc.requests, pc.queries, pc.hits)


# ---------------------------------------------------------------- config and params


def test_config_keeps_its_fields_and_validates_rule_45():
    c = pagedkv.SchedulerConfig(max_num_seqs=32, max_num_batched_tokens=512, max_model_len=2048,
                                enable_chunked_prefill=True, long_prefill_token_threshold=0,
                                policy="fcfs", reserve_full_prompt=True)
    assert (c.max_num_seqs, c.max_num_batched_tokens, c.max_model_len) == (32, 512, 2048)
    assert c.policy == "fcfs" and c.enable_chunked_prefill and c.reserve_full_prompt
    assert "SchedulerConfig" in repr(c)
    with pytest.raises(ValueError, match="max_num_seqs"):
        pagedkv.SchedulerConfig(max_num_seqs=600, max_num_batched_tokens=512, max_model_len=64)
    with pytest.raises(ValueError, match="max_model_len"):
        pagedkv.SchedulerConfig(max_num_batched_tokens=512, max_model_len=2048,
                                enable_chunked_prefill=False)
    with pytest.raises(ValueError, match="policy"):
        pagedkv.SchedulerConfig(max_model_len=64, policy="lifo")
    with pytest.raises(ValueError, match="long_prefill_token_threshold"):
        pagedkv.SchedulerConfig(max_model_len=64, long_prefill_token_threshold=-1)
    c.max_num_seqs = 0
    with pytest.raises(ValueError, match="max_num_seqs"):
        c.validate()


def test_sampling_params_defaults_and_validation():
    p = pagedkv.SamplingParams()
    assert (p.max_tokens, p.min_tokens, p.ignore_eos, p.stop_token_ids) == (16, 0, False, [])
    assert (p.temperature, p.top_k, p.top_p, p.seed, p.logprobs) == (1.0, 0, 1.0, None, None)
    q = pagedkv.SamplingParams(max_tokens=8, min_tokens=2, stop_token_ids=[5], temperature=0.0,
                               top_k=-1, top_p=0.5, seed=3, logprobs=1)
    assert q.stop_token_ids == [5] and q.seed == 3 and q.logprobs == 1
    for bad, field in [(dict(max_tokens=0), "max_tokens"), (dict(min_tokens=17), "min_tokens"),
                       (dict(temperature=-1.0), "temperature"), (dict(top_k=-2), "top_k"),
                       (dict(top_p=0.0), "top_p"), (dict(logprobs=-1), "logprobs"),
                       (dict(stop_token_ids=[-3]), "stop_token_ids")]:
        with pytest.raises(ValueError, match=field):
            pagedkv.SamplingParams(**bad)


def test_scheduler_checks_max_model_len_against_the_manager():
    kv = pagedkv.KVCacheManager(num_pages=16, page_size=4, max_model_len=64)
    with pytest.raises(ValueError, match="max_model_len"):
        pagedkv.Scheduler(pagedkv.SchedulerConfig(max_model_len=128), kv)


def test_scheduler_keeps_its_manager_alive():
    kv, sched = make()
    del kv
    gc.collect()
    add(sched, "r", 6)
    out, _ = step(sched)
    assert out.scheduled_new_reqs[0].page_ids == [[1, 2]]


# ---------------------------------------------------------------- outputs


def test_outputs_carry_vllm_fields_in_output_order():
    kv, sched = make()
    add(sched, "A", 6)
    out, results = step(sched)
    assert out.step == 1
    assert out.num_scheduled_tokens == {"A": 6}
    assert out.total_num_scheduled_tokens == 6
    (new,) = out.scheduled_new_reqs
    assert (new.req_id, new.prompt_token_ids, new.page_ids, new.num_computed_tokens) == \
        ("A", list(range(1000, 1006)), [[1, 2]], 0)
    assert len(out.scheduled_cached_reqs) == 0
    assert [(r.request_id, r.new_token_ids, r.finished, r.finish_reason) for r in results] == \
        [("A", [7], False, None)]

    add(sched, "B", 5, base=2000)
    out, _ = step(sched)  # A's 7th token fits its pages; B admitted after the running pass
    assert list(out.num_scheduled_tokens.items()) == [("A", 1), ("B", 5)]
    cached = out.scheduled_cached_reqs
    assert cached.req_ids == ["A"]
    assert cached.new_page_ids == [None]
    assert cached.num_computed_tokens == [6]   # before the step
    assert cached.resumed == [False] and cached.resumed_req_ids == set()
    assert [d.req_id for d in out.scheduled_new_reqs] == ["B"]

    step(sched)
    out, _ = step(sched)  # A's 9th token needs a third page
    assert out.scheduled_cached_reqs.new_page_ids[0] == [[5]]
    assert sched.get_sequence("A").page_ids == [[1, 2, 5]]


def test_update_accepts_tokens_in_output_order_too():
    kv, sched = make()
    add(sched, "A", 4)
    add(sched, "B", 4, base=2000)
    out = sched.schedule()
    results = sched.update_from_output(out, [[11], [12]])
    assert [(r.request_id, r.new_token_ids) for r in results] == [("A", [11]), ("B", [12])]
    assert sched.get_sequence("B").output_token_ids == [12]


# ---------------------------------------------------------------- rules


def test_identical_prompts_in_one_step_share_full_pages():  # rule 42
    kv, sched = make()
    add(sched, "X", 10)
    add(sched, "Y", 10)
    out, _ = step(sched)
    assert out.num_scheduled_tokens == {"X": 10, "Y": 2}
    x, y = out.scheduled_new_reqs
    assert x.page_ids == [[1, 2, 3]] and y.page_ids == [[1, 2, 4]]
    assert y.num_computed_tokens == 8
    pc = sched.stats.prefix_cache_stats
    assert (pc.requests, pc.queries, pc.hits) == (2, 20, 8)


def test_preempted_request_resumes_on_its_own_pages():  # rules 35, 36, 38, 40
    kv, sched = make(num_pages=6)                       # 5 usable pages
    add(sched, "A", 8, base=100, max_tokens=2)
    add(sched, "B", 8, base=200)
    step(sched)
    out, results = step(sched)                         # B preempts itself; A finishes
    assert out.preempted_req_ids == ["B"]
    assert sched.get_sequence("B").status == "preempted"
    assert [r.finish_reason for r in results] == ["length"]
    out, _ = step(sched)
    assert out.finished_req_ids == ["A"]
    cached = out.scheduled_cached_reqs
    assert cached.req_ids == ["B"] and cached.resumed_req_ids == {"B"}
    assert cached.new_page_ids == [[[3, 4, 5]]]         # all its pages
    assert cached.num_computed_tokens == [8]           # hit its own two full pages
    assert sched.stats.prefix_cache_stats.resumed_hits == 8
    assert sched.stats.num_preemptions == 1


def test_priority_victim_scheduled_earlier_gives_its_tokens_back():  # rule 35
    kv, sched = make(num_pages=6, policy="priority")
    add(sched, "A", 7, base=100, priority=5)
    step(sched)
    add(sched, "B", 7, base=200, priority=0)
    step(sched)
    step(sched)
    out, _ = step(sched)
    assert out.num_scheduled_tokens == {"B": 1}
    assert out.preempted_req_ids == ["A"]
    assert sched.running_req_ids == ["B"] and sched.waiting_req_ids == ["A"]


def test_chunked_prefill_off_stops_admission_at_an_over_budget_prompt():  # rule 38
    kv, sched = make(max_model_len=32, max_num_batched_tokens=32, enable_chunked_prefill=False)
    add(sched, "A", 20, base=100)
    add(sched, "B", 20, base=200)
    add(sched, "C", 4, base=300)
    out, _ = step(sched)
    assert out.num_scheduled_tokens == {"A": 20}
    out, _ = step(sched)
    assert out.num_scheduled_tokens == {"A": 1, "B": 20, "C": 4}


def test_stop_checks_follow_rule_43():
    kv, sched = make(max_model_len=16)
    add(sched, "eos", 4, base=100, min_tokens=2)
    add(sched, "stop", 4, base=200, stop_token_ids=[EOS + 1])
    add(sched, "len", 13, base=300)
    out = sched.schedule()
    results = sched.update_from_output(out, {"eos": [EOS], "stop": [9], "len": [9]})
    assert {r.request_id: r.finished for r in results} == {"eos": False, "stop": False, "len": False}
    out = sched.schedule()
    results = sched.update_from_output(out, {"eos": [EOS], "stop": [EOS + 1], "len": [9]})
    # "eos" has 2 outputs now (min_tokens reached); "len" has 15 tokens
    assert [(r.request_id, r.finish_reason) for r in results] == \
        [("eos", "stop"), ("stop", "stop"), ("len", None)]
    assert results[1].stop_reason == EOS + 1
    _, results = step(sched)                          # "len" reaches 16 = max_model_len
    assert [(r.request_id, r.finish_reason) for r in results] == [("len", "length")]
    assert sched.schedule().finished_req_ids == ["len"]


def test_abort_in_each_state():  # rule 44
    kv, sched = make(num_pages=5)                      # 4 usable pages
    add(sched, "R", 15, base=100)
    add(sched, "W", 4, base=200)
    step(sched)
    assert sched.running_req_ids == ["R"] and sched.waiting_req_ids == ["W"]
    assert sched.abort_request("W") and not sched.abort_request("W")
    assert not sched.abort_request("unknown")
    assert sched.abort_request("R")
    assert kv.page_pool.get_num_free_pages() == 4
    out = sched.schedule()
    assert out.finished_req_ids == ["W", "R"]
    sched.update_from_output(out, {})
    add(sched, "A", 8, base=300)
    add(sched, "B", 8, base=400)
    step(sched)
    out, _ = step(sched)
    assert out.preempted_req_ids == ["B"]
    assert sched.abort_request("B")                    # preempted
    out = sched.schedule()
    assert sched.abort_request("A")                    # between schedule and update
    assert sched.update_from_output(out, {"A": [7]}) == []
    sched.verify()
    assert not sched.has_unfinished_requests()


# ---------------------------------------------------------------- errors


def test_bad_calls_raise_their_python_error_and_change_nothing():
    kv, sched = make(num_pages=9)                      # 8 usable pages hold 32 tokens
    add(sched, "run", 20, base=100)
    add(sched, "wait", 24, base=200)
    step(sched)
    before = state(sched, kv)
    with pytest.raises(ValueError, match="already live"):
        add(sched, "run", 4)
    with pytest.raises(ValueError, match="max_model_len"):
        add(sched, "new", 64)
    with pytest.raises(ValueError, match="max_tokens"):
        add(sched, "new", 4, max_tokens=0)
    with pytest.raises(pagedkv.CapacityError):         # rule 29
        add(sched, "new", 33)
    with pytest.raises(ValueError):
        sched.add_request(pagedkv.Request("new", [1, 2], hash_algorithm="sha256"),
                          pagedkv.SamplingParams())
    assert state(sched, kv) == before
    out = sched.schedule()
    with pytest.raises(RuntimeError, match="awaits update_from_output"):
        sched.schedule()
    with pytest.raises(ValueError, match="exactly 1"):
        sched.update_from_output(out, {"run": []})
    with pytest.raises(ValueError, match="did not schedule"):
        sched.update_from_output(out, {"run": [7], "ghost": [7]})
    sched.update_from_output(out, {"run": [7]})
    with pytest.raises(RuntimeError):
        sched.update_from_output(out, {"run": [7]})   # applied already
    sched.verify()


# ---------------------------------------------------------------- progress and API docs


@pytest.mark.parametrize("policy", ["fcfs", "priority"])
def test_random_requests_through_a_tight_pool_all_finish(policy):  # rules 30, 41
    rng = random.Random(5)
    kv, sched = make(num_pages=25, policy=policy, max_num_seqs=6, max_num_batched_tokens=24)
    pending = 300
    added = 0
    for _ in range(20000):
        while added < pending and sched.num_waiting() < 8 and rng.random() < 0.5:
            add(sched, f"r{added}", rng.randint(1, 40), base=rng.choice([0, 5000 + added * 64]),
                max_tokens=rng.randint(1, 16), priority=rng.randint(0, 3))
            added += 1
        out = sched.schedule()
        sched.verify()
        assert out.total_num_scheduled_tokens <= 24
        assert sched.num_running() <= 6
        tokens = {rid: [rng.randint(0, 30)] for rid in sampled_for(sched, out)}
        sched.update_from_output(out, tokens)
        sched.verify()
        if added == pending and not sched.has_unfinished_requests():
            break
    assert not sched.has_unfinished_requests()
    assert kv.page_pool.get_num_free_pages() == 24
    assert sched.stats.num_preemptions > 0


def test_every_binding_has_a_docstring():
    for cls in [pagedkv.Scheduler, pagedkv.SchedulerConfig, pagedkv.SamplingParams,
                pagedkv.SchedulerOutput, pagedkv.NewRequestData, pagedkv.CachedRequestData,
                pagedkv.EngineCoreOutput, pagedkv.Sequence, pagedkv.SchedulerStats]:
        assert cls.__doc__, cls
        for name, member in vars(cls).items():
            if name.startswith("_") and name != "__init__":
                continue
            doc = getattr(member, "__doc__", None)
            assert doc and doc.strip(), f"{cls.__name__}.{name} has no docstring"
