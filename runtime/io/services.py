"""Engine-scoped objects shared by connectors: handed to every connector through ``IoContext.services``.

Anything connector instances of different rules must share (the memory bus, the websocket data server, shared
websocket client connections) lives here, owned by one ``Engine``, so no connector needs module-level state.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar, final

import trio

from runtime.config import SourceConf
from runtime.errors import EngineError
from runtime.io.memory import MemoryBus

_T = TypeVar("_T")


@final
class Services:
    """The shared connector services of one engine.

    Args:
      memory: the memory pub/sub bus; default: a new, empty one.

    Attributes:
      memory: what memory sources subscribe to, memory sinks and REST ``POST /memory/{topic}`` publish to.
      source_conf: the ``[source]`` section of ``oort.toml`` (global data server address and TLS).
      etc_dir: the configuration folder (conf groups), or None outside an engine.
    """

    __slots__ = ("_nursery", "_shared", "etc_dir", "memory", "source_conf")

    def __init__(
        self,
        memory: MemoryBus | None = None,
        *,
        source_conf: SourceConf | None = None,
        etc_dir: Path | None = None,
    ) -> None:
        self.memory = memory if memory is not None else MemoryBus()
        self.source_conf = source_conf if source_conf is not None else SourceConf()
        self.etc_dir = etc_dir
        self._nursery: trio.Nursery | None = None
        self._shared: dict[str, Any] = {}

    def attach(self, nursery: trio.Nursery | None) -> None:
        """Give the services the engine's supervisor nursery (None when the engine stops).

        Long-lived shared owners (the websocket data server, shared client connections) start their tasks
        there, so they outlive any one rule but never the engine.
        """
        self._nursery = nursery
        if nursery is None:
            self._shared.clear()

    @property
    def nursery(self) -> trio.Nursery:
        """The supervisor nursery. Raises EngineError when the engine is not running."""
        if self._nursery is None:
            raise EngineError("connector services are not running (no engine nursery)")
        return self._nursery

    def shared(self, key: str, factory: Callable[[], _T]) -> _T:
        """The engine-wide object registered under ``key``, made by ``factory`` on first use.

        Connectors use it for their shared managers, e.g. ``services.shared("websocket.server", WsHub…)``.
        """
        found = self._shared.get(key)
        if found is None:
            found = self._shared[key] = factory()
        return found

    def __repr__(self) -> str:
        return (
            f"<Services memory_subscriptions={self.memory.subscription_count} shared={sorted(self._shared)}>"
        )
