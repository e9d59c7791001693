"""Memory clients make the daemon hold: a shared byte budget for it, and giving it back to the system after.

**Budget.** A per-connection cap (a path's ``maxMessageSize``, the REST body limit) bounds one client, but many
clients each holding just under it could still fill the daemon's memory. A reader that is assembling a message
(the data server) or a body (the REST API) therefore reserves room for one more read from one ``ByteBudget``
before it reads, and keeps what it read until the data was handed on. When the budget is spent such readers
stop reading, which is TCP backpressure on their clients, until others finish or leave. A reader holding
nothing reserves nothing while it waits (idle connections cannot use the budget up) and is charged for what
its read brought, without waiting: so small messages always flow, and the budget is exceeded by at most one
read per such reader.

**Trim.** A websocket message assembled from many reads, or a large REST body, is built from chunks of tens
of KB that glibc serves from the heap rather than from their own mappings. Once freed, those pages stay in the
process (its RSS does not go down) until ``malloc_trim`` returns them, which glibc does page by page anywhere
in the heap. Callers trim after dropping at least ``TRIM_AFTER`` bytes, so a client that made the daemon hold
a lot does not leave it that large. Elsewhere than glibc (musl, macOS) this does nothing.
"""

from __future__ import annotations

import ctypes
import sys
from collections.abc import Callable
from typing import final

import trio

TRIM_AFTER = 1024 * 1024  # bytes dropped at once that are worth a trim (it walks the heap: ~ms per 100 MB)
TRIM_BURST = 8 * TRIM_AFTER  # a budget whose holdings fell by this much (to a quarter of their peak) trims


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


@final
class ByteBudget:
    """Bytes that may be held at once across readers.

    When what is held falls to a quarter of its high-water mark, and by at least ``TRIM_BURST``, the freed
    memory is given back (``trim``): many small holders (300 slow REST bodies of 60 KB) add up to a lot that
    no single one of them would trim for.

    Args:
      total: the budget in bytes (``source.maxInboundBytes`` for the data server).
    """

    __slots__ = ("_lot", "_peak", "total", "used")

    def __init__(self, total: int) -> None:
        self.total = total
        self.used = 0
        self._peak = 0
        self._lot = trio.lowlevel.ParkingLot()

    async def acquire(self, amount: int, *, holding: int) -> None:
        """Take ``amount`` bytes, waiting while that would pass the budget; ``holding`` is what the caller
        already holds (a caller holding nothing never waits)."""
        while holding and self.used + amount > self.total:
            await self._lot.park()
        self.take(amount)

    def take(self, amount: int) -> None:
        """Take ``amount`` bytes without waiting (for bytes already read)."""
        self.used += amount
        self._peak = max(self._peak, self.used)

    def release(self, amount: int) -> None:
        """Give back ``amount`` bytes (a negative amount takes them, as ``take``)."""
        if amount < 0:
            self.take(-amount)
            return
        self.used -= amount
        if amount:
            self._lot.unpark_all()
        if self.used < self._peak // 4 and self._peak - self.used >= TRIM_BURST:
            self._peak = self.used
            trim(TRIM_AFTER)
