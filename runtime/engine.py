"""The engine: catalog of streams, tables and rules, and the supervisor nursery that runs every rule.

Each rule runs under its own supervisor task (``_supervise``) in the engine's nursery: a rule failing is caught
there, reported in its status and restarted per ``restartStrategy``; it never disturbs another rule.
"""

from __future__ import annotations

import functools
import logging
import random
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, final

import attrs
import trio

from runtime.clock import Clock
from runtime.config import Config
from runtime.errors import EngineError, NotFoundError, RuleError, StreamError
from runtime.io.contract import IoContext
from runtime.io.memory.bus import Published
from runtime.io.registry import Registry, builtin_registry
from runtime.io.services import Services
from runtime.metrics import LoopLag, RuleMetrics
from runtime.model import Row
from runtime.plan.catalog import KINDS, Catalog
from runtime.plan.planner import RulePlan, plan_rule
from runtime.plan.ruledef import RuleDef, parse_rule
from runtime.rule.loop import RuleEnv
from runtime.rule.pipeline import check_connectors
from runtime.rule.sinkcache import drop_rule_caches
from runtime.rule.supervisor import RuleState, supervise
from runtime.sql.ast import DescribeStmt, DropStmt, ShowStmt, StreamDef
from runtime.sql.ddl import describe_text, stream_json
from runtime.sql.parser import parse_ddl, parse_select

LOGGER = logging.getLogger("oort.engine")
STARTUP_WAIT = 1.0  # seconds start-up waits for the stored rules to be running before the engine is ready
STOP_TIMEOUT = (
    5.0  # seconds a stopping rule may take before stop() gives up waiting (sinks are bounded to 2 s)
)


def _title(kind: str) -> str:
    return kind.capitalize()


