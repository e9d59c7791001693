"""Engine-scoped objects shared by connectors: handed to every connector through ``IoContext.services``.

Anything connector instances of different rules must share (the memory bus, the global websocket data server,
shared websocket client connections) lives here, owned by one ``Engine``, so no connector needs module-level
state. The data server and the client pool are made on first use (their modules import wsproto, which an
engine without websocket rules never needs) and dropped when the engine stops.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, final

import trio

from runtime.clock import Clock
from runtime.config import Config, SourceConf
from runtime.errors import EngineError
from runtime.io.memory.bus import MemoryBus
from runtime.io.sandbox import FileRoots
from runtime.sql.values import EvalContext
from runtime.store.keyed import KEYED_STATE_FILE, KeyedStateStore

FILES_DIR = "files"  # in the data dir: the default file root (basic.fileRoots)
CONF_DIR = "conf"  # in the data dir: conf group changes made over REST, layered over etc/

if TYPE_CHECKING:
    from runtime.io.mqtt.pool import MqttPool
    from runtime.io.websocket.pool import WsClientPool
    from runtime.io.websocket.server import DataServer

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


@final
class Services:
    """The shared connector services of one engine.

    Args:
      memory: the memory pub/sub bus; default: a new, empty one.

    Attributes:
      memory: what memory sources subscribe to, memory sinks and REST ``POST /memory/{topic}`` publish to.
      source_conf: the ``[source]`` section of ``oort.toml`` (global data server address and TLS).
      etc_dir: the configuration folder (conf groups), or None outside an engine.
      conf_overlay: where the REST API keeps its conf group changes over ``etc_dir`` (the data dir's ``conf``
        folder; ``etc_dir`` itself is never written), or None to read ``etc_dir`` alone.
      keyed_state: the store ``get_keyed_state()`` reads; default: an empty one in memory.
      props: the values ``props(name)`` reads (see ``props_from_environ``); default: none.
      file_roots: the folders file sinks and sources may use; default: anywhere (the daemon always fences).
      data_dir: the engine's data dir, where sink caches overflow to disk (``sinkcache/``); None keeps them in
        memory only.
      data_server: the global websocket data server (server-mode sources and sinks).
      ws_clients: the shared websocket client connections (client-mode sources and sinks).
      mqtt: the shared MQTT broker connections (mqtt sources and sinks).
    """

    __slots__ = (
        "_data_server",
        "_mqtt",
        "_nursery",
        "_ws_clients",
        "conf_overlay",
        "data_dir",
        "etc_dir",
        "file_roots",
        "keyed_state",
        "memory",
        "props",
        "source_conf",
    )

    @classmethod
    def for_daemon(cls, config: Config, etc_dir: Path, data_dir: Path) -> Services:
        """The services of an engine run from ``etc_dir`` and ``data_dir``: keyed state, file roots, the conf
        overlay and the sink caches in the data dir, props from ``OORT_PROPS_...`` variables."""
        roots = [Path(root) for root in config.basic.file_roots] or [data_dir / FILES_DIR]
        return cls(
            source_conf=config.source,
            etc_dir=etc_dir,
            keyed_state=KeyedStateStore(data_dir / KEYED_STATE_FILE),
            props=props_from_environ(os.environ),
            file_roots=FileRoots(roots),
            conf_overlay=data_dir / CONF_DIR,
            data_dir=data_dir,
        )

    def __init__(
        self,
        memory: MemoryBus | None = None,
        *,
        source_conf: SourceConf | None = None,
        etc_dir: Path | None = None,
        keyed_state: KeyedStateStore | None = None,
        props: Mapping[str, str] | None = None,
        file_roots: FileRoots | None = None,
        conf_overlay: Path | None = None,
        data_dir: Path | None = None,
    ) -> None:
        self.memory = memory if memory is not None else MemoryBus()
        self.keyed_state = keyed_state if keyed_state is not None else KeyedStateStore()
        self.props: Mapping[str, str] = dict(props) if props is not None else {}
        self.source_conf = source_conf if source_conf is not None else SourceConf()
        self.etc_dir = etc_dir
        self.conf_overlay = conf_overlay
        self.data_dir = data_dir
        self.file_roots = file_roots if file_roots is not None else FileRoots.anywhere()
        self._nursery: trio.Nursery | None = None
        self._data_server: DataServer | None = None
        self._ws_clients: WsClientPool | None = None
        self._mqtt: MqttPool | None = None

    def attach(self, nursery: trio.Nursery | None) -> None:
        """Give the services the engine's supervisor nursery (None when the engine stops).

        Long-lived shared owners (the websocket data server, shared client connections) start their tasks
        there, so they outlive any one rule but never the engine.
        """
        self._nursery = nursery
        if nursery is None:
            self._data_server = None
            self._ws_clients = None
            self._mqtt = None

    @property
    def nursery(self) -> trio.Nursery:
        """The supervisor nursery. Raises EngineError when the engine is not running."""
        if self._nursery is None:
            raise EngineError("connector services are not running (no engine nursery)")
        return self._nursery

    @property
    def data_server(self) -> DataServer:
        """The engine's global websocket data server: started by its first user, stopped by its last."""
        if self._data_server is None:
            from runtime.io.websocket.server import DataServer

            self._data_server = DataServer(lambda: self.nursery, self.source_conf)
        return self._data_server

    @property
    def ws_clients(self) -> WsClientPool:
        """The engine's shared websocket client connections, one per distinct target."""
        if self._ws_clients is None:
            from runtime.io.websocket.pool import WsClientPool

            self._ws_clients = WsClientPool(lambda: self.nursery)
        return self._ws_clients

    @property
    def mqtt(self) -> MqttPool:
        """The engine's shared MQTT connections, one per distinct connection setting."""
        if self._mqtt is None:
            from runtime.io.mqtt.pool import MqttPool

            self._mqtt = MqttPool(lambda: self.nursery)
        return self._mqtt

    def eval_context(self, rule_id: str, clock: Clock) -> EvalContext:
        """A rule run's expression context, reading this engine's keyed state and props.

        Made when the run starts: ``rule_start()`` is the clock's time now.
        """
        return EvalContext(rule_id=rule_id, clock=clock, keyed_state=self.keyed_state, props=self.props)

    def __repr__(self) -> str:
        return (
            f"<Services memory_subscriptions={self.memory.subscription_count}"
            f" data_server={self._data_server!r} ws_clients={self._ws_clients!r}>"
        )
