"""The invariants a paper run must satisfy; ``kimp-fast paper`` exits 0 only if all hold.

They are checked against the simulator's ledger — the exchanges' own record, independent
of the engine — and the journal file, not against the engine's in-memory view:

* **hedged**: the Upbit coin balance change and the Binance short differ by less than one
  lot step (no unhedged residual beyond dust);
* **no duplicate order**: no client order id appears twice among the orders the
  exchanges accepted;
* **no loss exit**: every EXIT that sent orders was decided with an expected net profit
  above ``min_net_profit`` (the engine's journaled ``plan`` step; the realized result can
  differ from the estimate by the market's move between decision and fill, and is
  reported separately);
* **journal = ledger**: every order the exchanges accepted is in the journal with the same
  filled quantity, every journal order the exchanges accepted is in the ledger, and no
  journal order was left unresolved;
* **no manual intervention**: no signal ended ``manual_required``.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from ..journal import Journal

__all__ = ["Check", "check_invariants", "NOT_AT_EXCHANGE"]

ZERO = Decimal(0)
#: journal order states of orders that never reached the exchange's book
NOT_AT_EXCHANGE = ("absent", "rejected")


@dataclass
class Check:
    name: str
    ok: bool
    detail: str

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "ok": self.ok, "detail": self.detail}


def _coin_total(ledger: dict[str, Any], coin: str) -> Decimal:
    bal = ledger["balances"]["upbit"].get(coin)
    if not bal:
        return ZERO
    return Decimal(bal.get("balance", "0")) + Decimal(bal.get("locked", "0"))


def _short(ledger: dict[str, Any], coin: str) -> Decimal:
    pos = ledger["positions"]["binance"].get(f"{coin}USDT")
    return -Decimal(pos["qty"]) if pos else ZERO


def check_invariants(
    *,
    journal: Journal,
    ledger_before: dict[str, Any],
    ledger_after: dict[str, Any],
    coins: tuple[str, ...],
    lot_step: Decimal,
    min_net_profit: Decimal = ZERO,
) -> list[Check]:
    checks: list[Check] = []

    # 1. hedged: exchange balances only
    parts, ok = [], True
    for coin in coins:
        spot = _coin_total(ledger_after, coin) - _coin_total(ledger_before, coin)
        short = _short(ledger_after, coin) - _short(ledger_before, coin)
        gap = spot - short
        ok = ok and abs(gap) < lot_step
        parts.append(f"{coin}: Upbit {spot:+} vs Binance short {short} (gap {gap}, lot {lot_step})")
    checks.append(Check("hedged", ok, "; ".join(parts)))

    # 2. no duplicate client order id among accepted orders
    ids = Counter((o["exchange"], o["client_id"]) for o in ledger_after["orders"])
    dups = sorted(f"{ex}:{cid} x{n}" for (ex, cid), n in ids.items() if n > 1)
    checks.append(Check("no duplicate order", not dups,
                        ", ".join(dups) if dups else f"{len(ids)} accepted orders, all client ids unique"))

    # 3. no loss exit
    bad: list[str] = []
    exits = 0
    for sig in journal.signals(last=1_000_000):
        if sig["action"] != "EXIT":
            continue
        orders = journal.orders_for_signal(sig["id"])
        if not orders:
            continue
        exits += 1
        plan = next((s for s in journal.recovery_steps(sig["id"]) if s["step"] == "plan"), None)
        if plan is None:
            bad.append(f"{sig['id']}: orders sent without a journaled exit plan")
            continue
        expected = Decimal(json.loads(plan["detail"]).get("expected_net_krw", "NaN"))
        if not expected > min_net_profit:
            bad.append(f"{sig['id']}: executed with expected net {expected} KRW")
    checks.append(Check("no loss exit", not bad,
                        "; ".join(bad) if bad else f"{exits} executed exit(s), each decided with expected net > {min_net_profit} KRW"))

    # 4. journal = ledger
    ledger_orders = {o["client_id"]: o for o in ledger_after["orders"]}
    before_ids = {o["client_id"] for o in ledger_before["orders"]}
    jorders = {o.client_id: o for o in journal.all_orders()}
    at_exchange = {cid for cid, o in jorders.items() if o.state not in NOT_AT_EXCHANGE}
    problems: list[str] = []
    missing = sorted(set(ledger_orders) - before_ids - set(jorders))
    if missing:
        problems.append(f"in the ledger but not the journal: {', '.join(missing)}")
    phantom = sorted(at_exchange - set(ledger_orders))
    if phantom:
        problems.append(f"journal says accepted, ledger has no such order: {', '.join(phantom)}")
    wrongly_absent = sorted(cid for cid, o in jorders.items() if o.state in NOT_AT_EXCHANGE and cid in ledger_orders)
    if wrongly_absent:
        problems.append(f"journal says never accepted, ledger has it: {', '.join(wrongly_absent)}")
    unresolved = sorted(cid for cid, o in jorders.items() if o.unfinished)
    if unresolved:
        problems.append(f"left unresolved in the journal: {', '.join(unresolved)}")
    for cid in sorted(at_exchange & set(ledger_orders)):
        filled = Decimal(ledger_orders[cid]["filled"])
        if filled != jorders[cid].filled_qty:
            problems.append(f"{cid}: ledger filled {filled}, journal {jorders[cid].filled_qty}")
    checks.append(Check("journal = ledger", not problems,
                        "; ".join(problems) if problems else
                        f"{len(jorders)} journal orders, {len(set(ledger_orders) - before_ids)} accepted by the exchanges, all matched"))

    # 5. nothing needs a human
    manual = [s["id"] for s in journal.signals(last=1_000_000) if s["status"] == "manual_required"]
    checks.append(Check("no manual intervention", not manual,
                        ("manual_required: " + ", ".join(manual)) if manual else "no signal ended manual_required"))
    return checks
