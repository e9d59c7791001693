"""Engine-scoped objects shared by connectors: handed to every connector through ``IoContext.services``.

Anything connector instances of different rules must share (the memory bus now, the websocket hub later)
lives here, owned by one ``Engine``, so no connector needs module-level state.
"""

from __future__ import annotations

from typing import final

from runtime.io.memory import MemoryBus


@final
class Services:
    """The shared connector services of one engine.

    Args:
      memory: the memory pub/sub bus; default: a new, empty one.

    Attributes:
      memory: what memory sources subscribe to, memory sinks and REST ``POST /memory/{topic}`` publish to.
    """

    __slots__ = ("memory",)

    def __init__(self, memory: MemoryBus | None = None) -> None:
        self.memory = memory if memory is not None else MemoryBus()

    def __repr__(self) -> str:
        return f"<Services memory_subscriptions={self.memory.subscription_count}>"
