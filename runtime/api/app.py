"""The REST API's raw ASGI application: requests, responses, the path router and the ASGI entry point.

No web framework: hypercorn calls ``RestApp`` directly. Handlers (``routes.py``) receive a parsed ``Request``
and return a ``Response``, or raise ``HttpError`` for an eKuiper-shaped error body.
"""

from __future__ import annotations

import logging
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, MutableMapping, Sequence
from typing import Any, Final, final
from urllib.parse import parse_qs

import attrs
import orjson
import trio

from runtime import heap
from runtime.api.auth import Guard, is_json_type
from runtime.errors import HttpError as HttpError
from runtime.errors import StorageError

LOGGER = logging.getLogger("oort.api")
# One INFO line per request; runtime/logsetup.py leaves it off unless basic.accessLog is true.
ACCESS = logging.getLogger("oort.access")

# eKuiper sets no limit; we refuse to buffer more than this per request.
MAX_BODY_BYTES: Final = 16 * 1024 * 1024
# Request bodies being received at once, all requests together (runtime/heap.py): past it reading waits.
MAX_BODY_BYTES_IN_FLIGHT: Final = 64 * 1024 * 1024
# The whole body must arrive within this many seconds of the request head (408 after): a client that announces
# a large body and trickles it cannot hold its share of the budget for long.
BODY_TIMEOUT: Final = 30.0
TEXT: Final = "text/plain; charset=utf-8"
JSON: Final = "application/json"

CHUNK_ROOM: Final = 64 * 1024  # budget reserved per body read: hypercorn's socket read size
_BODY_METHODS: Final = frozenset({"POST", "PUT", "PATCH"})
Headers = Sequence[tuple[bytes, bytes]]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


@final
@attrs.frozen
class Request:
    """One HTTP request, body fully read. ``params`` are the router's path parameters."""

    method: str
    path: str
    params: Mapping[str, str]
    query: Mapping[str, list[str]]
    body: bytes

    def arg(self, name: str, default: str = "") -> str:
        """The first value of query parameter ``name``."""
        values = self.query.get(name)
        return values[0] if values else default


@final
@attrs.frozen
class Response:
    status: int
    body: bytes = b""
    content_type: str = TEXT
    # A streamed body (chunked): sent piece by piece until the iterator ends or the client disconnects.
    stream: Callable[[], AsyncIterator[bytes]] | None = None
    headers: tuple[tuple[bytes, bytes], ...] = ()


def text(body: str, status: int = 200) -> Response:
    return Response(status, body.encode("utf-8"), TEXT)


def json_body(value: Any, status: int = 200, *, pretty: bool = False) -> Response:
    """A JSON response; ``pretty`` indents by 2 spaces (eKuiper's ``GET /rules/{id}/status``)."""
    return Response(status, orjson.dumps(value, option=orjson.OPT_INDENT_2 if pretty else 0), JSON)


def error_body(status: int, code: int, message: str) -> Response:
    """eKuiper's error shape: ``{"error": code, "message": "..."}`` plus the newline of Go's ``http.Error``."""
    return Response(status, orjson.dumps({"error": code, "message": message}) + b"\n", JSON)


Handler = Callable[[Request], Awaitable[Response]]

_PARAM = re.compile(r"\{(\w+)(\.\.\.)?\}")


def _compile(pattern: str) -> re.Pattern[str]:
    """``/rules/{id}/status`` -> a regex; ``{name}`` is one path segment, ``{name...}`` the rest (with ``/``)."""
    out, pos = [], 0
    for m in _PARAM.finditer(pattern):
        out.append(re.escape(pattern[pos : m.start()]))
        out.append(f"(?P<{m.group(1)}>.+)" if m.group(2) else f"(?P<{m.group(1)}>[^/]+)")
        pos = m.end()
    out.append(re.escape(pattern[pos:]))
    return re.compile("".join(out))


@final
@attrs.frozen
class _Route:
    method: str
    regex: re.Pattern[str]
    handler: Handler


