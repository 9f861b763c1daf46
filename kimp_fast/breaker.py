"""Per-exchange circuit breaker (SPEC §4.3).

States::

    CLOSED ──failure_threshold consecutive failures──▶ OPEN
    OPEN ──recovery_timeout elapsed (seen by .state / .allow())──▶ HALF_OPEN
    HALF_OPEN ──trial succeeds──▶ CLOSED
    HALF_OPEN ──trial fails──▶ OPEN (timer restarts)

Who calls what
--------------
* :meth:`CircuitBreaker.allow` gates **new** trading traffic only (a new ENTER/EXIT). In
  HALF_OPEN it grants exactly one trial permit at a time; the permit is returned by the next
  :meth:`record_success`/:meth:`record_failure`, or by :meth:`release` when the permitted work
  ends up sending nothing to this exchange (e.g. the other exchange's breaker refused).
* Hedge repairs and unwinds never ask ``allow()`` (leaving a position one-legged is worse than
  calling a struggling exchange) but still record their outcomes.
* Only infrastructure failures are recorded as failures (timeouts, 5xx, 429/418, connection
  errors). A business rejection (insufficient balance, bad quantity) proves the exchange is up
  and may be recorded as a success.

Outcomes reported while OPEN (from repairs, which bypass the gate): a failure restarts the
OPEN timer, a success is noted but does not shorten it — the breaker reopens to traffic only
through a HALF_OPEN trial. A trial permit that is neither reported nor released within
``recovery_timeout`` is considered lost (a crashed caller) and another trial is allowed, so a
breaker can never wedge in HALF_OPEN.

The breaker is deterministic with an injected ``clock`` and not thread-safe (one event loop).
"""

from __future__ import annotations

import enum
import logging
import time
from collections.abc import Callable
from typing import Any

__all__ = ["BreakerState", "CircuitBreaker", "TransitionCallback"]

log = logging.getLogger("kimp_fast.breaker")


