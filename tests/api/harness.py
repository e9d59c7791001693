"""A real engine plus the real REST server on 127.0.0.1 (port 0), with an httpx client, for API and CLI tests."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import final

import httpx
import trio

from runtime.api.server import serve_api
from runtime.config import load_config
from runtime.engine import Engine

IO_TIMEOUT = 20  # absolute bound on every test that talks over a socket
JSON_TYPE = {"content-type": "application/json"}  # for raw bodies: the API takes JSON bodies only


@final
class Api:
    """The running engine, the port its REST API listens on and a client bound to it."""

    def __init__(self, engine: Engine, port: int, client: httpx.AsyncClient) -> None:
        self.engine = engine
        self.port = port
        self.client = client

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@asynccontextmanager
async def running_api(tmp_path: Path) -> AsyncIterator[Api]:
    etc = tmp_path / "etc"
    etc.mkdir(parents=True)
    engine = Engine(load_config(etc), etc_dir=etc, data_dir=tmp_path / "data")
    async with trio.open_nursery() as nursery:
        await nursery.start(engine.run)
        port = await nursery.start(serve_api, engine, "127.0.0.1", 0)
        # trust_env=False: an http_proxy in the environment must not capture loopback calls.
        async with httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{port}", trust_env=False, timeout=10
        ) as client:
            yield Api(engine, port, client)
        nursery.cancel_scope.cancel()
