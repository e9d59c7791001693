"""The common sink (action) properties (eKuiper docs guide/sinks/overview.md) and how they turn one emission
into sink messages.

The rule runtime parses them once per action (``SinkProps.from_action``) and calls ``messages`` for every
emission before ``Sink.write``; everything the runtime does not consume is passed on to the connector. The
cache properties (``enableCache`` …, see ``CacheProps``) are the runtime's too: connectors never see them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, final

import attrs

from runtime.config import parse_duration_ms
from runtime.errors import PlanError
from runtime.formats.gotemplate import GoTemplate
from runtime.io.sinktemplate import parse_data_template, render
from runtime.model import Row

Message = Row | list[Row] | str
"""One call of ``Sink.write``: a row (``sendSingle``) or the rows of one emission; or, with a ``dataTemplate``
whose output is sent as it is, that output (``runtime.io.sinktemplate``: get its text with ``message_text``)."""

RESEND_FLOOR_MS = 100  # eKuiper's retry interval when the cache is on and resendInterval is 0 (sink_node.go)

_CACHE_KEYS = frozenset(
    {
        "enableCache",
        "memoryCacheThreshold",
        "maxDiskCache",
        "bufferPageSize",
        "resendInterval",
        "cleanCacheAtStop",
        "resendAlterQueue",
        "resendPriority",
        "resendIndicatorField",
        "resendDestination",
    }
)

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
        # v1 retry/cache properties, superseded by the cache keys: accepted and ignored as eKuiper v2 does
        "retryInterval",
        "retryCount",
        "cacheLength",
        "cacheSaveInterval",
        "dataTemplate",
        *_CACHE_KEYS,
    }
)


class _Problems:
    """The wrong properties of one action, collected so that ``from_action`` reports all of them at once.

    Each reader returns the property's value, or its default after noting why the given value is wrong.
    """

    def __init__(self, props: Mapping[str, Any]) -> None:
        self.props = props
        self.found: list[str] = []

    def flag(self, key: str, default: bool) -> bool:
        value = self.props.get(key, default)
        if not isinstance(value, bool):
            self.found.append(f"sink property {key!r} must be a bool, got {value!r}")
            return default
        return value

    def count(self, key: str, default: int) -> int:
        value = self.props.get(key, default)
        # bool is an int subclass; `true` as a buffer length is a mistake, not 1.
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            self.found.append(f"sink property {key!r} must be a non-negative integer, got {value!r}")
            return default
        return value

    def text(self, key: str, default: str) -> str:
        value = self.props.get(key, default)
        if not isinstance(value, str):
            self.found.append(f"sink property {key!r} must be a string, got {value!r}")
            return default
        return value

    def names(self, key: str) -> tuple[str, ...] | None:
        value = self.props.get(key)
        if value is None:
            return None
        if not isinstance(value, list) or not all(isinstance(name, str) for name in value):
            self.found.append(f"sink property {key!r} must be a list of strings, got {value!r}")
            return None
        return tuple(value)

    def duration_ms(self, key: str, default: int) -> int:
        """Milliseconds: an integer, or a Go duration string (``"500ms"``, ``"1s"``), as eKuiper's DurationConf."""
        value = self.props.get(key, default)
        if isinstance(value, str):
            try:
                value = parse_duration_ms(value.strip())
            except ValueError:
                self.found.append(
                    f"sink property {key!r} must be a duration like '500ms' or '1s', got {value!r}"
                )
                return default
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            self.found.append(
                f"sink property {key!r} must be a non-negative number of milliseconds or a duration, got {value!r}"
            )
            return default
        return value


