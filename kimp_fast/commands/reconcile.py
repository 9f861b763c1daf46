"""``kimp-fast reconcile --config FILE``: compare the journal with the exchanges.

Starts an engine on the config — its start *is* the reconciliation (CONTRACT §3): orders
the journal saw leave but never saw finish are looked up by client id, interrupted
signals are resumed (their one-leg repair runs to the end), and the journal's positions
are compared with the Upbit balances and Binance positions. A mismatch beyond one lot
halts the engine through the journal (critical notification). Then this command prints
the comparison and stops; it sends no new signal. Like any engine start, it makes sure
Binance is in one-way mode with the configured leverage and margin type.

Exit codes: 0 journal and exchanges agree; 1 mismatch (the engine is now halted: fix the
account, then ``kimp-fast resume``); 2 bad config; 3 exchange/runtime error.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from decimal import Decimal
from typing import Any

from ._common import EXIT_FAILED, EXIT_OK, EXIT_RUNTIME, EXIT_USAGE, CliError, dumps, fail, load_config, run_async, safe

HELP = "compare the journal with the exchanges"
ZERO = Decimal(0)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", required=True, metavar="FILE", help="engine config (TOML)")
    parser.add_argument("--env-file", metavar="FILE",
                        help="read key variables from a .env-style secrets file (the real environment wins)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")


async def _reconcile(cfg: Any, environ: dict[str, str]) -> dict[str, Any]:
    from ..engine import KimpEngine
    from ..journal import Journal

    path = cfg.journal.path
    before: dict[str, Any] = {"unfinished_orders": [], "interrupted_signals": [], "halt_id": 0}
    if os.path.exists(path):
        with Journal(path) as j:
            before = {
                "unfinished_orders": [o.client_id for o in j.unfinished_orders()],
                "interrupted_signals": [s["id"] for s in j.processing_signals()],
                "halt_id": j.halt_state()[2],
            }
    async with KimpEngine(cfg, environ=environ) as engine:
        j = engine.journal
        halts = [h for h in j.halts() if h["id"] > before["halt_id"]]
        mismatch_halts = [h for h in halts if h["action"] == "halt" and h["source"] == "reconcile"]
        positions = engine.positions()
        balances = await engine.upbit.get_balances()
        rows = []
        for coin in cfg.execution.coins:
            perp = engine.perp_symbol(coin)
            step = engine.binance.rules(perp).qty_step
            pos = positions.get(coin)
            bpos = await engine.binance.get_position(perp)
            bal = balances.get(coin)
            rows.append({
                "coin": coin,
                "lot": str(step),
                "journal_short": str(pos.qty if pos else ZERO),
                "binance_short": str(-bpos.qty),
                "journal_spot": str((pos.qty + pos.spot_residual) if pos else ZERO),
                "upbit_balance": str(bal.total if bal is not None else ZERO),
                "liquidation_price": str(bpos.liquidation_price),
                "mark_price": str(bpos.mark_price),
            })
        halted, reason, _ = j.halt_state()
        return {
            "journal": path,
            "orders_looked_up": before["unfinished_orders"],
            "signals_resumed": before["interrupted_signals"],
            "resumed_now": {sid: (j.signal(sid) or {}).get("status") for sid in before["interrupted_signals"]},
            "positions": rows,
            "mismatches": [h["reason"] for h in mismatch_halts],
            "ok": not mismatch_halts,
            "halted": halted,
            "halt_reason": reason if halted else "",
        }


def run(args: argparse.Namespace) -> int:
    from adapters_direct.errors import AdapterError

    from ..config import ConfigError
    from ..journal import JournalError
    from .run import _check_keys, _environ

    logging.basicConfig(level=logging.WARNING, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        cfg = load_config(args.config)
        environ = _environ(args)
        _check_keys(cfg, environ)
        result = run_async(_reconcile(cfg, environ), use_uvloop=cfg.performance.use_uvloop)
    except CliError as exc:
        return fail(str(exc), exc.code)
    except ConfigError as exc:
        return fail(f"config error: {exc}", EXIT_USAGE)
    except JournalError as exc:
        return fail(f"journal error: {exc}", EXIT_USAGE)
    except AdapterError as exc:
        return fail(f"exchange error: {type(exc).__name__}: {exc}", EXIT_RUNTIME)
    except (OSError, asyncio.TimeoutError) as exc:
        return fail(f"runtime error: {type(exc).__name__}: {exc}", EXIT_RUNTIME)
    if args.json:
        print(dumps(result))
    else:
        result = safe(result)  # no control character from the journal reaches the terminal
        print(f"journal: {result['journal']}")
        print(f"orders looked up by client id: {len(result['orders_looked_up'])}"
              + (f" ({', '.join(result['orders_looked_up'])})" if result["orders_looked_up"] else ""))
        if result["signals_resumed"]:
            print("interrupted signals resumed: " + ", ".join(f"{k} -> {v}" for k, v in result["resumed_now"].items()))
        for r in result["positions"]:
            print(f"{r['coin']}: Binance short {r['binance_short']} (journal {r['journal_short']}), "
                  f"Upbit balance {r['upbit_balance']} (journal {r['journal_spot']}), lot {r['lot']}")
        if result["ok"]:
            print("journal and exchanges agree")
        else:
            print("MISMATCH: " + "; ".join(result["mismatches"]))
            print("the engine is halted; fix the account (see docs/RISK_MANAGEMENT.md), then 'kimp-fast resume'")
        if result["halted"] and result["ok"]:
            print(f"note: the kill switch is set ({result['halt_reason']}); 'kimp-fast resume' clears it")
    return EXIT_OK if result["ok"] else EXIT_FAILED
