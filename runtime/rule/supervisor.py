"""Rule supervision: a rule's live state and the task that runs it and restarts it per ``restartStrategy``."""

from __future__ import annotations

import logging
import random
from collections.abc import Callable
from typing import final

import trio

from runtime.errors import EngineError, leaves
from runtime.metrics import RuleMetrics
from runtime.plan.planner import RulePlan
from runtime.plan.ruledef import RuleDef
from runtime.rule.loop import RuleEnv
from runtime.rule.pipeline import run_rule

LOGGER = logging.getLogger("oort.engine")


@final
class RuleState:
    """A rule's definition plus what it is doing now. Owned by the engine; read by the status API."""

    def __init__(self, rule: RuleDef, sources: tuple[str, ...]) -> None:
        self.rule = rule
        self.sources = sources
        self.status = "stopped"
        self.message = ""
        self.last_start = 0
        self.last_stop = 0
        self.metrics = RuleMetrics()
        self.scope: trio.CancelScope | None = None
        self.stopped = trio.Event()
        self.stopped.set()
        self._changed = trio.Event()

    def set(self, status: str, message: str | None = None) -> None:
        """Change the status (and message, when given) and wake everyone waiting for a change."""
        self.status = status
        if message is not None:
            self.message = message
        self._changed.set()
        self._changed = trio.Event()

    async def wait_change(self) -> None:
        await self._changed.wait()

    @property
    def active(self) -> bool:
        return not self.stopped.is_set()

    def __repr__(self) -> str:
        return f"<RuleState {self.rule.id} {self.status}>"


async def supervise(
    state: RuleState,
    plan: RulePlan,
    env: RuleEnv,
    replan: Callable[[RuleDef], RulePlan],
    rng: random.Random,
    *,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Run a rule, restarting it after failures per its ``restartStrategy``; report every state change.

    A run that lasted at least ``maxDelay`` resets the attempt count, so a rule that fails once a day is not
    out of attempts after a week. Each restart plans the rule again, so it sees the current stream definitions.

    Returns: when the rule's source ended, its attempts are exhausted, or ``state.scope`` was cancelled.

    Cancellation: ``state.scope`` is the rule's stop button; ``state.stopped`` is set on the way out, after
    the rule's nursery (and so every sink and connection) is closed.
    """
    rule = state.rule
    strategy = rule.options.restart_strategy
    clock = env.clock
    failures = 0
    reported = False
    assert state.scope is not None
    try:
        with state.scope:
            while True:
                state.metrics = RuleMetrics()
                state.set("starting")
                LOGGER.debug("rule %s starting (failures so far: %d)", rule.id, failures)
                run_started = trio.current_time()
                error: str | None = None

                # The run goes in this task (no nursery of its own: one task and one nursery fewer per rule);
                # ``_Started`` reports it running once its pipeline is up, as ``nursery.start`` would.
                def on_started() -> None:
                    nonlocal reported
                    state.set("running", "")
                    state.last_start = clock.now_ms()
                    LOGGER.info("rule %s running", rule.id)
                    if not reported:
                        reported = True
                        task_status.started()

                try:
                    await run_rule(plan, env, state.metrics, task_status=_Started(on_started))
                except* Exception as group:  # every rule failure is reported here, never propagated
                    error = _describe(group)
                state.last_stop = clock.now_ms()
                if error is None:
                    state.set("stopped", "the source has no more data")
                    LOGGER.info("rule %s finished: its source ended", rule.id)
                    break
                state.set("stopped by error", error)
                LOGGER.error("rule %s failed: %s", rule.id, error)
                if not reported:
                    reported = True
                    task_status.started()
                if trio.current_time() - run_started >= strategy.max_delay / 1000:
                    failures = 0  # it ran long enough: a new failure starts a fresh series
                failures += 1
                if failures > strategy.attempts:
                    break
                delay = min(strategy.delay * strategy.multiplier ** (failures - 1), strategy.max_delay)
                delay *= 1 + strategy.jitter_factor * (2 * rng.random() - 1)
                state.set("starting")
                LOGGER.info(
                    "rule %s restarts in %.0f ms (attempt %d of %d)",
                    rule.id,
                    delay,
                    failures,
                    strategy.attempts,
                )
                await trio.sleep(max(delay, 0) / 1000)
                try:
                    plan = replan(state.rule)
                except EngineError as exc:
                    state.set("stopped by error", exc.message)
                    break
    finally:
        if state.scope.cancelled_caught or state.status in ("running", "starting"):
            state.last_stop = clock.now_ms()
            state.set("stopped", "canceled manually")
        state.stopped.set()
        if not reported:
            task_status.started()


@final
class _Started:
    """The ``task_status`` handed to ``run_rule``: calls ``on_started`` when the rule's pipeline is up."""

    __slots__ = ("_on_started",)

    def __init__(self, on_started: Callable[[], None]) -> None:
        self._on_started = on_started

    def started(self, value: object = None) -> None:
        self._on_started()


def _describe(exc: BaseException) -> str:
    """The innermost message(s) of a failure, without the ExceptionGroup wrapping of nurseries."""
    return "; ".join(str(leaf) or type(leaf).__name__ for leaf in leaves(exc))
