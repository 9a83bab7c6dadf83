"""kv_cache from Python: metadata, zero-copy page arrays, kv_cache_update and the writes,
checked against plain NumPy references."""

import gc
import json

import numpy as np
import pytest

import pagedkv


def make_cache(layout="HND", dtype="float32", page_size=16, heads=2, dim=8, layers=2,
               budget=1 << 22):
    md = pagedkv.PagedKVCacheMetadata.create(
        batch_size=4, num_hidden_layers=layers, max_sequences=64, page_size=page_size,
        num_kv_heads=heads, kv_head_dim_size=dim, hbm_utilization=0.5, dtype=dtype,
        layout=layout, memory_budget_bytes=budget)
    return pagedkv.PagedKVCache(md)


def bf16_bits(x):
    """float32 -> bfloat16 bit patterns, round to nearest even (finite inputs)."""
    u = np.asarray(x, dtype=np.float32).view(np.uint32).astype(np.uint64)
    return ((u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype(np.uint16)


# ---- metadata -------------------------------------------------------------------------

def test_metadata_create_sizes_pages_from_the_budget():
    md = pagedkv.PagedKVCacheMetadata.create(8, 2, 1000, 16, 8, 128, hbm_utilization=0.5,
                                             dtype="bfloat16", memory_budget_bytes=1 << 30)
    assert md.bytes_per_page_per_layer() == 2 * 8 * 16 * 128 * 2
    assert md.num_pages_per_layer == (1 << 29) // (2 * 65536)
    assert md.num_pages_per_sequence == 63
    assert md.memory_utilization == md.hbm_utilization == 0.5
    assert (md.dtype, md.layout) == ("bfloat16", "HND")


def test_metadata_json_round_trips_exactly():
    md = pagedkv.PagedKVCacheMetadata.create(8, 2, 1000, 16, 8, 128, hbm_utilization=0.1 + 0.2,
                                             dtype="int8", layout="NHD",
                                             memory_budget_bytes=1 << 30)
    back = pagedkv.PagedKVCacheMetadata.from_json(md.to_json())
    assert back == md
    assert back.hbm_utilization == 0.1 + 0.2
    assert json.loads(md.to_json())["layout"] == "NHD"


@pytest.mark.parametrize("kwargs, needle", [
    ({"page_size": 0}, "page_size must be > 0, got 0"),
    ({"hbm_utilization": 1.5}, "hbm_utilization"),
    ({"memory_budget_bytes": 1000}, "needed"),
    ({"dtype": "float64"}, "unknown dtype"),
])
def test_metadata_create_rejects_bad_values_with_value_error(kwargs, needle):
    args = dict(batch_size=4, num_hidden_layers=2, max_sequences=64, page_size=16,
                num_kv_heads=2, kv_head_dim_size=8, memory_budget_bytes=1 << 22)
    args.update(kwargs)
    with pytest.raises(ValueError, match=needle.replace("(", r"\(")):
        pagedkv.PagedKVCacheMetadata.create(**args)


def test_metadata_from_json_rejects_unknown_keys():
    md = make_cache().metadata
    d = json.loads(md.to_json())
    d["extra"] = 1
    with pytest.raises(ValueError, match="unknown key 'extra'"):
        pagedkv.PagedKVCacheMetadata.from_json(json.dumps(d))


# ---- cache arrays ----------------------------------------------------------------------

@pytest.mark.parametrize("dtype, np_dtype", [("float32", np.float32), ("float16", np.float16),
                                             ("bfloat16", np.uint16), ("int8", np.int8),
                                             ("fp8_e4m3", np.uint8)])
def test_page_arrays_are_zero_copy_and_keep_the_cache_alive(dtype, np_dtype):
    cache = make_cache("HND", dtype)
    k = cache.key_pages(1)
    md = cache.metadata
    assert k.dtype == np_dtype
    assert k.shape == (2, md.num_pages_per_layer, 16, 8)
    assert not k.any()
    k[1, 3, 5, :] = 7
    assert (cache.key_pages(1)[1, 3, 5] == 7).all()   # same memory
    assert not cache.value_pages(1).any()
    del cache
    gc.collect()
    assert (k[1, 3, 5] == 7).all()                     # still valid


def test_layout_specific_arrays_raise_runtime_error_for_the_other_layout():
    hnd, nhd = make_cache("HND"), make_cache("NHD", "int8")
    with pytest.raises(RuntimeError):
        hnd.kv_pages(0)
    with pytest.raises(RuntimeError):
        nhd.key_pages(0)
    with pytest.raises(RuntimeError):
        hnd.k_scales(0)
    with pytest.raises(IndexError):
        nhd.kv_pages(2)
    assert nhd.kv_pages(0).shape == (nhd.num_slots, 4, 8)
    assert nhd.k_scales(0).shape == (nhd.num_slots, 2)


# ---- kv_cache_update -------------------------------------------------------------------

def naive_update(new_kv, slices, cache, total):
    for i in range(total):
        c, s, n = slices[:, i]
        cache[c:c + n] = new_kv[s:s + n]


@pytest.mark.parametrize("np_dtype", [np.float32, np.float16, np.uint16, np.int8, np.uint8])
@pytest.mark.parametrize("page_size", [1, 16, 32, 128])
def test_kv_cache_update_matches_numpy_in_place(np_dtype, page_size):
    rng = np.random.default_rng(page_size)
    pages, heads, dim = 6, 4, 16
    cache = rng.integers(0, 100, size=(pages * page_size, heads, dim)).astype(np_dtype)
    new_kv = rng.integers(0, 100, size=(50, heads, dim)).astype(np_dtype)
    n = 10
    slices = np.zeros((3, n), dtype=np.int32)
    for i in range(n):
        length = rng.integers(0, min(page_size, 50) + 1)
        off = rng.integers(0, page_size - length + 1)
        slices[:, i] = (rng.integers(0, pages) * page_size + off, rng.integers(0, 50 - length + 1),
                        length)
    want = cache.copy()
    naive_update(new_kv, slices, want, 7)
    out = pagedkv.kv_cache_update(new_kv, slices, cache, np.array([7]), page_size=page_size)
    assert out is cache
    np.testing.assert_array_equal(cache, want)


def test_kv_cache_update_errors_leave_the_cache_unchanged():
    cache = np.arange(64 * 2 * 4, dtype=np.float32).reshape(64, 2, 4)
    before = cache.copy()
    new_kv = np.ones((20, 2, 4), dtype=np.float32)
    ok_then_crossing = np.array([[0, 14], [0, 0], [4, 4]], dtype=np.int32)
    with pytest.raises(ValueError, match="page boundary"):
        pagedkv.kv_cache_update(new_kv, ok_then_crossing, cache, 2, page_size=16)
    with pytest.raises(IndexError):
        pagedkv.kv_cache_update(new_kv, np.array([[0], [18], [4]]), cache, 1, page_size=16)
    with pytest.raises(ValueError):
        pagedkv.kv_cache_update(new_kv.astype(np.float16), np.array([[0], [0], [4]]), cache, 1,
                                page_size=16)
    with pytest.raises(ValueError, match="total_update_slices"):
        pagedkv.kv_cache_update(new_kv, np.array([[0], [0], [4]]), cache, 2, page_size=16)
    np.testing.assert_array_equal(cache, before)


def test_index_arrays_with_any_strides_are_read_in_logical_order():
    rng = np.random.default_rng(5)
    cache = np.zeros((64, 2, 4), dtype=np.float32)
    new_kv = rng.standard_normal((20, 2, 4)).astype(np.float32)
    triples = np.array([[0, 0, 4], [17, 4, 3], [40, 7, 8]], dtype=np.int32)  # (cache, src, len)
    want = cache.copy()
    naive_update(new_kv, np.ascontiguousarray(triples.T), want, 3)
    pagedkv.kv_cache_update(new_kv, triples.T, cache, 3, page_size=16)  # F-ordered view
    np.testing.assert_array_equal(cache, want)

    kv = make_cache("NHD", "float32", page_size=16, heads=2, dim=8)
    key = rng.standard_normal((6, 2, 8)).astype(np.float32)
    slots = np.arange(12, dtype=np.int64)[::-2]  # strided and reversed: 11, 9, ..., 1
    pagedkv.write_slots(kv, 0, key, key, slots)
    for t, slot in enumerate(slots):
        np.testing.assert_array_equal(kv.kv_pages(0)[slot, 0::2], key[t])


def test_index_values_that_do_not_fit_int32_raise_instead_of_wrapping():
    cache = np.zeros((64, 2, 4), dtype=np.float32)
    new_kv = np.ones((20, 2, 4), dtype=np.float32)
    with pytest.raises(OverflowError, match=r"slice_indices\[0\] = 4294967296 .* int32"):
        pagedkv.kv_cache_update(new_kv, np.array([[2**32], [0], [4]]), cache, 1, page_size=16)
    with pytest.raises(TypeError):
        pagedkv.kv_cache_update(new_kv, np.array([[0.5], [0], [4]]), cache, 1, page_size=16)
    with pytest.raises(OverflowError, match="decodes_position.*range"):
        pagedkv.PagedAttentionMetadata(decodes_position=np.array([2**31]),
                                       decodes_page_table=np.array([[1]]))
    assert not cache.any()


def test_build_update_slices_splits_new_tokens_at_page_boundaries():
    table = np.array([[3, 7, 9, 0]], dtype=np.int32)
    slices, n = pagedkv.build_update_slices(table, [20], [15], page_size=16, capacity=4)
    assert n == 2
    np.testing.assert_array_equal(slices, [[7 * 16 + 4, 9 * 16, 0, 0], [0, 12, 0, 0],
                                           [12, 3, 0, 0]])


# ---- writes ----------------------------------------------------------------------------

def slot_of(page_table, page_size, pos):
    return page_table[pos // page_size] * page_size + pos % page_size


@pytest.mark.parametrize("layout", ["HND", "NHD"])
@pytest.mark.parametrize("in_dtype", [np.float32, np.float16])
def test_write_slots_places_rows_like_numpy_indexing(layout, in_dtype):
    rng = np.random.default_rng(1)
    cache = make_cache(layout, "float32", page_size=16, heads=2, dim=8)
    key = rng.standard_normal((10, 2, 8)).astype(in_dtype)
    value = rng.standard_normal((10, 2, 8)).astype(in_dtype)
    slots = rng.permutation(cache.num_slots)[:10].astype(np.int64)
    slots[4] = -1
    pagedkv.write_slots(cache, 1, key, value, slots)
    for t, s in enumerate(slots):
        if s < 0:
            continue
        page, off = divmod(int(s), 16)
        if layout == "HND":
            got_k = cache.key_pages(1)[:, page, off]
            got_v = cache.value_pages(1)[:, page, off]
        else:
            got_k = cache.kv_pages(1)[s, 0::2]
            got_v = cache.kv_pages(1)[s, 1::2]
        np.testing.assert_array_equal(got_k, key[t].astype(np.float32))
        np.testing.assert_array_equal(got_v, value[t].astype(np.float32))
    written = np.zeros(cache.num_slots, dtype=bool)
    written[slots[slots >= 0]] = True
    if layout == "HND":
        assert not cache.key_pages(1).reshape(2, -1, 8)[:, ~written].any()
        assert not cache.key_pages(0).any()
    else:
        assert not cache.kv_pages(1)[~written].any()
        assert not cache.kv_pages(0).any()


def test_write_slots_bfloat16_inputs_are_uint16_bit_patterns():
    rng = np.random.default_rng(2)
    cache = make_cache("HND", "bfloat16")
    x = rng.standard_normal((3, 2, 8)).astype(np.float32)
    pagedkv.write_slots(cache, 0, x, x, np.array([0, 1, 2]))
    np.testing.assert_array_equal(cache.key_pages(0)[:, 0, :3].transpose(1, 0, 2), bf16_bits(x))
    bits = bf16_bits(x)
    pagedkv.write_slots(cache, 0, bits, bits, np.array([16, 17, 18]))  # uint16 = bfloat16
    np.testing.assert_array_equal(cache.value_pages(0)[:, 1, :3].transpose(1, 0, 2), bits)


def test_int8_writes_quantize_per_token_and_head_within_half_a_step():
    rng = np.random.default_rng(3)
    cache = make_cache("NHD", "int8", dim=32)
    key = rng.standard_normal((20, 2, 32)).astype(np.float32)
    slots = np.arange(20, dtype=np.int64)
    pagedkv.write_slots(cache, 0, key, -key, slots)
    codes = cache.kv_pages(0)[:20, 0::2].astype(np.float32)
    scales = cache.k_scales(0)[:20]
    np.testing.assert_allclose(scales, np.abs(key).max(axis=2) / 127, rtol=1e-6)
    err = np.abs(codes * scales[:, :, None] - key)
    assert (err <= scales[:, :, None] / 2 * (1 + 1e-5)).all()


def test_fp8_writes_use_the_per_tensor_scales():
    cache = make_cache("HND", "fp8_e4m3")
    cache.set_fp8_scales(0.5, 2.0)
    x = np.full((1, 2, 8), 3.0, dtype=np.float32)
    pagedkv.write_slots(cache, 0, x, x, np.array([5]))
    assert (cache.key_pages(0)[:, 0, 5] == 0x4C).all()    # 3 / 0.5 = 1.5 * 2^2 -> 0 1001 100
    assert (cache.value_pages(0)[:, 0, 5] == 0x3C).all()  # 3 / 2 = 1.5 * 2^0 -> 0 0111 100
    with pytest.raises(ValueError):
        cache.set_fp8_scales(0.0, 1.0)
    assert cache.k_scale == 0.5


def test_prefill_and_decode_writes_follow_the_page_tables():
    rng = np.random.default_rng(4)
    cache = make_cache("HND", "float32", page_size=4)
    key = rng.standard_normal((8, 2, 8)).astype(np.float32)
    md = pagedkv.PagedAttentionMetadata(prefill_length=6, prefill_position=np.arange(8),
                                        prefill_page_table=[5, 2])
    assert md.is_prefill_mode() and not md.is_decode_mode()
    pagedkv.write_prefill_to_cache(cache, 0, key, key, md)
    kp = cache.key_pages(0)
    for i in range(6):
        np.testing.assert_array_equal(kp[:, [5, 2][i // 4], i % 4], key[i])
    assert not kp[:, 2, 2:].any()  # padding tokens 6, 7 not written

    dec = pagedkv.PagedAttentionMetadata(decodes_position=[5, -1, 0],
                                         decodes_page_table=[[1, 3], [4, 4], [6, 7]])
    assert dec.is_decode_mode()
    assert dec.decodes_page_table.shape == (3, 2)
    tok = rng.standard_normal((3, 2, 8)).astype(np.float32)
    pagedkv.write_decodes_to_cache(cache, 1, tok, tok, dec)
    kp1 = cache.key_pages(1)
    np.testing.assert_array_equal(kp1[:, 3, 1], tok[0])
    np.testing.assert_array_equal(kp1[:, 6, 0], tok[2])
    assert not kp1[:, 4].any()


def test_write_errors_map_to_python_exceptions_and_write_nothing():
    cache = make_cache("NHD", "bfloat16")
    x = np.ones((2, 2, 8), dtype=np.float32)
    with pytest.raises(IndexError, match="slot_mapping"):
        pagedkv.write_slots(cache, 0, x, x, np.array([0, cache.num_slots]))
    with pytest.raises(ValueError):
        pagedkv.write_slots(cache, 0, x, x.astype(np.float64), np.array([0, 1]))
    with pytest.raises(ValueError):
        pagedkv.write_slots(cache, 0, np.ones((2, 3, 8), np.float32), x, np.array([0, 1]))
    with pytest.raises(ValueError):
        pagedkv.PagedAttentionMetadata(prefill_length=5, prefill_position=np.arange(3))
    with pytest.raises(IndexError):
        pagedkv.write_decodes_to_cache(
            cache, 0, x, x, pagedkv.PagedAttentionMetadata(decodes_position=[0, 64],
                                                           decodes_page_table=[[1], [2]]))
    assert not cache.kv_pages(0).any()
