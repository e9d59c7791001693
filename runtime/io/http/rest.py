"""eKuiper's ``rest`` action: every sink message is one HTTP request to ``url``, its body encoded with ``format``.

Failures are sorted the way the rule runtime acts on them: ``SinkUnavailable`` when the target could not take
the message now (no connection, DNS, TLS, timeout, or status 408, 429 or 5xx: resending later may work, so it
is cached when ``enableCache`` is on) and a plain ``SinkError`` when it refused this message (any other status
outside 2xx, a body ``code`` outside 2xx with ``responseType = "body"``): resending would fail the same way.
Messages name the method, the URL without secrets and the status; header values are never shown.

``url`` and header values may be Go templates (``http://h/{{.device}}``), rendered per message against its row
(or list of rows) as eKuiper's dynamic properties are. A ``dataTemplate`` output (a ``str`` message) is sent as
it is; templated properties are then rendered against that output read as JSON, since the rows it was made
from do not reach the sink.
"""

from __future__ import annotations

import decimal
import gzip
import math
import zlib
from collections.abc import Callable
from typing import Any, final
from urllib.parse import urlencode

import httpx
import orjson
import trio

from runtime.config.secrets import redact_url
from runtime.errors import ConfigProblem, EncodeError, PlanError, SinkError, SinkUnavailable, SourceError
from runtime.formats import Encoder, encoder
from runtime.formats.gotemplate import PropertyTemplate, TemplateSyntaxError
from runtime.io.contract import SinkSpec
from runtime.io.http.client import (
    body_code_problem,
    failure_reason,
    open_client,
    request_headers,
    status_text,
)
from runtime.io.http.conf import RestConf, check_url
from runtime.io.http.oauth import TokenKeeper
from runtime.io.sinktemplate import message_text
from runtime.model import Row

CONNECTING, CONNECTED, DISCONNECTED = 0, 1, -1  # ConnectionMetrics.status values
CLOSE_TIMEOUT = 1.0  # seconds granted to closing the client's connections when the sink closes
# Statuses that say "not now" rather than "not this": request timeout, rate limited, and every server error.
RETRIABLE_STATUS = frozenset({408, 429})
DEBUG_BODY_LIMIT = 2000  # characters of a response body a SinkError quotes when debugResp is on

# Content-Encoding per compression (eKuiper sets it for gzip only: zlib data is HTTP's "deflate", and raw
# deflate ("flate") has no HTTP coding, so it goes without one as in eKuiper).
_COMPRESS: dict[str, tuple[Callable[[bytes], bytes], str | None]] = {
    "gzip": (gzip.compress, "gzip"),
    "zlib": (zlib.compress, "deflate"),
    "flate": (lambda data: zlib.compress(data, wbits=-15), None),
}


def _form_value(value: Any) -> str:
    # eKuiper's cast.ToString: plain text for scalars, JSON for structures.
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            return str(value)
        # Go's FormatFloat(f, 'f', -1): the shortest digits, never an exponent.
        return format(decimal.Decimal(repr(value)), "f")
    if value is None:
        return ""
    return orjson.dumps(value).decode()


def encode_form(data: Any) -> bytes:
    """eKuiper's ``urlencoded`` format: a row as ``application/x-www-form-urlencoded`` (keys sorted, a list value
    repeats its key).

    Raises:
      EncodeError: the message is not one row (a list of rows needs ``sendSingle``).
    """
    if not isinstance(data, dict):
        raise EncodeError(
            f"format urlencoded encodes one row, got {type(data).__name__}; set sendSingle to send rows one by one"
        )
    pairs: list[tuple[str, str]] = []
    for key in sorted(data):
        value = data[key]
        if isinstance(value, list):
            pairs.extend((key, _form_value(item)) for item in value)
        else:
            pairs.append((key, _form_value(value)))
    return urlencode(pairs).encode()


