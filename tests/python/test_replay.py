"""Trace loading and cache-only replay through the Python bindings."""

import json

import pytest

import pagedkv

MOONCAKE_SAMPLE = "\n".join(
    json.dumps(r)
    for r in [
        {"timestamp": 0, "input_length": 1000, "output_length": 5, "hash_ids": [1, 2]},
        {"timestamp": 1000, "input_length": 1100, "output_length": 5, "hash_ids": [1, 3, 4]},
        {"timestamp": 2000, "input_length": 1000, "output_length": 5, "hash_ids": [1, 2]},
    ]
)

REPLAY_FIELDS = {
    "num_pages", "page_size", "capacity_tokens", "hash", "requests", "rejected", "tokens",
    "full_pages", "hit_tokens", "hit_pages", "token_hit_rate", "page_hit_rate", "evictions",
    "seconds", "ideal_hit_tokens", "ideal_token_hit_rate", "ideal_page_hit_rate",
    "ideal_unbounded_num_pages",
}


def test_parse_mooncake_text_and_synthesise_prompts():
    t = pagedkv.parse_trace(MOONCAKE_SAMPLE, "mooncake", "sample.jsonl")
    assert len(t) == 3
    assert t.block_size == 512
    assert t.num_tokens == 3100
    assert t.max_input_length == 1100
    assert t[1].input_length == 1100
    assert t[1].timestamp == pytest.approx(1.0)
    assert t[0].block_keys[0] == t[1].block_keys[0] == t[2].block_keys[0]
    a, b, c = (t.prompt_tokens(i) for i in range(3))
    assert len(a) == 1000 and len(b) == 1100
    assert a == c  # same hash ids -> same tokens
    assert a[:512] == b[:512]  # shared first block
    assert a[512:520] != b[512:520]  # different second block
    assert all(0 <= x < 128000 for x in b)
    with pytest.raises(IndexError):
        t[3]


def test_replay_matches_the_hand_count_and_the_json_fields():
    t = pagedkv.parse_trace(MOONCAKE_SAMPLE, "mooncake")
    r = pagedkv.replay(t, page_size=16, num_pages=1024)
    assert set(r) == REPLAY_FIELDS
    # B shares block 1 with A (32 pages); C repeats A: (1000 - 1) // 16 = 62 pages.
    assert r["hit_tokens"] == 512 + 992
    assert r["tokens"] == 3100
    assert r["token_hit_rate"] == pytest.approx(1504 / 3100)
    assert r["evictions"] == 0
    assert r["hash"] == "xxh3_128"
    assert r["ideal_hit_tokens"] == r["hit_tokens"]
    ideal = pagedkv.ideal_hits(t, 16)
    assert ideal["hit_tokens"] == 1504
    assert ideal["unbounded_num_pages"] == 1 + 63 + 37 + 1


def test_replay_sha256_and_limit():
    t = pagedkv.default_workload(num_single_requests=60, num_chats=8)
    x = pagedkv.replay(t, 16, 512)
    s = pagedkv.replay(t, 16, 512, hash="sha256")
    assert s["hash"] == "sha256"
    assert s["hit_tokens"] == x["hit_tokens"]
    first = pagedkv.replay(t, 16, 512, limit=10)
    assert first["requests"] == 10


def test_unbounded_capacity_reaches_the_ideal_and_smaller_ones_never_exceed_it():
    t = pagedkv.default_workload(num_single_requests=80, num_chats=10)
    ideal = pagedkv.ideal_hits(t, 16)
    full = pagedkv.replay(t, 16, ideal["unbounded_num_pages"])
    assert full["evictions"] == 0
    assert full["hit_tokens"] == ideal["hit_tokens"]
    for num_pages in (128, 512, 2048):
        assert pagedkv.replay(t, 16, num_pages)["hit_tokens"] <= ideal["hit_tokens"]


def test_errors_map_to_value_error():
    t = pagedkv.parse_trace(MOONCAKE_SAMPLE, "mooncake")
    with pytest.raises(ValueError, match="num_pages"):
        pagedkv.replay(t, 16, 1)
    with pytest.raises(ValueError, match="page_size"):
        pagedkv.replay(t, 0, 100)
    with pytest.raises(ValueError, match="hash"):
        pagedkv.replay(t, 16, 100, hash="md5")
    with pytest.raises(ValueError, match=r"bad\.jsonl:1: field 'hash_ids'"):
        pagedkv.parse_trace(
            '{"timestamp": 0, "input_length": 600, "output_length": 1, "hash_ids": [1]}',
            "mooncake", "bad.jsonl")
    with pytest.raises(ValueError, match="format"):
        pagedkv.parse_trace("{}", "csv")
    # The trace is still usable after the failures.
    assert pagedkv.replay(t, 16, 1024)["hit_tokens"] == 1504


def test_load_files_and_directories(tmp_path):
    (tmp_path / "a.jsonl").write_text(MOONCAKE_SAMPLE + "\n")
    t = pagedkv.load_trace(str(tmp_path / "a.jsonl"))
    assert len(t) == 3
    session = {"block_size": 64, "hash_id_scope": "local",
               "requests": [{"t": 0, "in": 130, "out": 1, "hash_ids": [1, 2]},
                            {"t": 5, "in": 130, "out": 1, "hash_ids": [1, 2]}]}
    d = tmp_path / "sessions"
    d.mkdir()
    (d / "s1.json").write_text(json.dumps(session))
    (d / "s2.json").write_text(json.dumps(session))
    k = pagedkv.load_trace(str(d))
    assert len(k) == 4
    assert k.block_size == 64
    # Scoped by file: s1 and s2 do not share blocks; within a file the tails stay private.
    assert k[0].block_keys[0] != k[1].block_keys[0]
    r = pagedkv.replay(k, 16, 100)
    assert r["hit_tokens"] == 2 * 128  # each session's second request hits its 2 full blocks
    with pytest.raises(ValueError, match="missing.jsonl"):
        pagedkv.load_trace(str(tmp_path / "missing.jsonl"))


def test_real_traces_load(shared_dir):
    traces = shared_dir / "data" / "traces"
    m = pagedkv.load_trace(str(traces / "mooncake" / "conversation_trace.jsonl"))
    assert len(m) == 12031
    assert m.num_tokens == 144793823
    k = pagedkv.load_trace(str(traces / "kv-cache-tester"), "kv-cache-tester")
    assert len(k) == 103
    r = pagedkv.replay(k, 16, 65536)
    assert 0.0 < r["token_hit_rate"] <= r["ideal_token_hit_rate"] <= 1.0
