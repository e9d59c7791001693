"""Rule definition + catalog -> ``RulePlan``: the parsed query, its source stream and compiled operator.

Planning is synchronous and fails early with clear messages (unknown stream, unknown connector type, invalid
SQL), so REST ``POST /rules`` can refuse a rule before anything runs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, final

import attrs
import orjson

from runtime.config import conf_group
from runtime.errors import ConfigError, PlanError
from runtime.io.contract import IoContext, Sink, SinkSpec, Source, SourceSpec
from runtime.io.registry import Registry
from runtime.io.sinkprops import SinkProps
from runtime.ops.aggregate import WindowPlan, plan_window
from runtime.ops.project import FilterProject, compile_filter_project
from runtime.plan.catalog import Catalog
from runtime.plan.ruledef import RuleDef
from runtime.sql.ast import Select, StreamDef
from runtime.sql.parser import parse_select

DEFAULT_STREAM_TYPE = "mqtt"  # eKuiper's default when TYPE is absent
DEFAULT_TABLE_TYPE = "file"


@final
@attrs.frozen
class RulePlan:
    """Everything needed to run one rule; built again on every (re)start so it sees current definitions."""

    rule: RuleDef
    select: Select
    stream: StreamDef
    source_type: str
    operator: FilterProject  # a window rule's projection; the rest of its operator is in ``window``
    window: WindowPlan | None = None

    @property
    def has_where(self) -> bool:
        return self.select.where is not None


def source_type(stream: StreamDef) -> str:
    if stream.options.type:
        return stream.options.type.lower()
    return DEFAULT_STREAM_TYPE if stream.kind == "stream" else DEFAULT_TABLE_TYPE


def plan_rule(rule: RuleDef, catalog: Catalog, registry: Registry) -> RulePlan:
    """Parse and check a rule against the catalog and the connector registry.

    Raises:
      SqlError: the SQL does not parse or validate.
      PlanError: an unknown stream or connector type, or an unsupported query shape.
    """
    select = parse_select(rule.sql)
    names = [ref.name for ref in select.sources]
    if len(names) != 1:
        raise PlanError(f"rule {rule.id}: queries over {len(names)} sources (joins) are not supported yet")
    name = names[0]
    stream = catalog.streams["stream"].get(name)
    if stream is None:
        if name in catalog.streams["table"]:
            raise PlanError(
                f"rule {rule.id}: a table cannot be the only source of a rule; join it with a stream"
            )
        raise PlanError(f"fail to get stream {name}, please check if stream is created")
    kind = source_type(stream)
    registry.source_factory(kind)  # raises PlanError for an unknown type
    for sink_type, _ in rule.actions:
        registry.sink_factory(sink_type)
    options = rule.options
    window = plan_window(select, event_time=options.is_event_time, send_nil_field=options.send_nil_field)
    if window is not None:
        if options.is_event_time and not stream.options.timestamp:
            raise PlanError(f"rule {rule.id}: an event-time window needs TIMESTAMP on stream {stream.name}")
        return RulePlan(
            rule=rule,
            select=select,
            stream=stream,
            source_type=kind,
            operator=window.query.project,
            window=window,
        )
    operator = compile_filter_project(select, send_nil_field=rule.options.send_nil_field)
    return RulePlan(rule=rule, select=select, stream=stream, source_type=kind, operator=operator)


def build_source(plan: RulePlan, registry: Registry, etc_dir: Path, ctx: IoContext) -> Source:
    """The source connector instance for one run of the rule, configured from its conf group and EXTRA."""
    opts = plan.stream.options
    try:
        props: dict[str, Any] = conf_group(etc_dir, "sources", plan.source_type, opts.conf_key or "default")
    except ConfigError as exc:
        raise PlanError(exc.message) from exc
    if opts.extra:
        props.update(orjson.loads(opts.extra))
    spec = SourceSpec(
        stream=plan.stream.name,
        type=plan.source_type,
        datasource=opts.datasource,
        format=opts.format,
        props=props,
        options=_options_dict(plan.stream),
        ctx=ctx,
        definition=plan.stream,
    )
    return registry.source_factory(plan.source_type)(spec)


def build_sink(sink_type: str, index: int, props: dict[str, Any], registry: Registry, ctx: IoContext) -> Sink:
    return registry.sink_factory(sink_type)(SinkSpec(type=sink_type, index=index, props=props, ctx=ctx))


def check_connectors(plan: RulePlan, registry: Registry, etc_dir: Path, ctx: IoContext) -> None:
    """Build (and drop) the rule's source and sinks so their properties are validated when the rule is created.

    Connector constructors only check properties; nothing is opened or connected here.
    """
    build_source(plan, registry, etc_dir, ctx)
    for index, (sink_type, props) in enumerate(plan.rule.actions):
        build_sink(sink_type, index, SinkProps.from_action(props).connector_props, registry, ctx)


def _options_dict(stream: StreamDef) -> dict[str, str]:
    values = attrs.asdict(stream.options)
    return {key: str(value) for key, value in values.items() if value not in ("", None, False)}
