"""kill -9 while file sinks write: the output files must stay readable across every crash and restart.

Rules read a memory stream fed through REST ``POST /memory/{topic}`` and write a ``lines`` and a ``json`` file
each, with ``sendSingle`` false. After every restart the rules resume from the catalog and write more; then
every complete line of a ``lines`` file must parse and, once the rules are stopped, each ``json`` file must be
one valid JSON array. Rows must never repeat or go backwards (a repair may drop a cut message, not invent one),
and what was written after the restart must all be readable.

The first test kills the daemon at random moments while it writes. A SIGKILL that lands inside a ``write``
cuts it short (Linux stops copying between pages when a fatal signal is pending: a process killed during a
multi-page write leaves part of it), but a random kill almost never lands inside one of these short writes,
so the second test leaves each file in exactly that state, its last write cut at a random byte, before the
restart. REST writes under kill -9 are tests/test_kill9.py's subject, not this one's.
"""

from __future__ import annotations

import random
import signal
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import trio

from tests.daemon_process import Daemon, running_daemon, wait_for, write_etc
from tests.reliability.rel_support import create, files_dir, post_ok

pytestmark = pytest.mark.slow

ROUNDS = 4
BATCH = 20  # rows per POST /memory
MARKER_BATCH = 25  # rows published after each restart: one full COUNTWINDOW(25)
PAD = "p" * 500
TIMEOUT = 55  # seconds for each test
STREAM = 'CREATE STREAM mem (seq BIGINT, pad STRING) WITH (TYPE="memory", DATASOURCE="rel/in")'


def _outputs(data: Path, rules: tuple[str, ...]) -> dict[str, Path]:
    folder = files_dir(data)
    return {f"{rule}.{kind}": folder / f"{rule}.{kind}" for rule in rules for kind in ("lines", "json")}


def _rule(rule_id: str, sql: str, data: Path) -> dict[str, Any]:
    out = _outputs(data, (rule_id,))
    return {
        "id": rule_id,
        "sql": sql,
        "actions": [
            {"file": {"path": str(out[f"{rule_id}.lines"]), "fileType": "lines", "sendSingle": False}},
            {"file": {"path": str(out[f"{rule_id}.json"]), "fileType": "json", "sendSingle": False}},
        ],
    }


def _seqs(messages: list[Any], where: str) -> list[int]:
    """The rows' ``seq`` of a list of messages (each a list of rows), checked to increase strictly."""
    seqs = []
    for message in messages:
        assert isinstance(message, list) and message, f"{where}: {message!r:.200} is not a list of rows"
        for row in message:
            assert row["pad"] == PAD, f"{where}: damaged row {row!r:.200}"
            seqs.append(row["seq"])
    assert seqs == sorted(set(seqs)), f"{where}: rows repeat or go backwards"
    return seqs


def _lines_file(path: Path) -> list[int]:
    """Every complete line of a lines file, parsed."""
    complete = path.read_bytes().split(b"\n")[:-1]
    messages = []
    for number, line in enumerate(complete, 1):
        try:
            messages.append(orjson.loads(line))
        except orjson.JSONDecodeError as exc:
            around = line[max(exc.pos - 60, 0) : exc.pos + 40]
            raise AssertionError(
                f"{path.name}: line {number} of {len(complete)} does not parse ({exc}): ...{around!r}..."
            ) from exc
    return _seqs(messages, path.name)


def _json_file(path: Path) -> list[int]:
    """A json file, which must be one JSON array as a whole."""
    raw = path.read_bytes()
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise AssertionError(
            f"{path.name} is not one JSON document ({exc}); it ends with {raw[-300:]!r}"
        ) from exc
    assert isinstance(doc, list), path.name
    return _seqs(doc, path.name)


def _rows(seq: list[int], count: int) -> list[dict[str, Any]]:
    """``count`` fresh rows; ``seq[0]`` (the next number) moves first, so a batch the daemon took just before
    dying (its answer lost) never has its numbers used again."""
    first = seq[0]
    seq[0] += count
    return [{"seq": first + i, "pad": PAD} for i in range(count)]


async def _feed(http: httpx.AsyncClient, seq: list[int]) -> None:
    """Publish numbered rows until the daemon dies under it."""
    try:
        while True:
            await http.post("/memory/rel/in", json=_rows(seq, BATCH))
    except httpx.HTTPError:
        return  # killed


