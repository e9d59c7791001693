"""The data server's inbound byte budget: what all its connections together may hold in memory.

Each connection's ``maxMessageSize`` bounds one message, but many connections each holding most of a message
(or messages their rules have not taken yet) could still fill the daemon's memory. Every connection reserves
from one shared budget before it reads the socket (the bytes of the message it is assembling, plus one read)
and keeps what it has read until the rules took it. When the budget is spent, connections stop reading, which
is TCP backpressure on their clients, until others finish or leave.

A connection holding nothing may always read once, so one message larger than the whole budget cannot wedge
the server; the budget is therefore exceeded by at most one read per such connection.
"""

from __future__ import annotations

from typing import final

import trio


@final
class ByteBudget:
    """Bytes that may be held at once across connections.

    Args:
      total: the budget in bytes (``source.maxInboundBytes``).
    """

    __slots__ = ("_lot", "total", "used")

    def __init__(self, total: int) -> None:
        self.total = total
        self.used = 0
        self._lot = trio.lowlevel.ParkingLot()

    async def acquire(self, amount: int, *, holding: int) -> None:
        """Take ``amount`` bytes, waiting while that would pass the budget; ``holding`` is what the caller
        already holds (a caller holding nothing never waits)."""
        while holding and self.used + amount > self.total:
            await self._lot.park()
        self.used += amount

    def release(self, amount: int) -> None:
        self.used -= amount
        if amount:
            self._lot.unpark_all()
