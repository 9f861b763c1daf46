"""Arguments, the printed summary and the entry points of the latency probe."""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import traceback
from pathlib import Path
from typing import Any

from ._engine_run import DEFAULT_VARIANTS, VARIANTS, RunSpec, run_variant

__all__ = ["add_arguments", "main", "run"]

HELP = "latency probe: per-stage timings of ENTER/EXIT through the real engine (simulator or --live test orders)"


def _pairs(text: str) -> list[tuple[float, float]]:
    out = []
    for item in filter(None, (x.strip() for x in text.split(","))):
        a, sep, b = item.partition(":")
        if not sep:
            raise argparse.ArgumentTypeError(f"pair {item!r}: expected UPBIT_MS:BINANCE_MS")
        try:
            d1, d2 = float(a), float(b)
        except ValueError:
            raise argparse.ArgumentTypeError(f"pair {item!r}: not numbers") from None
        if not (math.isfinite(d1) and math.isfinite(d2) and d1 >= 0 and d2 >= 0):
            raise argparse.ArgumentTypeError(f"pair {item!r}: delays must be >= 0")
        out.append((d1, d2))
    return out


def _variants(text: str) -> list[str]:
    names = [x.strip() for x in text.split(",") if x.strip()]
    unknown = [x for x in names if x not in VARIANTS]
    if unknown or not names:
        raise argparse.ArgumentTypeError(f"unknown variant(s) {unknown}; known: {', '.join(VARIANTS)}")
    return names


def _nonneg_int(text: str) -> int:
    v = int(text)
    if v < 0:
        raise argparse.ArgumentTypeError("must be >= 0")
    return v


def _pos_int(text: str) -> int:
    v = int(text)
    if v < 1:
        raise argparse.ArgumentTypeError("must be >= 1")
    return v


def _delay(text: str) -> float:
    v = float(text)
    if not math.isfinite(v) or v < 0:
        raise argparse.ArgumentTypeError("must be a number of milliseconds >= 0")
    return v


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-n", "--round-trips", dest="n", type=_pos_int, default=200,
                        help="ENTER/EXIT round trips per variant (live: test-order rounds; default 200)")
    parser.add_argument("--upbit-delay-ms", type=_delay, default=2.0,
                        help="delay the simulator adds to every Upbit response (default 2, a Seoul host)")
    parser.add_argument("--binance-delay-ms", type=_delay, default=15.0,
                        help="delay the simulator adds to every Binance response (default 15)")
    parser.add_argument("--variants", type=_variants, default=list(DEFAULT_VARIANTS),
                        help=f"comma-separated, run in this order (default: {','.join(DEFAULT_VARIANTS)}; "
                             f"also: {','.join(sorted(set(VARIANTS) - set(DEFAULT_VARIANTS)))})")
    parser.add_argument("--pairs", type=_pairs, default=_pairs("2:15,15:2,10:10,5:20"),
                        help="UPBIT_MS:BINANCE_MS delay pairs for the concurrency check, run on "
                             "direct_compiled_uvloop if selected, else the first variant "
                             "(default 2:15,15:2,10:10,5:20; '' to skip)")
    parser.add_argument("--pair-n", type=_pos_int, default=20, help="round trips per delay pair (default 20)")
    parser.add_argument("--warmup", type=_nonneg_int, default=5,
                        help="unrecorded round trips at the start of every block (default 5)")
    parser.add_argument("--blocks", type=_pos_int, default=4,
                        help="split each variant's round trips into this many worker runs, interleaved across "
                             "variants so load drift on a shared machine spreads evenly (default 4)")
    parser.add_argument("--upbit-answer-pending", action="store_true",
                        help='the simulator answers each new Upbit order as accepted (state "wait", nothing '
                             "executed), as the real Upbit does, so the adapter reads GET /v1/order once more "
                             "before the leg completes (2 Upbit requests per order instead of 1); recorded in "
                             "the report's settings")
    parser.add_argument("--spin", action="store_true",
                        help="diagnostic: keep the event loop busy between signals (the CPU never idles)")
    parser.add_argument("--interval-ms", type=float, default=200.0,
                        help="minimum time between two signals, so the rate limiters never hold an order back "
                             "(Upbit: 8 orders/s, 7 of them outside the reserved lane; default 200)")
    parser.add_argument("--qty", default="0.01", help="ENTER quantity in BTC (default 0.01)")
    parser.add_argument("--market-poll-s", type=float, default=0.0,
                        help="engine market-data poll interval (default 0: ENTER sizes on cached books, "
                             "EXIT always reads fresh ones)")
    parser.add_argument("--profile", type=_variants, default=[], metavar="VARIANTS",
                        help="also run --profile-n round trips of these variants under cProfile")
    parser.add_argument("--profile-n", type=_pos_int, default=50, help="round trips profiled (default 50)")
    parser.add_argument("--json", metavar="FILE", help="write the whole report as JSON")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress on stderr")
    live = parser.add_argument_group("live (real exchanges, order-TEST endpoints only)")
    live.add_argument("--live", action="store_true",
                      help="measure against the real exchanges' order-test endpoints (Upbit POST /v1/orders/test, "
                           "Binance POST /fapi/v1/order/test); keys from the environment; never places an order")
    live.add_argument("--config", metavar="TOML", help="read the key variable names from this engine config")
    live.add_argument("--upbit-url", default=None, help="Upbit base URL (default https://api.upbit.com)")
    live.add_argument("--binance-url", default=None, help="Binance USDT-M base URL (default https://fapi.binance.com)")
    live.add_argument("--live-upbit-krw", default="6000", help="KRW total of the Upbit test order (default 6000)")
    parser.add_argument("--worker-spec", help=argparse.SUPPRESS)
    parser.add_argument("--worker-out", help=argparse.SUPPRESS)


