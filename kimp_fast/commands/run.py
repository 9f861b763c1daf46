"""``kimp-fast run --config FILE [--signals FILE|-]``: the engine driven by JSON lines.

A simple way for research code in any language to drive the engine: write one signal per
line (the :class:`~kimp_fast.models.Signal` fields as JSON) to stdin or a file, read one
:class:`~kimp_fast.models.ExecutionReport` JSON line per signal from stdout, in the same
order. Signals are executed one at a time. Blank lines and lines starting with ``#`` are
skipped; a malformed line gets a ``rejected`` report and nothing is sent.

    {"id": "sig-1", "action": "ENTER", "coin": "BTC", "qty": "0.01", "ts_ms": 1763900000000, "ttl_ms": 5000}

Logs and notifications go to stderr; stdout carries only report lines. SIGINT/SIGTERM
stop reading; the signal in progress (and any recovery it needs) is finished first.

``--dry-run`` validates the config and every signal, connects to both exchanges (session,
clock sync, symbol rules, signed read-only balance/position calls — proving the keys
work) and sends nothing: no order, no leverage or margin change. It prints one validation
line per signal and a summary line.

Exit codes: 0 done; 1 a signal ended ``manual_required`` (the engine is halted: see
``kimp-fast status``) or, with ``--dry-run``, a signal is invalid; 2 bad usage or config
(missing key variables included); 3 exchange or runtime error.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal as _signal
import sys
import threading
import time
from collections.abc import AsyncIterator
from typing import Any

from ._common import EXIT_FAILED, EXIT_OK, EXIT_RUNTIME, EXIT_USAGE, CliError, dumps, fail, load_config, run_async

HELP = "run the engine on signals read as JSON lines"
log = logging.getLogger("kimp_fast.run")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", required=True, metavar="FILE", help="engine config (TOML)")
    parser.add_argument("--signals", default="-", metavar="FILE",
                        help="JSON-lines signal file, or - for stdin (default)")
    parser.add_argument("--env-file", metavar="FILE",
                        help="read key variables from a .env-style secrets file (the real environment wins)")
    parser.add_argument("--dry-run", action="store_true",
                        help="validate config and signals, connect and check the keys; send nothing")
    parser.add_argument("--log-level", default="INFO", choices=("DEBUG", "INFO", "WARNING", "ERROR"),
                        help="stderr log level (default INFO)")


def _environ(args: argparse.Namespace) -> dict[str, str]:
    from ..config import ConfigError, read_env_file

    env: dict[str, str] = {}
    if args.env_file:
        try:
            env.update(read_env_file(args.env_file))
        except ConfigError as exc:
            raise CliError(f"config error: {exc}", EXIT_USAGE) from None
    env.update(os.environ)
    return env


def _check_keys(cfg: Any, environ: dict[str, str]) -> None:
    from ..config import ConfigError

    try:
        cfg.upbit_keys(environ)
        cfg.binance_keys(environ)
        cfg.discord_webhook_url(environ)
    except ConfigError as exc:
        raise CliError(f"config error: {exc}", EXIT_USAGE) from None


async def _lines(path: str, stop: asyncio.Event) -> AsyncIterator[tuple[int, str]]:
    """Lines of ``path`` (``-``: stdin) with their numbers; stops early when ``stop`` is set.

    stdin is read by a daemon thread, so a blocked read never holds up shutdown."""
    if path != "-":
        try:
            with open(path, encoding="utf-8") as fh:
                for n, line in enumerate(fh, 1):
                    if stop.is_set():
                        return
                    yield n, line
        except OSError as exc:
            raise CliError(f"cannot read signals file {path}: {exc.strerror or exc}", EXIT_USAGE) from None
        return
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[str | None] = asyncio.Queue()

    def reader() -> None:
        try:
            for raw in sys.stdin:
                loop.call_soon_threadsafe(queue.put_nowait, raw)
        except (OSError, ValueError):
            pass
        with contextlib.suppress(RuntimeError):  # loop already closed
            loop.call_soon_threadsafe(queue.put_nowait, None)

    threading.Thread(target=reader, name="kimp-run-stdin", daemon=True).start()
    n = 0
    stop_wait = asyncio.ensure_future(stop.wait())
    try:
        while True:
            get = asyncio.ensure_future(queue.get())
            done, _ = await asyncio.wait({get, stop_wait}, return_when=asyncio.FIRST_COMPLETED)
            if get not in done:
                get.cancel()
                return
            line = get.result()
            if line is None:
                return
            n += 1
            yield n, line
    finally:
        stop_wait.cancel()


def _skip(line: str) -> bool:
    s = line.strip()
    return not s or s.startswith("#")


def _install_stop(stop: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    for sig in (_signal.SIGINT, _signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)


def _write(obj: Any) -> None:
    sys.stdout.write(dumps(obj) + "\n")
    sys.stdout.flush()


# --------------------------------------------------------------------------- normal run

async def _run(args: argparse.Namespace, cfg: Any, environ: dict[str, str]) -> int:
    from ..engine import KimpEngine

    stop = asyncio.Event()
    _install_stop(stop)
    manual = 0
    count = 0
    async with KimpEngine(cfg, environ=environ) as engine:
        log.info("engine started (%s); reading signals from %s", cfg.source,
                 "stdin" if args.signals == "-" else args.signals)
        if engine.halted:
            log.warning("the engine is halted (%s): signals will be refused until 'kimp-fast resume'",
                        engine.halt_reason)
        async for _n, line in _lines(args.signals, stop):
            if _skip(line):
                continue
            report = await engine.submit(line.strip())
            count += 1
            _write(report)
            if report.status == "manual_required":
                manual += 1
                log.critical("signal %s needs manual intervention: %s", report.signal_id, report.reason)
    log.info("%d signal(s) processed", count)
    return EXIT_FAILED if manual else EXIT_OK


# --------------------------------------------------------------------------- dry run

def _validate_line(line: str, cfg: Any, now_ms: int) -> dict[str, Any]:
    import msgspec

    from ..models import Signal

    try:
        sig = msgspec.json.decode(line.strip(), type=Signal)
    except (msgspec.ValidationError, msgspec.DecodeError, ValueError, TypeError) as exc:
        return {"valid": False, "reason": f"invalid signal: {exc}"}
    ex = cfg.execution
    out: dict[str, Any] = {"id": sig.id, "action": sig.action, "coin": sig.coin}
    problems = []
    if sig.coin not in ex.coins:
        problems.append(f"coin {sig.coin} is not configured (execution.coins = {list(ex.coins)})")
    if sig.ttl_ms > ex.signal_ttl_ms_max:
        problems.append(f"ttl_ms {sig.ttl_ms} exceeds the maximum {ex.signal_ttl_ms_max}")
    if sig.action == "ENTER" and sig.qty is None:
        problems.append("ENTER needs qty")
    out["valid"] = not problems
    if problems:
        out["reason"] = "; ".join(problems)
    elif sig.expired(now_ms):
        out["note"] = "already expired now: the engine would reject it"
    return out


async def _dry_run(args: argparse.Namespace, cfg: Any, environ: dict[str, str]) -> int:
    from adapters_direct.errors import AdapterError

    from ..engine import KimpEngine

    stop = asyncio.Event()
    valid = invalid = 0
    now_ms = time.time_ns() // 1_000_000
    journal = None
    if os.path.exists(cfg.journal.path):  # read only what exists; a dry run creates nothing
        from ..journal import Journal

        journal = Journal(cfg.journal.path)
    async for n, line in _lines(args.signals, stop):
        if _skip(line):
            continue
        res = {"line": n, **_validate_line(line, cfg, now_ms)}
        if journal is not None and res.get("id"):
            prev = journal.signal(res["id"])
            if prev is not None:
                res["note"] = f"already processed (status {prev['status']}): the engine would answer duplicate"
        valid += res["valid"]
        invalid += not res["valid"]
        _write(res)
    if journal is not None:
        summary_halt = journal.halt_state()
        journal.close()
    else:
        summary_halt = (False, "", 0)
    summary: dict[str, Any] = {"dry_run": True, "halted": summary_halt[0], "halt_reason": summary_halt[1], "config": cfg.source, "orders_sent": 0,
                               "signals": {"valid": valid, "invalid": invalid}, "exchanges": {}}
    # The engine's own adapter wiring, without starting the engine: opening an adapter only
    # reads (session, clock sync, rules); the engine's start would also set leverage/margin.
    upbit, binance = KimpEngine(cfg, environ=environ)._make_adapters()  # noqa: SLF001
    try:
        async with upbit, binance:
            balances, margin = await asyncio.gather(upbit.get_balances(), binance.get_available_margin())
            positions = {}
            for coin in cfg.execution.coins:
                p = await binance.get_position(f"{coin}USDT")
                positions[f"{coin}USDT"] = {"qty": str(p.qty), "leverage": p.leverage, "margin_type": p.margin_type}
            summary["exchanges"] = {
                "upbit": {"reachable": True, "keys": "ok",
                          "balances": {a: str(b.free) for a, b in balances.items()
                                       if a in ("KRW", *cfg.execution.coins)}},
                "binance": {"reachable": True, "keys": "ok", "available_margin_usdt": str(margin),
                            "positions": positions},
            }
    except AdapterError as exc:
        summary["error"] = f"{type(exc).__name__}: {exc}"
        _write(summary)
        return fail(f"dry run: exchange check failed: {type(exc).__name__}: {exc}", EXIT_RUNTIME)
    _write(summary)
    return EXIT_FAILED if invalid else EXIT_OK


def run(args: argparse.Namespace) -> int:
    from adapters_direct.errors import AdapterError

    from ..config import ConfigError
    from ..journal import JournalError

    logging.basicConfig(level=getattr(logging, args.log_level), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        cfg = load_config(args.config)
        environ = _environ(args)
        _check_keys(cfg, environ)
        if args.signals != "-" and not os.path.exists(args.signals):
            raise CliError(f"signals file not found: {args.signals}", EXIT_USAGE)
        main = _dry_run if args.dry_run else _run
        return run_async(main(args, cfg, environ), use_uvloop=cfg.performance.use_uvloop)
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
    except KeyboardInterrupt:
        return 130
    except Exception:  # a bug: show it, with the runtime exit code
        log.exception("kimp-fast run failed")
        return EXIT_RUNTIME