class BreakerState(str, enum.Enum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"

    def __str__(self) -> str:
        return self.value


TransitionCallback = Callable[[str, BreakerState, BreakerState, str], None]
"""``(name, old_state, new_state, reason)``: the engine journals and notifies transitions."""


class CircuitBreaker:
    """A consecutive-failure circuit breaker for one exchange.

    Parameters
    ----------
    name : str
        Shown in snapshots and passed to ``on_transition`` (``"upbit"``, ``"binance"``).
    failure_threshold : int
        Consecutive failures that open the breaker (>= 1).
    recovery_timeout : float
        Seconds the breaker stays OPEN before a trial is allowed (> 0).
    clock : callable
        Monotonic seconds; inject a fake clock in tests.
    on_transition : callable, optional
        Called synchronously on every state change. Exceptions it raises are logged and
        swallowed: observing the breaker must never break it.
    """

    __slots__ = (
        "name",
        "failure_threshold",
        "recovery_timeout",
        "_clock",
        "_on_transition",
        "_state",
        "_failures",
        "_total_failures",
        "_opened_at",
        "_retry_at",
        "_trial_started",
        "_last_reason",
    )

    def __init__(
        self,
        name: str,
        failure_threshold: int = 5,
        recovery_timeout: float = 30.0,
        *,
        clock: Callable[[], float] = time.monotonic,
        on_transition: TransitionCallback | None = None,
    ) -> None:
        if isinstance(failure_threshold, bool) or not isinstance(failure_threshold, int) or failure_threshold < 1:
            raise ValueError(f"failure_threshold: expected an integer >= 1, got {failure_threshold!r}")
        if not recovery_timeout > 0:
            raise ValueError(f"recovery_timeout: expected seconds > 0, got {recovery_timeout!r}")
        self.name = name
        self.failure_threshold = failure_threshold
        self.recovery_timeout = float(recovery_timeout)
        self._clock = clock
        self._on_transition = on_transition
        self._state = BreakerState.CLOSED
        self._failures = 0
        self._total_failures = 0
        self._opened_at: float | None = None
        self._retry_at: float | None = None
        self._trial_started: float | None = None  # set while a HALF_OPEN trial permit is out
        self._last_reason = ""

    # ---- state

    @property
    def state(self) -> BreakerState:
        """The current state; reading it moves OPEN to HALF_OPEN once the timeout has passed."""
        if self._state is BreakerState.OPEN and self._retry_at is not None and self._clock() >= self._retry_at:
            self._transition(BreakerState.HALF_OPEN, f"recovery timeout ({self.recovery_timeout:g} s) elapsed")
        return self._state

    @property
    def consecutive_failures(self) -> int:
        return self._failures

    @property
    def trial_in_flight(self) -> bool:
        """True while a HALF_OPEN trial permit is out and not yet reported."""
        return self._trial_started is not None

    def allow(self) -> bool:
        """May NEW trading traffic go to this exchange now?

        CLOSED: yes. OPEN: no. HALF_OPEN: yes for exactly one caller (the trial), then no
        until that trial reports (or is released, or is lost for ``recovery_timeout``).
        """
        if self._state is BreakerState.CLOSED:
            return True  # the usual case, asked on every order: no timeout to look at
        state = self.state
        if state is BreakerState.CLOSED:
            return True
        if state is BreakerState.OPEN:
            return False
        now = self._clock()
        if self._trial_started is not None and now - self._trial_started < self.recovery_timeout:
            return False
        self._trial_started = now
        return True

    def release(self) -> None:
        """Return an unused HALF_OPEN trial permit (the permitted work sent nothing here)."""
        self._trial_started = None

    # ---- outcomes

    def record_success(self) -> None:
        """A call to this exchange completed (including a business rejection)."""
        state = self.state
        self._failures = 0
        if state is BreakerState.HALF_OPEN:
            self._trial_started = None
            self._transition(BreakerState.CLOSED, "trial call succeeded")

    def record_failure(self, reason: str = "") -> None:
        """An infrastructure failure (timeout, 5xx, 429/418, connection error)."""
        state = self.state
        self._failures += 1
        self._total_failures += 1
        self._last_reason = reason
        why = f": {reason}" if reason else ""
        if state is BreakerState.CLOSED:
            if self._failures >= self.failure_threshold:
                self._open(f"{self._failures} consecutive failures{why}")
        elif state is BreakerState.HALF_OPEN:
            self._trial_started = None
            self._open(f"trial call failed{why}")
        else:  # OPEN: a repair call failed; the exchange is still unwell, so wait longer.
            self._retry_at = self._clock() + self.recovery_timeout

    def reset(self, reason: str = "manual reset") -> None:
        """Force CLOSED (operator action); clears the failure count."""
        self._failures = 0
        self._trial_started = None
        if self._state is not BreakerState.CLOSED:
            self._transition(BreakerState.CLOSED, reason)

    # ---- views

    def snapshot(self) -> dict[str, Any]:
        """Plain data for status views and the journal (times are ``clock()`` seconds)."""
        state = self.state
        retry_in = None
        if state is BreakerState.OPEN and self._retry_at is not None:
            retry_in = max(0.0, self._retry_at - self._clock())
        return {
            "name": self.name,
            "state": state.value,
            "consecutive_failures": self._failures,
            "total_failures": self._total_failures,
            "failure_threshold": self.failure_threshold,
            "recovery_timeout": self.recovery_timeout,
            "opened_at": self._opened_at,
            "retry_at": self._retry_at if state is BreakerState.OPEN else None,
            "retry_in_s": retry_in,
            "trial_in_flight": self._trial_started is not None,
            "last_failure": self._last_reason,
        }

    def __repr__(self) -> str:
        return f"<CircuitBreaker {self.name} {self._state.value} failures={self._failures}>"

    # ---- internals

    def _open(self, reason: str) -> None:
        now = self._clock()
        self._opened_at = now
        self._retry_at = now + self.recovery_timeout
        self._transition(BreakerState.OPEN, reason)

    def _transition(self, new: BreakerState, reason: str) -> None:
        old = self._state
        if old is new:
            return
        self._state = new
        if new is BreakerState.CLOSED:
            self._opened_at = None
            self._retry_at = None
        log.log(
            logging.WARNING if new is BreakerState.OPEN else logging.INFO,
            "circuit breaker %s: %s -> %s (%s)",
            self.name,
            old.value,
            new.value,
            reason,
        )
        if self._on_transition is not None:
            try:
                self._on_transition(self.name, old, new, reason)
            except Exception:  # noqa: BLE001 - an observer must not break the breaker
                log.exception("circuit breaker %s: on_transition callback failed", self.name)
