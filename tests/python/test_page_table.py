"""PageTable, MultiGroupPageTable and the batch layouts, through the Python bindings."""

import gc

import numpy as np
import pytest

import pagedkv


def make_table():
    # page size 4 in the layout tests: row 0 = [7, 2], row 1 = [5], row 2 empty
    t = pagedkv.PageTable(3, 4, 16)
    t.append_row([7, 2], 0)
    t.append_row(np.array([5], dtype=np.int64), 1)
    return t


def snapshot(t):
    return (t.get_cpu_tensor().copy(), t.num_pages_per_row.copy(), t.read_device_tensor())


def assert_same(a, b):
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)


# ---- views -----------------------------------------------------------------------------------

def test_views_are_zero_copy_and_reflect_later_changes():
    t = pagedkv.PageTable(3, 4, 16)
    cpu, dev, counts = t.get_cpu_tensor(), t.get_device_tensor(), t.num_pages_per_row
    assert cpu.dtype == np.int32 and cpu.shape == (3, 4)
    assert dev.dtype == np.int32 and dev.shape == (3, 4)
    assert counts.dtype == np.int32 and counts.shape == (3,)
    # Same memory on every call.
    assert np.shares_memory(cpu, t.get_cpu_tensor())
    assert cpu.ctypes.data == t.get_cpu_tensor().ctypes.data
    assert dev.ctypes.data == t.get_device_tensor().ctypes.data
    assert counts.ctypes.data == t.num_pages_per_row.ctypes.data
    assert not np.shares_memory(cpu, dev)  # staging and device are two copies
    t.append_row([3, 9], 1)
    assert cpu[1, :2].tolist() == [3, 9]
    assert counts[1] == 2
    assert dev[1, :2].tolist() == [0, 0]
    t.commit(2)
    assert dev[1, :2].tolist() == [3, 9]
    assert t.page_table_cpu.ctypes.data == cpu.ctypes.data
    assert t.page_table.ctypes.data == dev.ctypes.data


def test_views_are_read_only():
    t = make_table()
    for view in (t.get_cpu_tensor(), t.get_device_tensor(), t.num_pages_per_row, t.row(0)):
        assert not view.flags.writeable
        with pytest.raises(ValueError):
            view[0] = 1
        with pytest.raises(ValueError):
            view.setflags(write=True)


def test_a_view_keeps_its_table_alive():
    t = make_table()
    view = t.get_cpu_tensor()
    del t
    gc.collect()
    assert view[0, :2].tolist() == [7, 2]


def test_a_group_view_keeps_the_multi_group_table_alive():
    m = pagedkv.MultiGroupPageTable(2, 64, 32, [16, 32])
    m.append_row([[1, 2], [3]], 0)
    view = m[1].get_cpu_tensor()
    del m
    gc.collect()
    assert view[0, 0] == 3


# ---- seed operations ---------------------------------------------------------------------------

def test_seed_operations_and_commit_semantics():
    t = pagedkv.PageTable(3, 4, 16)
    t.append_row([1, 2], 0)
    t.append_row([3], 0)
    t.add_row([8], 1)
    t.verify()
    assert t.row(0).tolist() == [1, 2, 3]
    t.move_row(0, 2)  # copy; the source keeps its pages
    assert t.row(0).tolist() == [1, 2, 3] and t.row(2).tolist() == [1, 2, 3]
    t.swap_row(0, 1)
    assert t.row(0).tolist() == [8] and t.row(1).tolist() == [1, 2, 3]
    assert t.num_pages_per_row.tolist() == [1, 3, 3]
    assert not t.get_device_tensor().any()  # nothing committed yet
    t.commit(2)
    dev = t.get_device_tensor()
    assert dev[0].tolist() == [8, 0, 0, 0]
    assert dev[1].tolist() == [1, 2, 3, 0]
    assert dev[2].tolist() == [0, 0, 0, 0]  # past num_reqs
    t.clear()
    t.verify()
    assert not t.get_cpu_tensor().any() and not dev.any() and not t.num_pages_per_row.any()


def test_errors_raise_and_change_nothing():
    t = make_table()
    t.commit(3)
    before = snapshot(t)
    with pytest.raises(IndexError):
        t.append_row([1], 3)
    with pytest.raises(IndexError):
        t.move_row(0, -1)
    with pytest.raises(IndexError):
        t.swap_row(5, 0)
    with pytest.raises(pagedkv.CapacityError, match="row 0 holds 2 pages"):
        t.append_row([1, 2, 3], 0)
    with pytest.raises(pagedkv.CapacityError):
        t.add_row([1, 2, 3, 4, 5], 1)
    with pytest.raises(ValueError):
        t.append_row([4, -1], 0)
    with pytest.raises(IndexError):
        t.commit(4)
    with pytest.raises(ValueError):
        t.commit(-1)
    with pytest.raises(TypeError):
        t.append_row([1.5], 0)
    with pytest.raises(OverflowError, match="page_ids"):
        t.append_row(np.array([2**40]), 0)
    assert_same(snapshot(t), before)
    t.verify()
    with pytest.raises(ValueError):
        pagedkv.PageTable(0, 4, 16)


def test_capacity_error_is_a_runtime_error():
    assert issubclass(pagedkv.CapacityError, RuntimeError)


# ---- multi-group -------------------------------------------------------------------------------

