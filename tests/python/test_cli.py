"""The `pagedkv` command-line tool: exit codes, --help, --json output, the built-in workload.

The binary is <PAGEDKV_BUILD_DIR>/apps/pagedkv (CTest sets PAGEDKV_BUILD_DIR).
"""

import json
import os
import pathlib
import subprocess

import pytest

MOONCAKE_LINES = [
    {"timestamp": 0, "input_length": 1000, "output_length": 5, "hash_ids": [1, 2]},
    {"timestamp": 1000, "input_length": 1100, "output_length": 5, "hash_ids": [1, 3, 4]},
    {"timestamp": 2000, "input_length": 1000, "output_length": 5, "hash_ids": [1, 2]},
]


@pytest.fixture(scope="module")
def cli() -> pathlib.Path:
    build = os.environ.get("PAGEDKV_BUILD_DIR")
    if not build:
        raise RuntimeError("PAGEDKV_BUILD_DIR is not set (CTest sets it; export it by hand)")
    path = pathlib.Path(build) / "apps" / "pagedkv"
    assert path.is_file(), f"{path} is missing: build the pagedkv_cli target"
    return path


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
    assert "replay" in top.stdout and "version" in top.stdout
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
