"""MQTT settings: the connection (``MqttConn``), the source's conf group and the sink's action properties.

Keys are eKuiper's (``etc/mqtt_source.yaml`` and the mqtt sink's properties). A source's conf group is
``[default]`` of ``etc/sources/mqtt.toml`` with its ``CONF_KEY`` group and the stream's EXTRA on top; a sink's
properties are the action's own, over the conf group named by ``confKey`` if any. Every unknown key (naming the
nearest valid one) and every wrong value is reported at once.

Two users with equal ``MqttConn`` share one connection to the broker (see ``pool.py``).
"""

from __future__ import annotations

import base64
import binascii
from typing import Any, final

import attrs

from runtime.errors import ConfigProblem, PlanError
from runtime.io.confcheck import (
    Keys,
    as_bool,
    as_count,
    as_seconds,
    as_str,
    as_str_map,
    not_supported,
    one_of,
    parse_keys,
)

PLAIN_SCHEMES = {"tcp": 1883, "mqtt": 1883}
TLS_SCHEMES = {"ssl": 8883, "tls": 8883, "mqtts": 8883, "tcps": 8883}
V31, V311, V5 = 3, 4, 5
DEFAULT_MAX_MESSAGE_SIZE = (
    16 << 20
)  # largest decompressed payload a source accepts (a bomb is refused)  # MQTT protocol levels (paho's MQTTv31, MQTTv311, MQTTv5)


@final
@attrs.frozen
class MqttConn:
    """Everything that identifies one connection to a broker (the shared-connection key). Seconds for durations."""

    host: str = "127.0.0.1"
    port: int = 1883
    tls: bool = False
    protocol: int = V311
    client_id: str = ""
    username: str = ""
    password: str = attrs.field(default="", repr=False)
    certification_path: str = ""
    private_key_path: str = ""
    root_ca_path: str = ""
    insecure_skip_verify: bool = False
    tls_min_version: str = "tls1.2"
    persistent: bool = (
        False  # enableClientSession: no clean session, the broker keeps subscriptions and backlog
    )
    session_expiry: int = 60  # MQTT 5 session expiry (seconds) of a persistent session
    keep_alive: float = 30.0
    connect_timeout: float = 5.0
    reconnect_min_delay: float = 0.1
    reconnect_max_delay: float = 10.0
    dedicated: int = 0  # non-zero: never shared (a member of an MQTT shared subscription group, see pool.py)

    @property
    def server(self) -> str:
        """The broker address as a URL (no credentials in it)."""
        scheme = "ssl" if self.tls else "tcp"
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{scheme}://{host}:{self.port}"


@final
@attrs.frozen
class SourceConf:
    """A source's conf group: its connection and how it subscribes."""

    conn: MqttConn
    qos: int = 0
    decompression: str = ""
    eof_message: bytes = b""
    max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE


@final
@attrs.frozen
class SinkConf:
    """A sink's action properties: its connection and how it publishes."""

    conn: MqttConn
    topic: str
    qos: int = 0
    retained: bool = False
    properties: dict[str, str] = attrs.field(factory=dict, hash=False)
    compression: str = ""


def _server(value: Any) -> tuple[str, int, bool]:
    text = as_str(value).strip()
    scheme, sep, rest = text.partition("://")
    if not sep:
        scheme, rest = "tcp", text
    scheme = scheme.lower()
    if scheme in ("ws", "wss"):
        raise ConfigProblem(f"MQTT over websocket is not supported, got {value!r}; use tcp:// or ssl://")
    if scheme not in PLAIN_SCHEMES and scheme not in TLS_SCHEMES:
        raise ConfigProblem(f"expected tcp://host:port or ssl://host:port, got {value!r}")
    tls = scheme in TLS_SCHEMES
    hostport = rest.split("/", 1)[0]
    if "@" in hostport:
        raise ConfigProblem("credentials in the server URL are not supported; use username and password")
    if hostport.startswith("["):
        host, _, tail = hostport[1:].partition("]")
        port_text = tail[1:] if tail.startswith(":") else ""
    else:
        host, _, port_text = hostport.rpartition(":") if ":" in hostport else (hostport, "", "")
    if not host:
        raise ConfigProblem(f"expected tcp://host:port, got {value!r}")
    if port_text:
        if not port_text.isdigit() or not 0 < int(port_text) < 65536:
            raise ConfigProblem(f"bad port in {value!r}")
        port = int(port_text)
    else:
        port = TLS_SCHEMES[scheme] if tls else PLAIN_SCHEMES[scheme]
    return host, port, tls


def _protocol(value: Any) -> int:
    text = (
        str(value).strip() if isinstance(value, int | float | str) and not isinstance(value, bool) else None
    )
    versions = {"3.1": V31, "3": V31, "3.1.1": V311, "4": V311, "5": V5, "5.0": V5}
    if text not in versions:
        raise ConfigProblem(f"expected '3.1', '3.1.1' (or 4) or '5', got {value!r}")
    return versions[text]


def _qos(value: Any) -> int:
    if type(value) is not int or value not in (0, 1, 2):
        raise ConfigProblem(f"expected 0, 1 or 2, got {value!r}")
    return value


def _base64(value: Any) -> bytes:
    try:
        return base64.b64decode(as_str(value), validate=True)
    except (binascii.Error, ValueError):
        raise ConfigProblem(f"expected base64 text, got {value!r}") from None


def _uint32(value: Any) -> int:
    count = as_count(value)
    if count > 0xFFFFFFFF:
        raise ConfigProblem(f"must be at most {0xFFFFFFFF}, got {count}")
    return count


_compression = one_of("", "gzip", "zlib", "flate")

