"""DataServer and Endpoint: the global data server's lifetime, routing, limits, decoding and flow control, over real sockets."""

from __future__ import annotations

import logging
import socket
import ssl
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

import pytest
import trio
import trio.testing
from trio_websocket import ConnectionClosed, WebSocketConnection, open_websocket

from runtime.clock import Clock
from runtime.config import SourceConf, TlsConf
from runtime.errors import ServerStartError
from runtime.formats.decode import Decoder, json_rows
from runtime.io.contract import IoContext
from runtime.io.services import Services
from runtime.io.websocket.conf import WsConf
from runtime.io.websocket.endpoint import READ_BATCH
from runtime.io.websocket.server import DataServer
from runtime.model import Batch, ErrorItem, Event, Row
from tests.tls_certs import Certs

LOCAL = SourceConf(http_server_ip="127.0.0.1", http_server_port=0)
CONF = WsConf()


def json_decoder(calls: list[int] | None = None) -> Decoder:
    """The format's JSON decoder, counting its calls in ``calls`` (to prove one decode per stream)."""

    def decode(payload: bytes | str) -> list[Row]:
        if calls is not None:
            calls.append(1)
        return json_rows(payload)

    return decode


def make_ctx(services: Services | None, rule: str = "r") -> IoContext:
    return IoContext(rule_id=rule, clock=Clock(), services=services, logger=logging.getLogger(rule))


def registrant(ctx: IoContext) -> dict[str, Any]:
    """The ``clock``/``metrics`` keywords of ``subscribe``/``publisher`` for a rule's context."""
    return {"clock": ctx.clock, "metrics": ctx.connection}


@pytest.fixture
def services(nursery: trio.Nursery) -> Services:
    s = Services(source_conf=LOCAL)
    s.attach(nursery)
    return s


@asynccontextmanager
async def rule_on(
    hub: DataServer,
    path: str,
    stream: str = "s",
    *,
    buffer: int = 100,
    conf: WsConf = CONF,
    decoder: Decoder | None = None,
) -> AsyncIterator[tuple[trio.MemoryReceiveChannel[Batch], IoContext]]:
    send, recv = trio.open_memory_channel[Batch](buffer)
    ctx = make_ctx(None)  # the hub itself never reads ctx.services
    async with (
        send,
        recv,
        hub.subscribe(path, stream, decoder or json_decoder(), send, conf, **registrant(ctx)),
    ):
        yield recv, ctx


def rows(batch: Batch) -> list[Any]:
    return [item.data if isinstance(item, Event) else item for item in batch]


@asynccontextmanager
async def connect(
    port: int,
    path: str,
    *,
    tls: ssl.SSLContext | None = None,
    headers: list[tuple[bytes, bytes]] | None = None,
) -> AsyncIterator[WebSocketConnection]:
    """A trio-websocket client; its TCP stream is closed on exit even when the server closed first.

    trio-websocket 0.12 never closes its stream when the peer initiated the close (``_aclose`` returns early).
    """
    found: WebSocketConnection | None = None
    try:
        async with open_websocket(
            "127.0.0.1", port, path, use_ssl=tls or False, extra_headers=headers, connect_timeout=5
        ) as ws:
            found = ws
            yield ws
    finally:
        if found is not None:
            with trio.CancelScope(shield=True):
                await found._stream.aclose()


async def handshake_status(
    port: int, path: str, headers: tuple[tuple[bytes, bytes], ...] = (), tls: ssl.SSLContext | None = None
) -> int:
    """The HTTP status a websocket handshake gets (101 accepted, 403 refused), over a raw socket.

    Used for refusals because trio-websocket leaks the TCP stream of a rejected handshake.
    """
    stream: trio.abc.Stream = await trio.open_tcp_stream("127.0.0.1", port)
    if tls is not None:
        stream = trio.SSLStream(stream, tls, server_hostname="127.0.0.1")
    async with stream:
        extra = "".join(f"{k.decode()}: {v.decode()}\r\n" for k, v in headers)
        request = (
            f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n{extra}\r\n"
        )
        await stream.send_all(request.encode())
        data = b""
        while b"\r\n" not in data:
            chunk = await stream.receive_some()
            if not chunk:
                return 0  # closed without an answer
            data += chunk
        return int(data.split()[1])


