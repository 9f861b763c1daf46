"""``kimp-fast status | positions | orders``: read-only views of a journal.

Each reads the SQLite journal named by ``--journal PATH`` or by the ``[journal] path`` of
``--config FILE`` — safely while an engine is running (WAL readers never block the
writer). Human tables by default, ``--json`` for one JSON object. Nothing here talks to
an exchange; ``kimp-fast reconcile`` does.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import sys
from collections import Counter
from decimal import Decimal
from typing import Any

from ._common import EXIT_OK, CliError, add_journal_source, dumps, fail, open_journal, safe

HELP = "engine status, positions and orders from the journal"


def _ts(ms: int | None) -> str:
    if not ms:
        return "-"
    return _dt.datetime.fromtimestamp(ms / 1000).strftime("%Y-%m-%d %H:%M:%S")


def _common(parser: argparse.ArgumentParser) -> None:
    add_journal_source(parser)
    parser.add_argument("--json", action="store_true", help="print one JSON object")


def add_arguments_status(parser: argparse.ArgumentParser) -> None:
    _common(parser)


def add_arguments_positions(parser: argparse.ArgumentParser) -> None:
    _common(parser)


def add_arguments_orders(parser: argparse.ArgumentParser) -> None:
    _common(parser)
    parser.add_argument("--last", type=int, default=20, metavar="N", help="how many orders, newest first (default 20)")
    parser.add_argument("--signal", metavar="ID", help="only the orders of this signal")


add_arguments = add_arguments_status


# --------------------------------------------------------------------------- data

def status_data(j: Any) -> dict[str, Any]:
    halt = j.halt_info()
    breakers: dict[str, dict[str, Any]] = {}
    for ev in j.breaker_events():
        breakers[ev["exchange"]] = {"state": ev["new_state"], "since_ms": ev["ts_ms"], "reason": ev["reason"]}
    orders = j.all_orders()
    last = j.signals(last=1)
    return {
        "journal": j.path,
        "schema_version": j.schema_version,
        "halted": halt is not None,
        # recorded: False while the halt is only in the stamp (SQLite could not be written yet)
        "halt": halt,
        "signals": {"total": sum(j.signal_counts().values()), "by_status": dict(sorted(j.signal_counts().items()))},
        "processing": [s["id"] for s in j.processing_signals()],
        "positions": {c: _position(p) for c, p in j.positions().items()},
        "orders": {"total": len(orders), "by_state": dict(sorted(Counter(o.state for o in orders).items())),
                   "unresolved": [o.client_id for o in orders if o.unfinished]},
        "breakers": breakers,
        "last_signal": last[0] if last else None,
        "notifications": j.notifications()[-5:],
    }


def _position(p: Any) -> dict[str, Any]:
    return {
        "coin": p.coin, "qty": str(p.qty), "entry_spot_price": str(p.entry_spot_price),
        "entry_perp_price": str(p.entry_perp_price), "entry_fx": str(p.entry_fx),
        "entry_kimp": None if p.entry_kimp is None else str(p.entry_kimp),
        "entry_fees_krw": str(p.entry_fees_krw), "entry_fees_usdt": str(p.entry_fees_usdt),
        "spot_residual": str(p.spot_residual), "opened_ts_ms": p.opened_ts_ms, "signal_id": p.signal_id,
    }


def _plain(v: Any) -> Any:
    """Decimals as plain strings (``141345000``, not ``1.4134500E+8``)."""
    if isinstance(v, Decimal):
        return format(v, "f")
    return v


def _order(o: Any) -> dict[str, Any]:
    return {k: _plain(getattr(o, k)) for k in o.__struct_fields__}


# --------------------------------------------------------------------------- commands

def _console():  # noqa: ANN202
    from rich.console import Console

    # Piped output is not wrapped at 80 columns: one table row stays one line.
    return Console(highlight=False, width=None if sys.stdout.isatty() else 240)


def _hms(ms: int | None) -> str:
    if not ms:
        return "-"
    return _dt.datetime.fromtimestamp(ms / 1000).strftime("%H:%M:%S.%f")[:-3]


def run_status(args: argparse.Namespace) -> int:
    try:
        with open_journal(args) as j:
            data = status_data(j)
    except CliError as exc:
        return fail(str(exc), exc.code)
    if args.json:
        print(dumps(data))
        return EXIT_OK
    from rich.table import Table
    from rich.text import Text

    data = safe(data)  # ids, reasons, exchange messages: no control character reaches the terminal
    c = _console()
    t = Table.grid(padding=(0, 2))
    t.add_column(style="bold")
    t.add_column()
    t.add_row("journal", f"{data['journal']} (schema v{data['schema_version']})")
    if data["halted"]:
        h = data["halt"] or {}
        what = "NEW ENTRIES HALTED (EXITs allowed)" if h.get("scope") == "entries" else "HALTED"
        unrecorded = "" if h.get("recorded", True) else " (in the halt stamp; not in SQLite yet)"
        t.add_row("engine", Text(f"{what} since {_ts(h.get('ts_ms'))} by {h.get('source', '?')}: {h.get('reason', '')}"
                                 + unrecorded, style="bold red"))
    else:
        t.add_row("engine", Text("not halted (kill switch clear)", style="green"))
    sig = data["signals"]
    t.add_row("signals", f"{sig['total']} total" + (": " + ", ".join(f"{k} {v}" for k, v in sig["by_status"].items())
                                                    if sig["by_status"] else ""))
    if data["processing"]:
        t.add_row("in flight", Text(", ".join(data["processing"]) + " (finished by the next engine start if interrupted)",
                                    style="yellow"))
    pos = data["positions"]
    t.add_row("positions", ", ".join(f"{c_} {p['qty']}" for c_, p in pos.items()) or "none (flat)")
    o = data["orders"]
    t.add_row("orders", f"{o['total']} total, " + (f"{len(o['unresolved'])} unresolved: {', '.join(o['unresolved'])}"
                                                   if o["unresolved"] else "none unresolved"))
    br = data["breakers"]
    t.add_row("breakers", ", ".join(f"{k} {v['state']} since {_ts(v['since_ms'])}" for k, v in sorted(br.items()))
              or "closed (no transition recorded)")
    ls = data["last_signal"]
    if ls:
        t.add_row("last signal", f"{ls['id']} {ls['action']} {ls['coin']} {ls['status']} at {_ts(ls['received_ms'])}")
    c.print(t, markup=False)
    if data["notifications"]:
        c.print(Text("recent notifications", style="bold"))
        for n in data["notifications"]:
            c.print(f"  {_ts(n['ts_ms'])} {n['severity']:<8} {n['title']}" + (f" — {n['message']}" if n["message"] else ""),
                    markup=False)
    return EXIT_OK


def run_positions(args: argparse.Namespace) -> int:
    try:
        with open_journal(args) as j:
            positions = {c: _position(p) for c, p in j.positions().items()}
    except CliError as exc:
        return fail(str(exc), exc.code)
    if args.json:
        print(dumps({"positions": positions}))
        return EXIT_OK
    positions = safe(positions)
    if not positions:
        print("no open positions (flat)")
        return EXIT_OK
    from rich.table import Table

    t = Table(title="open hedged positions (long Upbit spot, short Binance perp)", title_justify="left")
    for col in ("coin", "qty", "entry Upbit KRW", "entry Binance USDT", "entry USDT/KRW", "entry premium",
                "opened", "spot residual", "signal"):
        t.add_column(col, justify="right" if col not in ("coin", "signal", "opened") else "left")
    for p in positions.values():
        kimp = "-" if p["entry_kimp"] is None else f"{float(Decimal(p['entry_kimp'])):+.3%}"
        t.add_row(p["coin"], p["qty"], p["entry_spot_price"], p["entry_perp_price"], p["entry_fx"], kimp,
                  _ts(p["opened_ts_ms"]), p["spot_residual"], p["signal_id"])
    _console().print(t)
    return EXIT_OK


def run_orders(args: argparse.Namespace) -> int:
    if args.last <= 0:
        return fail(f"--last: expected a number > 0, got {args.last}", 2)
    try:
        with open_journal(args) as j:
            rows = j.orders_for_signal(args.signal)[::-1][: args.last] if args.signal else j.orders(args.last)
            orders = [_order(o) for o in rows]
    except CliError as exc:
        return fail(str(exc), exc.code)
    if args.json:
        print(dumps({"orders": orders}))
        return EXIT_OK
    orders = safe(orders)
    if not orders:
        print("no orders")
        return EXIT_OK
    from rich.table import Table
    from rich.text import Text

    t = Table(title=f"last {len(orders)} orders (newest first)", title_justify="left")
    for col in ("time", "client id", "exch", "purpose", "side", "type", "qty", "limit", "filled", "avg price",
                "fee", "state"):
        t.add_column(col, justify="right" if col in ("qty", "limit", "filled", "avg price", "fee") else "left",
                     no_wrap=col == "client id")
    style = {"filled": "green", "rejected": "magenta", "absent": "dim", "canceled": "dim", "unknown": "bold red",
             "intent": "yellow", "sent": "yellow"}
    for o in orders:
        qty = o["qty"] if o["qty"] is not None else (f"{o['quote_amount']} KRW" if o["quote_amount"] else "")
        fee = f"{o['fee']} {o['fee_asset']}".strip() if o["fee"] not in ("0", None) else ""
        t.add_row(_hms(o["updated_ms"]), o["client_id"], o["exchange"], o["purpose"], o["side"],
                  f"{o['type']}{'/' + o['tif'] if o['tif'] else ''}{' RO' if o['reduce_only'] else ''}",
                  qty, o["price"] or "", o["filled_qty"], o["avg_price"] or "", fee,
                  Text(o["state"], style=style.get(o["state"], "")))
    _console().print(t)
    return EXIT_OK


run = run_status
