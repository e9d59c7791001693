"""The one place Oort reads time: epoch milliseconds derived from ``trio.current_time()``.

Reading time only through here lets tests and ``oort replay`` drive windows, backoff and restart delays on
``trio.testing.MockClock`` in virtual time.
"""

from __future__ import annotations

import time
from typing import final

import trio


@final
class Clock:
    """Epoch-millisecond clock anchored once to the wall clock, then advanced by trio's clock.

    Args:
      epoch_ms: the epoch time in ms that the current trio time maps to; default: the wall clock now.
        ``oort replay`` and tests pass the clock start of the recorded events.

    Must be created inside ``trio.run`` (it reads ``trio.current_time()``).
    """

    __slots__ = ("_offset_ms",)

    def __init__(self, epoch_ms: int | None = None) -> None:
        anchor = time.time() * 1000.0 if epoch_ms is None else float(epoch_ms)
        self._offset_ms = anchor - trio.current_time() * 1000.0

    def now_ms(self) -> int:
        """Current epoch time in whole milliseconds."""
        return int(self._offset_ms + trio.current_time() * 1000.0)

    def to_trio(self, epoch_ms: float) -> float:
        """The trio deadline (seconds on trio's clock) at which ``now_ms()`` reaches ``epoch_ms``."""
        return (epoch_ms - self._offset_ms) / 1000.0

    def __repr__(self) -> str:
        return f"<Clock now_ms={self.now_ms()}>"
