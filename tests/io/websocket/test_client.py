"""Shared websocket client connections (runtime/io/websocket/client.py) and their TLS contexts (tls.py).

Rules: a real websocket server (``Peer``) in the same trio run on 127.0.0.1, port 0; every test under an absolute
``trio.fail_after``. Reconnect and backoff tests run on ``autojump_clock`` with a small real-time threshold: the
clock only jumps after 20 ms of real idleness, so loopback I/O in flight is never overtaken by virtual time.
"""

from __future__ import annotations

import functools
import logging
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import attrs
import pytest
import trio
import trio.testing

from runtime.clock import Clock
from runtime.errors import SinkUnavailable, SourceError
from runtime.formats.decode import Decoder
from runtime.io.websocket.client import (
    CONNECTED,
    DISCONNECTED,
    WsClient,
)
from runtime.io.websocket.conf import WsConf
from runtime.io.websocket.pool import WsClientPool
from runtime.io.websocket.tls import client_ssl_context, resolve_target
from runtime.metrics import ConnectionMetrics
from runtime.model import Batch, ErrorItem, Event, Row
from tests.conftest import all_task_names
from tests.io.websocket.client_peer import Peer, engine_services, free_port, json_decoder, server_ssl_context
from tests.tls_certs import Certs

JUMP_THRESHOLD = 0.02  # real seconds of idleness before autojump_clock advances virtual time


def conf_for(peer: Peer, **overrides: Any) -> WsConf:
    return WsConf(addr=f"127.0.0.1:{peer.port}", **overrides)


@asynccontextmanager
async def source_sub(
    pool: WsClientPool, conf: WsConf, path: str, *, stream: str = "s", decoder: Decoder | None = None
) -> AsyncIterator[tuple[WsClient, trio.MemoryReceiveChannel[Batch], ConnectionMetrics]]:
    send, recv = trio.open_memory_channel[Batch](16)
    metrics = ConnectionMetrics()
    async with pool.subscribe(
        conf,
        path,
        clock=Clock(),
        metrics=metrics,
        stream=stream,
        decoder=decoder or json_decoder(),
        outbox=send,
    ) as client:
        yield client, recv, metrics


def _received(peer: Peer, count: int) -> bool:
    return len(peer.received) == count


async def rows(recv: trio.MemoryReceiveChannel[Batch]) -> list[Row]:
    batch = await recv.receive()
    assert all(isinstance(item, Event) for item in batch), batch
    return [item.data for item in batch if isinstance(item, Event)]


# -- target and TLS context (no I/O) --------------------------------------------------------------------------


def test_resolve_target_builds_url_from_addr_scheme_and_path() -> None:
    target = resolve_target(WsConf(addr="example.com:8080"), "/api/feed?token=s3cret")
    assert (target.host, target.port, target.resource) == ("example.com", 8080, "/api/feed?token=s3cret")
    assert target.url == "ws://example.com:8080/api/feed?token=s3cret"
    assert target.redacted == "ws://example.com:8080/api/feed"
    assert target.path == "/api/feed"
    assert target.host_header == "example.com:8080"

    full = resolve_target(WsConf(addr="wss://example.com/prefix/"), "/x")
    assert (full.url, full.port, full.resource) == ("wss://example.com/prefix/x", 443, "/prefix/x")
    assert resolve_target(WsConf(addr="h", scheme="wss"), "/").port == 443


@pytest.mark.parametrize(
    ("conf", "path", "message"),
    [
        (WsConf(addr="h:1"), "api?token=s3cret", "must start with '/'"),
        (WsConf(addr="h:1", scheme="http"), "/a", "scheme must be ws or wss"),
        (WsConf(addr="ws://:1"), "/a", "has no host"),
        (WsConf(addr="h:notaport"), "/a", "h:notaport"),
    ],
)
def test_resolve_target_rejects_bad_settings(conf: WsConf, path: str, message: str) -> None:
    with pytest.raises(SourceError, match=message) as caught:
        resolve_target(conf, path)
    assert "s3cret" not in str(caught.value)


