"""Page hashes: the C++ implementation against an independent pure-Python implementation of
docs/hash-spec.md (hashlib + xxhash), the spec's golden table, and the Request API."""

import hashlib
import struct

import pytest
import xxhash
from hypothesis import given, settings
from hypothesis import strategies as st

import pagedkv

ALGOS = ["xxh3_128", "sha256"]
ROOT_LABEL = b"pagedkv/page-hash/v1/root"


# ---- the spec, written from docs/hash-spec.md only ----------------------------------------
def _digest(algo, msg):
    if algo == "xxh3_128":
        d = xxhash.xxh3_128(msg, seed=0).digest()  # canonical big-endian 16 bytes
    else:
        d = hashlib.sha256(msg).digest()
    if not any(d):
        d = d[:-1] + b"\x01"
    return d


def ref_root(algo):
    return _digest(algo, ROOT_LABEL)


def ref_hash_page(algo, parent, tokens, lora_id=None, mm_inputs=(), cache_salt=""):
    """mm_inputs: (content_hash, offset) pairs of the inputs overlapping the page."""
    msg = bytearray(parent if parent is not None else ref_root(algo))
    msg += struct.pack("<I", len(tokens))
    msg += struct.pack("<%di" % len(tokens), *tokens)
    if lora_id is not None:
        msg += b"\x01" + struct.pack("<q", lora_id)
    for content_hash, offset in mm_inputs:
        b = content_hash.encode("utf-8")
        msg += b"\x02" + struct.pack("<I", len(b)) + b + struct.pack("<q", offset)
    salt = cache_salt.encode("utf-8")
    if salt:
        msg += b"\x03" + struct.pack("<I", len(salt)) + salt
    return _digest(algo, bytes(msg))


