"""What counts as a secret in a setting, a header or a URL, and how it is hidden wherever Oort shows one (REST
reads of conf groups, rule metadata, logs and connection messages).

A name is secret when it contains one of ``SECRET_WORDS`` (``token``, ``password``, ``authorization``,
``cookie``...) or ends with ``key`` (``apiKey``, ``accessKey``; not ``privateKeyPath``, which is a path, nor a
bare ``key``). Values
under a secret name are replaced by ``MASK``; maps (``requestHeaders``) are masked key by key; URLs lose the
password of their ``user:password@`` part and the values of secret-named query parameters.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

MASK: Final = "******"
SECRET_WORDS: Final = (
    "password",
    "passwd",
    "token",
    "secret",
    "apikey",
    "api_key",
    "api-key",
    "authorization",
    "cookie",
    "credential",
)


def is_secret_name(name: str) -> bool:
    lowered = name.lower()
    # A bare "key" names data (a table's KEY, a redis key), not a credential.
    return (lowered.endswith("key") and lowered != "key") or any(word in lowered for word in SECRET_WORDS)


def redact_url(url: str) -> str:
    """``url`` with the password of its userinfo and the values of secret-named query parameters masked."""
    if "@" not in url and "?" not in url:
        return url
    try:
        parts = urlsplit(url)
        netloc = parts.netloc
        if "@" in netloc:
            userinfo, _, host = netloc.rpartition("@")
            user, sep, _ = userinfo.partition(":")
            netloc = f"{user}{':' + MASK if sep else ''}@{host}"
        query = redact_query(parts.query) if parts.query else parts.query
        return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))
    except ValueError:
        return MASK  # not parseable: show nothing of it


def redact_query(query: str) -> str:
    """A query string with the values of secret-named parameters masked (``token=******``)."""
    pairs = parse_qsl(query, keep_blank_values=True)
    if not any(is_secret_name(name) for name, _ in pairs):
        return query
    return urlencode([(name, MASK if is_secret_name(name) else value) for name, value in pairs], safe="*")


def mask(value: Any, name: str = "") -> Any:
    """``value`` as it may be shown: secrets under secret names masked, maps by key, URLs redacted."""
    if name and is_secret_name(name) and value not in (None, "", [], {}):
        return MASK
    if isinstance(value, Mapping):
        return {key: mask(item, str(key)) for key, item in value.items()}
    if isinstance(value, list):
        return [mask(item, name) for item in value]
    if isinstance(value, str) and "://" in value:
        return redact_url(value)
    return value
