"""The one integer-sequence converter of the bindings: every kind of input gives the same ids,
bad dtypes raise TypeError and out-of-range values OverflowError, both naming the argument."""

import array

import numpy as np
import pytest

import pagedkv

PROMPT = [5, 0, 17, 2**31 - 1, 3, 99, 12, 7]


def token_ids(prompt) -> list[int]:
    return list(pagedkv.Request("r", prompt).prompt_token_ids)


@pytest.mark.parametrize(
    "make",
    [
        lambda p: list(p),
        lambda p: tuple(p),
        lambda p: np.array(p, dtype=np.int32),
        lambda p: np.array(p, dtype=np.int64),
        lambda p: np.array(p, dtype=np.uint32),
        lambda p: np.array(p, dtype=np.int64)[::-1][::-1],
        lambda p: np.repeat(np.array(p, dtype=np.int32), 2)[::2],   # strided view
        lambda p: np.array([p, p], dtype=np.int32).T[:, 0],        # column of a 2-D array
        lambda p: array.array("i", p),
        lambda p: array.array("q", p),
        lambda p: memoryview(array.array("l", p)),
        lambda p: [np.int64(x) for x in p],                        # NumPy scalars in a list
    ],
    ids=["list", "tuple", "int32", "int64", "uint32", "reversed-twice", "strided", "column",
         "array-i", "array-q", "memoryview", "numpy-scalars"],
)
def test_every_input_kind_gives_the_same_tokens(make):
    assert token_ids(make(PROMPT)) == PROMPT


def test_small_integer_dtypes_and_ranges():
    assert token_ids(np.arange(5, dtype=np.uint8)) == [0, 1, 2, 3, 4]
    assert token_ids(np.arange(5, dtype=np.int16)) == [0, 1, 2, 3, 4]
    assert token_ids(range(3, 6)) == [3, 4, 5]


def test_int32_input_is_not_copied_before_the_request_takes_it():
    # The request owns its tokens: changing the array afterwards changes nothing.
    a = np.arange(64, dtype=np.int32)
    req = pagedkv.Request("r", a)
    a[:] = 7
    assert list(req.prompt_token_ids) == list(range(64))


@pytest.mark.parametrize(
    "bad",
    [np.array([1.0, 2.0]), [1, 2.5], [True, 1], np.array([True, False]), ["a"], "abc",
     object(), np.array([1, 2], dtype=">i4"), [[1, 2], [3]]],
    ids=["float-array", "float-in-list", "bool-in-list", "bool-array", "str-in-list", "str",
         "object", "big-endian", "ragged"],
)
def test_non_integers_raise_type_error_naming_the_argument(bad):
    with pytest.raises((TypeError, ValueError), match="prompt_token_ids"):
        pagedkv.Request("r", bad)


def test_float_and_bool_are_type_errors():
    for bad in (np.array([1.0]), [1.5], [True], np.array([True])):
        with pytest.raises(TypeError, match="prompt_token_ids"):
            pagedkv.Request("r", bad)


@pytest.mark.parametrize(
    "bad",
    [[2**31], [0, -(2**31) - 1], np.array([2**40]), np.array([2**63 + 5], dtype=np.uint64),
     [2**80]],
    ids=["list", "list-negative", "int64", "uint64", "bigint"],
)
def test_out_of_range_raises_overflow_error_with_index(bad):
    with pytest.raises(OverflowError, match=r"prompt_token_ids\[\d+\] = .* int32"):
        pagedkv.Request("r", bad)


def test_multi_dimensional_prompt_is_rejected():
    with pytest.raises(ValueError, match="prompt_token_ids must have 1 dimension"):
        pagedkv.Request("r", np.zeros((2, 3), dtype=np.int32))


def test_append_output_token_ids_takes_arrays():
    req = pagedkv.Request("r", [1, 2, 3])
    req.append_output_token_ids(np.array([4, 5], dtype=np.int64))
    req.append_output_token_ids(array.array("i", [6]))
    assert list(req.all_token_ids) == [1, 2, 3, 4, 5, 6]
    with pytest.raises(OverflowError, match="token_ids"):
        req.append_output_token_ids([2**33])
    assert list(req.all_token_ids) == [1, 2, 3, 4, 5, 6]


def test_page_table_rows_accept_every_kind():
    t = pagedkv.PageTable(4, 8, 64)
    t.append_row(np.array([3, 4], dtype=np.int64), 0)
    t.append_row(array.array("i", [5]), 0)
    t.append_row(memoryview(np.array([6], dtype=np.int32)), 0)
    assert list(t.row(0)) == [3, 4, 5, 6]
    with pytest.raises(ValueError, match="page_ids must have 1 dimension"):
        t.append_row(np.zeros((1, 2), dtype=np.int32), 1)
    with pytest.raises(TypeError, match="page_ids"):
        t.append_row(np.array([1.0]), 1)
    assert t.num_pages(1) == 0
