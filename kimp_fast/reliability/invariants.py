"""The invariants of SPEC §7, checked from the exchanges' side (``/_sim/ledger``) and the
journal file at quiescent points (no signal in flight).

=====================  ==================================================================
invariant              how it is checked
=====================  ==================================================================
no duplicate           no client order id appears twice in the ledger (the engine's ids
execution              are deterministic: a second order under one id is a re-send)
ledger == journal      every ledger order is a journal order in an executed state with
                       the same side and filled quantity; every journal order the engine
                       believes executed is in the ledger; ``absent``/``rejected`` rows
                       never reached the ledger; nothing is left unfinished; every filled
                       order has exactly one ``fills`` row with the same quantity
hedged                 net exposure E = Upbit coin balance + Binance signed position
                       (short < 0) minus the dust the journal recorded is within one lot
                       step; the Binance short equals the journal's position
no loss exit           every EXIT that sent an order has a ``plan`` recovery step with
                       ``expected_net_krw`` above ``min_net_profit``
nothing sent when      ``refused``/``duplicate`` signals have no orders; ``rejected`` ones
refused                executed nothing
finished               no signal is still ``processing``
=====================  ==================================================================

Recorded dust: a one-leg repair may leave less than one lot that no exchange accepts
(Binance lots are 0.001). The engine records it as a ``residual`` recovery step: carried
in the position's ``spot_residual`` while a position is open, otherwise left on the
account. The checker adds the latter up (only the last residual of a signal's final run
counts: a signal resumed after a crash records its own).
"""

from __future__ import annotations

import time
from collections import Counter
from decimal import Decimal
from typing import Any

from .journal_view import NOT_EXECUTED, UNFINISHED, JournalView
from .simctl import SimControl

__all__ = ["InvariantChecker", "OPERATOR_PREFIX"]

ZERO = Decimal(0)
#: client ids of orders an operator (the harness) placed by hand: not the engine's
OPERATOR_PREFIX = "OPR"
#: client ids Binance gives the orders of its liquidation engine (and auto-deleveraging):
#: the exchange's orders, not the engine's; the engine records the short it lost instead
EXCHANGE_PREFIXES = ("autoclose-", "adl_autoclose")
_EXECUTED_FINAL = ("filled", "canceled", "expired")


def _d(v: Any) -> Decimal:
    return Decimal(str(v)) if v not in (None, "") else ZERO


