"""HTTP/1.1 on the data server, on h11: every request that is not a websocket upgrade, one connection at a time.

The data server reads a request head (``read_head``), hands websocket upgrades to the websocket code and every
other connection to ``serve_http``, which answers request after request on the connection (keep-alive and
pipelining as h11 allows) until the client closes, an answer closes it or it stays idle for ``IDLE_TIMEOUT``.

One request: the path must be served by an httppush source (404), with that method (405), passing the path's
origin and token checks (403, 401) before a byte of the body is read; the body must fit the path's size cap
(413, from Content-Length before reading and while reading a chunked body) and arrive within ``BODY_TIMEOUT``
(408); then ``PushEndpoint.take`` decodes it and answers once the rules took the rows (200, or 400/503).
A body claims its room in the data server's inbound byte budget (``runtime/heap.py``) before it is read and holds
it until the rules took its rows, so many clients together cannot make the daemon hold more than ``[source]
maxInboundBytes`` of bodies at once (503 when no room comes within ``BUDGET_WAIT``).
"""

from __future__ import annotations

import logging
from http import HTTPStatus
from typing import Final, final
from urllib.parse import unquote

import h11
import trio

from runtime import heap
from runtime.config.secrets import is_secret_name, redact_query
from runtime.heap import ByteBudget
from runtime.io.httppush.endpoint import PushRoutes
from runtime.model import Row

LOGGER = logging.getLogger("oort.httppush")

READ_SIZE: Final = 65536  # bytes asked of the socket per read
MAX_HEAD: Final = 16 * 1024  # bytes of one request head (h11's default bound; 431 past it)
HEAD_TIMEOUT: Final = 10.0  # seconds for the first request head of a connection (slow-loris bound)
IDLE_TIMEOUT: Final = 60.0  # seconds a kept-alive connection may wait for its next request (eKuiper: 60 s)
BODY_TIMEOUT: Final = 30.0  # seconds from a request head to the end of its body (408 after)
DRAIN_LIMIT: Final = 64 * 1024  # an unread body up to this size is read and dropped to keep the connection
BUDGET_WAIT: Final = 30.0  # seconds a body may wait for room in the inbound budget (503 after)
ANSWER_TIMEOUT: Final = 5.0  # seconds the answer to a taken body may take to write (shielded from a stop)
# Seconds an answer that closes the connection waits for the client to stop sending (see ``_linger``).
LINGER_TIMEOUT: Final = 2.0
TEXT: Final = [(b"content-type", b"text/plain; charset=utf-8")]

Headers = tuple[tuple[bytes, bytes], ...]  # h11's header pairs


def is_upgrade(head: bytes) -> bool:
    """Whether a request head asks for a protocol upgrade (a websocket handshake, good or bad)."""
    return b"\nupgrade:" in head.partition(b"\r\n\r\n")[0].lower()


async def read_head(stream: trio.abc.Stream) -> bytes | None:
    """What the client sent until its first request head is complete (it may hold the start of a body), read
    within ``HEAD_TIMEOUT``; it stops at ``MAX_HEAD`` bytes without a complete head (the parser then answers).
    None when the client left or was too slow."""
    data = b""
    with trio.move_on_after(HEAD_TIMEOUT):
        while b"\r\n\r\n" not in data and len(data) <= MAX_HEAD:
            chunk = bytes(await stream.receive_some(READ_SIZE))
            if not chunk:
                return None
            data += chunk
        return data
    return None


@final
class _Answer(Exception):  # noqa: N818 - not an error: the answer a request gets early
    """An answer decided before the body was taken (404, 405, 401, 403, 408, 413)."""

    def __init__(self, status: int, text: str, *, close: bool = False, headers: Headers = ()) -> None:
        super().__init__(text)
        self.status = status
        self.text = text
        self.close = close
        self.headers = headers


@final
class _Held:
    """The bytes one request holds of the data server's budget: the room claimed for its body, then the body."""

    __slots__ = ("amount", "budget")

    def __init__(self, budget: ByteBudget) -> None:
        self.budget = budget
        self.amount = 0

    async def claim(self, amount: int) -> None:
        """Take ``amount`` bytes, waiting while the budget has no room for them (or, for more than the whole
        budget, until it is empty).

        ``ByteBudget.acquire`` waits only for a caller that already holds something (an idle connection must
        not wait to be charged for what it read); a body claims its room before it holds anything, so it is
        passed as its own holding: the wait condition is then "no room for ``amount``".
        """
        budget = self.budget
        fits = min(amount, budget.total)
        await budget.acquire(fits, holding=fits)
        budget.take(amount - fits)
        self.amount += amount

    def hold(self, amount: int) -> None:
        """Hold exactly ``amount`` bytes, giving back or taking (without waiting) the difference."""
        self.budget.release(self.amount - amount)  # a negative release takes
        self.amount = amount

    def release(self) -> None:
        held, self.amount = self.amount, 0
        self.budget.release(held)
        heap.trim(held)


