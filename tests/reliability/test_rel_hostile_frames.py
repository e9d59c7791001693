"""Hostile frames on a server-mode websocket stream (the global data server) of the real daemon.

One client sends more than 60 bad messages (invalid JSON, garbage and invalid UTF-8 in binary frames, empty
frames, huge ones just under ``maxMessageSize``, nesting past the parser's depth limit, wrong types under
``STRICT_VALIDATION``, fragmented ones) interleaved with good ones in many shapes (text, binary, arrays,
fragmented with pings between the fragments, huge, deeply nested, non-ASCII). None of them may close the
connection: every good row must reach the sink in order, and every bad message must be counted once as a
source exception. Oversized frames, which legitimately close the connection (1009), are not part of this.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import orjson
import pytest
import trio
from wsproto import ConnectionType, WSConnection
from wsproto.events import (
    AcceptConnection,
    BytesMessage,
    CloseConnection,
    Ping,
    Pong,
    Request,
    TextMessage,
)

from tests.daemon_process import free_port, running_daemon, wait_for, write_etc
from tests.reliability.rel_support import create, files_dir, json_lines, rule_status

pytestmark = pytest.mark.slow

TIMEOUT = 40  # seconds for the whole test
MAX_MESSAGE = 1 << 20  # the data server's default maxMessageSize; every frame here stays under it
HUGE = 1_000_000  # bytes of the huge frames, just under MAX_MESSAGE

# A message is a list of (is_text, payload, finished) fragments (text payloads are str); most are one fragment.
Fragment = tuple[bool, str | bytes, bool]


def _one(payload: str | bytes) -> list[Fragment]:
    return [(isinstance(payload, str), payload, True)]


def _bad_messages(rng: random.Random) -> list[list[Fragment]]:
    """Messages the stream must refuse, each counted as one exception. All are valid websocket messages."""
    texts = [
        "{nope",
        "{",
        "}",
        "[1,",
        '{"n": 1,}',
        "{'n': 1}",
        '{"n": 1} {"n": 2}',
        '{"n": 1} x',
        "NaN",
        '{"n": NaN}',
        '{"n": Infinity}',
        "1e999",
        '"\\ud800"',
        '{"\\ud800": 1}',
        '{"n": 01}',
        '{"n": 1',
        '"unterminated',
        " ",
        "",  # an empty text frame
        "\x00",
        '{"tag": "a\x01b", "n": 1}',  # a raw control character inside a string
        "tru",
        '{"n": -}',
        '{"n": 1]',
        '[{"n": 1}',
        '{"n": 0x10}',
        '{"n": .5}',
        '/* comment */ {"n": 1}',
        '{"n": 1} // comment',
        "{n: 1}",
        '{"n": undefined}',
        # valid JSON, but not an object or an array of objects
        "null",
        "true",
        "42",
        '"a string"',
        "[1, 2]",
        '[{"n": 1}, 2]',
        '[[{"n": 1}]]',
        # nesting past the parser's depth limit (1024)
        "[" * 5000 + "]" * 5000,
        '{"a":' * 3000 + "1" + "}" * 3000,
        # wrong types for (n BIGINT, tag STRING) under STRICT_VALIDATION
        '{"n": "1", "tag": "t"}',
        '{"n": true, "tag": "t"}',
        '{"n": false, "tag": "t"}',
        '{"n": 1.5, "tag": "t"}',
        '{"n": [1], "tag": "t"}',
        '{"n": {"v": 1}, "tag": "t"}',
        '{"n": 1, "tag": 5}',
        '{"n": 1, "tag": ["x"]}',
        '{"n": 1, "tag": {"x": 1}}',
        '[{"n": 1, "tag": "t"}, {"n": "x", "tag": "t"}]',  # one bad row spoils its whole frame
        # huge, under the size cap
        '{"n": 1, "tag": "' + "x" * HUGE,  # unterminated
        "[" + "1," * (HUGE // 2 - 1) + "1]",
        " " * HUGE,
        '{"n": "' + "x" * HUGE + '", "tag": "t"}',
    ]
    binaries = [
        b"\x00\x01garbage",
        b'\xff\xfe{"n": 1}',  # invalid UTF-8 before valid JSON
        b'{"n": 1, "tag": "\xc3\x28"}',  # invalid UTF-8 inside a string
        b"\xed\xa0\x80",  # an encoded surrogate: not UTF-8
        b'{"n": 1}\xff',
        b"\x80" * 100,
        b"",  # an empty binary frame
        bytes(rng.randrange(256) for _ in range(1000)),
        bytes(rng.randrange(256) for _ in range(65536)),
        bytes(rng.randrange(256) for _ in range(HUGE)),
    ]
    messages = [_one(t) for t in texts] + [_one(b) for b in binaries]
    # Fragmented bad ones: invalid JSON in five text fragments, garbage in three binary fragments.
    messages.append([(True, part, i == 4) for i, part in enumerate(['{"n"', ": ", "1", ", ", '"tag"'])])
    messages.append([(False, b"\xff" * 10, i == 2) for i in range(3)])
    for message in messages:  # the test's own guard: none of them is a valid (n BIGINT, tag STRING) message
        payload = b"".join(p.encode() if isinstance(p, str) else p for _, p, _ in message)
        try:
            doc = orjson.loads(payload)
        except orjson.JSONDecodeError:
            continue
        docs = doc if isinstance(doc, list) and doc else [doc]
        assert not all(_valid_row(d) for d in docs), message
    return messages


def _valid_row(doc: Any) -> bool:
    return isinstance(doc, dict) and type(doc.get("n")) is int and isinstance(doc.get("tag"), str)


def _good_message(k: int, n: int) -> tuple[list[Fragment], list[dict[str, Any]]]:
    """The k-th good message (its shape rotates) starting at row number ``n``, and the rows it must yield."""
    row = {"n": n, "tag": f"g{n}"}
    shape = k % 8
    if shape == 0:
        return _one(orjson.dumps(row).decode()), [row]
    if shape == 1:
        return _one(orjson.dumps(row)), [row]  # binary frame
    if shape == 2:
        rows = [row, {"n": n + 1, "tag": f"g{n + 1}"}]
        return _one(orjson.dumps(rows).decode()), rows
    if shape == 3:
        text = orjson.dumps(row).decode()
        cuts = [0, 1, 3, 5, 8, 13, len(text)]
        return [(True, text[a:b], b == len(text)) for a, b in zip(cuts, cuts[1:], strict=False)], [row]
    if shape == 4:
        return _one(orjson.dumps({**row, "pad": "x" * (HUGE - 100)}).decode()), [row]
    if shape == 5:
        deep = "[" * 1000 + "]" * 1000  # under the parser's depth limit: fine in a field the rule ignores
        return _one(orjson.dumps(row).decode()[:-1] + f', "deep": {deep}}}'), [row]
    if shape == 6:
        uni = {"n": n, "tag": f"ü🙂\u2028{n}"}
        return _one(orjson.dumps(uni).decode()), [uni]
    return _one(orjson.dumps({**row, "n": float(n)})), [row]  # an integral float is a BIGINT


class HostileClient:
    """A websocket client on wsproto: sends any fragment sequence and control frame, and records pongs and
    whether the server closed the connection."""

    def __init__(self, stream: trio.SocketStream, ws: WSConnection) -> None:
        self.stream = stream
        self.ws = ws
        self.pings: list[bytes] = []  # payloads of the pings sent, in order
        self.pongs: list[bytes] = []
        self.closed: CloseConnection | None = None
        self.lock = trio.Lock()
        self._changed = trio.Event()

    @classmethod
    async def connect(cls, port: int, path: str) -> HostileClient:
        stream = await trio.open_tcp_stream("127.0.0.1", port)
        ws = WSConnection(ConnectionType.CLIENT)
        await stream.send_all(ws.send(Request(host="127.0.0.1", target=path)))
        while True:
            data = await stream.receive_some(65536)
            assert data, "the data server closed the connection during the handshake"
            ws.receive_data(data)
            for event in ws.events():
                assert isinstance(event, AcceptConnection), event
                return cls(stream, ws)

    async def send(self, *events: Any) -> None:
        async with self.lock:
            await self.stream.send_all(b"".join(self.ws.send(e) for e in events))

    async def send_message(self, fragments: list[Fragment], ping_between: bytes = b"") -> None:
        for i, (_, payload, finished) in enumerate(fragments):
            if isinstance(payload, str):
                await self.send(TextMessage(data=payload, message_finished=finished))
            else:
                await self.send(BytesMessage(data=payload, message_finished=finished))
            if ping_between and not finished:
                self.pings.append(ping_between + b"%d" % i)
                await self.send(Ping(payload=self.pings[-1]))  # control frames may go between fragments

    async def wait_pongs(self, count: int) -> None:
        while len(self.pongs) < count and self.closed is None:
            await self._changed.wait()

    async def read(self) -> None:
        while True:
            data = await self.stream.receive_some(65536)
            self.ws.receive_data(data or None)
            for event in self.ws.events():
                if isinstance(event, Pong):
                    self.pongs.append(bytes(event.payload))
                elif isinstance(event, Ping):
                    await self.send(event.response())
                elif isinstance(event, CloseConnection):
                    self.closed = event
            self._changed.set()
            self._changed = trio.Event()
            if not data or self.closed is not None:
                return


async def test_hostile_frames_are_counted_and_good_ones_flow_in_order(tmp_path: Path) -> None:
    rng = random.Random(2)
    port = free_port()
    data = tmp_path / "data"
    out = files_dir(data) / "hostile.jsonl"
    etc = write_etc(
        tmp_path / "etc", extra_toml=f'[source]\nhttpServerIp = "127.0.0.1"\nhttpServerPort = {port}\n'
    )
    bad = _bad_messages(rng)
    assert len(bad) >= 60
    with trio.fail_after(TIMEOUT):
        async with trio.open_nursery() as nursery:
            async with running_daemon(nursery, etc, data) as daemon, daemon.client() as http:
                await create(
                    http,
                    "CREATE STREAM hostile (n BIGINT, tag STRING) WITH "
                    '(TYPE="websocket", DATASOURCE="/hostile", FORMAT="json", STRICT_VALIDATION="true")',
                    {
                        "id": "r_hostile",
                        "sql": "SELECT n, tag FROM hostile",
                        "actions": [{"file": {"path": str(out), "fileType": "lines", "sendSingle": True}}],
                    },
                )
                client = await HostileClient.connect(port, "/hostile")
                async with client.stream, trio.open_nursery() as reader:
                    reader.start_soon(client.read)
                    expected: list[dict[str, Any]] = []
                    for k, message in enumerate(bad):
                        good, rows = _good_message(k, len(expected))
                        await client.send_message(good, ping_between=b"g%d." % k)
                        expected += rows
                        await client.send_message(message)
                        if k % 10 == 0:
                            await client.send(Pong(payload=b"unsolicited"))  # allowed, and must be ignored
                    last, rows = _good_message(0, len(expected))
                    await client.send_message(last)
                    expected += rows

                    async def delivered() -> bool:
                        return len(json_lines(out)) >= len(expected)

                    await wait_for(delivered)
                    assert json_lines(out) == expected
                    status = await rule_status(http, "r_hostile")
                    assert status["status"] == "running"
                    assert status["source_hostile_0_exceptions_total"] == len(bad)
                    assert status["source_hostile_0_records_in_total"] == len(expected)
                    assert status["source_hostile_0_last_exception"].startswith(
                        "websocket /hostile: invalid JSON"
                    )
                    assert status["source_hostile_0_connection_status"] == 1  # still connected
                    assert status["op_2_project_0_exceptions_total"] == 0
                    assert status["sink_file_0_0_exceptions_total"] == 0
                    summary = (await http.get("/rules/status/all")).json()["r_hostile"]
                    assert summary["exceptions_total"] == len(bad)
                    assert client.closed is None, f"the server closed the connection: {client.closed}"
                    await client.wait_pongs(len(client.pings))
                    assert client.pings and client.pongs == client.pings  # each ping answered, in order
                    await client.send(CloseConnection(code=1000))  # the reader ends with the server's answer
                assert client.closed is not None and client.closed.code == 1000
                assert await daemon.terminate() == 0
            nursery.cancel_scope.cancel()
