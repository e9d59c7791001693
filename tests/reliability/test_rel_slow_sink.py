"""Four clients flood a server-mode websocket stream whose rule writes to a slow consumer (a client-mode
websocket sink whose server, run by the test, reads slowly), with the default ``bufferFullPolicy = "block"``.

Blocking must hold the chain back (sink -> the rule's bounded buffers -> the data server stops reading -> TCP
pushes back on the clients): every message sent reaches the slow consumer, exactly once and in each client's
order, and the daemon's memory stays under a stated bound while the producers outrun the consumer.

Two buffer sizes: the default ``bufferLength`` (1024 batches per hop, a batch being up to 64 frames of one socket
read, so the daemon may legitimately hold about 130,000 messages: this load fits in it and the bound checks what
that costs), and ``bufferLength`` 64, where the load is many times what the rule may hold, so the clients
themselves must be held back.
"""

from __future__ import annotations

import struct
from pathlib import Path
from typing import Any, NamedTuple

import orjson
import pytest
import trio
from wsproto import ConnectionType, WSConnection
from wsproto.events import AcceptConnection, Request

from tests.daemon_process import free_port, running_daemon, write_etc
from tests.reliability.rel_support import WsPeer, create, rss_mb, rule_status

pytestmark = pytest.mark.slow

CLIENTS = 4
FRAMES_PER_WRITE = 64  # frames a client hands to one socket write: "full speed"
TIMEOUT = 50  # seconds for each case
SLOW_READ_SIZE = 16384  # the consumer reads 16 KB ...
SLOW_READ_PAUSE = 0.002  # ... then pauses 2 ms: at most ~8 MB/s, well under what the four clients send

# Peak resident memory (VmHWM) allowed to the daemon with the default bufferLength. Measured: about 115 MB
# (55 MB before the load). The rule may hold two full hops of 1024 batches of up to 64 rows, about 130,000
# messages of ~340 bytes as Python rows (~1 KB each with their dicts), which with the interpreter's own 55 MB
# and the sink's socket buffer comes to about 190 MB at worst; 250 MB leaves honest headroom above that.
MAX_RSS_MB_DEFAULT_BUFFERS = 250
# Same with bufferLength 64: the rule may hold 2 x 64 batches (about 8,000 rows of ~750 bytes, under 10 MB).
# Measured: about 62 MB. Holding the load itself (45 MB on the wire, well over 100 MB as rows) would pass 120.
MAX_RSS_MB_SMALL_BUFFERS = 120


class Case(NamedTuple):
    buffer_length: int | None  # None: the rule option is left at its default
    per_client: int
    pad: int  # characters of padding per message
    max_rss_mb: int


CASES = {
    "default-buffers": Case(None, 25_000, 300, MAX_RSS_MB_DEFAULT_BUFFERS),
    "bufferLength-64": Case(64, 15_000, 700, MAX_RSS_MB_SMALL_BUFFERS),
}


def _frame(payload: bytes) -> bytes:
    """One masked text frame with the all-zero mask key (legal: the payload goes out as it is)."""
    size = len(payload)
    if size < 126:
        head = bytes((0x81, 0x80 | size))
    else:
        assert size < 1 << 16
        head = struct.pack("!BBH", 0x81, 0x80 | 126, size)
    return head + b"\0\0\0\0" + payload


async def _flood(port: int, client: int, case: Case, done: list[float]) -> None:
    """Connect to the data server and send numbered messages as fast as the socket takes them."""
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    async with stream:
        ws = WSConnection(ConnectionType.CLIENT)
        await stream.send_all(ws.send(Request(host="127.0.0.1", target="/load")))
        accepted = False
        while not accepted:
            data = await stream.receive_some(65536)
            assert data, "the data server closed the connection during the handshake"
            ws.receive_data(data)
            accepted = any(isinstance(e, AcceptConnection) for e in ws.events())
        pad = "x" * case.pad
        for start in range(0, case.per_client, FRAMES_PER_WRITE):
            stop = min(start + FRAMES_PER_WRITE, case.per_client)
            frames = (_frame(orjson.dumps({"c": client, "i": i, "pad": pad})) for i in range(start, stop))
            await stream.send_all(b"".join(frames))
        done.append(trio.current_time())
        await trio.sleep_forever()  # stay connected until the test ends


