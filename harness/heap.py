"""Giving freed heap memory back to the system.

After a big transient allocation (generating a split, preparing the eval
pixels, a chunk of COCO evaluation) glibc keeps the freed memory in its
arenas, and the controller's resident size, and so its peak, carries it into
the next stage: measured on a 1,000-image eval set, about 8 MiB more at the
scoring peak without a trim. `malloc_trim(0)` returns what it can; where
the C library has no such call (musl, macOS) this is a no-op.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
from typing import Callable


@functools.cache
def _malloc_trim() -> Callable[[int], int] | None:
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return libc.malloc_trim  # type: ignore[no-any-return]
    except (OSError, AttributeError):
        return None


def release_free_memory() -> bool:
    """Trim the heap; True when the C library could be asked to."""
    trim = _malloc_trim()
    if trim is None:
        return False
    trim(0)
    return True
