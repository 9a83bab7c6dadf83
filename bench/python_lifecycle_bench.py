#!/usr/bin/env python3
"""pagedkv through its Python bindings: Request construction per prompt type, the request
lifecycle end to end, and (optionally) the same lifecycle through vLLM v1's Python
KVCacheManager, all measured in one run.

Workload (fixed seed): N prompts (default 3,000) of U[1024, 4096] tokens drawn from a 128,256
token vocabulary; every second prompt starts with one of 64 shared prefixes of U[512, 2048]
tokens (cut to the prompt's length when longer). Page size 16, 65,536 pages, max_model_len
8192, at most 128 requests held: the oldest is freed when a new one needs room, and freed
again while an allocation fails (never happens at these sizes, but the loop allows it).

1. Request construction: pagedkv.Request(id, prompt) for every prompt, given as a contiguous
   NumPy int32 array, a NumPy int64 array, an array.array('i') and a Python list. pagedkv
   hashes pages lazily (on the first lookup at a page size), so this is the token hand-over
   alone (each Request is dropped at once: its destruction is included). Target:
   list / int32 >= 10x.
2. Lifecycle: per prompt, build the Request, get_computed_pages (hashes the full pages),
   allocate_slots(rest of the prompt), keep it; the oldest held request is freed as above and
   all are freed at the end. Timed end to end - Request construction and hashing included -
   with int32 prompts and with list prompts. The pages each request maps (hit + new) count as
   processed pages.
3. vLLM (with --vllm-src DIR, a vLLM source checkout): the same lifecycle through vLLM v1's
   own KVCacheManager, BlockPool, Request and block hashing, run unchanged from DIR: one
   full-attention group, block_size 16, num_blocks 65,536, prefix caching on, and the
   prefix-caching hash that vLLM's CacheConfig selects by default (read from DIR; 'sha256' -
   pickle + SHA-256 - in current versions; --vllm-hash picks another). Timed: vLLM Request
   construction with its block hasher (all full blocks hashed) + get_computed_blocks +
   allocate_slots + free. Prompts are Python lists, vLLM's native input. vLLM's package
   __init__ files and the modules off the KV-cache manager path (torch, transformers,
   pydantic, msgspec, vllm.config, ...) are replaced by inert stubs, so only NumPy is needed;
   SamplingParams is a minimal stand-in (max_tokens 1, nothing else set). Target:
   vLLM / pagedkv(int32) >= 30x.

Every repetition runs all measurements in turn (interleaved, so a noisy machine hits them
alike); the report gives medians of R repetitions, wall time and this process's CPU time (the
steadier figure on a shared machine). The three lifecycles must agree on the number of
prefix-hit pages; the script says so when they do not. The garbage collector stays on, as in
an engine; gc.collect() runs before each timed section.

    PYTHONPATH=build/python /usr/bin/python3 bench/python_lifecycle_bench.py
        [--prompts N] [--repetitions R] [--seed S] [--quick] [--json] [--vllm-src DIR]
        [--vllm-hash sha256|sha256_cbor|xxhash|xxhash_cbor]

--quick: 300 prompts (smoke run). --json: one JSON object with all figures on stdout.
"""

from __future__ import annotations

import argparse
import array
import collections
import dataclasses
import functools
import gc
import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import inspect
import json
import os
import pathlib
import platform
import re
import statistics
import subprocess
import sys
import time
import types

import numpy as np

import pagedkv

PAGE_SIZE = 16
NUM_PAGES = 65_536
MAX_MODEL_LEN = 8192
MAX_HELD = 128
NUM_PREFIXES = 64
PROMPT_LEN = (1024, 4096)
PREFIX_LEN = (512, 2048)
VOCAB = 128_256
QUICK_PROMPTS = 300

CONSTRUCTION_KINDS = ("int32", "int64", "array_i", "list")
CONSTRUCTION_LABELS = {"int32": "NumPy int32", "int64": "NumPy int64",
                       "array_i": "array.array('i')", "list": "list"}
TARGET_LIST_OVER_INT32 = 10.0
TARGET_VLLM_OVER_INT32 = 30.0


# ---------------------------------------------------------------------------------- workload


