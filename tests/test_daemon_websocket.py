"""End to end through the real daemon subprocess: the seed documents' two websocket scenarios.

(a) Client mode: a conf group with ``addr`` makes the daemon dial a local websocket server on ``/api/data``;
what the server pushes reaches a rule's file sink, and the rule's status follows the server going away and
coming back. (b) Server mode: with an empty ``addr`` the daemon accepts clients on
``ws://127.0.0.1:<httpServerPort>/api/data`` and what they send reaches the sink; a websocket sink echoes it.
"""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import orjson
import pytest
import trio
from trio_websocket import ConnectionClosed

from tests.daemon_process import Daemon, free_port, running_daemon, wait_for, write_etc
from tests.io.websocket.client_peer import Peer
from tests.io.websocket.test_data_server import connect  # closes its socket even when the server closed first

# Slow (a daemon process or generated load): `pytest -m "not slow"` leaves it out of the quick loop.
pytestmark = pytest.mark.slow

REPO_ETC = Path(__file__).resolve().parent.parent / "etc"
TIMEOUT = 30  # seconds, absolute bound of each test (a daemon start alone may take a few seconds)


def _lines(path: Path) -> list[Any]:
    if not path.exists():
        return []
    return [orjson.loads(line) for line in path.read_bytes().splitlines() if line.strip()]


def _file_rule(rule_id: str, stream: str, out: Path, *extra: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": rule_id,
        "sql": f"SELECT * FROM {stream}",
        "actions": [{"file": {"path": str(out), "fileType": "lines", "sendSingle": True}}, *extra],
    }


async def _create(daemon: Daemon, stream_sql: str, rule: dict[str, Any]) -> None:
    async with daemon.client() as http:
        resp = await http.post("/streams", json={"sql": stream_sql})
        assert resp.status_code == 201, resp.text
        resp = await http.post("/rules", json=rule)
        assert resp.status_code == 201, resp.text


async def _status(daemon: Daemon, rule_id: str) -> dict[str, Any]:
    async with daemon.client() as http:
        resp = await http.get(f"/rules/{rule_id}/status")
        assert resp.status_code == 200, resp.text
        status: dict[str, Any] = resp.json()
        return status


async def test_client_mode_dials_out_and_follows_the_server(tmp_path: Path) -> None:
    out = tmp_path / "data" / "files" / "feed.jsonl"  # inside the default file root
    peer = Peer()
    with trio.fail_after(TIMEOUT):
        async with trio.open_nursery() as nursery:
            await peer.start(nursery)
            etc = write_etc(tmp_path / "etc")
            (etc / "sources" / "websocket.toml").write_text(
                f'[default]\n[feed]\naddr = "127.0.0.1:{peer.port}"\n'
                'reconnectMinDelay = "20ms"\nreconnectMaxDelay = "200ms"\n'
            )
            async with running_daemon(nursery, etc, tmp_path / "data") as daemon:
                await _create(
                    daemon,
                    'CREATE STREAM feed () WITH (TYPE="websocket", CONF_KEY="feed", DATASOURCE="/api/data?k=v")',
                    _file_rule("r_feed", "feed", out),
                )
                await peer.wait_for(lambda: peer.connected == 1)
                assert peer.handshakes[0][0] == "/api/data?k=v"

                async def status_is(value: int) -> bool:
                    return bool((await _status(daemon, "r_feed"))["source_feed_0_connection_status"] == value)

                await wait_for(lambda: status_is(1))
                await peer.send_all('{"temperature": 21.5, "id": "a"}')
                await peer.send_all('[{"temperature": 3, "id": "b"}, {"temperature": 4, "id": "c"}]')
                await peer.send_all("not json")  # counted as a source exception; the rule goes on
                await peer.send_all('{"temperature": 5, "id": "d"}')

                async def rows(count: int) -> bool:
                    return len(_lines(out)) >= count

                await wait_for(lambda: rows(4))
                assert [row["id"] for row in _lines(out)] == ["a", "b", "c", "d"]
                status = await _status(daemon, "r_feed")
                assert status["status"] == "running"
                assert status["source_feed_0_exceptions_total"] == 1
                assert "invalid JSON" in status["source_feed_0_last_exception"]

                # The server goes away: the rule keeps running, its source reports the disconnection.
                await peer.stop()
                await wait_for(lambda: status_is(-1))
                status = await _status(daemon, "r_feed")
                assert status["status"] == "running"
                assert status["source_feed_0_connection_last_disconnected_message"]
                assert "k=v" not in orjson.dumps(status).decode()  # the query may carry a token: never shown

                # It comes back on the same port: the daemon reconnects by itself and data flows again.
                await peer.start(nursery)
                await peer.wait_for(lambda: peer.connected == 1)
                await wait_for(lambda: status_is(1))
                await peer.send_all('{"temperature": 6, "id": "e"}')
                await wait_for(lambda: rows(5))
                assert _lines(out)[-1] == {"temperature": 6, "id": "e"}

                assert await daemon.terminate() == 0
                await peer.stop()
                nursery.cancel_scope.cancel()