class InvariantChecker:
    """Incremental checker: each :meth:`check` looks at what changed since the last one
    (``full=True`` re-reads everything)."""

    def __init__(
        self,
        control: SimControl,
        journal_path: str,
        *,
        coin: str = "BTC",
        lot: Decimal = Decimal("0.001"),
        min_net_profit: Decimal = ZERO,
    ) -> None:
        self.control = control
        self.journal_path = journal_path
        self.coin = coin
        self.perp = f"{coin}USDT"
        self.lot = lot
        self.min_net_profit = min_net_profit
        self._view: JournalView | None = None
        self.ledger_seen = 0
        self.ledger: dict[str, dict[str, Any]] = {}
        self._cid_counts: Counter[str] = Counter()
        self._dup_reported: set[str] = set()
        self._reported: set[str] = set()
        self._finished: set[str] = set()
        self._last_rowid = 0
        self._last_check_ms = 0
        self.dust = ZERO  # residuals left on the account by finished signals
        self.operator_offset = ZERO  # exposure accepted by an operator (stays 0 when fixed)
        self.max_unexplained = ZERO
        self.max_exposure = ZERO
        self.checks = 0
        self.violations: list[str] = []
        self.manual: list[dict[str, Any]] = []  # manual_required signals seen
        self.status_counts: Counter[str] = Counter()
        self.exit_expected: list[Decimal] = []
        self.exit_closing_fills = 0  # fills of bounded EXIT legs checked against their bounds
        self.naked_unwinds = 0  # EXITs that sold spot whose short was lost

    @property
    def view(self) -> JournalView:
        if self._view is None:
            self._view = JournalView(self.journal_path)
        return self._view

    def close(self) -> None:
        if self._view is not None:
            self._view.close()
            self._view = None

    # ------------------------------------------------------------------------------
    async def check(self, context: str, *, full: bool = False) -> list[str]:
        """Check every invariant now; returns the new violations (also kept in
        :attr:`violations`)."""
        started_ms = time.time_ns() // 1_000_000
        out: list[str] = []
        self.checks += 1
        led = await self.control.ledger(since=0 if full else self.ledger_seen)
        if full:
            self.ledger.clear()
            self._cid_counts.clear()
        new_rows = led["orders"]
        self.ledger_seen = int(led.get("orders_total", self.ledger_seen + len(new_rows)))
        for row in new_rows:
            cid = row["client_id"]
            self._cid_counts[cid] += 1
            if self._cid_counts[cid] > 1 and cid not in self._dup_reported:
                self._dup_reported.add(cid)
                out.append(f"client id {cid} used for {self._cid_counts[cid]} orders at {row['exchange']} "
                           f"(duplicate execution): {self._describe(cid, row)}")
            self.ledger[cid] = row
        v = self.view
        if full:
            jrows = v.orders()
        else:
            jrows = v.orders(after_rowid=self._last_rowid, updated_since_ms=self._last_check_ms - 2000)
        journal = {r["client_id"]: r for r in jrows}
        if jrows:
            self._last_rowid = max(self._last_rowid, max(r["rowid"] for r in jrows))

        # ledger -> journal
        for row in (self.ledger.values() if full else new_rows):
            cid = row["client_id"]
            if cid.startswith((OPERATOR_PREFIX, *EXCHANGE_PREFIXES)):
                continue
            j = journal.get(cid) or v.order(cid)
            if j is None:
                out.append(f"ledger order {cid} is not in the journal: {self._describe(cid, row)}")
                continue
            out.extend(self._compare(cid, row, j))
        # journal -> ledger (journal rows that changed since the last check)
        new_cids = {r["client_id"] for r in new_rows}
        for cid, j in journal.items():
            row = self.ledger.get(cid)
            if row is not None:
                if not full and cid not in new_cids:
                    out.extend(self._compare(cid, row, j))
            elif j["state"] not in NOT_EXECUTED:
                if j["state"] in UNFINISHED:
                    out.append(f"journal order {cid} is still '{j['state']}' at a quiescent point: {self._describe(cid)}")
                else:
                    out.append(f"journal order {cid} is '{j['state']}' (filled {j['filled_qty']}) but the exchange "
                               f"has no such order: {self._describe(cid)}")
        if full:
            out.extend(self._check_fills(journal))

        # signals finished since the last check
        for s in v.signals(finished_since_ms=None if full else self._last_check_ms - 2000):
            if s["status"] == "processing":
                out.append(f"signal {s['id']} is still 'processing' at a quiescent point")
                continue
            if s["id"] in self._finished:
                continue
            self._finished.add(s["id"])
            out.extend(self._check_signal(s))

        out.extend(self._check_exposure(led))
        self._last_check_ms = started_ms
        fresh = []
        for msg in out:  # an unchanged problem is reported once, not at every check
            if msg not in self._reported:
                self._reported.add(msg)
                fresh.append(f"[{context}] {msg}")
        self.violations.extend(fresh)
        return fresh

    # ------------------------------------------------------------------------------
    def _compare(self, cid: str, row: dict[str, Any], j: dict[str, Any]) -> list[str]:
        out = []
        state = j["state"]
        if state in NOT_EXECUTED:
            out.append(f"journal says order {cid} is '{state}' but the exchange executed it "
                       f"(filled {row['filled']}): {self._describe(cid, row)}")
        elif state in UNFINISHED:
            out.append(f"journal order {cid} is still '{state}' at a quiescent point: {self._describe(cid, row)}")
        else:
            if _d(row["filled"]) != _d(j["filled_qty"]):
                out.append(f"order {cid}: exchange filled {row['filled']}, journal {j['filled_qty']}: "
                           f"{self._describe(cid, row)}")
            if str(row["side"]).lower() != j["side"] or row["exchange"] != j["exchange"]:
                out.append(f"order {cid}: exchange says {row['exchange']} {row['side']}, journal "
                           f"{j['exchange']} {j['side']}")
        return out

    def _check_fills(self, journal: dict[str, dict[str, Any]]) -> list[str]:
        out = []
        fills = self.view.fills()
        for cid, j in journal.items():
            filled = _d(j["filled_qty"])
            f = fills.get(cid)
            if j["state"] in _EXECUTED_FINAL and filled > 0:
                if f is None:
                    out.append(f"order {cid} filled {filled} has no fills row (record lost)")
                elif _d(f["qty"]) != filled:
                    out.append(f"order {cid}: fills row says {f['qty']}, order row {filled}")
            elif f is not None and filled == 0:
                out.append(f"fills row for {cid} but the order row says nothing filled")
        for cid in fills:
            if cid not in journal:
                out.append(f"fills row for unknown order {cid}")
        return out

    def _check_signal(self, s: dict[str, Any]) -> list[str]:
        out = []
        v = self.view
        sid, status = s["id"], s["status"]
        self.status_counts[status] += 1
        orders = v.orders_for_signal(sid)
        executed = [o for o in orders if o["client_id"] in self.ledger]
        if status in ("refused", "duplicate") and orders:
            out.append(f"signal {sid} was '{status}' but has {len(orders)} order(s) in the journal")
        if status == "rejected":
            filled = sum((_d(self.ledger[o["client_id"]]["filled"]) for o in executed), ZERO)
            if filled:
                out.append(f"signal {sid} was 'rejected' but {filled} {self.coin} executed")
        report = v.report(s)
        steps = v.recovery(signal_id=sid)
        if s["action"] == "EXIT" and executed:
            plans = [st["detail"] for st in steps if st["step"] == "plan"]
            if not plans:
                out.append(f"EXIT {sid} sent orders without a journaled plan (expected net profit unknown)")
            elif "naked_spot" in plans[0]:
                self.naked_unwinds += 1  # spot whose short was lost: sold by rule, not judged by profit
            else:
                net = _d(plans[0].get("expected_net_krw"))
                self.exit_expected.append(net)
                if net <= self.min_net_profit:
                    out.append(f"EXIT {sid} executed with expected net profit {net} KRW <= "
                               f"min_net_profit {self.min_net_profit}")
                out.extend(self._check_exit_bounds(sid, plans, executed))
        if status == "manual_required":
            self.manual.append({"signal_id": sid, "action": s["action"], "reason": s["reason"]})
            return out
        last_resume = max((i for i, st in enumerate(steps) if st["step"] == "resume"), default=-1)
        residuals = [st for st in steps[last_resume + 1:] if st["step"] == "residual"]
        if residuals:
            r = _d(residuals[-1]["detail"].get("qty"))
            if abs(r) >= self.lot:
                out.append(f"signal {sid} recorded a residual of {r} {self.coin}, not below one lot")
            carried = s["action"] == "ENTER" and _d(report.get("qty")) > 0
            if not carried:
                self.dust += r
        return out

    def _check_exit_bounds(self, sid: str, plans: list[dict[str, Any]], executed: list[dict[str, Any]]) -> list[str]:
        """An approved EXIT never closes outside the price bounds its estimate set
        (``[exit] tolerance_bps``): every fill of an exit leg or of its retries is at or
        inside the bound of its round. (Unwinds, which restore the hedge, are market
        orders and not bounded.)"""
        if not all("spot_bound" in p for p in plans):
            return []  # a plan from before bounded EXITs
        spot_bound = min(_d(p["spot_bound"]) for p in plans)
        perp_bound = max(_d(p["perp_bound"]) for p in plans)
        out = []
        for o in executed:
            if o["purpose"] not in ("exit", "retry"):
                continue
            row = self.ledger[o["client_id"]]
            if _d(row["filled"]) <= 0:
                continue
            avg = _d(row.get("avg_price"))
            if o["exchange"] == "upbit" and o["side"] == "sell" and avg < spot_bound:
                out.append(f"EXIT {sid} sold at {avg} KRW below its bound {spot_bound} (beyond the tolerance)")
            if o["exchange"] == "binance" and o["side"] == "buy" and avg > perp_bound:
                out.append(f"EXIT {sid} bought back at {avg} USDT above its bound {perp_bound} (beyond the tolerance)")
            self.exit_closing_fills += 1
        return out

    def _check_exposure(self, led: dict[str, Any]) -> list[str]:
        out = []
        bal = led["balances"]["upbit"].get(self.coin) or {}
        spot = _d(bal.get("balance")) + _d(bal.get("locked"))
        pos = (led["positions"].get("binance") or {}).get(self.perp) or {}
        perp_qty = _d(pos.get("qty"))
        exposure = spot + perp_qty
        jpos = self.view.positions().get(self.coin)
        j_qty = _d(jpos["qty"]) if jpos else ZERO
        j_res = _d(jpos.get("spot_residual")) if jpos else ZERO
        # spot whose short the exchange lost: flagged exposure (entries halted, the next
        # EXIT sells it), not unexplained
        j_naked = _d(jpos.get("naked_spot")) if jpos else ZERO
        if perp_qty > 0:
            out.append(f"Binance {self.perp} position is long {perp_qty} (the engine only shorts)")
        # hedged = min(spot, short): a negative residual means the short is the longer leg
        j_short = j_qty - min(j_res, ZERO)
        if -perp_qty != j_short:
            out.append(f"journal position {j_qty} {self.coin} (residual {j_res}) means a Binance short of "
                       f"{j_short}, the exchange has {-perp_qty}")
        recorded = j_res + j_naked + self.dust + self.operator_offset
        gap = exposure - recorded
        self.max_unexplained = max(self.max_unexplained, abs(gap))
        self.max_exposure = max(self.max_exposure, abs(exposure))
        if abs(gap) > self.lot:
            out.append(f"unhedged: Upbit {spot} {self.coin}, Binance {perp_qty} -> net exposure {exposure}; "
                       f"recorded dust {recorded}; unexplained {gap} > one lot ({self.lot})")
        return out

    # ------------------------------------------------------------------------------
    def exposure_now(self, led: dict[str, Any]) -> tuple[Decimal, Decimal]:
        """(Upbit coin total, Binance signed position) from a ledger."""
        bal = led["balances"]["upbit"].get(self.coin) or {}
        pos = (led["positions"].get("binance") or {}).get(self.perp) or {}
        return _d(bal.get("balance")) + _d(bal.get("locked")), _d(pos.get("qty"))

    def _describe(self, cid: str, row: dict[str, Any] | None = None) -> str:
        row = row or self.ledger.get(cid)
        parts = []
        if row is not None:
            parts.append(f"ledger {row['exchange']} {row['side']} qty={row.get('qty')} filled={row['filled']} "
                         f"status={row['status']} fault={row.get('fault')}")
        j = self.view.order(cid)
        if j is not None:
            events = ",".join(f"{e['state']}" for e in self.view.order_events(cid))
            parts.append(f"journal signal={j['signal_id']} {j['purpose']}#{j['attempt']} state={j['state']} "
                         f"filled={j['filled_qty']} events=[{events}] error={j['error'][:120]!r}")
        return "; ".join(parts) or "(no details)"

    def summary(self) -> dict[str, Any]:
        return {
            "checks": self.checks,
            "ledger_orders": self.ledger_seen,
            "signal_statuses": dict(self.status_counts),
            "recorded_dust": str(self.dust),
            "max_unexplained_exposure": str(self.max_unexplained),
            "max_net_exposure": str(self.max_exposure),
            "exits_executed": len(self.exit_expected),
            "min_expected_exit_net_krw": str(min(self.exit_expected)) if self.exit_expected else None,
            "exit_closing_fills_within_bounds_checked": self.exit_closing_fills,
            "naked_spot_unwinds": self.naked_unwinds,
        }