@dataclasses.dataclass
class Workload:
    ids: list[str]
    int32: list[np.ndarray]      # contiguous views into one int32 buffer
    int64: list[np.ndarray]
    array_i: list[array.array]
    list: list[list[int]]
    num_tokens: int
    pages_mapped: int            # sum of ceil(len / PAGE_SIZE): pages each lifecycle maps


def make_workload(num_prompts: int, seed: int) -> Workload:
    rng = np.random.default_rng(seed)
    prefix_lens = rng.integers(PREFIX_LEN[0], PREFIX_LEN[1] + 1, NUM_PREFIXES)
    prefixes = [rng.integers(0, VOCAB, n, dtype=np.int32) for n in prefix_lens]
    lens = rng.integers(PROMPT_LEN[0], PROMPT_LEN[1] + 1, num_prompts)
    which = rng.integers(0, NUM_PREFIXES, num_prompts)
    offsets = np.zeros(num_prompts + 1, dtype=np.int64)
    np.cumsum(lens, out=offsets[1:])
    buf = rng.integers(0, VOCAB, int(offsets[-1]), dtype=np.int32)
    for i in range(1, num_prompts, 2):
        prefix = prefixes[which[i]][:lens[i]]
        buf[offsets[i]:offsets[i] + len(prefix)] = prefix
    buf64 = buf.astype(np.int64)
    int32 = [buf[offsets[i]:offsets[i + 1]] for i in range(num_prompts)]
    int64 = [buf64[offsets[i]:offsets[i + 1]] for i in range(num_prompts)]
    assert all(p.flags.c_contiguous for p in int32)
    return Workload(
        ids=[f"req-{i}" for i in range(num_prompts)],
        int32=int32,
        int64=int64,
        array_i=[array.array("i", p.tobytes()) for p in int32],
        list=[p.tolist() for p in int32],
        num_tokens=int(offsets[-1]),
        pages_mapped=int(((lens + PAGE_SIZE - 1) // PAGE_SIZE).sum()),
    )


def clock() -> tuple[float, float]:
    return time.perf_counter(), time.process_time()


# ------------------------------------------------------------------------ 1. construction


def time_construction(ids, prompts) -> tuple[float, float]:
    Request = pagedkv.Request
    gc.collect()
    t0, c0 = clock()
    for rid, prompt in zip(ids, prompts):
        Request(rid, prompt)
    t1, c1 = clock()
    return t1 - t0, c1 - c0


def construction_support(w: Workload) -> dict[str, str | None]:
    """None per prompt type the bindings accept (with the right tokens), else the error."""
    out = {}
    expected = w.list[0]
    for kind in CONSTRUCTION_KINDS:
        try:
            r = pagedkv.Request("probe", getattr(w, kind)[0])
            got = list(r.prompt_token_ids)
            out[kind] = None if got == expected else "tokens differ from the list prompt's"
        except Exception as e:  # noqa: BLE001 - reported, not fatal
            out[kind] = f"{type(e).__name__}: {e}"
    return out


# --------------------------------------------------------------------------- 2. lifecycle


@dataclasses.dataclass
class LifecycleRun:
    wall: float
    cpu: float
    hit_pages: int


def run_pagedkv_lifecycle(ids, prompts) -> LifecycleRun:
    mgr = pagedkv.KVCacheManager(NUM_PAGES, PAGE_SIZE, MAX_MODEL_LEN)
    Request = pagedkv.Request
    held: collections.deque = collections.deque()
    hit_tokens = 0
    gc.collect()
    t0, c0 = clock()
    for rid, prompt in zip(ids, prompts):
        req = Request(rid, prompt)
        num_tokens = len(prompt)
        if len(held) == MAX_HELD:
            mgr.free(held.popleft())
        while True:
            pages, n_hit = mgr.get_computed_pages(req)
            new = mgr.allocate_slots(req, num_tokens - n_hit, n_hit, pages)
            if new is not None or not held:
                break
            mgr.free(held.popleft())
        if new is None:
            raise RuntimeError("pagedkv: the pool is too small for one request")
        req.num_computed_tokens = num_tokens
        held.append(req)
        hit_tokens += n_hit
    while held:
        mgr.free(held.popleft())
    t1, c1 = clock()
    mgr.verify()
    free = mgr.page_pool.get_num_free_pages()
    if free != NUM_PAGES - 1:
        raise RuntimeError(f"pagedkv: {free} free pages after freeing all, expected "
                           f"{NUM_PAGES - 1}")
    return LifecycleRun(t1 - t0, c1 - c0, hit_tokens // PAGE_SIZE)


# -------------------------------------------------------------------------------- 3. vLLM

# Third-party packages vLLM imports at module level but the KV-cache manager path never
# calls. Always stubbed: torch (tensor dtypes in annotations and specs, a profiler decorator),
# transformers (tokenizer/config helpers). The rest are stubbed only when not importable.
ALWAYS_STUB = ("torch", "transformers", "triton")
STUB_IF_MISSING = ("msgspec", "zmq", "psutil", "pydantic", "pydantic_core", "cbor2", "regex",
                   "typing_extensions", "PIL", "uvloop", "huggingface_hub", "cachetools",
                   "cloudpickle", "tqdm", "requests", "filelock", "prometheus_client")

# vLLM modules replaced by stubs: none of their code runs on the KV-cache manager path, only
# names from them appear in annotations, isinstance checks or unused branches.
VLLM_STUBS = (
    "vllm.config",                  # engine config (pydantic dataclasses); annotations only
    "vllm.distributed.kv_events",   # KV event structs (msgspec); only with events enabled
    "vllm.compilation",             # CUDA graph stats type named in vllm.v1.metrics.stats
    "vllm.v1.metrics.perf",         # perf stats type named in vllm.v1.metrics.stats
    "vllm.v1.spec_decode",          # spec-decode stats type named in vllm.v1.metrics.stats
    "vllm.platforms",               # device platform detection
    "vllm.utils.mem_utils",         # format_gib for memory-check messages
    "vllm.utils.torch_utils",       # get_dtype_size (page_size_bytes, not called)
    "vllm.multimodal",              # MultiModalFeatureSpec annotation; no mm inputs here
    "vllm.sampling_params",         # replaced by MinimalSamplingParams below
    "vllm.pooling_params",          # no pooling requests
    "vllm.v1.engine",               # EngineCoreEvent / FinishReason (request events unused)
    "vllm.v1.core.sched",           # SchedulerOutput named in vllm.v1.utils
    "vllm.usage",                   # usage stats, imported by vllm.v1.utils
    "vllm.utils.network_utils",     # ports / ZMQ paths, imported by vllm.v1.utils
    "vllm.utils.system_utils",      # process helpers, imported by vllm.v1.utils
)

# Packages whose __init__ is skipped (their submodules load from source as usual): vllm's own
# sets torch/CUDA environment overrides and the lazy top-level API; vllm.distributed's sets up
# torch.distributed groups; vllm.v1.structured_output's loads grammar backends.
VLLM_BARE_PACKAGES = ("vllm", "vllm.distributed", "vllm.v1.structured_output")

# The modules whose code the vLLM lifecycle runs; they must come from the source tree.
VLLM_REAL_MODULES = ("vllm.v1.core.kv_cache_manager", "vllm.v1.core.kv_cache_coordinator",
                     "vllm.v1.core.single_type_kv_cache_manager", "vllm.v1.core.block_pool",
                     "vllm.v1.core.kv_cache_utils", "vllm.v1.request",
                     "vllm.v1.kv_cache_interface", "vllm.utils.hashing", "vllm.v1.utils")


class _StubType(type):
    """Metaclass of stand-in classes: any attribute, subscript or call gives something inert;
    usable as a base class (class keywords ignored) and as a bare decorator."""

    def __new__(mcls, name, bases, ns, **_kw):
        return super().__new__(mcls, name, bases, ns)

    def __init__(cls, name, bases, ns, **_kw):
        super().__init__(name, bases, ns)

    def __getattr__(cls, name):
        if name.startswith("__"):
            raise AttributeError(name)
        return _stub_class(f"{cls.__qualname__}.{name}")

    def __getitem__(cls, _item):
        return cls

    def __call__(cls, *args, **kwargs):
        if len(args) == 1 and not kwargs and callable(args[0]) \
                and not isinstance(args[0], _StubType):
            return args[0]  # @stub used as a decorator: hand the function back
        return super().__call__()

    def __iter__(cls):
        return iter(())


class _StubBase(metaclass=_StubType):
    def __init_subclass__(cls, **_kw):
        pass

    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        return _stub_class(name)

    def __call__(self, *args, **kwargs):
        if len(args) == 1 and not kwargs and callable(args[0]):
            return args[0]
        return _stub_class("result")()

    def __getitem__(self, _item):
        return self

    def __iter__(self):
        return iter(())

    def __len__(self):
        return 0

    def __bool__(self):
        return False


def _stub_class(qualname: str) -> type:
    return _StubType(qualname.rsplit(".", 1)[-1], (_StubBase,), {"__qualname__": qualname})


class _StubModule(types.ModuleType):
    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        value = _stub_class(f"{self.__name__}.{name}")
        setattr(self, name, value)
        return value


class _StubFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Serves a _StubModule for the listed top-level packages and vllm modules (and anything
    below them)."""

    def __init__(self, top_level, modules):
        self.top_level = set(top_level)
        self.modules = set(modules)
        self.served: set[str] = set()

    def covers(self, fullname: str) -> bool:
        if fullname.split(".")[0] in self.top_level:
            return True
        return any(fullname == m or fullname.startswith(m + ".") for m in self.modules)

    def find_spec(self, fullname, path=None, target=None):
        if self.covers(fullname):
            return importlib.machinery.ModuleSpec(fullname, self, is_package=True)
        return None

    def create_module(self, spec):
        module = _StubModule(spec.name)
        module.__path__ = []
        self.served.add(spec.name)
        return module

    def exec_module(self, module):
        pass


class _BarePackageFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Imports the listed packages without running their __init__.py."""

    def __init__(self, packages: dict[str, str]):
        self.packages = packages

    def find_spec(self, fullname, path=None, target=None):
        if fullname not in self.packages:
            return None
        spec = importlib.machinery.ModuleSpec(fullname, self, is_package=True)
        spec.submodule_search_locations = [self.packages[fullname]]
        return spec

    def create_module(self, spec):
        module = types.ModuleType(spec.name)
        module.__path__ = [self.packages[spec.name]]
        return module

    def exec_module(self, module):
        pass


class MinimalSamplingParams:
    """What vllm.v1.request.Request reads from SamplingParams; every other field is None."""

    def __init__(self, max_tokens: int = 1):
        self.max_tokens = max_tokens
        self.extra_args = None
        self.structured_outputs = None
        self.skip_reading_prefix_cache = None

    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        return None


def _git(src: pathlib.Path, *args: str) -> str | None:
    try:
        out = subprocess.run(["git", "-C", str(src), *args], capture_output=True, text=True,
                             timeout=30, check=True)
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def _filter_kwargs(fn, kwargs: dict) -> dict:
    params = inspect.signature(fn).parameters
    if any(p.kind is p.VAR_KEYWORD for p in params.values()):
        return kwargs
    return {k: v for k, v in kwargs.items() if k in params}


@dataclasses.dataclass
class VllmSetup:
    src: str
    commit: str | None
    commit_date: str | None
    version: str
    hash_algo: str
    hash_algo_is_default: bool
    import_s: float
    stubbed_third_party: list[str]
    stubbed_vllm: list[str]
    auto_stubbed: list[str]
    make_request: object   # (request_id, prompt list) -> vllm Request
    make_manager: object   # () -> vllm KVCacheManager


def default_vllm_hash(src: pathlib.Path) -> str | None:
    cache_py = src / "vllm" / "config" / "cache.py"
    try:
        text = cache_py.read_text()
    except OSError:
        return None
    m = re.search(r"prefix_caching_hash_algo\s*:\s*[\w\[\]\"', |]+=\s*[\"'](\w+)[\"']", text)
    return m.group(1) if m else None


def load_vllm(src_arg: str, hash_algo: str | None) -> VllmSetup:
    src = pathlib.Path(src_arg).resolve()
    pkg = src / "vllm"
    if not (pkg / "v1" / "core" / "kv_cache_manager.py").is_file():
        raise RuntimeError(f"{src} has no vllm/v1/core/kv_cache_manager.py")
    if any(m == "vllm" or m.startswith("vllm.") for m in sys.modules):
        raise RuntimeError("a vllm package is already imported in this process")
    default_algo = default_vllm_hash(src)
    algo = hash_algo or default_algo or "sha256"

    os.environ.setdefault("VLLM_CONFIGURE_LOGGING", "0")  # keep vLLM's log off stdout
    top = set(ALWAYS_STUB)
    for name in STUB_IF_MISSING:
        try:
            found = importlib.util.find_spec(name) is not None
        except (ImportError, ValueError):
            found = False
        if not found:
            top.add(name)
    stubs = _StubFinder(top, VLLM_STUBS)
    bare = _BarePackageFinder({p: str(src / p.replace(".", "/")) for p in VLLM_BARE_PACKAGES})
    sys.meta_path[:0] = [bare, stubs]
    sys.path.insert(0, str(src))
    auto_stubbed: list[str] = []
    t0 = time.perf_counter()
    for _attempt in range(30):
        try:
            kvm = importlib.import_module("vllm.v1.core.kv_cache_manager")
            break
        except ModuleNotFoundError as e:
            missing = (e.name or "").split(".")[0]
            if not missing or missing == "vllm" or missing in stubs.top_level:
                raise
            # A further third-party import off the KV path (another vLLM version): stub it too.
            stubs.top_level.add(missing)
            auto_stubbed.append(missing)
            for m in [m for m in sys.modules if m == "vllm" or m.startswith("vllm.")]:
                del sys.modules[m]
    else:
        raise RuntimeError("too many missing modules while importing vLLM")
    kvu = importlib.import_module("vllm.v1.core.kv_cache_utils")
    kvi = importlib.import_module("vllm.v1.kv_cache_interface")
    vreq = importlib.import_module("vllm.v1.request")
    try:
        hashing = importlib.import_module("vllm.utils.hashing")
    except ImportError:
        hashing = importlib.import_module("vllm.utils")
    import_s = time.perf_counter() - t0

    for name in VLLM_REAL_MODULES:
        mod = sys.modules.get(name)
        if mod is not None and not str(getattr(mod, "__file__", "")).startswith(str(src)):
            raise RuntimeError(f"{name} was not loaded from {src}")
    hash_fn = hashing.get_hash_fn_by_name(algo)
    if algo.endswith("_cbor") and "cbor2" in stubs.top_level:
        raise RuntimeError(f"hash {algo!r} needs the cbor2 package, which is not installed")
    if algo.startswith("xxhash") and getattr(hashing, "_xxhash", True) is None:
        raise RuntimeError(f"hash {algo!r} needs the xxhash package, which is not installed")
    kvu.init_none_hash(hash_fn)
    block_hasher = kvu.get_request_block_hasher(PAGE_SIZE, hash_fn)

    spec_fields = {f.name for f in dataclasses.fields(kvi.FullAttentionSpec)}
    spec_kwargs = {"block_size": PAGE_SIZE, "num_kv_heads": 8, "head_size": 128,
                   "dtype": sys.modules["torch"].bfloat16, "use_mla": False}
    spec = kvi.FullAttentionSpec(**{k: v for k, v in spec_kwargs.items() if k in spec_fields})
    config = kvi.KVCacheConfig(
        num_blocks=NUM_PAGES, kv_cache_tensors=[],
        kv_cache_groups=[kvi.KVCacheGroupSpec(["model.layers.0.self_attn.attn"], spec)])
    manager_kwargs = _filter_kwargs(kvm.KVCacheManager.__init__, {
        "kv_cache_config": config, "max_model_len": MAX_MODEL_LEN, "enable_caching": True,
        "hash_block_size": PAGE_SIZE, "use_eagle": False, "log_stats": False,
        "enable_kv_cache_events": False})
    params = MinimalSamplingParams()
    request_kwargs = _filter_kwargs(vreq.Request.__init__, {
        "sampling_params": params, "pooling_params": None, "arrival_time": 0.0,
        "block_hasher": block_hasher, "eos_token_id": None})
    if "block_hasher" not in request_kwargs:
        raise RuntimeError("this vLLM's Request takes no block_hasher (a pre-2025 layout)")

    version = "dev tree (no vllm/_version.py)"
    version_file = pkg / "_version.py"
    if version_file.is_file():
        m = re.search(r"__version__\s*=\s*[\"']([^\"']+)", version_file.read_text())
        if m:
            version = m.group(1)
    return VllmSetup(
        src=str(src), commit=_git(src, "rev-parse", "HEAD"),
        commit_date=_git(src, "log", "-1", "--format=%cs"), version=version,
        hash_algo=algo, hash_algo_is_default=(algo == default_algo),
        import_s=import_s,
        stubbed_third_party=sorted(n for n in stubs.served if "." not in n),
        stubbed_vllm=sorted(n for n in stubs.served if n.startswith("vllm.")
                            and any(n == s for s in VLLM_STUBS)),
        auto_stubbed=auto_stubbed,
        make_request=functools.partial(vreq.Request, **request_kwargs),
        make_manager=functools.partial(kvm.KVCacheManager, **manager_kwargs),
    )


def run_vllm_lifecycle(v: VllmSetup, ids, prompts) -> LifecycleRun:
    mgr = v.make_manager()
    make_request = v.make_request
    held: collections.deque = collections.deque()
    hit_tokens = 0
    gc.collect()
    t0, c0 = clock()
    for rid, prompt in zip(ids, prompts):
        req = make_request(rid, prompt)
        num_tokens = len(prompt)
        if len(held) == MAX_HELD:
            mgr.free(held.popleft())
        while True:
            blocks, n_hit = mgr.get_computed_blocks(req)
            new = mgr.allocate_slots(req, num_tokens - n_hit, n_hit, blocks)
            if new is not None or not held:
                break
            mgr.free(held.popleft())
        if new is None:
            raise RuntimeError("vLLM: the pool is too small for one request")
        req.num_computed_tokens = num_tokens
        held.append(req)
        hit_tokens += n_hit
    while held:
        mgr.free(held.popleft())
    t1, c1 = clock()
    free = mgr.block_pool.get_num_free_blocks()
    if free != NUM_PAGES - 1:
        raise RuntimeError(f"vLLM: {free} free blocks after freeing all, expected "
                           f"{NUM_PAGES - 1}")
    return LifecycleRun(t1 - t0, c1 - c0, hit_tokens // PAGE_SIZE)


# ---------------------------------------------------------------------------------- report


def summary(walls: list[float], cpus: list[float]) -> dict:
    return {"wall_s": statistics.median(walls), "cpu_s": statistics.median(cpus),
            "wall_min_s": min(walls), "wall_max_s": max(walls), "walls_s": walls,
            "cpus_s": cpus}


def ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--prompts", type=int, default=None,
                        help="number of prompts (default 3000; 300 with --quick)")
    parser.add_argument("--repetitions", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="smoke run: 300 prompts")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--vllm-src", metavar="DIR",
                        help="a vLLM source checkout; runs the vLLM lifecycle")
    parser.add_argument("--vllm-hash", choices=("sha256", "sha256_cbor", "xxhash",
                                                "xxhash_cbor"),
                        help="vLLM prefix-caching hash (default: vLLM's own default)")
    args = parser.parse_args()
    num_prompts = args.prompts or (QUICK_PROMPTS if args.quick else 3000)
    reps = max(1, args.repetitions)

    t_setup = time.perf_counter()
    w = make_workload(num_prompts, args.seed)
    setup_s = time.perf_counter() - t_setup
    support = construction_support(w)
    kinds = [k for k in CONSTRUCTION_KINDS if support[k] is None]

    vllm: VllmSetup | None = None
    vllm_status = "not run (--vllm-src not given)"
    if args.vllm_src:
        try:
            vllm = load_vllm(args.vllm_src, args.vllm_hash)
            vllm_status = "run"
        except Exception as e:  # noqa: BLE001 - reported; parts 1-2 still run
            vllm_status = f"not run ({type(e).__name__}: {e})"

    cons = {k: ([], []) for k in kinds}
    life = {"pagedkv_int32": [], "pagedkv_list": []}
    if vllm is not None:
        life["vllm"] = []
    for _ in range(reps):
        for k in kinds:
            wall, cpu = time_construction(w.ids, getattr(w, k))
            cons[k][0].append(wall)
            cons[k][1].append(cpu)
        if "int32" in kinds:
            life["pagedkv_int32"].append(run_pagedkv_lifecycle(w.ids, w.int32))
        life["pagedkv_list"].append(run_pagedkv_lifecycle(w.ids, w.list))
        if vllm is not None:
            try:
                life["vllm"].append(run_vllm_lifecycle(vllm, w.ids, w.list))
            except Exception as e:  # noqa: BLE001
                vllm_status = f"failed in the lifecycle ({type(e).__name__}: {e})"
                vllm = None
                del life["vllm"]

    construction = {k: summary(*cons[k]) for k in kinds}
    for k in CONSTRUCTION_KINDS:
        if k in construction:
            construction[k]["mtokens_per_s"] = w.num_tokens / construction[k]["wall_s"] / 1e6
        else:
            construction[k] = {"unsupported": support[k]}
    lifecycle = {}
    for name, runs in life.items():
        if not runs:
            continue
        s = summary([r.wall for r in runs], [r.cpu for r in runs])
        s["hit_pages"] = runs[0].hit_pages
        s["pages_mapped"] = w.pages_mapped
        s["mpages_per_s_wall"] = w.pages_mapped / s["wall_s"] / 1e6
        s["mpages_per_s_cpu"] = w.pages_mapped / s["cpu_s"] / 1e6
        lifecycle[name] = s
    hits = {name: s["hit_pages"] for name, s in lifecycle.items()}
    hits_agree = len(set(hits.values())) <= 1

    def wall(d, key):
        return d.get(key, {}).get("wall_s")

    def cpu(d, key):
        return d.get(key, {}).get("cpu_s")

    ratios = {
        "construction_list_over_int32": ratio(wall(construction, "list"),
                                              wall(construction, "int32")),
        "construction_list_over_int32_cpu": ratio(cpu(construction, "list"),
                                                  cpu(construction, "int32")),
        "lifecycle_list_over_int32": ratio(wall(lifecycle, "pagedkv_list"),
                                           wall(lifecycle, "pagedkv_int32")),
        "vllm_over_pagedkv_int32": ratio(wall(lifecycle, "vllm"),
                                         wall(lifecycle, "pagedkv_int32")),
        "vllm_over_pagedkv_list": ratio(wall(lifecycle, "vllm"),
                                        wall(lifecycle, "pagedkv_list")),
        "vllm_over_pagedkv_int32_cpu": ratio(cpu(lifecycle, "vllm"),
                                             cpu(lifecycle, "pagedkv_int32")),
        "vllm_over_pagedkv_list_cpu": ratio(cpu(lifecycle, "vllm"),
                                            cpu(lifecycle, "pagedkv_list")),
    }
    result = {
        "workload": {"prompts": num_prompts, "tokens": w.num_tokens, "seed": args.seed,
                     "repetitions": reps, "page_size": PAGE_SIZE, "num_pages": NUM_PAGES,
                     "max_model_len": MAX_MODEL_LEN, "max_held": MAX_HELD,
                     "num_prefixes": NUM_PREFIXES, "pages_mapped": w.pages_mapped,
                     "setup_s": setup_s},
        "environment": {"python": platform.python_version(), "numpy": np.__version__,
                        "pagedkv": str(pathlib.Path(pagedkv.__file__).parent),
                        "cpu_count": os.cpu_count()},
        "construction": construction,
        "lifecycle": lifecycle,
        "hit_pages_agree": hits_agree,
        "ratios": ratios,
        "targets": {"construction_list_over_int32": TARGET_LIST_OVER_INT32,
                    "vllm_over_pagedkv_int32": TARGET_VLLM_OVER_INT32},
        "vllm": {"status": vllm_status},
    }
    if vllm is not None:
        result["vllm"].update({
            "src": vllm.src, "commit": vllm.commit, "commit_date": vllm.commit_date,
            "version": vllm.version, "hash": vllm.hash_algo,
            "hash_is_vllm_default": vllm.hash_algo_is_default, "import_s": vllm.import_s,
            "stubbed_third_party": vllm.stubbed_third_party,
            "stubbed_vllm_modules": vllm.stubbed_vllm, "auto_stubbed": vllm.auto_stubbed})

    if args.json:
        print(json.dumps(result, indent=2))
        return 0

    def fmt(x, spec=".2f", suffix="x"):
        return "n/a" if x is None else f"{x:{spec}}{suffix}"

    print(f"pagedkv Python lifecycle benchmark: {num_prompts} prompts, {w.num_tokens:,} tokens, "
          f"seed {args.seed}; medians of {reps} repetitions (Python {platform.python_version()}, "
          f"NumPy {np.__version__})")
    print(f"\n1. pagedkv.Request(id, prompt) construction, {num_prompts} prompts")
    for k in CONSTRUCTION_KINDS:
        c = construction[k]
        if "unsupported" in c:
            print(f"   {CONSTRUCTION_LABELS[k]:<17} not supported: {c['unsupported']}")
        else:
            print(f"   {CONSTRUCTION_LABELS[k]:<17} {c['wall_s']:8.4f} s wall, {c['cpu_s']:8.4f} s "
                  f"CPU  ({c['mtokens_per_s']:7.1f} M tokens/s)")
    print(f"   list / int32: {fmt(ratios['construction_list_over_int32'])} wall, "
          f"{fmt(ratios['construction_list_over_int32_cpu'])} CPU "
          f"(target >= {TARGET_LIST_OVER_INT32:g}x)")
    print(f"\n2./3. Lifecycle (Request + hashing + lookup + allocate + free), page size "
          f"{PAGE_SIZE}, {NUM_PAGES} pages, <= {MAX_HELD} held; {w.pages_mapped:,} pages mapped")
    labels = {"pagedkv_int32": "pagedkv, int32 prompts", "pagedkv_list": "pagedkv, list prompts",
              "vllm": f"vLLM ({vllm.hash_algo} hash)" if vllm else "vLLM"}
    for name, s in lifecycle.items():
        print(f"   {labels[name]:<24} {s['wall_s']:8.3f} s wall, {s['cpu_s']:8.3f} s CPU  "
              f"{s['mpages_per_s_wall']:6.3f} M pages/s wall, {s['mpages_per_s_cpu']:6.3f} CPU  "
              f"(hit pages {s['hit_pages']:,})")
        if name == "pagedkv_list":
            print(f"   pagedkv list / int32: {fmt(ratios['lifecycle_list_over_int32'])}")
    if not hits_agree:
        print(f"   WARNING: the lifecycles disagree on prefix-hit pages: {hits}")
    if vllm is None:
        print(f"\nvLLM: {vllm_status}")
    else:
        print(f"   vLLM / pagedkv(int32): {fmt(ratios['vllm_over_pagedkv_int32'])} wall, "
              f"{fmt(ratios['vllm_over_pagedkv_int32_cpu'])} CPU "
              f"(target >= {TARGET_VLLM_OVER_INT32:g}x)")
        print(f"   vLLM / pagedkv(list):  {fmt(ratios['vllm_over_pagedkv_list'])} wall, "
              f"{fmt(ratios['vllm_over_pagedkv_list_cpu'])} CPU")
        print(f"\n   vLLM source {vllm.src}: commit {vllm.commit or 'unknown'} "
              f"({vllm.commit_date or 'date unknown'}), version {vllm.version}; hash "
              f"{vllm.hash_algo}{' (its default)' if vllm.hash_algo_is_default else ''}; "
              f"imported in {vllm.import_s:.2f} s")
        print(f"   stubbed: {', '.join(vllm.stubbed_third_party)}; "
              f"{', '.join(vllm.stubbed_vllm)}"
              + (f"; auto-stubbed: {', '.join(vllm.auto_stubbed)}" if vllm.auto_stubbed else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