async def refused(port: int) -> bool:
    try:
        stream = await trio.open_tcp_stream("127.0.0.1", port)
    except OSError:
        return True
    await stream.aclose()
    return False


async def test_server_lives_from_first_acquire_to_last_release(services: Services) -> None:
    with trio.fail_after(10):
        hub = services.data_server
        assert not hub.running
        async with rule_on(hub, "/a"):
            port = hub.port
            assert port and not await refused(port)
            async with rule_on(hub, "/b"):
                assert hub.port == port and hub.generation == 1
            assert hub.running  # /a still holds it
            async with connect(port, "/a") as ws:
                await ws.send_message('{"x": 1}')
        assert not hub.running and await refused(port)
        async with rule_on(hub, "/a") as (recv, _):
            assert hub.generation == 2
            async with connect(hub.port, "/a") as ws:
                await ws.send_message('{"x": 2}')
                assert rows(await recv.receive()) == [{"x": 2}]
        assert hub.counts() == dict.fromkeys(hub.counts(), 0)


async def test_a_thousand_cycles_leak_nothing(services: Services) -> None:
    with trio.fail_after(60):
        hub = services.data_server
        for _ in range(1000):
            async with rule_on(hub, "/p", "s1"), rule_on(hub, "/p", "s2"):
                pass
        assert hub.generation == 1000 and not hub.running
        assert hub.counts() == {"refs": 0, "endpoints": 0, "streams": 0, "subscribers": 0, "connections": 0}


async def test_unknown_path_is_refused_with_403(services: Services) -> None:
    with trio.fail_after(10):
        hub = services.data_server
        async with rule_on(hub, "/known"):
            assert await handshake_status(hub.port, "/known") == 101
            assert await handshake_status(hub.port, "/other") == 403


async def test_clients_get_1001_when_the_last_rule_stops(services: Services) -> None:
    with trio.fail_after(10):
        hub = services.data_server
        async with open_ws_after(hub, "/a") as (ws, release):
            await release()
            with pytest.raises(ConnectionClosed) as info:
                await ws.get_message()
            assert info.value.reason is not None and info.value.reason.code == 1001
        assert not hub.running


@asynccontextmanager
async def open_ws_after(hub: DataServer, path: str) -> AsyncIterator[tuple[Any, Any]]:
    """A client connected to ``path`` plus a coroutine that releases the only rule on it."""
    done = trio.Event()
    released = trio.Event()
    ready = trio.Event()

    async def hold() -> None:
        async with rule_on(hub, path):
            ready.set()
            await done.wait()
        released.set()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(hold)
        await ready.wait()

        async def release() -> None:
            done.set()
            await released.wait()

        async with connect(hub.port, path) as ws:
            yield ws, release


async def test_oversized_frame_closes_1009(services: Services) -> None:
    with trio.fail_after(10):
        hub = services.data_server
        async with rule_on(hub, "/a", conf=WsConf(max_message_size=100)) as (recv, _):
            async with connect(hub.port, "/a") as ws:
                await ws.send_message('{"ok": 1}')
                await ws.send_message('{"big": "' + "x" * 200 + '"}')
                with pytest.raises(ConnectionClosed) as info:
                    await ws.get_message()
                assert info.value.reason is not None and info.value.reason.code == 1009
            assert rows(await recv.receive()) == [{"ok": 1}]


async def test_bad_frames_become_error_items_and_the_connection_stays(services: Services) -> None:
    bad: list[str | bytes] = ["{nope", "42", '[{"a": 1}, 2]', b"\x00\x01garbage", b'\xff\xfe{"a": 1}']
    with trio.fail_after(10):
        hub = services.data_server
        async with rule_on(hub, "/a") as (recv, _):
            async with connect(hub.port, "/a") as ws:
                await ws.send_message('{"n": 0}')
                for frame in bad:
                    await ws.send_message(frame)
                await ws.send_message(b'[{"n": 1}, {"n": 2}]')
                assert rows(await recv.receive()) == [{"n": 0}]
                for _ in bad:
                    (item,) = await recv.receive()
                    assert isinstance(item, ErrorItem) and item.message.startswith("websocket /a: ")
                assert rows(await recv.receive()) == [{"n": 1}, {"n": 2}]


