"""The HTTP client both connectors share: an ``httpx.AsyncClient`` per source or sink instance, its TLS context,
the request a body type builds, and one-line reasons for failed requests.

httpx runs on Trio through httpcore's Trio network backend (picked by sniffio), so timeouts and cancellation are
Trio's own: a request is bounded by ``trio.move_on_after`` with the configured timeout, and cancelling a rule
cancels its request in flight (httpcore then drops that connection instead of reusing it).

One client per instance, kept open from ``open``/source start to ``aclose``/stop: it keeps its connections alive
between requests (one TCP connection for a steady stream of writes), as eKuiper keeps one ``http.Client`` per
source and sink. A client is not shared between rules, so one rule's slow target never holds the connection
pool of another.
"""

from __future__ import annotations

import logging
import os
import ssl
from collections.abc import Mapping
from typing import Any

import httpx
import orjson

from runtime.errors import leaves
from runtime.io.confcheck import client_ssl_context
from runtime.io.http.conf import CONTENT_TYPES, RequestConf, TlsSettings

# Go's http.DefaultTransport keeps idle connections 90 s; httpcore checks a pooled connection is still open
# before it reuses one, so a server that closed it earlier costs a new connection, not a failed request.
KEEPALIVE_EXPIRY = 90.0
MAX_REDIRECTS = 10  # Go's http.Client follows up to 10 redirects, so does eKuiper

_TLS_VERSIONS = {
    "tls1.0": ssl.TLSVersion.TLSv1,
    "tls1.1": ssl.TLSVersion.TLSv1_1,
    "tls1.2": ssl.TLSVersion.TLSv1_2,
    "tls1.3": ssl.TLSVersion.TLSv1_3,
}


def ssl_context(tls: TlsSettings, label: str) -> ssl.SSLContext:
    """The SSL context for https URLs: system CAs unless ``rootCaPath``, client certificate for mutual TLS.

    Built even for an http URL: a redirect (or a sink URL template) may lead to https, and a bad file should fail
    the rule at start rather than on the first https request.

    Raises:
      SourceError: a file cannot be read or parsed; the message names it (``label`` names the connector).
    """
    ctx = client_ssl_context(
        root_ca=tls.root_ca_path,
        cert=tls.certification_path,
        key=tls.private_key_path,
        insecure=tls.insecure_skip_verify,
        label=label,
    )
    ctx.minimum_version = _TLS_VERSIONS[tls.tls_min_version]
    if tls.renegotiation == "never":
        # Go refuses server-initiated renegotiation by default; OpenSSL would accept it (TLS 1.2 and older).
        ctx.options |= ssl.OP_NO_RENEGOTIATION
    return ctx


def open_client(tls: TlsSettings, label: str) -> httpx.AsyncClient:
    """A new client for one source or sink; the caller closes it (``async with`` or ``aclose``).

    Timeouts are left to the caller's Trio scope (the whole request, as Go's ``http.Client.Timeout``), redirects
    are followed like Go's client does, and HTTP(S)_PROXY/NO_PROXY are honoured as Go's default transport does.

    Raises:
      SourceError: the TLS files cannot be loaded.
    """
    _quiet_library_loggers()
    return httpx.AsyncClient(
        verify=ssl_context(tls, label),
        timeout=None,
        follow_redirects=True,
        max_redirects=MAX_REDIRECTS,
        limits=httpx.Limits(keepalive_expiry=KEEPALIVE_EXPIRY),
    )


def _quiet_library_loggers() -> None:
    # httpx logs every request at INFO with its full URL, query string (tokens) included, and httpcore traces
    # connections at DEBUG: keep both to warnings unless the operator chose their levels.
    for name in ("httpx", "httpcore"):
        library = logging.getLogger(name)
        if library.level == logging.NOTSET:
            library.setLevel(logging.WARNING)


def request_headers(conf: RequestConf, headers: Mapping[str, str] | None = None) -> dict[str, str]:
    """The request's headers: the body type's Content-Type unless the configured headers set one."""
    given = conf.headers if headers is None else headers
    out: dict[str, str] = {}
    content_type = CONTENT_TYPES.get(conf.body_type)
    if content_type and not any(name.lower() == "content-type" for name in given):
        out["Content-Type"] = content_type
    out.update(given)
    return out


def failure_reason(exc: BaseException) -> str:
    """A one-line reason for a request that got no response, fit for logs and connection metrics.

    Never contains the URL's query string or the headers: httpx's messages name neither, and the address shown
    by Trio's "all attempts to connect to host:port failed" is only host and port.
    """
    if isinstance(exc, httpx.TimeoutException):
        phase = {
            httpx.ConnectTimeout: "connecting",
            httpx.ReadTimeout: "waiting for the response",
            httpx.WriteTimeout: "sending the request",
            httpx.PoolTimeout: "waiting for a free connection",
        }.get(type(exc), "")
        return f"timed out {phase}".strip()
    cause: BaseException | None = exc
    seen: set[int] = set()
    while cause is not None and id(cause) not in seen:  # httpx wraps httpcore, which wraps the socket error
        seen.add(id(cause))
        if isinstance(cause, ssl.SSLError):
            return f"TLS handshake failed: {cause.reason or cause}" + _verify_detail(cause)
        if isinstance(cause, OSError) and isinstance(cause.__cause__, BaseExceptionGroup):
            # trio.open_tcp_stream: one error per address tried; each one's errno says what is new.
            details = "; ".join(
                os.strerror(leaf.errno) if isinstance(leaf, OSError) and leaf.errno else str(leaf)
                for leaf in leaves(cause.__cause__)
            )
            return f"{cause}: {details}" if details else str(cause)
        if isinstance(cause, OSError) and str(cause):
            return str(cause)
        cause = cause.__cause__ or cause.__context__
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _verify_detail(exc: ssl.SSLError) -> str:
    message = getattr(exc, "verify_message", None)
    return f" ({message})" if isinstance(message, str) and message else ""


def body_code_problem(body: bytes) -> str | None:
    """eKuiper's ``responseType = "body"`` check: the JSON body (an object, or an array of them) must carry a
    ``code`` between 200 and 299 in each object. Returns what is wrong, or None."""
    try:
        doc: Any = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        return f"response body is not JSON: {exc}"
    items = doc if isinstance(doc, list) else [doc]
    for item in items:
        if not isinstance(item, dict):
            return "response body must be a JSON object or an array of objects"
        code = item.get("code", 0)
        if isinstance(code, bool) or not isinstance(code, int | float) or not 200 <= code <= 299:
            return f"response code error: {code!r} (the body's code field)"
    return None


def status_text(response: httpx.Response) -> str:
    """``"503 Service Unavailable"``."""
    return f"{response.status_code} {response.reason_phrase}".strip()
