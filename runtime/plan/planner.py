"""Rule definition + catalog -> ``RulePlan``: the parsed query, its source stream and compiled operator.

Planning is synchronous and fails early with clear messages (unknown stream, unknown connector type, invalid
SQL), so REST ``POST /rules`` can refuse a rule before anything runs.
"""

from __future__ import annotations

from typing import Protocol, final

import attrs

from runtime.errors import PlanError
from runtime.ops.dedup import DedupSpec, extract_dedup
from runtime.ops.join import JoinPlan, compile_join
from runtime.ops.project import FilterProject, compile_filter_project
from runtime.plan.catalog import Catalog
from runtime.plan.ruledef import RuleDef
from runtime.plan.window import WindowPlan, plan_window
from runtime.sql.ast import BinaryOp, Select, SelectField, SourceRef, StreamDef, Wildcard
from runtime.sql.parser import parse_select


class ConnectorTypes(Protocol):
    """What planning needs of the connector registry (``runtime.io.registry.Registry``): whether a source or
    sink type exists. Each method raises PlanError naming the registered types when it does not."""

    def source_factory(self, type_name: str) -> object: ...

    def sink_factory(self, type_name: str) -> object: ...


DEFAULT_STREAM_TYPE = "mqtt"  # eKuiper's default when TYPE is absent
DEFAULT_TABLE_TYPE = "file"


@final
@attrs.frozen
class SourceInput:
    """One FROM/JOIN source of a rule: its name in the query (alias if given), definition and connector type."""

    ref: SourceRef
    definition: StreamDef
    source_type: str

    @property
    def name(self) -> str:
        return self.ref.ref_name

    @property
    def is_table(self) -> bool:
        return self.definition.kind == "table"


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
    # A rule over several sources (JOIN): every source in query order, and the compiled JOIN clauses.
    inputs: tuple[SourceInput, ...] = ()
    join: JoinPlan | None = None
    # A dedup_trigger rule: the stage holding rows between WHERE and ``operator`` (SELECT without WHERE).
    dedup: DedupPlan | None = None

    @property
    def has_where(self) -> bool:
        return self.select.where is not None

    @property
    def source_names(self) -> tuple[str, ...]:
        """The FROM and JOIN names of the rule, from the SELECT the planner already parsed."""
        return tuple(ref.name for ref in self.select.sources)


def source_type(stream: StreamDef) -> str:
    if stream.options.type:
        return stream.options.type.lower()
    return DEFAULT_STREAM_TYPE if stream.kind == "stream" else DEFAULT_TABLE_TYPE


def plan_rule(rule: RuleDef, catalog: Catalog, registry: ConnectorTypes) -> RulePlan:
    """Parse and check a rule against the catalog and the connector registry.

    Raises:
      SqlError: the SQL does not parse or validate.
      PlanError: an unknown stream or connector type, or an unsupported query shape.
    """
    select = parse_select(rule.sql)
    if select.joins:
        return _plan_join_rule(rule, select, catalog, registry)
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
    extracted = extract_dedup(select)
    if extracted is not None:
        if options.is_event_time:
            raise PlanError(f"rule {rule.id}: dedup_trigger is not supported with isEventTime")
        spec, rewritten = extracted
        return RulePlan(
            rule=rule,
            select=select,
            stream=stream,
            source_type=kind,
            operator=compile_filter_project(
                attrs.evolve(rewritten, where=None), send_nil_field=options.send_nil_field, record_hits=False
            ),
            dedup=DedupPlan(spec, _where_stage(rewritten)),
        )
    operator = compile_filter_project(select, send_nil_field=rule.options.send_nil_field)
    return RulePlan(rule=rule, select=select, stream=stream, source_type=kind, operator=operator)


@final
@attrs.frozen
class DedupPlan:
    """The ``dedup_trigger`` stage of a rule: its spec, and WHERE (with the rule's aliases) as a filter that
    passes the whole row on (None without WHERE)."""

    spec: DedupSpec
    where: FilterProject | None


def _where_stage(select: Select) -> FilterProject | None:
    if select.where is None:
        return None
    # ``*`` keeps the row as it came (nulls included); the hidden fields keep the aliases WHERE may name.
    hidden = tuple(attrs.evolve(field, invisible=True) for field in select.fields)
    filtering = attrs.evolve(select, fields=(SelectField(Wildcard()), *hidden))
    return compile_filter_project(filtering, send_nil_field=True)


def _plan_join_rule(rule: RuleDef, select: Select, catalog: Catalog, registry: ConnectorTypes) -> RulePlan:
    """A rule over several streams (inside a window) and tables (eKuiper docs sqls/query_language_elements.md,
    JOIN)."""
    inputs: list[SourceInput] = []
    for ref in select.sources:
        definition = catalog.streams["stream"].get(ref.name) or catalog.streams["table"].get(ref.name)
        if definition is None:
            raise PlanError(f"fail to get stream {ref.name}, please check if stream is created")
        kind = source_type(definition)
        registry.source_factory(kind)  # raises PlanError for an unknown type
        inputs.append(SourceInput(ref, definition, kind))
    for sink_type, _ in rule.actions:
        registry.sink_factory(sink_type)
    streams = [source for source in inputs if not source.is_table]
    if not streams:
        raise PlanError(
            f"rule {rule.id}: a join needs at least one stream; tables only hold rows for streams"
        )
    lookup_keys: dict[str, str] = {}
    for source in inputs:
        opts = source.definition.options
        if source.is_table and opts.kind == "lookup":
            if not opts.key:
                raise PlanError(f"lookup table {source.definition.name} needs a KEY to be joined")
            lookup_keys[source.name] = opts.key
    options = rule.options
    if select.where is not None and all(j.kind == "inner" for j in select.joins):
        # eKuiper pushes WHERE into an inner join's condition (TestWindowRule11: the join emits only what
        # passes WHERE); for inner joins the result is the same, only the node that reports it changes.
        last = select.joins[-1]
        on = select.where if last.on is None else BinaryOp("AND", last.on, select.where)
        select = attrs.evolve(select, joins=(*select.joins[:-1], attrs.evolve(last, on=on)), where=None)
    join = compile_join(select, lookup_keys)
    # WHERE may read any joined source, so it runs on the joined rows, never below the window.
    window = plan_window(
        select, event_time=options.is_event_time, send_nil_field=options.send_nil_field, push_where=False
    )
    if window is None:
        if len(streams) > 1:
            raise PlanError("a time window or count window is required to join multiple streams")
        operator = compile_filter_project(select, send_nil_field=options.send_nil_field)
    else:
        operator = window.query.project
        for source in streams:
            if options.is_event_time and not source.definition.options.timestamp:
                raise PlanError(
                    f"rule {rule.id}: an event-time window needs TIMESTAMP on stream {source.definition.name}"
                )
    return RulePlan(
        rule=rule,
        select=select,
        stream=streams[0].definition,
        source_type=streams[0].source_type,
        operator=operator,
        window=window,
        inputs=tuple(inputs),
        join=join,
    )
