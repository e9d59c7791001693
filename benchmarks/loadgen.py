"""The load generator, run as a separate process: ``python -m benchmarks.loadgen MODE [options]``.

Modes:
  send         C clients connect to ws://HOST:PORT/PATH and send N pre-encoded JSON frames in total, as fast as
               the server reads them (--rate 0) or paced at --rate msgs/s.
  push-server  listen on 127.0.0.1; the first websocket client on any path is sent N frames as fast as it reads.
  latency      a receiver on --results-path and a sender on --path paced at --rate: frame sent -> frame back.
  idle         open C websocket connections and hold them open.
  http-post    C keep-alive HTTP/1.1 connections POST N pre-encoded JSON bodies in total (--batch rows each: one
               object, or an array of B objects), one request in flight per connection (no pipelining): the next
               request of a connection goes out when the answer to the previous one arrived. Any answer but 200
               is counted and reported. Raw trio sockets and a minimal response parser (Content-Length answers
               only), so the generator costs far less per request than any server it measures.
  http-ok      the trivial server that measures http-post alone: answers every request ``200 ok`` without
               looking at it (same minimal parser); prints ``{"event": "ready", "port": ...}``.

Stdout carries one JSON object per line (``{"event": ...}``) for the harness; progress goes to stderr. Every
mode is bounded: by its message count and by --timeout seconds.
"""

from __future__ import annotations

import argparse
import functools
import itertools
import json
import sys
import time
from typing import Any

import orjson
import trio

from benchmarks import wsraw

CHUNK = 128  # frames per socket write in flood mode
TICK = 0.002  # seconds between paced writes


def emit(event: str, **fields: Any) -> None:
    print(json.dumps({"event": event, **fields}), flush=True)


def progress(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def message(i: int, seq: bool = False) -> bytes:
    """About 100 bytes of JSON: half of the messages have temperature > 50, ids dev-0..dev-99."""
    doc: dict[str, Any] = {
        "temperature": 23.4 + 40 * (i % 2),
        "humidity": 51 + i % 7,
        "ts": 1700000000000 + i,
        "id": f"dev-{i % 100}",
    }
    if seq:
        doc["seq"] = i
    return orjson.dumps(doc)


def pool(n: int = 200) -> list[bytes]:
    return [message(i) for i in range(n)]


async def _send_flood(stream: trio.SocketStream, frames: list[bytes], count: int, sent: list[int]) -> None:
    cycle = itertools.cycle(frames)
    chunk = b"".join(itertools.islice(cycle, CHUNK))
    full, rest = divmod(count, CHUNK)
    for _ in range(full):
        await stream.send_all(chunk)
        sent[0] += CHUNK
    if rest:
        await stream.send_all(b"".join(itertools.islice(cycle, rest)))
        sent[0] += rest


async def _send_paced(
    stream: trio.SocketStream, frames: list[bytes], count: int, rate: float, sent: list[int], t0: float
) -> None:
    cycle = itertools.cycle(frames)
    done = 0
    while done < count:
        due = min(count, int((time.perf_counter() - t0) * rate) + 1)
        if due > done:
            await stream.send_all(b"".join(itertools.islice(cycle, due - done)))
            sent[0] += due - done
            done = due
        await trio.sleep(TICK)


async def _report(sent: list[int], total: int, label: str) -> None:
    last = 0
    while True:
        await trio.sleep(1.0)
        now = sent[0]
        progress(f"  [{label}] {now:,}/{total:,} sent ({now - last:,}/s)")
        last = now


async def mode_send(args: argparse.Namespace) -> None:
    frames = [wsraw.client_frame(m) for m in pool()]
    streams = [(await wsraw.connect(args.host, args.port, args.path))[0] for _ in range(args.clients)]
    per = [
        args.count // args.clients + (1 if i < args.count % args.clients else 0) for i in range(args.clients)
    ]
    sent = [0]
    t0 = time.perf_counter()
    emit("start", t=time.time())
    async with trio.open_nursery() as nursery:
        reporter = trio.CancelScope()

        async def report() -> None:
            with reporter:
                await _report(sent, args.count, "send")

        nursery.start_soon(report)
        async with trio.open_nursery() as senders:
            for stream, n in zip(streams, per, strict=True):
                if args.rate > 0:
                    senders.start_soon(_send_paced, stream, frames, n, args.rate / args.clients, sent, t0)
                else:
                    senders.start_soon(_send_flood, stream, frames, n, sent)
        reporter.cancel()
    emit("done", t=time.time(), sent=sent[0], seconds=time.perf_counter() - t0)
    if args.linger > 0:
        await trio.sleep(args.linger)
    for stream in streams:
        with trio.move_on_after(1):
            await stream.send_all(wsraw.client_frame(b"\x03\xe8", wsraw.OP_CLOSE))
        await stream.aclose()


async def mode_push_server(args: argparse.Namespace) -> None:
    frames = [wsraw.server_frame(m) for m in pool()]
    pushed = trio.Event()
    sent = [0]

    async def handle(stream: trio.SocketStream) -> None:
        await wsraw.accept(stream)
        if pushed.is_set():
            await trio.sleep_forever()
        pushed.set()
        t0 = time.perf_counter()
        emit("start", t=time.time())
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_report, sent, args.count, "push")
            await _send_flood(stream, frames, args.count, sent)
            nursery.cancel_scope.cancel()
        emit("done", t=time.time(), sent=sent[0], seconds=time.perf_counter() - t0)
        await trio.sleep_forever()  # the harness ends this process

    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(functools.partial(trio.serve_tcp, handle, 0, host="127.0.0.1"))
        emit("ready", port=listeners[0].socket.getsockname()[1])


