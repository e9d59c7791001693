"""The httppush conf group (``etc/sources/httppush.toml``, one table per CONF_KEY): fields, defaults, validation.

eKuiper's only key is ``method`` (POST or PUT); Oort adds the limits and the authentication the data server
applies to websocket paths too: ``maxMessageSize`` (the body cap), ``token`` and ``allowedOrigins``.
``parse_push_conf`` reports every unknown key (naming the nearest valid one) and every wrong value at once.
"""

from __future__ import annotations

from typing import Any, final

import attrs

from runtime.errors import ConfigProblem
from runtime.io.confcheck import Keys, as_count, as_str, describe, parse_keys

DEFAULT_MAX_MESSAGE_SIZE = 1 << 20  # bytes of one request body, as a websocket path's default frame cap
HARD_MAX_MESSAGE_SIZE = 16 * 1024 * 1024  # the cap when a conf group sets none (maxMessageSize = 0)
METHODS = ("POST", "PUT")


@final
@attrs.frozen
class PushConf:
    """One conf group, validated.

    ``token``: clients must send ``Authorization: Bearer <token>`` or ``?token=<token>`` (empty: no check).
    ``allowed_origins``: accepted ``Origin`` headers (empty: any, and none needed).
    """

    method: str = "POST"
    max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE
    token: str = attrs.field(default="", repr=False)
    allowed_origins: tuple[str, ...] = ()

    @property
    def body_cap(self) -> int:
        """The largest body accepted, in bytes."""
        return self.max_message_size or HARD_MAX_MESSAGE_SIZE


def path_differences(a: PushConf, b: PushConf) -> list[str]:
    """The settings of one path (by conf key) on which ``a`` and ``b`` differ; the token's value is compared,
    never shown. ``method`` is not among them: one path may take POST for one stream and PUT for another."""
    differ = []
    if a.token != b.token:
        differ.append("token")
    if frozenset(a.allowed_origins) != frozenset(b.allowed_origins):
        differ.append("allowedOrigins")
    if a.max_message_size != b.max_message_size:
        differ.append("maxMessageSize")
    return differ


def _method(value: Any) -> str:
    method = as_str(value).strip().upper()
    if method not in METHODS:
        raise ConfigProblem(f"method {value!r} is not supported, must be POST or PUT")
    return method


def _origins(value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        return (value,) if value else ()
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise ConfigProblem(f"expected a list of strings, got {describe(value)}")
    return tuple(value)


_KEYS: Keys = {
    "method": ("method", _method),
    "maxMessageSize": ("max_message_size", as_count),
    "token": ("token", as_str),
    "allowedOrigins": ("allowed_origins", _origins),
}

# eKuiper's source struct also reads ``bufferLength`` (the size of its internal pub/sub channel); Oort hands a
# body straight to the rules' buffers, whose size is the rule option ``bufferLength``, so the key is accepted
# for compatibility and has no effect.
IGNORED_KEYS = frozenset({"bufferLength"})

CONF_KEYS = tuple(_KEYS)
"""The keys an httppush conf group may hold, in documentation order."""


def parse_push_conf(props: dict[str, Any], where: str) -> PushConf:
    """Validate a merged conf group (``[default]`` + named group + EXTRA) into a ``PushConf``.

    Raises:
      PlanError: every unknown key and wrong value, listed with ``where`` (e.g. ``stream s: httppush conf
        group``) and the key, all in one message.
    """
    return PushConf(**parse_keys(props, _KEYS, where, ignored=IGNORED_KEYS))
