"""Give freed heap memory back to the operating system after a large transient allocation.

A websocket message assembled from many reads, or a large REST body, is built from chunks of tens of KB that
glibc serves from the heap rather than from their own mappings. Once freed, those pages stay in the process
(its RSS does not go down) until ``malloc_trim`` returns them, which glibc does page by page anywhere in the
heap. Callers trim after dropping at least ``TRIM_AFTER`` bytes, so a client that made the daemon hold a lot
does not leave it that large. Elsewhere than glibc (musl, macOS) this does nothing.
"""

from __future__ import annotations

import ctypes
import sys
from collections.abc import Callable

TRIM_AFTER = 1024 * 1024  # bytes dropped at once that are worth a trim (it walks the heap: ~ms per 100 MB)


def _malloc_trim() -> Callable[[int], int] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        trim: Callable[[int], int] = ctypes.CDLL(None).malloc_trim  # the C library the interpreter runs on
    except (OSError, AttributeError):
        return None  # not glibc
    return trim


_TRIM = _malloc_trim()


def trim(dropped: int) -> None:
    """Return free heap pages to the system when ``dropped`` (bytes just freed) is at least ``TRIM_AFTER``."""
    if _TRIM is not None and dropped >= TRIM_AFTER:
        _TRIM(0)
