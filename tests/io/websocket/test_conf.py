"""The websocket conf group (``parse_ws_conf``), the shipped ``etc/sources/websocket.toml`` and the registered
``websocket`` source/sink factories: which mode they pick and every configuration error they report."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest

from runtime.clock import Clock
from runtime.config import conf_group, load_conf_groups
from runtime.errors import PlanError, SinkError, SourceError
from runtime.io.contract import IoContext, SinkSpec, SourceSpec
from runtime.io.registry import builtin_registry
from runtime.io.services import Services
from runtime.io.sinkprops import SinkProps
from runtime.io.websocket.client_mode import ClientSink, ClientSource
from runtime.io.websocket.conf import CONF_KEYS, WsConf, parse_ws_conf
from runtime.io.websocket.server_mode import ServerSink, ServerSource
from runtime.sql.ast import FieldDef, SimpleType, StreamDef, StreamOptions

REPO_ETC = Path(__file__).resolve().parents[3] / "etc"
WHERE = "websocket conf group 'g'"


def problems(props: dict[str, Any]) -> str:
    with pytest.raises(PlanError) as info:
        parse_ws_conf(props, WHERE)
    return info.value.message


def test_empty_group_is_server_mode_with_defaults() -> None:
    conf = parse_ws_conf({}, WHERE)
    assert conf == WsConf()
    assert conf.server_mode


def test_every_key_parses() -> None:
    conf = parse_ws_conf(
        {
            "addr": "wss://feed.example.com:8443/base",
            "scheme": "WSS",
            "certificationPath": "c.pem",
            "privateKeyPath": "k.pem",
            "rootCaPath": "ca.pem",
            "insecureSkipVerify": True,
            "requestHeaders": {"Authorization": "Bearer x"},
            "openMessage": '{"subscribe": "a"}',
            "connectTimeout": "1500ms",
            "reconnectMinDelay": 0.5,
            "reconnectMaxDelay": "1m",
            "pingInterval": 3,
            "maxMessageSize": 1024,
            "maxConnections": 4,
            "token": "t",
            "allowedOrigins": ["https://a"],
        },
        WHERE,
    )
    assert conf == WsConf(
        addr="wss://feed.example.com:8443/base",
        scheme="wss",
        certification_path="c.pem",
        private_key_path="k.pem",
        root_ca_path="ca.pem",
        insecure_skip_verify=True,
        request_headers={"Authorization": "Bearer x"},
        open_message='{"subscribe": "a"}',
        connect_timeout=1.5,
        reconnect_min_delay=0.5,
        reconnect_max_delay=60.0,
        ping_interval=3.0,
        max_message_size=1024,
        max_connections=4,
        token="t",
        allowed_origins=("https://a",),
    )
    assert not conf.server_mode


@pytest.mark.parametrize(
    ("props", "message"),
    [
        ({"server": "x"}, f"{WHERE}: server: unknown key (known: {', '.join(CONF_KEYS)})"),
        ({"addr": 8080}, f"{WHERE}: addr: expected a string, got int 8080"),
        (
            {"addr": "localhost"},
            f"{WHERE}: addr: expected 'host:port' or a ws:// or wss:// URL, got 'localhost'",
        ),
        ({"addr": "h:99999"}, f"{WHERE}: addr: expected 'host:port' or a ws:// or wss:// URL, got 'h:99999'"),
        ({"addr": "http://h:1"}, f"{WHERE}: addr: a URL must start with ws:// or wss://, got 'http://h:1'"),
        ({"addr": "ws://"}, f"{WHERE}: addr: expected ws://host:port, got 'ws://'"),
        ({"scheme": "tcp"}, f"{WHERE}: scheme: expected 'ws' or 'wss', got 'tcp'"),
        (
            {"insecureSkipVerify": "true"},
            f"{WHERE}: insecureSkipVerify: expected true or false, got str 'true'",
        ),
        (
            {"requestHeaders": "a"},
            f"{WHERE}: requestHeaders: expected a table of header = value strings, got str 'a'",
        ),
        ({"requestHeaders": {"X-N": 1}}, f"{WHERE}: requestHeaders: header values must be strings: X-N"),
        (
            {"connectTimeout": "soon"},
            f"{WHERE}: connectTimeout: expected a duration like '5s' or '500ms', got 'soon'",
        ),
        (
            {"connectTimeout": True},
            f"{WHERE}: connectTimeout: expected seconds or a duration like '5s' or '500ms', got bool True",
        ),
        ({"pingInterval": -1}, f"{WHERE}: pingInterval: must not be negative, got -1"),
        ({"maxMessageSize": -5}, f"{WHERE}: maxMessageSize: must not be negative, got -5"),
        ({"maxConnections": 1.5}, f"{WHERE}: maxConnections: expected a non-negative integer, got float 1.5"),
        ({"allowedOrigins": [1]}, f"{WHERE}: allowedOrigins: expected a list of strings, got list [1]"),
        (
            {"reconnectMinDelay": "2s", "reconnectMaxDelay": "1s"},
            f"{WHERE}: reconnectMinDelay: 2s is above reconnectMaxDelay 1s",
        ),
    ],
)
def test_bad_values_name_their_key(props: dict[str, Any], message: str) -> None:
    assert problems(props) == message


def test_every_problem_is_listed_at_once() -> None:
    message = problems({"srever": 1, "scheme": "http", "maxMessageSize": "big", "addr": ""})
    assert message.count(WHERE) == 3
    assert "srever: unknown key" in message and "scheme:" in message and "maxMessageSize:" in message


def test_allowed_origins_accepts_one_string() -> None:
    assert parse_ws_conf({"allowedOrigins": "https://a"}, WHERE).allowed_origins == ("https://a",)


def test_shipped_conf_file_is_valid_server_mode() -> None:
    groups = load_conf_groups(REPO_ETC, "sources", "websocket")
    assert list(groups) == ["default"]
    assert parse_ws_conf(conf_group(REPO_ETC, "sources", "websocket", "default"), WHERE).server_mode


def test_commented_client_group_in_shipped_file_is_valid() -> None:
    # Uncommenting the example must give a working group: keep the documentation honest.
    text = (REPO_ETC / "sources" / "websocket.toml").read_text()
    start = text.index("# [feed]")
    uncommented = "\n".join(line.removeprefix("# ") for line in text[start:].splitlines())
    import tomllib

    conf = parse_ws_conf(tomllib.loads(uncommented)["feed"], WHERE)
    assert conf.addr == "127.0.0.1:8080" and conf.request_headers == {"Authorization": "Bearer secret"}
    assert conf.reconnect_min_delay == 0.1 and conf.connect_timeout == 5.0


# -- the registered factories (async: a Clock reads trio's clock) ---------------------------------------------------------------------------------


def ctx(services: Services) -> IoContext:
    return IoContext(rule_id="r", clock=Clock(), services=services, logger=logging.getLogger("test"))


def source_spec(
    props: dict[str, Any],
    datasource: str = "/api/data",
    fmt: str = "json",
    definition: StreamDef | None = None,
) -> SourceSpec:
    return SourceSpec(
        stream="s",
        type="websocket",
        datasource=datasource,
        format=fmt,
        props=props,
        options={},
        ctx=ctx(Services()),
        definition=definition,
    )


def sink_spec(props: dict[str, Any], etc_dir: Path | None = None) -> SinkSpec:
    return SinkSpec(type="websocket", index=1, props=props, ctx=ctx(Services(etc_dir=etc_dir)))


async def test_source_factory_picks_the_mode_from_addr() -> None:
    factory = builtin_registry().source_factory("WebSocket")
    assert isinstance(factory(source_spec({})), ServerSource)
    assert isinstance(factory(source_spec({"addr": "127.0.0.1:9"})), ClientSource)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (
            {"props": {}, "datasource": "api/data"},
            "stream s: websocket DATASOURCE must be a URL path starting with '/', got 'api/data'",
        ),
        (
            {"props": {}, "datasource": ""},
            "stream s: websocket DATASOURCE must be a URL path starting with '/', got ''",
        ),
        ({"props": {"addr": 1}}, "stream s: websocket conf group: addr: expected a string, got int 1"),
        (
            {"props": {}, "definition": StreamDef("s", "stream", (), StreamOptions(format="protobuf"))},
            "stream s: FORMAT 'protobuf' cannot be decoded; supported: binary, delimited, json",
        ),
        (
            {
                "props": {},
                "definition": StreamDef(
                    "s", "stream", (FieldDef("a", SimpleType("bigint")),), StreamOptions(format="binary")
                ),
            },
            "stream s: FORMAT binary needs no schema or exactly one BYTEA field",
        ),
    ],
)
async def test_source_factory_errors_name_the_stream(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(PlanError) as info:
        builtin_registry().source_factory("websocket")(source_spec(**kwargs))
    assert info.value.message == message


async def test_server_source_refuses_a_bare_slash() -> None:
    with pytest.raises(SourceError):
        builtin_registry().source_factory("websocket")(source_spec({}, datasource="/"))


async def test_sink_factory_modes_and_conf_key(tmp_path: Path) -> None:
    factory = builtin_registry().sink_factory("websocket")
    # The runtime's keys (the cache's here) are taken out of the action before it reaches the connector.
    action = SinkProps.from_action({"path": "/api/results", "format": "json", "enableCache": False})
    server = factory(sink_spec(action.connector_props))
    assert isinstance(server, ServerSink)
    client = factory(sink_spec({"path": "/in", "addr": "127.0.0.1:9", "scheme": "ws"}))
    assert isinstance(client, ClientSink)
    (tmp_path / "sources").mkdir()
    (tmp_path / "sources" / "websocket.toml").write_text('[default]\n[up]\naddr = "127.0.0.1:9"\n')
    from_group = factory(sink_spec({"path": "/in", "confKey": "up"}, tmp_path))
    assert isinstance(from_group, ClientSink)


@pytest.mark.parametrize(
    ("props", "message"),
    [
        ({}, "websocket sink (action 1): property 'path' is required and must start with '/', got None"),
        (
            {"path": "out"},
            "websocket sink (action 1): property 'path' is required and must start with '/', got 'out'",
        ),
        ({"path": "/o", "adr": "h:1"}, "websocket sink (action 1): adr: unknown key"),
        ({"path": "/o", "confKey": "nope"}, "websocket sink (action 1): conf key 'nope' is not found"),
        ({"path": "/o", "confKey": 3}, "websocket sink (action 1): confKey must be a conf group name, got 3"),
    ],
)
async def test_sink_factory_errors(tmp_path: Path, props: dict[str, Any], message: str) -> None:
    with pytest.raises(PlanError) as info:
        builtin_registry().sink_factory("websocket")(sink_spec(props, tmp_path))
    assert info.value.message.startswith(message)


async def test_sink_format_errors_come_from_the_encoder() -> None:
    with pytest.raises(PlanError, match="unknown format 'yaml'"):
        builtin_registry().sink_factory("websocket")(sink_spec({"path": "/o", "format": "yaml"}))
    with pytest.raises(SinkError):
        builtin_registry().sink_factory("websocket")(sink_spec({"path": "/o", "addr": "ws://:1"}))