@final
@attrs.frozen
class CacheProps:
    """The sink cache properties of one action (eKuiper's ``SinkConf``; defaults of its ``etc/kuiper.yaml``).

    Attributes:
      enabled: ``enableCache``; off, a message the target cannot take is counted and dropped.
      memory_threshold: ``memoryCacheThreshold``, messages kept in memory (the oldest pending ones).
      max_disk: ``maxDiskCache``, messages kept on disk beyond them; past it the oldest disk page is dropped.
      page_size: ``bufferPageSize``, messages per disk page (the unit of every disk read and write).
      resend_interval_ms: ``resendInterval``; 0 means retries every ``RESEND_FLOOR_MS`` and no pause between
        the resends of a chain.
      clean_at_stop: ``cleanCacheAtStop``, drop what is cached when the rule stops instead of keeping it.
      alter_queue: ``resendAlterQueue``, failed messages go to a resend queue and new ones are not held behind.
      priority: ``resendPriority`` (alter queue only): -1 new data first, 0 equal, 1 cached data first.
      indicator_field: ``resendIndicatorField`` (alter queue only): set to true in every resent row.
      destination: ``resendDestination`` (alter queue only): the ``topic`` resent messages go to.
    """

    enabled: bool = False
    memory_threshold: int = 1024
    max_disk: int = 1024000
    page_size: int = 256
    resend_interval_ms: int = 0
    clean_at_stop: bool = False
    alter_queue: bool = False
    priority: int = 0
    indicator_field: str = ""
    destination: str = ""

    @property
    def retry_interval(self) -> float:
        """Seconds between two attempts to resend a message the target could not take."""
        return max(self.resend_interval_ms, RESEND_FLOOR_MS) / 1000

    @property
    def chain_interval(self) -> float:
        """Seconds between two cached messages resent in a row once the target takes them again."""
        return self.resend_interval_ms / 1000

    @classmethod
    def parse(cls, props: Mapping[str, Any], problems: list[str]) -> CacheProps:
        """The cache properties of ``props``, checked as eKuiper's ``SinkConf.Validate`` (whether or not the cache
        is enabled); what is wrong is appended to ``problems`` (then the result holds defaults)."""
        read = _Problems(props)
        memory = read.count("memoryCacheThreshold", 1024)
        max_disk = read.count("maxDiskCache", 1024000)
        wrong = len(read.found)
        page = read.count("bufferPageSize", 256)
        if len(read.found) == wrong and page == 0:
            read.found.append("sink property 'bufferPageSize' must be positive, got 0")
        if len(read.found) == wrong:  # the page size is good: the sizes measured in pages can be checked
            for key, value in (("memoryCacheThreshold", memory), ("maxDiskCache", max_disk)):
                if value < page:
                    read.found.append(
                        f"sink property {key!r} ({value}) must be at least bufferPageSize ({page})"
                    )
                elif value % page:
                    read.found.append(
                        f"sink property {key!r} ({value}) must be a multiple of bufferPageSize ({page})"
                    )
        priority = props.get("resendPriority", 0)
        if type(priority) is not int or priority not in (-1, 0, 1):
            read.found.append(f"sink property 'resendPriority' must be -1, 0 or 1, got {priority!r}")
            priority = 0
        result = cls(
            enabled=read.flag("enableCache", False),
            memory_threshold=memory,
            max_disk=max_disk,
            page_size=page or 1,
            resend_interval_ms=read.duration_ms("resendInterval", 0),
            clean_at_stop=read.flag("cleanCacheAtStop", False),
            alter_queue=read.flag("resendAlterQueue", False),
            priority=priority,
            indicator_field=read.text("resendIndicatorField", ""),
            destination=read.text("resendDestination", ""),
        )
        problems.extend(read.found)
        return result


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
    cache: CacheProps = CacheProps()
    data_template: GoTemplate | None = attrs.field(default=None, eq=False)
    connector_props: dict[str, Any] = attrs.field(factory=dict, eq=True, hash=False)

    @classmethod
    def from_action(cls, props: Mapping[str, Any]) -> SinkProps:
        """Parse and type-check the common and cache properties of one action's property object.

        Raises:
          PlanError: every property with a wrong type or value, in one message (``; ``-separated); a
            ``dataTemplate`` that does not parse is reported with its line and column.
        """
        read = _Problems(props)
        data_field = read.text("dataField", "") or read.text("tableDataField", "")
        parsed = cls(
            send_single=read.flag("sendSingle", False),
            omit_if_empty=read.flag("omitIfEmpty", False),
            fields=read.names("fields"),
            exclude_fields=read.names("excludeFields"),
            data_field=data_field,
            format=read.text("format", "json"),
            buffer_length=read.count("bufferLength", 1024),
            concurrency=read.count("concurrency", 1),
            batch_size=read.count("batchSize", 0),
            linger_interval=read.count("lingerInterval", 0),
            cache=CacheProps.parse(props, read.found),
            data_template=parse_data_template(props, read.found),
            connector_props={k: v for k, v in props.items() if k not in _RUNTIME_ONLY},
        )
        if read.found:
            raise PlanError("; ".join(read.found))
        return parsed

    @property
    def is_plain(self) -> bool:
        """True when ``messages`` of an emission is always ``[emission]`` (no property reshapes it)."""
        return not (
            self.data_field
            or self.fields is not None
            or self.exclude_fields is not None
            or self.send_single
            or self.omit_if_empty
            or self.data_template is not None
        )

    def messages(self, emission: list[Row]) -> list[Message]:
        """The sink messages for one emission, in order: dataField, fields/excludeFields, omitIfEmpty, sendSingle.

        dataField takes that key of each row: a row value replaces the row, a list value replaces it with
        its rows, anything else (missing, scalar) drops it. Rows are copied only when fields are filtered,
        since emissions may be shared between sinks. A ``dataTemplate`` runs first, as in eKuiper: see
        ``_templated``.
        """
        if self.data_template is not None:
            return self._templated(self.data_template, emission)
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

    def _templated(self, template: GoTemplate, emission: list[Row]) -> list[Message]:
        """omitIfEmpty and sendSingle pick what the template runs on (each row, or all rows); its output is a
        ``str`` message, or with dataField/fields/excludeFields or a non-text format, decoded and selected
        (``runtime.io.sinktemplate.render``)."""
        if self.send_single:
            targets: list[Row | list[Row]] = [row for row in emission if row or not self.omit_if_empty]
        elif self.omit_if_empty and not emission:
            return []
        else:
            targets = [emission]
        out: list[Message] = []
        for target in targets:
            message = render(
                template,
                target,
                format=self.format,
                data_field=self.data_field,
                fields=self.fields,
                exclude_fields=self.exclude_fields,
            )
            if message is not None:
                out.append(message)
        return out


def _extract(rows: list[Row], data_field: str) -> list[Row]:
    out: list[Row] = []
    for row in rows:
        value = row.get(data_field)
        if isinstance(value, dict):
            out.append(value)
        elif isinstance(value, list):
            out.extend(item for item in value if isinstance(item, dict))
    return out