async def serve_http(
    stream: trio.abc.Stream, initial: bytes, routes: PushRoutes, budget: ByteBudget, peer: str
) -> None:
    """Serve the HTTP/1.1 requests of one connection until it closes; ``initial`` is what ``read_head`` read.

    Raises:
      trio.BrokenResourceError, trio.ClosedResourceError: the client went away (the caller closes the stream).
    """
    conn = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_HEAD)
    end = initial.find(b"\r\n\r\n")
    if not 0 <= end <= MAX_HEAD:  # h11 bounds only a head still incomplete; this one arrived whole
        await _respond(conn, stream, 431, "request head too large", close=True)
        await _linger(stream)
        return
    conn.receive_data(initial)
    timeout = HEAD_TIMEOUT
    while True:
        try:
            event: h11.Event | None = None
            with trio.move_on_after(timeout):
                event = await _next_event(conn, stream)
            if not isinstance(event, h11.Request):
                return  # the client closed, or stayed idle past the timeout
            await _exchange(conn, stream, event, routes, budget, peer)
            if conn.our_state is not h11.DONE or conn.their_state is not h11.DONE:
                return  # the answer closed the connection, or the client asked for that
            conn.start_next_cycle()
            timeout = IDLE_TIMEOUT
        except h11.RemoteProtocolError as exc:
            # A malformed or oversized request head, or a body cut short: answer if there is still room to.
            if conn.our_state in (h11.IDLE, h11.SEND_RESPONSE):
                # h11's reason without the offending bytes it quotes (they may hold a credential).
                reason = str(exc).split(":", 1)[0]
                text = (
                    f"malformed request: {reason}"
                    if exc.error_status_hint != 431
                    else "request head too large"
                )
                await _respond(conn, stream, exc.error_status_hint, text, close=True)
                await _linger(stream)
            return


async def _next_event(conn: h11.Connection, stream: trio.abc.Stream) -> h11.Event | None:
    """The next event of the client's side, reading as needed; None when the client closed the connection."""
    while True:
        event = conn.next_event()
        if event is h11.NEED_DATA:
            conn.receive_data(bytes(await stream.receive_some(READ_SIZE)))
            continue
        if event is h11.PAUSED or isinstance(event, h11.ConnectionClosed):
            return None
        assert isinstance(event, h11.Event)
        return event


async def _exchange(
    conn: h11.Connection,
    stream: trio.abc.Stream,
    request: h11.Request,
    routes: PushRoutes,
    budget: ByteBudget,
    peer: str,
) -> None:
    """Answer one request (the caller goes on with the next one when both sides are done)."""
    target = request.target.decode("latin-1")
    raw_path, _, query = target.partition("?")
    path = unquote(raw_path)  # as the stream's DATASOURCE is written
    method = request.method.decode("latin-1").upper()
    headers: dict[str, str] = {}
    for name, value in request.headers:  # h11 lower-cases the names
        key, text = name.decode("latin-1"), value.decode("latin-1")
        headers[key] = f"{headers[key]}, {text}" if key in headers else text
    # The body's announced size (h11 checked the headers' form): None for a chunked body, 0 without either header.
    length = headers.get("content-length", "")
    declared = int(length) if length.isdigit() else None if "transfer-encoding" in headers else 0
    held = _Held(budget)
    try:
        endpoint = routes.get(path)
        if endpoint is None:
            # Closed: a client on a path nobody serves (a scanner, a typo) has no use for the connection.
            raise _Answer(404, f"no rule serves {path}", close=True)
        if method not in endpoint.methods:
            allow = ", ".join(sorted(endpoint.methods))
            raise _Answer(405, f"{path} takes {allow}", headers=((b"allow", allow.encode()),))
        refusal = endpoint.refusal(headers, query)
        if refusal is not None:
            status, reason = refusal
            raise _Answer(
                status, reason, headers=((b"www-authenticate", b"Bearer"),) if status == 401 else ()
            )
        cap = endpoint.conf.body_cap
        if declared is not None and declared > cap:
            raise _Answer(413, _too_large(cap), close=True)
        body = await _read_body(conn, stream, cap, declared, held)
        meta = _meta(method, path, query, peer, headers)
        status, text = await endpoint.take(method, body, meta)
    except _Answer as answer:
        LOGGER.debug("httppush %s %s from %s: %d %s", method, path, peer, answer.status, answer.text)
        await _refuse(conn, stream, answer, declared)
        return
    finally:
        held.release()  # the rows were taken (or refused): the body's bytes go back to the budget
    LOGGER.debug("httppush %s %s from %s: %d %s", method, path, peer, status, text)
    # Rules took the rows (or refused them): the client must learn which, even when the data server is stopping.
    with trio.CancelScope(shield=True), trio.move_on_after(ANSWER_TIMEOUT):
        await _respond(conn, stream, status, text)


