"""eKuiper's ``httppull`` source: poll a URL at a fixed interval and decode each response with the stream's FORMAT.

A poll that gets no answer (refused, timed out, TLS) or a refusal (a status outside 2xx, or a body whose
``code`` is not 2xx with ``responseType = "body"``) is reported in the rule's connection metrics and logged
once per state change; polling goes on at the interval and never fails the rule. A response that cannot be
decoded becomes one error item (counted by the rule), and the next poll goes on.
"""

from __future__ import annotations

import hashlib
import math
from typing import final

import httpx
import trio

from runtime.errors import ConfigProblem, DecodeError, EncodeError, PlanError
from runtime.formats.decode import Decoder
from runtime.formats.gotemplate import PropertyTemplate, TemplateSyntaxError
from runtime.io.contract import SourceSpec
from runtime.io.http.client import (
    body_code_problem,
    failure_reason,
    open_client,
    request_headers,
    status_text,
)
from runtime.io.http.conf import PullConf, check_url
from runtime.io.http.oauth import TokenKeeper
from runtime.model import Batch, ErrorItem, Event, Outbox

CONNECTING, CONNECTED, DISCONNECTED = 0, 1, -1  # ConnectionMetrics.status values
FIRST_POLL_WAIT = 5.0  # seconds the start waits for the first poll (a table is loaded before its rules run)


