"""kill -9 at random moments while REST writes are in flight never leaves a catalog the daemon cannot load."""

from __future__ import annotations

import random
import signal
import tomllib
from pathlib import Path

import httpx
import pytest
import trio

from tests.daemon_process import start_daemon, write_etc

# Slow (a daemon process or generated load): `pytest -m "not slow"` leaves it out of the quick loop.
pytestmark = pytest.mark.slow

ROUNDS = 6


async def _hammer(http: httpx.AsyncClient, rng: random.Random) -> None:
    """Creates, replaces and drops streams, rules and conf groups until the daemon dies under it."""
    n = 0
    try:
        while True:
            n += 1
            name = f"s{rng.randrange(8)}"
            sql = f'CREATE STREAM {name} (a BIGINT) WITH (TYPE="memory", DATASOURCE="t/{name}", VERSION="{n:08d}")'
            await http.post("/streams", json={"sql": sql})
            await http.put(f"/streams/{name}", json={"sql": sql})
            rule = {"id": f"r{rng.randrange(8)}", "sql": f"SELECT a FROM {name}", "actions": [{"nop": {}}]}
            await http.put(f"/rules/{rule['id']}", json=rule)
            await http.post(f"/rules/{rule['id']}/{rng.choice(['stop', 'start'])}")
            await http.put(f"/metadata/sources/memory/confKeys/k{rng.randrange(4)}", json={"bufferLength": n})
            if rng.random() < 0.3:
                await http.delete(f"/rules/{rule['id']}")
    except httpx.HTTPError:
        return  # the daemon was killed


async def test_kill_9_during_writes_leaves_a_consistent_catalog(tmp_path: Path) -> None:
    etc = write_etc(tmp_path / "etc")
    data = tmp_path / "data"
    rng = random.Random(9)
    async with trio.open_nursery() as nursery:
        for _ in range(ROUNDS):
            daemon = await start_daemon(nursery, etc, data)
            async with daemon.client() as http:
                with trio.fail_after(30):
                    async with trio.open_nursery() as writers:
                        writers.start_soon(_hammer, http, rng)
                        await trio.sleep(rng.uniform(0.05, 0.6))  # the kill lands at a random point
                        daemon.process.send_signal(signal.SIGKILL)
                        await daemon.process.wait()
            # A fresh daemon must load everything that was written, with no file it cannot read.
            daemon = await start_daemon(nursery, etc, data)
            async with daemon.client() as http:
                with trio.fail_after(30):
                    for name in (await http.get("/streams")).json():
                        assert (await http.get(f"/streams/{name}")).status_code == 200
                    for rule in (await http.get("/rules")).json():
                        assert (await http.get(f"/rules/{rule['id']}")).status_code == 200
                        assert rule["status"] in ("running", "stopped", "stopped by error")
                    assert (await http.get("/metadata/sources/yaml/memory")).status_code == 200
                with trio.fail_after(5):
                    assert await daemon.terminate() == 0
            assert b"cannot load" not in daemon.output, daemon.output.decode()[-2000:]
    conf = data / "conf" / "sources" / "memory.toml"  # conf group changes live in the data dir, over etc/
    assert conf.exists()
    tomllib.loads(conf.read_text())
    assert not (etc / "sources" / "memory.toml").exists()  # etc/ is never written
    kept = {data / "auth" / "token", conf, conf.with_suffix(".removed")}  # real files, not temporary ones
    leftovers = [
        p.name for p in data.rglob("*") if p.is_file() and not p.name.endswith(".json") and p not in kept
    ]
    assert leftovers == [], f"temporary files left behind: {leftovers}"
