#!/usr/bin/env python
"""Fault soak: ``python bench/soak.py --signals N --seed S --json FILE``.

Runs N signals (single, concurrent bursts with duplicates, expired/future/malformed
ones, operator halts) through the real engine against the exchange simulator while
every simulator fault kind fires at random on both exchanges, and checks the SPEC §7
invariants after every step (see docs/RELIABILITY.md). Prints a progress line and a
summary; writes the full result as JSON; exits 1 when any invariant was violated.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from kimp_fast.reliability.setup import SIM_KWARGS, HarnessTimings, fast_sim_limits  # noqa: E402
from kimp_fast.reliability.soak import SoakOptions, jsonable, run_soak  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--log-level", default="ERROR", help="engine log level on stderr (default ERROR)")
    p.add_argument("--signals", type=int, default=1000, help="signals to submit (default 1000)")
    p.add_argument("--seed", type=int, default=1, help="seed of the signal and fault schedule (default 1)")
    p.add_argument("--json", metavar="FILE", help="write the result here")
    p.add_argument("--fault-rate", type=float, default=0.5, help="share of steps with faults armed (default 0.5)")
    p.add_argument("--no-late-delays", action="store_true",
                   help="keep injected delays below the client timeout (see RELIABILITY.md, finding F1)")
    p.add_argument("--client-timeout", type=float, default=1.0, help="adapters' request timeout, s (default 1)")
    p.add_argument("--journal", metavar="PATH", help="journal file (default: a temporary one)")
    p.add_argument("--trace", metavar="FILE", help="write every step (faults, reports) as JSON lines")
    p.add_argument("--real-limits", action="store_true",
                   help="the venues' real rate limits (default: x10 on both sides; 429/418 are injected anyway)")
    p.add_argument("--sim-process", action="store_true",
                   help="run the simulator in its own process (uses a second core)")
    p.add_argument("--quiet", action="store_true", help="no progress lines")
    args = p.parse_args(argv)
    _logging(args.log_level)

    timings = HarnessTimings(client_timeout_s=args.client_timeout)
    opts = SoakOptions(
        signals=args.signals, seed=args.seed, fault_rate=args.fault_rate, late_delays=not args.no_late_delays,
        timings=timings, journal_path=args.journal, trace_path=args.trace, fast_limits=not args.real_limits,
        progress=None if args.quiet else (lambda line: print(line, flush=True)),
    )
    sim_proc = None
    if args.sim_process:
        from kimp_fast.reliability.simproc import SimProcess

        kwargs = dict(SIM_KWARGS)
        if not args.real_limits:
            kwargs["limits"] = fast_sim_limits()
        sim_proc = SimProcess(seed=args.seed, **kwargs).start()
        opts.sim = sim_proc
    try:
        result = _run(opts)
    finally:
        if sim_proc is not None:
            sim_proc.stop()
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump(jsonable(result), fh, indent=2, sort_keys=False)
            fh.write("\n")
    _summary(result)
    return 1 if result["violations_total"] else 0


def _run(opts: SoakOptions) -> dict[str, Any]:
    try:
        import uvloop

        return uvloop.run(run_soak(opts))
    except ImportError:  # pragma: no cover
        return asyncio.run(run_soak(opts))


def _summary(r: dict[str, Any]) -> None:
    print(f"soak seed {r['seed']}: {r['signals']} signals in {r['steps']} steps, {r['duration_s']} s")
    print("  faults injected: " + ", ".join(f"{k} {v}" for k, v in r["faults_injected"].items())
          + f" (total {r['faults_injected_total']})")
    print("  reports: " + ", ".join(f"{k} {v}" for k, v in sorted(r["report_statuses"].items())))
    inv = r["invariants"]
    print(f"  invariant checks {inv['checks']}, ledger orders {inv['ledger_orders']}, recorded dust "
          f"{inv['recorded_dust']}, max unexplained exposure {inv['max_unexplained_exposure']}, "
          f"exits executed {inv['exits_executed']} (lowest expected net {inv['min_expected_exit_net_krw']} KRW)")
    print(f"  manual_required {len(r['manual_required'])}, operator interventions {len(r['operator_actions'])}, "
          f"halt steps {r['halt_steps']}, webhook posts {r['webhook']['posts']} ({r['webhook']['critical']} critical)")
    print(f"  violations: {r['violations_total']}")
    for v in r["violations"][:20]:
        print("   - " + v)


def _logging(level: str) -> None:
    import logging

    logging.basicConfig(level=level.upper(), stream=sys.stderr, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    # A client killed or timed out mid-request makes the simulator's server log a reset: expected here.
    logging.getLogger("aiohttp.server").setLevel(logging.CRITICAL)


if __name__ == "__main__":
    sys.exit(main())
