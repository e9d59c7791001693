"""The common sink (action) properties (eKuiper docs guide/sinks/overview.md) and how they turn one emission
into sink messages.

The rule runtime parses them once per action (``SinkProps.from_action``) and calls ``messages`` for every
emission before ``Sink.write``; everything the runtime does not consume is passed on to the connector.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, final

import attrs

from runtime.errors import PlanError
from runtime.model import Row

Message = Row | list[Row]
"""One call of ``Sink.write``: a row (``sendSingle``) or the rows of one emission."""

# Consumed by the runtime only. Format helpers (format, delimiter, hasHeader, schemaId) are parsed here too
# but also stay in connector_props: the connector is the one that encodes.
_RUNTIME_ONLY = frozenset(
    {
        "sendSingle",
        "omitIfEmpty",
        "fields",
        "excludeFields",
        "dataField",
        "tableDataField",
        "bufferLength",
        "concurrency",
        "batchSize",
        "lingerInterval",
        "runAsync",  # v1 property, accepted and ignored as eKuiper does
    }
)


def _bool(props: Mapping[str, Any], key: str, default: bool) -> bool:
    value = props.get(key, default)
    if not isinstance(value, bool):
        raise PlanError(f"sink property {key!r} must be a bool, got {value!r}")
    return value


def _int(props: Mapping[str, Any], key: str, default: int) -> int:
    value = props.get(key, default)
    # bool is an int subclass; `true` as a buffer length is a mistake, not 1.
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise PlanError(f"sink property {key!r} must be a non-negative integer, got {value!r}")
    return value


def _str(props: Mapping[str, Any], key: str, default: str) -> str:
    value = props.get(key, default)
    if not isinstance(value, str):
        raise PlanError(f"sink property {key!r} must be a string, got {value!r}")
    return value


def _names(props: Mapping[str, Any], key: str) -> tuple[str, ...] | None:
    value = props.get(key)
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(name, str) for name in value):
        raise PlanError(f"sink property {key!r} must be a list of strings, got {value!r}")
    return tuple(value)


@final
@attrs.frozen
class SinkProps:
    """The parsed common properties of one action (defaults as in eKuiper).

    ``connector_props`` holds every key the runtime does not consume (including the format helpers
    ``format``, ``delimiter``, ``hasHeader``, ``schemaId``), for the connector's factory.
    """

    send_single: bool = False
    omit_if_empty: bool = False
    fields: tuple[str, ...] | None = None
    exclude_fields: tuple[str, ...] | None = None
    data_field: str = ""
    format: str = "json"
    buffer_length: int = 1024
    concurrency: int = 1
    batch_size: int = 0
    linger_interval: int = 0
    connector_props: dict[str, Any] = attrs.field(factory=dict, eq=True, hash=False)

    @classmethod
    def from_action(cls, props: Mapping[str, Any]) -> SinkProps:
        """Parse and type-check the common properties of one action's property object.

        Raises:
          PlanError: a property has the wrong type, or uses a feature Oort does not have (``dataTemplate``).
        """
        if props.get("dataTemplate"):
            # Go text/template cannot be honoured faithfully; failing loudly beats silently different output.
            raise PlanError("sink property 'dataTemplate' is not supported")
        data_field = _str(props, "dataField", "") or _str(props, "tableDataField", "")
        return cls(
            send_single=_bool(props, "sendSingle", False),
            omit_if_empty=_bool(props, "omitIfEmpty", False),
            fields=_names(props, "fields"),
            exclude_fields=_names(props, "excludeFields"),
            data_field=data_field,
            format=_str(props, "format", "json"),
            buffer_length=_int(props, "bufferLength", 1024),
            concurrency=_int(props, "concurrency", 1),
            batch_size=_int(props, "batchSize", 0),
            linger_interval=_int(props, "lingerInterval", 0),
            connector_props={
                k: v for k, v in props.items() if k not in _RUNTIME_ONLY and k != "dataTemplate"
            },
        )

    @property
    def is_plain(self) -> bool:
        """True when ``messages`` of an emission is always ``[emission]`` (no property reshapes it)."""
        return not (
            self.data_field
            or self.fields is not None
            or self.exclude_fields is not None
            or self.send_single
            or self.omit_if_empty
        )

    def messages(self, emission: list[Row]) -> list[Message]:
        """The sink messages for one emission, in order: dataField, fields/excludeFields, omitIfEmpty, sendSingle.

        dataField takes that key of each row: a row value replaces the row, a list value replaces it with
        its rows, anything else (missing, scalar) drops it. Rows are copied only when fields are filtered,
        since emissions may be shared between sinks.
        """
        rows = emission
        if self.data_field:
            rows = _extract(rows, self.data_field)
        if self.fields is not None:
            keep = self.fields
            rows = [{name: row[name] for name in keep if name in row} for row in rows]
        if self.exclude_fields is not None:
            drop = self.exclude_fields
            rows = [{name: value for name, value in row.items() if name not in drop} for row in rows]
        if self.send_single:
            if self.omit_if_empty:
                return [row for row in rows if row]
            return list(rows)
        if self.omit_if_empty and not rows:
            return []
        return [rows]


def _extract(rows: list[Row], data_field: str) -> list[Row]:
    out: list[Row] = []
    for row in rows:
        value = row.get(data_field)
        if isinstance(value, dict):
            out.append(value)
        elif isinstance(value, list):
            out.extend(item for item in value if isinstance(item, dict))
    return out
