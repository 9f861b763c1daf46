"""Rate limiter under an injected clock: documented limits, reserve lane, server feedback,
429/418 blocks, and compiled == pure for random call sequences."""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st


class FakeClock:
    def __init__(self, t: float = 1000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t

    def advance(self, dt: float) -> None:
        self.t += dt


@pytest.fixture
def clock():
    return FakeClock()


@pytest.fixture
def limiter_cls(ratelimit_impl):
    return ratelimit_impl.RateLimiter


def drain(rl, group, reserved=False, limit=100_000):
    """Acquire until refused; return how many calls were allowed."""
    n = 0
    while n < limit and rl.acquire(group, reserved=reserved) == 0.0:
        n += 1
    return n


# ---- documented limits --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("group", "capacity"),
    [
        ("order", 8), ("order-test", 8), ("default", 30), ("market", 10), ("ticker", 10),
        ("orderbook", 10), ("candle", 10), ("trade", 10), ("websocket-connect", 5),
    ],
)
def test_upbit_per_second_groups(limiter_cls, clock, group, capacity):
    rl = limiter_cls("upbit", clock=clock)
    reserve = int(capacity * 0.2)
    assert drain(rl, group) == capacity - reserve
    assert drain(rl, group, reserved=True) == reserve
    wait = rl.acquire(group, reserved=True)
    assert wait == pytest.approx(1.0)
    clock.advance(wait)
    assert drain(rl, group) == capacity - reserve


def test_upbit_groups_are_independent(limiter_cls, clock):
    rl = limiter_cls("upbit", clock=clock)
    drain(rl, "order")
    assert rl.acquire("order") > 0
    assert rl.acquire("default") == 0.0
    assert rl.acquire("orderbook") == 0.0


def test_upbit_cancel_all_is_one_per_two_seconds(limiter_cls, clock):
    rl = limiter_cls("upbit", clock=clock)
    assert rl.acquire("order-cancel-all") == 0.0
    assert rl.acquire("order-cancel-all") == pytest.approx(2.0)
    clock.advance(1.5)
    assert rl.acquire("order-cancel-all", reserved=True) == pytest.approx(0.5)
    clock.advance(0.5)
    assert rl.acquire("order-cancel-all") == 0.0


def test_upbit_order_rate_is_configurable(limiter_cls, clock):
    rl = limiter_cls("upbit", clock=clock, order_per_sec=12, reserved_share=0.0)
    assert drain(rl, "order") == 12


def test_sliding_window_never_exceeds_capacity_in_any_window(limiter_cls, clock):
    # A refilling token bucket would allow ~2x capacity inside one fixed window.
    rl = limiter_cls("upbit", clock=clock, reserved_share=0.0)
    granted = []
    for _ in range(4000):
        if rl.acquire("order") == 0.0:
            granted.append(clock.t)
        clock.advance(0.013)
    assert len(granted) > 8 * 40
    j = 0
    for i, t in enumerate(granted):
        while granted[j] <= t - 1.0:
            j += 1
        assert i - j + 1 <= 8


def test_wait_is_exact_time_until_enough_expires(limiter_cls, clock):
    rl = limiter_cls("upbit", clock=clock, reserved_share=0.0)
    for _ in range(8):
        assert rl.acquire("order") == 0.0
        clock.advance(0.1)
    # 8 calls at t0, t0+0.1, ..., t0+0.7; now t0+0.8: the first frees at t0+1.0
    assert rl.acquire("order") == pytest.approx(0.2)
    clock.advance(0.2)
    assert rl.acquire("order") == 0.0
    assert rl.acquire("order") == pytest.approx(0.1)


def test_binance_order_group_spends_every_order_bucket(limiter_cls, clock):
    rl = limiter_cls("binance", clock=clock)
    assert drain(rl, "order") == 8  # 10/s minus the 20 % reserve
    assert drain(rl, "order", reserved=True) == 2
    snap = rl.snapshot()["buckets"]
    assert snap["orders_1s"]["used"] == 10
    assert snap["orders_10s"]["used"] == 10
    assert snap["orders_1m"]["used"] == 10
    assert snap["weight_1m"]["used"] == 0  # POST /fapi/v1/order costs no IP weight


