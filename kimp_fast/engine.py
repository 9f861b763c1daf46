"""``KimpEngine``: the public entry point (CONTRACT §3).

    async with KimpEngine(EngineConfig.load("kimp.toml")) as engine:
        report = await engine.submit(signal)

The engine owns no event loop and no global state (it runs on asyncio or uvloop,
embedded in the caller's program). ``__aenter__`` opens the journal, the notifier and
both exchange sessions, configures the Binance account (one-way mode, leverage, margin
type), **reconciles** what the journal knew was in flight with the exchanges, and only
then accepts signals.

Pipeline per signal (SPEC §4.3): validate → de-duplicate (durably) → gate (kill switch,
unresolved recovery, circuit breakers, position state) → size (capital reserved
atomically) → build (deterministic client ids, journaled first) → send both legs
concurrently → resolve every leg → repair one-leg failures → record and notify.
``submit`` never raises for a bad signal or an exchange failure: it returns a report.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import time
from collections.abc import Mapping
from decimal import ROUND_DOWN, ROUND_UP, Decimal
from typing import Any

import msgspec

from adapters_direct.base import PerpAdapter, SpotAdapter
from adapters_direct.errors import AdapterError
from adapters_direct.factory import ExchangeFactory

from .breaker import BreakerState, CircuitBreaker
from .config import EngineConfig
from .executor import PairExecutor, Unresolved, _err_text, _round_down
from .journal import Journal, OrderRow
from .legs import LegBook
from .market import Capital, MarketData
from .models import ExecutionReport, HedgedPosition, OrderBook, OrderRequest, OrderResult, Signal, bounded
from .notify import Severity, make_notifier
from .pricing import estimate_exit, mid, premium, size_enter

__all__ = ["KimpEngine"]

log = logging.getLogger("kimp_fast.engine")
ZERO = Decimal(0)
ONE = Decimal(1)
_signal_decoder = msgspec.json.Decoder(Signal)
_signal_convert_err = (msgspec.ValidationError, msgspec.DecodeError, ValueError, TypeError)


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def _us(t0: int, t1: int) -> float:
    return (t1 - t0) // 100 / 10  # 0.1 µs steps without round()'s float-to-digits path


class KimpEngine:
    """Executes ENTER/EXIT signals as hedged two-leg orders. See the module docstring."""

    def __init__(
        self,
        config: EngineConfig,
        *,
        upbit: SpotAdapter | None = None,
        binance: PerpAdapter | None = None,
        notifier: Any = None,
        environ: Mapping[str, str] | None = None,
        lookup_delays: tuple[float, ...] = (0.05, 0.1, 0.2, 0.4, 0.8, 1.0),
        resolve_timeout_s: float = 15.0,
        not_found_confirmations: int = 3,
        in_flight_grace_s: float | None = None,
        market_max_age_s: float = 1.0,
        market_poll_s: float = 0.0,
    ) -> None:
        self.config = config
        self._environ = os.environ if environ is None else environ
        self._upbit = upbit
        self._binance = binance
        self._own_adapters = upbit is None and binance is None
        self._notifier = notifier
        self.lookup_delays = lookup_delays
        self.resolve_timeout_s = resolve_timeout_s
        self.not_found_confirmations = not_found_confirmations
        # How long after sending an order whose outcome is unknown it may still execute:
        # Binance refuses a request older than its recvWindow; Upbit documents no bound,
        # so the same window plus a margin is used for both (see executor.lookup).
        self.in_flight_grace_s = (
            config.binance.recv_window_ms / 1000.0 + 1.0 if in_flight_grace_s is None else in_flight_grace_s
        )
        self.market_max_age_s = market_max_age_s
        self.market_poll_s = market_poll_s
        self.journal: Journal | None = None  # type: ignore[assignment]
        self.market = MarketData(self)
        self.capital = Capital(self)
        self.executor = PairExecutor(self)
        circ = config.circuit
        self.breakers: dict[str, CircuitBreaker] = {
            name: CircuitBreaker(
                name, circ.failure_threshold, circ.recovery_timeout, on_transition=self._on_breaker
            )
            for name in ("upbit", "binance")
        }
        self._locks: dict[str, asyncio.Lock] = {}
        self._tasks: list[asyncio.Task[Any]] = []
        self._risk_halt = ""
        self._journal_error = ""  # the first failed journal write since start/resume
        self._risk_level: dict[str, str] = {}
        # venue that failed to fill its leg -> ENTERs fully unwound in a row for that cause
        self._unwinds: dict[str, int] = {}
        # coin -> signals finished: the risk check compares the exchanges with the journal
        # only across a window in which no signal of the coin moved either
        self._settled: dict[str, int] = {}
        self._mismatches: dict[str, set[str]] = {}  # coin -> exchange/journal differences alerted
        self._open = False
        self._positions: dict[str, HedgedPosition] | None = None
        self._inflight: dict[str, Signal] = {}  # signals being processed, by id
        # Every signal id the journal holds, for de-duplication without a read on the
        # order path (loaded at start; only this engine writes signals to its journal).
        self._seen: set[str] = set()
        self._rehearsals = 0
        #: mixed into every client order id (the journal's own id, see Journal.client_namespace)
        self.client_namespace = ""
        self._rehearsal_failures = 0
        self.fx_symbol = config.execution.fx_symbol
        # (Upbit spot, Binance perp) symbol of each configured coin, built once
        self._symbols = {c: (self.spot_symbol(c), self.perp_symbol(c)) for c in config.execution.coins}

    # -- wiring ---------------------------------------------------------------------
    @property
    def upbit(self) -> SpotAdapter:
        assert self._upbit is not None, "engine not started"
        return self._upbit

    @property
    def binance(self) -> PerpAdapter:
        assert self._binance is not None, "engine not started"
        return self._binance

    def adapter(self, exchange: str) -> SpotAdapter | PerpAdapter:
        a = self._upbit if exchange == "upbit" else self._binance
        assert a is not None, "engine not started"
        return a

    @staticmethod
    def spot_symbol(coin: str) -> str:
        return f"KRW-{coin}"

    @staticmethod
    def perp_symbol(coin: str) -> str:
        return f"{coin}USDT"

    def spot_limit_price(self, symbol: str, ask: Decimal) -> Decimal:
        """Slippage-capped Upbit limit price: best ask × (1 + max_slippage), on the tick,
        never below the best ask."""
        from .orders import quantize_price

        cap = ask * (ONE + self.config.execution.max_slippage_bps / Decimal(10_000))
        tick = self.upbit.tick_for(symbol, cap)
        price = quantize_price(cap, tick, "down")
        return price if price >= ask else ask

    def __repr__(self) -> str:
        return f"<KimpEngine {'open' if self._open else 'closed'} halted={self.halted}>"

    # -- lifecycle ------------------------------------------------------------------
    async def __aenter__(self) -> "KimpEngine":
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def start(self) -> None:
        cfg = self.config
        # exclusive: one engine per journal, with or without write-behind
        self.journal = Journal(cfg.journal.path, synchronous=cfg.journal.synchronous, autocheckpoint=False,
                               write_behind=cfg.journal.write_behind, exclusive=True)
        self._journal_error = ""
        self.journal.on_write_error = self._journal_failed
        for warning in cfg.insecure_http_warnings():
            log.warning("%s", warning)
        self._seen = self.journal.signal_ids()
        self.client_namespace = self.journal.client_namespace()
        self._positions = None
        if self._notifier is None:
            self._notifier = make_notifier(cfg, self._environ)
        await self._notifier.start()
        try:
            if self._own_adapters:
                self._upbit, self._binance = self._make_adapters()
                await self._upbit.__aenter__()
                await self._binance.__aenter__()
            await self._configure_binance()
            await self.capital.refresh()
            await self.reconcile()
        except BaseException:
            await self.close()
            raise
        self._open = True
        if cfg.risk.check_interval_s > 0:
            self._tasks.append(asyncio.ensure_future(self._risk_loop()))
        if self.market_poll_s > 0:
            self._tasks.append(asyncio.ensure_future(self._poll_loop()))
        self._tasks.append(asyncio.ensure_future(self._checkpoint_loop()))
        if cfg.binance.fee_refresh_s > 0:
            self._tasks.append(asyncio.ensure_future(self._fee_loop(cfg.binance.fee_refresh_s)))
        if cfg.performance.keep_warm_ms > 0:
            self._tasks.append(asyncio.ensure_future(self._warm_loop(cfg.performance.keep_warm_ms / 1000.0)))

    async def close(self) -> None:
        self._open = False
        self.capital.cancel()
        for t in self._tasks:
            t.cancel()
        for t in self._tasks:
            with contextlib.suppress(BaseException):
                await t
        self._tasks.clear()
        if self._own_adapters:
            for ad in (self._upbit, self._binance):
                if ad is not None:
                    with contextlib.suppress(Exception):
                        await ad.__aexit__(None, None, None)
        if self._notifier is not None:
            with contextlib.suppress(Exception):
                await self._notifier.close()
        if self.journal is not None:
            self.journal.close()
            self.journal = None

    def _make_adapters(self) -> tuple[SpotAdapter, PerpAdapter]:
        cfg = self.config
        ak, sk = cfg.upbit_keys(self._environ)
        bk, bs = cfg.binance_keys(self._environ)
        upbit = ExchangeFactory.create(
            "upbit", cfg.upbit.adapter, api_key=ak, secret_key=sk.get(),
            base_url=cfg.upbit.base_url, **_adapter_options(cfg, "upbit"),
        )
        binance = ExchangeFactory.create(
            "binance", cfg.binance.adapter, api_key=bk, secret_key=bs.get(),
            base_url=cfg.binance.base_url, **_adapter_options(cfg, "binance"),
        )
        return upbit, binance  # type: ignore[return-value]

    async def _configure_binance(self) -> None:
        b = self.binance
        await b.ensure_one_way_mode()
        for coin in self.config.execution.coins:
            sym = self.perp_symbol(coin)
            await b.set_margin_type(sym, self.config.binance.margin_type)
            await b.set_leverage(sym, self.config.binance.leverage)

    # -- kill switch ------------------------------------------------------------------
    @property
    def halted(self) -> bool:
        """True after ``halt()``, a ``manual_required`` outcome or a CLI ``halt``."""
        if self.journal is None:
            return False
        return self.journal.halt_state()[0]

    @property
    def halt_reason(self) -> str:
        if self.journal is None:
            return ""
        halted, reason, _ = self.journal.halt_state()
        return reason if halted else ""

    def halt(self, reason: str, *, source: str = "api", entries_only: bool = False) -> None:
        """Turn the kill switch on (journaled: it outlives a restart and is seen by the
        CLI). ``entries_only`` refuses new ENTERs but lets EXITs through."""
        assert self.journal is not None
        self.journal.set_halt(reason, source, entries_only=entries_only)
        self._notify(Severity.CRITICAL, "new entries halted" if entries_only else "engine halted", reason)

    def resume(self, *, source: str = "api") -> None:
        assert self.journal is not None
        self.journal.clear_halt(source)
        self._risk_halt = ""
        self._unwinds.clear()
        self._journal_error = ""
        self._notify(Severity.WARNING, "engine resumed", f"kill switch cleared by {source}")

    def positions(self) -> dict[str, HedgedPosition]:
        """Open hedged positions by coin (the journal's, cached: only this engine writes them)."""
        if self._positions is None:
            assert self.journal is not None
            self._positions = self.journal.positions()
        return dict(self._positions)

    def status(self) -> dict[str, Any]:
        halted, reason, _ = self.journal.halt_state() if self.journal else (False, "", 0)
        return {
            "halted": halted,
            "halt_reason": reason,
            "halt_scope": ("entries" if self.journal.halt_entries_only else "all") if halted else "",
            "risk_halt": self._risk_halt,
            "journal_error": self.journal.write_error if self.journal else "",
            "breakers": {k: b.snapshot() for k, b in self.breakers.items()},
            "capital": self.capital.snapshot(),
            "positions": {k: msgspec.to_builtins(v) for k, v in self.positions().items()},
        }

    def _notify(self, severity: Severity, title: str, message: str = "") -> None:
        if self.journal is not None:
            self.journal.notification(str(severity.value), title, message)
        if self._notifier is not None:
            self._notifier.notify(severity, title, message)

    def _journal_failed(self, error: str) -> None:
        """A SQLite write failed (a full disk, a read-only file...). New signals are
        refused from now on — through the halt stamp, which needs no SQLite write and is
        seen by every process of this journal (``kimp-fast status`` shows it); what is in
        flight carries on (its writes go to the redo file). A CRITICAL alert goes out
        directly: a notification row would be one more write to the failing journal."""
        if self.journal is None:
            return
        held = self.journal.stamp_halted
        if held and self._journal_error:
            return  # halted and alerted already (a resume, from any process, clears the stamp)
        self._journal_error = error
        reason = (f"journal write failed ({error}): new signals refused; free the disk / make the "
                  "journal writable, then 'kimp-fast resume'")
        if not held:  # an operator's halt already in the stamp keeps its reason
            try:
                self.journal.stamp_halt(reason, "journal")
            except Exception as exc:  # pragma: no cover - an engine journal always has its stamp
                log.critical("cannot halt through the stamp either: %s", exc)
        log.critical("engine halted: %s", reason)
        if self._notifier is not None:
            self._notifier.notify(Severity.CRITICAL, "journal write failed: engine halted", reason)

    def _on_breaker(self, name: str, old: BreakerState, new: BreakerState, reason: str) -> None:
        if self.journal is not None:
            self.journal.breaker_event(name, old.value, new.value, reason)
        sev = Severity.WARNING if new is not BreakerState.CLOSED else Severity.INFO
        self._notify(sev, f"{name} circuit breaker {new.value}", reason)

    # -- submit -----------------------------------------------------------------------
    async def submit(self, signal: Signal | Mapping[str, Any] | str | bytes) -> ExecutionReport:
        """Execute one signal and return its report (never raises for bad input)."""
        t0 = time.perf_counter_ns()
        timings: dict[str, float] = {}
        if self.journal is None:
            raise RuntimeError("KimpEngine is not started: use 'async with KimpEngine(cfg) as engine'")
        try:
            sig = _coerce_signal(signal)
        except _signal_convert_err as exc:
            return self._malformed(signal, exc)
        reason = self._validate(sig, _now_ms())
        t1 = time.perf_counter_ns()
        timings["validate"] = _us(t0, t1)
        if reason:
            if sig.id in self._seen:
                return self._duplicate(sig)
            self._seen.add(sig.id)
            report = ExecutionReport(
                signal_id=sig.id, action=sig.action, coin=sig.coin, status="rejected", reason=reason,
                timings_us=timings,
            )
            self.journal.record_rejected_signal(sig.id, sig.action, sig.coin, report)
            return report
        # De-duplication. The signal's row is written in the same commit as its first
        # order intents (or with its report when nothing is sent): one commit on the order
        # path, and a signal that dies before that point sent nothing. ``_inflight`` covers
        # the gap in this process; a signal that must wait for its coin's lock is put on
        # record (``processing``) before it waits, so a restart closes it.
        if sig.id in self._inflight or sig.id in self._seen:
            return self._duplicate(sig)
        self._inflight[sig.id] = sig
        self._seen.add(sig.id)
        try:
            lock = self._locks.get(sig.coin)
            if lock is None:
                lock = self._locks[sig.coin] = asyncio.Lock()
            if lock.locked():
                self.journal.begin_signal(sig)
            timings["dedupe"] = _us(t1, time.perf_counter_ns())
            await lock.acquire()
            try:
                if sig.action == "ENTER":
                    report = await self._enter(sig, timings)
                else:
                    report = await self._exit(sig, timings)
            except Exception as exc:  # never leave silently
                report = self._failed(sig, exc, timings)
            finally:
                lock.release()
        finally:
            del self._inflight[sig.id]
            # the report's records reach SQLite once the caller lets the loop turn
            self.journal.flush_soon()
        report.timings_us["total"] = _us(t0, time.perf_counter_ns())
        return report

    def _failed(self, sig: Signal, exc: Exception, timings: dict[str, float]) -> ExecutionReport:
        """An exception escaped the pipeline. Before any order row exists nothing can have
        been sent, so the signal is simply rejected; after that, exposure is unknown:
        halt and ask for a human."""
        text = _err_text(exc) if isinstance(exc, AdapterError) else f"{type(exc).__name__}: {exc}"
        if not self.journal.orders_for_signal(sig.id):
            if not isinstance(exc, AdapterError):
                log.exception("signal %s failed before sending", sig.id)
            report = ExecutionReport(
                signal_id=sig.id, action=sig.action, coin=sig.coin, status="rejected",
                reason=f"failed before any order was sent: {text}", timings_us=timings,
            )
            try:
                self._finish(report)
            except Exception:
                if not self._journal_error:
                    raise
                log.warning("signal %s rejected; not journaled (the journal cannot be written)", sig.id)
            return report
        log.exception("signal %s failed with orders in flight", sig.id)
        report = ExecutionReport(
            signal_id=sig.id, action=sig.action, coin=sig.coin, status="manual_required",
            reason=f"internal error with orders in flight: {text}", timings_us=timings,
        )
        self._finish(report)
        self._manual(report)
        return report

    def _validate(self, sig: Signal, now_ms: int) -> str:
        ex = self.config.execution
        if sig.coin not in ex.coins:
            return f"coin {sig.coin} is not configured (execution.coins = {list(ex.coins)})"
        if sig.ttl_ms > ex.signal_ttl_ms_max:
            return f"ttl_ms {sig.ttl_ms} exceeds the maximum {ex.signal_ttl_ms_max}"
        if sig.ts_ms > now_ms + ex.max_clock_skew_ms:
            return f"signal time stamp is {sig.ts_ms - now_ms} ms in the future"
        if sig.expired(now_ms):
            return f"signal expired {now_ms - sig.ts_ms - sig.ttl_ms} ms ago (ts_ms + ttl_ms < now)"
        if sig.qty is not None:
            # A size no single order can have is a broken signal, not one to cap and trade.
            perp = self._symbols[sig.coin][1]
            try:
                rules = self._binance.rules(perp)  # type: ignore[union-attr]
            except KeyError as exc:
                return str(exc)
            largest = rules.market_max_qty or rules.max_qty
            if largest is not None and sig.qty > largest:
                return f"qty {sig.qty} exceeds the largest order {perp} accepts ({largest})"
        return ""

    def _malformed(self, raw: object, exc: Exception) -> ExecutionReport:
        # Whatever the input holds, only a bounded part of it is shown (a 10 MB field
        # must not travel on in the report).
        sid = action = ""
        if isinstance(raw, Mapping):
            sid, action = bounded(raw.get("id", ""), 128), bounded(raw.get("action", ""), 16)
        return ExecutionReport(
            signal_id=sid, action=action, coin="", status="rejected", reason=f"invalid signal: {bounded(exc)}",
        )

    def _duplicate(self, sig: Signal) -> ExecutionReport:
        prev = (self.journal.signal_status(sig.id) if self.journal else None) or "processing"
        return ExecutionReport(
            signal_id=sig.id, action=sig.action, coin=sig.coin, status="duplicate",
            reason=f"signal id already processed (status {prev})",
        )

    def _gate(self, sig: Signal) -> str:
        halted, reason, _ = self.journal.halt_state()
        if halted:
            if sig.action == "ENTER" or not self.journal.halt_entries_only:
                return f"engine halted: {reason}"
        if sig.action == "ENTER" and self._risk_halt:
            return f"new entries halted by the risk monitor: {self._risk_halt}"
        for name, b in self.breakers.items():
            if b.state is BreakerState.OPEN:
                return f"{name} circuit breaker is open"
        return ""

    def _permits(self) -> str:
        """Ask both breakers for permission right before sending new trading traffic.
        In HALF_OPEN a breaker grants one trial; if the other refuses, the permit taken
        is handed back so the trial is not lost."""
        granted = []
        for name, b in self.breakers.items():
            if not b.allow():
                for g in granted:
                    g.release()
                return f"{name} circuit breaker is {b.state.value} (no trial permit available)"
            granted.append(b)
        return ""

    def _refuse(self, sig: Signal, reason: str, timings: dict[str, float], status: str = "refused") -> ExecutionReport:
        report = ExecutionReport(
            signal_id=sig.id, action=sig.action, coin=sig.coin, status=status,  # type: ignore[arg-type]
            reason=reason, timings_us=timings,
        )
        try:
            self._finish(report)
        except Exception:
            if not self._journal_error:
                raise
            # Nothing was sent; the journal that cannot take this refusal is why it is one.
            log.warning("signal %s refused; not journaled (the journal cannot be written)", sig.id)
        return report

    def _finish(self, report: ExecutionReport, **kw: Any) -> None:
        self.journal.finish_signal(report, signal=self._inflight.get(report.signal_id), **kw)
        self._settled[report.coin] = self._settled.get(report.coin, 0) + 1
        # The cache follows what was just journaled (re-reading it would flush the
        # journal's pending writes on the next signal's order path).
        position, cleared = kw.get("position"), kw.get("clear_position")
        if (position is not None or cleared is not None) and self._positions is not None:
            if position is not None:
                self._positions[position.coin] = position
            if cleared is not None:
                self._positions.pop(cleared, None)
        sev = Severity.INFO
        if report.status in ("recovered", "unwound"):
            sev = Severity.WARNING
        elif report.status == "manual_required":
            sev = Severity.CRITICAL
        if report.status not in ("refused", "rejected", "duplicate") or sev is not Severity.INFO:
            self._notify(
                sev, f"{report.action} {report.coin} {report.status}",
                f"signal {report.signal_id}: qty {report.qty}" + (f" — {report.reason}" if report.reason else ""),
            )

    def _manual(self, report: ExecutionReport) -> None:
        self.journal.set_halt(f"manual intervention required for signal {report.signal_id}: {report.reason}", "engine")
        self._notify(Severity.CRITICAL, "engine halted", f"manual intervention required: {report.reason}")

    # -- ENTER ------------------------------------------------------------------------
    async def _enter(self, sig: Signal, timings: dict[str, float]) -> ExecutionReport:
        t = time.perf_counter_ns()
        reason = self._gate(sig)
        if not reason and sig.coin in self.positions():
            reason = f"{sig.coin} already has an open position (ENTER needs a flat coin)"
        if reason:
            return self._refuse(sig, reason, timings)
        coin = sig.coin
        # Balances and books are usually current: checked without an await (each await
        # of a coroutine that never suspends still costs a frame on the order path).
        if not self.capital.current():
            await self.capital.ready()
        books = self.market.fresh_pair(coin, self.market_max_age_s)
        ub, bb = books if books is not None else await self.market.pair(coin, self.market_max_age_s)
        size = self._size_enter(sig, ub, bb)
        t2 = time.perf_counter_ns()
        timings["size"] = _us(t, t2)
        if not size.ok:
            # the balances may have changed outside the engine (a deposit, a liquidation):
            # read them again, or every later ENTER is sized against the same old figures
            self.capital.refresh_soon()
            return self._refuse(sig, f"sizing: {size.reason}", timings, status="rejected")
        reason = self._permits()
        if reason:
            return self._refuse(sig, reason, timings)
        reservation = self.capital.reserve(size.spot_cost_krw, size.perp_margin_usdt)
        try:
            return await self._enter_sized(sig, size, ub, bb, timings)
        finally:
            self.capital.release(reservation)
            self.capital.refresh_soon()

    def _size_enter(self, sig: Signal, ub: OrderBook, bb: OrderBook) -> Any:
        spot, perp = self._symbols[sig.coin]
        upbit, binance = self.upbit, self.binance
        tick = upbit.tick_for(spot, ub.asks[0].price) if ub.asks else Decimal(1)
        cap = self.config.capital
        ex = self.config.execution
        return size_enter(
            requested_qty=sig.qty or ZERO,
            upbit_book=ub, binance_book=bb,
            upbit_rules=upbit.rules(spot), binance_rules=binance.rules(perp),
            upbit_tick=tick,
            krw_free=self.capital.krw_free, usdt_available=self.capital.usdt_available,
            krw_reserved=self.capital.reserved_krw, usdt_reserved=self.capital.reserved_usdt,
            trading_ratio=cap.trading_ratio, reserve_ratio=cap.reserve_ratio,
            leverage=self.config.binance.leverage, max_slippage_bps=ex.max_slippage_bps,
            max_order_krw=ex.max_order_krw,
        )

    def _entry_requests(
        self, sig: Signal, qty: Decimal, spot_limit_price: Decimal, attempt: int
    ) -> tuple[OrderRequest, OrderRequest]:
        """The ENTER pair: Upbit buy (limit IOC, or a KRW market buy) and Binance short."""
        x = self.executor
        spot, perp = self._symbols[sig.coin]
        if self.config.execution.upbit_buy_mode == "market_krw":
            req_u = OrderRequest(
                symbol=spot, side="buy", type="market",
                quote_amount=(qty * spot_limit_price).quantize(ONE),
                client_id=x.client_id(sig.id, "upbit", "entry", attempt),
            )
        else:
            req_u = OrderRequest(
                symbol=spot, side="buy", type="limit", quantity=qty, price=spot_limit_price,
                time_in_force="ioc", client_id=x.client_id(sig.id, "upbit", "entry", attempt),
            )
        req_b = OrderRequest(
            symbol=perp, side="sell", type="market", quantity=qty,
            client_id=x.client_id(sig.id, "binance", "entry", attempt),
        )
        return req_u, req_b

    def _entry_plan(self, sig: Signal, size: Any, fx: Decimal) -> dict[str, Any]:
        return {
            "coin": sig.coin, "action": "ENTER", "qty": str(size.qty), "fx": str(fx),
            "spot_limit": str(size.spot_limit_price), "mode": self.config.execution.upbit_buy_mode,
        }

    async def _enter_sized(self, sig, size, ub, bb, timings) -> ExecutionReport:
        coin = sig.coin
        spot, perp = self._symbols[coin]
        ex_cfg = self.config.execution
        j = self.journal
        x = self.executor
        legs = LegBook()
        fx = self.market.fresh_fx(30.0) or await self.market.fx(max_age=30.0)
        plan: dict[str, Any] | None = self._entry_plan(sig, size, fx)
        qty = size.qty
        notes: list[str] = []
        failures: list[str] = []
        attempt = 0
        market_krw = ex_cfg.upbit_buy_mode == "market_krw"
        opened_ms = _now_ms()  # the first order's intent: the position's funding window opens here
        while True:
            attempt += 1
            t = time.perf_counter_ns()
            req_u, req_b = self._entry_requests(sig, qty, size.spot_limit_price, attempt)
            if market_krw:
                # The KRW market buy cannot name a quantity: buy first, then short exactly
                # what filled (rounded down to the lot; the rest is recorded residual).
                j.order_intents([x.intent_row(sig.id, "upbit", "entry", attempt, req_u)], signal=sig, plan=plan)
                plan = None
                tb = time.perf_counter_ns()
                timings["build"] = _us(t, tb)
                out_u = await x.place("upbit", req_u, reserved=False)
                res_u = await x.resolve("upbit", spot, req_u.client_id, out_u)
                got = res_u.filled_qty if res_u is not None else ZERO
                step = self.binance.rules(perp).qty_step
                short_qty = (got / step).to_integral_value(rounding=ROUND_DOWN) * step
                res_b = None
                out_b: OrderResult | AdapterError | None = None
                if short_qty <= 0:
                    self.breakers["binance"].release()
                else:
                    req_b = OrderRequest(symbol=perp, side="sell", type="market", quantity=short_qty,
                                         client_id=req_b.client_id)
                    j.order_intent(**x.intent_row(sig.id, "binance", "entry", attempt, req_b))
                    out_b = await x.place("binance", req_b, reserved=False)
                    res_b = await x.resolve("binance", perp, req_b.client_id, out_b)
                timings["send"] = _us(tb, time.perf_counter_ns())
            else:
                j.order_intents([
                    x.intent_row(sig.id, "upbit", "entry", attempt, req_u),
                    x.intent_row(sig.id, "binance", "entry", attempt, req_b),
                ], signal=sig, plan=plan)
                plan = None
                tb = time.perf_counter_ns()
                timings["build"] = _us(t, tb)
                # Both requests are written here, before the first await (the slower
                # venue's first); then both answers are awaited together.
                sent_b = x.start("binance", req_b, reserved=False, flush=False)
                sent_u = x.start("upbit", req_u, reserved=False)
                out_b, out_u = await asyncio.gather(sent_b, sent_u)
                ts = time.perf_counter_ns()
                timings["send"] = _us(tb, ts)
                try:
                    res_u, res_b = await asyncio.gather(
                        x.resolve("upbit", spot, req_u.client_id, out_u),
                        x.resolve("binance", perp, req_b.client_id, out_b),
                    )
                except Unresolved as exc:
                    return await self._unresolved(sig, legs, str(exc), timings, fx)
                timings["resolve"] = _us(ts, time.perf_counter_ns())
            for res in (res_u, res_b):
                if res is not None:
                    legs.add(res, "entry")
            for name, out in (("upbit", out_u), ("binance", out_b)):
                if isinstance(out, AdapterError):
                    failures.append(f"{name}: {_err_text(out)}")
            if legs.anything_filled:
                break
            # Nothing filled anywhere: retry the pair only while the signal is valid and
            # only when an infrastructure failure (not a business rejection) was the cause.
            infra = any(isinstance(o, AdapterError) and o.infrastructure for o in (out_u, out_b))
            cfg = self.config.one_leg
            delay = float(cfg.retry_delays[min(attempt - 1, len(cfg.retry_delays) - 1)]) if cfg.retry_delays else 0.0
            still_valid = _now_ms() + delay * 1000 < sig.ts_ms + sig.ttl_ms
            if not infra or attempt > cfg.max_retries or not still_valid or self._gate(sig) or self._permits():
                why = "; ".join(failures) or "no fill (IOC found no liquidity within the slippage cap)"
                report = ExecutionReport(
                    signal_id=sig.id, action="ENTER", coin=coin, status="rejected",
                    reason=f"no leg executed: {why}", orders=legs.results, timings_us=timings,
                )
                self._finish(report)
                return report
            j.recovery_step(sig.id, coin, "pair-retry", attempt=attempt + 1, delay_s=delay)
            notes.append(f"pair retry {attempt + 1} after: {'; '.join(failures[-2:])}")
            await x.pause(delay)
        return await self._settle_enter(sig, legs, fx, timings, notes, attempts={"upbit": 0, "binance": 0},
                                        opened_ms=opened_ms)

    async def _settle_enter(self, sig, legs: LegBook, fx: Decimal, timings, notes, attempts,
                            opened_ms: int | None = None) -> ExecutionReport:
        coin = sig.coin
        tr = time.perf_counter_ns()
        try:
            outcome, rnotes = await self.executor.repair(
                signal_id=sig.id, action="ENTER", coin=coin, legs=legs,
                residual_before=ZERO, attempts=attempts,
            )
        except Unresolved as exc:
            return await self._unresolved(sig, legs, str(exc), timings, fx)
        notes.extend(rnotes)
        if outcome != "hedged":
            timings["repair"] = _us(tr, time.perf_counter_ns())
        spot_net = legs.net("upbit")
        short = -legs.net("binance")
        hedged = min(spot_net, short)
        residual = spot_net - short
        position = None
        if hedged > 0:
            buy_u = legs.avg("upbit", "buy") or ZERO
            sell_b = legs.avg("binance", "sell") or ZERO
            kimp = premium(buy_u, sell_b, fx) if buy_u > 0 and sell_b > 0 else None
            # Funding is attributed from opened_ts_ms: take the moment this signal's first
            # order left, not the end of its repair — the short may have been held (and
            # funded) for seconds before a missing leg was completed. The coin was flat
            # before this ENTER, so no earlier funding can fall in the window.
            opened = opened_ms if opened_ms is not None else min(
                (o.created_ms for o in self.journal.orders_for_signal(sig.id)), default=_now_ms())
            position = HedgedPosition(
                coin=coin, qty=hedged, entry_spot_price=buy_u, entry_perp_price=sell_b, entry_fx=fx,
                entry_fees_krw=legs.fees["upbit"], entry_fees_usdt=legs.fees["binance"],
                opened_ts_ms=opened, signal_id=sig.id, entry_kimp=kimp, spot_residual=residual,
            )
        realized = self._round_trip_pnl(legs, fx)
        status = {"hedged": "filled", "recovered": "recovered", "unwound": "unwound", "manual": "manual_required"}[outcome]
        reason = "; ".join(notes)
        if residual != 0 and outcome != "manual":
            reason = (reason + "; " if reason else "") + f"residual {residual} {coin} recorded (below one lot)"
            self.journal.recovery_step(sig.id, coin, "residual", qty=str(residual))
        fees_krw = legs.fees["upbit"] + legs.fees["binance"] * fx
        if outcome == "unwound" and position is None:
            # Fully unwound: no position carries these fees to a later EXIT, so they are
            # realized here (a remaining position carries them in entry_fees_*).
            realized -= fees_krw
        report = ExecutionReport(
            signal_id=sig.id, action="ENTER", coin=coin, status=status, reason=reason,  # type: ignore[arg-type]
            qty=hedged if hedged > 0 else ZERO, orders=legs.results, recovery=notes,
            realized_pnl_krw=realized if outcome == "unwound" else None,
            fees_krw=fees_krw,
            kimp_entry=position.entry_kimp if position else None, timings_us=timings,
        )
        tj = time.perf_counter_ns()
        self._finish(report, position=position)
        timings["journal"] = _us(tj, time.perf_counter_ns())
        if status == "manual_required":
            self._manual(report)
        elif outcome == "unwound" and position is None:
            self._count_unwind(sig, legs, reason)
        elif self._unwinds:
            self._unwinds.clear()  # both venues filled: whatever refused before works again
        return report

    def _count_unwind(self, sig: Signal, legs: LegBook, why: str) -> None:
        """An ENTER ended fully unwound: one venue filled and had to be sold back because
        the other did not fill. Every such signal costs the spread and two fees, and a
        venue that refuses every order (margin, a changed filter, a banned key) makes
        every later ENTER do the same. ``[one_leg] max_consecutive_unwinds`` in a row
        for the same venue halt new entries (EXITs still run)."""
        unwound = [ex for ex in ("upbit", "binance") if legs.bought[ex] > 0 and legs.sold[ex] > 0]
        failed = {"upbit": "binance", "binance": "upbit"}[unwound[0]] if len(unwound) == 1 else "both venues"
        n = self._unwinds.get(failed, 0) + 1
        self._unwinds = {failed: n}  # another cause starts a new count
        self.journal.recovery_step(sig.id, sig.coin, "unwind-count", venue=failed, consecutive=n)
        limit = self.config.one_leg.max_consecutive_unwinds
        if limit and n >= limit:
            self.halt(
                f"{n} ENTERs in a row fully unwound because {failed} did not fill its leg "
                f"(last: signal {sig.id}: {why[:300]}); check {failed} before resuming",
                source="engine", entries_only=True,
            )

    @staticmethod
    def _round_trip_pnl(legs: LegBook, fx: Decimal) -> Decimal:
        """P&L of quantity bought and sold back within one signal (unwinds), in KRW."""
        total = ZERO
        for ex, conv in (("upbit", ONE), ("binance", fx)):
            q = min(legs.bought[ex], legs.sold[ex])
            if q > 0:
                b, s = legs.avg(ex, "buy"), legs.avg(ex, "sell")
                if b is not None and s is not None:
                    total += (s - b) * q * conv
        return total

    async def _unresolved(self, sig, legs, why, timings, fx) -> ExecutionReport:
        report = ExecutionReport(
            signal_id=sig.id, action=sig.action, coin=sig.coin, status="manual_required",
            reason=f"order outcome could not be established: {why}", orders=legs.results,
            timings_us=timings,
        )
        self._finish(report)
        self._manual(report)
        return report

    # -- EXIT -------------------------------------------------------------------------
    async def _exit(self, sig: Signal, timings: dict[str, float]) -> ExecutionReport:
        t = time.perf_counter_ns()
        reason = self._gate(sig)
        pos = self.positions().get(sig.coin)
        if not reason and pos is None:
            reason = f"{sig.coin} has no open position to exit"
        if reason:
            return self._refuse(sig, reason, timings)
        assert pos is not None
        if pos.naked_spot > 0:
            return await self._exit_naked(sig, pos, timings)
        coin = sig.coin
        spot, perp = self.spot_symbol(coin), self.perp_symbol(coin)
        requested = sig.qty if sig.qty is not None else pos.qty
        if requested > pos.qty:
            return self._refuse(sig, f"qty {requested} exceeds the open position {pos.qty}", timings, status="rejected")
        lot = self.binance.rules(perp).qty_step
        # Leaving less than one lot open would leave a position no order can close (and
        # that blocks every later ENTER): such an EXIT closes everything, both legs whole
        # (the short is a whole number of lots; the spot leg carries any residual).
        full = requested >= pos.qty or pos.qty - _round_down(requested, lot) < lot
        qty, spot_qty = self._exit_size(pos, None if full else requested)
        if qty <= 0:
            return self._refuse(sig, f"qty rounds to 0 at the lot step {lot}", timings, status="rejected")
        exit_cfg = self.config.exit
        # Funding is read whatever include_funding says: the flag may change the decision
        # only, the recorded P&L is always what the account received.
        fund_task = asyncio.ensure_future(self._position_funding(pos))
        try:
            # The commission rate is read again (a venue changes it, and a stale rate is
            # how an EXIT estimated at a profit closes at a loss); it also prices the fee
            # of the fills that follow. The short is read too: an EXIT must never buy
            # back a short the exchange no longer holds (after a liquidation that sells
            # the spot, fails the reduce-only buy and buys the spot back, every signal).
            (ub, bb), fx, _, bpos = await asyncio.gather(
                self.market.pair(coin, 0.0), self.market.fx(max_age=0.0), self.binance.get_commission_rate(perp),
                self.binance.get_position(perp))
            funding = await fund_task
        except AdapterError as exc:
            fund_task.cancel()
            return self._refuse(sig, f"cannot value the exit: {_err_text(exc)}", timings)
        if -bpos.qty <= _held(pos)[1] - lot:
            return await self._exit_naked(sig, self._short_lost(coin, pos, -bpos.qty), timings)
        est = await self._estimate_exit(pos, qty, spot_qty, ub, bb, fx, funding)
        timings["size"] = _us(t, time.perf_counter_ns())
        if est.reason or not self._exit_approved(est):
            why = est.reason or f"not profitable: {est.describe()} <= min_net_profit {exit_cfg.min_net_profit}"
            report = ExecutionReport(
                signal_id=sig.id, action="EXIT", coin=coin, status="refused", reason=why,
                kimp_entry=est.premium_entry, kimp_exit=est.premium_now, timings_us=timings,
            )
            self._finish(report)
            return report
        reason = self._permits()
        if reason:
            return self._refuse(sig, reason, timings)
        j = self.journal
        x = self.executor
        legs = LegBook()
        notes: list[str] = []
        outcomes: list[str] = []
        attempts = {"upbit": 0, "binance": 0}
        first_est = est
        tol = exit_cfg.tolerance_bps / Decimal(10_000)
        rnd = 0
        open_before = pos.qty
        while True:
            rnd += 1
            # Each leg is bounded by the price its estimate assumed, moved against us by
            # the tolerance: whatever the market does while the orders travel, what fills
            # realises at most tolerance_bps of each leg's notional below the estimate.
            bounds = {"upbit": est.spot_exit_price * (ONE - tol), "binance": est.perp_exit_price * (ONE + tol)}
            plan = {
                "coin": coin, "action": "EXIT", "round": rnd, "qty": str(qty), "spot_qty": str(spot_qty),
                "fx": str(fx), "expected_net_krw": str(est.net_krw),
                "spot_bound": str(bounds["upbit"]), "perp_bound": str(bounds["binance"]),
            }
            req_u = OrderRequest(symbol=spot, side="sell", type="limit", quantity=spot_qty, price=bounds["upbit"],
                                 time_in_force="ioc", client_id=x.client_id(sig.id, "upbit", "exit", rnd))
            req_b = OrderRequest(symbol=perp, side="buy", type="limit", quantity=qty, price=bounds["binance"],
                                 time_in_force="ioc", reduce_only=True,
                                 client_id=x.client_id(sig.id, "binance", "exit", rnd))
            t1 = time.perf_counter_ns()
            j.order_intents([
                x.intent_row(sig.id, "upbit", "exit", rnd, req_u),
                x.intent_row(sig.id, "binance", "exit", rnd, req_b),
            ], signal=sig if rnd == 1 else None, plan=plan)
            tb = time.perf_counter_ns()
            if rnd == 1:
                timings["build"] = _us(t1, tb)
            sent_b = x.start("binance", req_b, reserved=False, flush=False)  # both written before the first await
            sent_u = x.start("upbit", req_u, reserved=False)
            out_b, out_u = await asyncio.gather(sent_b, sent_u)
            ts = time.perf_counter_ns()
            if rnd == 1:
                timings["send"] = _us(tb, ts)
            try:
                res_u, res_b = await asyncio.gather(
                    x.resolve("upbit", spot, req_u.client_id, out_u),
                    x.resolve("binance", perp, req_b.client_id, out_b),
                )
            except Unresolved as exc:
                return await self._unresolved(sig, legs, str(exc), timings, fx)
            if rnd == 1:
                timings["resolve"] = _us(ts, time.perf_counter_ns())
            for res in (res_u, res_b):
                if res is not None:
                    legs.add(res, "exit")
            for name, out in (("upbit", out_u), ("binance", out_b)):
                if isinstance(out, AdapterError):
                    notes.append(f"{name}: {_err_text(out)}")
            if not legs.anything_filled:
                return self._exit_unfilled(sig, legs, notes, timings)
            if rnd > 1 and not any(r is not None and r.filled_qty > 0 for r in (res_u, res_b)):
                break  # nothing more within the bounds: the exposure is as round 1 left it
            tr = time.perf_counter_ns()
            try:
                outcome, rnotes = await x.repair(
                    signal_id=sig.id, action="EXIT", coin=coin, legs=legs,
                    residual_before=pos.spot_residual, attempts=attempts, bounds=bounds,
                )
            except Unresolved as exc:
                return await self._unresolved(sig, legs, str(exc), timings, fx)
            notes.extend(rnotes)
            outcomes.append(outcome)
            if outcome != "hedged":
                timings["repair"] = timings.get("repair", 0.0) + _us(tr, time.perf_counter_ns())
            if not full or outcome == "manual" or rnd >= exit_cfg.max_rounds:
                break
            # A full EXIT that closed part of the position (the bounds stopped a fill, or
            # the repair evened the legs short of the whole) goes on with the rest while
            # the exit rule still approves it. A round that closed nothing (a venue
            # refusing, a move past the bounds undone by the unwind) ends it: trying again
            # at once would only pay the round trip again.
            cur = self._exit_result(pos, legs, funding)[0]
            if cur is None or cur.qty >= open_before:
                break
            qty, spot_qty = self._exit_size(cur, None)
            if qty <= 0:
                break
            try:
                ub, bb = await self.market.pair(coin, 0.0)
                est = await self._estimate_exit(cur, qty, spot_qty, ub, bb, fx,
                                                funding - (cur.funding_credited_usdt - pos.funding_credited_usdt))
            except AdapterError as exc:
                notes.append(f"round {rnd + 1} not sent: {_err_text(exc)}")
                break
            if est.reason or not self._exit_approved(est):
                notes.append(f"round {rnd + 1} not sent, the exit rule stops: {est.reason or est.describe()}")
                break
            why = self._gate(sig) or self._permits()
            if why:
                notes.append(f"round {rnd + 1} not sent: {why}")
                break
            j.recovery_step(sig.id, coin, "exit-round", round=rnd + 1, qty=str(qty), spot_qty=str(spot_qty))
            open_before = cur.qty
        if "manual" in outcomes:
            outcome = "manual"
        elif "unwound" in outcomes and self._exit_result(pos, legs, funding)[0] is not None:
            outcome = "unwound"  # part of the position is still open: the repair gave it back
        else:
            outcome = "hedged" if all(o == "hedged" for o in outcomes) else "recovered"
        return self._record_exit(sig, pos, legs, fx, funding, first_est, timings, notes, outcome)

    def _exit_size(self, pos: HedgedPosition, requested: Decimal | None) -> tuple[Decimal, Decimal]:
        """(short to buy back, spot to sell) of an EXIT of ``requested`` (None: all of it,
        both legs whole), rounded to each venue's step."""
        coin = pos.coin
        lot = self.binance.rules(self.perp_symbol(coin)).qty_step
        spot_step = self.upbit.rules(self.spot_symbol(coin)).qty_step
        if requested is None:
            spot_held, short_held = _held(pos)
            return _round_down(short_held, lot), _round_down(spot_held, spot_step)
        qty = _round_down(requested, lot)
        return qty, _round_down(qty, spot_step)

    async def _estimate_exit(self, pos: HedgedPosition, qty: Decimal, spot_qty: Decimal, ub: OrderBook,
                             bb: OrderBook, fx: Decimal, funding: Decimal) -> Any:
        """The exit estimate at the current fees; too large for the usual 15 levels, both
        books are read again as deep as the venues show."""
        spot, perp = self._symbols[pos.coin]
        urules, brules = self.upbit.rules(spot), self.binance.rules(perp)
        counted = funding if self.config.exit.include_funding else ZERO

        def estimate(ub: OrderBook, bb: OrderBook) -> Any:
            return estimate_exit(
                position=pos, qty=qty, spot_qty=spot_qty, upbit_book=ub, binance_book=bb, fx=fx,
                upbit_fee=urules.taker_fee, binance_fee=brules.taker_fee, funding_usdt=counted,
            )

        est = estimate(ub, bb)
        if est.reason:
            est = estimate(*await self.market.deep_pair(pos.coin))
        return est

    def _exit_approved(self, est: Any) -> bool:
        cfg = self.config.exit
        return est.net_krw > cfg.min_net_profit or cfg.allow_loss_exit

    def _exit_unfilled(self, sig: Signal, legs: LegBook, notes: list[str], timings: dict[str, float]) -> ExecutionReport:
        report = ExecutionReport(
            signal_id=sig.id, action="EXIT", coin=sig.coin, status="rejected",
            reason="no leg executed: " + ("; ".join(notes) or "no fill within the price bounds"),
            orders=legs.results, timings_us=timings,
        )
        self._finish(report)
        return report

    async def _exit_naked(self, sig: Signal, pos: HedgedPosition, timings: dict[str, float]) -> ExecutionReport:
        """Sell the spot that lost its short, alone: a sanctioned unwind of an unhedged
        exposure, not a close judged by the exit rule (waiting for a profit would be a
        bet on the coin). The hedged rest of the position, if any, stays for a later EXIT."""
        coin = sig.coin
        spot = self.spot_symbol(coin)
        rules = self.upbit.rules(spot)
        qty = _round_down(pos.naked_spot, rules.qty_step)
        try:
            book, fx = await asyncio.gather(self.market.book("upbit", spot, max_age=0.0), self.market.fx(max_age=0.0))
        except AdapterError as exc:
            return self._refuse(sig, f"cannot price the naked spot: {_err_text(exc)}", timings)
        bid = book.best_bid()
        if qty <= 0 or bid is None or qty * bid < rules.min_notional:
            return self._refuse(sig, f"naked spot {pos.naked_spot} {coin} is below Upbit's minimum order: sell it by hand",
                                timings)
        reason = self._permits()
        if reason:
            return self._refuse(sig, reason, timings)
        self.breakers["binance"].release()  # nothing goes to Binance
        x = self.executor
        req = OrderRequest(symbol=spot, side="sell", type="market", quantity=qty,
                           client_id=x.client_id(sig.id, "upbit", "unwind", 1))
        self.journal.order_intents([x.intent_row(sig.id, "upbit", "unwind", 1, req)], signal=sig,
                                   plan={"coin": coin, "action": "EXIT", "naked_spot": str(qty), "fx": str(fx)})
        out = await x.place("upbit", req, reserved=False)
        legs = LegBook()
        try:
            res = await x.resolve("upbit", spot, req.client_id, out)
        except Unresolved as exc:
            return await self._unresolved(sig, legs, str(exc), timings, fx)
        if res is not None:
            legs.add(res, "unwind")
        sold = legs.sold["upbit"]
        if sold <= 0:
            why = _err_text(out) if isinstance(out, AdapterError) else "no fill"
            report = ExecutionReport(signal_id=sig.id, action="EXIT", coin=coin, status="rejected",
                                     reason=f"naked spot not sold: {why}", orders=legs.results, timings_us=timings)
            self._finish(report)
            return report
        left = pos.naked_spot - sold
        realized = legs.sell_quote["upbit"] - pos.entry_spot_price * sold - legs.fees["upbit"]
        fees = legs.fees["upbit"]
        new_pos: HedgedPosition | None = msgspec.structs.replace(pos, naked_spot=left)
        if pos.qty <= 0 and left * bid < rules.min_notional:
            # nothing hedged is left: the position ends here, with the entry fees it carried
            new_pos = None
            entry_fees = pos.entry_fees_krw + pos.entry_fees_usdt * fx
            realized -= entry_fees
            fees += entry_fees
            if left > 0:
                self.journal.recovery_step(sig.id, coin, "residual", qty=str(left))
        report = ExecutionReport(
            signal_id=sig.id, action="EXIT", coin=coin, status="unwound",
            reason=f"sold {sold} {coin} of naked spot (its short was gone); the exchange's liquidation loss is"
                   " not in this P&L", qty=ZERO, orders=legs.results, recovery=["naked spot sold"],
            realized_pnl_krw=realized, fees_krw=fees, timings_us=timings,
        )
        self._finish(report, position=new_pos, clear_position=None if new_pos else coin)
        self.capital.refresh_soon()
        return report

    async def _settle_exit(self, sig, pos: HedgedPosition, legs: LegBook, fx, funding, est, timings, notes, attempts,
                           bounds: dict[str, Decimal] | None = None):
        """Repair what an EXIT's legs left (a resumed one: after a restart) and record it."""
        if not legs.anything_filled:
            return self._exit_unfilled(sig, legs, notes, timings)
        tr = time.perf_counter_ns()
        try:
            outcome, rnotes = await self.executor.repair(
                signal_id=sig.id, action="EXIT", coin=sig.coin, legs=legs,
                residual_before=pos.spot_residual, attempts=attempts, bounds=bounds,
            )
        except Unresolved as exc:
            return await self._unresolved(sig, legs, str(exc), timings, fx)
        notes.extend(rnotes)
        if outcome != "hedged":
            timings["repair"] = _us(tr, time.perf_counter_ns())
        return self._record_exit(sig, pos, legs, fx, funding, est, timings, notes, outcome)

    @staticmethod
    def _exit_result(pos: HedgedPosition, legs: LegBook, funding: Decimal) -> tuple[HedgedPosition | None, Decimal,
                                                                                   Decimal, Decimal]:
        """What is left of ``pos`` after an EXIT's fills: (position or None, residual,
        the hedged quantity closed, the share of the position closed). The rest keeps its
        entry prices, its share of the entry fees, and the funding not yet counted."""
        sold = -legs.net("upbit")  # net spot sold
        closed = legs.net("binance")  # net perp bought back
        spot_held, short_held = _held(pos)
        spot_after = spot_held - sold
        short_after = short_held - closed
        hedged_after = max(min(spot_after, short_after), ZERO)
        residual_after = spot_after - short_after
        closed_pair = pos.qty - hedged_after
        share = closed_pair / pos.qty if pos.qty > 0 else ONE
        new_pos = None
        if hedged_after > 0:
            keep = hedged_after / pos.qty
            new_pos = msgspec.structs.replace(
                pos, qty=hedged_after, entry_fees_krw=pos.entry_fees_krw * keep,
                entry_fees_usdt=pos.entry_fees_usdt * keep, spot_residual=residual_after,
                funding_credited_usdt=pos.funding_credited_usdt + funding * share,
            )
        return new_pos, residual_after, closed_pair, share

    def _record_exit(self, sig, pos: HedgedPosition, legs: LegBook, fx, funding, est, timings, notes,
                     outcome: str) -> ExecutionReport:
        coin = sig.coin
        new_pos, residual_after, closed_pair, share = self._exit_result(pos, legs, funding)
        sold = -legs.net("upbit")
        closed = legs.net("binance")
        # Realized P&L of what was closed: actual fills, against the entry prices.
        spot_pnl = (legs.sell_quote["upbit"] - legs.buy_quote["upbit"]) - pos.entry_spot_price * sold \
            - legs.fees["upbit"] - pos.entry_fees_krw * share
        funding_share = funding * share
        perp_pnl = pos.entry_perp_price * closed - (legs.buy_quote["binance"] - legs.sell_quote["binance"]) \
            - legs.fees["binance"] - pos.entry_fees_usdt * share + funding_share
        realized = spot_pnl + perp_pnl * fx
        fees_krw = legs.fees["upbit"] + pos.entry_fees_krw * share + (legs.fees["binance"] + pos.entry_fees_usdt * share) * fx
        status = {"hedged": "filled", "recovered": "recovered", "unwound": "unwound", "manual": "manual_required"}[outcome]
        reason = "; ".join(notes)
        if residual_after != 0 and new_pos is None and outcome != "manual":
            reason = (reason + "; " if reason else "") + f"residual {residual_after} {coin} recorded (below one lot)"
            self.journal.recovery_step(sig.id, coin, "residual", qty=str(residual_after))
        report = ExecutionReport(
            signal_id=sig.id, action="EXIT", coin=coin, status=status, reason=reason,  # type: ignore[arg-type]
            qty=closed_pair, orders=legs.results, recovery=notes,
            realized_pnl_krw=realized, fees_krw=fees_krw, funding_krw=funding_share * fx,
            kimp_entry=est.premium_entry if est is not None else pos.entry_kimp,
            kimp_exit=est.premium_now if est is not None else None, timings_us=timings,
        )
        tj = time.perf_counter_ns()
        self._finish(report, position=new_pos, clear_position=None if new_pos else coin)
        timings["journal"] = _us(tj, time.perf_counter_ns())
        self.capital.refresh_soon()
        if status == "manual_required":
            self._manual(report)
        return report

    # -- reconciliation ---------------------------------------------------------------
    async def reconcile(self) -> dict[str, Any]:
        """Finish what the journal knew was in flight, then compare with the exchanges.

        1. every order without a final state is looked up by client id;
        2. every signal still ``processing`` (the engine died mid-way) is resumed: its
           legs are rebuilt from the journal and the one-leg repair runs to the end;
        3. positions and balances are compared with the exchanges; a mismatch beyond one
           lot halts the engine with a critical alert.
        """
        try:
            return await self._reconcile()
        finally:
            self.journal.flush()  # what it settled is in SQLite before anyone is told it is done

    async def _reconcile(self) -> dict[str, Any]:
        j = self.journal
        summary: dict[str, Any] = {"orders": 0, "signals": 0, "mismatches": []}
        touched: set[str] = set()
        for row in j.unfinished_orders():
            summary["orders"] += 1
            touched.add(row.signal_id)
            try:
                await self.executor.lookup(row.exchange, row.symbol, row.client_id, created_ms=row.created_ms)
            except Unresolved as exc:
                self.halt(f"reconcile: {exc}", source="reconcile")
                summary["mismatches"].append(str(exc))
                return summary
        resume = j.processing_signals()
        # A signal that ended manual_required because an order's outcome could not be
        # established is resumed too once that order is resolved: its legs may have
        # filled (e.g. a naked spot long) and its repair never ran. The halt it raised
        # stays until an operator resumes.
        for sid in sorted(touched):
            srow = j.signal(sid)
            if srow is not None and srow["status"] == "manual_required":
                resume.append(srow)
        for srow in resume:
            summary["signals"] += 1
            await self._resume(srow)
        summary["mismatches"].extend(await self._check_positions())
        if summary["mismatches"]:
            self.halt("reconcile mismatch: " + "; ".join(summary["mismatches"]), source="reconcile")
        return summary

    async def _resume(self, srow: dict[str, Any]) -> ExecutionReport:
        sig = Signal(
            id=srow["id"], action=srow["action"], coin=srow["coin"], ts_ms=srow["ts_ms"] or 1,
            qty=Decimal(srow["qty"]) if srow["qty"] else None, ttl_ms=srow["ttl_ms"] or 1,
        )
        orders = self.journal.orders_for_signal(sig.id)
        legs = LegBook()
        attempts = {"upbit": 0, "binance": 0}
        for o in orders:
            if o.purpose in ("retry", "unwind"):
                attempts[o.exchange] = max(attempts[o.exchange], o.attempt)
            if o.filled_qty > 0:
                legs.add(_row_result(o))
        self.journal.recovery_step(sig.id, sig.coin, "resume", orders=len(orders))
        if not legs.anything_filled:
            # Nothing executed (possibly nothing was even sent: a signal still waiting for
            # its coin's lock when the process died). An EXIT's position is untouched.
            report = ExecutionReport(
                signal_id=sig.id, action=sig.action, coin=sig.coin, status="rejected",
                reason="interrupted by a restart before any leg executed", orders=legs.results,
            )
            self._finish(report)
            return report
        plans = [json.loads(s["detail"]) for s in self.journal.recovery_steps(sig.id) if s["step"] == "plan"]
        fx = Decimal(plans[0]["fx"]) if plans else await self.market.fx()
        # an EXIT's retries keep the price bounds its last round was sent with
        bounds = ({"upbit": Decimal(plans[-1]["spot_bound"]), "binance": Decimal(plans[-1]["perp_bound"])}
                  if plans and "spot_bound" in plans[-1] else None)
        timings: dict[str, float] = {}
        notes = ["resumed after restart"]
        if sig.action == "ENTER":
            return await self._settle_enter(sig, legs, fx, timings, notes, attempts)
        pos = self.positions().get(sig.coin)
        if pos is None:
            report = ExecutionReport(
                signal_id=sig.id, action="EXIT", coin=sig.coin, status="manual_required",
                reason="resumed EXIT has no journaled position", orders=legs.results,
            )
            self._finish(report)
            self._manual(report)
            return report
        funding = ZERO
        try:
            funding = await self._position_funding(pos)
        except AdapterError as exc:
            notes.append(f"funding income unavailable ({_err_text(exc)}): recorded as 0")
        return await self._settle_exit(sig, pos, legs, fx, funding, None, timings, notes, attempts, bounds)

    async def _position_funding(self, pos: HedgedPosition) -> Decimal:
        """Funding (USDT, + = received) that belongs to ``pos``: the account's funding
        income on the symbol since the position opened, less what earlier partial EXITs
        of it already counted — never the same payment twice."""
        income = await self.binance.get_funding_income(self.perp_symbol(pos.coin), pos.opened_ts_ms)
        return income - pos.funding_credited_usdt

    async def _check_positions(self) -> list[str]:
        problems = []
        balances = await self.upbit.get_balances()
        for coin in self.config.execution.coins:
            bpos = await self.binance.get_position(self.perp_symbol(coin))
            problems += self._holdings_problems(coin, bpos, balances.get(coin))
        return problems

    # -- background monitors ------------------------------------------------------------
    async def _risk_loop(self) -> None:
        interval = self.config.risk.check_interval_s
        while True:
            await asyncio.sleep(interval)
            try:
                await self.check_risk()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # never let the monitor die silently
                log.warning("risk check failed: %s", exc)

    async def check_risk(self) -> dict[str, dict[str, str]]:
        """Every configured coin, each ``[risk] check_interval_s`` (SPEC §4.3 risk):

        * the exchanges' holdings against the journal's position: a short that shrank or
          vanished (a liquidation, a manual close) turns the spot it hedged into
          ``naked_spot`` for the next EXIT to sell, and halts new entries; a short or a
          spot shortfall the journal cannot explain halts new entries too (CRITICAL);
        * margin ratio and distance to liquidation of the short: warning, then critical
          (new entries halted) at ``margin_ratio_critical`` or within
          ``liquidation_distance_critical`` of the liquidation price.
        """
        risk = self.config.risk
        out: dict[str, dict[str, str]] = {}
        for coin in self.config.execution.coins:
            perp = self.perp_symbol(coin)
            seen = self._settled.get(coin, 0)
            if self._moving(coin):
                continue  # a signal is moving the legs: the journal is about to change
            p = await self.binance.get_position(perp)
            balances = await self.upbit.get_balances()
            if self._moving(coin) or self._settled.get(coin, 0) != seen:
                continue  # a signal ran meanwhile: compare again next time
            self._compare_holdings(coin, p, balances.get(coin))
            if coin not in self.positions() or p.qty == 0:
                continue
            ratio = p.maint_margin / p.margin_balance if p.margin_balance > 0 else ZERO
            dist = (p.liquidation_price - p.mark_price) / p.mark_price if p.liquidation_price > 0 and p.mark_price > 0 else None
            level = "ok"
            if ratio >= risk.margin_ratio_critical or (dist is not None and dist < risk.liquidation_distance_critical):
                level = "critical"
            elif ratio >= risk.margin_ratio_warning or (dist is not None and dist < risk.liquidation_distance_warning):
                level = "warning"
            out[coin] = {"margin_ratio": str(ratio), "liquidation_distance": str(dist), "level": level}
            if level != self._risk_level.get(coin, "ok"):
                self._risk_level[coin] = level
                msg = f"{coin}: margin ratio {ratio:.3f}, liquidation distance {dist}"
                if level == "critical":
                    self._risk_halt = msg
                    self._notify(Severity.CRITICAL, "margin critical: new entries halted", msg)
                elif level == "warning":
                    self._notify(Severity.WARNING, "margin warning", msg)
                else:
                    if not any(lv == "critical" for lv in self._risk_level.values()):
                        self._risk_halt = ""  # the risk that halted entries is gone
                    self._notify(Severity.INFO, "margin back to normal", msg)
        for coin in [c for c, lv in self._risk_level.items() if lv != "ok" and c not in out]:
            self._risk_level[coin] = "ok"  # the position was closed: no margin at risk
        if self._risk_halt and not any(lv == "critical" for lv in self._risk_level.values()):
            self._risk_halt = ""
        return out

    def _moving(self, coin: str) -> bool:
        lock = self._locks.get(coin)
        return lock is not None and lock.locked()

    def _holdings_problems(self, coin: str, bpos: Any, bal: Any) -> list[str]:
        """What the exchanges hold of ``coin`` against the journal's position. A short
        smaller than the journal's is not a problem to report but a fact to record
        (:meth:`_short_lost`: the spot becomes naked, entries halt, an EXIT may sell it);
        what is left is compared after that."""
        perp = self.perp_symbol(coin)
        step = self.binance.rules(perp).qty_step
        pos = self.positions().get(coin)
        actual_short = -bpos.qty
        if pos is not None and actual_short <= _held(pos)[1] - step:
            pos = self._short_lost(coin, pos, actual_short)
        expected_spot, expected_short = _held(pos) if pos else (ZERO, ZERO)
        problems = []
        if abs(actual_short - expected_short) >= step:
            problems.append(f"{perp} short is {actual_short} at Binance, journal expects {expected_short}")
        have = bal.total if bal is not None else ZERO
        # The wallet may hold more of the coin than the engine bought (the user's own);
        # holding less than the journal's position means something sold it.
        if have < expected_spot - step:
            problems.append(f"Upbit {coin} balance {have} is below the journal's {expected_spot}")
        return problems

    def _compare_holdings(self, coin: str, bpos: Any, bal: Any) -> None:
        """The risk check's comparison: each new difference halts new entries (CRITICAL),
        once; a difference that stays is not alerted again."""
        problems = self._holdings_problems(coin, bpos, bal)
        seen = self._mismatches.get(coin, set())
        for msg in problems:
            if msg not in seen:
                self.halt(f"exchange and journal disagree: {msg}", source="risk", entries_only=True)
        self._mismatches[coin] = set(problems)

    def _short_lost(self, coin: str, pos: HedgedPosition, short_now: Decimal) -> HedgedPosition:
        """The exchange holds less of the short than the journal: the spot it hedged is
        naked. Record it (the position and why, in one write), halt new entries with a
        CRITICAL alert; the next EXIT sells the naked spot (see :meth:`_exit_naked`)."""
        _, short_before = _held(pos)
        new = _without_short(pos, short_now)
        self.journal.set_position(new, pos.signal_id, "short-lost", short_journal=str(short_before),
                                  short_exchange=str(short_now), naked_spot=str(new.naked_spot))
        if self._positions is not None:
            self._positions[coin] = new
        self.halt(
            f"{coin}: the {self.perp_symbol(coin)} short is {max(short_now, ZERO)} at Binance, the journal held {short_before}"
            f" (liquidated or closed outside the engine); {new.naked_spot} {coin} of spot is unhedged —"
            " the next EXIT sells it", source="risk", entries_only=True,
        )
        return new

    async def _fee_loop(self, interval_s: float) -> None:
        """Re-read Binance's commission rates now and then: sizing and the fees recorded
        for fills use them (a venue changes its rates without notice)."""
        while True:
            await asyncio.sleep(interval_s)
            for coin in self.config.execution.coins:
                try:
                    await self.binance.get_commission_rate(self.perp_symbol(coin))
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # the last known rate stays; the next EXIT reads it again
                    log.warning("commission rate refresh for %s failed: %s", coin, exc)

    async def _checkpoint_loop(self, interval_s: float = 1.0) -> None:
        """WAL checkpoints in a worker thread while no signal is in flight, so that no
        order's journal commit ever pays for one."""
        path = self.config.journal.path
        while True:
            await asyncio.sleep(interval_s)
            if any(lock.locked() for lock in self._locks.values()):
                continue
            try:
                self.journal.flush()  # a safety net: flush_soon() normally got there first
                await asyncio.to_thread(Journal.checkpoint, path)
            except Exception as exc:  # a busy database: try again next time
                log.debug("journal checkpoint skipped: %s", exc)

    # -- keeping the order path warm -----------------------------------------------------
    def rehearse(self) -> bool:
        """Run the ENTER order path once per coin on a made-up signal and throw the result
        away: validation, de-duplication, gate, sizing on the cached books, both orders
        and their client ids, the journal's redo line, and each adapter's encoded and
        signed request (``rehearse_order``). Nothing is sent, written, reserved or
        counted: no breaker permit, no rate-limit slot, no capital, no journal row.

        Why: on a shared or power-saving CPU, code that has not run for a few
        milliseconds runs several times slower (its instructions and data have left the
        caches); every real signal arrives after such a pause. Rehearsing every
        ``[performance] keep_warm_ms`` keeps the path warm (docs/PERFORMANCE.md has the
        measurements). Returns True when a full rehearsal ran."""
        if self.journal is None:
            return False
        done = False
        for coin in self.config.execution.coins:
            spot, perp = self.spot_symbol(coin), self.perp_symbol(coin)
            ub, bb = self.market.cached("upbit", spot), self.market.cached("binance", perp)
            fx = self.market.cached("upbit", self.fx_symbol)
            if ub is None or bb is None:
                continue
            self._rehearsals += 1
            sig = Signal(id=f"rehearsal-{self._rehearsals}", action="ENTER", coin=coin,
                         qty=self._rehearsal_qty(perp, bb[1]), ts_ms=_now_ms(), ttl_ms=1000)
            if self._validate(sig, _now_ms()) or sig.id in self._inflight or sig.id in self._seen:
                continue
            self._gate(sig)
            size = self._size_enter(sig, ub[1], bb[1])
            if not size.ok:
                continue  # e.g. no free balance: the rest of the path waits for a size
            req_u, req_b = self._entry_requests(sig, size.qty, size.spot_limit_price, 1)
            x = self.executor
            self.journal.rehearse_intents(
                [x.intent_row(sig.id, "upbit", "entry", 1, req_u), x.intent_row(sig.id, "binance", "entry", 1, req_b)],
                signal=sig, plan=self._entry_plan(sig, size, (mid(fx[1]) if fx is not None else None) or ONE),
            )
            self.binance.rehearse_order(req_b)
            self.upbit.rehearse_order(req_u)
            done = True
        return done

    def _rehearsal_qty(self, perp: str, book: OrderBook) -> Decimal:
        """The smallest size both exchanges would accept now (so sizing passes and the
        whole path runs): Binance's minimum quantity and notional, a little above."""
        rules = self.binance.rules(perp)
        step = rules.qty_step
        bid = book.best_bid() or ONE
        need = max(rules.min_qty, rules.min_notional * Decimal("1.1") / bid, step)
        return (need / step).to_integral_value(rounding=ROUND_UP) * step

    async def _warm_loop(self, interval_s: float) -> None:
        while True:
            await asyncio.sleep(interval_s)
            if self._inflight:
                continue  # never between a signal and its answers
            try:
                self.rehearse()
            except Exception as exc:  # a rehearsal must never hurt: count, log now and then
                self._rehearsal_failures += 1
                if self._rehearsal_failures in (1, 10) or self._rehearsal_failures % 10000 == 0:
                    log.warning("order-path rehearsal failed (%d so far): %s: %s",
                                self._rehearsal_failures, type(exc).__name__, exc)

    async def _poll_loop(self) -> None:
        while True:
            for coin in self.config.execution.coins:
                with contextlib.suppress(Exception):
                    await self.market.pair(coin, max_age=0.0)
            with contextlib.suppress(Exception):
                await self.market.fx(max_age=0.0)
            await asyncio.sleep(self.market_poll_s)


def _coerce_signal(raw: Signal | Mapping[str, Any] | str | bytes) -> Signal:
    if isinstance(raw, Signal):
        return raw
    if isinstance(raw, (bytes, str)):
        return _signal_decoder.decode(raw)
    if isinstance(raw, Mapping):
        for key, value in raw.items():
            # Same rule as constructing a Signal in Python: a binary float is how
            # 0.30000000000000004 reaches an exchange (JSON numbers are decoded exactly).
            if isinstance(value, float):
                raise TypeError(f"{key}: floats are refused (binary rounding); pass a Decimal or a string")
        return msgspec.convert(dict(raw), Signal, strict=False)
    raise TypeError(f"expected a Signal, a mapping or JSON, got {type(raw).__name__}")


def _held(pos: HedgedPosition) -> tuple[Decimal, Decimal]:
    """(spot, short) the exchanges hold for a position: ``qty`` is the hedged part,
    ``spot_residual`` = spot − short sits on whichever leg is longer, ``naked_spot`` is
    spot whose short is gone."""
    return pos.qty + max(pos.spot_residual, ZERO) + pos.naked_spot, pos.qty - min(pos.spot_residual, ZERO)


def _without_short(pos: HedgedPosition, short_now: Decimal) -> HedgedPosition:
    """``pos`` after the exchange closed part or all of its short (``short_now`` is what
    is left): the spot that lost its hedge becomes ``naked_spot``; entry fees follow the
    quantity that stays hedged."""
    short_now = max(short_now, ZERO)
    qty = min(pos.qty, short_now)
    keep = qty / pos.qty if pos.qty > 0 else ZERO
    residual = pos.spot_residual if pos.spot_residual >= 0 else -max(short_now - qty, ZERO)
    return msgspec.structs.replace(
        pos, qty=qty, spot_residual=residual, naked_spot=pos.naked_spot + pos.qty - qty,
        entry_fees_krw=pos.entry_fees_krw * keep, entry_fees_usdt=pos.entry_fees_usdt * keep,
        funding_credited_usdt=pos.funding_credited_usdt,
    )


def _row_result(o: OrderRow) -> OrderResult:
    return OrderResult(
        exchange=o.exchange, symbol=o.symbol, client_id=o.client_id,
        exchange_order_id=o.exchange_order_id, status="filled" if o.state == "filled" else "canceled",
        side=o.side, quantity=o.qty, filled_qty=o.filled_qty, avg_price=o.avg_price,  # type: ignore[arg-type]
        quote_filled=o.quote_filled, fee=o.fee, fee_asset=o.fee_asset,
    )


def _adapter_options(cfg: EngineConfig, exchange: str) -> dict[str, Any]:
    """Adapter keyword options from the config section."""
    from .ratelimit import RateLimiter

    coins = cfg.execution.coins
    if exchange == "upbit":
        sec = cfg.upbit
        symbols = [f"KRW-{c}" for c in coins]
        if cfg.execution.fx_symbol not in symbols:
            symbols.append(cfg.execution.fx_symbol)
        return {
            "timeout_s": sec.timeout_s,
            "order_lane": sec.order_lane,
            "jwt_alg": sec.jwt_alg,
            "symbols": tuple(symbols),
            "rate_limiter": RateLimiter("upbit", order_per_sec=max(1, int(sec.order_rate_per_sec))),
        }
    sec = cfg.binance
    return {
        "timeout_s": sec.timeout_s,
        "order_lane": sec.order_lane,
        "recv_window_ms": sec.recv_window_ms,
        "symbols": tuple(f"{c}USDT" for c in coins),
    }
