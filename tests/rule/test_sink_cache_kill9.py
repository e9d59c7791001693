"""The sink cache's disk pages survive ``kill -9`` of the daemon and are resent, in order and once, when the
daemon comes back: the real ``oort serve`` process, a websocket client sink aimed at a peer in this test."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest
import trio

from tests.daemon_process import running_daemon, wait_for, write_etc
from tests.io.websocket.client_peer import Peer, free_port
from tests.rule.sink_support import STREAM, ids, rule

pytestmark = pytest.mark.slow

SMALL = {"enableCache": True, "memoryCacheThreshold": 2, "bufferPageSize": 2, "resendInterval": "10ms"}


async def test_disk_pages_outlive_kill_9_and_are_resent_after_the_restart(tmp_path: Path) -> None:
    etc, data = write_etc(tmp_path / "etc"), tmp_path / "data"
    folder = data / "sinkcache" / "r" / "0"
    port = free_port()  # nothing listens yet: every row is refused and cached

    def pages() -> list[str]:
        return sorted(p.name for p in folder.iterdir()) if folder.exists() else []

    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            async with running_daemon(nursery, etc, data) as daemon, daemon.client() as http:
                assert (await http.post("/streams", json={"sql": STREAM})).status_code == 201
                resp = await http.post("/rules", json=rule("r", port, **SMALL))
                assert resp.status_code == 201, resp.text
                for i in range(1, 11):
                    assert (await http.post("/memory/in", json=[{"id": i}])).status_code == 200

                async def all_cached() -> bool:
                    status = (await http.get("/rules/r/status")).json()
                    return bool(status["sink_websocket_0_0_buffer_length"] == 10)

                await wait_for(all_cached)
                # 1 and 2 are in memory; 3-10 in four pages on disk, each one written whole before it counts.
                assert len(pages()) == 4
                daemon.process.send_signal(signal.SIGKILL)
                assert await daemon.process.wait() == -signal.SIGKILL

            peer = Peer(port=port)
            await peer.start(nursery)
            async with running_daemon(nursery, etc, data) as daemon, daemon.client() as http:
                await peer.wait_for(lambda: len(peer.received) == 8)
                # What was in memory died with the process (as in eKuiper); every disk page came back.
                assert ids(peer.received) == list(range(3, 11))

                async def resent() -> bool:
                    return not pages()

                await wait_for(resent)
                assert (await http.post("/memory/in", json=[{"id": 11}])).status_code == 200
                await peer.wait_for(lambda: len(peer.received) == 9)
                assert ids(peer.received) == list(range(3, 12))  # nothing was sent twice
                status = (await http.get("/rules/r/status")).json()
                assert status["status"] == "running"
                assert status["sink_websocket_0_0_buffer_length"] == 0
                assert await daemon.terminate() == 0
            await peer.stop()
            nursery.cancel_scope.cancel()
