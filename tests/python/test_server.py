"""`pagedkv serve`: the OpenAI-compatible HTTP server, over real HTTP on 127.0.0.1.

The server runs as a subprocess on a free port with a tiny generated model. Greedy outputs must
equal pagedkv.LLMEngine.generate on the same prompts, alone or 64 streams at once; errors are
400s naming the field and leave the server serving; a client that disconnects frees its pages;
SIGTERM exits 0.
"""

import concurrent.futures
import json
import pathlib
import re
import signal
import subprocess
import time

import pytest
import requests

import pagedkv

NUM_PAGES = 512
MAX_MODEL_LEN = 2048


@pytest.fixture(scope="module")
def model(cli, tmp_path_factory) -> str:
    out = tmp_path_factory.mktemp("serve") / "tiny"
    r = subprocess.run([str(cli), "make-model", "--preset", "tiny", str(out)],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    return str(out)


class Server:
    """A `pagedkv serve` subprocess on a free port (--port 0; the port is read from stdout)."""

    def __init__(self, cli, model, *extra):
        self.proc = subprocess.Popen(
            [str(cli), "serve", "--model", model, "--port", "0", *extra],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline()
        m = re.search(r"listening on (http://[\d.]+:\d+)", line)
        assert m, f"no address in {line!r}; stderr: {self.proc.stderr.read()}"
        self.url = m.group(1)
        deadline = time.time() + 30
        while requests.get(self.url + "/health", timeout=5).status_code != 200:
            assert time.time() < deadline, "the server never became healthy"
            time.sleep(0.05)

    def post(self, body, **kw):
        return requests.post(self.url + "/v1/completions", json=body, timeout=60, **kw)

    def metrics(self) -> dict:
        text = requests.get(self.url + "/metrics", timeout=10).text
        out = {}
        for line in text.splitlines():
            if line.startswith("#"):
                continue
            name, value = line.rsplit(" ", 1)
            out[re.sub(r"\{.*\}", "", name) if "_bucket" not in name else name] = float(value)
        return out

    def wait_idle(self, timeout=10.0):
        """Until no request runs or waits and every KV page is free again."""
        deadline = time.time() + timeout
        while True:
            m = self.metrics()
            if (m["pagedkv:kv_cache_usage_perc"] == 0 and m["pagedkv:num_requests_running"] == 0
                    and m["pagedkv:num_requests_waiting"] == 0):
                return m
            assert time.time() < deadline, f"not idle: {m}"
            time.sleep(0.05)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(timeout=30)


@pytest.fixture(scope="module")
def server(cli, model):
    s = Server(cli, model, "--num-pages", str(NUM_PAGES), "--max-model-len", str(MAX_MODEL_LEN),
               "--max-body-bytes", "16384")
    yield s
    s.stop()


@pytest.fixture(scope="module")
def engine(model):
    return pagedkv.LLMEngine(model=model, num_pages=NUM_PAGES, max_model_len=MAX_MODEL_LEN)


def greedy(engine, prompts, max_tokens):
    params = pagedkv.SamplingParams(max_tokens=max_tokens, temperature=0.0, ignore_eos=True)
    return [o.output_token_ids for o in engine.generate(prompts, params)]


def stream_events(resp):
    """The JSON payloads of an SSE response, and whether it ended with [DONE]."""
    events, done = [], False
    for line in resp.iter_lines():
        if not line:
            continue
        assert line.startswith(b"data: "), line
        data = line[len(b"data: "):]
        if data == b"[DONE]":
            done = True
            break
        events.append(json.loads(data))
    return events, done


def stream_completion(server, body):
    with server.post({**body, "stream": True}, stream=True) as r:
        assert r.status_code == 200, r.text
        assert r.headers["Content-Type"].startswith("text/event-stream")
        events, done = stream_events(r)
    assert done
    return events


def test_models_and_health(server, model):
    r = requests.get(server.url + "/v1/models", timeout=10).json()
    assert r["object"] == "list"
    assert r["data"][0]["id"] == pathlib.Path(model).name
    assert requests.get(server.url + "/health", timeout=10).status_code == 200


def test_non_streaming_greedy_equals_the_engine(server, engine):
    prompts = [[5, 6, 7, 8, 9, 10], list(b"Hello, paged world")]
    want = greedy(engine, prompts, 8)
    for i, prompt in enumerate(prompts):
        body = {"prompt": prompt if i == 0 else "Hello, paged world", "max_tokens": 8,
                "temperature": 0, "ignore_eos": True, "return_token_ids": True}
        r = server.post(body)
        assert r.status_code == 200, r.text
        out = r.json()
        assert out["object"] == "text_completion" and out["id"].startswith("cmpl-")
        choice = out["choices"][0]
        assert choice["token_ids"] == want[i]
        assert choice["prompt_token_ids"] == prompt
        assert choice["finish_reason"] == "length"
        assert out["usage"] == {"prompt_tokens": len(prompt), "completion_tokens": 8,
                                "total_tokens": len(prompt) + 8}


def test_streaming_equals_non_streaming(server):
    body = {"prompt": [3, 1, 4, 1, 5, 9, 2, 6], "max_tokens": 10, "temperature": 0,
            "ignore_eos": True, "return_token_ids": True, "logprobs": 2}
    whole = server.post(body).json()["choices"][0]
    events = stream_completion(server, {**body, "stream_options": {"include_usage": True}})
    chunks = [e for e in events if e["choices"]]
    assert sum((c["choices"][0]["token_ids"] for c in chunks), []) == whole["token_ids"]
    assert "".join(c["choices"][0]["text"] for c in chunks) == whole["text"]
    assert chunks[-1]["choices"][0]["finish_reason"] == "length"
    assert all(c["choices"][0]["finish_reason"] is None for c in chunks[:-1])
    tokens = sum((c["choices"][0]["logprobs"]["tokens"] for c in chunks), [])
    assert tokens == whole["logprobs"]["tokens"] and len(tokens) == 10
    assert events[-1]["choices"] == [] and events[-1]["usage"]["completion_tokens"] == 10


def test_logprobs_object_has_the_openai_shape(server):
    out = server.post({"prompt": "abc", "max_tokens": 4, "temperature": 0, "ignore_eos": True,
                       "logprobs": 3}).json()["choices"][0]["logprobs"]
    assert len(out["tokens"]) == len(out["token_logprobs"]) == len(out["top_logprobs"]) == 4
    assert out["text_offset"] == sorted(out["text_offset"])
    for lp, top in zip(out["token_logprobs"], out["top_logprobs"]):
        assert lp <= 0 and 1 <= len(top) <= 4
        assert max(top.values()) >= lp - 1e-6


def test_stop_string_cuts_the_text_and_finishes_with_stop(server):
    full = server.post({"prompt": "xyz", "max_tokens": 12, "temperature": 0,
                        "ignore_eos": True}).json()["choices"][0]["text"]
    stop = full[3:5]
    assert stop, full
    out = server.post({"prompt": "xyz", "max_tokens": 12, "temperature": 0, "ignore_eos": True,
                       "stop": [stop]}).json()
    assert out["choices"][0]["text"] == full[:full.index(stop)]
    assert out["choices"][0]["finish_reason"] == "stop"
    assert out["usage"]["completion_tokens"] < 12
    server.wait_idle()


def test_64_concurrent_streams_equal_single_client_outputs(server, engine):
    shared = list(range(10, 42))  # two full pages shared by every prompt
    prompts = [shared + [100 + i, 200 + i % 7] for i in range(64)]
    want = greedy(engine, prompts, 6)
    before = server.metrics()

    def one(i):
        body = {"prompt": prompts[i], "max_tokens": 6, "temperature": 0, "ignore_eos": True,
                "return_token_ids": True, "cache_salt": "tenant-a" if i % 2 else "tenant-b"}
        events = stream_completion(server, body)
        return sum((e["choices"][0]["token_ids"] for e in events if e["choices"]), [])

    with concurrent.futures.ThreadPoolExecutor(max_workers=64) as pool:
        got = list(pool.map(one, range(64)))
    assert got == want
    after = server.wait_idle()
    # Both tenants reuse their own copy of the shared pages.
    assert after["pagedkv:prefix_cache_hits_total"] - before["pagedkv:prefix_cache_hits_total"] > 0
    assert after["pagedkv:generation_tokens_total"] - before["pagedkv:generation_tokens_total"] \
        == 64 * 6
    assert after["pagedkv:time_to_first_token_seconds_count"] >= 64


def test_disconnect_mid_stream_frees_the_pages(server):
    r = server.post({"prompt": [7] * 40, "max_tokens": 2000, "temperature": 0,
                     "ignore_eos": True, "stream": True}, stream=True)
    assert r.status_code == 200
    lines = r.iter_lines()
    assert next(line for line in lines if line).startswith(b"data: ")
    before = server.metrics()
    assert before["pagedkv:kv_cache_usage_perc"] > 0
    r.close()  # the client goes away mid-stream
    m = server.wait_idle()
    assert m["pagedkv:generation_tokens_total"] < before["pagedkv:generation_tokens_total"] + 1000
    assert server.post({"prompt": "ok", "max_tokens": 2}).status_code == 200


@pytest.mark.parametrize("body,param", [
    ('{"prompt": "x", ', None),                                   # malformed JSON
    ('[1, 2]', None),                                             # not an object
    ('{"prompt": 5}', "prompt"),                                  # wrong type
    ('{"prompt": "x", "model": "other"}', "model"),               # unknown model
    ('{"prompt": [1, 2], "max_tokens": 0}', "max_tokens"),
    ('{"prompt": [1, 2], "max_tokens": "8"}', "max_tokens"),
    ('{"prompt": [1, 2], "temperature": -1}', "temperature"),
    ('{"prompt": [1, 2], "top_p": 2}', "top_p"),
    ('{"prompt": [1, 2], "stop": [3]}', "stop"),
    ('{"prompt": [1, 2], "logprobs": 99}', "logprobs"),
    ('{"prompt": [1, 2], "n": 2}', "n"),
    ('{"prompt": [1, 2], "echo": true}', "echo"),
    ('{"prompt": ["a", "b"]}', "prompt"),                         # several prompts
    ('{"prompt": [1, 99999]}', "prompt"),                         # outside the vocabulary
    ('{"prompt": [1, 2], "stream_options": {"include_usage": "y"}}',
     "stream_options.include_usage"),
    ('{"prompt": %s}' % json.dumps([1] * MAX_MODEL_LEN), "prompt"),  # longer than the model
    ('{"prompt": [1, 2], "max_tokens": %d}' % MAX_MODEL_LEN, "max_tokens"),
    ('{"prompt": "%s"}' % ("a" * 20000), "body"),                  # over --max-body-bytes
])
def test_bad_requests_get_400_naming_the_field_and_change_nothing(server, body, param):
    r = requests.post(server.url + "/v1/completions", data=body,
                      headers={"Content-Type": "application/json"}, timeout=30)
    assert r.status_code == 400, r.text
    err = r.json()["error"]
    assert err["type"] == "invalid_request_error"
    assert err["param"] == param
    assert err["message"]
    # Greedy and ignore_eos: a sampled first token may be EOS, which would end after one token.
    ok = server.post({"prompt": [1, 2, 3], "max_tokens": 2, "temperature": 0, "ignore_eos": True})
    assert ok.status_code == 200 and ok.json()["usage"]["completion_tokens"] == 2
    server.wait_idle()


@pytest.fixture(scope="module")
def small_server(cli, model):
    # One running request, one queued; 127 usable pages of 16 tokens (2,032 tokens).
    s = Server(cli, model, "--num-pages", "128", "--max-num-seqs", "1", "--max-queued-requests",
               "1")
    yield s
    s.stop()


def test_prompt_the_pool_can_never_hold_gets_400(small_server):
    r = small_server.post({"prompt": [1] * 2040, "max_tokens": 4})  # needs 128 pages
    assert r.status_code == 400, r.text
    assert r.json()["error"]["param"] == "prompt"
    assert small_server.post({"prompt": [1, 2], "max_tokens": 2}).status_code == 200


def test_more_than_max_queued_requests_get_503_at_once(small_server):
    long = {"prompt": [4, 5, 6], "max_tokens": 1500, "temperature": 0, "ignore_eos": True,
            "stream": True}
    first = small_server.post(long, stream=True)
    second = small_server.post(long, stream=True)
    assert first.status_code == 200 and second.status_code == 200
    t0 = time.time()
    third = small_server.post({"prompt": [1, 2], "max_tokens": 2})
    assert third.status_code == 503, third.text
    assert time.time() - t0 < 5
    assert third.json()["error"]["message"]
    first.close()
    second.close()
    small_server.wait_idle()
    assert small_server.post({"prompt": [1, 2], "max_tokens": 2}).status_code == 200


def test_sigterm_with_a_request_in_flight_exits_zero(cli, model):
    s = Server(cli, model, "--num-pages", "64")
    r = s.post({"prompt": [1, 2, 3], "max_tokens": 2000, "ignore_eos": True, "stream": True},
               stream=True)
    assert r.status_code == 200
    s.proc.send_signal(signal.SIGTERM)
    events, done = stream_events(r)
    assert done and events[-1]["choices"][0]["finish_reason"] == "abort"
    assert s.proc.wait(timeout=30) == 0
