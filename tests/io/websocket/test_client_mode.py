"""The client-mode websocket source and sink (runtime/io/websocket/client_mode.py) against a real local server.

Same rules as test_client.py: 127.0.0.1, port 0, an absolute ``trio.fail_after`` on every I/O test.
"""

from __future__ import annotations

import logging
from typing import Any

import pytest
import trio

from runtime.clock import Clock
from runtime.errors import PlanError, SinkError, SinkUnavailable, SourceError
from runtime.io.contract import IoContext, SinkSpec, SourceSpec
from runtime.io.services import Services
from runtime.io.websocket.client import CONNECTED, DISCONNECTED
from runtime.io.websocket.client_mode import ClientSink, ClientSource
from runtime.io.websocket.conf import WsConf
from runtime.model import Batch, ErrorItem, Event
from tests.io.websocket.client_peer import Peer, engine_services, free_port, json_decoder


def io_ctx(services: Services) -> IoContext:
    return IoContext(rule_id="r1", clock=Clock(), services=services, logger=logging.getLogger("oort.rule.r1"))


def source_spec(services: Services, datasource: str, stream: str = "feed") -> SourceSpec:
    return SourceSpec(
        stream=stream,
        type="websocket",
        datasource=datasource,
        format="json",
        props={},
        options={},
        ctx=io_ctx(services),
    )


def sink_spec(services: Services, **props: Any) -> SinkSpec:
    return SinkSpec(type="websocket", index=0, props=props, ctx=io_ctx(services))


async def wait_status(services: Services, status: int) -> None:
    """Wait on the shared client (there is exactly one in these tests) until it reaches ``status``."""
    (client,) = services.ws_clients._clients.values()
    await client.wait_status(status)


async def test_source_and_sink_reject_bad_settings_when_built() -> None:
    services = Services()
    with pytest.raises(SourceError, match="stream feed: client mode needs 'addr'"):
        ClientSource(source_spec(services, "/a"), WsConf(), json_decoder())
    with pytest.raises(SourceError, match="stream feed: websocket path 'api' must start with '/'"):
        ClientSource(source_spec(services, "api?token=s3cret"), WsConf(addr="h:1"), json_decoder())
    with pytest.raises(SinkError, match=r"action 0\): client mode needs 'addr'"):
        ClientSink(sink_spec(services), WsConf(), "/a")
    with pytest.raises(SinkError, match="scheme must be ws or wss"):
        ClientSink(sink_spec(services), WsConf(addr="h:1", scheme="tcp"), "/a")
    with pytest.raises(PlanError, match="unknown format"):
        ClientSink(sink_spec(services, format="yaml"), WsConf(addr="h:1"), "/a")


async def test_source_starts_at_once_and_delivers_frames_and_errors() -> None:
    with trio.fail_after(10):
        async with engine_services() as (services, nursery):
            peer = Peer(port=free_port())
            conf = WsConf(addr=f"127.0.0.1:{peer.port}", reconnect_min_delay=0.01, reconnect_max_delay=0.05)
            spec = source_spec(services, "/feed?token=s3cret")
            source = ClientSource(spec, conf, json_decoder())
            assert "s3cret" not in repr(source)
            send, recv = trio.open_memory_channel[Batch](8)
            async with trio.open_nursery() as rule:
                await rule.start(source.run, send)  # started although nothing listens yet
                await wait_status(services, DISCONNECTED)
                assert spec.ctx.connection.status == DISCONNECTED
                assert "Connection refused" in spec.ctx.connection.last_disconnected_message
                await peer.start(nursery)
                await wait_status(services, CONNECTED)
                assert spec.ctx.connection.status == CONNECTED
                await peer.send_all('{"t": 21.5}')
                await peer.send_all("[1]")
                first, second = await recv.receive(), await recv.receive()
                assert isinstance(first[0], Event) and first[0].data == {"t": 21.5}
                assert first[0].meta is not None and first[0].meta["path"] == "/feed"
                assert first[0].meta["connectionId"] == "1"
                assert isinstance(second[0], ErrorItem) and "non-object" in second[0].message
                assert "s3cret" not in second[0].message
                rule.cancel_scope.cancel()
            await peer.wait_for(lambda: peer.connected == 0)  # the rule stopped: connection released
            assert services.ws_clients.client_count == 0
            await peer.stop()


async def test_source_reports_unloadable_tls_files(tmp_path: Any) -> None:
    with trio.fail_after(10):
        async with engine_services() as (services, _):
            missing = str(tmp_path / "ca.pem")
            conf = WsConf(addr="127.0.0.1:1", scheme="wss", root_ca_path=missing)
            source = ClientSource(source_spec(services, "/x"), conf, json_decoder())
            send, _recv = trio.open_memory_channel[Batch](1)
            with pytest.raises(SourceError, match="root CA file"):
                await source.run(send)
            assert services.ws_clients.client_count == 0


