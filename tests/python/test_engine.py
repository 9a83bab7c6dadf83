"""The engine end to end from Python: pagedkv's logits against an independent PyTorch
implementation of rules 50-56, quantized KV caches against the float32 cache, and
LLMEngine.generate (greedy tokens agree with the reference wherever the top-2 gap is clear)."""

import os
import shutil

import numpy as np
import pytest

import pagedkv

import torch  # noqa: E402,F401  (Debian python3-torch; scripts/deps.sh installs it)
import torch_llama_reference as ref  # noqa: E402

# Positions run past original_max_position_embeddings (64) of the tiny preset, so llama3's
# scaled band is exercised.
PROMPT = [(i * 37 + 11) % 256 for i in range(100)]


@pytest.fixture(scope="module", params=["tiny", "tiny-qwen2"])
def model_dir(request, tmp_path_factory):
    d = tmp_path_factory.mktemp(request.param)
    pagedkv.make_model(request.param, str(d), seed=3)
    return str(d)


@pytest.fixture(scope="module")
def reference(model_dir):
    return ref.logits(model_dir, PROMPT).numpy()


@pytest.mark.parametrize("chunk_size,page_order_seed", [(0, 0), (7, 5), (33, 9)])
def test_float32_logits_match_torch(model_dir, reference, chunk_size, page_order_seed):
    got = pagedkv.score_tokens(model_dir, PROMPT, chunk_size=chunk_size,
                               page_order_seed=page_order_seed)
    assert got.shape == reference.shape
    assert np.std(reference) > 0.3  # rule 56: logits are not flat
    np.testing.assert_allclose(got, reference, atol=1e-4, rtol=0)


def test_fast_mode_logits_match_torch(model_dir, reference):
    got = pagedkv.score_tokens(model_dir, PROMPT, deterministic=False)
    np.testing.assert_allclose(got, reference, atol=1e-4, rtol=0)


# Max |logit - float32-cache logit| over the prompt, documented in docs/engine.md.
KV_BOUNDS = {"bfloat16": 0.05, "float16": 0.01, "int8": 0.15, "fp8_e4m3": 0.6}


@pytest.mark.parametrize("dtype", sorted(KV_BOUNDS))
def test_quantized_kv_caches_stay_within_their_bounds(model_dir, dtype):
    base = pagedkv.score_tokens(model_dir, PROMPT)
    got = pagedkv.score_tokens(model_dir, PROMPT, kv_cache_dtype=dtype, page_order_seed=2)
    err = np.max(np.abs(got - base))
    assert err <= KV_BOUNDS[dtype], f"{dtype}: max |diff| {err}"
    assert err > 0  # the cache really stored the quantized values


def test_greedy_generation_follows_the_reference(model_dir):
    engine = pagedkv.LLMEngine(model=model_dir, num_pages=64)
    params = pagedkv.SamplingParams(max_tokens=12, temperature=0.0, ignore_eos=True, logprobs=5)
    out = engine.generate([PROMPT[:40]], params)[0]
    assert len(out.output_token_ids) == 12
    seq = list(PROMPT[:40])
    for step, tok in enumerate(out.output_token_ids):
        row = ref.logits(model_dir, seq).numpy()[-1]
        top2 = np.sort(row)[-2:]
        if top2[1] - top2[0] > 1e-3:
            assert tok == int(np.argmax(row)), f"step {step}"
        # Logprobs: a dict of the top 5 (plus the sampled token), log_softmax of the logits.
        lp = out.logprobs[step]
        assert tok in lp and len(lp) >= 5
        ls = row - (np.log(np.sum(np.exp(row - row.max()))) + row.max())
        for t, v in lp.items():
            assert abs(v - ls[t]) < 1e-4
        seq.append(tok)
    engine.verify()
    assert engine.num_free_pages == engine.num_pages - 1


def test_generate_accepts_text_and_ids_in_prompt_order(model_dir):
    engine = pagedkv.LLMEngine(model=model_dir, num_pages=128, max_num_seqs=8,
                               max_num_batched_tokens=32)
    params = pagedkv.SamplingParams(max_tokens=4, temperature=0.7, seed=1, ignore_eos=True)
    outs = engine.generate(["Hello, paged world", [1, 2, 3], "x" * 70], params)
    assert [o.prompt_token_ids for o in outs][1] == [1, 2, 3]
    assert outs[0].prompt_token_ids == engine.encode("Hello, paged world")
    assert all(o.finish_reason == "length" and len(o.output_token_ids) == 4 for o in outs)
    assert outs[0].logprobs is None
    engine.verify()
    assert engine.num_free_pages == engine.num_pages - 1


def test_bad_options_raise_typed_errors(model_dir, tmp_path):
    with pytest.raises(ValueError):
        pagedkv.LLMEngine(model=model_dir, page_size=0)
    with pytest.raises(ValueError):
        pagedkv.LLMEngine(model=model_dir, kv_cache_dtype="float64")
    with pytest.raises(ValueError, match="architectures"):
        (tmp_path / "config.json").write_text("{}")
        pagedkv.LLMEngine(model=str(tmp_path))
    # A valid config over a truncated weights file: FormatError naming the file.
    shutil.copy(os.path.join(model_dir, "config.json"), tmp_path / "config.json")
    with open(os.path.join(model_dir, "model.safetensors"), "rb") as f:
        (tmp_path / "model.safetensors").write_bytes(f.read()[:1000])
    with pytest.raises(pagedkv.FormatError, match="model.safetensors"):
        pagedkv.LLMEngine(model=str(tmp_path))