def test_binance_ten_second_and_minute_buckets(limiter_cls, clock):
    rl = limiter_cls("binance", clock=clock, reserved_share=0.0, order_per_sec=1000)
    assert drain(rl, "order") == 300  # 300 / 10 s
    wait = rl.acquire("order")
    assert wait == pytest.approx(10.0)
    total = 300
    for _ in range(5):
        clock.advance(10.0)
        total += drain(rl, "order")
    assert total == 1200  # 1200 / min caps it before the 10 s bucket does
    assert rl.acquire("order") > 0


def test_binance_weight_groups(limiter_cls, clock):
    rl = limiter_cls("binance", clock=clock)
    assert rl.acquire("weight:20") == 0.0
    assert rl.acquire("default", 5) == 0.0
    assert rl.acquire("weight:5", weight=2) == 0.0
    assert rl.snapshot()["buckets"]["weight_1m"]["used"] == 35
    assert rl.acquire("default", 1920 - 35) == 0.0  # 2400 minus the 480 reserve
    assert rl.acquire("default") == pytest.approx(60.0)
    assert rl.acquire("default", reserved=True) == 0.0


def test_custom_groups_and_buckets(limiter_cls, clock):
    rl = limiter_cls(
        "binance",
        {"algo": [("orders_10s", 2), ("weight_1m", 1)]},
        clock=clock,
        buckets={"orders_10s": (10, 10.0)},
        reserved_share=0.0,
    )
    assert drain(rl, "algo") == 5


@pytest.mark.parametrize(
    ("args", "kwargs"),
    [
        (("kraken",), {}),
        (("upbit",), {"reserved_share": 1.0}),
        (("upbit",), {"reserved_share": -0.1}),
        (("upbit",), {"order_per_sec": 0}),
        (("upbit",), {"buckets": {"x": (5, 0)}}),
        (("binance", {"g": [("nope", 1)]}), {}),
        (("binance", {"g": [("weight_1m", -1)]}), {}),
    ],
)
def test_bad_configuration(limiter_cls, args, kwargs):
    with pytest.raises(ValueError):
        limiter_cls(*args, **kwargs)


def test_bad_calls(limiter_cls, clock):
    rl = limiter_cls("binance", clock=clock)
    with pytest.raises(ValueError):
        rl.acquire("nope")
    with pytest.raises(ValueError):
        rl.acquire("weight:x")
    with pytest.raises(ValueError):
        rl.acquire("default", -1)
    with pytest.raises(ValueError):
        rl.acquire("default", 1.5)
    with pytest.raises(ValueError):
        rl.acquire("default", 2401, reserved=True)  # can never fit
    with pytest.raises(ValueError):
        rl.acquire("default", 1921)  # never fits the normal lane
    with pytest.raises(TypeError):
        rl.acquire(None)
    assert rl.snapshot()["buckets"]["weight_1m"]["used"] == 0
    with pytest.raises(ValueError):
        limiter_cls("upbit", clock=clock).acquire("weight:5")


# ---- server feedback ----------------------------------------------------------------------


def test_upbit_remaining_req_lowers_budget(limiter_cls, clock):
    rl = limiter_cls("upbit", clock=clock)
    rl.update_from_headers({"remaining-req": "group=default; min=1800; sec=2"})
    # The server says 2 left of 30: 28 used; our normal lane (24) is already exhausted.
    assert rl.acquire("default") > 0
    assert rl.acquire("default", reserved=True) == 0.0
    assert rl.acquire("default", reserved=True) == 0.0
    assert rl.acquire("default", reserved=True) > 0
    clock.advance(1.0)
    assert rl.acquire("default") == 0.0


def test_upbit_remaining_req_never_raises_budget(limiter_cls, clock):
    rl = limiter_cls("upbit", clock=clock)
    drain(rl, "order")
    rl.update_from_headers({"Remaining-Req": "group=order; min=1800; sec=12"})
    assert rl.acquire("order") > 0


def test_upbit_remaining_req_group_argument_and_case(limiter_cls, clock):
    rl = limiter_cls("upbit", clock=clock)
    rl.update_from_headers({"REMAINING-REQ": "min=1800; sec=0"}, group="order")
    assert rl.acquire("order", reserved=True) > 0
    # Header group wins over the argument; malformed values are ignored.
    rl.update_from_headers({"Remaining-Req": "group=market; sec=0"}, group="order")
    assert rl.acquire("market", reserved=True) > 0
    rl.update_from_headers({"Remaining-Req": "group=ticker; sec=abc"})
    rl.update_from_headers({"Remaining-Req": "group=unknown; sec=0"})
    rl.update_from_headers({"Remaining-Req": "garbage"})
    assert rl.acquire("ticker") == 0.0