async def test_server_mode_accepts_clients_and_echoes(tmp_path: Path) -> None:
    out = tmp_path / "data" / "files" / "data.jsonl"  # inside the default file root
    port = free_port()
    etc = write_etc(
        tmp_path / "etc", extra_toml=f'[source]\nhttpServerIp = "127.0.0.1"\nhttpServerPort = {port}\n'
    )
    echo = {"websocket": {"path": "/api/results", "sendSingle": True}}
    with trio.fail_after(TIMEOUT):
        async with trio.open_nursery() as nursery:
            async with running_daemon(nursery, etc, tmp_path / "data") as daemon:
                await _create(
                    daemon,
                    'CREATE STREAM wsdemo () WITH (TYPE="websocket", DATASOURCE="/api/data", FORMAT="json")',
                    _file_rule("r_ws", "wsdemo", out, echo),
                )
                async with connect(port, "/api/results") as results:
                    async with connect(port, "/api/data") as first, connect(port, "/api/data") as second:
                        await first.send_message('{"temperature": 25, "id": "a"}')
                        assert orjson.loads(await results.get_message()) == {"temperature": 25, "id": "a"}
                        await second.send_message(b'[{"temperature": 30, "id": "b"}]')  # binary frames too
                        assert orjson.loads(await results.get_message()) == {"temperature": 30, "id": "b"}

                    async def rows(count: int) -> bool:
                        return len(_lines(out)) >= count

                    await wait_for(lambda: rows(2))
                    assert _lines(out) == [{"temperature": 25, "id": "a"}, {"temperature": 30, "id": "b"}]
                    status = await _status(daemon, "r_ws")
                    assert status["status"] == "running"
                    assert status["source_wsdemo_0_records_in_total"] == 2

                    # Stopping the only rule on the server releases its port (clients get close 1001).
                    async with daemon.client() as http:
                        resp = await http.post("/rules/r_ws/stop")
                        assert resp.status_code == 200, resp.text
                    with pytest.raises(ConnectionClosed) as closed:
                        await results.get_message()
                    assert closed.value.reason is not None and closed.value.reason.code == 1001
                with socket.socket() as probe:
                    # SO_REUSEADDR as servers use it: closed connections in TIME_WAIT are fine, a listener is not.
                    probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                    probe.bind(("127.0.0.1", port))
                    probe.listen()
                assert await daemon.terminate() == 0
                nursery.cancel_scope.cancel()


async def test_demo_rule_fails_clearly_when_the_port_is_busy(tmp_path: Path) -> None:
    # The shipped demo (etc/streams/websocket_demo.sql + etc/rules/websocket_demo.json) on a busy port: the
    # daemon starts anyway and the demo rule reports why it could not.
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        etc = write_etc(
            tmp_path / "etc", extra_toml=f'[source]\nhttpServerIp = "127.0.0.1"\nhttpServerPort = {port}\n'
        )
        for sub, name in (("streams", "websocket_demo.sql"), ("rules", "websocket_demo.json")):
            (etc / sub).mkdir(exist_ok=True)
            (etc / sub / name).write_bytes((REPO_ETC / sub / name).read_bytes())
        (etc / "sources" / "websocket.toml").write_bytes(
            (REPO_ETC / "sources" / "websocket.toml").read_bytes()
        )
        with trio.fail_after(TIMEOUT):
            async with trio.open_nursery() as nursery:
                async with running_daemon(nursery, etc, tmp_path / "data") as daemon:
                    status = await _status(daemon, "websocket_demo")
                    assert status["status"] == "stopped by error"
                    assert f"127.0.0.1:{port}" in status["message"]
                    assert await daemon.terminate() == 0
                    nursery.cancel_scope.cancel()
