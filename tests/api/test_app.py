"""The ASGI layer and the server: router matching, the 500 safety net, body limits, lifespan, bind failures."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import trio

from runtime.api.app import HttpError, Request, Response, RestApp, Router, text
from runtime.api.server import serve_api
from runtime.errors import ServerStartError
from tests.api.harness import IO_TIMEOUT, Api


async def _echo(req: Request) -> Response:
    return text(orjson.dumps({"params": dict(req.params), "body": req.body.decode()}).decode())


async def _crash(req: Request) -> Response:
    raise KeyError("boom")


def _router() -> Router:
    router = Router()
    router.add("GET", "/rules/status/all", _echo)
    router.add("GET", "/rules/{id}", _echo)
    router.add("GET", "/rules/{id}/status", _echo)
    router.add("POST", "/memory/{topic...}", _echo)
    router.add("POST", "/crash", _crash)
    return router


def test_router_params_literal_first_and_greedy_tail() -> None:
    router = _router()
    assert router.match("GET", "/rules/status/all")[1] == {}
    assert router.match("GET", "/rules/r-1")[1] == {"id": "r-1"}
    assert router.match("GET", "/rules/r1/status")[1] == {"id": "r1"}
    assert router.match("POST", "/memory/a/b/c")[1] == {"topic": "a/b/c"}
    with pytest.raises(HttpError) as missing:
        router.match("GET", "/rules/r1/nothing")
    assert (missing.value.status, missing.value.code) == (404, 1002)
    with pytest.raises(HttpError) as wrong:
        router.match("DELETE", "/rules/r1")
    assert wrong.value.status == 405
    with pytest.raises(HttpError):
        router.match("POST", "/memory/")  # a topic is required
    with pytest.raises(ValueError, match="literal"):
        router.add("GET", "/{x}", _echo)


async def _call(
    app: RestApp, method: str, path: str, chunks: list[bytes], headers: Any = ()
) -> tuple[int, bytes]:
    """Drive the app through one ASGI http exchange, the way hypercorn does."""
    incoming = [
        {"type": "http.request", "body": chunk, "more_body": i < len(chunks) - 1}
        for i, chunk in enumerate(chunks)
    ]
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return incoming.pop(0) if incoming else {"type": "http.disconnect"}

    async def send(message: Any) -> None:
        sent.append(message)

    headers = [(b"content-type", b"application/json"), *headers]  # as every real client of ours sends
    scope = {"type": "http", "method": method, "path": path, "query_string": b"", "headers": headers}
    await app(scope, receive, send)
    if not sent:
        return 0, b""
    assert sent[0]["type"] == "http.response.start" and sent[1]["type"] == "http.response.body"
    return sent[0]["status"], sent[1]["body"]


async def test_handler_crash_is_a_500_and_the_app_keeps_serving(caplog: pytest.LogCaptureFixture) -> None:
    app = RestApp(_router())
    status, body = await _call(app, "POST", "/crash", [b""])
    assert status == 500
    assert orjson.loads(body) == {"error": 1000, "message": "internal error: KeyError: 'boom'"}
    assert "POST /crash failed" in caplog.text
    status, body = await _call(app, "POST", "/memory/t", [b"ab", b"cd"])
    assert (status, orjson.loads(body)) == (200, {"params": {"topic": "t"}, "body": "abcd"})


async def test_chunked_body_over_the_limit_is_413() -> None:
    app = RestApp(_router(), max_body=5)
    status, body = await _call(app, "POST", "/memory/t", [b"abc", b"def", b"never read"])
    assert status == 413 and orjson.loads(body)["error"] == 1001
    status, _ = await _call(app, "POST", "/memory/t", [b""], headers=[(b"content-length", b"6")])
    assert status == 413


async def test_client_gone_before_body_gets_no_answer() -> None:
    app = RestApp(_router())
    assert await _call(app, "POST", "/memory/t", []) == (0, b"")


async def test_lifespan_startup_and_shutdown_are_acknowledged() -> None:
    app = RestApp(_router())
    incoming = [{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}]
    sent: list[Any] = []

    async def receive() -> dict[str, Any]:
        return incoming.pop(0)

    async def send(message: Any) -> None:
        sent.append(message["type"])

    with trio.fail_after(1):
        await app({"type": "lifespan"}, receive, send)
    assert sent == ["lifespan.startup.complete", "lifespan.shutdown.complete"]


async def test_websocket_on_the_rest_port_is_rejected(api: Api) -> None:
    handshake = (
        b"GET /rules HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    with trio.fail_after(IO_TIMEOUT):
        stream = await trio.open_tcp_stream("127.0.0.1", api.port)
        async with stream:
            await stream.send_all(handshake)
            reply = await stream.receive_some()
        assert reply.startswith(b"HTTP/1.1 403 ")


async def test_port_in_use_is_a_server_start_error_and_cancel_frees_the_port(
    api: Api, tmp_path: Path
) -> None:
    with trio.fail_after(IO_TIMEOUT):
        async with trio.open_nursery() as nursery:
            with pytest.raises(ServerStartError, match=rf"^cannot bind 127\.0\.0\.1:{api.port}: .*in use"):
                await nursery.start(serve_api, api.engine, "127.0.0.1", api.port)
            # The failed start left the caller's nursery (and the first server) alone.
            assert (await api.client.get("/ping")).status_code == 200

            scope = trio.CancelScope()

            async def second(*, task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED) -> None:
                with scope:
                    await serve_api(api.engine, "127.0.0.1", 0, task_status=task_status)

            port = await nursery.start(second)
            async with httpx.AsyncClient(trust_env=False) as client:
                assert (await client.get(f"http://127.0.0.1:{port}/ping")).status_code == 200
            scope.cancel()
        with pytest.raises(OSError):
            await trio.open_tcp_stream("127.0.0.1", port)


async def test_unresolvable_host_is_a_server_start_error(api: Api) -> None:
    with trio.fail_after(IO_TIMEOUT):
        with pytest.raises(ServerStartError, match=r"^cannot bind 256\.0\.0\.1:0: "):
            await serve_api(api.engine, "256.0.0.1", 0)
