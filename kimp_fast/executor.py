"""Order placement, resolution and one-leg repair for one signal (SPEC §4.3 steps 5–8).

Three rules hold everywhere in this module:

1. **Write ahead.** An order's row (with its deterministic client id) is in the journal
   before its request leaves, and every repair step is journaled before it is taken.
2. **Unknown is not failed.** ``OutcomeUnknown`` is resolved by looking the order up by
   client id (repeatedly: an exchange may briefly not know an order it just accepted);
   a new attempt, with a *new* client id, is sent only once the previous one is proven
   absent or final. An order is never re-sent blindly.
3. **Repair by exposure.** After the legs resolve, the net coin exposure ``E`` (see
   :mod:`kimp_fast.legs`) must be below one Binance lot step. Otherwise the missing leg
   is retried (delays from ``[one_leg] retry_delays``), then the excess leg is unwound
   (the emergency hedge), and if exposure still remains the signal ends
   ``manual_required``: critical alert and halt.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Sequence
from decimal import ROUND_DOWN, Decimal
from typing import TYPE_CHECKING

from adapters_direct.client_ids import make_client_id
from adapters_direct.errors import AdapterError, OrderNotFound, OutcomeUnknown

from .legs import LegBook, repair_route
from .models import OrderRequest, OrderResult

if TYPE_CHECKING:  # pragma: no cover
    from .engine import KimpEngine

__all__ = ["PairExecutor", "Unresolved"]

log = logging.getLogger("kimp_fast.executor")
ZERO = Decimal(0)

# Leg codes in client ids: exchange + purpose, short because Binance allows 36 chars.
_LEG_CODE = {
    ("upbit", "entry"): "UE", ("binance", "entry"): "BE",
    ("upbit", "exit"): "UX", ("binance", "exit"): "BX",
    ("upbit", "retry"): "UR", ("binance", "retry"): "BR",
    ("upbit", "unwind"): "UW", ("binance", "unwind"): "BW",
}


class Unresolved(Exception):
    """An order's outcome could not be established (the exchange kept failing)."""

    def __init__(self, client_id: str, exchange: str, why: str) -> None:
        super().__init__(f"{exchange} order {client_id}: outcome unknown ({why})")
        self.client_id = client_id
        self.exchange = exchange


def _journal_state(res: OrderResult) -> str:
    return res.status


def _round_down(value: Decimal, step: Decimal) -> Decimal:
    if step <= 0:
        return value
    return (value / step).to_integral_value(rounding=ROUND_DOWN) * step