async def test_meta_names_the_connection(services: Services) -> None:
    with trio.fail_after(10):
        hub = services.data_server
        async with rule_on(hub, "/a") as (recv, ctx):
            assert ctx.connection.status == 0
            async with connect(hub.port, "/a?site=7") as ws:
                await ws.send_message('{"v": 1}')
                (event,) = await recv.receive()
                assert ctx.connection.status == 1
            assert isinstance(event, Event) and event.meta is not None
            assert event.meta["path"] == "/a" and event.meta["query"] == "site=7"
            assert event.meta["remoteAddr"].startswith("127.0.0.1:")
            assert event.meta["connectionId"] == "1-1"
            # A client leaving is counted, not an error.
            with trio.fail_after(5):
                while hub.counts()["connections"]:
                    await trio.testing.wait_all_tasks_blocked()
            assert ctx.connection.status == 0
            assert ctx.connection.last_disconnected_message.startswith("client disconnected")


async def test_fan_out_decodes_once_per_stream_and_fan_in_merges_clients(services: Services) -> None:
    calls_s: list[int] = []
    calls_t: list[int] = []
    with trio.fail_after(10):
        hub = services.data_server
        dec_s = json_decoder(calls_s)
        async with (
            rule_on(hub, "/a", "s", decoder=dec_s) as (r1, _),
            rule_on(hub, "/a", "s", decoder=dec_s) as (r2, _),
            rule_on(hub, "/a", "t", decoder=json_decoder(calls_t)) as (r3, _),
        ):
            async with (
                connect(hub.port, "/a") as c1,
                connect(hub.port, "/a") as c2,
            ):
                await c1.send_message('{"from": 1}')
                for recv in (r1, r2, r3):
                    assert rows(await recv.receive()) == [{"from": 1}]
                await c2.send_message('{"from": 2}')
                for recv in (r1, r2, r3):
                    assert rows(await recv.receive()) == [{"from": 2}]
        assert len(calls_s) == 2 and len(calls_t) == 2


async def test_stopping_one_rule_keeps_the_clients_of_another(services: Services) -> None:
    with trio.fail_after(10):
        hub = services.data_server
        async with rule_on(hub, "/a", "s") as (keep, _):
            async with open_ws_after(hub, "/a") as (ws, release):
                await release()  # the other rule on /a
                await ws.send_message('{"still": true}')
                assert rows(await keep.receive()) == [{"still": True}]


async def test_a_full_outbox_stops_reading_and_loses_nothing(services: Services) -> None:
    with trio.fail_after(10):
        hub = services.data_server
        send, recv = trio.open_memory_channel[Batch](1)
        ctx = make_ctx(services)
        async with send, recv, hub.subscribe("/a", "s", json_decoder(), send, CONF, **registrant(ctx)):
            async with connect(hub.port, "/a") as ws:
                for i in range(50):
                    await ws.send_message(f'{{"i": {i}}}')
                while send.statistics().tasks_waiting_send == 0:
                    await trio.testing.wait_all_tasks_blocked()
                assert send.statistics().current_buffer_used == 1  # the reader waits: the socket is not read
                got: list[int] = []
                while len(got) < 50:  # frames already queued arrive together, as one batch
                    got.extend(row["i"] for row in rows(await recv.receive()))
                assert got == list(range(50))


async def test_a_path_with_many_rules_delivers_every_frame_to_each_in_order(services: Services) -> None:
    # Batches may hold several frames (those completed by one socket read), but every rule still gets every
    # frame once, in order.
    with trio.fail_after(10):
        hub = services.data_server
        async with AsyncExitStack() as stack:
            recvs = []
            for index in range(16):
                send, recv = trio.open_memory_channel[Batch](1000)
                await stack.enter_async_context(send)
                await stack.enter_async_context(recv)
                ctx = make_ctx(services, f"r{index}")
                await stack.enter_async_context(
                    hub.subscribe("/a", "s", json_decoder(), send, CONF, **registrant(ctx))
                )
                recvs.append(recv)
            async with connect(hub.port, "/a") as ws:
                for i in range(200):
                    await ws.send_message(f'{{"i": {i}}}')
                for recv in recvs:
                    got: list[int] = []
                    while len(got) < 200:
                        got.extend(row["i"] for row in rows(await recv.receive()))
                    assert got == list(range(200))