@final
class Router:
    """Method + path pattern -> handler. Built once at startup; matching is a few regexes per request.

    Routes are indexed by their first path segment (always literal in our table), and within a bucket the
    first registered match wins, so literal routes such as ``/rules/status/all`` go before ``/rules/{id}``.
    """

    def __init__(self) -> None:
        self._buckets: dict[str, list[_Route]] = {}
        self.patterns: list[
            tuple[str, str]
        ] = []  # (method, pattern) in registration order, for /openapi.json

    def add(self, method: str, pattern: str, handler: Handler) -> None:
        first = pattern.split("/", 2)[1]
        if "{" in first:
            raise ValueError(f"the first path segment must be literal: {pattern}")
        self._buckets.setdefault(first, []).append(_Route(method, _compile(pattern), handler))
        self.patterns.append((method, pattern))

    def match(self, method: str, path: str) -> tuple[Handler, dict[str, str]]:
        """The handler and path parameters for a request.

        Raises:
          HttpError: 404 when no pattern matches the path, 405 when patterns match but not for this method.
        """
        first = path.split("/", 2)[1] if path.startswith("/") else path
        allowed: list[str] = []
        for route in self._buckets.get(first, ()):
            found = route.regex.fullmatch(path)
            if found is None:
                continue
            if route.method == method:
                return route.handler, found.groupdict()
            allowed.append(route.method)
        if allowed:
            raise HttpError(
                405, 1000, f"method {method} is not allowed on {path} (allowed: {', '.join(allowed)})"
            )
        raise HttpError(404, 1002, f"no such endpoint: {path}")


