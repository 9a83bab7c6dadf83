"""pagedkv.paged_attention from Python, against a float64 NumPy reference on the gathered K/V.

The reference reads the values the cache holds (dequantized), so every dtype compares at
float32 rounding level (atol 5e-6 for |out| <= 1)."""

import numpy as np
import pytest

import pagedkv

ATOL = 5e-6


def bf16_bits(x):
    """float32 -> bfloat16 bit patterns, round to nearest even (finite inputs)."""
    u = np.asarray(x, dtype=np.float32).view(np.uint32).astype(np.uint64)
    return ((u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype(np.uint16)


def bf16_values(bits):
    return (bits.astype(np.uint32) << 16).view(np.float32)


def reference(query, k_tok, v_tok, qsl, seq_lens, scale, window=None, cap=None):
    """query [T, Hq, D]; k_tok/v_tok: per request [seq, H, D] float64 -> [T, Hq, D]."""
    q = np.asarray(query, dtype=np.float64)
    out = np.zeros_like(q)
    hq = q.shape[1]
    for b, seq in enumerate(seq_lens):
        q0, q1 = qsl[b], qsl[b + 1]
        h = k_tok[b].shape[1]
        group = hq // h
        for t in range(q1 - q0):
            pos = seq - (q1 - q0) + t
            lo = max(0, pos - window + 1) if window else 0
            k = np.repeat(k_tok[b][lo:pos + 1], group, axis=1)  # [n, Hq, D]
            v = np.repeat(v_tok[b][lo:pos + 1], group, axis=1)
            s = np.einsum("hd,nhd->hn", q[q0 + t], k) * scale
            if cap:
                s = cap * np.tanh(s / cap)
            p = np.exp(s - s.max(axis=1, keepdims=True))
            p /= p.sum(axis=1, keepdims=True)
            out[q0 + t] = np.einsum("hn,nhd->hd", p, v)
    return out


class Batch:
    """Random requests written into NumPy page arrays (HND or NHD), distinct shuffled pages."""

    def __init__(self, reqs, kv_heads=2, q_heads=8, dim=64, page_size=16, layout="HND",
                 storage="float32", seed=0):
        rng = np.random.default_rng(seed)
        self.reqs, self.dim, self.page_size, self.layout = reqs, dim, page_size, layout
        self.qsl = np.concatenate([[0], np.cumsum([q for q, _ in reqs])]).astype(np.int32)
        self.seq_lens = np.array([s for _, s in reqs], dtype=np.int32)
        npages = [-(-s // page_size) for _, s in reqs]
        num_pages = sum(npages) + 2
        ids = rng.permutation(np.arange(1, num_pages))
        self.pages, at = [], 0
        for n in npages:
            self.pages.append(ids[at:at + n])
            at += n
        width = max(npages)
        self.table = np.zeros((len(reqs), width), dtype=np.int32)
        for b, p in enumerate(self.pages):
            self.table[b, :len(p)] = p
        self.query = rng.uniform(-1, 1, (int(self.qsl[-1]), q_heads, dim)).astype(np.float32)
        shape = (kv_heads, num_pages, page_size, dim)
        k_f = np.zeros(shape, np.float32)
        v_f = np.zeros(shape, np.float32)
        for b, (_, seq) in enumerate(reqs):
            for pos in range(seq):
                page, off = self.pages[b][pos // page_size], pos % page_size
                k_f[:, page, off] = rng.uniform(-1, 1, (kv_heads, dim))
                v_f[:, page, off] = rng.uniform(-1, 1, (kv_heads, dim))
        self.kwargs = {}
        if storage == "float32":
            k_s, v_s, k_deq, v_deq = k_f, v_f, k_f, v_f
        elif storage == "float16":
            k_s, v_s = k_f.astype(np.float16), v_f.astype(np.float16)
            k_deq, v_deq = k_s.astype(np.float32), v_s.astype(np.float32)
        elif storage == "bfloat16":
            k_s, v_s = bf16_bits(k_f), bf16_bits(v_f)
            k_deq, v_deq = bf16_values(k_s), bf16_values(v_s)
        elif storage == "int8":
            def quant(x):
                scale = np.abs(x).max(axis=-1) / 127.0
                scale[scale == 0] = 1.0
                codes = np.clip(np.rint(x / scale[..., None]), -127, 127).astype(np.int8)
                return codes, scale.astype(np.float32)
            k_s, ks = quant(k_f)
            v_s, vs = quant(v_f)
            k_deq = k_s.astype(np.float32) * ks[..., None]
            v_deq = v_s.astype(np.float32) * vs[..., None]
            if layout == "NHD":  # [slots, heads]
                ks = np.ascontiguousarray(ks.reshape(kv_heads, -1).T)
                vs = np.ascontiguousarray(vs.reshape(kv_heads, -1).T)
            self.kwargs.update(k_scales=ks, v_scales=vs)
        else:
            raise ValueError(storage)
        self.k_tok = [self._gather(k_deq, b) for b in range(len(reqs))]
        self.v_tok = [self._gather(v_deq, b) for b in range(len(reqs))]
        if layout == "HND":
            self.kv = k_s
            self.kwargs["value_pages"] = v_s
        else:  # [num_pages, page_size, 2 * heads, dim], K/V interleaved per head
            nhd = np.empty((num_pages, page_size, 2 * kv_heads, dim), k_s.dtype)
            nhd[:, :, 0::2] = k_s.transpose(1, 2, 0, 3)
            nhd[:, :, 1::2] = v_s.transpose(1, 2, 0, 3)
            self.kv = nhd

    def _gather(self, pages_hnd, b):
        seq = self.reqs[b][1]
        pos = np.arange(seq)
        pg = self.pages[b][pos // self.page_size]
        return pages_hnd[:, pg, pos % self.page_size].transpose(1, 0, 2).astype(np.float64)

    def run(self, scale=0.25, **kw):
        args = dict(self.kwargs)
        args.update(kw)
        query = args.pop("query", self.query)
        return pagedkv.paged_attention(query, self.kv, self.qsl, self.seq_lens, self.table,
                                       scale, **args)

    def ref(self, scale=0.25, window=None, cap=None, query=None):
        q = self.query if query is None else query
        return reference(q, self.k_tok, self.v_tok, self.qsl, self.seq_lens, scale, window, cap)


MIXED = [(1, 300), (20, 140), (1, 5), (7, 7)]


@pytest.mark.parametrize("layout", ["HND", "NHD"])
@pytest.mark.parametrize("storage", ["float32", "float16", "bfloat16", "int8"])
@pytest.mark.parametrize("window,cap", [(None, None), (40, None), (None, 1.5)])
def test_matches_the_numpy_reference(layout, storage, window, cap):
    b = Batch(MIXED, layout=layout, storage=storage, seed=1)
    out = b.run(sliding_window=window, soft_cap=cap)
    assert out.dtype == np.float32 and out.shape == b.query.shape
    np.testing.assert_allclose(out, b.ref(window=window, cap=cap), atol=ATOL, rtol=0)


def test_fp8_pages_use_the_per_tensor_scales():
    b = Batch([(1, 100), (9, 40)], storage="float32", seed=2)
    # Codes of e4m3fn for the values 0.5, -1.0, 2.0 are 0x30, 0xB8, 0x40.
    rng = np.random.default_rng(3)
    codes = rng.choice(np.array([0x30, 0xB8, 0x40], np.uint8), size=b.kv.shape)
    vcodes = rng.choice(np.array([0x30, 0xB8, 0x40], np.uint8), size=b.kv.shape)
    lut = {0x30: 0.5, 0xB8: -1.0, 0x40: 2.0}
    deq = np.vectorize(lut.get)(codes).astype(np.float64) * 0.25
    vdeq = np.vectorize(lut.get)(vcodes).astype(np.float64) * 0.5
    b.k_tok = [b._gather(deq, i) for i in range(2)]
    b.v_tok = [b._gather(vdeq, i) for i in range(2)]
    out = pagedkv.paged_attention(b.query, codes, b.qsl, b.seq_lens, b.table, 0.25,
                                  value_pages=vcodes, k_scale=0.25, v_scale=0.5)
    np.testing.assert_allclose(out, b.ref(), atol=ATOL, rtol=0)


def test_bfloat16_queries_are_uint16_bit_patterns():
    b = Batch(MIXED, seed=4)
    q_bits = bf16_bits(b.query)
    out = b.run(query=q_bits)
    np.testing.assert_allclose(out, b.ref(query=bf16_values(q_bits)), atol=ATOL, rtol=0)


def test_three_dimensional_nhd_pages_take_a_page_size():
    b = Batch(MIXED, layout="NHD", seed=5)
    flat = b.kv.reshape(-1, b.kv.shape[2], b.kv.shape[3])
    out = pagedkv.paged_attention(b.query, flat, b.qsl, b.seq_lens, b.table, 0.25, page_size=16)
    np.testing.assert_array_equal(out, b.run())


def test_csr_page_indices_give_the_same_bits_as_the_dense_table():
    b = Batch(MIXED, seed=6)
    indptr = np.concatenate([[0], np.cumsum([len(p) for p in b.pages])]).astype(np.int32)
    indices = np.concatenate(b.pages).astype(np.int32)
    out = pagedkv.paged_attention(b.query, b.kv, b.qsl, b.seq_lens, indices, 0.25,
                                  value_pages=b.kwargs["value_pages"], page_indptr=indptr)
    np.testing.assert_array_equal(out, b.run())


def test_a_request_gives_the_same_bits_alone_and_in_a_batch():
    b = Batch(MIXED, seed=7)
    full = b.run()
    for r in range(len(MIXED)):
        q0, q1 = b.qsl[r], b.qsl[r + 1]
        alone = pagedkv.paged_attention(b.query[q0:q1], b.kv, np.array([0, q1 - q0], np.int32),
                                        b.seq_lens[r:r + 1], b.table[r:r + 1], 0.25,
                                        value_pages=b.kwargs["value_pages"])
        np.testing.assert_array_equal(alone, full[q0:q1])


def test_reads_a_paged_kv_cache_layer_in_place():
    md = pagedkv.PagedKVCacheMetadata.create(
        batch_size=4, num_hidden_layers=2, max_sequences=64, page_size=16, num_kv_heads=2,
        kv_head_dim_size=64, hbm_utilization=0.5, dtype="float32", layout="HND",
        memory_budget_bytes=1 << 22)
    cache = pagedkv.PagedKVCache(md)
    b = Batch(MIXED, seed=8)
    used = b.kv.shape[1]
    assert cache.num_pages >= used
    cache.key_pages(1)[:, :used] = b.kv
    cache.value_pages(1)[:, :used] = b.kwargs["value_pages"]
    out = pagedkv.paged_attention(b.query, cache, b.qsl, b.seq_lens, b.table, 0.25, layer=1)
    np.testing.assert_array_equal(out, b.run())
    np.testing.assert_allclose(out, b.ref(), atol=ATOL, rtol=0)


def test_invalid_inputs_raise_the_mapped_python_errors():
    b = Batch(MIXED, seed=9)
    with pytest.raises(ValueError, match="scale must be finite and > 0"):
        b.run(scale=0.0)
    with pytest.raises(ValueError, match="query must be 3-D"):
        b.run(query=b.query[0])
    with pytest.raises(ValueError, match="shorter than its 20 query tokens"):
        pagedkv.paged_attention(b.query, b.kv, b.qsl, np.array([300, 10, 5, 7], np.int32),
                                b.table, 0.25, value_pages=b.kwargs["value_pages"])
    bad = b.table.copy()
    bad[0, 0] = b.kv.shape[1]
    with pytest.raises(IndexError, match="outside the cache"):
        pagedkv.paged_attention(b.query, b.kv, b.qsl, b.seq_lens, bad, 0.25,
                                value_pages=b.kwargs["value_pages"])
    with pytest.raises(ValueError, match="int8 cache needs k_scales"):
        pagedkv.paged_attention(b.query, b.kv.astype(np.int8), b.qsl, b.seq_lens, b.table, 0.25,
                                value_pages=b.kwargs["value_pages"].astype(np.int8))
    with pytest.raises(ValueError, match="value_pages dim 1 is 1, key pages have"):
        pagedkv.paged_attention(b.query, b.kv, b.qsl, b.seq_lens, b.table, 0.25,
                                value_pages=b.kwargs["value_pages"][:, :1])