@pytest.mark.parametrize(
    "conf, path, headers, ok",
    [
        (WsConf(token="s3cret"), "/a", [(b"authorization", b"Bearer s3cret")], True),
        (WsConf(token="s3cret"), "/a?token=s3cret", [], True),
        (WsConf(token="s3cret"), "/a", [(b"authorization", b"Bearer wrong")], False),
        (WsConf(token="s3cret"), "/a", [], False),
        (WsConf(allowed_origins=("http://ok",)), "/a", [(b"origin", b"http://ok")], True),
        (WsConf(allowed_origins=("http://ok",)), "/a", [(b"origin", b"http://evil")], False),
    ],
)
async def test_token_and_origin_admission(
    services: Services, conf: WsConf, path: str, headers: list[tuple[bytes, bytes]], ok: bool
) -> None:
    with trio.fail_after(10):
        hub = services.data_server
        async with rule_on(hub, "/a", conf=conf) as (recv, _):
            if ok:
                async with connect(hub.port, path, headers=headers) as ws:
                    await ws.send_message('{"in": 1}')
                    assert rows(await recv.receive()) == [{"in": 1}]
            else:
                assert await handshake_status(hub.port, path, tuple(headers)) == 403


async def test_connection_cap_per_path(services: Services) -> None:
    with trio.fail_after(10):
        hub = services.data_server
        async with rule_on(hub, "/a", conf=WsConf(max_connections=1)):
            async with connect(hub.port, "/a"):
                assert await handshake_status(hub.port, "/a") == 403
            assert await handshake_status(hub.port, "/a") == 101


async def test_port_in_use_is_a_server_start_error(nursery: trio.Nursery) -> None:
    with trio.fail_after(10), socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        services = Services(source_conf=SourceConf(http_server_ip="127.0.0.1", http_server_port=port))
        services.attach(nursery)
        hub = services.data_server
        with pytest.raises(
            ServerStartError, match=f"cannot start the websocket data server on 127.0.0.1:{port}: "
        ):
            async with rule_on(hub, "/a"):
                pass
        assert hub.counts()["refs"] == 0 and not hub.running


async def test_bad_tls_files_are_a_server_start_error(nursery: trio.Nursery, tmp_path: Any) -> None:
    with trio.fail_after(10):
        tls = TlsConf(certfile=str(tmp_path / "missing.crt"), keyfile=str(tmp_path / "missing.key"))
        services = Services(
            source_conf=SourceConf(http_server_ip="127.0.0.1", http_server_port=0, http_server_tls=tls)
        )
        services.attach(nursery)
        with pytest.raises(ServerStartError, match="No such file"):
            async with rule_on(services.data_server, "/a"):
                pass


async def test_wss_and_mutual_tls(nursery: trio.Nursery, certs: Certs) -> None:
    with trio.fail_after(20):
        for ca_file in ("", str(certs.ca)):
            tls = TlsConf(certfile=str(certs.server_cert), keyfile=str(certs.server_key), ca_file=ca_file)
            services = Services(
                source_conf=SourceConf(http_server_ip="127.0.0.1", http_server_port=0, http_server_tls=tls)
            )
            services.attach(nursery)
            hub = services.data_server
            async with rule_on(hub, "/a") as (recv, _):
                client = ssl.create_default_context(cafile=str(certs.ca))
                client.load_cert_chain(str(certs.client_cert), str(certs.client_key))
                async with connect(hub.port, "/a", tls=client) as ws:
                    await ws.send_message('{"secure": 1}')
                    assert rows(await recv.receive()) == [{"secure": 1}]
                if ca_file:
                    anonymous = ssl.create_default_context(cafile=str(certs.ca))
                    # TLS 1.3: the client's handshake completes, the server's alert arrives on the first read.
                    with pytest.raises(trio.BrokenResourceError):
                        await handshake_status(hub.port, "/a", tls=anonymous)
            services.attach(None)