async def mode_latency(args: argparse.Namespace) -> None:
    count, rate = args.count, args.rate
    frames = [wsraw.client_frame(message(i, seq=True)) for i in range(count)]
    sent_at = [0.0] * count
    latencies: list[float] = []
    done = trio.Event()
    out_stream, rest = await wsraw.connect(args.host, args.port, args.results_path)
    in_stream, _ = await wsraw.connect(args.host, args.port, args.path)

    async def receive() -> None:
        reader = wsraw.FrameReader(out_stream, rest)
        while len(latencies) < count:
            frames_in = await reader.frames()
            now = time.perf_counter()
            if not frames_in:
                break
            for opcode, payload in frames_in:
                if opcode != wsraw.OP_TEXT:
                    continue
                doc = orjson.loads(payload)
                for row in doc if isinstance(doc, list) else [doc]:
                    latencies.append(now - sent_at[row["seq"]])
        done.set()

    async def send() -> None:
        t0 = time.perf_counter()
        i = 0
        while i < count:
            due = min(count, int((time.perf_counter() - t0) * rate) + 1)
            if due > i:
                stamp = time.perf_counter()
                for j in range(i, due):
                    sent_at[j] = stamp
                await in_stream.send_all(b"".join(frames[i:due]))
                i = due
            await trio.sleep(TICK)

    emit("start", t=time.time())
    async with trio.open_nursery() as nursery:
        nursery.start_soon(receive)

        async def report() -> None:
            while True:
                await trio.sleep(1.0)
                progress(f"  [latency] {len(latencies):,}/{count:,} received")

        nursery.start_soon(report)
        await send()
        with trio.move_on_after(args.drain):
            await done.wait()
        nursery.cancel_scope.cancel()
    skip = min(len(latencies) // 10, int(rate * 0.2))  # warm-up: the first 0.2 s
    sample = sorted(latencies[skip:])

    def pct(p: float) -> float:
        return sample[min(len(sample) - 1, int(p * len(sample)))] * 1000 if sample else float("nan")

    emit(
        "done",
        sent=count,
        received=len(latencies),
        p50_ms=pct(0.50),
        p90_ms=pct(0.90),
        p99_ms=pct(0.99),
        max_ms=sample[-1] * 1000 if sample else float("nan"),
    )
    for stream in (in_stream, out_stream):
        await stream.aclose()


async def mode_idle(args: argparse.Namespace) -> None:
    streams = []
    for i in range(args.clients):
        streams.append((await wsraw.connect(args.host, args.port, args.path))[0])
        if (i + 1) % 250 == 0:
            progress(f"  [idle] {i + 1}/{args.clients} connected")
    emit("ready", clients=len(streams))
    await trio.sleep(args.hold)
    for stream in streams:
        await stream.aclose()


def post_request(host: str, port: int, path: str, body: bytes) -> bytes:
    """One complete HTTP/1.1 POST (keep-alive is HTTP/1.1's default)."""
    head = (
        f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


def post_pool(host: str, port: int, path: str, batch: int, n: int = 200) -> list[bytes]:
    """``n`` distinct requests; each body is one JSON object (``batch`` 1) or an array of ``batch`` objects."""
    requests = []
    for i in range(n):
        if batch <= 1:
            body = message(i)
        else:
            body = b"[" + b",".join(message(i * batch + j) for j in range(batch)) + b"]"
        requests.append(post_request(host, port, path, body))
    return requests


def http_message(buf: bytes) -> tuple[bytes, int] | None:
    """(head, total size) of the HTTP message at the start of ``buf`` once all of it is there, else None.

    Only ``Content-Length`` bodies (or none): what the servers measured here answer, and what http-post sends.
    """
    end = buf.find(b"\r\n\r\n")
    if end < 0:
        return None
    head = buf[:end]
    at = head.lower().find(b"\r\ncontent-length:")
    if at < 0:
        if b"\r\ntransfer-encoding:" in head.lower():
            raise ValueError("chunked HTTP bodies are not supported by this load generator")
        length = 0
    else:
        stop = head.find(b"\r\n", at + 2)
        length = int(head[at + 17 : stop if stop >= 0 else len(head)])
    total = end + 4 + length
    return (head, total) if len(buf) >= total else None


async def _post_loop(
    stream: trio.SocketStream,
    requests: list[bytes],
    count: int,
    answered: list[int],
    statuses: dict[str, int],
) -> None:
    """Send ``count`` requests on one connection, each after the answer to the previous one."""
    buf = b""
    size = len(requests)
    receive, send = stream.receive_some, stream.send_all
    for i in range(count):
        await send(requests[i % size])
        while True:
            found = http_message(buf)
            if found is not None:
                break
            chunk = await receive(65536)
            if not chunk:
                raise ConnectionError(f"the server closed the connection after {answered[0]} answers")
            buf += chunk
        head, total = found
        buf = buf[total:]
        status = head[9:12].decode()
        if status != "200":
            statuses[status] = statuses.get(status, 0) + 1
        answered[0] += 1


async def mode_http_post(args: argparse.Namespace) -> None:
    requests = post_pool(args.host, args.port, args.path, args.batch)
    streams = [await trio.open_tcp_stream(args.host, args.port) for _ in range(args.clients)]
    per = [
        args.count // args.clients + (1 if i < args.count % args.clients else 0) for i in range(args.clients)
    ]
    answered = [0]
    statuses: dict[str, int] = {}
    t0 = time.perf_counter()
    emit("start", t=time.time())
    async with trio.open_nursery() as nursery:
        reporter = trio.CancelScope()

        async def report() -> None:
            with reporter:
                await _report(answered, args.count, "http-post")

        nursery.start_soon(report)
        async with trio.open_nursery() as senders:
            for i, (stream, n) in enumerate(zip(streams, per, strict=True)):
                # Each connection starts at its own place in the pool: the bodies in flight differ.
                shifted = requests[i * 7 % len(requests) :] + requests[: i * 7 % len(requests)]
                senders.start_soon(_post_loop, stream, shifted, n, answered, statuses)
        reporter.cancel()
    seconds = time.perf_counter() - t0
    emit(
        "done",
        t=time.time(),
        answered=answered[0],
        rows=answered[0] * args.batch,
        seconds=seconds,
        statuses=statuses,
    )
    for stream in streams:
        await stream.aclose()


OK_ANSWER = b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 2\r\n\r\nok"


async def mode_http_ok(args: argparse.Namespace) -> None:
    async def handle(stream: trio.SocketStream) -> None:
        buf = b""
        while True:
            chunk = await stream.receive_some(65536)
            if not chunk:
                return
            buf += chunk
            answers = 0
            while (found := http_message(buf)) is not None:
                buf = buf[found[1] :]
                answers += 1
            if answers:
                await stream.send_all(OK_ANSWER * answers)

    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(
            functools.partial(trio.serve_tcp, handle, args.port, host="127.0.0.1")
        )
        emit("ready", port=listeners[0].socket.getsockname()[1])


MODES = {
    "send": mode_send,
    "push-server": mode_push_server,
    "latency": mode_latency,
    "idle": mode_idle,
    "http-post": mode_http_post,
    "http-ok": mode_http_ok,
}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.loadgen")
    parser.add_argument("mode", choices=sorted(MODES))
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--path", default="/bench")
    parser.add_argument("--results-path", default="/results")
    parser.add_argument("--clients", type=int, default=1)
    parser.add_argument("--count", type=int, default=10_000)
    parser.add_argument("--rate", type=float, default=0.0, help="msgs/s in total; 0 = as fast as possible")
    parser.add_argument("--linger", type=float, default=0.0, help="seconds to keep the sockets open after")
    parser.add_argument("--drain", type=float, default=5.0, help="latency: seconds to wait for the tail")
    parser.add_argument("--hold", type=float, default=60.0, help="idle: seconds to hold the connections")
    parser.add_argument("--batch", type=int, default=1, help="http-post: JSON rows per request body")
    parser.add_argument("--timeout", type=float, default=300.0)
    args = parser.parse_args(argv)

    async def run() -> None:
        with trio.fail_after(args.timeout):
            await MODES[args.mode](args)

    trio.run(run)


if __name__ == "__main__":
    main()