def test_targets_differ_by_any_setting_and_match_when_identical() -> None:
    base = WsConf(addr="h:1", request_headers={"a": "1"})
    assert resolve_target(base, "/p") == resolve_target(WsConf(addr="h:1", request_headers={"a": "1"}), "/p")
    others = [
        resolve_target(base, "/p?x=1"),
        resolve_target(attrs.evolve(base, request_headers={"a": "2"}), "/p"),
        resolve_target(attrs.evolve(base, open_message="hi"), "/p"),
        resolve_target(attrs.evolve(base, root_ca_path="ca.pem"), "/p"),
        resolve_target(attrs.evolve(base, addr="h:2"), "/p"),
    ]
    keys = {resolve_target(base, "/p"), *others}
    assert len(keys) == 1 + len(others)


def test_client_ssl_context_variants(certs: Certs) -> None:
    assert client_ssl_context(WsConf(addr="h:1")) is None
    assert client_ssl_context(WsConf(addr="wss://h:1", scheme="ws")) is not None
    assert client_ssl_context(WsConf(addr="ws://h:1", scheme="wss")) is None

    verified = client_ssl_context(WsConf(addr="h:1", scheme="wss", root_ca_path=str(certs.ca)))
    assert verified is not None
    assert verified.check_hostname and verified.verify_mode == ssl.CERT_REQUIRED

    insecure = client_ssl_context(WsConf(addr="h:1", scheme="wss", insecure_skip_verify=True))
    assert insecure is not None
    assert not insecure.check_hostname and insecure.verify_mode == ssl.CERT_NONE


@pytest.mark.parametrize(
    ("field", "message"),
    [
        ("root_ca_path", "cannot load root CA file '{path}'"),
        ("certification_path", "cannot load client certificate/key '{path}'"),
    ],
)
def test_client_ssl_context_names_a_missing_file(field: str, message: str, tmp_path: Any) -> None:
    path = str(tmp_path / "missing.pem")
    with pytest.raises(SourceError, match=message.format(path=path).replace("/", ".")):
        client_ssl_context(WsConf(addr="h:1", scheme="wss", **{field: path}))


def test_client_ssl_context_names_a_file_that_is_not_pem(tmp_path: Any, certs: Certs) -> None:
    junk = tmp_path / "junk.pem"
    junk.write_text("not a certificate")
    with pytest.raises(SourceError, match="junk.pem"):
        client_ssl_context(WsConf(addr="h:1", scheme="wss", root_ca_path=str(junk)))
    with pytest.raises(SourceError, match="junk.pem"):
        client_ssl_context(
            WsConf(addr="h:1", scheme="wss", certification_path=str(junk), private_key_path=str(junk))
        )
    with pytest.raises(SourceError, match="certificationPath is empty"):
        client_ssl_context(WsConf(addr="h:1", scheme="wss", private_key_path=str(certs.client_key)))


# -- data, sharing and release (real clock) -------------------------------------------------------------------


async def test_frames_reach_the_outbox_with_meta_and_status() -> None:
    with trio.fail_after(10):
        async with engine_services() as (services, nursery):
            peer = Peer()
            await peer.start(nursery)
            pool = services.ws_clients
            assert services.ws_clients is pool
            async with source_sub(pool, conf_for(peer), "/feed?token=s3cret") as (client, recv, metrics):
                await client.wait_connected()
                assert metrics.status == CONNECTED and metrics.last_connected_time > 0
                assert metrics.last_try_time > 0
                await peer.send_all('{"a": 1}')
                await peer.send_all('[{"a": 2}, {"a": 3}]')
                await peer.send_all(b'{"a": 4}')  # binary frames are decoded by FORMAT too
                batch = await recv.receive()
                assert isinstance(batch[0], Event)
                assert batch[0].data == {"a": 1}
                assert batch[0].meta == {"path": "/feed", "connectionId": client.connection_id}
                assert await rows(recv) == [{"a": 2}, {"a": 3}]
                assert await rows(recv) == [{"a": 4}]
                assert peer.handshakes[0][0] == "/feed?token=s3cret"  # the query is sent, only never shown
            assert metrics.status == 0  # unsubscribed
            await peer.wait_for(lambda: peer.connected == 0)  # released: the connection is closed
            assert pool.client_count == 0
            assert not [name for name in all_task_names() if "WsClient" in name]  # its task is gone too
            await peer.stop()


