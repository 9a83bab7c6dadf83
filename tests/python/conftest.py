"""Shared setup of the Python tests.

Tests run with PYTHONPATH=<build>/python (CTest sets it, plus PAGEDKV_BUILD_DIR and
PAGEDKV_SHARED_DIR). When only PAGEDKV_BUILD_DIR is set, its python/ directory is put on the
path here so that ``import pagedkv`` finds the freshly built extension. Nothing is skipped:
a missing or broken extension fails the tests that import it.
"""

import os
import pathlib
import sys

import pytest

TESTS_DIR = pathlib.Path(__file__).resolve().parent

# The reference model and other helpers next to the tests.
if str(TESTS_DIR) not in sys.path:
    sys.path.insert(0, str(TESTS_DIR))

_build_dir = os.environ.get("PAGEDKV_BUILD_DIR")
if _build_dir:
    _py_dir = str(pathlib.Path(_build_dir) / "python")
    if _py_dir not in sys.path:
        sys.path.insert(0, _py_dir)


@pytest.fixture(scope="session")
def shared_dir() -> pathlib.Path:
    """The shared data directory (traces, docs), from PAGEDKV_SHARED_DIR."""
    value = os.environ.get("PAGEDKV_SHARED_DIR")
    if not value:
        raise RuntimeError("PAGEDKV_SHARED_DIR is not set (CTest sets it; export it by hand)")
    return pathlib.Path(value)


@pytest.fixture(scope="session")
def cli() -> pathlib.Path:
    """The `pagedkv` binary, <PAGEDKV_BUILD_DIR>/apps/pagedkv."""
    build = os.environ.get("PAGEDKV_BUILD_DIR")
    if not build:
        raise RuntimeError("PAGEDKV_BUILD_DIR is not set (CTest sets it; export it by hand)")
    path = pathlib.Path(build) / "apps" / "pagedkv"
    assert path.is_file(), f"{path} is missing: build the pagedkv_cli target"
    return path
