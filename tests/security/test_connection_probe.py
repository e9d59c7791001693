"""The connection-test endpoint is no port scanner: a closed port, an open port that is no websocket server and
one that answers HTTP get the same answer, after the same connectTimeout."""

from __future__ import annotations

import functools
from pathlib import Path

import pytest
import trio

from tests.daemon_process import free_port, start_daemon, write_etc

pytestmark = pytest.mark.slow


async def _silent(stream: trio.SocketStream) -> None:
    await stream.receive_some(65536)
    await stream.aclose()  # reads the upgrade request, then hangs up


async def _http(stream: trio.SocketStream) -> None:
    await stream.receive_some(65536)
    await stream.send_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nhi")
    await stream.aclose()


async def test_open_and_closed_ports_get_the_same_answer(tmp_path: Path) -> None:
    etc = write_etc(tmp_path / "etc")
    closed = free_port()
    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            ports = {"closed": closed}
            for name, handler in (("silent", _silent), ("http", _http)):
                listeners = await nursery.start(
                    functools.partial(trio.serve_tcp, handler, 0, host="127.0.0.1")
                )
                ports[name] = listeners[0].socket.getsockname()[1]
            daemon = await start_daemon(nursery, etc, tmp_path / "data")
            answers = {}
            async with daemon.client() as http:
                for name, port in ports.items():
                    started = trio.current_time()
                    resp = await http.post(
                        "/metadata/sources/connection/websocket",
                        json={"addr": f"127.0.0.1:{port}", "datasource": "/x", "connectTimeout": 1},
                    )
                    took = trio.current_time() - started
                    assert resp.status_code == 400
                    answers[name] = resp.json()["message"].replace(str(port), "PORT")
                    assert 0.9 < took < 5, (name, took)  # the whole connectTimeout, whatever happened
            assert len(set(answers.values())) == 1, answers
            assert "no websocket connection within 1 s" in answers["closed"]
            await daemon.terminate()
            nursery.cancel_scope.cancel()