async def test_bad_frames_become_error_items_between_good_ones() -> None:
    with trio.fail_after(10):
        async with engine_services() as (services, nursery):
            peer = Peer()
            await peer.start(nursery)
            async with source_sub(services.ws_clients, conf_for(peer), "/f") as (client, recv, _):
                await client.wait_connected()
                for frame in ('{"n": 1}', "{not json", "42", '{"n": 2}', '[{"n": 3}, 7]', '{"n": 4}'):
                    await peer.send_all(frame)
                got: list[Row | str] = []
                for _ in range(6):
                    for item in await recv.receive():
                        got.append(item.message if isinstance(item, ErrorItem) else item.data)
            assert got[0] == {"n": 1} and got[3] == {"n": 2} and got[5] == {"n": 4}
            for error in (got[1], got[2], got[4]):
                assert isinstance(error, str) and error.startswith(
                    f"websocket ws://127.0.0.1:{peer.port}/f: "
                )
            assert "invalid JSON" in str(got[1]) and "a number" in str(got[2]) and "non-object" in str(got[4])
            await peer.stop()


async def test_request_headers_reach_the_server() -> None:
    with trio.fail_after(10):
        async with engine_services() as (services, nursery):
            peer = Peer()
            await peer.start(nursery)
            conf = conf_for(peer, request_headers={"Authorization": "Bearer abc", "X-Feed": "7"})
            async with source_sub(services.ws_clients, conf, "/h") as (client, _, _):
                await client.wait_connected()
            path, headers = peer.handshakes[0]
            assert path == "/h"
            assert headers["authorization"] == "Bearer abc" and headers["x-feed"] == "7"
            await peer.stop()


async def test_identical_settings_share_one_connection_and_decode_once() -> None:
    calls: list[str | bytes] = []
    base = json_decoder()

    def counting(payload: bytes | str) -> list[Row]:
        calls.append(payload)
        return base(payload)

    with trio.fail_after(10):
        async with engine_services() as (services, nursery):
            peer = Peer()
            await peer.start(nursery)
            pool = services.ws_clients
            conf = conf_for(peer)
            async with (
                source_sub(pool, conf, "/p?k=1", decoder=counting) as (c1, r1, m1),
                source_sub(pool, conf_for(peer), "/p?k=1", decoder=counting) as (c2, r2, m2),
            ):
                assert c1 is c2 and pool.client_count == 1
                await c1.wait_connected()
                assert m1.status == m2.status == CONNECTED
                await peer.send_all('{"v": 1}')
                assert await rows(r1) == await rows(r2) == [{"v": 1}]
                assert calls == ['{"v": 1}']  # one decode for both subscribers of stream "s"
                assert len(peer.handshakes) == 1 and peer.connected == 1

                # Another stream on the same connection gets its own decode; a different query its own link.
                async with (
                    source_sub(pool, conf, "/p?k=1", stream="t", decoder=counting) as (c3, r3, _),
                    source_sub(pool, conf, "/p?k=2") as (c4, r4, _),
                ):
                    assert c3 is c1 and c4 is not c1 and pool.client_count == 2
                    await c4.wait_connected()
                    await peer.wait_for(lambda: peer.connected == 2)
                    assert sorted(p for p, _ in peer.handshakes) == ["/p?k=1", "/p?k=2"]
                    calls.clear()
                    await peer.send_all('{"v": 2}')
                    assert await rows(r1) == await rows(r2) == await rows(r3) == await rows(r4)
                    assert len(calls) == 2  # streams s and t on the shared link; k=2 has its own decoder
                await peer.wait_for(lambda: peer.connected == 1)  # k=2 released, k=1 still in use
                assert pool.client_count == 1
            await peer.wait_for(lambda: peer.connected == 0)
            assert pool.client_count == 0
            await peer.stop()