async def test_stopping_a_stuck_rule_frees_the_reader_for_the_others(services: Services) -> None:
    with trio.fail_after(10):
        hub = services.data_server
        async with rule_on(hub, "/a", "s", buffer=1) as (live, _):
            stuck_send, stuck_recv = trio.open_memory_channel[Batch](0)  # nobody ever reads it
            stop = trio.Event()

            async def stuck_rule(task_status: trio.TaskStatus[None]) -> None:
                async with hub.subscribe(
                    "/a", "s", json_decoder(), stuck_send, CONF, **registrant(make_ctx(None))
                ):
                    task_status.started()
                    await stop.wait()

            async with trio.open_nursery() as nursery, connect(hub.port, "/a") as ws:
                await nursery.start(stuck_rule)
                await ws.send_message('{"n": 1}')
                assert rows(await live.receive()) == [{"n": 1}]
                while stuck_send.statistics().tasks_waiting_send == 0:
                    await trio.testing.wait_all_tasks_blocked()
                await ws.send_message('{"n": 2}')  # not read yet: the reader waits on the stuck rule
                stop.set()
                assert rows(await live.receive()) == [{"n": 2}]
            stuck_recv.close()


@asynccontextmanager
async def raw_ws(port: int, path: str) -> AsyncIterator[tuple[trio.SocketStream, Any]]:
    """A websocket client on a raw socket and wsproto, to control exactly what goes into each TCP write."""
    from wsproto import ConnectionType, WSConnection
    from wsproto.events import AcceptConnection, Request

    stream = await trio.open_tcp_stream("127.0.0.1", port)
    async with stream:
        ws = WSConnection(ConnectionType.CLIENT)
        await stream.send_all(ws.send(Request(host="127.0.0.1", target=path)))
        accepted = False
        while not accepted:
            ws.receive_data(await stream.receive_some(65536))
            accepted = any(isinstance(event, AcceptConnection) for event in ws.events())
        yield stream, ws


async def test_frames_of_one_socket_read_reach_the_rule_as_one_batch(services: Services) -> None:
    from wsproto.events import TextMessage

    hub = services.data_server
    with trio.fail_after(10):
        async with rule_on(hub, "/a") as (recv, _), raw_ws(hub.port, "/a") as (stream, ws):
            frames = b"".join(ws.send(TextMessage(data=f'{{"i": {i}}}')) for i in range(READ_BATCH + 6))
            await stream.send_all(frames)  # one write: the server reads them in one go (loopback)
            first = rows(await recv.receive())
            second = rows(await recv.receive())
    assert first == [{"i": i} for i in range(READ_BATCH)]  # one delivery per read, READ_BATCH at most
    assert second == [{"i": i} for i in range(READ_BATCH, READ_BATCH + 6)]


async def test_fragments_pings_and_a_client_close(services: Services) -> None:
    from wsproto.events import CloseConnection, Ping, Pong, TextMessage

    hub = services.data_server
    with trio.fail_after(10):
        async with rule_on(hub, "/a") as (recv, ctx), raw_ws(hub.port, "/a") as (stream, ws):
            data = ws.send(TextMessage(data='{"par', message_finished=False))
            data += ws.send(Ping(payload=b"p1"))  # control frames may come between a message's fragments
            data += ws.send(TextMessage(data='t": 1}', message_finished=True))
            await stream.send_all(data)
            assert rows(await recv.receive()) == [{"part": 1}]
            pongs: list[bytes] = []
            while not pongs:
                ws.receive_data(await stream.receive_some(65536))
                pongs = [bytes(e.payload) for e in ws.events() if isinstance(e, Pong)]
            assert pongs == [b"p1"]
            await stream.send_all(ws.send(CloseConnection(code=1000)))
            closed: list[int] = []
            while not closed:
                ws.receive_data(await stream.receive_some(65536))
                closed = [e.code for e in ws.events() if isinstance(e, CloseConnection)]
            assert closed == [1000]  # the server answered the close handshake
            while hub.counts()["connections"]:
                await trio.testing.wait_all_tasks_blocked()
            assert ctx.connection.last_disconnected_message == "client disconnected (1000)"


