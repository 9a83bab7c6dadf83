"""The `pagedkv` command-line tool: exit codes, --help, --json output, the built-in workload,
for `pagedkv replay` and `pagedkv simulate`.

The binary is <PAGEDKV_BUILD_DIR>/apps/pagedkv (CTest sets PAGEDKV_BUILD_DIR).
"""

import json
import subprocess

import pytest

MOONCAKE_LINES = [
    {"timestamp": 0, "input_length": 1000, "output_length": 5, "hash_ids": [1, 2]},
    {"timestamp": 1000, "input_length": 1100, "output_length": 5, "hash_ids": [1, 3, 4]},
    {"timestamp": 2000, "input_length": 1000, "output_length": 5, "hash_ids": [1, 2]},
]


def run(cli, *args):
    return subprocess.run([str(cli), *args], capture_output=True, text=True, timeout=300)


@pytest.fixture
def trace_file(tmp_path):
    path = tmp_path / "t.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in MOONCAKE_LINES) + "\n")
    return path


def test_help_and_version_exit_zero(cli):
    top = run(cli, "--help")
    assert top.returncode == 0
    assert "replay" in top.stdout and "version" in top.stdout and "simulate" in top.stdout
    sub = run(cli, "replay", "--help")
    assert sub.returncode == 0
    for word in ("--trace", "--num-pages", "--json", "page_hit_rate", "(n - 1) // P"):
        assert word in sub.stdout
    v = run(cli, "version")
    assert v.returncode == 0
    assert v.stdout.startswith("pagedkv ")


@pytest.mark.parametrize(
    "args",
    [
        [],
        ["frobnicate"],
        ["replay", "--bogus"],
        ["replay", "--num-pages", "1"],
        ["replay", "--num-pages", "abc"],
        ["replay", "--page-size", "0"],
        ["replay", "--format", "csv"],
        ["replay", "--hash", "md5"],
        ["replay", "--trace", "/nonexistent/trace.jsonl"],
        ["simulate", "--num-pages", "1"],
        ["simulate", "--policy", "lifo"],
        ["simulate", "--max-num-seqs", "10", "--max-num-batched-tokens", "5"],
        ["simulate", "--step-ms", "-1"],
        ["simulate", "--kv-ms-per-1k-tokens", "nan"],
        ["simulate", "--default-output-tokens", "0"],
        ["simulate", "--trace", "/nonexistent/trace.jsonl"],
    ],
)
def test_bad_arguments_exit_2_with_one_line(cli, args):
    r = run(cli, *args)
    assert r.returncode == 2, r
    assert r.stdout == ""
    assert len(r.stderr.strip().splitlines()) == 1
    assert r.stderr.startswith("pagedkv: error: ")


def test_trace_parse_error_names_file_line_and_field(cli, tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps(MOONCAKE_LINES[0]) + "\n" + '{"timestamp": 1, "input_length": 5}\n')
    r = run(cli, "replay", "--trace", str(bad))
    assert r.returncode == 2
    assert "bad.jsonl:2: missing field 'output_length'" in r.stderr


def test_json_lines_one_per_capacity(cli, trace_file):
    r = run(cli, "replay", "--trace", str(trace_file), "--num-pages", "70,1024", "--json")
    assert r.returncode == 0, r.stderr
    lines = [json.loads(line) for line in r.stdout.splitlines()]
    assert [x["num_pages"] for x in lines] == [70, 1024]
    for x in lines:
        for key in ("num_pages", "page_size", "tokens", "hit_tokens", "token_hit_rate",
                    "page_hit_rate", "evictions", "seconds", "ideal_token_hit_rate"):
            assert key in x
        assert x["tokens"] == 3100
        assert x["page_size"] == 16
    assert lines[0]["hit_tokens"] == 1024  # a pool holding one request: C loses block 2
    assert lines[1]["hit_tokens"] == 1504
    assert lines[1]["evictions"] == 0


