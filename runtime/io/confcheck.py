"""Checking a connector's properties: typed value checkers and a table-driven parser that lists every problem.

A connector declares its keys once (``Key``: the attribute it fills and the checker for its value) and calls
``parse_keys``; every unknown key (naming the nearest valid one) and every wrong value is reported in one
``PlanError``, each with its key, so a user fixes a conf group or an action in one round.
"""

from __future__ import annotations

import difflib
import ssl
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from runtime.config import parse_duration_ms
from runtime.errors import ConfigProblem, PlanError, SourceError

Check = Callable[[Any], Any]
"""Turns a raw TOML/JSON value into the attribute's value, or raises ``ConfigProblem`` saying what is wrong."""

Keys = Mapping[str, tuple[str, Check]]
"""Property name (as users write it, eKuiper's camelCase) -> (attribute name, checker)."""


def describe(value: Any) -> str:
    """A value as an error message shows it: its type and repr (a table is just "a table")."""
    return "a table" if isinstance(value, dict) else f"{type(value).__name__} {value!r}"


def as_str(value: Any) -> str:
    if not isinstance(value, str):
        raise ConfigProblem(f"expected a string, got {describe(value)}")
    return value


def as_bool(value: Any) -> bool:
    if not isinstance(value, bool):
        raise ConfigProblem(f"expected true or false, got {describe(value)}")
    return value


def as_count(value: Any) -> int:
    """A non-negative integer (``true`` is not 1)."""
    if type(value) is not int:
        raise ConfigProblem(f"expected a non-negative integer, got {describe(value)}")
    if value < 0:
        raise ConfigProblem(f"must not be negative, got {value}")
    return value


def as_seconds(value: Any) -> float:
    """A duration: a number of seconds, or a Go duration string (``"5s"``, ``"500ms"``, ``"1m30s"``)."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ConfigProblem(f"expected seconds or a duration like '5s' or '500ms', got {describe(value)}")
    if isinstance(value, str):
        try:
            seconds = parse_duration_ms(value.strip()) / 1000.0
        except ValueError:
            raise ConfigProblem(f"expected a duration like '5s' or '500ms', got {value!r}") from None
    else:
        seconds = float(value)
    if seconds < 0:
        raise ConfigProblem(f"must not be negative, got {value!r}")
    return seconds


def as_str_map(value: Any) -> dict[str, str]:
    """A table of string values (headers, MQTT user properties)."""
    if not isinstance(value, dict):
        raise ConfigProblem(f"expected a table of name = value strings, got {describe(value)}")
    bad = sorted(str(k) for k, v in value.items() if not isinstance(k, str) or not isinstance(v, str))
    if bad:
        raise ConfigProblem(f"values must be strings: {', '.join(bad)}")
    return dict(value)


def one_of(*choices: str) -> Check:
    """A checker accepting exactly these strings (compared case-insensitively, returned lower-cased)."""

    def check(value: Any) -> str:
        text = as_str(value).strip().lower()
        if text not in choices:
            raise ConfigProblem(f"expected one of {', '.join(repr(c) for c in choices)}, got {value!r}")
        return text

    return check


def not_supported(hint: str) -> Check:
    """A checker refusing any value of an eKuiper key Oort does not implement, saying what to do instead."""

    def check(value: Any) -> Any:
        raise ConfigProblem(f"not supported by Oort; {hint}")

    return check


def unknown_key(key: str, known: Iterator[str] | tuple[str, ...] | list[str]) -> str:
    """The message for an unknown key: names the nearest valid key, or lists them all when none is close."""
    names = list(known)
    close = difflib.get_close_matches(key, names, n=1, cutoff=0.6) or difflib.get_close_matches(
        key.lower(), [n.lower() for n in names], n=1, cutoff=0.6
    )
    if close:
        match = next((n for n in names if n.lower() == close[0].lower()), close[0])
        return f"unknown key; did you mean {match!r}?"
    return f"unknown key (known: {', '.join(names)})"


def parse_keys(
    props: Mapping[str, Any], keys: Keys, where: str, *, ignored: frozenset[str] = frozenset()
) -> dict[str, Any]:
    """Check every property against ``keys``: the attribute values of the valid ones.

    Args:
      ignored: keys accepted without a value check (consumed elsewhere, e.g. by the rule runtime).

    Raises:
      PlanError: every unknown key and wrong value, each as ``<where>: <key>: <problem>``, in one message.
    """
    values: dict[str, Any] = {}
    problems: list[str] = []
    for key, raw in props.items():
        if key in ignored:
            continue
        entry = keys.get(key)
        if entry is None:
            problems.append(f"{key}: {unknown_key(key, tuple(keys))}")
            continue
        name, check = entry
        try:
            values[name] = check(raw)
        except ConfigProblem as exc:
            problems.append(f"{key}: {exc}")
    if problems:
        raise PlanError("; ".join(f"{where}: {problem}" for problem in problems))
    return values


@contextmanager
def _loading(what: str, path: str, label: str) -> Iterator[None]:
    # ssl raises FileNotFoundError for a missing file but a bare ssl.SSLError ("[X509] PEM lib") for a file
    # that is not PEM: neither names the file, so the message does.
    try:
        yield
    except (OSError, ssl.SSLError, ValueError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise SourceError(f"{label} TLS: cannot load {what} {path!r}: {reason}") from exc


def client_ssl_context(*, root_ca: str, cert: str, key: str, insecure: bool, label: str) -> ssl.SSLContext:
    """An SSL context for dialling a server: TLS 1.2 or newer, hostname checked unless ``insecure``.

    Args:
      root_ca: a CA bundle replacing the system CAs as the trust store ("" = system CAs).
      cert, key: the client certificate and its key for mutual TLS (the key may sit in the certificate file).
      insecure: skip certificate and hostname verification (eKuiper's ``insecureSkipVerify``).
      label: the connector, for error messages (``mqtt``).

    Raises:
      SourceError: a file cannot be read or parsed, or a key without a certificate; the message names the file.
    """
    ctx = ssl.create_default_context()
    if root_ca:
        with _loading("root CA file", root_ca, label):
            # A fresh context without the system store: a configured CA means "trust exactly this".
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            ctx.load_verify_locations(cafile=root_ca)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    if key and not cert:
        raise SourceError(f"{label} TLS: privateKeyPath {key!r} is set but certificationPath is empty")
    if cert:
        with _loading("client certificate/key", cert + (f", {key}" if key else ""), label):
            ctx.load_cert_chain(cert, key or None)
    if insecure:
        # Order matters: ssl refuses CERT_NONE while check_hostname is still on.
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    return ctx