async def test_plain_http_gets_404_and_a_stalled_handshake_is_dropped(
    services: Services, autojump_clock: trio.testing.MockClock
) -> None:
    hub = services.data_server
    with trio.fail_after(60):
        async with rule_on(hub, "/a"):
            async with await trio.open_tcp_stream("127.0.0.1", hub.port) as stream:
                await stream.send_all(b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n")
                reply = b""
                while chunk := await stream.receive_some(65536):
                    reply += chunk
            assert reply.startswith(b"HTTP/1.1 404 ")
            async with await trio.open_tcp_stream("127.0.0.1", hub.port) as stalled:
                await stalled.send_all(b"GET /a HTTP/1.1\r\n")  # and nothing more
                assert await stalled.receive_some(65536) == b""  # closed after the handshake timeout


async def test_sink_frames_of_every_length_class_arrive_whole(services: Services) -> None:
    """Sink frames are framed by hand (7-bit, 16-bit and 64-bit lengths); text frames go out as UTF-8 bytes."""
    hub = services.data_server
    texts = ["é" * 3, "x" * 125, "y" * 126, "ü" * 40_000, "z" * 70_000]
    with trio.fail_after(10):
        async with hub.publisher("/out", CONF, **registrant(make_ctx(None))) as out_ep:
            async with connect(hub.port, "/out") as ws:
                while hub.counts()["connections"] < 1:
                    await trio.testing.wait_all_tasks_blocked()
                for text in texts:
                    out_ep.broadcast(True, text.encode())
                out_ep.broadcast(False, bytes(range(256)) * 300)
                assert [await ws.get_message() for _ in texts] == texts
                assert await ws.get_message() == bytes(range(256)) * 300


@pytest.mark.parametrize(
    ("garbage", "violation"),
    [
        (b"\x81\x05hello", True),  # an unmasked client frame
        (b"\xff\xff\xff\xff", True),  # reserved bits and opcode
        (b"\x81\xfe\x00\x05abcd", True),  # a length that does not match
        (b"\x01\x81abcdx", False),  # a fragment that never finishes
        (b"\x89\x80abcd" * 50, False),  # a ping flood
    ],
)
async def test_hostile_frames_cost_their_connection_only(
    services: Services, garbage: bytes, violation: bool
) -> None:
    from wsproto.events import TextMessage

    hub = services.data_server
    with trio.fail_after(10):
        async with rule_on(hub, "/a") as (recv, _), raw_ws(hub.port, "/a") as (bad, _ws):
            await bad.send_all(garbage)
            if violation:  # the connection is closed (1002) and the rule counts it as an error
                [error] = await recv.receive()
                assert isinstance(error, ErrorItem) and "(1002): connection closed" in error.message
            async with raw_ws(hub.port, "/a") as (stream, ws):
                await stream.send_all(ws.send(TextMessage(data='{"ok": 1}')))
                assert rows(await recv.receive()) == [{"ok": 1}]
            assert hub.running


async def test_upgrades_with_bad_headers_get_400_and_encoded_paths_are_decoded(services: Services) -> None:
    hub = services.data_server
    with trio.fail_after(10):
        async with rule_on(hub, "/a b"):
            assert await handshake_status(hub.port, "/a%20b") == 101  # DATASOURCE "/a b", percent-encoded
            bad_version = ((b"sec-websocket-version", b"8"),)
            assert await handshake_status(hub.port, "/a%20b", bad_version) in (400, 426)
            async with await trio.open_tcp_stream("127.0.0.1", hub.port) as stream:
                await stream.send_all(
                    b"GET /a%20b HTTP/1.1\r\nHost: \xff\r\nUpgrade: websocket\r\nConnection: \xff\r\n"
                    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
                )
                reply = await stream.receive_some(65536)
            assert reply.startswith(b"HTTP/1.1 400 ")
            assert hub.running