def test_limit_format_page_size_and_quiet(cli, trace_file):
    r = run(cli, "replay", "--trace", str(trace_file), "--format", "mooncake", "--page-size",
            "32", "--num-pages", "500", "--limit", "2", "--json", "--quiet", "--hash", "sha256")
    assert r.returncode == 0, r.stderr
    (x,) = [json.loads(line) for line in r.stdout.splitlines()]
    assert x["requests"] == 2
    assert x["page_size"] == 32
    assert x["hash"] == "sha256"
    assert x["hit_tokens"] == 512
    assert r.stderr == ""


def test_progress_bar_only_when_asked_or_on_a_terminal(cli, trace_file):
    quiet = run(cli, "replay", "--trace", str(trace_file), "--num-pages", "1024")
    assert quiet.returncode == 0
    assert quiet.stderr == ""  # stderr is a pipe here: no bar
    shown = run(cli, "replay", "--trace", str(trace_file), "--num-pages", "1024", "--progress")
    assert shown.returncode == 0
    assert "requests" in shown.stderr
    # Same report apart from the wall times (last column).
    def strip_seconds(out):
        return [line.rsplit(None, 1)[0] for line in out.splitlines() if line.strip()]

    assert strip_seconds(shown.stdout) == strip_seconds(quiet.stdout)


def test_default_workload_prints_an_aligned_table(cli):
    r = run(cli, "replay", "--num-pages", "1024,65536")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    header = next(i for i, line in enumerate(lines) if line.lstrip().startswith("num_pages"))
    table = lines[header:header + 3]
    assert len({len(line) for line in table}) == 1  # right-aligned columns: equal widths
    assert "token hit rate" in table[0] and "ideal" in table[0] and "evictions" in table[0]
    assert "built in" in r.stdout
    # Rows: the bigger cache hits at least as much here, and never more than the ideal.
    rates = [float(row.split("%")[0].split()[-1]) for row in table[1:]]
    ideal = [float(row.split("%")[1].split()[-1]) for row in table[1:]]
    assert rates[0] <= rates[1] <= ideal[1]


SIMULATE_FIELDS = (
    "num_pages", "page_size", "capacity_tokens", "max_num_seqs", "max_num_batched_tokens",
    "max_model_len", "policy", "requests", "finished", "rejected", "truncated", "steps",
    "simulated_seconds", "prompt_tokens", "prefill_tokens", "output_tokens",
    "recomputed_tokens", "preemptions", "prefix_query_tokens", "prefix_hit_tokens",
    "prefix_hit_rate", "resumed_query_tokens", "resumed_hit_tokens", "resumed_hit_rate",
    "peak_kv_usage", "peak_running", "peak_waiting", "queue_p50", "queue_p90", "queue_p99",
    "ttft_p50", "ttft_p90", "ttft_p99", "tpot_p50", "tpot_p90", "tpot_p99", "e2e_p50",
    "e2e_p90", "e2e_p99", "cost_step_ms", "cost_prefill_ms_per_1k_tokens",
    "cost_decode_ms_per_request", "cost_kv_ms_per_1k_tokens", "seconds",
)


def simulate_json(cli, *args):
    r = run(cli, "simulate", *args, "--json")
    assert r.returncode == 0, r.stderr
    assert r.stderr == ""  # a pipe: no progress bar
    return [json.loads(line) for line in r.stdout.splitlines()]


def test_simulate_help_documents_the_cost_model_and_fields(cli):
    r = run(cli, "simulate", "--help")
    assert r.returncode == 0
    for word in ("--max-num-seqs", "--max-num-batched-tokens", "--policy", "--step-ms",
                 "--prefill-ms-per-1k-tokens", "--decode-ms-per-request",
                 "--kv-ms-per-1k-tokens", "--default-output-tokens", "ttft", "tpot",
                 "recomputed tokens", "docs/simulate.md"):
        assert word in r.stdout, word