@final
class RestApp:
    """The ASGI application: lifespan, the guard (browser defences, credentials), body limits, routing and the
    error/500 safety net.

    Args:
      router: the route table (``routes.build_router``).
      max_body: largest request body accepted, in bytes (413 beyond).
      guard: who may call (``runtime.api.auth``); by default no credentials, browser defences on.
      body_timeout: seconds a request body may take to arrive (408 beyond).
    """

    def __init__(
        self,
        router: Router,
        *,
        max_body: int = MAX_BODY_BYTES,
        guard: Guard | None = None,
        body_timeout: float = BODY_TIMEOUT,
    ) -> None:
        self._router = router
        self._max_body = max_body
        self._guard = guard or Guard()
        self._body_timeout = body_timeout
        self._budget = heap.ByteBudget(MAX_BODY_BYTES_IN_FLIGHT)
        # Requests being served (a stop waits for them, up to hypercorn's graceful timeout).
        self.in_flight = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            held = [0]  # the body's size: its memory goes back to the system once the request is done
            self.in_flight += 1
            try:
                await self._http(scope, receive, send, held)
            finally:
                self.in_flight -= 1
                heap.trim(held[0])
        elif kind == "lifespan":
            await _lifespan(receive, send)
        elif kind == "websocket":
            # Closing before accepting makes hypercorn answer HTTP 403: the REST port has no websockets.
            await receive()
            await send({"type": "websocket.close", "code": 1008})

    async def _http(self, scope: Scope, receive: Receive, send: Send, held: list[int]) -> None:
        method: str = scope["method"]
        path: str = scope["path"]
        headers: dict[bytes, bytes] = {}
        hosts = 0
        for name, value in scope.get("headers", ()):
            hosts += name == b"host"
            headers.setdefault(name, value)
        guard = self._guard
        extra = guard.cors_headers(headers)
        try:
            if hosts > 1:
                raise HttpError(400, 1000, "more than one Host header")
            guard.check_browser(headers, scope.get("scheme", "http"))
            # A CORS preflight whose browser checks passed: preflights carry no credentials.
            if method == "OPTIONS":
                await _respond(send, Response(204), extra)
                return
            guard.check_credentials(path, headers)
            handler, params = self._router.match(method, path)
            body = await self._read_body(headers, receive, held)
            if body is None:
                return  # the client went away before sending its body: nobody to answer
            if body and method in _BODY_METHODS:
                content_type = headers.get(b"content-type", b"").decode("latin-1")
                if not is_json_type(content_type):
                    raise HttpError(
                        415,
                        1001,
                        f"request bodies must be JSON: send Content-Type: application/json "
                        f"(got {content_type or 'none'!r})",
                    )
            query = parse_qs(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True)
            response = await handler(Request(method, path, params, query, body))
        except HttpError as exc:
            response = error_body(exc.status, exc.code, exc.message)
            if exc.status == 401:
                response = attrs.evolve(response, headers=((b"www-authenticate", b"Bearer"),))
        except StorageError as exc:  # the data dir refused a write: the request changed nothing
            LOGGER.error("%s %s: %s", method, path, exc.message)
            response = error_body(500, exc.code, exc.message)
        except Exception as exc:
            # A handler bug must cost one request, never the server.
            LOGGER.exception("%s %s failed", method, path)
            response = error_body(500, 1000, f"internal error: {type(exc).__name__}: {exc}")
        if response.stream is not None:
            await _stream(receive, send, response, extra)
        else:
            await _respond(send, response, extra)
        if ACCESS.isEnabledFor(logging.INFO):
            client = scope.get("client") or ("-", 0)
            ACCESS.info(
                '%s:%s "%s %s" %d %d', client[0], client[1], method, path, response.status, len(response.body)
            )

    async def _read_body(
        self, headers: Mapping[bytes, bytes], receive: Receive, held: list[int]
    ) -> bytes | None:
        """The request body (None: the client left), read within the body timeout and the shared budget.

        Raises:
          HttpError: 413 past ``max_body``, 408 when it takes longer than the body timeout.
        """
        length = headers.get(b"content-length", b"")
        if length.isdigit() and int(length) > self._max_body:
            raise HttpError(413, 1001, f"request body larger than {self._max_body} bytes")
        parts: list[bytes] = []  # the chunks as hypercorn handed them: no copy until the body is complete
        size = 0
        budget = self._budget
        reserved = 0
        try:
            with trio.move_on_after(self._body_timeout):
                while True:
                    if reserved:
                        # Room for the body so far and one more chunk (hypercorn hands over at most 64 KiB);
                        # a request holding nothing reserves nothing while it waits for its first chunk.
                        await budget.acquire(CHUNK_ROOM, holding=reserved)
                        reserved += CHUNK_ROOM
                    message = await receive()
                    if message["type"] == "http.disconnect":
                        return None
                    chunk = message.get("body", b"")
                    if chunk:
                        parts.append(chunk)
                        size += len(chunk)
                    held[0] = size
                    if size > self._max_body:  # chunked uploads carry no content-length
                        raise HttpError(413, 1001, f"request body larger than {self._max_body} bytes")
                    budget.release(reserved - size)
                    reserved = size
                    if not message.get("more_body", False):
                        return b"".join(parts)
            raise HttpError(408, 1001, f"request body not received within {self._body_timeout:g} s")
        finally:
            budget.release(reserved)


async def _respond(send: Send, response: Response, extra: Headers = ()) -> None:
    headers = [
        (b"content-type", response.content_type.encode("latin-1")),
        (b"content-length", str(len(response.body)).encode("latin-1")),
        *response.headers,
        *extra,
    ]
    await send({"type": "http.response.start", "status": response.status, "headers": headers})
    await send({"type": "http.response.body", "body": response.body, "more_body": False})


async def _stream(receive: Receive, send: Send, response: Response, extra: Headers) -> None:
    """Send a chunked body; a client disconnect cancels the producer (so it can release what it holds)."""
    assert response.stream is not None
    headers = [(b"content-type", response.content_type.encode("latin-1")), *response.headers, *extra]
    await send({"type": "http.response.start", "status": response.status, "headers": headers})
    async with trio.open_nursery() as nursery:

        async def watch_disconnect() -> None:
            while (await receive())["type"] != "http.disconnect":
                pass
            nursery.cancel_scope.cancel()

        nursery.start_soon(watch_disconnect)
        async for chunk in response.stream():
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})
        nursery.cancel_scope.cancel()


async def _lifespan(receive: Receive, send: Send) -> None:
    # Must answer both phases and keep running until shutdown: an app that simply returns makes hypercorn's
    # trio serve crash at startup with a nested ClosedResourceError (hypercorn's ASGI lifespan contract).
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return