async def test_sink_send_fails_while_disconnected_and_works_once_connected() -> None:
    with trio.fail_after(10):
        async with engine_services() as (services, nursery):
            peer = Peer(port=free_port())
            conf = WsConf(addr=f"127.0.0.1:{peer.port}", reconnect_min_delay=0.01, reconnect_max_delay=0.05)
            metrics = ConnectionMetrics()
            async with services.ws_clients.subscribe(conf, "/out", clock=Clock(), metrics=metrics) as client:
                await client.wait_status(DISCONNECTED)
                with pytest.raises(
                    SinkUnavailable, match=r"websocket ws://127\.0\.0\.1:\d+/out is not connected"
                ):
                    await client.send("lost")
                await peer.start(nursery)
                await client.wait_connected()
                await client.send("hello")
                await client.send(b"\x00\x01")
                await peer.wait_for(lambda: len(peer.received) == 2)
                assert peer.received == ["hello", b"\x00\x01"]
            await peer.stop()


async def test_rejected_handshake_is_reported_and_retried() -> None:
    with trio.fail_after(10):
        async with engine_services() as (services, nursery):
            peer = Peer()
            peer.reject_status = 403
            await peer.start(nursery)
            conf = conf_for(peer, reconnect_min_delay=0.01, reconnect_max_delay=0.02)
            async with source_sub(services.ws_clients, conf, "/r") as (client, recv, metrics):
                await client.wait_status(DISCONNECTED)
                assert metrics.last_disconnected_message == "websocket handshake rejected with HTTP 403"
                peer.reject_status = 0
                await client.wait_connected()
                await peer.send_all('{"ok": true}')
                assert await rows(recv) == [{"ok": True}]
            await peer.stop()


# -- reconnect and backoff (virtual time) ---------------------------------------------------------------------


async def test_reconnects_after_every_server_restart(autojump_clock: trio.testing.MockClock) -> None:
    autojump_clock.autojump_threshold = JUMP_THRESHOLD
    with trio.fail_after(600):
        async with engine_services() as (services, nursery):
            peer = Peer()
            await peer.start(nursery)
            conf = conf_for(peer, open_message='{"subscribe": "all"}')
            async with source_sub(services.ws_clients, conf, "/feed") as (client, recv, metrics):
                seen: list[int] = []
                for cycle in range(6):
                    await client.wait_connected()
                    seen.append(metrics.status)
                    # openMessage is the first thing the server hears on every connection.
                    await peer.wait_for(functools.partial(_received, peer, cycle + 1))
                    assert peer.received == ['{"subscribe": "all"}'] * (cycle + 1)
                    await peer.send_all(f'{{"cycle": {cycle}}}')
                    assert await rows(recv) == [{"cycle": cycle}]
                    if cycle == 5:
                        break
                    connected_at = metrics.last_connected_time
                    await peer.stop()
                    await client.wait_status(DISCONNECTED)
                    seen.append(metrics.status)
                    assert (
                        metrics.last_disconnected_message
                        == "connection closed by peer (code 1001: going away)"
                    )
                    assert metrics.last_disconnected_time >= connected_at
                    await peer.start(nursery)  # same port
                assert seen == [CONNECTED, DISCONNECTED] * 5 + [CONNECTED]
                assert len(peer.handshakes) == 6
            await peer.stop()


