#!/usr/bin/env python
"""Crash-restart torture: ``python bench/crash_torture.py --kills N --seed S --json FILE``.

Runs the engine in a subprocess against the exchange simulator (which lives in this
process and outlives every engine), kills it with SIGKILL at chosen moments — an order
inside the exchange, between the two legs, in the middle of a one-leg repair, while a
restarted engine reconciles, at random (inside journal writes) — restarts it on the same
journal, and checks the SPEC §7 invariants after every restart (docs/RELIABILITY.md).
Writes the result as JSON; exits 1 when any invariant was violated.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from kimp_fast.reliability.soak import jsonable  # noqa: E402
from kimp_fast.reliability.torture import SCENARIOS, TortureOptions, run_torture  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--log-level", default="ERROR", help="engine log level on stderr (default ERROR)")
    p.add_argument("--kills", type=int, default=50, help="SIGKILLs to deliver (default 50)")
    p.add_argument("--seed", type=int, default=1, help="seed of the kill schedule (default 1)")
    p.add_argument("--json", metavar="FILE", help="write the result here")
    p.add_argument("--scenarios", default=",".join(SCENARIOS),
                   help=f"comma-separated subset of {','.join(SCENARIOS)}")
    p.add_argument("--workdir", help="keep the journal and the engines' logs here (default: a temporary dir)")
    p.add_argument("--quiet", action="store_true", help="no progress lines")
    args = p.parse_args(argv)
    _logging(args.log_level)
    scenarios = tuple(s for s in args.scenarios.split(",") if s)
    unknown = set(scenarios) - set(SCENARIOS)
    if unknown:
        p.error(f"unknown scenario(s): {', '.join(sorted(unknown))}")
    opts = TortureOptions(kills=args.kills, seed=args.seed, scenarios=scenarios, workdir=args.workdir,
                          progress=None if args.quiet else (lambda line: print(line, flush=True)))
    try:
        import uvloop

        result = uvloop.run(run_torture(opts))
    except ImportError:  # pragma: no cover
        result = asyncio.run(run_torture(opts))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump(jsonable(result), fh, indent=2)
            fh.write("\n")
    _summary(result)
    return 1 if result["violations_total"] else 0


def _summary(r: dict[str, Any]) -> None:
    print(f"crash torture seed {r['seed']}: {r['kills']} kills, {r['restarts']} restarts, {r['signals']} signals "
          f"({r['resubmitted_after_kill']} resubmitted after a kill), {r['duration_s']} s")
    print("  kill points: " + ", ".join(f"{k} {v}" for k, v in sorted(r["kill_points"].items())))
    print("  faults injected: " + ", ".join(f"{k} {v}" for k, v in r["faults_injected"].items() if v)
          + f" (total {r['faults_injected_total']})")
    print("  reports: " + ", ".join(f"{k} {v}" for k, v in sorted(r["report_statuses"].items())))
    inv = r["invariants"]
    print(f"  invariant checks {inv['checks']}, ledger orders {inv['ledger_orders']}, journal rows {r['journal_rows']}")
    print(f"  engine start (median) {r['engine_start_s_median']} s, halts after restart {len(r['halts_after_restart'])}")
    print(f"  violations: {r['violations_total']}")
    for v in r["violations"][:20]:
        print("   - " + v)
    print(f"  journal and engine logs: {r['workdir']}")


def _logging(level: str) -> None:
    import logging

    logging.basicConfig(level=level.upper(), stream=sys.stderr, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    # A client killed or timed out mid-request makes the simulator's server log a reset: expected here.
    logging.getLogger("aiohttp.server").setLevel(logging.CRITICAL)


if __name__ == "__main__":
    sys.exit(main())
