#!/usr/bin/env python3
"""Throughput and latency of `pagedkv serve` against the same engine in one process.

Starts `pagedkv serve` on a free local port with a SmolLM-135M-shaped random model (made with
`pagedkv make-model --preset smollm-135m` unless --model is given), then for 1, 16 and 64
concurrent streaming clients sends --num-requests greedy completions (prompts that share a
prefix, --output-tokens each, ignore_eos) and reports requests/s, output tokens/s, and time to
first token and inter-token latency p50/p99. The same prompts then run through
pagedkv.LLMEngine.generate in this process; the last column is server / in-process throughput.

    PAGEDKV_BUILD_DIR=build python3 bench/server_bench.py --num-requests 64 --output-tokens 32
"""

import argparse
import concurrent.futures
import json
import os
import pathlib
import re
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request

import http.client


def percentile(xs, q):
    xs = sorted(xs)
    if not xs:
        return float("nan")
    k = min(len(xs) - 1, max(0, int(round(q / 100 * (len(xs) - 1)))))
    return xs[k]


def start_server(cli, model, engine_args):
    proc = subprocess.Popen([str(cli), "serve", "--model", model, "--port", "0", *engine_args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = proc.stdout.readline()
    m = re.search(r"listening on http://([\d.]+):(\d+)", line)
    if not m:
        raise RuntimeError(f"server did not start: {line!r} {proc.stderr.read()}")
    host, port = m.group(1), int(m.group(2))
    for _ in range(600):
        try:
            with urllib.request.urlopen(f"http://{host}:{port}/health", timeout=5) as r:
                if r.status == 200:
                    return proc, host, port
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("server never became healthy")


def one_stream(host, port, prompt, output_tokens):
    """(ttft, [inter-token gaps], tokens) of one streaming request, timed at the client."""
    conn = http.client.HTTPConnection(host, port, timeout=600)
    body = json.dumps({"prompt": prompt, "max_tokens": output_tokens, "temperature": 0,
                       "ignore_eos": True, "stream": True, "return_token_ids": True})
    t0 = time.perf_counter()
    conn.request("POST", "/v1/completions", body, {"Content-Type": "application/json"})
    resp = conn.getresponse()
    assert resp.status == 200, resp.read()
    times, tokens = [], 0
    for raw in resp:
        line = raw.strip()
        if not line.startswith(b"data: "):
            continue
        data = line[6:]
        if data == b"[DONE]":
            break
        ev = json.loads(data)
        n = len(ev["choices"][0].get("token_ids", [])) if ev["choices"] else 0
        if n:
            now = time.perf_counter()
            times.extend([now] * n)
            tokens += n
    conn.close()
    ttft = times[0] - t0
    gaps = [b - a for a, b in zip(times, times[1:])]
    return ttft, gaps, tokens


def run_clients(host, port, prompts, output_tokens, concurrency):
    t0 = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(max_workers=concurrency) as pool:
        results = list(pool.map(lambda p: one_stream(host, port, p, output_tokens), prompts))
    wall = time.perf_counter() - t0
    ttfts = [r[0] for r in results]
    gaps = [g for r in results for g in r[1]]
    tokens = sum(r[2] for r in results)
    return {"concurrency": concurrency, "requests_per_s": len(prompts) / wall,
            "output_tokens_per_s": tokens / wall, "ttft_p50": percentile(ttfts, 50),
            "ttft_p99": percentile(ttfts, 99), "itl_p50": percentile(gaps, 50),
            "itl_p99": percentile(gaps, 99), "wall_s": wall}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--build-dir", default=os.environ.get("PAGEDKV_BUILD_DIR", "build"))
    ap.add_argument("--model", help="model directory (default: a generated smollm-135m)")
    ap.add_argument("--num-requests", type=int, default=64)
    ap.add_argument("--output-tokens", type=int, default=32)
    ap.add_argument("--prompt-len", type=int, default=64)
    ap.add_argument("--shared-prefix-len", type=int, default=48)
    ap.add_argument("--concurrency", default="1,16,64")
    ap.add_argument("--num-pages", type=int, default=4096)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()

    build = pathlib.Path(args.build_dir).resolve()
    cli = build / "apps" / "pagedkv"
    sys.path.insert(0, str(build / "python"))
    import pagedkv  # noqa: E402  (the freshly built module)

    tmp = tempfile.TemporaryDirectory()
    model = args.model
    if model is None:
        model = os.path.join(tmp.name, "smollm-135m")
        subprocess.run([str(cli), "make-model", "--preset", "smollm-135m", model], check=True,
                       capture_output=True)

    shared = [(7 * i) % 1000 + 1 for i in range(args.shared_prefix_len)]
    prompts = [shared + [(13 * i + j) % 5000 + 1000
                         for j in range(args.prompt_len - args.shared_prefix_len)]
               for i in range(args.num_requests)]
    engine_args = ["--num-pages", str(args.num_pages)]

    rows = []
    proc, host, port = start_server(cli, model, engine_args)
    try:
        one_stream(host, port, prompts[0], 2)  # warm-up
        for c in [int(x) for x in args.concurrency.split(",")]:
            rows.append(run_clients(host, port, prompts, args.output_tokens, c))
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)

    engine = pagedkv.LLMEngine(model=model, num_pages=args.num_pages)
    params = pagedkv.SamplingParams(max_tokens=args.output_tokens, temperature=0.0,
                                    ignore_eos=True)
    engine.generate([prompts[0]], pagedkv.SamplingParams(max_tokens=2))  # warm-up
    t0 = time.perf_counter()
    outs = engine.generate(prompts, params)
    wall = time.perf_counter() - t0
    inproc_tps = sum(len(o.output_token_ids) for o in outs) / wall
    for r in rows:
        r["server_over_inprocess"] = r["output_tokens_per_s"] / inproc_tps

    if args.json:
        print(json.dumps({"rows": rows, "inprocess_output_tokens_per_s": inproc_tps,
                          "inprocess_requests_per_s": len(prompts) / wall}, indent=2))
        return
    print(f"{args.num_requests} requests x {args.output_tokens} output tokens, prompts of "
          f"{args.prompt_len} tokens ({args.shared_prefix_len} shared), model {model}")
    print(f"{'clients':>7} {'req/s':>8} {'out tok/s':>10} {'TTFT p50':>9} {'TTFT p99':>9} "
          f"{'ITL p50':>8} {'ITL p99':>8} {'vs in-proc':>10}")
    for r in rows:
        print(f"{r['concurrency']:>7} {r['requests_per_s']:>8.2f} {r['output_tokens_per_s']:>10.1f}"
              f" {r['ttft_p50'] * 1e3:>7.1f}ms {r['ttft_p99'] * 1e3:>7.1f}ms"
              f" {r['itl_p50'] * 1e3:>6.1f}ms {r['itl_p99'] * 1e3:>6.1f}ms"
              f" {r['server_over_inprocess']:>10.2f}")
    print(f"in-process LLMEngine.generate: {len(prompts) / wall:.2f} req/s, "
          f"{inproc_tps:.1f} output tok/s (all {len(prompts)} prompts at once)")


if __name__ == "__main__":
    main()
