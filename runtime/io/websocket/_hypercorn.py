"""Every use of hypercorn's and wsproto's internals by the data server, in one place.

The data server runs on hypercorn's public API (``Config``, ``hypercorn.trio.serve``, ASGI messages). Two hot
paths reach further, into what the pinned hypercorn 0.18 hands an ASGI app:

- ``nowait(receive)``: the app's ``receive`` is the bound ``receive`` of a trio memory channel (the
  connection's app queue); its ``receive_nowait`` lets a reader take every frame already queued at once.
- ``frame_writer(send)``: the app's ``send`` is ``WSStream.app_send``; the stream's own wsproto connection can
  encode several frames that then go out as one ``Data`` event (one socket write instead of one per frame).

Both return None when what they find is not what they expect, and callers then use the plain ASGI calls, so a
hypercorn upgrade costs throughput, never correctness. A canary test asserts both are active under the pinned
version. ``probe_bind`` works around hypercorn leaking its half-made socket when a bind fails.
"""

from __future__ import annotations

import socket
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import trio

try:
    from hypercorn.protocol.events import Data
    from hypercorn.protocol.ws_stream import ASGIWebsocketState, WSStream
    from wsproto.events import BytesMessage, TextMessage
    from wsproto.utilities import LocalProtocolError

    FAST_WRITES = True
except ImportError:  # pragma: no cover - only with a hypercorn other than the pinned one
    FAST_WRITES = False

# ASGI, typed loosely (plain mappings): hypercorn's stubs want their TypedDicts.
Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

Frame = tuple[bool, bytes | str]  # (is_text, payload) of one outgoing websocket message
FrameWriter = Callable[[list[Frame]], Awaitable[bool]]


def frame_writer(send: Send) -> FrameWriter | None:
    """A writer of several frames with one socket write, for hypercorn's websocket stream; None elsewhere.

    One ASGI ``send`` per frame costs a lock and a socket write, each a scheduler pass, so a client receiving
    thousands of frames a second falls behind. The writer encodes the frames with the stream's own wsproto
    connection and passes the bytes on as one ``Data`` event, which is what ``app_send`` does for one frame.
    It returns False (nothing sent: use ``send``) unless the stream is connected, so closing and errors keep
    hypercorn's own path.
    """
    if not FAST_WRITES:
        return None
    stream = getattr(send, "__self__", None)
    if not isinstance(stream, WSStream) or not all(
        hasattr(stream, name) for name in ("state", "stream_id", "send", "closed")
    ):
        return None
    connected = ASGIWebsocketState.CONNECTED

    async def write_many(frames: list[Frame]) -> bool:
        if stream.closed:
            return True  # hypercorn's own app_send drops frames for a closed stream too
        connection = getattr(stream, "connection", None)
        if stream.state != connected or connection is None:
            return False
        try:
            data = b"".join(
                [
                    connection.send(
                        TextMessage(data=frame) if isinstance(frame, str) else BytesMessage(data=frame)
                    )
                    for _, frame in frames
                ]
            )
        except LocalProtocolError:
            return True  # the connection is closing: hypercorn drops sends then too
        await stream.send(Data(stream_id=stream.stream_id, data=data))
        return True

    return write_many


def nowait(receive: Receive) -> Callable[[], Message] | None:
    """The non-blocking twin of hypercorn's ASGI ``receive``, where there is one.

    hypercorn's trio worker hands the app ``MemoryReceiveChannel.receive`` (bound method) of the connection's
    app queue; its ``receive_nowait`` raises ``trio.WouldBlock`` when nothing is queued. Anything else: None
    (one frame per delivery).
    """
    channel = getattr(receive, "__self__", None)
    if isinstance(channel, trio.MemoryReceiveChannel):
        take: Callable[[], Message] = channel.receive_nowait
        return take
    return None


def probe_bind(host: str, port: int) -> None:
    """Bind and release ``host:port`` (same SO_REUSEADDR as hypercorn); raises OSError where hypercorn would.

    hypercorn leaks its half-made socket when its bind fails: probing first keeps the common failure, a port in
    use, out of it. A race with another process still ends in hypercorn's own error.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        probe.bind((host, port))
