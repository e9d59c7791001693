"""ServerSource and ServerSink: the server-mode connectors over a real hub, driven directly and through Engine."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import orjson
import pytest
import trio
import trio.testing
from trio_websocket import ConnectionClosed

from runtime.clock import Clock
from runtime.config import SourceConf, load_config
from runtime.engine import Engine
from runtime.errors import ServerStartError, SinkError, SourceError
from runtime.io.contract import IoContext, SinkSpec, SourceSpec
from runtime.io.registry import Registry
from runtime.io.services import Services
from runtime.io.websocket.conf import WsConf
from runtime.io.websocket.server_mode import ServerSink, ServerSource
from runtime.model import Batch, Event
from tests.io.websocket.test_data_server import LOCAL, connect, json_decoder, refused


@pytest.fixture
def services(nursery: trio.Nursery) -> Services:
    s = Services(source_conf=LOCAL)
    s.attach(nursery)
    return s


def ctx_of(services: Services, rule: str = "r") -> IoContext:
    return IoContext(rule_id=rule, clock=Clock(), services=services, logger=logging.getLogger(rule))


def source_spec(services: Services, path: str = "feed", stream: str = "s") -> SourceSpec:
    return SourceSpec(
        stream=stream,
        type="websocket",
        datasource=path,
        format="json",
        props={},
        options={},
        ctx=ctx_of(services),
    )


def sink_spec(services: Services, **props: Any) -> SinkSpec:
    return SinkSpec(type="websocket", index=0, props=props, ctx=ctx_of(services))


async def test_source_binds_before_started_and_frees_the_port_when_cancelled(services: Services) -> None:
    with trio.fail_after(10):
        source = ServerSource(source_spec(services), WsConf(), json_decoder())
        send, recv = trio.open_memory_channel[Batch](10)
        hub = services.data_server
        async with trio.open_nursery() as nursery:
            await nursery.start(source.run, send)
            port = hub.port
            assert not await refused(port)
            async with connect(port, "/feed") as ws:
                await ws.send_message('{"a": 1}')
                (event,) = await recv.receive()
                assert isinstance(event, Event) and event.data == {"a": 1} and event.meta is not None
                assert event.meta["path"] == "/feed"
                nursery.cancel_scope.cancel()
                with pytest.raises(ConnectionClosed) as info:
                    await ws.get_message()
                assert info.value.reason is not None and info.value.reason.code == 1001
        assert await refused(port) and hub.counts()["refs"] == 0


async def test_mode_mismatch_is_refused_when_built() -> None:
    services = Services(source_conf=LOCAL)
    with pytest.raises(SourceError, match="server mode"):
        ServerSource(source_spec(services), WsConf(addr="127.0.0.1:1"), json_decoder())
    with pytest.raises(SourceError, match="URL path"):
        ServerSource(source_spec(services, path="/"), WsConf(), json_decoder())
    with pytest.raises(SinkError, match="server mode"):
        ServerSink(sink_spec(services), WsConf(addr="127.0.0.1:1"), "/out")
    with pytest.raises(SinkError, match="'path' is required"):
        ServerSink(sink_spec(services), WsConf(), "")


async def test_sink_broadcasts_to_every_client_on_its_path(services: Services) -> None:
    with trio.fail_after(10):
        sink = ServerSink(sink_spec(services), WsConf(), "out")
        await sink.open()
        try:
            port = services.data_server.port
            async with connect(port, "/out") as c1, connect(port, "/out") as c2:
                while services.data_server.counts()["connections"] < 2:
                    await trio.testing.wait_all_tasks_blocked()
                await sink.write({"t": 1})
                await sink.write([{"t": 2}, {"t": 3}])
                for ws in (c1, c2):
                    assert orjson.loads(await ws.get_message()) == {"t": 1}
                    assert orjson.loads(await ws.get_message()) == [{"t": 2}, {"t": 3}]
        finally:
            await sink.aclose()
        assert not services.data_server.running
        with pytest.raises(SinkError, match="not open"):
            await sink.write({"t": 4})


async def test_a_slow_sink_client_is_closed_1008_and_never_stalls_the_rule(services: Services) -> None:
    with trio.fail_after(20):
        # A small outbound queue so the test fills it quickly; the client never reads.
        services.data_server.outbound_queue = 4
        sink = ServerSink(sink_spec(services), WsConf(), "/out")
        await sink.open()
        try:
            async with connect(services.data_server.port, "/out") as slow:
                while services.data_server.counts()["connections"] < 1:
                    await trio.testing.wait_all_tasks_blocked()
                big = {"pad": "x" * 100_000}
                for _ in range(2000):
                    await sink.write(big)  # never blocks on the client
                    if sink.slow_clients:
                        break
                    await trio.testing.wait_all_tasks_blocked()
                assert sink.slow_clients == 1
                assert "closed with 1008" in sink_ctx(sink).connection.last_disconnected_message
                with pytest.raises(ConnectionClosed) as info:
                    while True:
                        await slow.get_message()
                assert info.value.reason is not None and info.value.reason.code == 1008
        finally:
            await sink.aclose()


def sink_ctx(sink: ServerSink) -> IoContext:
    return sink._spec.ctx


async def test_sink_and_source_share_the_server(services: Services) -> None:
    with trio.fail_after(10):
        sink = ServerSink(sink_spec(services), WsConf(), "/out")
        source = ServerSource(source_spec(services, "/in"), WsConf(), json_decoder())
        send, recv = trio.open_memory_channel[Batch](10)
        hub = services.data_server
        async with trio.open_nursery() as nursery:
            await nursery.start(source.run, send)
            await sink.open()
            assert hub.generation == 1 and hub.counts()["endpoints"] == 2
            nursery.cancel_scope.cancel()
        assert hub.running  # the sink still holds it
        await sink.aclose()
        assert not hub.running and hub.counts() == dict.fromkeys(hub.counts(), 0)


async def test_port_in_use_fails_the_source_start(nursery: trio.Nursery) -> None:
    with trio.fail_after(10):
        holder = Services(source_conf=LOCAL)
        holder.attach(nursery)
        sink = ServerSink(sink_spec(holder), WsConf(), "/out")
        await sink.open()
        try:
            clash = Services(
                source_conf=SourceConf(http_server_ip="127.0.0.1", http_server_port=holder.data_server.port)
            )
            clash.attach(nursery)
            source = ServerSource(source_spec(clash), WsConf(), json_decoder())
            send, _recv = trio.open_memory_channel[Batch](1)
            with pytest.raises(
                ServerStartError, match="cannot start the websocket data server on 127.0.0.1:"
            ):
                await nursery.start(source.run, send)
        finally:
            await sink.aclose()


# -- through the real Engine and the builtin registry (TYPE="websocket", no addr => server mode) --------------


@pytest.fixture
async def ws_engine(tmp_path: Path, registry: Registry) -> Any:
    etc = tmp_path / "etc"
    etc.mkdir()
    (etc / "oort.toml").write_text('[source]\nhttpServerIp = "127.0.0.1"\nhttpServerPort = 0\n')
    eng = Engine(load_config(etc), etc_dir=etc, data_dir=tmp_path / "data", registry=registry, seed=1)
    async with trio.open_nursery() as nursery:
        await nursery.start(eng.run)
        yield eng
        nursery.cancel_scope.cancel()


async def test_rule_from_websocket_clients_to_websocket_clients(ws_engine: Engine) -> None:
    with trio.fail_after(15):
        ws_engine.create_stream("stream", 'CREATE STREAM feed () WITH (TYPE="websocket", DATASOURCE="/in")')
        await ws_engine.create_rule(
            {
                "id": "hot",
                "sql": "SELECT t * 2 AS t2 FROM feed WHERE t > 20",
                "actions": [{"websocket": {"path": "/out", "sendSingle": True}}],
            }
        )
        await ws_engine.wait_status("hot", "running")
        hub = ws_engine.services.data_server
        port = hub.port
        async with connect(port, "/out") as out, connect(port, "/in") as feed:
            while hub.counts()["connections"] < 2:
                await trio.testing.wait_all_tasks_blocked()
            await feed.send_message('[{"t": 10}, {"t": 25}]')
            await feed.send_message("not json")
            await feed.send_message('{"t": 30}')
            assert orjson.loads(await out.get_message()) == {"t2": 50}
            assert orjson.loads(await out.get_message()) == {"t2": 60}
            await ws_engine.stop_rule("hot")
            with pytest.raises(ConnectionClosed):
                await out.get_message()
        assert await refused(port) and not hub.running


async def test_binary_payloads_pass_through_unchanged_as_binary_frames(ws_engine: Engine) -> None:
    with trio.fail_after(15):
        ws_engine.create_stream(
            "stream", 'CREATE STREAM raw () WITH (TYPE="websocket", DATASOURCE="/raw", FORMAT="binary")'
        )
        await ws_engine.create_rule(
            {
                "id": "bin",
                "sql": "SELECT self FROM raw",
                "actions": [{"websocket": {"path": "/rawout", "format": "binary", "sendSingle": True}}],
            }
        )
        await ws_engine.wait_status("bin", "running")
        hub = ws_engine.services.data_server
        async with connect(hub.port, "/rawout") as out, connect(hub.port, "/raw") as feed:
            while hub.counts()["connections"] < 2:
                await trio.testing.wait_all_tasks_blocked()
            payloads = [b"\x00\x01\xfe\xff", b"", "text frames arrive as their UTF-8 bytes"]
            for payload in payloads:
                await feed.send_message(payload)
            for payload in payloads:
                got = await out.get_message()
                assert isinstance(got, bytes)
                assert got == (payload.encode() if isinstance(payload, str) else payload)


async def test_a_message_without_self_is_counted_and_the_rule_goes_on(ws_engine: Engine) -> None:
    with trio.fail_after(15):
        ws_engine.create_stream("stream", 'CREATE STREAM b64 () WITH (TYPE="websocket", DATASOURCE="/b64")')
        await ws_engine.create_rule(
            {
                "id": "dec",
                "sql": "SELECT b AS self FROM b64",
                "actions": [{"websocket": {"path": "/bytes", "format": "binary", "sendSingle": True}}],
            }
        )
        await ws_engine.wait_status("dec", "running")
        hub = ws_engine.services.data_server
        async with connect(hub.port, "/bytes") as out, connect(hub.port, "/b64") as feed:
            while hub.counts()["connections"] < 2:
                await trio.testing.wait_all_tasks_blocked()
            await feed.send_message('{"b": "AAH/"}')  # base64 text, as bytea travels in JSON
            await feed.send_message('{"c": 1}')  # no b: no self field to send
            await feed.send_message('{"b": "aGk="}')
            assert await out.get_message() == b"\x00\x01\xff"
            assert await out.get_message() == b"hi"
        status = ws_engine.rule_status("dec")
        assert status["status"] == "running"
        assert status["sink_websocket_0_0_exceptions_total"] == 1
        assert "self" in status["sink_websocket_0_0_last_exception"]
