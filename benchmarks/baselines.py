"""Baseline servers and clients, each run as a separate process: ``python -m benchmarks.baselines MODE``.

Modes:
  hypercorn-sink  the ceiling of Oort's own server stack: a bare hypercorn (trio worker) ASGI app that receives
                  websocket frames and ``json.loads`` each one. ``GET /`` answers ``{"count", "t_done"}``,
                  ``t_done`` being the wall time the --count-th message was decoded.
  hypercorn-post  the ceiling of an HTTP push endpoint on the same stack: a bare hypercorn (trio worker) ASGI app
                  that reads each POST body, ``json.loads`` it and answers ``200 ok`` (with a Content-Length).
                  ``GET /`` answers ``{"count"}``, the bodies decoded so far.
  tws-client      the ceiling of Oort's client stack: trio-websocket dials --url, receives --count messages and
                  ``json.loads`` each one, then prints ``{"event": "done", "t": ...}``.
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

import trio


async def hypercorn_sink(args: argparse.Namespace) -> None:
    from hypercorn.config import Config
    from hypercorn.trio import serve

    state: dict[str, Any] = {"count": 0, "t_done": 0.0}
    target = args.count

    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                msg = await receive()
                if msg["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                else:
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["type"] == "http":
            body = json.dumps(state).encode()
            await send(
                {
                    "type": "http.response.start",
                    "status": 200,
                    "headers": [(b"content-type", b"application/json")],
                }
            )
            await send({"type": "http.response.body", "body": body})
            return
        await receive()  # websocket.connect
        await send({"type": "websocket.accept"})
        loads = json.loads
        while True:
            msg = await receive()
            if msg["type"] == "websocket.disconnect":
                return
            payload = msg.get("bytes") or msg.get("text")
            loads(payload)
            state["count"] += 1
            if state["count"] % target == 0:
                state["t_done"] = time.time()

    config = Config()
    config.bind = [f"127.0.0.1:{args.port}"]
    config.accesslog = None
    config.websocket_ping_interval = None
    config.loglevel = "WARNING"
    await serve(app, config, mode="asgi")


async def hypercorn_post(args: argparse.Namespace) -> None:
    from hypercorn.config import Config
    from hypercorn.trio import serve

    state = {"count": 0}
    loads = json.loads
    ok_headers = [(b"content-type", b"text/plain; charset=utf-8"), (b"content-length", b"2")]

    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                msg = await receive()
                if msg["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                else:
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["type"] != "http":
            return
        if scope["method"] == "GET":
            body = json.dumps(state).encode()
            headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
            await send({"type": "http.response.start", "status": 200, "headers": headers})
            await send({"type": "http.response.body", "body": body})
            return
        msg = await receive()
        data = msg.get("body", b"")
        if msg.get("more_body"):
            parts = [data]
            while msg.get("more_body"):
                msg = await receive()
                parts.append(msg.get("body", b""))
            data = b"".join(parts)
        loads(data)
        state["count"] += 1
        await send({"type": "http.response.start", "status": 200, "headers": ok_headers})
        await send({"type": "http.response.body", "body": b"ok"})

    config = Config()
    config.bind = [f"127.0.0.1:{args.port}"]
    config.accesslog = None
    # hypercorn closes a keep-alive connection after 1,000 requests by default; Oort's data server does not.
    config.keep_alive_max_requests = 1 << 30
    config.loglevel = "WARNING"
    await serve(app, config, mode="asgi")


async def tws_client(args: argparse.Namespace) -> None:
    from trio_websocket import open_websocket_url

    loads = json.loads
    async with open_websocket_url(args.url, message_queue_size=1024) as ws:
        for _ in range(args.count):
            loads(await ws.get_message())
        print(json.dumps({"event": "done", "t": time.time()}), flush=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.baselines")
    parser.add_argument("mode", choices=["hypercorn-sink", "hypercorn-post", "tws-client"])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--url", default="")
    parser.add_argument("--count", type=int, default=10_000)
    parser.add_argument("--timeout", type=float, default=300.0)
    args = parser.parse_args(argv)
    fn = {"hypercorn-sink": hypercorn_sink, "hypercorn-post": hypercorn_post, "tws-client": tws_client}[
        args.mode
    ]

    async def run() -> None:
        with trio.fail_after(args.timeout):
            await fn(args)

    trio.run(run)


if __name__ == "__main__":
    main()
