"""CircuitBreaker: every transition, driven by an injected clock."""

from __future__ import annotations

import logging

import pytest

from kimp_fast.breaker import BreakerState, CircuitBreaker

CLOSED, OPEN, HALF = BreakerState.CLOSED, BreakerState.OPEN, BreakerState.HALF_OPEN


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def events() -> list[tuple[str, BreakerState, BreakerState, str]]:
    return []


@pytest.fixture
def breaker(clock, events) -> CircuitBreaker:
    return CircuitBreaker(
        "binance", 3, 10.0, clock=clock, on_transition=lambda *a: events.append(a)
    )


def trip(b: CircuitBreaker) -> None:
    for _ in range(b.failure_threshold):
        b.record_failure("timeout")


def test_starts_closed_and_allows(breaker, events):
    assert breaker.state is CLOSED and breaker.allow() and breaker.allow()
    assert events == []


def test_opens_after_threshold_consecutive_failures(breaker, clock, events):
    breaker.record_failure("timeout")
    breaker.record_failure("http 503")
    assert breaker.state is CLOSED and breaker.allow() and breaker.consecutive_failures == 2
    breaker.record_failure("connection reset")
    assert breaker.state is OPEN and not breaker.allow()
    assert events == [("binance", CLOSED, OPEN, "3 consecutive failures: connection reset")]
    snap = breaker.snapshot()
    assert snap["opened_at"] == 1000.0 and snap["retry_at"] == 1010.0 and snap["retry_in_s"] == 10.0


def test_success_resets_the_consecutive_count(breaker):
    breaker.record_failure()
    breaker.record_failure()
    breaker.record_success()
    assert breaker.consecutive_failures == 0
    breaker.record_failure()
    breaker.record_failure()
    assert breaker.state is CLOSED


def test_open_refuses_until_the_timeout_then_half_open(breaker, clock, events):
    trip(breaker)
    clock.advance(9.999)
    assert breaker.state is OPEN and not breaker.allow()
    clock.advance(0.001)
    assert breaker.state is HALF
    assert events[-1] == ("binance", OPEN, HALF, "recovery timeout (10 s) elapsed")


def test_half_open_allows_exactly_one_trial(breaker, clock):
    trip(breaker)
    clock.advance(10)
    assert breaker.allow() is True
    assert breaker.trial_in_flight
    assert [breaker.allow() for _ in range(5)] == [False] * 5
    assert breaker.state is HALF


def test_trial_success_closes(breaker, clock, events):
    trip(breaker)
    clock.advance(10)
    assert breaker.allow()
    breaker.record_success()
    assert breaker.state is CLOSED and breaker.allow() and breaker.allow()
    assert events[-1] == ("binance", HALF, CLOSED, "trial call succeeded")
    snap = breaker.snapshot()
    assert snap["opened_at"] is None and snap["retry_at"] is None and not snap["trial_in_flight"]


def test_trial_failure_reopens_and_restarts_the_timer(breaker, clock, events):
    trip(breaker)
    clock.advance(15)
    assert breaker.allow()
    breaker.record_failure("http 500")
    assert breaker.state is OPEN and not breaker.allow()
    assert events[-1] == ("binance", HALF, OPEN, "trial call failed: http 500")
    assert breaker.snapshot()["retry_at"] == clock.now + 10
    clock.advance(9)
    assert breaker.state is OPEN
    clock.advance(1)
    assert breaker.state is HALF and breaker.allow()


def test_full_cycle_of_transitions(breaker, clock, events):
    trip(breaker)
    clock.advance(10)
    breaker.allow()
    breaker.record_failure("x")
    clock.advance(10)
    breaker.allow()
    breaker.record_success()
    assert [(old, new) for _, old, new, _ in events] == [
        (CLOSED, OPEN),
        (OPEN, HALF),
        (HALF, OPEN),
        (OPEN, HALF),
        (HALF, CLOSED),
    ]


def test_released_trial_permit_can_be_used_by_the_next_caller(breaker, clock):
    trip(breaker)
    clock.advance(10)
    assert breaker.allow()
    breaker.release()  # the permitted signal sent nothing to this exchange
    assert not breaker.trial_in_flight
    assert breaker.allow() and not breaker.allow()


