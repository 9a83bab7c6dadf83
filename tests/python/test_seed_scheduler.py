"""pagedkv.InferenceScheduler (seed 002) and its types through the Python bindings.

The seed's scenarios with its names, preemption where the seed raised, the Python exception
each error maps to (a failed call changes nothing), and a random driver loop that ends with
every page free.
"""

from __future__ import annotations

import random

import numpy as np
import pytest

import pagedkv

PS = 4


def make(num_pages=32, batch_size=4, pages_per_seq=8, resume_chunk_size=8):
    mgr = pagedkv.HBMPageManager(num_pages, PS)
    sched = pagedkv.InferenceScheduler(mgr, batch_size, pages_per_seq, resume_chunk_size)
    return mgr, sched, pagedkv.ActiveSequenceBatch(batch_size)


def decode_task(mgr, sched, rid, position):
    """A task whose prefill is done: `position` tokens on cdiv(position, PS) fresh pages."""
    pages = mgr.alloc_hbm_pages(-(-position // PS))
    table = pages + [0] * (sched.num_pages_per_sequence - len(pages))
    return pagedkv.GenerationStepTask(rid, position, table, 900 + position,
                                      list(range(100, 100 + position)))


def snapshot(mgr, sched, batch):
    return (mgr.num_free_pages, [r.id for r in sched.prefill_queue],
            [t.id for t in sched.decodes_queue], batch.available_slots, batch.admission_order,
            [(t.position, t.page_indices) for t in batch.active_slot_requests_map.values()])


def test_names_and_docstrings_follow_the_seed():
    for name in ("enqueue_prefill_request", "enqueue_decodes_request", "create_plan"):
        assert getattr(pagedkv.InferenceScheduler, name).__doc__
    assert "active_prefill: InitialSequenceRequest | None" in \
        pagedkv.InferenceScheduler.create_plan.__doc__
    plan = pagedkv.NextIterationPlan
    for field in ("schedule_prefill", "schedule_decodes", "prefill_request",
                  "prefill_pages_update", "new_decodes_requests", "decodes_state_page_updates"):
        assert hasattr(plan, field)
    assert pagedkv.SlotPageAssignment(1, 2, 3) == pagedkv.SlotPageAssignment(1, 2, 3)


def test_prefill_runs_one_chunk_per_plan_then_decodes_in_a_slot():
    mgr, sched, batch = make(num_pages=16, batch_size=2)
    sched.enqueue_prefill_request(pagedkv.InitialSequenceRequest("a", np.arange(20), 8))
    assert sched.prefill_queue[0].page_indices == [0] * 8
    active = None
    for expected in ([1, 2], [3, 4], [5]):
        plan = sched.create_plan(active, batch)
        assert plan.schedule_prefill and not plan.schedule_decodes
        assert plan.prefill_pages_update.page_indices == expected
        sched.verify(plan.prefill_request, batch)
        active = plan.prefill_request
        active.chunk_idx += 1
    assert active.is_complete
    task = pagedkv.GenerationStepTask.from_prefill(active, 7)
    assert (task.position, task.slot, task.prefill_token_id) == (20, -1, 7)
    sched.enqueue_decodes_request(task)
    plan = sched.create_plan(None, batch)
    assert plan.schedule_decodes and not plan.schedule_prefill
    assert [t.slot for t in plan.new_decodes_requests] == [0]
    # Position 20 starts page 5 of the table: one new page.
    assert plan.decodes_state_page_updates == [pagedkv.SlotPageAssignment(0, 5, 6)]
    assert list(batch.active_slot_requests_map) == [0]
    assert batch.available_slots == [1]
    sched.verify(None, batch)
    done = sched.finish_decode(batch, 0)
    assert done.id == "a" and mgr.num_free_pages == 15
    assert not sched.create_plan(None, batch).has_work  # no work instead of spinning


def test_decodes_wait_for_a_running_prefill_unless_the_batch_is_nearly_full():
    mgr, sched, batch = make(num_pages=64, batch_size=20)
    for i in range(2):
        sched.enqueue_decodes_request(decode_task(mgr, sched, f"d{i}", 5))
    sched.create_plan(None, batch)
    sched.enqueue_prefill_request(pagedkv.InitialSequenceRequest("p", [1, 2, 3], 4))
    plan = sched.create_plan(None, batch)
    assert plan.schedule_prefill and not plan.schedule_decodes


def test_a_decode_short_of_a_page_preempts_the_most_recently_admitted():
    # The seed raised NotImplementedError("Eviction isn't supported yet") here.
    mgr, sched, batch = make(num_pages=8, batch_size=3, pages_per_seq=4)
    for rid, position in (("a", 8), ("b", 6), ("d", 12)):
        sched.enqueue_decodes_request(decode_task(mgr, sched, rid, position))
    plan = sched.create_plan(None, batch)
    assert plan.preempted_request_ids == ["d"]
    assert plan.decodes_state_page_updates == [pagedkv.SlotPageAssignment(0, 2, 7)]
    assert [t.id for t in plan.new_decodes_requests] == ["a", "b"]
    resumed = sched.prefill_queue[0]
    assert resumed.id == "d" and resumed.chunk_size == 8 and resumed.chunk_idx == 0
    assert resumed.prompt_token_ids == list(range(100, 112)) + [912]
    sched.verify(None, batch)


def test_an_active_prefill_short_of_pages_preempts_and_a_new_one_waits():
    mgr, sched, batch = make(num_pages=10, batch_size=5)
    for rid, position in (("a", 5), ("b", 3), ("d", 8)):
        sched.enqueue_decodes_request(decode_task(mgr, sched, rid, position))
    sched.create_plan(None, batch)
    sched.enqueue_prefill_request(pagedkv.InitialSequenceRequest("p", list(range(16)), 8))
    plan = sched.create_plan(None, batch)
    active = plan.prefill_request
    active.chunk_idx += 1
    plan = sched.create_plan(active, batch)
    assert plan.preempted_request_ids == ["d"]
    assert plan.prefill_pages_update.page_indices == [9, 6]
    sched.verify(plan.prefill_request, batch)
    # A prompt taken from the queue never preempts: with no page free it waits at the front.
    mgr2, sched2, batch2 = make(num_pages=6, batch_size=4, pages_per_seq=4)
    for rid, position in (("a", 9), ("b", 5)):
        sched2.enqueue_decodes_request(decode_task(mgr2, sched2, rid, position))
    sched2.create_plan(None, batch2)
    sched2.enqueue_prefill_request(pagedkv.InitialSequenceRequest("p", [1, 2], 4))
    before = snapshot(mgr2, sched2, batch2)
    plan = sched2.create_plan(None, batch2)
    assert not plan.schedule_prefill and plan.schedule_decodes
    assert plan.preempted_request_ids == []
    assert snapshot(mgr2, sched2, batch2) == before


def test_errors_map_to_python_exceptions_and_change_nothing():
    with pytest.raises(ValueError):
        pagedkv.InferenceScheduler(pagedkv.HBMPageManager(9, PS), 2, 9)  # 8 usable pages
    with pytest.raises(ValueError):
        pagedkv.ActiveSequenceBatch(0)
    mgr, sched, batch = make(num_pages=16, batch_size=2, pages_per_seq=4)
    sched.enqueue_decodes_request(decode_task(mgr, sched, "q", 5))
    sched.create_plan(None, batch)
    before = snapshot(mgr, sched, batch)
    with pytest.raises(ValueError):
        sched.enqueue_prefill_request(pagedkv.InitialSequenceRequest("e", [], 4))
    with pytest.raises(ValueError):
        sched.enqueue_prefill_request(pagedkv.InitialSequenceRequest("l", list(range(17)), 4))
    with pytest.raises(ValueError):
        sched.enqueue_prefill_request(pagedkv.InitialSequenceRequest("c", [1], 0))
    bad = decode_task(mgr, sched, "bad", 6)
    bad.token_ids = [1]
    with pytest.raises(ValueError):
        sched.enqueue_decodes_request(bad)
    mgr.free_hbm_pages(bad.page_indices)
    far = pagedkv.GenerationStepTask("far", 16, [1, 0, 0, 0], 1, list(range(16)))
    with pytest.raises(IndexError):
        sched.enqueue_decodes_request(far)
    stray = pagedkv.GenerationStepTask("stray", 2, [9, 0, 0, 0], 1, [1, 2])
    with pytest.raises(RuntimeError):
        sched.enqueue_decodes_request(stray)  # page 9 was never handed out
    with pytest.raises(ValueError):
        sched.create_plan(None, pagedkv.ActiveSequenceBatch(3))
    complete = pagedkv.InitialSequenceRequest("x", [1, 2, 3, 4], 4, chunk_idx=1,
                                              page_indices=[0, 0, 0, 0])
    with pytest.raises(RuntimeError):
        sched.create_plan(complete, batch)
    with pytest.raises(RuntimeError):
        pagedkv.GenerationStepTask.from_prefill(
            pagedkv.InitialSequenceRequest("y", [1, 2, 3, 4, 5], 4), 1)
    with pytest.raises(RuntimeError):
        sched.finish_decode(batch, 1)
    with pytest.raises(IndexError):
        batch.advance(2, 1)
    with pytest.raises(TypeError):
        pagedkv.InitialSequenceRequest("t", [1.5], 4)
    assert snapshot(mgr, sched, batch) == before
    stray_page = mgr.alloc_hbm_pages(1)
    with pytest.raises(AssertionError):
        sched.verify(None, batch)  # a page nobody maps
    mgr.free_hbm_pages(stray_page)
    sched.verify(None, batch)


def test_random_driver_loop_ends_with_every_page_free():
    rng = random.Random(7)
    mgr, sched, batch = make(num_pages=11, batch_size=4, pages_per_seq=8, resume_chunk_size=5)
    total = {}  # id -> prompt + outputs when it finishes
    pending = [f"r{i}" for i in range(300)]
    active, finished, preempted = None, 0, 0
    while pending or active or batch.num_active or sched.prefill_queue or sched.decodes_queue:
        for _ in range(rng.randint(0, 2)):
            if pending:
                rid = pending.pop()
                n = rng.randint(1, sched.max_seq_len - 1)
                total[rid] = n + rng.randint(1, sched.max_seq_len - n)
                sched.enqueue_prefill_request(pagedkv.InitialSequenceRequest(
                    rid, [rng.randrange(1000) for _ in range(n)], rng.choice([3, 4, 8, 16])))
        plan = sched.create_plan(active, batch)
        sched.verify(plan.prefill_request, batch)
        preempted += len(plan.preempted_request_ids)
        active = None
        if plan.schedule_prefill:
            p = plan.prefill_request
            p.chunk_idx += 1
            if not p.is_complete:
                active = p
            elif p.prompt_len + 1 == total[p.id]:
                finished += 1
                mgr.free_hbm_pages(p.page_indices)
            else:
                sched.enqueue_decodes_request(pagedkv.GenerationStepTask.from_prefill(p, 1))
        if plan.schedule_decodes:
            for slot in batch.admission_order:
                batch.advance(slot, 1)
                if batch.at(slot).position + 1 == total[batch.at(slot).id]:
                    sched.finish_decode(batch, slot)
                    finished += 1
        sched.verify(active, batch)
    assert finished == 300
    assert mgr.num_free_pages == 10
    assert preempted > 0