@final
class HttpPullSource:
    """Source type ``httppull``: ``conf.request.url`` (the conf group's ``url`` + DATASOURCE) polled every
    ``interval``, first at once.

    Each successful response becomes one batch: its decoded rows as events (no metadata, as in eKuiper), or one
    ``ErrorItem`` for a body the FORMAT cannot decode. An empty body (``204 No Content``) brings no rows. With
    ``incremental``, a body equal to the last one delivered is skipped.

    With ``states``, ``url`` is a Go template rendered with them before every poll, and each delivered row's
    fields of the same names replace them (eKuiper's state update; they are not persisted across restarts).

    Raises (when built):
      PlanError: a ``url`` template that does not parse.
    """

    def __init__(self, spec: SourceSpec, conf: PullConf, decoder: Decoder) -> None:
        self._spec = spec
        self._conf = conf
        self._decoder = decoder
        self._ctx = spec.ctx
        self._url = conf.request.redacted
        self._headers = request_headers(conf.request)
        self._content = conf.body.encode() if conf.request.body_type != "none" else None
        oauth = conf.request.oauth
        self._tokens = (
            None
            if oauth is None
            else TokenKeeper(
                oauth,
                conf.request.headers,
                conf.body,
                timeout=conf.request.timeout,
                label=f"httppull {self._url}",
                logger=spec.ctx.logger,
            )
        )
        self._last_digest: bytes | None = None
        self._polls = 0
        self._states = dict(conf.states)
        try:
            template = PropertyTemplate(conf.request.url, name="url")
        except TemplateSyntaxError as exc:
            raise PlanError(f"stream {spec.stream}: httppull url: {exc.message}") from None
        self._url_template = template if template.is_template and self._states else None

    @property
    def polls(self) -> int:
        """Polls made so far (answered or not)."""
        return self._polls

    async def run(
        self, send: Outbox, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Poll until cancelled; the caller owns and closes ``send``.

        ``task_status.started()`` is called once the first poll is done (its rows delivered), or after
        ``FIRST_POLL_WAIT`` seconds if it takes longer, so a table fed by this source starts with the rows.

        Returns: This function never returns unless cancelled (``interval = 0`` polls once and then idles, as
        eKuiper's pull source does).

        Raises:
          SourceError: the TLS files of the conf group cannot be loaded, or (``oAuth``) no access token could be
            got; both before anything is polled.

        Error handling: see the module docstring; nothing a server does ends the loop.

        Cancellation: a request in flight is abandoned and the client's connections are closed.
        """
        client = open_client(self._conf.request.tls, "httppull")
        connection = self._ctx.connection
        connection.status = CONNECTING
        try:
            async with client:
                if self._tokens is not None:
                    await self._tokens.authorize(client)  # as eKuiper's Connect: no token, no start
                await self._serve(client, send, task_status)
        finally:
            connection.status = CONNECTING

    async def _serve(
        self, client: httpx.AsyncClient, send: Outbox, task_status: trio.TaskStatus[None]
    ) -> None:
        async with trio.open_nursery() as nursery:
            first_done = trio.Event()
            nursery.start_soon(self._poll_loop, client, send, first_done)
            with trio.move_on_after(FIRST_POLL_WAIT):
                await first_done.wait()
            task_status.started()

    async def _poll_loop(self, client: httpx.AsyncClient, send: Outbox, first_done: trio.Event) -> None:
        interval = self._conf.interval
        due = trio.current_time()
        while True:
            await self.poll(client, send)
            first_done.set()
            if interval <= 0:
                await trio.sleep_forever()
            # A fixed rate like Go's ticker: polls slower than the interval skip the ticks they missed.
            due += interval
            now = trio.current_time()
            if due <= now:
                due += interval * math.ceil((now - due) / interval + 1e-9)
            await trio.sleep_until(due)

    async def poll(self, client: httpx.AsyncClient, send: Outbox) -> None:
        """One poll: request, check, decode, deliver (waiting while the rule's buffer is full)."""
        self._polls += 1
        self._ctx.connection.last_try_time = self._ctx.clock.now_ms()
        url = self._conf.request.url
        if self._url_template is not None:
            try:
                url = check_url(self._url_template.render(self._states))
            except (EncodeError, ConfigProblem) as exc:
                self._failed(f"the url template failed: {exc}")
                return
        body, problem = await self._request(client, url)
        if self._tokens is not None:
            await self._tokens.renew_if_due(client)
        if problem:
            self._failed(problem)
            return
        self._answered()
        if not body:
            return
        digest = hashlib.blake2b(body, digest_size=16).digest() if self._conf.incremental else None
        if digest is not None and digest == self._last_digest:
            return  # incremental: unchanged since the last delivered body
        batch = self._decode(body)
        if digest is not None and not isinstance(batch[-1], ErrorItem):
            self._last_digest = digest
        if self._states:
            for item in batch:
                if isinstance(item, Event):
                    self._states.update((k, v) for k, v in item.data.items() if k in self._states)
        await send.send(batch)

    async def _request(self, client: httpx.AsyncClient, url: str) -> tuple[bytes, str]:
        """The accepted answer's body, or what is wrong ("" when nothing is)."""
        request = self._conf.request
        headers, content = self._headers, self._content
        if self._tokens is not None:
            headers = request_headers(request, self._tokens.headers)
            content = self._tokens.body.encode() if content is not None else None
        with trio.move_on_after(request.timeout if request.timeout > 0 else math.inf):
            try:
                response = await client.request(request.method, url, headers=headers, content=content)
            except httpx.DecodingError as exc:
                return b"", f"cannot decode the response's Content-Encoding: {exc}"
            except (httpx.TransportError, httpx.TooManyRedirects) as exc:
                return b"", failure_reason(exc)
            if not response.is_success:
                return b"", f"response code error: {status_text(response)}"
            body = response.content
            if request.response_type == "body" and body:
                return body, body_code_problem(body) or ""
            return body, ""
        return b"", f"timed out after {request.timeout:g}s"

    def _decode(self, body: bytes) -> Batch:
        ts = self._ctx.clock.now_ms()
        try:
            return [Event(row, ts) for row in self._decoder(body)]
        except DecodeError as exc:
            return [ErrorItem(f"httppull {self._url}: {exc}")]
        except Exception as exc:  # a faulty decoder must not stop the polling
            return [ErrorItem(f"httppull {self._url}: decoder failed: {type(exc).__name__}: {exc}")]

    def _answered(self) -> None:
        connection = self._ctx.connection
        if connection.status != CONNECTED:
            if connection.status == DISCONNECTED:
                self._ctx.logger.info("httppull %s: polls succeed again", self._url)
            connection.status = CONNECTED
            connection.last_connected_time = connection.last_try_time

    def _failed(self, reason: str) -> None:
        connection = self._ctx.connection
        connection.last_disconnected_message = reason
        if connection.status == DISCONNECTED:
            return  # still failing: not a state change, not logged again
        connection.status = DISCONNECTED
        connection.last_disconnected_time = connection.last_try_time
        again = (
            f"polling again every {self._conf.interval:g}s" if self._conf.interval > 0 else "interval is 0"
        )
        self._ctx.logger.warning(
            "httppull %s %s failed: %s; %s", self._conf.request.method, self._url, reason, again
        )

    def __repr__(self) -> str:
        return f"<HttpPullSource stream={self._spec.stream} {self._conf.request.method} {self._url}>"
