"""The websocket client's transport: the target URL and the SSL context from a conf group's TLS keys (dialling is
``runtime.io.dial``, shared with the MQTT client).

Loading problems (a missing or unreadable CA, certificate or key file) are configuration errors reported at
rule start with the offending file named, never retried like connection problems; handshake failures are
connection problems and surface at once with their TLS reason.
"""

from __future__ import annotations

import ssl
from typing import final
from urllib.parse import urlsplit

import attrs

from runtime.config.secrets import redact_url
from runtime.errors import SourceError
from runtime.io.confcheck import client_ssl_context as tls_client_context
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


def client_ssl_context(conf: WsConf) -> ssl.SSLContext | None:
    """The SSL context for dialling ``conf`` in client mode, or None for plain ``ws``.

    ``rootCaPath`` replaces the system CAs as the trust store; ``certificationPath`` and ``privateKeyPath`` give the
    client certificate for mutual TLS; ``insecureSkipVerify`` disables certificate and hostname verification.

    Raises:
      SourceError: a file cannot be read or parsed, or a key is given without a certificate; the message names
        the file.
    """
    if not uses_tls(conf):
        return None
    return tls_client_context(
        root_ca=conf.root_ca_path,
        cert=conf.certification_path,
        key=conf.private_key_path,
        insecure=conf.insecure_skip_verify,
        label="websocket",
    )