def _too_large(cap: int) -> str:
    return f"request body larger than maxMessageSize ({cap} bytes)"


def _meta(method: str, path: str, query: str, peer: str, headers: dict[str, str]) -> Row:
    """``meta()`` of the request's rows: no secret reaches a rule (secret-named headers and query values)."""
    return {
        "method": method,
        "path": path,
        "query": redact_query(query),
        "remoteAddr": peer,
        "contentType": headers.get("content-type", ""),
        "headers": {name: value for name, value in headers.items() if not is_secret_name(name)},
    }


async def _read_body(
    conn: h11.Connection, stream: trio.abc.Stream, cap: int, declared: int | None, held: _Held
) -> bytes:
    """The request body, read within ``BODY_TIMEOUT`` once the data server's budget has room for it; ``held``
    keeps its bytes (the caller gives them back once the rules took the rows).

    The room is claimed before the first byte is read: the announced size, or the cap for a chunked body. A
    request waiting for room holds nothing, and one being read never waits again, so readers cannot hold parts
    of the budget while waiting for each other (a budget that fills up only stops new bodies being read).

    Raises:
      _Answer: 503 when no room came within ``BUDGET_WAIT``; 413 past ``cap`` (a chunked body has no
        Content-Length to check first); 408 past the timeout.
      h11.RemoteProtocolError: the client closed the connection before the body ended.
    """
    claim = cap if declared is None else declared
    with trio.move_on_after(BUDGET_WAIT):
        await held.claim(claim)
    if held.amount < claim:
        raise _Answer(
            503, "the data server is busy (too many bodies in flight); send again later", close=True
        )
    if conn.they_are_waiting_for_100_continue:
        await stream.send_all(
            conn.send(h11.InformationalResponse(status_code=100, headers=[], reason=b"Continue"))
        )
    parts: list[bytes] = []
    size = 0
    with trio.move_on_after(BODY_TIMEOUT):
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                conn.receive_data(bytes(await stream.receive_some(READ_SIZE)))
            elif isinstance(event, h11.Data):
                size += len(event.data)
                if size > cap:
                    raise _Answer(413, _too_large(cap), close=True)
                parts.append(bytes(event.data))
            elif isinstance(event, h11.EndOfMessage):
                held.hold(size)  # a chunked body gives back what it did not use of the cap
                return b"".join(parts)
    raise _Answer(408, f"request body not received within {BODY_TIMEOUT:g} s", close=True)


async def _refuse(
    conn: h11.Connection, stream: trio.abc.Stream, answer: _Answer, declared: int | None
) -> None:
    """Send an early answer. A small body still coming (``declared`` bytes) is read and dropped so the connection
    stays usable; otherwise the answer closes the connection."""
    close = answer.close
    pending = conn.their_state is h11.SEND_BODY
    if pending and not close:
        # A client waiting for "100 Continue" may never send its body: close rather than wait for it.
        close = conn.they_are_waiting_for_100_continue or declared is None or declared > DRAIN_LIMIT
    await _respond(conn, stream, answer.status, answer.text, close=close, extra=answer.headers)
    if close:
        await _linger(stream)
    elif pending:
        with trio.move_on_after(BODY_TIMEOUT):
            while not isinstance(await _next_event(conn, stream), h11.EndOfMessage | None):
                pass


async def _respond(
    conn: h11.Connection,
    stream: trio.abc.Stream,
    status: int,
    text: str,
    *,
    close: bool = False,
    extra: Headers = (),
) -> None:
    body = text.encode()
    headers = [*TEXT, (b"content-length", str(len(body)).encode()), *extra]
    if close:
        headers.append((b"connection", b"close"))
    try:
        reason = HTTPStatus(status).phrase.encode()
    except ValueError:
        reason = b""
    data = conn.send(h11.Response(status_code=status, headers=headers, reason=reason))
    data += conn.send(h11.Data(data=body)) + conn.send(h11.EndOfMessage())
    await stream.send_all(data)


async def _linger(stream: trio.abc.Stream) -> None:
    """After an answer that closes the connection: stop sending, then read and drop what the client still
    sends for up to ``LINGER_TIMEOUT``, so that closing does not reset the connection (TCP RST) under an answer
    the client has not read yet: a client still uploading a refused body then sees the answer, not a reset."""
    if isinstance(stream, trio.SocketStream):
        try:
            await stream.send_eof()
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            return
    with trio.move_on_after(LINGER_TIMEOUT):
        while await stream.receive_some(READ_SIZE):
            pass
