"""Latency probe: per-stage timings of orders through the real engine (SPEC §2.3, §6).

Against the simulator (default) it runs N ENTER/EXIT round trips per variant — compiled
vs pure build, DIRECT vs CCXT adapters, uvloop vs asyncio, each variant in its own
process — with an injected per-exchange delay, and reports validate / size / build+sign /
write to socket / first byte / parse / journal / total, *signal → both orders written*
and *engine overhead = total − slowest leg's network time*, plus a concurrency check
over several delay pairs. ``--live`` measures both legs against the real exchanges'
order-**test** endpoints only (see :mod:`kimp_fast.probe._live`).

Entry points: ``kimp-fast probe``, ``python -m kimp_fast.probe``, ``bench/latency_probe.py``;
from Python, :func:`run_probe` returns the report as a dict. docs/PERFORMANCE.md explains
every number.
"""

from __future__ import annotations

from ._cli import HELP, add_arguments, main, print_summary, run
from ._engine_run import DEFAULT_VARIANTS, HEADLINE, VARIANTS, RunSpec, Variant, run_variant
from ._live import LIVE_TEST_PATHS, LiveRefused, check_keys, run_live
from ._orchestrate import machine_info, run_probe

__all__ = [
    "DEFAULT_VARIANTS",
    "HEADLINE",
    "HELP",
    "LIVE_TEST_PATHS",
    "VARIANTS",
    "LiveRefused",
    "RunSpec",
    "Variant",
    "add_arguments",
    "check_keys",
    "machine_info",
    "main",
    "print_summary",
    "run",
    "run_live",
    "run_probe",
    "run_variant",
]
