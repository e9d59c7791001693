"""100 stop/start cycles of a rule that holds every kind of resource the daemon opens for a rule: a server-mode
websocket source (the data server's listening socket and a client connection on it), a file sink (an open
file) and a client-mode websocket sink (an outgoing connection). Each cycle moves data end to end, and the
daemon's open file descriptors and threads must come back to the same level every time the rule is stopped.

The REST API exposes no task count, so file descriptors and threads (``/proc/<pid>``) are what is compared.
"""

from __future__ import annotations

import functools
from pathlib import Path

import orjson
import pytest
import trio

from tests.daemon_process import free_port, running_daemon, wait_for, write_etc
from tests.io.websocket.test_data_server import connect
from tests.reliability.rel_support import (
    WsPeer,
    create,
    fd_count,
    files_dir,
    json_lines,
    post_ok,
    rule_status,
    thread_count,
)

pytestmark = pytest.mark.slow

CYCLES = 100
WARM_UP = 10  # cycles before the baseline is taken (lazy imports, caches and trio's thread cache settle)
FD_SLACK = 2  # a REST keep-alive connection may be replaced meanwhile; a leak of one fd per cycle is 90
THREAD_SLACK = 1  # trio's idle worker threads come and go; a leak of one per cycle is 90
TIMEOUT = 55  # seconds for the whole test


def _has(items: list[str | bytes], count: int) -> bool:
    return len(items) == count


async def test_hundred_stop_start_cycles_leak_no_fds_or_threads(tmp_path: Path) -> None:
    port = free_port()
    data = tmp_path / "data"
    out = files_dir(data) / "cycles.jsonl"
    etc = write_etc(
        tmp_path / "etc", extra_toml=f'[source]\nhttpServerIp = "127.0.0.1"\nhttpServerPort = {port}\n'
    )
    peer = WsPeer()
    with trio.fail_after(TIMEOUT):
        async with trio.open_nursery() as nursery:
            await peer.start(nursery)
            async with running_daemon(nursery, etc, data) as daemon, daemon.client() as http:
                pid = daemon.process.pid
                sink = {"addr": f"127.0.0.1:{peer.port}", "path": "/out", "sendSingle": True}
                await create(
                    http,
                    'CREATE STREAM cyc () WITH (TYPE="websocket", DATASOURCE="/cyc", FORMAT="json")',
                    {
                        "id": "r_cyc",
                        "sql": "SELECT * FROM cyc",
                        "actions": [
                            {"file": {"path": str(out), "fileType": "lines", "sendSingle": True}},
                            {"websocket": sink},
                        ],
                    },
                )
                fds: list[int] = []
                running_fds: list[int] = []  # while the rule runs with a client connected
                threads: list[int] = []
                for cycle in range(CYCLES):
                    if cycle:
                        await post_ok(http, "/rules/r_cyc/start")
                    assert (await rule_status(http, "r_cyc"))["status"] == "running"
                    await peer.wait_for(lambda: peer.connected == 1)  # the sink dialled out
                    async with connect(port, "/cyc") as ws:
                        await ws.send_message(orjson.dumps({"cycle": cycle}).decode())

                        async def arrived(count: int = cycle + 1) -> bool:
                            return len(json_lines(out)) == count

                        await wait_for(arrived)
                        await peer.wait_for(functools.partial(_has, peer.received, cycle + 1))
                        running_fds.append(fd_count(pid))
                    await post_ok(http, "/rules/r_cyc/stop")
                    assert (await rule_status(http, "r_cyc"))["status"] == "stopped"
                    await peer.wait_for(lambda: peer.connected == 0)  # the sink's connection was closed
                    fds.append(fd_count(pid))
                    threads.append(thread_count(pid))

                print(
                    f"\nfds while running: {sorted(set(running_fds))}, after each stop: {sorted(set(fds))};"
                    f" threads after each stop: {sorted(set(threads))}"
                )
                assert json_lines(out) == [{"cycle": c} for c in range(CYCLES)]
                assert [orjson.loads(m) for m in peer.received] == [{"cycle": c} for c in range(CYCLES)]
                assert peer.accepted == CYCLES  # one sink connection per run, each closed at stop
                base_fds, base_threads = max(fds[WARM_UP - 3 : WARM_UP]), max(threads[WARM_UP - 3 : WARM_UP])
                assert max(fds[WARM_UP:]) <= base_fds + FD_SLACK, fds
                assert max(threads[WARM_UP:]) <= base_threads + THREAD_SLACK, threads
                # The count does see the rule's resources: the data server's listener, its client's
                # connection, the output file and the sink's connection are all open while it runs.
                assert min(running_fds) >= max(fds) + 4, (running_fds, fds)
                assert await daemon.terminate() == 0
            nursery.cancel_scope.cancel()
