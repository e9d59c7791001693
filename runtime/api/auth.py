"""Who may call the REST API, and from where: the checks ``RestApp`` runs on every request before routing.

Two layers:

- **Browser defences, always on.** A web page the local user opens must not be able to drive the API:
  a request carrying an ``Origin`` (or ``Sec-Fetch-Site``) from another site is refused unless that origin is
  in ``basic.allowedOrigins`` (empty by default; no wildcard), and only listed origins get CORS headers; the
  ``Host`` header must name this server (an IP literal, ``localhost``, or a name in ``basic.allowedHosts``),
  which defeats DNS rebinding; request bodies must be JSON (415 otherwise), so a page cannot post a form or
  ``text/plain`` "simple request" at us; nothing changes state on GET.
- **Credentials, when ``basic.authentication`` is on** (required for a non-loopback ``restIp``: the daemon
  refuses to start open on a public address). ``Authorization`` carries either the daemon's own token (the
  environment's ``OORT_TOKEN``, else ``auth/token`` in the data dir, made at first start, mode 0600; the CLI
  reads the same file) or an eKuiper JWT: RS256, signed by the private key whose public key is the file
  named by its ``iss`` claim in ``etc/mgmt/``, with ``aud`` containing ``eKuiper`` (eKuiper's
  ``internal/server/middleware/auth.go``). A ``Bearer`` prefix is optional, as in eKuiper. ``/`` and
  ``/ping`` stay open (eKuiper's ``notAuth``); ``/metrics`` only with ``basic.openMetrics``.
"""

from __future__ import annotations

import hmac
import ipaddress
import os
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Final, final

import jwt
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey
from cryptography.hazmat.primitives.serialization import load_pem_public_key

from runtime.api.tokens import MIN_TOKEN_LENGTH
from runtime.errors import HttpError

KEY_DIR: Final = "mgmt"  # under etc/: the public keys eKuiper JWTs are checked against
JWT_AUDIENCE: Final = "eKuiper"
OPEN_PATHS: Final = frozenset({"/", "/ping"})
MAX_KEY_BYTES: Final = 64 * 1024
_ALLOW_METHODS: Final = b"POST, GET, PUT, PATCH, DELETE, HEAD"
_ALLOW_HEADERS: Final = b"Accept, Accept-Language, Content-Type, Content-Language, Authorization"


def _host_name(value: str) -> str:
    """The host part of a ``Host`` header value (``[::1]:9081`` -> ``::1``), lower case, no trailing dot."""
    if value.startswith("["):
        name = value[1 : value.find("]")] if "]" in value else value[1:]
    else:
        head, sep, port = value.rpartition(":")
        name = head if sep and port.isdigit() else value
    return name.lower().rstrip(".")


def _is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


def is_json_type(content_type: str) -> bool:
    """``application/json`` or a ``+json`` media type, parameters (``; charset=utf-8``) ignored."""
    media = content_type.split(";", 1)[0].strip().lower()
    return media == "application/json" or media.endswith("+json")


