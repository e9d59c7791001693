"""The websocket client's transport: the target URL, SSL contexts from a conf group's TLS keys, the TCP + TLS dial.

Loading problems (a missing or unreadable CA, certificate or key file) are configuration errors reported at
rule start with the offending file named, never retried like connection problems; handshake failures are
connection problems and surface at once with their TLS reason.
"""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from contextlib import contextmanager
from typing import final
from urllib.parse import urlsplit

import attrs
import trio

from runtime.config.secrets import redact_url
from runtime.errors import SourceError
from runtime.io.websocket.conf import WsConf


@final
@attrs.frozen
class WsTarget:
    """Everything that defines a client connection; equal targets share one connection.

    ``url`` keeps the query string (it may carry a token): use ``redacted`` in anything a human reads.
    """

    url: str
    conf: WsConf
    host: str
    port: int
    resource: str  # path + query, what the handshake requests
    host_header: str

    @property
    def redacted(self) -> str:
        """The URL without its query string or userinfo password, safe for logs, errors and metrics."""
        return redact_url(self.url.split("?", 1)[0])

    @property
    def path(self) -> str:
        return self.resource.split("?", 1)[0]


def resolve_target(conf: WsConf, path: str) -> WsTarget:
    """The connection target for ``conf`` (client mode) and a stream's or action's ``path``.

    The URL is ``scheme://addr`` + ``path``; ``addr`` may itself be a ``ws://``/``wss://`` URL (then its scheme
    wins and any path prefix it has is kept in front of ``path``).

    Raises:
      SourceError: a path not starting with ``/``, an unknown scheme, a missing host or a bad port.
    """
    if not path.startswith("/"):
        raise SourceError(f"websocket path {path.split('?', 1)[0]!r} must start with '/'")
    addr = conf.addr.strip()
    if "://" in addr:
        base = addr.rstrip("/")
    else:
        base = f"{conf.scheme.strip().lower()}://{addr}"
    url = base + path
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in ("ws", "wss"):
        raise SourceError(f"websocket addr {conf.addr!r}: scheme must be ws or wss, got {scheme!r}")
    try:
        port = parts.port
    except ValueError as exc:
        raise SourceError(f"websocket addr {conf.addr!r}: {exc}") from None
    if not parts.hostname:
        raise SourceError(f"websocket addr {conf.addr!r} has no host")
    default_port = 443 if scheme == "wss" else 80
    resource = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return WsTarget(
        url=url,
        conf=conf,
        host=parts.hostname,
        port=port if port is not None else default_port,
        resource=resource,
        host_header=parts.netloc.rsplit("@", 1)[-1],
    )


def uses_tls(conf: WsConf) -> bool:
    """Whether client mode dials ``wss``: a full ``wss://`` address, or ``scheme = "wss"`` with ``host:port``.

    A full URL in ``addr`` wins over ``scheme`` (the user wrote the scheme they meant).
    """
    addr = conf.addr.strip().lower()
    if "://" in addr:
        return addr.startswith("wss://")
    return conf.scheme.strip().lower() == "wss"


@contextmanager
def _loading(what: str, path: str) -> Iterator[None]:
    # ssl raises FileNotFoundError for a missing file but a bare ssl.SSLError ("[X509] PEM lib") for a file
    # that is not PEM: neither names the file, so the message does.
    try:
        yield
    except (OSError, ssl.SSLError, ValueError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise SourceError(f"websocket TLS: cannot load {what} {path!r}: {reason}") from exc


def client_ssl_context(conf: WsConf) -> ssl.SSLContext | None:
    """The SSL context for dialling ``conf`` in client mode, or None for plain ``ws``.

    Args:
      conf: the conf group. ``rootCaPath`` replaces the system CAs as the trust store; ``certificationPath`` and
        ``privateKeyPath`` give the client certificate for mutual TLS (the key may sit in the certificate file);
        ``insecureSkipVerify`` disables certificate and hostname verification.

    Returns: a ready context (TLS 1.2 or newer, hostname checked unless verification is skipped), or None.

    Raises:
      SourceError: a file cannot be read or parsed, or a key is given without a certificate; the message names
        the file.
    """
    if not uses_tls(conf):
        return None
    ctx = ssl.create_default_context()
    if conf.root_ca_path:
        with _loading("root CA file", conf.root_ca_path):
            # A fresh context without the system store: a configured CA means "trust exactly this".
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            ctx.load_verify_locations(cafile=conf.root_ca_path)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    if conf.private_key_path and not conf.certification_path:
        raise SourceError(
            f"websocket TLS: privateKeyPath {conf.private_key_path!r} is set but certificationPath is empty"
        )
    if conf.certification_path:
        files = conf.certification_path + (f", {conf.private_key_path}" if conf.private_key_path else "")
        with _loading("client certificate/key", files):
            ctx.load_cert_chain(conf.certification_path, conf.private_key_path or None)
    if conf.insecure_skip_verify:
        # Order matters: ssl refuses CERT_NONE while check_hostname is still on (``ssl.SSLContext`` checks this).
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    return ctx


Transport = trio.SocketStream | trio.SSLStream[trio.SocketStream]


async def dial(host: str, port: int, ssl_context: ssl.SSLContext | None) -> Transport:
    """Open a TCP connection and, with ``ssl_context``, complete the TLS handshake on it before returning.

    Doing the TLS handshake before the websocket upgrade makes a verify failure surface at once as
    ``BrokenResourceError`` caused by the ``ssl`` error that names it, instead of somewhere inside the
    upgrade. The caller bounds the whole dial with its connect timeout.

    Raises:
      OSError: refused or unreachable. trio.BrokenResourceError: the TLS handshake failed (see ``__cause__``).
    """
    tcp = await trio.open_tcp_stream(host, port)
    if ssl_context is None:
        return tcp
    tls = trio.SSLStream(tcp, ssl_context, server_hostname=host, https_compatible=True)
    try:
        await tls.do_handshake()
    except BaseException:
        await trio.aclose_forcefully(tcp)
        raise
    return tls