def test_simulate_json_one_object_per_capacity(cli, trace_file):
    lines = simulate_json(cli, "--trace", str(trace_file), "--num-pages", "70,1024")
    assert [x["num_pages"] for x in lines] == [70, 1024]
    for x in lines:
        assert set(x) == set(SIMULATE_FIELDS)
        assert x["requests"] == 3 and x["finished"] == 3
        assert x["rejected"] == 0 and x["truncated"] == 0
        assert x["prompt_tokens"] == 3100
        assert x["output_tokens"] == 15
        assert x["max_model_len"] == 1105  # derived: the longest prompt + output
        assert x["policy"] == "fcfs"
        # Requests 1 s apart, each served in well under a second: nobody queues.
        assert x["queue_p99"] == 0.0
        assert 0.0 < x["ttft_p50"] <= x["ttft_p90"] <= x["ttft_p99"] < 1.0
        assert x["preemptions"] == 0 and x["recomputed_tokens"] == 0
        assert 0.0 < x["peak_kv_usage"] <= 1.0
        assert x["cost_step_ms"] == 5.0
    # The same prefix hits as the cache-only replay of this trace (requests never overlap).
    assert lines[0]["prefix_hit_tokens"] == 1024
    assert lines[1]["prefix_hit_tokens"] == 1504
    assert lines[1]["prefix_query_tokens"] == 3100


def test_simulate_step_only_cost_model_gives_exact_times(cli, trace_file):
    # 10 ms per step and nothing else: each request takes one prefill step and 4 decode steps.
    (x,) = simulate_json(cli, "--trace", str(trace_file), "--num-pages", "1024", "--step-ms",
                         "10", "--prefill-ms-per-1k-tokens", "0", "--decode-ms-per-request", "0",
                         "--kv-ms-per-1k-tokens", "0")
    assert x["steps"] == 15
    assert x["simulated_seconds"] == pytest.approx(2.05)
    assert x["ttft_p50"] == pytest.approx(0.010)
    assert x["tpot_p99"] == pytest.approx(0.010)
    assert x["e2e_p50"] == pytest.approx(0.050)


def test_simulate_tight_pool_preempts_and_rejects(cli, tmp_path):
    lines = [{"timestamp": 0, "input_length": 600, "output_length": 300, "hash_ids": [i, 100 + i]}
             for i in range(4)]
    lines.append({"timestamp": 0, "input_length": 3000, "output_length": 1,
                  "hash_ids": list(range(200, 206))})
    path = tmp_path / "tight.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in lines) + "\n")
    (x,) = simulate_json(cli, "--trace", str(path), "--num-pages", "150", "--policy", "priority",
                         "--limit", "5")
    assert x["requests"] == 5
    assert x["rejected"] == 1  # 3,000 tokens > 149 pages of 16
    assert x["finished"] == 4
    assert x["preemptions"] > 0 and x["recomputed_tokens"] > 0
    assert x["policy"] == "priority"
    assert x["peak_kv_usage"] > 0.9


def test_simulate_table_and_progress_bar(cli, trace_file):
    quiet = run(cli, "simulate", "--trace", str(trace_file), "--num-pages", "70,1024")
    assert quiet.returncode == 0, quiet.stderr
    assert quiet.stderr == ""
    lines = quiet.stdout.splitlines()
    assert "cost model: 5 ms per step" in quiet.stdout
    header = next(i for i, line in enumerate(lines) if line.startswith("num_pages"))
    table = lines[header:]
    assert len({len(line) for line in table}) == 1  # aligned columns: equal widths
    for row in ("prefix hit rate", "preemptions", "recomputed tokens", "TTFT p50/p90/p99 (s)",
                "TPOT p50/p90/p99 (ms)", "peak KV usage", "wall seconds"):
        assert any(line.startswith(row) for line in table), row
    shown = run(cli, "simulate", "--trace", str(trace_file), "--num-pages", "70", "--progress")
    assert shown.returncode == 0
    assert "requests" in shown.stderr


def test_simulate_builtin_workload_limit(cli):
    (x,) = simulate_json(cli, "--num-pages", "4096", "--limit", "200",
                         "--default-output-tokens", "16")
    assert x["requests"] == 200
    assert x["finished"] + x["rejected"] == 200