@pytest.mark.parametrize("name", list(CASES))
async def test_slow_sink_loses_nothing_and_bounds_memory(tmp_path: Path, name: str) -> None:
    case = CASES[name]
    port = free_port()
    data = tmp_path / "data"
    etc = write_etc(
        tmp_path / "etc", extra_toml=f'[source]\nhttpServerIp = "127.0.0.1"\nhttpServerPort = {port}\n'
    )
    consumer = WsPeer(read_pause=SLOW_READ_PAUSE, read_size=SLOW_READ_SIZE)
    total = CLIENTS * case.per_client
    peak_buffers = {"source": 0, "sink": 0}
    with trio.fail_after(TIMEOUT):
        async with trio.open_nursery() as nursery:
            await consumer.start(nursery)
            async with running_daemon(nursery, etc, data) as daemon, daemon.client() as http:
                pid = daemon.process.pid
                sink = {"addr": f"127.0.0.1:{consumer.port}", "path": "/sink", "sendSingle": True}
                rule: dict[str, Any] = {
                    "id": "r_load",
                    "sql": "SELECT * FROM load",
                    "actions": [{"websocket": sink}],
                }
                if case.buffer_length is not None:
                    rule["options"] = {"bufferLength": case.buffer_length}
                await create(
                    http,
                    'CREATE STREAM load () WITH (TYPE="websocket", DATASOURCE="/load", FORMAT="json")',
                    rule,
                )
                await consumer.wait_for(lambda: consumer.connected == 1)
                rss_before = rss_mb(pid)

                async def sample_buffers() -> None:
                    while True:
                        s = await rule_status(http, "r_load")
                        peak_buffers["source"] = max(peak_buffers["source"], s["source_load_0_buffer_length"])
                        peak_buffers["sink"] = max(
                            peak_buffers["sink"], s["sink_websocket_0_0_buffer_length"]
                        )
                        await trio.sleep(0.1)  # the sampler's pace, not a wait for a condition

                started = trio.current_time()
                done: list[float] = []
                async with trio.open_nursery() as load:
                    load.start_soon(sample_buffers)
                    for client in range(CLIENTS):
                        load.start_soon(_flood, port, client, case, done)
                    await consumer.wait_for(lambda: len(done) == CLIENTS)
                    received_when_sent = len(consumer.received)
                    await consumer.wait_for(lambda: len(consumer.received) >= total)
                    load.cancel_scope.cancel()
                elapsed = trio.current_time() - started
                peak = rss_mb(pid, "VmHWM")
                print(
                    f"\n{name}: daemon RSS {rss_before:.1f} MB before the load, peak (VmHWM) {peak:.1f} MB;"
                    f" peak buffers: source {peak_buffers['source']}, sink {peak_buffers['sink']};"
                    f" senders done at {max(done) - started:.1f} s with {received_when_sent}/{total} consumed;"
                    f" all consumed at {elapsed:.1f} s"
                )
                got: dict[int, list[int]] = {c: [] for c in range(CLIENTS)}
                for message in consumer.received:
                    row: dict[str, Any] = orjson.loads(message)
                    got[row["c"]].append(row["i"])
                for client in range(CLIENTS):
                    assert got[client] == list(range(case.per_client)), (
                        f"client {client}: lost or out of order"
                    )
                assert len(consumer.received) == total
                status = await rule_status(http, "r_load")
                assert status["status"] == "running"
                assert status["source_load_0_records_dropped_total"] == 0
                assert status["sink_websocket_0_0_exceptions_total"] == 0
                assert status["sink_websocket_0_0_records_out_total"] == total
                assert peak < case.max_rss_mb, f"daemon peak RSS {peak:.1f} MB"
                if case.buffer_length is not None:
                    # The load is several times what the rule may hold: the clients can only have finished
                    # once the slow consumer had taken most of it. Without blocking they finish at once.
                    assert received_when_sent >= total // 2, (received_when_sent, total)
                assert await daemon.terminate() == 0
            nursery.cancel_scope.cancel()
