"""``kimp-fast paper``: paper-trade against the built-in simulator (no keys, no network).

Starts the exchange simulator in-process, a seeded mean-reverting premium, a demo
strategy, and the real engine with a journal; shows a live view on a terminal, prints a
report at the end, and exits 0 only if every invariant held (hedged, no duplicate order,
no loss exit, journal = the exchanges' ledger, nothing left for a human).
"""

from __future__ import annotations

import argparse
import logging
import sys
from decimal import Decimal, InvalidOperation

from ._common import EXIT_FAILED, EXIT_OK, EXIT_RUNTIME, dumps, fail, run_async, safe_text

HELP = "paper-trade against the built-in simulator (no keys, no network)"


def _positive_int(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if v <= 0:
        raise argparse.ArgumentTypeError(f"expected a number > 0, got {v}")
    return v


def _positive_float(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected seconds, got {text!r}") from None
    if not v > 0 or v == float("inf"):
        raise argparse.ArgumentTypeError(f"expected seconds > 0, got {text}")
    return v


def _qty(text: str) -> Decimal:
    try:
        v = Decimal(text)
    except InvalidOperation:
        raise argparse.ArgumentTypeError(f"expected a decimal quantity, got {text!r}") from None
    if not v.is_finite() or v <= 0:
        raise argparse.ArgumentTypeError(f"expected a quantity > 0, got {text}")
    return v


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.epilog = (
        "Signals come from a DEMO strategy (enter when the executable premium is below a "
        "threshold, exit when above); real signals come from your research code. "
        "Exit code: 0 all invariants held, 1 an invariant failed, 3 runtime error."
    )
    stop = parser.add_argument_group("how long")
    stop.add_argument("--signals", type=_positive_int, metavar="N", help="stop after N signals")
    stop.add_argument("--duration", type=_positive_float, metavar="SECONDS",
                      help="stop after this many seconds (default 30; with --signals, a 300 s guard)")
    parser.add_argument("--seed", type=int, default=7, help="seed of the simulator and the premium stream (default 7)")
    parser.add_argument("--faults", action="store_true",
                        help="inject a realistic mix of exchange faults (partial fills, 5xx, unknown 503 "
                             "executed, dropped connections, 429, margin rejects) so recovery is visible")
    parser.add_argument("--journal", metavar="PATH",
                        help="keep the journal in this SQLite file (default: a temporary file, deleted)")
    parser.add_argument("--qty", type=_qty, default=Decimal("0.01"), help="BTC per ENTER (default 0.01)")
    out = parser.add_argument_group("output")
    out.add_argument("--json", action="store_true",
                     help="print only a machine-readable JSON summary on stdout")
    out.add_argument("--no-live", action="store_true",
                     help="no live view (it is also off when stdout is not a terminal)")


def run(args: argparse.Namespace) -> int:
    from rich.console import Console

    from ..paper import PaperOptions, PaperRun

    opts = PaperOptions(seed=args.seed, duration_s=args.duration, signals=args.signals, faults=args.faults,
                        journal=args.journal, qty=args.qty)
    live = not args.json and not args.no_live and sys.stdout.isatty()
    console = Console(highlight=False, width=None if sys.stdout.isatty() else 160)
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.WARNING, stream=sys.stderr,
                            format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    run_ = PaperRun(opts)

    async def main():  # noqa: ANN202
        view = None
        if live:
            from ..paper.live import LiveView

            view = LiveView(console)
        try:
            return await run_.run(on_start=view.attach if view else None)
        finally:
            if view is not None:
                await view.close()

    if not args.json and not live:
        console.print(f"kimp-fast paper: seed {opts.seed}, "
                      + (f"{opts.signals} signals" if opts.signals else f"{opts.stop_after_s:g} s")
                      + (", faults injected" if opts.faults else "") + " ...", markup=False)
    try:
        result = run_async(main())
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        logging.getLogger("kimp_fast.paper").debug("paper run failed", exc_info=True)
        return fail(f"paper run failed: {type(exc).__name__}: {exc}", EXIT_RUNTIME)
    if args.json:
        sys.stdout.write(dumps(result.summary) + "\n")
    else:
        if not live:
            for r in result.records:
                console.print(safe_text(f"  {r.at_s:5.1f}s {r.report.signal_id} {r.report.action} {r.report.status}")
                              + (f" [{r.fault.name}]" if r.fault else ""), markup=False)
        from ..paper.report import render_summary

        render_summary(result.summary, console)
    return EXIT_OK if result.ok else EXIT_FAILED