def _fmt(d: dict[str, Any] | None, key: str = "p50") -> str:
    if not d or key not in d or d[key] is None or (isinstance(d[key], float) and math.isnan(d[key])):
        return "-"
    v = d[key]
    return f"{v / 1000:.2f} ms" if v >= 10_000 else f"{v:.0f} us"


def print_summary(report: dict[str, Any], out: Any = sys.stdout) -> None:
    m = report["machine"]
    print(f"kimp-fast latency probe ({report['mode']}) on {m['cpu']} x{m['cpus']}, Python {m['python']}, "
          f"commit {m['commit']}", file=out)
    st = report.get("settings", {})
    if report["mode"] == "simulator":
        print(f"delays: Upbit {st['upbit_delay_ms']:g} ms, Binance {st['binance_delay_ms']:g} ms; "
              f"{st['round_trips_per_variant']} ENTER/EXIT round trips per variant"
              + ("; Upbit answers new orders 'wait' (follow-up read)" if st.get("upbit_answer_pending") else ""),
              file=out)
    hdr = f"{'variant':34} {'n':>4} {'to wire p50':>12} {'p99':>10} {'overhead p50':>13} {'p99':>10} {'total p50':>10}"
    print(hdr, file=out)
    for name, v in report["variants"].items():
        if not v.get("available"):
            print(f"{name:34} unavailable: {v.get('reason', '?')}", file=out)
            continue
        print(f"{name:34} {v.get('n', 0):>4} {_fmt(v.get('signal_to_wire_us')):>12} "
              f"{_fmt(v.get('signal_to_wire_us'), 'p99'):>10} {_fmt(v.get('overhead_us')):>13} "
              f"{_fmt(v.get('overhead_us'), 'p99'):>10} {_fmt(v.get('total_us')):>10}", file=out)
    for name, v in report["variants"].items():
        calls = v.get("calls_to_wire")
        if calls and "python" in calls:
            print(f"{name}: one ENTER makes {calls['python']} Python and {calls['c']} C function calls "
                  f"before both orders are written" + ("" if calls["complete"] else " (a leg went out later)"),
                  file=out)
    for c in report.get("concurrency", []):
        if c.get("legs_overlapped_share") is None:
            print(f"concurrency Upbit {c['d1_ms']:g} ms / Binance {c['d2_ms']:g} ms: no sample", file=out)
            continue
        print(f"concurrency Upbit {c['d1_ms']:g} ms / Binance {c['d2_ms']:g} ms: ENTER total p50 "
              f"{c['total_ms_p50']} ms; nominal bound {c['bound_ms']} ({'ok' if c['within_bound'] else 'over'}); "
              f"legs' network p50 {c['leg_network_ms_p50']}, measured bound {c['measured_bound_ms']} "
              f"({'ok' if c['within_measured_bound'] else 'over'}); legs overlapped in "
              f"{c['legs_overlapped_share']:.0%} of ENTERs", file=out)
    for t in report.get("targets", []):
        state = {True: "met", False: "MISSED", None: "n/a"}[t["met"]]
        print(f"target {t['target']}: {t['measured']} (limit {t['limit']}) -> {state}", file=out)


