"""The Python validator's exact path alone, for tests that compare a fast path with it."""
from __future__ import annotations

from contextlib import contextmanager

import udfs.validation as validation


@contextmanager
def exact_path_only():
    """Neither the msgspec fast path (udfs.fast_path) nor the orjson parse, inside the block."""
    saved = validation._fast_loads, validation._vouch
    validation._fast_loads = validation._vouch = None
    try:
        yield
    finally:
        validation._fast_loads, validation._vouch = saved