@final
class Guard:
    """The per-request checks of one REST server; see the module docstring.

    Args:
      authentication: require credentials on every route but ``OPEN_PATHS`` (and ``/metrics`` when open).
      token: the daemon's own token (accepted as ``Authorization: [Bearer ]TOKEN``).
      key_dir: where eKuiper JWT public keys live (``etc/mgmt``); need not exist.
      allowed_origins: browser origins (``https://console.example:8443``) that may call the API.
      allowed_hosts: host names besides IP literals and ``localhost`` that may appear in ``Host``; ``*`` any.
      open_metrics: serve ``/metrics`` without credentials (for a Prometheus scraper).
    """

    def __init__(
        self,
        *,
        authentication: bool = False,
        token: str = "",
        key_dir: Path | None = None,
        allowed_origins: Collection[str] = (),
        allowed_hosts: Collection[str] = (),
        open_metrics: bool = False,
    ) -> None:
        if authentication and len(token) < MIN_TOKEN_LENGTH:
            raise ValueError("authentication needs the daemon's token")
        self._authentication = authentication
        self._token = token.encode("utf-8")
        self._key_dir = key_dir
        self._origins = frozenset(origin.rstrip("/").lower() for origin in allowed_origins)
        hosts = frozenset(host.lower().rstrip(".") for host in allowed_hosts)
        # With credentials required, a rebinding page gains nothing: any Host is fine unless names are listed.
        self._any_host = "*" in hosts or (authentication and not hosts)
        self._hosts = hosts
        self._open_metrics = open_metrics
        self._keys: dict[Path, tuple[tuple[int, int], RSAPublicKey]] = {}

    def origin_allowed(self, origin: str) -> bool:
        return origin.rstrip("/").lower() in self._origins

    def cors_headers(self, headers: Mapping[bytes, bytes]) -> list[tuple[bytes, bytes]]:
        """CORS response headers for a request from an allowed origin; none for anyone else."""
        origin = headers.get(b"origin")
        if origin is None or not self.origin_allowed(origin.decode("latin-1")):
            return [(b"vary", b"Origin")]
        return [
            (b"access-control-allow-origin", origin),
            (b"access-control-allow-methods", _ALLOW_METHODS),
            (b"access-control-allow-headers", _ALLOW_HEADERS),
            (b"access-control-max-age", b"600"),
            (b"vary", b"Origin"),
        ]

    def check_browser(self, headers: Mapping[bytes, bytes], scheme: str) -> None:
        """The always-on defences: ``Host`` names this server, and no other site's page is calling.

        Raises:
          HttpError: 403 (wrong host, foreign origin) or 400 (no usable Host).
        """
        host = headers.get(b"host", b"").decode("latin-1")
        name = _host_name(host)
        if (
            host
            and not (self._any_host or _is_ip(name) or name == "localhost" or name.endswith(".localhost"))
            and name not in self._hosts
        ):
            raise HttpError(
                403, 1000, f"host {name!r} is not a name of this server (add it to basic.allowedHosts)"
            )
        origin = headers.get(b"origin")
        if origin is not None:
            text = origin.decode("latin-1").rstrip("/").lower()
            same = bool(host) and text == f"{scheme}://{host}".lower()
            if not same and not self.origin_allowed(text):
                raise HttpError(
                    403, 1000, f"requests from origin {text!r} are not allowed (see basic.allowedOrigins)"
                )
            return
        site = headers.get(b"sec-fetch-site")
        if site in (b"cross-site", b"same-site"):
            raise HttpError(
                403, 1000, "requests from another site are not allowed (see basic.allowedOrigins)"
            )

    def check_credentials(self, path: str, headers: Mapping[bytes, bytes]) -> None:
        """Credentials, when authentication is on.

        Raises:
          HttpError: 401, saying what is missing or wrong (never echoing the credential).
        """
        if not self._authentication or path in OPEN_PATHS or (path == "/metrics" and self._open_metrics):
            return
        raw = headers.get(b"authorization")
        if not raw:
            raise HttpError(401, 1000, "missing_token: send Authorization: Bearer <token>")
        value = raw.strip()
        if value[:7].lower() == b"bearer ":
            value = value[7:].strip()
        if hmac.compare_digest(value, self._token):
            return
        if value.count(b".") == 2:
            self._check_jwt(value.decode("latin-1"))
            return
        raise HttpError(401, 1000, "invalid token")

    def _check_jwt(self, token: str) -> None:
        try:
            claims = jwt.decode(token, options={"verify_signature": False})
        except jwt.PyJWTError as exc:
            raise HttpError(401, 1000, f"validate token error: {exc}") from None
        issuer = claims.get("iss")
        if not isinstance(issuer, str) or not issuer:
            raise HttpError(401, 1000, "validate token error: issuer field not exist in jwt payload")
        key = self._public_key(issuer)
        try:
            jwt.decode(
                token,
                key,
                algorithms=["RS256"],
                audience=JWT_AUDIENCE,
                options={"require": ["iss", "aud"]},
            )
        except jwt.PyJWTError as exc:
            raise HttpError(401, 1000, f"validate token error: {exc}") from None

    def _public_key(self, issuer: str) -> RSAPublicKey:
        """The RSA public key in ``etc/mgmt`` whose file name equals ``issuer`` ignoring case (as eKuiper).

        Only names listed in the directory are opened, so ``iss`` cannot point anywhere else.
        """
        found: Path | None = None
        if self._key_dir is not None:
            try:
                with os.scandir(self._key_dir) as entries:
                    for entry in entries:
                        if entry.name.lower() == issuer.lower() and entry.is_file():
                            found = Path(entry.path)
                            break
            except OSError:
                found = None
        if found is None:
            raise HttpError(401, 1000, f"validate token error: no public key {issuer!r} in etc/{KEY_DIR}")
        try:
            stat = found.stat()
            stamp = (stat.st_mtime_ns, stat.st_size)
            cached = self._keys.get(found)
            if cached is not None and cached[0] == stamp:
                return cached[1]
            if stat.st_size > MAX_KEY_BYTES:
                raise ValueError("too large")
            key = load_pem_public_key(found.read_bytes())
        except (OSError, ValueError) as exc:
            raise HttpError(401, 1000, f"validate token error: cannot read key {issuer!r}: {exc}") from None
        if not isinstance(key, RSAPublicKey):
            raise HttpError(401, 1000, f"validate token error: key {issuer!r} is not an RSA public key")
        self._keys[found] = (stamp, key)
        return key