def test_release_outside_half_open_is_harmless(breaker):
    breaker.release()
    assert breaker.state is CLOSED and breaker.allow()


def test_a_lost_trial_permit_expires_after_the_recovery_timeout(breaker, clock):
    trip(breaker)
    clock.advance(10)
    assert breaker.allow()
    clock.advance(9.5)
    assert not breaker.allow()
    clock.advance(0.5)  # the trial never reported: its caller is presumed gone
    assert breaker.allow() and not breaker.allow()


def test_outcomes_while_open_from_repairs_bypassing_the_gate(breaker, clock, events):
    trip(breaker)
    clock.advance(6)
    breaker.record_success()  # a repair call got through: noted, but OPEN keeps its timer
    assert breaker.state is OPEN and breaker.consecutive_failures == 0
    clock.advance(3)
    breaker.record_failure("timeout")  # still failing: wait a full timeout from now
    assert breaker.snapshot()["retry_at"] == clock.now + 10
    clock.advance(9)
    assert breaker.state is OPEN
    clock.advance(1)
    assert breaker.state is HALF
    assert [(old, new) for _, old, new, _ in events] == [(CLOSED, OPEN), (OPEN, HALF)]


def test_success_in_half_open_without_a_trial_still_closes(breaker, clock):
    trip(breaker)
    clock.advance(10)
    breaker.record_success()  # e.g. a hedge repair succeeded
    assert breaker.state is CLOSED


def test_reset_forces_closed(breaker, events):
    trip(breaker)
    breaker.reset("operator")
    assert breaker.state is CLOSED and breaker.allow() and breaker.consecutive_failures == 0
    assert events[-1] == ("binance", OPEN, CLOSED, "operator")
    breaker.reset()
    assert len(events) == 2  # no transition when already closed


def test_threshold_of_one(clock):
    b = CircuitBreaker("upbit", 1, 0.5, clock=clock)
    b.record_failure()
    assert b.state is OPEN
    clock.advance(0.5)
    assert b.allow()


def test_a_failing_observer_does_not_break_the_breaker(clock, caplog):
    def boom(*_):
        raise RuntimeError("journal down")

    b = CircuitBreaker("upbit", 1, 1.0, clock=clock, on_transition=boom)
    with caplog.at_level(logging.ERROR, logger="kimp_fast.breaker"):
        b.record_failure("timeout")
    assert b.state is OPEN
    assert "on_transition callback failed" in caplog.text


def test_transitions_are_logged(breaker, caplog):
    with caplog.at_level(logging.INFO, logger="kimp_fast.breaker"):
        trip(breaker)
    assert "circuit breaker binance: closed -> open (3 consecutive failures: timeout)" in caplog.text


def test_snapshot_fields(breaker, clock):
    breaker.record_failure("http 502")
    snap = breaker.snapshot()
    assert snap == {
        "name": "binance",
        "state": "closed",
        "consecutive_failures": 1,
        "total_failures": 1,
        "failure_threshold": 3,
        "recovery_timeout": 10.0,
        "opened_at": None,
        "retry_at": None,
        "retry_in_s": None,
        "trial_in_flight": False,
        "last_failure": "http 502",
    }
    trip(breaker)
    clock.advance(4)
    snap = breaker.snapshot()
    assert snap["state"] == "open" and snap["retry_in_s"] == pytest.approx(6.0)
    assert snap["total_failures"] == 4


def test_state_enum_is_a_string():
    assert BreakerState.HALF_OPEN == "half_open" and str(BreakerState.OPEN) == "open"
    assert f"{BreakerState.CLOSED}" == "closed" and BreakerState("open") is OPEN


@pytest.mark.parametrize(("threshold", "timeout"), [(0, 1.0), (True, 1.0), (2.5, 1.0), (1, 0.0), (1, -1.0)])
def test_bad_parameters(threshold, timeout):
    with pytest.raises(ValueError):
        CircuitBreaker("x", threshold, timeout)


def test_default_clock_is_monotonic():
    b = CircuitBreaker("upbit")
    assert (b.failure_threshold, b.recovery_timeout) == (5, 30.0)
    trip(b)
    assert b.state is OPEN and 29.0 < b.snapshot()["retry_in_s"] <= 30.0