def test_binance_headers_override_when_higher(limiter_cls, clock):
    rl = limiter_cls("binance", clock=clock)
    rl.update_from_headers({"X-MBX-USED-WEIGHT-1M": "1919", "x-mbx-order-count-10s": "239"})
    assert rl.acquire("default") == 0.0  # 1920 of the normal 1920
    assert rl.acquire("default") > 0
    assert rl.acquire("order") == 0.0  # orders_10s: 240 of the normal 240
    assert rl.acquire("order") > 0
    snap = rl.snapshot()["buckets"]
    rl.update_from_headers({"X-MBX-USED-WEIGHT-1M": "5", "X-MBX-ORDER-COUNT-1M": "x"})
    assert rl.snapshot()["buckets"] == snap  # lower or malformed: ignored


def test_headers_from_a_case_insensitive_mapping(limiter_cls, clock):
    from multidict import CIMultiDict

    rl = limiter_cls("binance", clock=clock)
    rl.update_from_headers(CIMultiDict({"X-Mbx-Used-Weight-1m": "2000"}))
    assert rl.snapshot()["buckets"]["weight_1m"]["used"] == 2000


# ---- 429 / 418 ----------------------------------------------------------------------------


def test_429_blocks_everyone_and_escalates(limiter_cls, clock):
    rl = limiter_cls("upbit", clock=clock)
    assert not rl.blocked()
    assert rl.on_rate_limited(429) == 1.0
    assert rl.blocked() and rl.blocked_until == clock.t + 1.0
    assert rl.acquire("order") == pytest.approx(1.0)
    assert rl.acquire("order", reserved=True) == pytest.approx(1.0)  # a ban is a ban
    clock.advance(1.0)
    assert not rl.blocked()
    assert rl.acquire("order") == 0.0
    assert rl.on_rate_limited(429) == 2.0  # again soon after: doubled
    clock.advance(2.0)
    assert rl.on_rate_limited(429) == 4.0
    clock.advance(4.0 + 61.0)
    assert rl.on_rate_limited(429) == 1.0  # a quiet minute resets the streak


def test_retry_after_is_honoured(limiter_cls, clock):
    rl = limiter_cls("binance", clock=clock)
    assert rl.on_rate_limited(429, retry_after=7) == 7.0
    assert rl.acquire("default") == pytest.approx(7.0)
    # A shorter block never shortens a longer one.
    assert rl.on_rate_limited(429, retry_after=1.0) == 1.0
    assert rl.blocked_until == pytest.approx(clock.t + 7.0)


def test_418_ban(limiter_cls, clock):
    rl = limiter_cls("binance", clock=clock)
    assert rl.on_rate_limited(418) == 120.0
    assert rl.acquire("order", reserved=True) == pytest.approx(120.0)
    assert rl.on_rate_limited(418) == 240.0
    assert rl.on_rate_limited(418, retry_after=10**9) == 259200.0  # capped at 3 days
    with pytest.raises(ValueError):
        rl.on_rate_limited(500)
    with pytest.raises(ValueError):
        rl.on_rate_limited(429, retry_after=-1)


def test_snapshot_is_observable_state(limiter_cls, clock):
    rl = limiter_cls("upbit", clock=clock)
    rl.acquire("order")
    snap = rl.snapshot()
    assert snap["exchange"] == "upbit"
    assert snap["blocked_for"] == 0.0
    assert snap["blocked_until"] is None
    json.dumps(snap, allow_nan=False)  # status views serialise it
    assert snap["buckets"]["order"] == {
        "capacity": 8, "period": 1.0, "reserved": 1, "used": 1,
        "available": 6, "available_reserved": 7, "blocked_for": 0.0,
    }
    rl.on_rate_limited(429, retry_after=5, group="orderbook")
    assert rl.snapshot()["buckets"]["orderbook"]["blocked_for"] == 5.0 and rl.snapshot()["blocked_for"] == 0.0
    rl.on_rate_limited(418, retry_after=30)
    assert rl.snapshot()["blocked_for"] == 30.0


