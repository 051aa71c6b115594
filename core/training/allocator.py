"""The C allocator's settings for training at the official geometry.

At 0.1 mm every whole window is 22.6 MB (float32 2944 x 1920), and each one passes through several arrays of
that size (padding, cut, standardised copy, batch stack). glibc serves blocks of that size with ``mmap`` and
returns them to the system on ``free``, so every window faults its pages in afresh: measured on the
development machine, cutting and stacking 64 such windows made 103,000 page faults and 2.7 s of system time
(3.4 s wall) against 11,000 faults and 1.0-1.4 s (2.0-2.4 s wall) with freed blocks kept in the heap.
"""

from __future__ import annotations

import ctypes
import ctypes.util

# mallopt parameters (malloc.h)
_M_TRIM_THRESHOLD, _M_TOP_PAD, _M_MMAP_THRESHOLD = -1, -2, -3
#: Blocks up to this size come from the heap (glibc's upper limit for the threshold on 64-bit systems).
MMAP_THRESHOLD_BYTES = 32 * 2**20
#: Free memory at the top of the heap is given back to the system only beyond this.
TRIM_THRESHOLD_BYTES = 2**30


def retain_freed_blocks() -> bool:
    """Keep freed window-sized blocks in this process's heap for reuse (glibc only; elsewhere nothing
    changes). Returns whether the settings took effect."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return all(
        mallopt(param, value) == 1
        for param, value in (
            (_M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES),
            (_M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES),
            (_M_TOP_PAD, 64 * 2**20),
        )
    )
