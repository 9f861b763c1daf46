"""``kimp-fast`` command line: one subcommand per module in :mod:`kimp_fast.commands`.

Each command module defines ``HELP`` (one line), ``add_arguments(parser)`` and
``run(args) -> int``. Modules are imported only when their command runs, so a broken or
heavy dependency of one command never slows down or breaks another.

Exit codes: 0 success; 1 the command ran but an invariant or check failed;
2 bad usage or bad configuration; 3 an exchange/runtime error.
"""

from __future__ import annotations

import argparse
import sys
from importlib import import_module

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_RUNTIME = 3

# name -> (module, one-line help). Order is the order shown in --help.
COMMANDS: dict[str, tuple[str, str]] = {
    "paper": ("kimp_fast.commands.paper", "paper-trade against the built-in simulator (no keys, no network)"),
    "sim": ("adapters_direct.sim.cli", "run the Upbit + Binance USDT-M exchange simulator"),
    "run": ("kimp_fast.commands.run", "run the engine on signals read as JSON lines"),
    "status": ("kimp_fast.commands.journal_views", "engine status from the journal"),
    "positions": ("kimp_fast.commands.journal_views", "open hedged positions from the journal"),
    "orders": ("kimp_fast.commands.journal_views", "recent orders from the journal"),
    "halt": ("kimp_fast.commands.killswitch", "halt new signals (kill switch, through the journal)"),
    "resume": ("kimp_fast.commands.killswitch", "clear the kill switch"),
    "reconcile": ("kimp_fast.commands.reconcile", "compare the journal with the exchanges"),
    "probe": ("kimp_fast.commands.probe", "latency probe (per-stage timings)"),
    "info": ("kimp_fast.commands.info", "version, build (compiled or pure) and dependency versions"),
}


def build_parser(only: str | None = None) -> tuple[argparse.ArgumentParser, dict[str, str]]:
    """The parser; with ``only``, just that subcommand's module is imported (the others
    are listed by name) so that e.g. ``kimp-fast status`` never imports aiohttp."""
    parser = argparse.ArgumentParser(
        prog="kimp-fast",
        description="Kimchi-premium execution engine: Upbit KRW spot + Binance USDT-M perpetual.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    modules: dict[str, str] = {}
    for name, (mod_name, help_) in COMMANDS.items():
        p = sub.add_parser(name, help=help_, description=help_)
        modules[name] = mod_name
        if only is not None and name != only:
            continue
        mod = import_module(mod_name)
        adder = getattr(mod, f"add_arguments_{name}", None) or mod.add_arguments
        adder(p)
    return parser, modules


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    first = next((a for a in argv if not a.startswith("-")), None)
    parser, modules = build_parser(only=first if first in COMMANDS else None)
    args = parser.parse_args(argv)
    if not args.command:
        parser.print_help()
        return EXIT_USAGE
    mod = import_module(modules[args.command])
    runner = getattr(mod, f"run_{args.command}", None) or mod.run
    try:
        return int(runner(args) or 0)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