def test_an_upbit_429_blocks_its_group_only(limiter_cls, clock):
    """A quotation 429 (maybe another process on the same IP) must not stop the order
    look-ups that resolve a hedge: Upbit limits each group on its own."""
    rl = limiter_cls("upbit", clock=clock)
    assert rl.on_rate_limited(429, group="orderbook") == 1.0
    assert rl.acquire("orderbook") == 1.0  # blocked, nothing consumed
    assert rl.acquire("default", reserved=True) == 0.0  # GET /v1/order goes on
    assert rl.acquire("order") == 0.0
    clock.advance(1.0)
    assert rl.acquire("orderbook") == 0.0
    # a 418 is a ban of everything
    rl.on_rate_limited(418, retry_after=10, group="orderbook")
    assert rl.acquire("default", reserved=True) == 10.0


def test_a_binance_order_count_429_stops_new_orders_not_lookups(limiter_cls, clock):
    rl = limiter_cls("binance", clock=clock)
    rl.on_rate_limited(429, retry_after=3, group="order")  # -1015: too many new orders
    assert rl.acquire("order") == 3.0
    assert rl.acquire("weight:1", reserved=True) == 0.0  # GET /fapi/v1/order, DELETE
    rl.on_rate_limited(429, retry_after=2, group="default")  # -1003: request weight
    assert rl.acquire("weight:1", reserved=True) == 2.0
    assert rl.acquire("order") == 3.0
    clock.advance(3.0)
    assert rl.acquire("order") == 0.0 and rl.acquire("weight:5") == 0.0


def test_scoped_429s_still_escalate(limiter_cls, clock):
    rl = limiter_cls("upbit", clock=clock)
    assert rl.on_rate_limited(429, group="orderbook") == 1.0
    assert rl.on_rate_limited(429, group="ticker") == 2.0  # a streak, whatever the group
    assert rl.acquire("ticker") == 2.0 and rl.acquire("orderbook") == 1.0


def test_default_clock_is_monotonic(limiter_cls):
    rl = limiter_cls("upbit")
    assert rl.acquire("order") == 0.0
    assert math.isfinite(rl.snapshot()["now"])


# ---- compiled == pure -------------------------------------------------------------------

ops = st.lists(
    st.one_of(
        st.tuples(st.just("advance"), st.floats(0, 3, allow_nan=False)),
        st.tuples(
            st.just("acquire"),
            st.sampled_from(["order", "default", "weight:7", "weight:x", "order-cancel-all",
                             "market", "nope"]),
            st.one_of(st.integers(0, 40), st.just(-1), st.just(2.0)),
            st.booleans(),
        ),
        st.tuples(
            st.just("headers"),
            st.dictionaries(
                st.sampled_from(["Remaining-Req", "X-MBX-USED-WEIGHT-1M", "x-mbx-order-count-10s",
                                 "X-MBX-ORDER-COUNT-1M", "Date"]),
                st.one_of(
                    st.integers(0, 3000).map(str),
                    st.sampled_from(["group=order; min=1800; sec=3", "group=default; sec=0",
                                     "sec=1", "junk", "99999999999999999999"]),
                ),
                max_size=3,
            ),
            st.sampled_from([None, "order", "market"]),
        ),
        st.tuples(
            st.just("limited"),
            st.sampled_from([429, 418, 503]),
            st.one_of(st.none(), st.floats(-1, 500, allow_nan=False)),
        ),
        st.tuples(st.just("snapshot")),
    ),
    max_size=60,
)


def _run(cls, exchange, share, sequence):
    clock = FakeClock(50.0)
    rl = cls(exchange, clock=clock, reserved_share=share)
    out = []
    for op in sequence:
        try:
            if op[0] == "advance":
                clock.advance(op[1])
                continue
            if op[0] == "acquire":
                out.append(rl.acquire(op[1], op[2], reserved=op[3]))
            elif op[0] == "headers":
                out.append(rl.update_from_headers(op[1], op[2]))
            elif op[0] == "limited":
                out.append(rl.on_rate_limited(op[1], op[2]))
            else:
                out.append(rl.snapshot())
        except Exception as exc:  # noqa: BLE001 - compare failure types across twins
            out.append(type(exc))
        out.append((rl.blocked(), rl.blocked_until))
    out.append(rl.snapshot())
    return out


@pytest.mark.c_extension
@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(exchange=st.sampled_from(["upbit", "binance"]), share=st.sampled_from([0.0, 0.2, 0.5]), sequence=ops)
def test_compiled_equals_pure_call_sequences(hot_path_twins, exchange, share, sequence):
    c, py = hot_path_twins[0].ratelimit, hot_path_twins[1].ratelimit
    assert _run(c.RateLimiter, exchange, share, sequence) == _run(py.RateLimiter, exchange, share, sequence)