def _worker(args: argparse.Namespace) -> int:
    spec = RunSpec(**json.loads(args.worker_spec))
    spec.pairs = [tuple(p) for p in spec.pairs]  # type: ignore[misc]
    try:
        result = run_variant(spec)
    except Exception as exc:  # noqa: BLE001 - reported as an unavailable variant
        traceback.print_exc()
        v = VARIANTS[spec.variant]
        result = {"available": False, "adapter": v.adapter, "loop": v.loop, "build": v.build,
                  "reason": f"{type(exc).__name__}: {exc}"[:500]}
    Path(args.worker_out).write_text(json.dumps(result))
    return 0


def run(args: argparse.Namespace) -> int:
    """``kimp-fast probe`` / ``bench/latency_probe.py``; exit 0, 2 on refusal/bad usage, 3 on runtime errors."""
    if args.worker_spec:
        return _worker(args)
    progress = not args.quiet
    if args.live:
        if args.upbit_answer_pending:  # the real Upbit always answers "wait": nothing to switch
            print("kimp-fast probe: --upbit-answer-pending applies to the simulator only", file=sys.stderr)
            return 2
        from ._live import BINANCE_URL, UPBIT_URL, LiveRefused, run_live

        try:
            report = run_live(
                n=args.n, warmup=min(args.warmup, 3), interval_s=max(args.interval_ms, 200.0) / 1000.0,
                environ=os.environ, config_path=args.config, upbit_url=args.upbit_url or UPBIT_URL,
                binance_url=args.binance_url or BINANCE_URL, upbit_krw=args.live_upbit_krw, progress=progress,
            )
        except LiveRefused as exc:
            print(f"kimp-fast probe: {exc}", file=sys.stderr)
            return 2
        except Exception as exc:  # noqa: BLE001 - network, auth: one clear line
            print(f"kimp-fast probe --live failed: {type(exc).__name__}: {exc}", file=sys.stderr)
            return 3
    else:
        if args.upbit_url or args.binance_url or args.config:
            print("kimp-fast probe: --upbit-url/--binance-url/--config apply to --live only", file=sys.stderr)
            return 2
        if args.interval_ms < 0:
            print("kimp-fast probe: --interval-ms must be >= 0", file=sys.stderr)
            return 2
        from ._orchestrate import run_probe

        report = run_probe(
            variants=args.variants, n=args.n, upbit_delay_ms=args.upbit_delay_ms,
            binance_delay_ms=args.binance_delay_ms, pairs=args.pairs, pair_n=args.pair_n, warmup=args.warmup,
            interval_s=args.interval_ms / 1000.0, qty=args.qty, profile=args.profile, profile_n=args.profile_n,
            blocks=args.blocks, market_poll_s=args.market_poll_s, spin=args.spin,
            upbit_answer_pending=args.upbit_answer_pending, progress=progress,
        )
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1, default=str) + "\n")
    print_summary(report)
    ok = any(v.get("available") for v in report["variants"].values())
    return 0 if ok else 3


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="latency_probe", description=HELP)
    add_arguments(parser)
    return run(parser.parse_args(argv))
