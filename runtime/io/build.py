"""Building connector instances: a stream definition or a rule action -> its spec -> the registered factory.

The source's properties are its conf group (``CONF_KEY``, ``[default]`` when absent) of
``etc/sources/<type>.toml`` with the stream's ``EXTRA`` JSON applied on top.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import attrs
import orjson

from runtime.config import conf_group
from runtime.errors import ConfigError, PlanError
from runtime.io.contract import IoContext, Sink, SinkSpec, Source, SourceSpec
from runtime.io.registry import Registry
from runtime.sql.ast import StreamDef


def build_source(
    registry: Registry,
    definition: StreamDef,
    type_name: str,
    etc_dir: Path,
    ctx: IoContext,
    *,
    fields_read: frozenset[str] | None = None,
) -> Source:
    """The source connector instance of ``definition`` (of connector type ``type_name``) for one rule run.

    Args:
      fields_read: the declared fields the rule reads (None: all), for STRICT_VALIDATION.

    Raises:
      PlanError: the conf group is missing or invalid, the type is unknown, or the factory refuses the props.
    """
    opts = definition.options
    try:
        props: dict[str, Any] = conf_group(
            etc_dir, "sources", type_name, opts.conf_key or "default", ctx.services.conf_overlay
        )
    except ConfigError as exc:
        raise PlanError(exc.message) from exc
    if opts.extra:
        props.update(orjson.loads(opts.extra))
    spec = SourceSpec(
        stream=definition.name,
        type=type_name,
        datasource=opts.datasource,
        format=opts.format,
        props=props,
        options=_options_dict(definition),
        ctx=ctx,
        definition=definition,
        fields_read=fields_read,
    )
    return registry.source_factory(type_name)(spec)


def build_sink(registry: Registry, sink_type: str, index: int, props: dict[str, Any], ctx: IoContext) -> Sink:
    """The sink connector instance of a rule's action number ``index`` (``props``: its connector properties)."""
    return registry.sink_factory(sink_type)(SinkSpec(type=sink_type, index=index, props=props, ctx=ctx))


def _options_dict(stream: StreamDef) -> dict[str, str]:
    values = attrs.asdict(stream.options)
    return {key: str(value) for key, value in values.items() if value not in ("", None, False)}
