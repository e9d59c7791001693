"""Rule JSON (eKuiper shape: ``id``, ``sql``, ``actions``, ``options``…) validated into a ``RuleDef``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, final

import attrs

from runtime.config import MAX_ID_LENGTH, RuleOptions, id_problem, rule_options
from runtime.errors import ConfigError, RuleError


def check_id(value: str) -> None:
    """eKuiper's ID rule for streams, tables, rules and conf keys, plus a length limit (ids are file names)."""
    problem = id_problem(value)
    if problem is not None:
        raise RuleError(problem, value if isinstance(value, str) and len(value) <= MAX_ID_LENGTH else "")


@final
@attrs.frozen
class RuleDef:
    """A validated rule. ``raw`` is the JSON object as submitted, with ``triggered`` kept current."""

    id: str
    name: str
    sql: str
    actions: tuple[tuple[str, dict[str, Any]], ...]
    options: RuleOptions
    triggered: bool
    tags: tuple[str, ...]
    version: str
    raw: dict[str, Any]
    temp: bool = False  # a temporary rule (e.g. a CLI query): never persisted

    def with_triggered(self, triggered: bool) -> RuleDef:
        return attrs.evolve(self, triggered=triggered, raw={**self.raw, "triggered": triggered})


def parse_rule(raw: Mapping[str, Any], defaults: RuleOptions) -> RuleDef:
    """Validate a rule JSON object with eKuiper's messages (eKuiper docs guide/rules/overview.md).

    Raises:
      RuleError: what is wrong, e.g. ``Missing rule id.`` or ``Rule r1 has invalid options: …``.
    """
    if not isinstance(raw, Mapping):
        raise RuleError("invalid rule json: the rule must be a JSON object")
    rule_id = raw.get("id")
    if not rule_id:
        raise RuleError("Missing rule id.")
    if not isinstance(rule_id, str):
        raise RuleError("invalid rule json: id must be a string")
    check_id(rule_id)
    sql, graph = raw.get("sql"), raw.get("graph")
    if sql and graph:
        raise RuleError(f"Rule {rule_id} has both sql and graph.", rule_id)
    if not sql and not graph:
        raise RuleError(f"Rule {rule_id} has neither sql nor graph.", rule_id)
    if graph:
        raise RuleError(f"Rule {rule_id}: graph rules are not supported by Oort; use sql", rule_id)
    if not isinstance(sql, str):
        raise RuleError(f"invalid rule json: Rule {rule_id} sql must be a string", rule_id)
    actions = _actions(rule_id, raw.get("actions"))
    opts = raw.get("options") or {}
    if not isinstance(opts, Mapping):
        raise RuleError(f"Rule {rule_id} has invalid options: options must be a JSON object", rule_id)
    try:
        options = rule_options(opts, defaults)
    except ConfigError as exc:
        raise RuleError(f"Rule {rule_id} has invalid options: {exc.message}", rule_id) from exc
    triggered = raw.get("triggered", True)
    if not isinstance(triggered, bool):
        raise RuleError(f"invalid rule json: Rule {rule_id} triggered must be a boolean", rule_id)
    tags = raw.get("tags") or []
    if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
        raise RuleError(f"invalid rule json: Rule {rule_id} tags must be a list of strings", rule_id)
    version = raw.get("version", "")
    name = raw.get("name", "")
    temp = raw.get("temp", False)
    if not isinstance(temp, bool):
        raise RuleError(f"invalid rule json: Rule {rule_id} temp must be a boolean", rule_id)
    return RuleDef(
        id=rule_id,
        name=name if isinstance(name, str) else "",
        sql=sql,
        actions=actions,
        options=options,
        triggered=triggered,
        tags=tuple(tags),
        version=version if isinstance(version, str) else str(version),
        raw=dict(raw),
        temp=temp,
    )


def _actions(rule_id: str, actions: Any) -> tuple[tuple[str, dict[str, Any]], ...]:
    if not actions:
        raise RuleError("Missing rule actions.", rule_id)
    if not isinstance(actions, list):
        raise RuleError(f"invalid rule json: Rule {rule_id} actions must be an array", rule_id)
    out: list[tuple[str, dict[str, Any]]] = []
    for index, action in enumerate(actions):
        if not isinstance(action, Mapping) or len(action) != 1:
            raise RuleError(
                f"invalid rule json: Rule {rule_id} actions[{index}] must be an object with exactly one sink type",
                rule_id,
            )
        ((sink_type, props),) = action.items()
        if props is None:
            props = {}
        if not isinstance(props, Mapping):
            raise RuleError(
                f"invalid rule json: Rule {rule_id} actions[{index}].{sink_type} must be an object", rule_id
            )
        out.append((sink_type, dict(props)))
    return tuple(out)
