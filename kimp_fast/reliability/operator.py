"""What a human does after ``manual_required`` or a reconcile halt, so a long run can go on.

A ``manual_required`` outcome is allowed by SPEC §7 ("hedged, flat, or halted with a
critical alert"); the harness then plays the operator: it waits for the exchanges to
recover (faults cleared), lets the engine reconcile, brings the exchange accounts back to
what the journal says (a Binance order under an ``OPR…`` client id, the Upbit coin
balance through the simulator's control API) and resumes the engine. Every step is
recorded in the run's JSON.
"""

from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import Any

from adapters_direct.factory import ExchangeFactory
from kimp_fast.models import OrderRequest

from .invariants import OPERATOR_PREFIX, InvariantChecker
from .simctl import SimControl

__all__ = ["Operator"]

ZERO = Decimal(0)


class Operator:
    def __init__(self, control: SimControl, checker: InvariantChecker, *, url: str, binance_keys: Any,
                 coin: str = "BTC") -> None:
        self.control = control
        self.checker = checker
        self.url = url
        self.keys = binance_keys
        self.coin = coin
        self.perp = f"{coin}USDT"
        self._n = 0
        self.actions: list[dict[str, Any]] = []
        self._binance: Any = None

    async def __aenter__(self) -> "Operator":
        self._binance = ExchangeFactory.create(
            "binance", "direct", api_key=self.keys.api_key, secret_key=self.keys.secret_key,
            base_url=self.url, symbols=(self.perp,), keepwarm_s=0, rules_refresh_s=0,
        )
        await self._binance.__aenter__()
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._binance is not None:
            await self._binance.__aexit__(None, None, None)

    async def align(self) -> dict[str, Any]:
        """Bring Binance's short and Upbit's coin balance to what the journal records."""
        led = await self.control.ledger(since=self.checker.ledger_seen)
        spot, perp = self.checker.exposure_now(led)
        jpos = self.checker.view.positions().get(self.coin)
        residual = Decimal(str(jpos.get("spot_residual", "0"))) if jpos else ZERO
        target_short = (Decimal(str(jpos["qty"])) - min(residual, ZERO)) if jpos else ZERO
        done: dict[str, Any] = {"before": {"upbit": str(spot), "binance": str(perp), "journal_short": str(target_short)}}
        lot = self.checker.lot
        diff = ((-perp - target_short) / lot).to_integral_value() * lot  # > 0: the short is too big
        orders = []
        if diff > 0:
            orders.append(("buy", diff, True))
        elif diff < 0:
            extra = Decimal("0.002")  # Binance refuses a sell below its minimum notional: sell more, buy back
            orders += [("sell", -diff + extra, False), ("buy", extra, True)]
        for side, qty, reduce_only in orders:
            self._n += 1
            req = OrderRequest(symbol=self.perp, side=side, type="market", quantity=qty, reduce_only=reduce_only,
                               client_id=f"{OPERATOR_PREFIX}{self._n}")
            res = await self._binance.place_order(req)
            done.setdefault("binance_orders", []).append(f"{side} {qty} -> filled {res.filled_qty}")
        led = await self.control.ledger(since=self.checker.ledger_seen)
        spot, perp = self.checker.exposure_now(led)
        naked = Decimal(str(jpos.get("naked_spot", "0"))) if jpos else ZERO  # journaled: the next EXIT sells it
        recorded = residual + naked + self.checker.dust + self.checker.operator_offset
        delta = spot + perp - recorded
        if delta:
            bal = led["balances"]["upbit"].get(self.coin) or {}
            free = Decimal(str(bal.get("balance", "0")))
            if free - delta >= 0:
                await self.control.balances(upbit={self.coin: str(free - delta)})
                done["upbit_balance"] = f"{free} -> {free - delta}"
            else:  # cannot take away more than is there: accept it as known exposure
                self.checker.operator_offset += delta
                done["accepted_exposure"] = str(delta)
        return done

    async def intervene(self, *, reason: str, signal_id: str = "", reconcile: Any = None,
                        resume: Any = None, settle_s: float = 0.0) -> dict[str, Any]:
        """Clear faults, reconcile (``reconcile`` coroutine function), align, resume."""
        fired = await self.control.settle_faults()
        if settle_s:
            await asyncio.sleep(settle_s)  # requests delayed inside the exchange land first
        action: dict[str, Any] = {"signal_id": signal_id, "reason": reason[:500], "faults_cleared": dict(fired)}
        if reconcile is not None:
            try:
                action["reconcile"] = await reconcile()
            except Exception as exc:  # noqa: BLE001 - recorded, the operator carries on
                action["reconcile_error"] = f"{type(exc).__name__}: {exc}"
        action["align"] = await self.align()
        if resume is not None:
            res = resume()
            if asyncio.iscoroutine(res):
                await res
        self.actions.append(action)
        return action
