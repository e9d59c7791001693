"""Management views and bulk operations over the engine: stream details, topology, tags, ruleset export/import,
and the Prometheus exposition of every rule's metrics (eKuiper docs api/restapi/overview.md;
api/restapi/rules.md, rule status)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from runtime.config import ConfKind, delete_conf_group, load_conf_groups, save_conf_group
from runtime.config.secrets import mask
from runtime.engine import Engine
from runtime.errors import EngineError, RuleError
from runtime.metrics import CONNECTION_METRIC_NAMES, METRIC_NAMES
from runtime.plan.planner import source_type
from runtime.sql.ast import StreamDef, Wildcard
from runtime.sql.ddl import stream_schema
from runtime.sql.expr import expr_text
from runtime.sql.parser import parse_ddl, parse_select

STATUS_VALUE = {"running": 1, "starting": 1, "stopped": 0, "stopped by error": -1}


def table_kind(stream: StreamDef) -> str:
    return (stream.options.kind or "scan").lower()


def list_streams(engine: Engine, kind: str, table_kind_filter: str = "") -> list[str]:
    """``GET /streams`` / ``GET /tables[?kind=scan|lookup]``."""
    names = engine.list_streams(kind)
    if kind == "table" and table_kind_filter:
        names = [n for n in names if table_kind(engine.get_stream(kind, n)) == table_kind_filter.lower()]
    return names


def stream_details(engine: Engine, kind: str, table_kind_filter: str = "") -> list[dict[str, str]]:
    """``GET /streamdetails`` / ``/tabledetails``: name, connector type and format (lower-cased)."""
    out = []
    for name in list_streams(engine, kind, table_kind_filter):
        stream = engine.get_stream(kind, name)
        out.append({"name": name, "type": source_type(stream), "format": stream.options.format.lower()})
    return out


def schema(engine: Engine, kind: str, name: str) -> dict[str, Any]:
    return stream_schema(engine.get_stream(kind, name))


def topology(engine: Engine, rule_id: str) -> dict[str, Any]:
    """``GET /rules/{id}/topo``: sources and edges of the running rule's nodes (eKuiper's shape)."""
    if not engine.rule_is_active(rule_id):
        raise RuleError(f"Rule {rule_id} is not running", rule_id)
    names = [node.name for node in engine.rule_metrics(rule_id).nodes]
    sources = [n for n in names if n.startswith("source_")]
    ops = [n for n in names if n.startswith("op_")]
    sinks = [n for n in names if n.startswith("sink_")]
    edges: dict[str, list[str]] = {}
    chain = [*sources[:1], *ops]
    for upstream, downstream in zip(chain, chain[1:], strict=False):
        edges.setdefault(upstream, []).append(downstream)
    for src in sources[1:]:
        edges[src] = [ops[0]] if ops else list(sinks)
    if chain:
        edges.setdefault(chain[-1], []).extend(sinks)
    return {"sources": sources, "edges": edges}


def explain(engine: Engine, rule_id: str) -> str:
    """``GET /rules/{id}/explain``: the logical plan, one JSON line per node, indented by depth (eKuiper's shape)."""
    rule = engine.get_rule(rule_id)
    select = parse_select(str(rule.get("sql", "")))
    nodes: list[dict[str, str]] = []
    fields = [
        "*" if isinstance(f.expr, Wildcard) else f"{expr_text(f.expr)}{' AS ' + f.alias if f.alias else ''}"
        for f in select.fields
    ]
    nodes.append({"op": "ProjectPlan", "info": f"Fields:[ {', '.join(fields)} ]"})
    if select.where is not None:
        nodes.append({"op": "FilterPlan", "info": f"Condition:{{ {expr_text(select.where)} }}"})
    for ref in select.sources:
        info = f"StreamName: {ref.name}"
        for kind in ("stream", "table"):
            if ref.name in engine.list_streams(kind):
                names = [f.name for f in engine.get_stream(kind, ref.name).fields]
                info += f", StreamFields:[ {', '.join(names)} ]" if names else ", SchemaLess"
        nodes.append({"op": "DataSourcePlan", "info": info})
    return "".join(
        "\t" * depth + orjson.dumps({"op": f"{node['op']}_{depth}", "info": node["info"]}).decode() + "\n"
        for depth, node in enumerate(nodes)
    )


def match_tags(engine: Engine, tags: list[str]) -> list[str]:
    """Rules that carry every one of ``tags``."""
    wanted = set(tags)
    return [rid for rid in engine.rule_ids() if wanted <= set(engine.rule_tags(rid))]


def change_tags(engine: Engine, rule_id: str, tags: list[str], how: str) -> None:
    """``PUT`` (replace), ``PATCH`` (add) or ``DELETE`` (remove) a rule's tags."""
    current = engine.rule_tags(rule_id)
    if how == "PUT":
        new = list(dict.fromkeys(tags))
    elif how == "PATCH":
        new = list(dict.fromkeys([*current, *tags]))
    else:
        new = [t for t in current if t not in set(tags)]
    engine.set_tags(rule_id, new)


async def bulk(engine: Engine, tags: list[str], *, start: bool) -> list[dict[str, Any]]:
    """``POST /rules/bulkstart|bulkstop``: every rule with all ``tags``; not atomic, one result per rule."""
    results: list[dict[str, Any]] = []
    for rid in match_tags(engine, tags):
        try:
            await (engine.start_rule(rid) if start else engine.stop_rule(rid))
            results.append({"ruleId": rid, "success": True})
        except EngineError as exc:
            results.append({"ruleId": rid, "success": False, "error": exc.message})
    return results


def export_ruleset(engine: Engine) -> dict[str, dict[str, str]]:
    """``POST /ruleset/export``: eKuiper's ruleset shape, statements and rule JSON as strings."""
    return {
        "streams": {n: engine.get_stream("stream", n).statement for n in engine.list_streams("stream")},
        "tables": {n: engine.get_stream("table", n).statement for n in engine.list_streams("table")},
        "rules": {rid: orjson.dumps(engine.get_rule(rid)).decode() for rid in engine.rule_ids()},
    }


async def import_ruleset(engine: Engine, ruleset: Mapping[str, Any]) -> str:
    """Create (or replace) every stream, table and rule of an exported ruleset; returns eKuiper's summary.

    Raises:
      EngineError: the ruleset is malformed (nothing after the failing item is imported).
    """
    counts = {"streams": 0, "tables": 0, "rules": 0}
    for section in ("streams", "tables"):
        for name, sql in (ruleset.get(section) or {}).items():
            stmt = parse_ddl(sql)
            if not isinstance(stmt, StreamDef) or stmt.name != name:
                raise EngineError(f"import {section}: {name}: not a CREATE statement for {name}")
            engine.provision_stream(stmt)
            counts[section] += 1
    for rid, text in (ruleset.get("rules") or {}).items():
        raw = orjson.loads(text) if isinstance(text, str | bytes) else text
        if not isinstance(raw, dict):
            raise RuleError(f"import rules: {rid}: not a rule JSON object", rid)
        await engine.provision_rule({**raw, "id": rid})
        counts["rules"] += 1
    return f"imported {counts['streams']} streams, {counts['tables']} tables and {counts['rules']} rules"


def prometheus_text(engine: Engine) -> str:
    """Every rule's status and node metrics in the Prometheus text exposition format (``GET /metrics``)."""
    lines = [
        "# HELP oort_rule_status Rule status: 1 running, 0 stopped, -1 stopped by error.",
        "# TYPE oort_rule_status gauge",
    ]
    by_status: dict[str, int] = {}
    statuses = engine.all_rule_status()
    for rid, info in statuses.items():
        lines.append(f'oort_rule_status{{rule="{_label(rid)}"}} {STATUS_VALUE.get(info["status"], 0)}')
        by_status[info["status"]] = by_status.get(info["status"], 0) + 1
    lines += ["# HELP oort_rule_count Rules by status.", "# TYPE oort_rule_count gauge"]
    for status, count in sorted(by_status.items()):
        lines.append(f'oort_rule_count{{status="{_label(status)}"}} {count}')
    series: dict[str, list[str]] = {}
    for rid in statuses:
        for node in engine.rule_metrics(rid).nodes:
            kind = node.name.split("_", 1)[0]
            prefix = f"{node.name}_0_"
            for key, value in node.snapshot().items():
                metric = key[len(prefix) :]
                if isinstance(value, str) or metric not in _NUMERIC:
                    continue
                labels = f'rule="{_label(rid)}",op="{_label(node.name)}"'
                series.setdefault(f"oort_{kind}_{metric}", []).append(f"{{{labels}}} {value}")
    for name, samples in sorted(series.items()):
        lines.append(f"# TYPE {name} {'counter' if name.endswith('_total') else 'gauge'}")
        lines.extend(name + sample for sample in samples)
    return "\n".join(lines) + "\n"


_NUMERIC = frozenset(
    m
    for m in (*METRIC_NAMES, *CONNECTION_METRIC_NAMES, "records_dropped_total")
    if not m.endswith("_message")
) - {"last_exception"}


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


# --- conf groups (etc/<sources|sinks>/<type>.toml) at run time -------------------------------------------------


def conf_groups(engine: Engine, kind: ConfKind, type_name: str) -> dict[str, dict[str, Any]]:
    """``GET /metadata/{sources|sinks}/yaml/{type}``: every conf group, secrets masked."""
    return {
        key: mask(props)
        for key, props in load_conf_groups(
            engine.etc_dir, kind, type_name, engine.services.conf_overlay
        ).items()
    }


def put_conf_group(
    engine: Engine, kind: ConfKind, type_name: str, key: str, props: Mapping[str, Any]
) -> None:
    """Create or replace a conf group after validating it as the connector would; rules started afterwards use it.

    Raises:
      EngineError: invalid key or properties (nothing is written then).
    """
    engine.registry.check_conf(kind, type_name, props, f"{type_name} conf group {key!r}")
    save_conf_group(engine.etc_dir, kind, type_name, key, props, engine.services.conf_overlay)


def conf_group_users(engine: Engine, kind: ConfKind, type_name: str, key: str) -> list[str]:
    """Running rules whose source stream (``sources``) or action (``sinks``) uses conf group ``key``."""
    users = []
    for rid in engine.rule_ids():
        if not engine.rule_is_active(rid):
            continue
        if kind == "sources":
            for name in engine.rule_sources(rid):
                for stream_kind in ("stream", "table"):
                    if name not in engine.list_streams(stream_kind):
                        continue
                    stream = engine.get_stream(stream_kind, name)
                    if source_type(stream) == type_name and (stream.options.conf_key or "default") == key:
                        users.append(rid)
        else:
            for action in engine.get_rule(rid).get("actions", []):
                props = action.get(type_name) if isinstance(action, dict) else None
                if isinstance(props, dict) and key in (props.get("resourceId"), props.get("confKey")):
                    users.append(rid)
    return sorted(set(users))


def remove_conf_group(engine: Engine, kind: ConfKind, type_name: str, key: str) -> None:
    """Delete a conf group unless a running rule uses it.

    Raises:
      NotFoundError: no such group. EngineError: the group is in use (names the rules).
    """
    users = conf_group_users(engine, kind, type_name, key)
    if users:
        raise EngineError(f"conf key {key} of {type_name} is in use by running rule(s): {', '.join(users)}")
    delete_conf_group(engine.etc_dir, kind, type_name, key, engine.services.conf_overlay)


async def test_connection(engine: Engine, type_name: str, props: Mapping[str, Any]) -> str:
    """``POST /metadata/sources/connection/{type}``: can a conf group connect? Answered by the type's
    registered connection test (see ``Registry.register_source``).

    Raises:
      EngineError: the type has no connection test, the properties are invalid, or the connection failed.
    """
    return await engine.registry.test_connection(type_name, engine.services, engine.clock, props)