async def test_first_dial_to_a_dead_address_retries_until_the_server_appears(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    autojump_clock.autojump_threshold = JUMP_THRESHOLD
    caplog.set_level(logging.DEBUG)
    with trio.fail_after(600):
        async with engine_services() as (services, nursery):
            peer = Peer(port=free_port())
            conf = WsConf(addr=f"127.0.0.1:{peer.port}", reconnect_min_delay=0.1, reconnect_max_delay=2.0)
            async with source_sub(services.ws_clients, conf, "/late?token=s3cret") as (
                client,
                recv,
                metrics,
            ):
                await client.wait_status(DISCONNECTED)
                assert metrics.last_disconnected_message == (
                    f"all attempts to connect to 127.0.0.1:{peer.port} failed: Connection refused"
                )
                first_try = metrics.last_try_time
                started = trio.current_time()
                await trio.sleep(30)  # virtual: lets the loop retry many times against the dead port
                assert metrics.status == DISCONNECTED and metrics.last_try_time > first_try
                # Tries continue until the end of the 30 s: the delay is capped at reconnectMaxDelay (2 s).
                assert (metrics.last_try_time - first_try) / 1000 >= trio.current_time() - started - 2.5
                await peer.start(nursery)
                await client.wait_connected()
                await peer.send_all('{"late": 1}')
                assert await rows(recv) == [{"late": 1}]
            await peer.stop()
    warnings = [r.getMessage() for r in caplog.records if r.name == "oort.websocket.client"]
    assert [m.split(": ")[0] for m in warnings if "cannot connect" in m] == [
        f"websocket client ws://127.0.0.1:{peer.port}/late cannot connect"
    ]  # logged once, not once per retry
    assert any("connected (connection" in m for m in warnings)
    assert all("s3cret" not in r.getMessage() and "s3cret" not in str(r.args) for r in caplog.records)


async def test_backoff_grows_with_jitter_within_the_configured_bounds() -> None:
    conf = WsConf(addr="127.0.0.1:1", reconnect_min_delay=0.1, reconnect_max_delay=2.0)
    client = WsClient(resolve_target(conf, "/"), None, Clock(), iter(range(1, 10)))
    delays = [[client._backoff(n) for _ in range(50)] for n in range(1, 10)]
    assert all(0.1 <= d <= 2.0 for ds in delays for d in ds)
    assert max(delays[0]) <= 0.1 and min(delays[-1]) >= 1.0
    assert len(set(delays[-1])) > 1  # jittered


# -- TLS (real clock: "fails fast" is measured) ---------------------------------------------------------------


async def _tls_roundtrip(certs: Certs, conf: WsConf, *, mtls: bool = False) -> ConnectionMetrics:
    async with engine_services() as (services, nursery):
        peer = Peer(server_ssl_context(certs, require_client_cert=mtls))
        await peer.start(nursery)
        conf = attrs.evolve(conf, addr=f"localhost:{peer.port}", scheme="wss")
        async with source_sub(services.ws_clients, conf, "/secure") as (client, recv, metrics):
            await client.wait_connected()
            await peer.send_all('{"tls": true}')
            assert await rows(recv) == [{"tls": True}]
        await peer.stop()
    return metrics


async def test_wss_with_ca(certs: Certs) -> None:
    with trio.fail_after(10):
        await _tls_roundtrip(certs, WsConf(root_ca_path=str(certs.ca)))


async def test_wss_with_client_certificate(certs: Certs) -> None:
    with trio.fail_after(10):
        conf = WsConf(
            root_ca_path=str(certs.ca),
            certification_path=str(certs.client_cert),
            private_key_path=str(certs.client_key),
        )
        await _tls_roundtrip(certs, conf, mtls=True)


async def test_wss_with_insecure_skip_verify(certs: Certs) -> None:
    with trio.fail_after(10):
        await _tls_roundtrip(certs, WsConf(insecure_skip_verify=True))


async def test_wss_with_a_wrong_ca_fails_fast_with_the_verify_reason(certs: Certs) -> None:
    with trio.fail_after(10):
        async with engine_services() as (services, nursery):
            peer = Peer(server_ssl_context(certs))
            await peer.start(nursery)
            conf = WsConf(
                addr=f"wss://localhost:{peer.port}", root_ca_path=str(certs.other_ca), connect_timeout=5
            )
            started = trio.current_time()
            async with source_sub(services.ws_clients, conf, "/secure") as (client, _, metrics):
                await client.wait_status(DISCONNECTED)
                elapsed = trio.current_time() - started
            assert elapsed < 1.0  # well under connect_timeout: not a silent handshake timeout
            assert "certificate verify failed" in metrics.last_disconnected_message
            assert metrics.last_disconnected_message.startswith("TLS handshake failed: ")
            await peer.stop()


async def test_wss_client_certificate_rejected_by_the_server_fails_fast(certs: Certs) -> None:
    with trio.fail_after(10):
        async with engine_services() as (services, nursery):
            peer = Peer(server_ssl_context(certs, require_client_cert=True))
            await peer.start(nursery)
            conf = WsConf(addr=f"wss://localhost:{peer.port}", root_ca_path=str(certs.ca), connect_timeout=5)
            started = trio.current_time()
            async with source_sub(services.ws_clients, conf, "/secure") as (client, _, metrics):
                await client.wait_status(DISCONNECTED)
                elapsed = trio.current_time() - started
            assert elapsed < 1.0  # not the 5 s handshake timeout
            assert peer.tls_failures >= 1
            assert metrics.last_disconnected_message == (
                "connection closed by the server during the websocket handshake"
                " (TLS: the server may have rejected the client certificate)"
            )
            await peer.stop()


@pytest.mark.parametrize(
    "answer, reason",
    [
        (b"SSH-2.0-OpenSSH_9.6\r\n", "websocket handshake timed out after 0.5s"),  # no HTTP answer ever ends
        (b"SSH-2.0-OpenSSH_9.6\r\n\r\n", "bad websocket handshake answer"),
        (
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Accept: wrong\r\n\r\n",
            "bad websocket handshake answer",
        ),
        (
            b"HTTP/1.1 101 OK\r\nUpgrade: websocket\r\nConnection: \xff\r\n\r\n",
            "bad websocket handshake answer",
        ),
    ],
)
async def test_a_server_answering_nonsense_is_a_retried_failure(answer: bytes, reason: str) -> None:
    """Whatever a remote server answers to the upgrade, the client reports it and retries; the engine's
    supervisor nursery (where the client runs) never sees an exception."""

    dials = 0
    redialled = trio.Event()

    async def nonsense(stream: trio.SocketStream) -> None:
        nonlocal dials
        dials += 1
        if dials >= 2:
            redialled.set()
        await stream.receive_some(65536)
        await stream.send_all(answer)
        await trio.sleep_forever()

    with trio.fail_after(10):
        async with engine_services() as (services, nursery):
            listeners = await nursery.start(functools.partial(trio.serve_tcp, nonsense, 0, host="127.0.0.1"))
            port = listeners[0].socket.getsockname()[1]
            conf = WsConf(
                addr=f"127.0.0.1:{port}",
                connect_timeout=0.5,
                reconnect_min_delay=0.01,
                reconnect_max_delay=0.02,
            )
            async with source_sub(services.ws_clients, conf, "/r") as (client, _, metrics):
                await client.wait_status(DISCONNECTED)
                assert metrics.last_disconnected_message.startswith(reason)
                await redialled.wait()  # and it keeps trying
            nursery.cancel_scope.cancel()


async def test_frames_that_come_with_the_101_are_not_lost() -> None:
    """A server may push its first messages in the same TCP segment as its handshake answer."""
    from wsproto import ConnectionType, WSConnection
    from wsproto.events import AcceptConnection, Request, TextMessage

    async def eager(stream: trio.SocketStream) -> None:
        ws = WSConnection(ConnectionType.SERVER)
        while True:
            ws.receive_data(await stream.receive_some(65536))
            if any(isinstance(event, Request) for event in ws.events()):
                break
        answer = ws.send(AcceptConnection())
        answer += b"".join(ws.send(TextMessage(data=f'{{"n": {i}}}')) for i in range(5))
        await stream.send_all(answer)  # one write: the 101 and five frames
        await trio.sleep_forever()

    with trio.fail_after(10):
        async with engine_services() as (services, nursery):
            listeners = await nursery.start(functools.partial(trio.serve_tcp, eager, 0, host="127.0.0.1"))
            conf = WsConf(addr=f"127.0.0.1:{listeners[0].socket.getsockname()[1]}")
            async with source_sub(services.ws_clients, conf, "/r") as (_, recv, _):
                got: list[Any] = []
                while len(got) < 5:
                    got.extend(await rows(recv))
                assert got == [{"n": i} for i in range(5)]
            nursery.cancel_scope.cancel()