@final
class Engine:
    """Streams, tables and rules, and the rules' supervisor.

    Args:
      config: the loaded ``etc/oort.toml``.
      etc_dir: the configuration folder (conf groups are read from ``etc_dir/sources``).
      data_dir: where the catalog is persisted.
      clock: the time source; default a wall-anchored ``Clock`` made when ``run`` starts.
      registry: connector types; default ``builtin_registry()``.
      seed: seeds the restart jitter (tests).

    ``run`` must be started (``await nursery.start(engine.run)``) before rules can start.
    """

    def __init__(
        self,
        config: Config,
        *,
        etc_dir: Path,
        data_dir: Path,
        clock: Clock | None = None,
        registry: Registry | None = None,
        seed: int | None = None,
    ) -> None:
        self.config = config
        self.etc_dir = etc_dir
        self.data_dir = data_dir
        self.catalog = Catalog(data_dir)
        self.registry = registry or builtin_registry()
        self.services = Services.for_daemon(config, etc_dir, data_dir)
        self._clock = clock
        self._random = random.Random(seed)
        self._rules: dict[str, RuleState] = {}
        self._locks: dict[str, trio.Lock] = {}
        self._nursery: trio.Nursery | None = None
        self.started_at = 0
        self._query_seq = 0
        self.shutdown_requested = trio.Event()  # set by REST ``/stop``; the daemon then shuts down
        self.loop_lag = LoopLag()  # event-loop lag for /metrics; the daemon runs its probe

    @property
    def clock(self) -> Clock:
        if self._clock is None:
            raise EngineError("the engine is not running")
        return self._clock

    # ------------------------------------------------------------------ lifetime

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Load the catalog, start every rule whose ``triggered`` is true, then supervise until cancelled.

        The nursery opened here is the supervisor nursery: every rule's supervisor task runs in it, and so do
        the engine-wide connector services that outlive single rules (``self.services``: the global websocket
        data server, started by the first server-mode source or sink and stopped by the last, and the shared
        websocket client connections).

        Cancellation: cancelling stops every rule; each rule's sinks are flushed and closed, and the data
        server's port and every shared connection are released, before this returns.
        """
        if self._clock is None:
            self._clock = Clock()
        self.started_at = self._clock.now_ms()
        self.catalog.load(self.config.rule)
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            self.services.attach(nursery)
            try:
                for rule in self.catalog.rules.values():
                    state = RuleState(rule, self._rule_sources(rule))
                    self._rules[rule.id] = state
                # All at once, so one slow connector delays no other rule; readiness waits a moment for them
                # (rules that start quickly are running when the REST API opens), never longer.
                starting = [state for state in self._rules.values() if state.rule.triggered]
                done = trio.Semaphore(0)
                for state in starting:
                    nursery.start_soon(self._start_stored, state, done)
                with trio.move_on_after(STARTUP_WAIT):
                    for _ in starting:
                        await done.acquire()
                task_status.started()
                await trio.sleep_forever()
            finally:
                self._nursery = None
                self.services.attach(None)

    # ------------------------------------------------------------------ streams and tables

    def create_stream(self, kind: str, sql: str) -> str:
        """Execute stream/table DDL text (CREATE, DROP, DESCRIBE, SHOW), as eKuiper's ``POST /streams``."""
        stmt = parse_ddl(sql)
        if isinstance(stmt, StreamDef):
            existing = self.catalog.streams[stmt.kind]
            if stmt.name in existing or stmt.name in self.catalog.streams[_other(stmt.kind)]:
                raise StreamError(f"Create {stmt.kind} fails: Item {stmt.name} already exists.")
            self.catalog.put_stream(stmt)
            return f"{_title(stmt.kind)} {stmt.name} is created."
        if isinstance(stmt, DropStmt):
            return self._drop(stmt.kind, stmt.name, force=False)
        if isinstance(stmt, DescribeStmt):
            return describe_text(self._get_stream(stmt.kind, stmt.name, "Describe"))
        if isinstance(stmt, ShowStmt):
            names = self.list_streams(stmt.kind)
            return "\n".join(names) if names else f"No {stmt.kind} definitions are found."
        raise StreamError(f"{_title(kind)} command error: unsupported statement")

    def list_streams(self, kind: str) -> list[str]:
        return sorted(self.catalog.streams[kind])

    def get_stream(self, kind: str, name: str) -> StreamDef:
        return self._get_stream(kind, name, "Describe")

    def describe_stream(self, kind: str, name: str) -> dict[str, Any]:
        return stream_json(self._get_stream(kind, name, "Describe"))

    def replace_stream(self, kind: str, name: str, sql: str) -> str:
        stmt = parse_ddl(sql)
        if not isinstance(stmt, StreamDef) or stmt.kind != kind:
            raise StreamError(f"Replace {kind} fails: the statement must be CREATE {kind.upper()}")
        if stmt.name != name:
            raise StreamError(f"Replace {kind} fails: the name {stmt.name} does not match {name}")
        old = self.catalog.streams[kind].get(name)
        if old is None:
            raise NotFoundError(f"Replace {kind} fails: {kind} {name} is not found.")
        if old.options.shared != stmt.options.shared:
            raise StreamError(f"Replace {kind} fails: the SHARED option of {name} cannot be changed")
        if old.options.version and stmt.options.version <= old.options.version:
            raise StreamError(
                f"Replace {kind} fails: version {stmt.options.version!r} is not greater than {old.options.version!r}"
            )
        self.catalog.put_stream(stmt)
        return f"{_title(kind)} {name} is replaced."

    async def drop_stream(self, kind: str, name: str, *, force: bool = False) -> str:
        return self._drop(kind, name, force=force)

    def _drop(self, kind: str, name: str, *, force: bool) -> str:
        if name not in self.catalog.streams[kind]:
            raise NotFoundError(f"Drop {kind} fails: {kind} {name} is not found.")
        users = sorted(state.rule.id for state in self._rules.values() if name in state.sources)
        if users and not force:
            raise StreamError(f"{kind} {name} has been referenced by other rules")
        self.catalog.remove_stream(kind, name)
        return f"{_title(kind)} {name} is dropped."

    def _get_stream(self, kind: str, name: str, verb: str) -> StreamDef:
        stream = self.catalog.streams[kind].get(name)
        if stream is None:
            raise NotFoundError(f"{verb} {kind} fails, {name} is not found.")
        return stream

    # ------------------------------------------------------------------ rules

    async def create_rule(self, raw: Mapping[str, Any]) -> str:
        rule = parse_rule(raw, self.config.rule)
        if rule.id in self._rules:
            raise RuleError(f"rule {rule.id} already exists", rule.id)
        plan = self._plan(rule)
        state = RuleState(rule, plan.source_names)
        self._persist(rule)
        self._rules[rule.id] = state
        if rule.triggered:
            await self._start(state, plan)
        return f"Rule {rule.id} was created successfully."

    def list_rules(self) -> list[dict[str, Any]]:
        return [
            {
                "id": rid,
                "name": state.rule.name or rid,
                "status": state.status,
                "version": state.rule.version,
                "trace": False,
                "tags": list(state.rule.tags) or None,
            }
            for rid, state in sorted(self._rules.items())
        ]

    def get_rule(self, rule_id: str) -> dict[str, Any]:
        return dict(self._state(rule_id).rule.raw)

    async def update_rule(self, rule_id: str, raw: Mapping[str, Any]) -> str:
        body_id = raw.get("id") if isinstance(raw, Mapping) else None
        if body_id and body_id != rule_id:
            raise RuleError("RuleId is not consistent with rule id.", rule_id)
        rule = parse_rule({**raw, "id": rule_id}, self.config.rule)
        old = self._rules.get(rule_id)
        if old is None:
            return (await self.create_rule(rule.raw)).replace("created", "updated")
        if old.rule.version and rule.version <= old.rule.version:
            raise RuleError(
                f"rule {rule_id} update fails: version {rule.version!r} is not greater than {old.rule.version!r}",
                rule_id,
            )
        plan = self._plan(rule)  # fails before the old rule is touched
        async with self._lock(rule_id):
            old = self._rules.get(rule_id, old)
            self._persist(rule)  # so does saving it: the old rule keeps running
            was_active = old.active
            # Every request from now on sees the new rule (a tag set meanwhile must not save the old one).
            state = self._rules[rule_id] = RuleState(rule, plan.source_names)
            await self._stop(old)
            if rule.triggered or was_active:
                await self._start(state, plan)
        return f"Rule {rule_id} was updated successfully."

    async def delete_rule(self, rule_id: str) -> str:
        async with self._lock(rule_id):
            state = self._rules.get(rule_id)
            if state is None:
                raise NotFoundError(f"rule {rule_id} not found")
            self.catalog.remove_rule(rule_id)  # first: a rule that cannot be removed keeps running
            del self._rules[rule_id]  # before the stop's wait: nothing may save it again meanwhile
            await self._stop(state)
            drop_rule_caches(self.data_dir, rule_id)  # its sinks' unsent messages go with it (eKuiper)
        self._locks.pop(rule_id, None)
        return f"Rule {rule_id} is dropped."

    async def start_rule(self, rule_id: str) -> str:
        async with self._lock(rule_id):
            state = self._state(rule_id)
            self._set_triggered(state, True)
            if not state.active:
                await self._start(state)
        return f"Rule {rule_id} was started"

    async def stop_rule(self, rule_id: str) -> str:
        async with self._lock(rule_id):
            state = self._state(rule_id)
            self._set_triggered(state, False)
            await self._stop(state)
        return f"Rule {rule_id} was stopped."

    async def restart_rule(self, rule_id: str) -> str:
        async with self._lock(rule_id):
            state = self._state(rule_id)
            self._set_triggered(state, True)
            await self._stop(state)
            await self._start(state)
        return f"Rule {rule_id} was restarted"

    def rule_status(self, rule_id: str) -> dict[str, Any]:
        state = self._state(rule_id)
        status: dict[str, Any] = {
            "status": state.status,
            "message": state.message,
            "lastStartTimestamp": state.last_start,
            "lastStopTimestamp": state.last_stop,
            "nextStartTimestamp": 0,
        }
        status.update(state.metrics.snapshot())
        return status

    def rule_scan_tables(self, rule_id: str) -> dict[str, list[Row]]:
        """The current rows of a running rule's scan tables, by FROM/JOIN name (``{}`` when it has none or is
        not running). Raises NotFoundError for an unknown rule."""
        state = self._state(rule_id)
        read = state.metrics.scan_tables
        if read is None or state.status != "running":
            return {}
        return {name: [dict(row) for row in rows] for name, rows in read().items()}

    def all_rule_status(self) -> dict[str, Any]:
        return {
            rid: {
                "status": state.status,
                "last_exception": state.metrics.last_exception(),
                "exceptions_total": state.metrics.exceptions_total(),
            }
            for rid, state in sorted(self._rules.items())
        }

    def validate_rule(self, raw: Mapping[str, Any]) -> list[str]:
        """Check a rule as ``create_rule`` would, without creating it; returns the streams it reads."""
        rule = parse_rule(raw, self.config.rule)
        return list(self._plan(rule).source_names)

    def set_tags(self, rule_id: str, tags: list[str]) -> None:
        """Replace a rule's tags; the rule keeps running (tags do not change what it does)."""
        state = self._state(rule_id)
        raw = {**state.rule.raw, "tags": list(tags)}
        rule = attrs.evolve(state.rule, tags=tuple(tags), raw=raw)
        self._persist(rule)
        state.rule = rule

    def rule_tags(self, rule_id: str) -> list[str]:
        return list(self._state(rule_id).rule.tags)

    def rule_ids(self) -> list[str]:
        return sorted(self._rules)

    def rule_sources(self, rule_id: str) -> tuple[str, ...]:
        """The streams and tables a rule reads (FROM and JOIN names)."""
        return self._state(rule_id).sources

    def rule_metrics(self, rule_id: str) -> RuleMetrics:
        """The live (or, once stopped, the last) metrics of a rule's run."""
        return self._state(rule_id).metrics

    def rule_is_active(self, rule_id: str) -> bool:
        return self._state(rule_id).active

    async def wait_status(self, rule_id: str, *statuses: str) -> str:
        """Wait until the rule's status is one of ``statuses``; returns it."""
        state = self._state(rule_id)
        while state.status not in statuses:
            await state.wait_change()
        return state.status

    async def wait_stopped(self, rule_id: str) -> None:
        """Wait until the rule's supervisor has ended (stopped, finished, or out of restart attempts)."""
        await self._state(rule_id).stopped.wait()

    @asynccontextmanager
    async def query(self, sql: str, buffer: int = 64) -> AsyncIterator[trio.MemoryReceiveChannel[Published]]:
        """Run ``sql`` as a temporary rule for the duration of the block; yields its emissions.

        The rule is never persisted and is dropped on the way out (the CLI's ``query`` prompt uses this
        through REST ``POST /query``).

        Raises:
          EngineError: the query does not parse or plan (nothing is left behind).
        """
        self._query_seq += 1
        rule_id = f"__query_{self._query_seq}"
        topic = f"oort/query/{rule_id}"
        async with self.services.memory.subscribe(topic, buffer) as recv:
            rule = {"id": rule_id, "sql": sql, "actions": [{"memory": {"topic": topic}}], "temp": True}
            await self.create_rule(rule)
            try:
                yield recv
            finally:
                with trio.CancelScope(shield=True):
                    await self.delete_rule(rule_id)

    async def publish(self, topic: str, rows: list[Row]) -> None:
        """Publish rows to a memory topic, as a memory sink would (Oort's REST ``POST /memory/{topic}``)."""
        await self.services.memory.publish(topic, rows)

    # ------------------------------------------------------------------ provisioning from etc/

    def provision_stream(self, stmt: StreamDef) -> str:
        """Create a stream/table from a startup file, or replace it when its definition changed."""
        existing = self.catalog.streams[stmt.kind].get(stmt.name)
        if existing is None:
            return self.create_stream(stmt.kind, stmt.statement)
        if existing.statement == stmt.statement:
            return f"{_title(stmt.kind)} {stmt.name} is unchanged."
        self.catalog.put_stream(stmt)
        return f"{_title(stmt.kind)} {stmt.name} is replaced."

    async def provision_rule(self, raw: Mapping[str, Any]) -> str:
        """Create a rule from a startup file, or update it when its definition changed.

        An unchanged rule keeps its persisted started/stopped state (``triggered``), so a rule a user stopped
        stays stopped across restarts.
        """
        rule_id = raw.get("id")
        state = self._rules.get(rule_id) if isinstance(rule_id, str) else None
        if state is None:
            return await self.create_rule(raw)
        if _without_triggered(state.rule.raw) == _without_triggered(raw):
            return f"Rule {state.rule.id} is unchanged."
        return await self.update_rule(state.rule.id, raw)

    # ------------------------------------------------------------------ supervision

    def _state(self, rule_id: str) -> RuleState:
        state = self._rules.get(rule_id)
        if state is None:
            raise NotFoundError(f"Rule {rule_id} is not found in registry, please check if it is created")
        return state

    def _lock(self, rule_id: str) -> trio.Lock:
        """One change at a time per rule: a stop, start, update or delete waits for the one in progress."""
        return self._locks.setdefault(rule_id, trio.Lock())

    def _persist(self, rule: RuleDef) -> None:
        if not rule.temp:
            self.catalog.put_rule(rule)

    def _set_triggered(self, state: RuleState, triggered: bool) -> None:
        if state.rule.triggered != triggered:
            rule = state.rule.with_triggered(triggered)
            self._persist(rule)  # saved first: a failure leaves the rule as it was, running or not
            state.rule = rule

    def _rule_env(self) -> RuleEnv:
        return RuleEnv(clock=self.clock, services=self.services, registry=self.registry, etc_dir=self.etc_dir)

    def _plan(self, rule: RuleDef) -> RulePlan:
        """Plan a new or changed rule and validate its connectors' properties, raising what is wrong."""
        plan = plan_rule(rule, self.catalog, self.registry)
        ctx = IoContext(rule_id=rule.id, clock=self.clock, services=self.services, logger=LOGGER)
        check_connectors(plan, self._rule_env(), ctx)
        return plan

    def _rule_sources(self, rule: RuleDef) -> tuple[str, ...]:
        try:
            return tuple(ref.name for ref in parse_select(rule.sql).sources)
        except EngineError:
            return ()

    async def _start(self, state: RuleState, plan: RulePlan | None = None) -> None:
        """Plan (raising planning errors to the caller) and start the rule's supervisor.

        Returns once the first run is up (status ``running``) or has failed (``stopped by error``).
        """
        if self._nursery is None:
            raise EngineError("the engine is not running")
        if plan is None:
            plan = plan_rule(state.rule, self.catalog, self.registry)
        state.stopped = trio.Event()
        state.scope = trio.CancelScope()
        env = self._rule_env()
        replan = functools.partial(plan_rule, catalog=self.catalog, registry=self.registry)
        await self._nursery.start(functools.partial(supervise, state, plan, env, replan, self._random))

    async def _start_stored(self, state: RuleState, done: trio.Semaphore) -> None:
        try:
            await self._start(state)
        except EngineError as exc:
            state.set("stopped by error", exc.message)
            LOGGER.error("rule %s cannot start: %s", state.rule.id, exc.message)
        finally:
            done.release()

    async def _stop(self, state: RuleState) -> None:
        if state.scope is not None:
            state.scope.cancel()
        with trio.move_on_after(STOP_TIMEOUT):
            await state.stopped.wait()
        if state.active:
            LOGGER.error("rule %s did not stop within %.0f s", state.rule.id, STOP_TIMEOUT)

    def __repr__(self) -> str:
        running = sum(1 for state in self._rules.values() if state.active)
        return f"<Engine rules={len(self._rules)} running={running} data={self.data_dir}>"


def _without_triggered(raw: Mapping[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in raw.items() if key != "triggered"}


def _other(kind: str) -> str:
    return KINDS[1] if kind == KINDS[0] else KINDS[0]
