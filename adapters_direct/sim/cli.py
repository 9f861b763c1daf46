"""``kimp-fast sim``: run the exchange simulator until SIGINT/SIGTERM.

Prints exactly one JSON line on start (CONTRACT §4)::

    {"url": "http://127.0.0.1:PORT", "upbit": {"access_key", "secret_key"},
     "binance": {"api_key", "secret_key"}}
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
from typing import Any

HELP = "run the Upbit + Binance USDT-M exchange simulator"

__all__ = ["HELP", "add_arguments", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=0, help="port (0 = pick a free one; the real one is printed)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the price process and ids")
    parser.add_argument("--keys", metavar="FILE",
                        help='JSON {"upbit": {"access_key", "secret_key"}, "binance": {"api_key", "secret_key"}}')
    parser.add_argument("--time-scale", type=float, default=1.0,
                        help="simulation clock speed for the funding schedule (3600 = an 8 h cycle in 8 s)")
    parser.add_argument("--upbit-delay-ms", type=float, default=0.0, help="added before every Upbit response")
    parser.add_argument("--binance-delay-ms", type=float, default=0.0, help="added before every Binance response")
    parser.add_argument("--upbit-answer-pending", action="store_true",
                        help='answer POST /v1/orders with the order as accepted (state "wait", nothing executed), '
                             "as the real Upbit does; GET /v1/order then shows the final state")
    parser.add_argument("--upbit-identifiers", metavar="FILE",
                        help="remember every Upbit identifier ever used in FILE (one per line), across resets and "
                             "restarts, as the real Upbit does (default: in memory)")
    m = parser.add_argument_group("market")
    m.add_argument("--premium", type=float, help="kimchi premium, e.g. 0.012")
    m.add_argument("--binance-mid", type=float, help="BTCUSDT mid")
    m.add_argument("--usdt-krw", type=float, help="KRW-USDT mid")
    m.add_argument("--spread-bps", type=float, help="top-of-book spread")
    m.add_argument("--depth-btc", type=float, help="BTC per side across 30 levels")
    m.add_argument("--volatility", type=float, help="annualised BTC volatility (0 freezes prices)")
    m.add_argument("--premium-volatility", type=float, help="premium noise per sqrt(second)")
    m.add_argument("--funding-rate", type=float, help="funding rate charged every 8 h of simulation time")
    b = parser.add_argument_group("balances")
    b.add_argument("--upbit-krw", help="starting KRW (default 100000000)")
    b.add_argument("--upbit-btc", help="starting BTC on Upbit (default 0)")
    b.add_argument("--upbit-usdt", help="starting USDT on Upbit (default 10000)")
    b.add_argument("--binance-usdt", help="starting USDT on Binance (default 100000)")
    b.add_argument("--leverage", type=int, default=20, help="Binance default leverage (default 20)")
    lim = parser.add_argument_group("limits")
    lim.add_argument("--upbit-order-rate", type=float, help="Upbit order group requests per second (default 8)")


def _server_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    from .config import load_keys_file

    kwargs: dict[str, Any] = {
        "host": args.host,
        "port": args.port,
        "seed": args.seed,
        "time_scale": args.time_scale,
        "upbit_delay_ms": args.upbit_delay_ms,
        "binance_delay_ms": args.binance_delay_ms,
        "upbit_answer_pending": args.upbit_answer_pending,
        "upbit_identifiers_path": args.upbit_identifiers,
        "binance_leverage": args.leverage,
    }
    if args.keys:
        kwargs["upbit_keys"], kwargs["binance_keys"] = load_keys_file(args.keys)
    market = {k: getattr(args, k) for k in ("premium", "binance_mid", "usdt_krw", "spread_bps", "depth_btc",
                                            "volatility", "premium_volatility", "funding_rate")
              if getattr(args, k) is not None}
    if market:
        kwargs["market"] = market
    balances: dict[str, dict[str, str]] = {"upbit": {}, "binance": {}}
    for attr, exchange, cur in (("upbit_krw", "upbit", "KRW"), ("upbit_btc", "upbit", "BTC"),
                                ("upbit_usdt", "upbit", "USDT"), ("binance_usdt", "binance", "USDT")):
        if getattr(args, attr) is not None:
            balances[exchange][cur] = getattr(args, attr)
    kwargs["balances"] = balances
    if args.upbit_order_rate is not None:
        kwargs["limits"] = {"upbit_order_per_s": args.upbit_order_rate}
    return kwargs


async def _serve(kwargs: dict[str, Any]) -> None:
    from .server import SimServer

    server = SimServer(**kwargs)
    await server.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        sys.stdout.write(json.dumps(server.startup_info()) + "\n")
        sys.stdout.flush()
        await stop.wait()
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
        await server.stop()


def run(args: argparse.Namespace) -> int:
    try:
        kwargs = _server_kwargs(args)
    except (OSError, ValueError, KeyError, TypeError) as e:
        print(f"kimp-fast sim: {e}", file=sys.stderr)
        return 2
    try:
        import uvloop

        runner = uvloop.run
    except ImportError:  # pragma: no cover
        runner = asyncio.run
    try:
        runner(_serve(kwargs))
    except OSError as e:  # e.g. the port is taken
        print(f"kimp-fast sim: {e}", file=sys.stderr)
        return 3
    return 0
