"""eKuiper's ``nop`` sink: accepts every message and drops it (benchmarks, rules kept only for metrics)."""

from __future__ import annotations

from typing import final

from runtime.io.contract import SinkSpec
from runtime.model import Row


@final
class NopSink:
    """Action ``"nop"``: no properties; ``write`` returns at once. Counts how many messages it swallowed."""

    __slots__ = ("_ctx", "written")

    def __init__(self, spec: SinkSpec) -> None:
        self._ctx = spec.ctx
        self.written = 0

    async def open(self) -> None:
        self._ctx.connection.status = 1
        self._ctx.connection.last_connected_time = self._ctx.clock.now_ms()

    async def write(self, data: Row | list[Row] | str) -> None:
        self.written += 1

    def write_nowait(self, data: Row | list[Row] | str) -> None:
        """The same as ``write``: it never waits, so the rule's operator task calls it inline."""
        self.written += 1

    async def aclose(self) -> None:
        self._ctx.connection.status = 0
