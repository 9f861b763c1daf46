"""The synthetic market: seeded reproducibility, the premium, walking and replenishing books."""

from __future__ import annotations

from decimal import Decimal

import pytest

from adapters_direct.sim.config import MarketParams
from adapters_direct.sim.market import Market


class FakeClock:
    """Only what Market reads: a controllable monotonic clock."""

    def __init__(self) -> None:
        self.t = 1000.0

    def mono(self) -> float:
        return self.t


def path(seed: int, steps: int = 50, **params: float) -> list[tuple[Decimal, Decimal]]:
    clock = FakeClock()
    m = Market(MarketParams(**params), seed, clock)  # type: ignore[arg-type]
    out = []
    for _ in range(steps):
        clock.t += 0.1
        out.append((m.mid("BTCUSDT"), m.mid("KRW-BTC")))
    return out


def test_same_seed_same_path_other_seed_other_path() -> None:
    a = path(7, volatility=0.8, premium_volatility=0.001)
    assert a == path(7, volatility=0.8, premium_volatility=0.001)
    assert a != path(8, volatility=0.8, premium_volatility=0.001)
    assert len({p for p, _ in a}) > 5  # it really moves


def test_zero_volatility_freezes_prices() -> None:
    p = path(7, volatility=0.0)
    assert len(set(p)) == 1


def test_premium_is_what_was_asked_for() -> None:
    m = Market(MarketParams(volatility=0.0), 3, FakeClock())  # type: ignore[arg-type]
    for target in (0.012, -0.004, 0.05):
        top = m.update({"premium": target, "binance_mid": 91234.5, "usdt_krw": 1388})
        assert float(top["premium"]) == pytest.approx(target, abs=2e-5)  # within a KRW tick
    assert m.mid("KRW-USDT") == Decimal("1387.5")
    with pytest.raises(ValueError):
        m.update({"spread_bps": -1})
    with pytest.raises(ValueError):
        m.update({"bogus": 1})


def test_book_shape_ticks_and_spread() -> None:
    m = Market(MarketParams(volatility=0.0, spread_bps=4.0), 3, FakeClock())  # type: ignore[arg-type]
    bids, asks = m.book_decimal("KRW-BTC", 30)
    assert len(bids) == len(asks) == 30
    assert all(p % 1000 == 0 for p, _ in bids + asks)
    bid, ask = bids[0][0], asks[0][0]
    assert float((ask - bid) / ((ask + bid) / 2)) == pytest.approx(4e-4, abs=1e-5)
    total = sum(q for _, q in asks)
    assert Decimal("3.5") < total < Decimal("6.5")  # depth_btc = 5 across 30 levels
    bids, asks = m.book_decimal("BTCUSDT", 100)
    assert len(asks) == 100 and all((p * 10) % 1 == 0 for p, _ in asks)


def test_taking_walks_the_book_then_liquidity_comes_back() -> None:
    clock = FakeClock()
    m = Market(MarketParams(volatility=0.0, replenish_s=1.0), 3, clock)  # type: ignore[arg-type]
    _, asks = m.book_decimal("BTCUSDT", 5)
    want = asks[0][1] + asks[1][1] + Decimal("0.001")
    fills = m.take("BTCUSDT", "buy", qty=want)
    assert [p for p, _ in fills] == [asks[0][0], asks[1][0], asks[2][0]]
    assert sum(q for _, q in fills) == want
    _, after = m.book_decimal("BTCUSDT", 1)
    assert after[0][0] == asks[2][0]  # the first two levels are gone
    clock.t += 10.0  # ten time constants later the book is whole again
    _, later = m.book_decimal("BTCUSDT", 1)
    assert later[0] == asks[0]


def test_take_by_funds_limit_and_dry_run() -> None:
    m = Market(MarketParams(volatility=0.0), 3, FakeClock())  # type: ignore[arg-type]
    _, asks = m.book_decimal("KRW-BTC", 3)
    fills = m.take("KRW-BTC", "buy", funds=Decimal(1_000_000), dry_run=True)
    assert fills == [(asks[0][0], (Decimal(1_000_000) / asks[0][0]).quantize(Decimal("1e-8"), rounding="ROUND_DOWN"))]
    assert m.book_decimal("KRW-BTC", 1)[1][0] == asks[0]  # dry run consumed nothing
    fills = m.take("KRW-BTC", "buy", qty=Decimal(3), limit=asks[1][0])
    assert {p for p, _ in fills} == {asks[0][0], asks[1][0]}
    assert m.take("KRW-BTC", "sell", qty=Decimal(1), limit=asks[0][0]) == []  # bids are below the ask


async def test_post_market_returns_new_top(sim_client) -> None:
    top = await sim_client.market(premium=0.03, binance_mid=100000, usdt_krw=1400, spread_bps=1)
    assert float(top["premium"]) == pytest.approx(0.03, abs=2e-5)
    assert Decimal(top["BTCUSDT"]["bid"]) < 100000 < Decimal(top["BTCUSDT"]["ask"])
    assert Decimal(top["mark_price"]) == 100000
    async with sim_client.session.post(f"{sim_client.url}/_sim/market", json={"binance_mid": -5}) as r:
        assert r.status == 400
    got = await sim_client.control("GET", "market")
    assert got["params"]["spread_bps"] == 1.0 and got["process"]["binance_mid"] == 100000