async def test_sink_sends_text_frames_and_fails_while_disconnected() -> None:
    with trio.fail_after(10):
        async with engine_services() as (services, nursery):
            peer = Peer()
            await peer.start(nursery)
            conf = WsConf(
                addr=f"127.0.0.1:{peer.port}",
                reconnect_min_delay=0.01,
                reconnect_max_delay=0.05,
                connect_timeout=2,
            )
            spec = sink_spec(services)
            sink = ClientSink(spec, conf, "/out")
            with pytest.raises(SinkError, match="is not open"):
                await sink.write({"a": 1})
            await sink.open()  # does not wait for the connection (a rule starts at once) ...
            await sink.write({"a": 1})  # ... its first message waits for it (up to connectTimeout)
            assert spec.ctx.connection.status == CONNECTED
            await sink.write([{"a": 2}, {"a": 3}])
            await peer.wait_for(lambda: len(peer.received) == 2)
            assert peer.received == ['{"a":1}', '[{"a":2},{"a":3}]']  # text frames

            port = peer.port
            await peer.stop()
            await wait_status(services, DISCONNECTED)
            with pytest.raises(
                SinkUnavailable, match=rf"websocket ws://127\.0\.0\.1:{port}/out is not connected"
            ):
                await sink.write({"a": 4})
            await peer.start(nursery)  # same port: the shared client comes back by itself
            await wait_status(services, CONNECTED)
            await sink.write({"a": 5})
            await peer.wait_for(lambda: len(peer.received) == 3)
            assert peer.received[-1] == '{"a":5}'
            await sink.aclose()
            await sink.aclose()  # idempotent
            await peer.wait_for(lambda: peer.connected == 0)
            await peer.stop()


async def test_delimited_sink_sends_text_frames() -> None:
    with trio.fail_after(10):
        async with engine_services() as (services, nursery):
            peer = Peer()
            await peer.start(nursery)
            sink = ClientSink(
                sink_spec(services, format="delimited", delimiter=";"),
                WsConf(addr=f"127.0.0.1:{peer.port}"),
                "/csv",
            )
            await sink.open()
            await sink.write({"a": 1, "b": "x"})
            await peer.wait_for(lambda: len(peer.received) == 1)
            assert peer.received == ["1;x"]
            await sink.aclose()
            await peer.stop()


async def test_source_and_sink_with_identical_settings_share_one_connection() -> None:
    with trio.fail_after(10):
        async with engine_services() as (services, nursery):
            peer = Peer()
            await peer.start(nursery)
            conf = WsConf(addr=f"127.0.0.1:{peer.port}", open_message="hello")
            source = ClientSource(source_spec(services, "/chat"), conf, json_decoder())
            sink = ClientSink(sink_spec(services), conf, "/chat")
            send, recv = trio.open_memory_channel[Batch](8)
            async with trio.open_nursery() as rule:
                await sink.open()
                await rule.start(source.run, send)
                await sink.write({"q": 1})
                await peer.wait_for(lambda: len(peer.received) == 2)
                assert peer.received == ["hello", '{"q":1}']  # the open message goes first
                await peer.send_all('{"r": 1}')
                batch = await recv.receive()
                assert isinstance(batch[0], Event) and batch[0].data == {"r": 1}
                assert len(peer.handshakes) == 1 and services.ws_clients.client_count == 1
                rule.cancel_scope.cancel()
            assert peer.connected == 1  # the sink still holds the connection
            await sink.aclose()
            await peer.wait_for(lambda: peer.connected == 0)
            await peer.stop()


async def test_query_string_never_reaches_the_logs(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    with trio.fail_after(10):
        async with engine_services() as (services, nursery):
            peer = Peer()
            peer.reject_status = 401
            await peer.start(nursery)
            conf = WsConf(addr=f"127.0.0.1:{peer.port}", reconnect_min_delay=0.01, reconnect_max_delay=0.02)
            spec = source_spec(services, "/feed?token=s3cret")
            send, _recv = trio.open_memory_channel[Batch](8)
            async with trio.open_nursery() as rule:
                await rule.start(ClientSource(spec, conf, json_decoder()).run, send)
                await wait_status(services, DISCONNECTED)
                peer.reject_status = 0
                await wait_status(services, CONNECTED)
                await peer.stop()
                await wait_status(services, DISCONNECTED)
                rule.cancel_scope.cancel()
            assert "s3cret" not in spec.ctx.connection.last_disconnected_message
    messages = [r.getMessage() for r in caplog.records if r.name.startswith("oort")]
    assert any("rejected with HTTP 401" in m for m in messages)
    assert any("disconnected" in m for m in messages)
    assert all("s3cret" not in r.getMessage() for r in caplog.records)