def ref_request_hashes(algo, tokens, page_size, lora_id=None, mm_inputs=(), cache_salt=""):
    out = []
    for i in range(len(tokens) // page_size):
        start, end = i * page_size, (i + 1) * page_size
        mm = [(h, off) for h, off, ln in mm_inputs if off < end and off + ln > start]
        out.append(ref_hash_page(algo, out[-1] if out else None, tokens[start:end], lora_id, mm,
                                 cache_salt if i == 0 else ""))
    return out


# ---- golden table (docs/hash-spec.md, "Golden vectors") -------------------------------------
R16 = list(range(16))
GOLDEN = {
    # name: (kwargs for hash_page with parent None, xxh3_128 hex, sha256 hex)
    "page0": (dict(tokens=R16), "1d9778e14ccc2e83b3c91b5e5ae188e1",
              "4bfd3ee1d15e03d55a378d8b5d267933b239abfa4fd75ed30f554cd04c727d8b"),
    "short": (dict(tokens=[1, 2, 3]), "45deef38982b5c64b11ab1c07bdbbb32",
              "2444f8c25bacc58a0e9604734b5ed205982dfaf325a9f5ebcf35a816d2743c4f"),
    "lora7": (dict(tokens=R16, lora_id=7), "424edb25c55fb0c198267acfe38c370a",
              "40ad63683be3103e02b2a96ff48fd7cf4f10a35dff0c2448e02bbf2b2488f9e1"),
    "salt": (dict(tokens=R16, cache_salt="tenant-a"), "1e468d9d5bbc75aea59416d52cc8df7d",
             "e64bb14aafd8ebceb26c139e1732c3c964b9747c66eb6c08db23859284aa9c7d"),
    "mm": (dict(tokens=R16, mm_inputs=[("img-0", 4, 8)]), "7fd6f104951db35e0576c1c0e8565e41",
           "2d4cb1deea08aecdfdf917772acdcc5695c3097fe61358d87ff5e58bb92b035d"),
    "all": (dict(tokens=R16, lora_id=7, mm_inputs=[("a", 2, 3), ("b", 10, 3)], cache_salt="s"),
            "072b3a5a019e6448beeb94b09d9d99a1",
            "51669783372c3c1e543358cb3d19bc137fe4979d795cd882f8f7f251e7c70326"),
    "edge": (dict(tokens=[2147483647, 0, 1], lora_id=-1), "5e22e8b5c275262f97533a00cde12c7b",
             "6b934255e9736fed4542475becbef64f5ce8ec94cdc3e1809b6452d57c3ded76"),
    "worked": (dict(tokens=[1, 2, 3], lora_id=-1, mm_inputs=[("img-0", 4, 1)], cache_salt="s"),
               "dca901b4fc7a732eed9d841f14086bf8",
               "4c5eb98d799f48d9f27edf9229403c46132e80f59a99ae32671dff20b7f587f3"),
    "large": (dict(tokens=list(range(300)), lora_id=1, cache_salt="tenant-a"),
              "5924dcd981f2e1f8df4a510c1f33c936",
              "e586d3e00ca398a207da907b6903267a6cda3e6153ed4e67430c55e52fd12e92"),
}
WORKED_MESSAGE = ("f6b40017283a1ff01294cd5a537f0885" "03000000" "010000000200000003000000"
                  "01ffffffffffffffff" "0205000000696d672d300400000000000000" "030100000073")
GOLDEN_ROOT = {"xxh3_128": "f6b40017283a1ff01294cd5a537f0885",
               "sha256": "1f4af830164235e9a8b97d86ddd6c9dfab8198004613769ab83cea5b6e69c7d2"}
GOLDEN_CHAIN = {
    "xxh3_128": ["1d9778e14ccc2e83b3c91b5e5ae188e1", "e4d482a46393c451be65a1658a59774b",
                 "415ae77af43d5eee8f82d5cd17d7d005"],
    "sha256": ["4bfd3ee1d15e03d55a378d8b5d267933b239abfa4fd75ed30f554cd04c727d8b",
               "dd5180a3221b9c7d718ceeec95a9f105d33bda4b1fefd4cbc8d7469840908408",
               "1ead585a8ce6b86a91be13a782beb7462a08da7ee257faab9b90d080c06abff8"],
}
GOLDEN_REQUEST = {
    "xxh3_128": ["24f2e0409b0af369ca520d626efed27a", "a1af1b9e9ec659336036700e38582f33",
                 "9053bdcc915ce69aa441828164d59ae7"],
    "sha256": ["86cb2ef81ca77e39a3678c668a47f0293f01bf4e408f750288b54bd6b6d959fe",
               "0500b6470a6099e464d49e9bf8a93e6a93113a01d99b4af356689f2803eec11f",
               "371fea29e22ca91e5c72fa9c496779f822ec031fc2099a14c5a3f31f49fda079"],
}


def test_worked_example_message_bytes():
    # docs/hash-spec.md "Worked example": the exact message of the "worked" vector.
    root = ref_root("xxh3_128")
    msg = (root + struct.pack("<I", 3) + struct.pack("<3i", 1, 2, 3)
           + b"\x01" + struct.pack("<q", -1)
           + b"\x02" + struct.pack("<I", 5) + b"img-0" + struct.pack("<q", 4)
           + b"\x03" + struct.pack("<I", 1) + b"s")
    assert msg.hex() == WORKED_MESSAGE
    assert xxhash.xxh3_128(msg).hexdigest() == GOLDEN["worked"][1]


@pytest.mark.parametrize("algo", ALGOS)
def test_root_matches_golden_and_reference(algo):
    assert pagedkv.PageHasher(algo).root().hex() == GOLDEN_ROOT[algo]
    assert ref_root(algo).hex() == GOLDEN_ROOT[algo]


@pytest.mark.parametrize("algo", ALGOS)
@pytest.mark.parametrize("name", sorted(GOLDEN))
def test_single_pages_match_golden_and_reference(algo, name):
    kwargs, xxh, sha = GOLDEN[name]
    want = xxh if algo == "xxh3_128" else sha
    got = pagedkv.PageHasher(algo).hash_page(None, **kwargs)
    assert got.hex() == want
    ref_kwargs = dict(kwargs)
    ref_kwargs["mm_inputs"] = [(h, off) for h, off, _ in kwargs.get("mm_inputs", [])]
    assert ref_hash_page(algo, None, **ref_kwargs).hex() == want


@pytest.mark.parametrize("algo", ALGOS)
def test_three_page_chain_matches_golden(algo):
    hasher = pagedkv.PageHasher(algo)
    parent = None
    for i in range(3):
        parent = hasher.hash_page(parent, list(range(16 * i, 16 * i + 16)))
        assert parent.hex() == GOLDEN_CHAIN[algo][i]
        assert len(parent) == hasher.digest_size == (16 if algo == "xxh3_128" else 32)


@pytest.mark.parametrize("algo", ALGOS)
def test_request_with_salt_lora_and_image_matches_golden(algo):
    req = pagedkv.Request("golden", list(range(48)), cache_salt="tenant-a", lora_id=3,
                          mm_inputs=[("image-hash", 10, 12)], hash_algorithm=algo)
    assert [h.hex() for h in req.page_hashes(16)] == GOLDEN_REQUEST[algo]
    assert ref_request_hashes(algo, list(range(48)), 16, 3, [("image-hash", 10, 12)],
                              "tenant-a") == req.page_hashes(16)


# ---- random differential: C++ against the pure-Python spec ---------------------------------
tokens_st = st.lists(st.integers(0, 2**31 - 1), min_size=1, max_size=80)
lora_st = st.one_of(st.none(), st.integers(-(2**63), 2**63 - 1))
salt_st = st.text(max_size=12)
hash_text_st = st.text(min_size=1, max_size=10)


@settings(max_examples=150, deadline=None)
@given(algo=st.sampled_from(ALGOS), tokens=tokens_st, lora_id=lora_st, salt=salt_st,
       with_parent=st.booleans(),
       mm=st.lists(st.tuples(hash_text_st, st.integers(-(2**40), 2**40), st.integers(1, 100)),
                   max_size=3))
def test_hash_page_matches_reference(algo, tokens, lora_id, salt, with_parent, mm):
    hasher = pagedkv.PageHasher(algo)
    mm = sorted(mm, key=lambda x: x[1])
    parent = hasher.hash_page(None, [7, 8, 9]) if with_parent else None
    if with_parent:
        salt = ""  # the salt is a page-0 key
    got = hasher.hash_page(parent, tokens, lora_id=lora_id, mm_inputs=mm, cache_salt=salt)
    assert got == ref_hash_page(algo, parent, tokens, lora_id, [(h, o) for h, o, _ in mm], salt)


@st.composite
def request_case(draw):
    n = draw(st.integers(1, 120))
    prompt = draw(st.lists(st.integers(0, 200000), min_size=n, max_size=n))
    mm, pos = [], 0
    for k in range(draw(st.integers(0, 4))):
        start = draw(st.integers(pos, n))
        if start >= n:
            break
        length = draw(st.integers(1, n - start))
        mm.append((f"h{k}-" + draw(st.text(max_size=4)), start, length))
        pos = start + length
    appends = draw(st.lists(st.lists(st.integers(0, 1000), max_size=20), max_size=5))
    return dict(
        algo=draw(st.sampled_from(ALGOS)), prompt=prompt, mm=mm, appends=appends,
        salt=draw(st.one_of(st.none(), salt_st)), lora_id=draw(lora_st),
        page_sizes=draw(st.lists(st.integers(1, 40), min_size=1, max_size=3, unique=True)))


@settings(max_examples=100, deadline=None)
@given(case=request_case())
def test_request_incremental_hashes_match_reference(case):
    algo = case["algo"]
    req = pagedkv.Request("r", case["prompt"], cache_salt=case["salt"], lora_id=case["lora_id"],
                          mm_inputs=case["mm"], hash_algorithm=algo)
    for ps in case["page_sizes"]:
        req.page_hashes(ps)  # track from the start: later pages are hashed as they fill
    for ids in case["appends"]:
        req.append_output_token_ids(ids)
    req.verify()
    tokens = req.all_token_ids
    for ps in case["page_sizes"]:
        want = ref_request_hashes(algo, tokens, ps, case["lora_id"], case["mm"],
                                  case["salt"] or "")
        assert req.page_hashes(ps) == want
    assert req.num_pages_hashed == sum(len(tokens) // ps for ps in case["page_sizes"])


# ---- Request API -----------------------------------------------------------------------------
def test_request_properties_and_lifecycle():
    req = pagedkv.Request("r1", [1, 2, 3], cache_salt="t", lora_id=5)
    assert (req.request_id, req.num_tokens, req.num_prompt_tokens, req.num_output_tokens) == (
        "r1", 3, 3, 0)
    assert (req.cache_salt, req.lora_id, req.hash_algorithm) == ("t", 5, "xxh3_128")
    req.append_output_token_ids([4, 5])
    assert req.all_token_ids == [1, 2, 3, 4, 5]
    assert req.prompt_token_ids == [1, 2, 3]
    assert req.num_output_tokens == 2
    req.num_computed_tokens = 4
    assert req.num_computed_tokens == 4


def test_request_errors_map_to_python_exceptions_and_change_nothing():
    with pytest.raises(ValueError):
        pagedkv.Request("", [1])
    with pytest.raises(ValueError):
        pagedkv.Request("r", [])
    with pytest.raises(ValueError):
        pagedkv.Request("r", [1, -1])
    with pytest.raises(ValueError):
        pagedkv.Request("r", [1, 2], mm_inputs=[("x", 1, 5)])
    with pytest.raises(ValueError):
        pagedkv.Request("r", [1], hash_algorithm="md5")
    req = pagedkv.Request("r", list(range(20)))
    before = (req.all_token_ids, req.page_hashes(16), req.num_computed_tokens)
    with pytest.raises(ValueError):
        req.num_computed_tokens = 21
    with pytest.raises(ValueError):
        req.append_output_token_ids([3, -4])
    with pytest.raises(ValueError):
        req.page_hashes(0)
    assert (req.all_token_ids, req.page_hashes(16), req.num_computed_tokens) == before
    req.verify()


def test_page_hasher_errors():
    hasher = pagedkv.PageHasher()
    with pytest.raises(ValueError):
        pagedkv.PageHasher("md5")
    with pytest.raises(TypeError):
        pagedkv.PageHasher(3)
    with pytest.raises(ValueError):
        hasher.hash_page(None, [])
    with pytest.raises(ValueError):
        hasher.hash_page(b"\x01" * 32, [1])  # a sha256-sized parent for xxh3_128
    with pytest.raises(ValueError):
        hasher.hash_page(bytes(16), [1])  # all zero means "no hash"
    with pytest.raises(ValueError):
        hasher.hash_page(hasher.root(), [1], cache_salt="s")  # salt only on page 0
    with pytest.raises(ValueError):
        hasher.hash_page(None, [1], mm_inputs=[("", 0, 1)])


def test_hash_algorithm_accepts_enum_and_string():
    assert pagedkv.PageHasher(pagedkv.HashAlgorithm.sha256).algorithm == "sha256"
    assert pagedkv.PageHasher("sha256").algorithm == "sha256"
    assert pagedkv.PageHasher().algorithm == "xxh3_128"
    assert pagedkv.HashAlgorithm("xxh3_128") == pagedkv.HashAlgorithm.xxh3_128
    assert pagedkv.HashAlgorithm.sha256.digest_size == 32
    assert pagedkv.HASH_SPEC_VERSION == 1


def test_salt_isolates_tenants_and_salted_page1_keys_hold_no_salt():
    a = pagedkv.Request("a", list(range(48)), cache_salt="tenant-a")
    b = pagedkv.Request("b", list(range(48)), cache_salt="tenant-b")
    assert all(x != y for x, y in zip(a.page_hashes(16), b.page_hashes(16)))
    hasher = pagedkv.PageHasher()
    assert a.page_hashes(16)[1] == hasher.hash_page(a.page_hashes(16)[0], list(range(16, 32)))