class PairExecutor:
    """Stateless helper bound to one engine's adapters, journal, breakers and config."""

    def __init__(self, engine: "KimpEngine") -> None:
        self.e = engine
        # client id -> time.monotonic() when its request left; see lookup()
        self._sent_at: dict[str, float] = {}

    async def pause(self, seconds: float) -> None:
        """Wait between attempts; the journal catches up with SQLite meanwhile."""
        self.e.journal.flush_soon()
        await asyncio.sleep(seconds)

    # -- one order ------------------------------------------------------------------
    def client_id(self, signal_id: str, exchange: str, purpose: str, attempt: int) -> str:
        # namespaced by the journal: ids never repeat across deployments or a reset journal
        return make_client_id(signal_id, _LEG_CODE[(exchange, purpose)], attempt, namespace=self.e.client_namespace)

    async def place(
        self,
        exchange: str,
        req: OrderRequest,
        *,
        reserved: bool,
    ) -> OrderResult | AdapterError:
        """Send one order whose intent is already journaled; journal what came back."""
        return await self.start(exchange, req, reserved=reserved)

    def start(
        self,
        exchange: str,
        req: OrderRequest,
        *,
        reserved: bool,
        flush: bool = True,
    ) -> Awaitable[OrderResult | AdapterError]:
        """:meth:`place`, started now: a direct adapter writes the request before this
        returns (``start_order``), so the two legs of a pair started one after the other
        are both on the wire before the engine yields. Await the outcome.

        The intent is in the journal's redo file; its SQLite rows follow while this
        request is on the network (``flush_soon`` waits two turns). ``flush=False`` for
        the first leg of a pair leaves that to the second, after both writes."""
        self._sent_at[req.client_id] = time.monotonic()
        pending = self._outcome(exchange, req, self.e.adapter(exchange).start_order(req, reserved=reserved))
        if flush:
            self.e.journal.flush_soon()
        return pending

    async def _outcome(
        self, exchange: str, req: OrderRequest, pending: Awaitable[OrderResult]
    ) -> OrderResult | AdapterError:
        breaker = self.e.breakers[exchange]
        j = self.e.journal
        try:
            res = await pending
        except AdapterError as err:
            if err.infrastructure:
                breaker.record_failure(type(err).__name__)
            else:
                breaker.record_success()
            state = "unknown" if isinstance(err, OutcomeUnknown) else "rejected"
            j.update_order(req.client_id, state, error=_err_text(err))
            return err
        breaker.record_success()
        j.update_order(
            req.client_id,
            _journal_state(res),
            exchange_order_id=res.exchange_order_id,
            filled_qty=res.filled_qty,
            avg_price=res.avg_price,
            quote_filled=res.quote_filled,
            fee=res.fee,
            fee_asset=res.fee_asset,
        )
        return res

    async def resolve(
        self,
        exchange: str,
        symbol: str,
        client_id: str,
        outcome: OrderResult | AdapterError | None,
    ) -> OrderResult | None:
        """Bring one order to a definite, final state.

        Returns the final :class:`OrderResult` (possibly with ``filled_qty`` 0) or None
        when the order definitely does not exist. Raises :class:`Unresolved` when the
        exchange could not tell us within the configured look-up budget.
        """
        if isinstance(outcome, OrderResult):
            if outcome.final:
                return outcome
            return await self._finish_open(exchange, symbol, client_id)
        if outcome is not None and not isinstance(outcome, OutcomeUnknown):
            return None  # definitely not executed (Rejected, RateLimited, Unavailable, ...)
        return await self.lookup(exchange, symbol, client_id)

    async def lookup(
        self, exchange: str, symbol: str, client_id: str, *, created_ms: int | None = None
    ) -> OrderResult | None:
        """Look an order up by client id until it is final or proven absent.

        "Absent" needs ``not_found_confirmations`` answers in a row **and** the request's
        in-flight grace (``KimpEngine.in_flight_grace_s``) to be over: a request the client
        gave up on may still sit in the exchange's gateway and execute late (Binance
        accepts it until its ``recvWindow`` runs out), and declaring it absent too early
        would send a retry next to it. ``created_ms`` (wall clock) stands in for the send
        time of an order journaled by an earlier process.
        """
        adapter = self.e.adapter(exchange)
        breaker = self.e.breakers[exchange]
        delays: Sequence[float] = self.e.lookup_delays
        now = time.monotonic()
        sent = self._sent_at.get(client_id)
        if sent is None:
            sent = now - (max(0, time.time_ns() // 1_000_000 - created_ms) / 1000.0 if created_ms else 0.0)
        settle_at = sent + self.e.in_flight_grace_s
        not_found = 0
        last_err = ""
        deadline = max(now + self.e.resolve_timeout_s, settle_at + 1.0)
        i = 0
        while True:
            try:
                res = await adapter.get_order(symbol, client_id, reserved=True)
            except OrderNotFound:
                breaker.record_success()
                not_found += 1
                # Not found several times in a row, spread over time, after the request
                # can no longer be executing: the order is absent.
                if not_found >= self.e.not_found_confirmations and time.monotonic() >= settle_at:
                    self.e.journal.update_order(client_id, "absent", detail="not found at the exchange")
                    self._sent_at.pop(client_id, None)
                    return None
            except AdapterError as err:
                if err.infrastructure:
                    breaker.record_failure(type(err).__name__)
                not_found = 0
                last_err = _err_text(err)
            else:
                breaker.record_success()
                self._sent_at.pop(client_id, None)
                if res.final:
                    self._journal_result(res)
                    return res
                return await self._finish_open(exchange, symbol, client_id)
            if time.monotonic() >= deadline:
                self.e.journal.update_order(client_id, "unknown", detail=f"unresolved: {last_err}")
                raise Unresolved(client_id, exchange, last_err or "no answer")
            await self.pause(delays[min(i, len(delays) - 1)])
            i += 1

    async def _finish_open(self, exchange: str, symbol: str, client_id: str) -> OrderResult | None:
        """An order is still open (an IOC should not be): cancel it, then read it back."""
        adapter = self.e.adapter(exchange)
        try:
            await adapter.cancel_order(symbol, client_id, reserved=True)
        except OrderNotFound:
            pass  # it finished between our read and the cancel
        except AdapterError as err:
            log.warning("cancel of %s on %s failed: %s", client_id, exchange, err)
        deadline = time.monotonic() + self.e.resolve_timeout_s
        delays = self.e.lookup_delays
        i = 0
        while True:
            try:
                res = await adapter.get_order(symbol, client_id, reserved=True)
            except AdapterError as err:
                last = _err_text(err)
            else:
                if res.final:
                    self._journal_result(res)
                    return res
                last = f"still {res.status}"
            if time.monotonic() >= deadline:
                raise Unresolved(client_id, exchange, last)
            await self.pause(delays[min(i, len(delays) - 1)])
            i += 1

    def _journal_result(self, res: OrderResult) -> None:
        self.e.journal.update_order(
            res.client_id,
            _journal_state(res),
            exchange_order_id=res.exchange_order_id,
            filled_qty=res.filled_qty,
            avg_price=res.avg_price,
            quote_filled=res.quote_filled,
            fee=res.fee,
            fee_asset=res.fee_asset,
        )

    # -- building orders --------------------------------------------------------------
    def intent_row(self, signal_id: str, exchange: str, purpose: str, attempt: int, req: OrderRequest) -> dict:
        return {
            "client_id": req.client_id,
            "signal_id": signal_id,
            "exchange": exchange,
            "symbol": req.symbol,
            "purpose": purpose,
            "attempt": attempt,
            "side": req.side,
            "type": req.type,
            "tif": req.time_in_force,
            "qty": req.quantity,
            "price": req.price,
            "quote_amount": req.quote_amount,
            "reduce_only": req.reduce_only,
        }

    async def build_fix_order(
        self,
        *,
        signal_id: str,
        coin: str,
        exchange: str,
        side: str,
        qty: Decimal,
        purpose: str,
        attempt: int,
        bound: Decimal | None = None,
    ) -> tuple[OrderRequest | None, str]:
        """An order that moves exposure by ``qty`` on ``exchange``; (None, why) if it
        cannot be placed (below the exchange's minimums: dust). ``bound``: a limit IOC at
        that price instead of a market order (an EXIT's Upbit sell or Binance buy-back)."""
        e = self.e
        if exchange == "upbit":
            symbol = e.spot_symbol(coin)
            rules = e.upbit.rules(symbol)
            q = _round_down(qty, rules.qty_step)
            book = await e.market.book("upbit", symbol, max_age=0.0)
            if side == "sell":
                bid = book.best_bid()
                if q <= 0 or bid is None or q * (bound or bid) < rules.min_notional:
                    return None, f"Upbit sell of {qty} is below the minimum order total"
                cid = self.client_id(signal_id, exchange, purpose, attempt)
                if bound is not None:
                    req = OrderRequest(symbol=symbol, side="sell", type="limit", quantity=q, price=bound,
                                       time_in_force="ioc", client_id=cid)
                else:
                    req = OrderRequest(symbol=symbol, side="sell", type="market", quantity=q, client_id=cid)
            else:
                ask = book.best_ask()
                if q <= 0 or ask is None:
                    return None, "Upbit buy: empty book"
                price = e.spot_limit_price(symbol, ask)
                if q * price < rules.min_notional:
                    return None, f"Upbit buy of {qty} is below the minimum order total"
                req = OrderRequest(
                    symbol=symbol, side="buy", type="limit", quantity=q, price=price,
                    time_in_force="ioc",
                    client_id=self.client_id(signal_id, exchange, purpose, attempt),
                )
            return req, ""
        symbol = e.perp_symbol(coin)
        rules = e.binance.rules(symbol)
        q = _round_down(qty, rules.qty_step)
        if q <= 0 or q < rules.min_qty:
            return None, f"Binance quantity {qty} below one lot ({rules.qty_step})"
        reduce_only = side == "buy"  # buying back always reduces the short
        if not reduce_only:
            book = await e.market.book("binance", symbol, max_age=0.0)
            bid = book.best_bid()
            if bid is None or q * bid < rules.min_notional:
                return None, f"Binance notional of {q} below the minimum {rules.min_notional} USDT"
        cid = self.client_id(signal_id, exchange, purpose, attempt)
        if bound is not None and reduce_only:
            req = OrderRequest(symbol=symbol, side=side, type="limit", quantity=q, price=bound,  # type: ignore[arg-type]
                               time_in_force="ioc", reduce_only=True, client_id=cid)
        else:
            req = OrderRequest(symbol=symbol, side=side, type="market", quantity=q,  # type: ignore[arg-type]
                               reduce_only=reduce_only, client_id=cid)
        return req, ""

    # -- repair -------------------------------------------------------------------------
    async def repair(
        self,
        *,
        signal_id: str,
        action: str,
        coin: str,
        legs: LegBook,
        residual_before: Decimal,
        attempts: dict[str, int],
        bounds: dict[str, Decimal] | None = None,
    ) -> tuple[str, list[str]]:
        """Drive exposure back under one lot. Returns (outcome, notes) where outcome is
        ``"hedged"``, ``"recovered"``, ``"unwound"`` or ``"manual"``.

        ``bounds`` (an EXIT's price bounds by exchange): the retries of the missing leg
        are limit IOCs at that bound, so completing the EXIT never costs more than its
        tolerance; the unwind that follows if they cannot fill is a market order — the
        exposure must go."""
        e = self.e
        j = e.journal
        step = e.binance.rules(e.perp_symbol(coin)).qty_step
        notes: list[str] = []
        used_retry = used_unwind = False
        cfg = e.config.one_leg

        def exposure() -> Decimal:
            return legs.exposure(residual_before)

        if abs(exposure()) < step:
            return "hedged", notes

        phases: list[str] = ["retry"]
        if cfg.emergency_hedge:
            phases.append("unwind")
        for phase in phases:
            for n in range(cfg.max_retries):
                ex_now = exposure()
                if abs(ex_now) < step:
                    break
                exchange, side = repair_route(action, ex_now, phase)
                delay = _delay(cfg.retry_delays, n) if phase == "retry" else (0.0 if n == 0 else _delay(cfg.retry_delays, n - 1))
                j.recovery_step(signal_id, coin, f"{phase}-wait", attempt=n + 1, exposure=str(ex_now), delay_s=delay)
                if delay > 0:
                    await self.pause(delay)
                ex_now = exposure()
                if abs(ex_now) < step:
                    break
                attempts[exchange] = attempts.get(exchange, 0) + 1
                attempt = attempts[exchange]
                try:
                    req, why = await self.build_fix_order(
                        signal_id=signal_id, coin=coin, exchange=exchange, side=side,
                        qty=abs(ex_now), purpose=phase, attempt=attempt,
                        bound=bounds.get(exchange) if bounds and phase == "retry" else None,
                    )
                except AdapterError as err:
                    req, why = None, f"market data unavailable: {_err_text(err)}"
                if req is None:
                    j.recovery_step(signal_id, coin, f"{phase}-impossible", exchange=exchange, reason=why)
                    notes.append(f"{phase} on {exchange} impossible: {why}")
                    if "market data" in why:
                        continue  # transient: try again after the next delay
                    break
                j.order_intent(**self.intent_row(signal_id, exchange, phase, attempt, req))
                j.recovery_step(
                    signal_id, coin, phase, exchange=exchange, side=side, qty=str(req.quantity),
                    client_id=req.client_id, exposure=str(ex_now),
                )
                if phase == "retry":
                    used_retry = True
                else:
                    used_unwind = True
                outcome = await self.place(exchange, req, reserved=True)
                try:
                    res = await self.resolve(exchange, req.symbol, req.client_id, outcome)
                except Unresolved as exc:
                    j.recovery_step(signal_id, coin, "unresolved", client_id=req.client_id, reason=str(exc))
                    notes.append(str(exc))
                    return "manual", notes
                if res is not None:
                    legs.add(res, phase)
                    notes.append(
                        f"{phase} {exchange} {side} {req.quantity}: filled {res.filled_qty}"
                    )
                else:
                    notes.append(f"{phase} {exchange} {side} {req.quantity}: {_err_text(outcome)}")
            if abs(exposure()) < step:
                break
        final = exposure()
        j.recovery_step(signal_id, coin, "result", exposure=str(final), lot=str(step))
        if abs(final) >= step:
            return "manual", notes
        if used_unwind:
            return "unwound", notes
        return ("recovered" if used_retry else "hedged"), notes


def _delay(delays: Sequence[float], n: int) -> float:
    if not delays:
        return 0.0
    return float(delays[min(n, len(delays) - 1)])


def _err_text(err: object) -> str:
    if err is None:
        return ""
    if isinstance(err, AdapterError):
        return f"{type(err).__name__}: {err}"
    return str(err)