def test_multi_group_columns_are_cdiv_of_max_model_len():
    m = pagedkv.MultiGroupPageTable(4, 100, 256, [16, 32, 1])
    assert len(m) == 3 and m.num_groups == 3
    assert [t.max_num_pages_per_req for t in m.page_tables] == [7, 4, 100]
    assert m[-1].max_num_pages_per_req == 100
    assert m.page_sizes == [16, 32, 1]
    with pytest.raises(IndexError):
        m[3]
    with pytest.raises(ValueError):
        pagedkv.MultiGroupPageTable(4, 100, 256, [])


def test_multi_group_operations_and_batch_append():
    m = pagedkv.MultiGroupPageTable(4, 64, 32, [16, 32])  # 4 and 2 columns
    m.append_rows_batch([[[10, 11], [20]], [[30], [40, 41]]], [0, 1])
    assert m[0].row(0).tolist() == [10, 11] and m[1].row(1).tolist() == [40, 41]
    m.swap_row(0, 1)
    m.move_row(0, 3)
    m.commit(4)
    m.verify()
    assert m[1].get_device_tensor()[3].tolist() == [40, 41]
    before = [snapshot(t) for t in m.page_tables]
    with pytest.raises(ValueError):
        m.append_row([[1]], 0)  # one list for two groups
    with pytest.raises(pagedkv.CapacityError):
        m.append_row([[1], [2]], 0)  # group 1 row 0 is full
    with pytest.raises(pagedkv.CapacityError):
        m.append_rows_batch([[[1], [2, 3]], [[3], [4]]], [2, 2])  # 2nd append overflows group 1
    with pytest.raises(ValueError):
        m.append_rows_batch([[[1], [2]]], [0, 1])
    for t, b in zip(m.page_tables, before):
        assert_same(snapshot(t), b)
    m.clear()
    assert not m[0].get_device_tensor().any()


# ---- batch layouts -----------------------------------------------------------------------------

def test_slot_mapping_returns_and_fills():
    t = make_table()
    slots = pagedkv.compute_slot_mapping(t, 4, [0, 1], [3, 0], [2, 1])
    assert slots.dtype == np.int64 and slots.shape == (16,)
    assert slots[:4].tolist() == [31, 8, 20, -1]
    assert (slots[3:] == pagedkv.SLOT_MAPPING_PADDING).all()
    out = np.full(6, 99, dtype=np.int64)
    n = pagedkv.compute_slot_mapping_into(out, t, 4, np.array([1], np.int32), [1], [2], padding=0)
    assert n == 2 and out.tolist() == [21, 22, 0, 0, 0, 0]
    with pytest.raises(TypeError):  # wrong dtype is never silently converted
        pagedkv.compute_slot_mapping_into(np.zeros(6, np.int32), t, 4, [1], [1], [2])
    out[:] = 99
    with pytest.raises(IndexError):
        pagedkv.compute_slot_mapping_into(out, t, 4, [0], [7], [2])
    with pytest.raises(pagedkv.CapacityError):
        pagedkv.compute_slot_mapping_into(out, t, 4, [0, 0], [0, 0], [4, 4])
    assert (out == 99).all()


def test_flashinfer_layout_returns_and_fills():
    t = make_table()
    indptr, indices, last = pagedkv.export_flashinfer_layout(t, 4, [0, 2, 1], [6, 0, 4])
    assert indptr.tolist() == [0, 2, 2, 3]
    assert indices.tolist() == [7, 2, 5]
    assert last.tolist() == [2, 0, 4]
    ip, ix, lp = (np.full(8, 99, np.int32) for _ in range(3))
    assert pagedkv.export_flashinfer_layout_into(t, 4, [1], [3], ip, ix, lp) == 1
    assert ip[:2].tolist() == [0, 1] and ix[0] == 5 and lp[0] == 3 and ix[1] == 99
    with pytest.raises(pagedkv.CapacityError):
        pagedkv.export_flashinfer_layout_into(t, 4, [0], [8], ip, ix[:1], lp)
    with pytest.raises(IndexError):
        pagedkv.export_flashinfer_layout(t, 4, [0], [9])


def test_layouts_match_a_naive_loop_on_random_batches():
    rng = np.random.default_rng(7)
    for page_size in (1, 5, 16):
        t = pagedkv.PageTable(16, 10, 4096)
        for r in range(16):
            t.add_row(rng.integers(0, 10_000, size=rng.integers(0, 11)), r)
        rows = rng.integers(0, 16, size=12)
        held = t.num_pages_per_row[rows] * page_size
        starts = (rng.random(12) * (held + 1)).astype(np.int64)
        counts = (rng.random(12) * (held - starts + 1)).astype(np.int64)
        want = [int(t.row(r)[p // page_size]) * page_size + p % page_size
                for r, s, c in zip(rows, starts, counts) for p in range(s, s + c)]
        slots = pagedkv.compute_slot_mapping(t, page_size, rows, starts, counts)
        assert slots[:len(want)].tolist() == want
        assert (slots[len(want):] == -1).all()
        lens = (rng.random(12) * (held + 1)).astype(np.int64)
        indptr, indices, last = pagedkv.export_flashinfer_layout(t, page_size, rows, lens)
        pages = [list(t.row(r)[:-(-n // page_size)]) for r, n in zip(rows, lens)]
        assert indices.tolist() == [p for ps in pages for p in ps]
        assert indptr.tolist() == list(np.cumsum([0] + [len(ps) for ps in pages]))
        assert last.tolist() == [0 if n == 0 else (n - 1) % page_size + 1 for n in lens]