@final
class RestSink:
    """Action ``rest``: one request per message (a row with ``sendSingle``, else the list of rows).

    The body is the message encoded with ``format`` (json by default; ``urlencoded`` for ``bodyType = "form"``),
    sent with the body type's Content-Type unless ``headers`` set one; ``bodyType = "none"`` sends no body and
    ``formdata`` sends it as the multipart file field ``fileFieldName`` next to the ``formData`` fields.

    Raises (when built):
      PlanError: unknown format, or a ``url`` or header template that does not parse.
    """

    def __init__(self, spec: SinkSpec, conf: RestConf) -> None:
        self._spec = spec
        self._conf = conf
        self._ctx = spec.ctx
        request = conf.request
        self._where = f"rest sink (action {spec.index})"
        self._url = request.redacted
        self._encode: Encoder = (
            encode_form
            if conf.format == "urlencoded"
            else encoder(conf.format, delimiter=conf.delimiter, has_header=conf.has_header)
        )
        self._headers = request_headers(request)
        try:
            self._url_template = PropertyTemplate(request.url, name="url")
            self._header_templates = {
                name: template
                for name, value in self._headers.items()
                if (template := PropertyTemplate(value, name=name)).is_template
            }
        except TemplateSyntaxError as exc:
            raise PlanError(f"{self._where}: {exc.message}") from None
        compress = _COMPRESS.get(conf.compression)
        self._compress = compress[0] if compress is not None else None
        if compress is not None and compress[1] is not None:
            self._headers["Content-Encoding"] = compress[1]
        self._tokens: TokenKeeper | None = None
        if request.oauth is not None:
            # With oAuth, header templates take the token answer's fields (eKuiper), not the message's.
            self._header_templates = {}
            self._tokens = TokenKeeper(
                request.oauth,
                self._headers,
                "",
                timeout=request.timeout,
                label=self._where,
                logger=spec.ctx.logger,
            )
        self._client: httpx.AsyncClient | None = None
        self._timeout = request.timeout if request.timeout > 0 else math.inf

    @property
    def conf(self) -> RestConf:
        return self._conf

    async def open(self) -> None:
        """Make the client (kept for every write, so its connections are reused). Nothing is dialled yet.

        Raises:
          SinkError: the TLS files cannot be loaded (the message names the file), or (``oAuth``) no access token
            could be got.
        """
        try:
            self._client = open_client(self._conf.request.tls, "rest sink")
            if self._tokens is not None:
                await self._tokens.authorize(self._client)  # as eKuiper's Connect: no token, no start
        except SourceError as exc:
            await self.aclose()
            raise SinkError(f"{self._where}: {exc.message}") from exc
        connection = self._ctx.connection
        # eKuiper reports a rest sink connected once it is set up: there is no standing connection to watch.
        connection.status = CONNECTED
        connection.last_connected_time = self._ctx.clock.now_ms()

    async def write(self, data: Row | list[Row] | str) -> None:
        """Send one message as one request and check the answer.

        Raises:
          EncodeError: the message has no form in the format (a list with ``urlencoded``, a row without
            ``self`` with ``binary``); only this message is lost.
          SinkUnavailable: no answer (refused, DNS, TLS, timed out) or status 408, 429 or 5xx.
          SinkError: any other status outside 2xx, a failed ``responseType = "body"`` check, a templated url
            that renders to no http(s) URL, or not open.
        """
        client = self._client
        if client is None:
            raise SinkError(f"{self._where}: {self._url} is not open")
        request, shown = self._build(client, data)
        conf = self._conf.request
        self._ctx.connection.last_try_time = self._ctx.clock.now_ms()
        response: httpx.Response | None = None
        body = b""
        with trio.move_on_after(self._timeout):
            try:
                response = await client.send(request, stream=True)
                try:
                    body = await response.aread()
                finally:
                    await response.aclose()
            except httpx.DecodingError:
                pass  # a response body we cannot decode does not undo the delivery; the status says
            except (httpx.TransportError, httpx.TooManyRedirects) as exc:
                reason = failure_reason(exc)
                if isinstance(exc, httpx.UnsupportedProtocol | httpx.LocalProtocolError):
                    raise SinkError(f"{self._where}: {conf.method} {shown}: {reason}") from None
                self._unreachable(shown, reason)
                raise SinkUnavailable(f"{self._where}: {conf.method} {shown}: {reason}") from None
        if response is None:
            reason = f"timed out after {conf.timeout:g}s"
            self._unreachable(shown, reason)
            raise SinkUnavailable(f"{self._where}: {conf.method} {shown}: {reason}")
        if self._tokens is not None:
            await self._tokens.renew_if_due(client)
        self._answered(shown)
        self._check(response, body, shown)

    def _build(self, client: httpx.AsyncClient, data: Row | list[Row] | str) -> tuple[httpx.Request, str]:
        """The request for one message, and its URL as messages show it."""
        conf = self._conf
        text = message_text(data) if isinstance(data, str) else None  # a failed dataTemplate stops here
        method, url = conf.request.method, conf.request.url
        headers = self._tokens.headers if self._tokens is not None else self._headers
        shown = self._url
        if self._url_template.is_template or self._header_templates:
            url, headers = self._render(data)
            shown = redact_url(url)
        body_type = conf.request.body_type
        if body_type == "none":
            return client.build_request(method, url, headers=headers), shown
        payload = text.encode() if text is not None else self._encode(data)
        if body_type == "formdata":
            # The file's name is the send time in ms, as eKuiper names it.
            name = str(self._ctx.clock.now_ms())
            files = {conf.file_field_name: (name, payload, "application/octet-stream")}
            return client.build_request(method, url, headers=headers, files=files, data=conf.form_data), shown
        if self._compress is not None:
            payload = self._compress(payload)
        return client.build_request(method, url, headers=headers, content=payload), shown

    def _render(self, data: Row | list[Row] | str) -> tuple[str, dict[str, str]]:
        """The url and headers of one message, its templates rendered (eKuiper's dynamic properties)."""
        value: Any = data
        if isinstance(data, str):
            text = message_text(data)
            try:
                value = orjson.loads(text)
            except orjson.JSONDecodeError:
                raise EncodeError(
                    f"{self._where}: the url or a header is a template, and the dataTemplate output it is "
                    f"rendered against is not JSON: {text[:200]!r}"
                ) from None
        url = self._url_template.render(value)
        try:
            check_url(url)
        except ConfigProblem as exc:
            raise SinkError(f"{self._where}: the url template rendered {exc}") from None
        headers = dict(self._tokens.headers if self._tokens is not None else self._headers)
        for name, template in self._header_templates.items():
            rendered = template.render(value)
            if "\n" in rendered or "\r" in rendered:
                raise SinkError(f"{self._where}: the template of header {name!r} rendered a line break")
            headers[name] = rendered
        return url, headers

    def _check(self, response: httpx.Response, body: bytes, shown: str) -> None:
        conf = self._conf
        method = conf.request.method
        if conf.debug_resp:
            self._ctx.logger.debug(
                "%s: %s %s answered %s: %s",
                self._where,
                method,
                shown,
                status_text(response),
                body.decode("utf-8", "replace"),
            )
        status = response.status_code
        if 200 <= status <= 299:
            if conf.request.response_type == "body":
                problem = body_code_problem(body)
                if problem is not None:
                    raise SinkError(f"{self._where}: {method} {shown}: {problem}{self._quote(body)}")
            return
        message = f"{self._where}: {method} {shown} answered {status_text(response)}{self._quote(body)}"
        if status in RETRIABLE_STATUS or 500 <= status <= 599:
            raise SinkUnavailable(message)
        raise SinkError(message)

    def _quote(self, body: bytes) -> str:
        # Response bodies may echo what was sent (headers included): quoted only when debugResp asks for them.
        if not self._conf.debug_resp or not body:
            return ""
        return f"; response body: {body[:DEBUG_BODY_LIMIT].decode('utf-8', 'replace')}"

    def _answered(self, shown: str) -> None:
        connection = self._ctx.connection
        if connection.status == DISCONNECTED:
            self._ctx.logger.info("%s: %s answers again", self._where, shown)
        if connection.status != CONNECTED:
            connection.status = CONNECTED
            connection.last_connected_time = connection.last_try_time

    def _unreachable(self, shown: str, reason: str) -> None:
        connection = self._ctx.connection
        connection.last_disconnected_message = reason
        if connection.status == DISCONNECTED:
            return  # still unreachable: not a state change, not logged again
        connection.status = DISCONNECTED
        connection.last_disconnected_time = connection.last_try_time
        self._ctx.logger.warning(
            "%s: %s %s failed: %s", self._where, self._conf.request.method, shown, reason
        )

    async def aclose(self) -> None:
        """Close the client and its connections. Idempotent."""
        client, self._client = self._client, None
        self._ctx.connection.status = CONNECTING
        if client is not None:
            with trio.CancelScope(shield=True), trio.move_on_after(CLOSE_TIMEOUT):
                await client.aclose()

    def __repr__(self) -> str:
        return f"<RestSink {self._conf.request.method} {self._url}>"
