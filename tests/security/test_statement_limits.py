"""Hostile statements over REST: a huge or unterminated statement is refused quickly with a short message, a
number too long for Python is a 400 (not a 500), and the daemon keeps answering meanwhile."""

from __future__ import annotations

from pathlib import Path

import pytest
import trio

from runtime.sql.parser import MAX_STATEMENT_CHARS
from tests.daemon_process import start_daemon, write_etc

pytestmark = pytest.mark.slow

FILLER = MAX_STATEMENT_CHARS - 100  # just under the cap: the parser has to scan all of it


async def test_hostile_statements_get_short_400s_and_the_daemon_keeps_answering(tmp_path: Path) -> None:
    etc = write_etc(tmp_path / "etc")
    stream = {"sql": 'CREATE STREAM s () WITH (TYPE="memory", DATASOURCE="t")'}
    cases = {
        "4 MB unterminated string": ("SELECT '" + "a" * 4_000_000, "over the limit of 65,536"),
        "unterminated string": ("SELECT '" + "a" * FILLER, "unterminated string"),
        "unterminated comment": ("SELECT 1 /* " + "a" * FILLER, "expected"),
        "5,000-digit number": ("SELECT " + "9" * 5000 + " FROM s", "number with 5000 digits is too long"),
        "long identifier": ("SELECT " + "a" * FILLER, "expected"),
        "9,000 tokens": ("SELECT " + ",".join(["a"] * 4500) + " FROM s", "more than 8,192 tokens"),
    }
    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            daemon = await start_daemon(nursery, etc, tmp_path / "data")
            async with daemon.client() as http:
                assert (await http.post("/streams", json=stream)).status_code == 201
                for why, (sql, expected) in cases.items():
                    pinged = trio.Event()

                    async def ping() -> None:
                        async with daemon.client() as other:
                            started = trio.current_time()
                            assert (await other.get("/ping")).status_code == 200
                            took = trio.current_time() - started
                        print(f"{why}: /ping answered in {took * 1000:.0f} ms")  # noqa: B023 - this iteration's
                        pinged.set()  # noqa: B023 - awaited below, within this iteration

                    nursery.start_soon(ping)
                    resp = await http.post("/rules", json={"id": "r", "sql": sql, "actions": [{"nop": {}}]})
                    await pinged.wait()
                    assert resp.status_code == 400, (why, resp.text[:200])
                    message = resp.json()["message"]
                    assert expected in message, (why, message[:200])
                    assert len(resp.content) < 1000, why  # the statement is not echoed back
                assert (await http.get("/rules")).json() == []
            await daemon.terminate()
