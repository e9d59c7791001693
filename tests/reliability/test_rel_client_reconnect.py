"""Client mode under a server that keeps dying: the daemon dials a websocket server the test runs on 127.0.0.1,
and the test kills and restarts that server 20 times on the same port.

Each time the server is up it pushes numbered messages; every one must reach the rule's file sink, in order,
exactly once, and the rule's status must show every down and up (``connection_status`` -1 / 1 with fresh
``last_disconnected_time`` / ``last_connected_time``). The server dies three ways in turn: a clean close frame,
a dropped connection with no close frame (a killed process: FIN), and a reset (RST).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest
import trio

from tests.daemon_process import running_daemon, wait_for, write_etc
from tests.reliability.rel_support import (
    KillMode,
    WsPeer,
    create,
    files_dir,
    json_lines,
    rule_status,
)

pytestmark = pytest.mark.slow

ROUNDS = 20
PER_ROUND = 30  # messages the server pushes each time it is up
MODES: tuple[KillMode, ...] = ("abort", "close", "reset")
TIMEOUT = 50  # seconds for the whole test (a round takes about 0.2 s)
KEY = "source_feed_0_connection_"


async def test_client_mode_loses_nothing_across_twenty_server_restarts(tmp_path: Path) -> None:
    data = tmp_path / "data"
    out = files_dir(data) / "feed.jsonl"
    peer = WsPeer()
    with trio.fail_after(TIMEOUT):
        async with trio.open_nursery() as nursery:
            await peer.start(nursery)
            etc = write_etc(tmp_path / "etc")
            (etc / "sources" / "websocket.toml").write_text(
                f'[feed]\naddr = "127.0.0.1:{peer.port}"\nreconnectMinDelay = "20ms"\nreconnectMaxDelay = "100ms"\n'
            )
            async with running_daemon(nursery, etc, data) as daemon, daemon.client() as http:
                await create(
                    http,
                    'CREATE STREAM feed () WITH (TYPE="websocket", CONF_KEY="feed", DATASOURCE="/feed")',
                    {
                        "id": "r_feed",
                        "sql": "SELECT * FROM feed",
                        "actions": [{"file": {"path": str(out), "fileType": "lines", "sendSingle": True}}],
                    },
                )
                sent: list[dict[str, int]] = []
                seen: list[tuple[int, int]] = []  # (last_connected_time, last_disconnected_time) per round
                last_down = 0

                async def delivered() -> bool:
                    return len(json_lines(out)) >= len(sent)

                for rnd in range(ROUNDS):
                    if rnd:
                        await peer.start(nursery)  # same port as before
                    await peer.wait_for(lambda: peer.connected == 1)
                    assert peer.accepted == rnd + 1, (
                        "the daemon should hold exactly one connection per target"
                    )

                    async def up(after: int = last_down) -> bool:
                        s = await rule_status(http, "r_feed")
                        return bool(s[KEY + "status"] == 1 and s[KEY + "last_connected_time"] > after)

                    await wait_for(up)
                    connected_at: int = (await rule_status(http, "r_feed"))[KEY + "last_connected_time"]

                    for _ in range(PER_ROUND):
                        message = {"round": rnd, "seq": len(sent)}
                        await peer.send_text(orjson.dumps(message).decode())
                        sent.append(message)
                    mode = MODES[rnd % len(MODES)]
                    if mode == "reset":
                        # A reset may discard what the daemon's kernel has not handed over yet (that is TCP, not
                        # the daemon): reset only once everything sent arrived. The other two kill at once.
                        await wait_for(delivered)
                    await peer.kill(mode)

                    async def down(after: int = connected_at) -> bool:
                        s = await rule_status(http, "r_feed")
                        return bool(
                            s[KEY + "status"] == -1
                            and s[KEY + "last_disconnected_time"] > after
                            # a redial was refused while the server was away: the down time is visible too
                            and "refused" in s[KEY + "last_disconnected_message"]
                        )

                    await wait_for(down)
                    status = await rule_status(http, "r_feed")
                    last_down = status[KEY + "last_disconnected_time"]
                    assert status[KEY + "last_try_time"] >= last_down
                    seen.append((connected_at, last_down))

                await wait_for(delivered)
                got: list[Any] = json_lines(out)
                assert got == sent, "every message pushed while connected must arrive once, in order"
                times = [t for pair in seen for t in pair]
                assert times == sorted(times) and len(set(times)) == len(times), seen
                status = await rule_status(http, "r_feed")
                assert status["status"] == "running"
                assert status["source_feed_0_records_in_total"] == len(sent)
                assert status["source_feed_0_exceptions_total"] == 0
                assert await daemon.terminate() == 0
            nursery.cancel_scope.cancel()
