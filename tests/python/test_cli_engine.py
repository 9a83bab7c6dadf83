"""`pagedkv make-model`, `generate` and `bench`: a generated model runs end to end through the
command-line tool, and its output agrees with the Python engine."""

import json
import subprocess

import pytest

import pagedkv


def run(cli, *args):
    return subprocess.run([str(cli), *args], capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def model(cli, tmp_path_factory):
    out = tmp_path_factory.mktemp("cli") / "tiny"
    r = run(cli, "make-model", "--preset", "tiny", "--seed", "4", str(out))
    assert r.returncode == 0, r.stderr
    assert "3,344,640 parameters" in r.stdout
    return str(out)


def test_generate_json_matches_the_python_engine(cli, model):
    r = run(cli, "generate", "--model", model, "--prompt-ids", "5,6,7,8", "--max-tokens", "6",
            "--ignore-eos", "--logprobs", "3", "--num-pages", "64", "--json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["prompt_token_ids"] == [5, 6, 7, 8]
    assert out["finish_reason"] == "length"
    engine = pagedkv.LLMEngine(model=model, num_pages=64)
    ref = engine.generate([[5, 6, 7, 8]],
                          pagedkv.SamplingParams(max_tokens=6, temperature=0.0, ignore_eos=True,
                                                 logprobs=3))[0]
    assert out["output_token_ids"] == ref.output_token_ids
    assert len(out["logprobs"]) == 6
    for got, want in zip(out["logprobs"], ref.logprobs):
        assert {int(k): v for k, v in got.items()} == pytest.approx(want, abs=1e-6)


def test_generate_text_prompt_prints_the_completion(cli, model):
    r = run(cli, "generate", "--model", model, "--prompt", "Hello", "--max-tokens", "3",
            "--num-pages", "32")
    assert r.returncode == 0, r.stderr
    assert "generated 3 tokens" in r.stderr or "finish: stop" in r.stderr


def test_bench_json_reports_every_figure(cli, model):
    r = run(cli, "bench", "--model", model, "--num-requests", "6", "--prompt-len", "40",
            "--shared-prefix-len", "32", "--output-len", "5", "--num-pages", "128",
            "--max-num-batched-tokens", "64", "--max-num-seqs", "4", "--json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["num_requests"] == 6
    assert out["output_tokens"] == 30
    assert out["prompt_tokens"] == 240
    assert out["prefix_hit_rate"] > 0.3  # requests 2-6 find the shared 32 tokens
    assert out["free_pages_at_end"] == 127
    split = out["step_split"]
    assert abs(sum(split.values()) - 1.0) < 1e-9
    assert out["ttft_seconds"]["count"] == 6 and out["tpot_seconds"]["p50"] > 0


@pytest.mark.parametrize(
    "args,words",
    [
        (["generate", "--model", "/nonexistent", "--prompt", "x"], ["/nonexistent"]),
        (["generate", "--prompt", "x"], ["--model"]),
        (["make-model", "--preset", "huge", "/tmp/x"], ["huge"]),
        (["bench", "--kv-cache-dtype", "float64"], ["--model"]),
    ],
)
def test_bad_arguments_exit_two_with_a_message(cli, args, words):
    r = run(cli, *args)
    assert r.returncode == 2
    for w in words:
        assert w in r.stderr


def test_generate_rejects_a_bad_kv_dtype(cli, model):
    r = run(cli, "generate", "--model", model, "--prompt", "x", "--kv-cache-dtype", "float64")
    assert r.returncode == 2
    assert "float64" in r.stderr
