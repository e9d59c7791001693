"""Engine-scoped objects shared by connectors: handed to every connector through ``IoContext.services``.

Anything connector instances of different rules must share (the memory bus, the websocket data server, shared
websocket client connections) lives here, owned by one ``Engine``, so no connector needs module-level state.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar, final

import trio

from runtime.clock import Clock
from runtime.config import SourceConf
from runtime.errors import EngineError
from runtime.io.memory.bus import MemoryBus
from runtime.sql.values import EvalContext
from runtime.store.keyed import KeyedStateStore

# eKuiper reads KUIPER_PROPS_*; Oort also its own prefix.
PROPS_ENV_PREFIXES = ("OORT_PROPS_", "KUIPER_PROPS_")


def props_from_environ(environ: Mapping[str, str]) -> dict[str, str]:
    """The ``props(name)`` values: every ``OORT_PROPS_<NAME>``/``KUIPER_PROPS_<NAME>`` variable, name lower-cased.

    eKuiper reads these once at startup (``pkg/props``); ``OORT_PROPS_*`` wins over ``KUIPER_PROPS_*``.
    """
    props: dict[str, str] = {}
    for prefix in reversed(PROPS_ENV_PREFIXES):
        for key, value in environ.items():
            if key.startswith(prefix) and len(key) > len(prefix):
                props[key[len(prefix) :].lower()] = value
    return props


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
      keyed_state: the store ``get_keyed_state()`` reads; default: an empty one in memory.
      props: the values ``props(name)`` reads (see ``props_from_environ``); default: none.
    """

    __slots__ = ("_nursery", "_shared", "etc_dir", "keyed_state", "memory", "props", "source_conf")

    def __init__(
        self,
        memory: MemoryBus | None = None,
        *,
        source_conf: SourceConf | None = None,
        etc_dir: Path | None = None,
        keyed_state: KeyedStateStore | None = None,
        props: Mapping[str, str] | None = None,
    ) -> None:
        self.memory = memory if memory is not None else MemoryBus()
        self.keyed_state = keyed_state if keyed_state is not None else KeyedStateStore()
        self.props: Mapping[str, str] = dict(props) if props is not None else {}
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

    def eval_context(self, rule_id: str, clock: Clock) -> EvalContext:
        """A rule run's expression context, reading this engine's keyed state and props.

        Made when the run starts: ``rule_start()`` is the clock's time now.
        """
        return EvalContext(rule_id=rule_id, clock=clock, keyed_state=self.keyed_state, props=self.props)

    def __repr__(self) -> str:
        return (
            f"<Services memory_subscriptions={self.memory.subscription_count} shared={sorted(self._shared)}>"
        )
