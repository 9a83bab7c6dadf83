"""pagedkv: the KV-cache paging layer of an LLM inference engine.

The classes are implemented in C++ (``pagedkv._pagedkv``); this package re-exports them.
Errors: ValueError (bad value), IndexError (bad index or id), RuntimeError (wrong state),
``pagedkv.CapacityError`` (a RuntimeError: not enough pages), ``pagedkv.FormatError`` (a
ValueError: a file breaks its format).
"""

from ._pagedkv import *  # noqa: F401,F403
from ._pagedkv import CapacityError, FormatError, InternalError  # noqa: F401
