"""Runs the real ``oort serve`` as a subprocess on free ports, for end-to-end tests."""

from __future__ import annotations

import os
import re
import signal
import socket
import sys
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, final

import httpx
import trio

LISTENING = re.compile(rb"REST API listening on (http://[\d.]+:\d+)")
POLL_INTERVAL = 0.02  # seconds between looks at another process's output; each wait has a fail_after bound


@final
class Daemon:
    """A running daemon: its process, REST base URL and everything it printed to stderr."""

    def __init__(self, process: trio.Process, url: str, output: bytearray) -> None:
        self.process = process
        self.url = url
        self.output = output

    def client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=self.url, timeout=10)

    async def terminate(self) -> int:
        """SIGTERM, then wait for the exit code."""
        self.process.send_signal(signal.SIGTERM)
        return await self.process.wait()


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now, for a daemon setting that cannot be 0 (the data server's port)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def write_etc(etc: Path, *, extra_toml: str = "") -> Path:
    """An etc/ folder whose REST API binds a free port on 127.0.0.1."""
    (etc / "sources").mkdir(parents=True, exist_ok=True)
    (etc / "oort.toml").write_text(f'[basic]\nrestIp = "127.0.0.1"\nrestPort = 0\n{extra_toml}')
    return etc


async def start_daemon(
    nursery: trio.Nursery,
    etc: Path | None,
    data: Path,
    *,
    args: Sequence[str] = (),
    env: Mapping[str, str] | None = None,
) -> Daemon:
    """Start ``python -m runtime serve`` (``etc`` None: ``--no-etc``; ``args`` more options, ``env`` more
    environment) and return once its REST API answers."""
    output = bytearray()
    found = trio.Event()
    url: list[str] = []
    process = await trio.lowlevel.open_process(
        [
            *(sys.executable, "-m", "runtime", "serve"),
            *(("--etc", str(etc)) if etc is not None else ("--no-etc",)),
            *("--data", str(data), *args),
        ],
        stderr=-1,  # subprocess.PIPE
        env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
    )

    async def pump() -> None:
        assert process.stderr is not None
        try:
            async for chunk in process.stderr:
                output.extend(chunk)
                match = LISTENING.search(output)
                if match and not found.is_set():
                    url.append(match.group(1).decode())
                    found.set()
        finally:
            # Cancelled (the test failed or left its nursery with the daemon up): no daemon outlives the test.
            if process.returncode is None:
                process.kill()
            process.stderr.close()

    nursery.start_soon(pump)
    with trio.fail_after(20):
        await found.wait()
    return Daemon(process, url[0], output)


async def wait_for(predicate: Any) -> None:
    """Poll a condition that lives in another process (a file it writes, a REST answer) until it holds.

    There is no event to wait on across a process boundary, so this is the one place tests poll; callers bound
    it with ``trio.fail_after``.
    """
    while not await predicate():  # noqa: ASYNC110 - the condition is in another process; nothing to wait on
        await trio.sleep(POLL_INTERVAL)


@asynccontextmanager
async def running_daemon(
    nursery: trio.Nursery, etc: Path | None, data: Path, **options: Any
) -> AsyncIterator[Daemon]:
    """``start_daemon``, killed on the way out if the test did not end it (no stray process after a failure)."""
    daemon = await start_daemon(nursery, etc, data, **options)
    try:
        yield daemon
    finally:
        if daemon.process.returncode is None:
            daemon.process.kill()
            with trio.CancelScope(shield=True):
                await daemon.process.wait()