async def _write_and_check(daemon: Daemon, data: Path, rules: tuple[str, ...], seq: list[int]) -> None:
    """The (restarted) rules write a batch; once it is in every file, the rules are stopped and every file must
    read back whole, the batch included; then the rules are started again."""
    out = _outputs(data, rules)
    async with daemon.client() as http:
        for rule in rules:
            status = (await http.get(f"/rules/{rule}/status")).json()
            assert status["status"] == "running", status  # resumed from the catalog
        batch = _rows(seq, MARKER_BATCH)
        await post_ok(http, "/memory/rel/in", batch)
        marker = f'"seq":{batch[-1]["seq"]},'.encode()

        async def written() -> bool:  # the batch's last row is in every file (row numbers are never reused)
            return all(path.exists() and marker in path.read_bytes() for path in out.values())

        await wait_for(written)
        for rule in rules:
            await post_ok(http, f"/rules/{rule}/stop")  # closes the json arrays
        problems = []  # every file is checked, so one failure reports them all
        for name, path in out.items():
            try:
                seqs = _lines_file(path) if name.endswith(".lines") else _json_file(path)
                assert seqs[-MARKER_BATCH:] == [row["seq"] for row in batch], (
                    f"{name}: rows written after the restart"
                )
            except AssertionError as exc:
                problems.append(str(exc).split("\n")[0])
        assert not problems, "\n".join(problems)
        for rule in rules:
            await post_ok(http, f"/rules/{rule}/start")


async def test_kill_9_during_file_sink_writes_leaves_readable_files(tmp_path: Path) -> None:
    etc = write_etc(tmp_path / "etc")
    data = tmp_path / "data"
    rules = ("r_rows", "r_win")
    rng = random.Random(5)
    seq = [0]  # the next row number
    with trio.fail_after(TIMEOUT):
        async with trio.open_nursery() as nursery:
            for round_ in range(ROUNDS + 1):
                async with running_daemon(nursery, etc, data) as daemon:
                    if round_ == 0:
                        async with daemon.client() as http:
                            await create(
                                http,
                                STREAM,
                                # one message per row: many small writes
                                _rule("r_rows", "SELECT seq, pad FROM mem", data),
                                # 25 rows per message: writes of about 13 KB, past the 8 KB write buffer
                                _rule("r_win", "SELECT seq, pad FROM mem GROUP BY COUNTWINDOW(25)", data),
                            )
                    else:
                        await _write_and_check(daemon, data, rules, seq)
                    if round_ == ROUNDS:
                        assert await daemon.terminate() == 0
                        break
                    async with daemon.client() as http, trio.open_nursery() as feeders:
                        feeders.start_soon(_feed, http, seq)
                        await trio.sleep(rng.uniform(0.2, 1.0))  # the kill lands at a random moment
                        daemon.process.send_signal(signal.SIGKILL)
                        await daemon.process.wait()
            nursery.cancel_scope.cancel()


def _cut_last_write(path: Path, rng: random.Random) -> None:
    """Leave ``path`` as a kill inside its last write would: only the first bytes of that write made it.

    A lines file's last write is its last line with its newline; a json file's is ``\\n,`` and the element
    (``\\n`` and the first element right after ``[``), the layout file.py documents.
    """
    raw = path.read_bytes()
    if path.suffix == ".lines":
        start = raw.rstrip(b"\n").rfind(b"\n") + 1
    else:
        start = raw.rfind(b"\n")
    keep = rng.randrange(start + 1, len(raw))  # at least one byte of the write, not all of it
    path.write_bytes(raw[:keep])


async def test_a_write_cut_short_by_kill_9_is_repaired_on_restart(tmp_path: Path) -> None:
    etc = write_etc(tmp_path / "etc")
    data = tmp_path / "data"
    rules = ("r_cut",)
    rng = random.Random(7)
    seq = [0]
    with trio.fail_after(TIMEOUT):
        async with trio.open_nursery() as nursery:
            for round_ in range(4):
                async with running_daemon(nursery, etc, data) as daemon:
                    if round_ == 0:
                        async with daemon.client() as http:
                            await create(http, STREAM, _rule("r_cut", "SELECT seq, pad FROM mem", data))
                    await _write_and_check(daemon, data, rules, seq)
                    if round_ == 3:
                        assert await daemon.terminate() == 0
                        break
                    async with daemon.client() as http:
                        await post_ok(http, "/memory/rel/in", _rows(seq, BATCH))
                        last = f'"seq":{seq[0] - 1},'.encode()

                        async def written(last: bytes = last) -> bool:
                            return all(last in path.read_bytes() for path in _outputs(data, rules).values())

                        await wait_for(written)
                    daemon.process.send_signal(signal.SIGKILL)
                    await daemon.process.wait()
                for path in _outputs(data, rules).values():
                    _cut_last_write(path, rng)
            nursery.cancel_scope.cancel()