CONN_KEYS: Keys = {
    "server": ("server", _server),
    "protocolVersion": ("protocol", _protocol),
    "clientid": ("client_id", as_str),
    "clientId": ("client_id", as_str),
    "username": ("username", as_str),
    "password": ("password", as_str),
    "certificationPath": ("certification_path", as_str),
    "privateKeyPath": ("private_key_path", as_str),
    "rootCaPath": ("root_ca_path", as_str),
    "insecureSkipVerify": ("insecure_skip_verify", as_bool),
    "tlsMinVersion": ("tls_min_version", one_of("tls1.0", "tls1.1", "tls1.2", "tls1.3")),
    "enableClientSession": ("persistent", as_bool),
    "sessionExpiryIntervalSeconds": ("session_expiry", _uint32),
    "keepAlive": ("keep_alive", as_seconds),
    "connectTimeout": ("connect_timeout", as_seconds),
    "reconnectMinDelay": ("reconnect_min_delay", as_seconds),
    "reconnectMaxDelay": ("reconnect_max_delay", as_seconds),
    "certficationRaw": ("_raw", not_supported("give the certificate as a file with certificationPath")),
    "privateKeyRaw": ("_raw", not_supported("give the key as a file with privateKeyPath")),
    "rootCARaw": ("_raw", not_supported("give the CA as a file with rootCaPath")),
    "connectionSelector": (
        "_raw",
        not_supported("sources and sinks with identical connection settings share one connection already"),
    ),
}

SOURCE_KEYS: Keys = {
    **CONN_KEYS,
    "qos": ("qos", _qos),
    "decompression": ("decompression", _compression),
    "eofMessage": ("eof_message", _base64),
    "maxMessageSize": ("max_message_size", as_count),
    "bufferLength": ("_ignored", as_count),  # eKuiper's source buffer: the rule's bufferLength bounds Oort's
    "kubeedgeVersion": ("_raw", not_supported("KubeEdge device models are not implemented")),
    "kubeedgeModelFile": ("_raw", not_supported("KubeEdge device models are not implemented")),
}

SINK_CONF_KEY = "confKey"
"""Action property naming a conf group of ``etc/sources/mqtt.toml`` whose connection settings the sink uses."""

SINK_KEYS: Keys = {
    **CONN_KEYS,
    "topic": ("topic", as_str),
    "qos": ("qos", _qos),
    "retained": ("retained", as_bool),
    "properties": ("properties", as_str_map),
    "compression": ("compression", _compression),
}

# Action properties of the sink read elsewhere: the encoder's format helpers and the conf group name. (The
# runtime's own keys, sendSingle and the cache's among them, never reach a connector.)
SINK_IGNORED = frozenset({SINK_CONF_KEY, "format", "delimiter", "hasHeader", "schemaId"})

_CONN_ATTRS = frozenset(name for name, _ in CONN_KEYS.values())


def _conn(values: dict[str, Any], where: str) -> MqttConn:
    fields = {k: v for k, v in values.items() if k in _CONN_ATTRS and not k.startswith("_")}
    server = fields.pop("server", None)
    if server is not None:
        fields["host"], fields["port"], fields["tls"] = server
    conn = MqttConn(**fields)
    problems = []
    if conn.reconnect_min_delay > conn.reconnect_max_delay:
        problems.append(
            f"reconnectMinDelay: {conn.reconnect_min_delay:g}s is above reconnectMaxDelay "
            f"{conn.reconnect_max_delay:g}s"
        )
    if conn.private_key_path and not conn.certification_path:
        problems.append("privateKeyPath: set without certificationPath")
    if conn.keep_alive > 65535:
        problems.append(f"keepAlive: must be at most 65535 seconds, got {conn.keep_alive:g}")
    if problems:
        raise PlanError("; ".join(f"{where}: {p}" for p in problems))
    return conn


def parse_source_conf(props: dict[str, Any], where: str) -> SourceConf:
    """A source's merged conf group (``[default]`` + CONF_KEY group + EXTRA), validated.

    Raises:
      PlanError: every unknown key and wrong value, each prefixed by ``where``.
    """
    values = parse_keys(props, SOURCE_KEYS, where)
    return SourceConf(
        conn=_conn(values, where),
        qos=values.get("qos", 0),
        decompression=values.get("decompression", ""),
        eof_message=values.get("eof_message", b""),
        max_message_size=values.get("max_message_size", DEFAULT_MAX_MESSAGE_SIZE),
    )


def parse_sink_conf(props: dict[str, Any], where: str) -> SinkConf:
    """A sink's properties (over its ``confKey`` group), validated; ``topic`` is required and has no wildcard.

    Raises:
      PlanError: every unknown key and wrong value, each prefixed by ``where``.
    """
    problems = []
    topic = props.get("topic")
    if not topic:
        problems.append("topic: required")
    elif isinstance(topic, str) and ("#" in topic or "+" in topic):
        problems.append(f"topic: a sink topic must not contain the wildcards # or +, got {topic!r}")
    if "server" not in props:
        problems.append(f"server: required (or {SINK_CONF_KEY} naming a conf group of etc/sources/mqtt.toml)")
    try:
        values = parse_keys(props, SINK_KEYS, where, ignored=SINK_IGNORED)
    except PlanError as exc:
        raise PlanError("; ".join([exc.message, *(f"{where}: {p}" for p in problems)])) from None
    if problems:
        raise PlanError("; ".join(f"{where}: {p}" for p in problems))
    return SinkConf(
        conn=_conn(values, where),
        topic=values["topic"],
        qos=values.get("qos", 0),
        retained=values.get("retained", False),
        properties=values.get("properties", {}),
        compression=values.get("compression", ""),
    )
