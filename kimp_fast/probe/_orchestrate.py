"""Run every variant in its own process and merge the results into one report.

Compiled vs pure must be two builds in the same run: ``KIMP_FAST_NO_EXTENSIONS`` is read
once, when ``kimp_fast`` is imported, so each variant gets a fresh interpreter with the
environment it needs. Each worker writes its JSON to a file; this module merges them,
adds the machine description, the side-by-side ratios and the target checks.
"""

from __future__ import annotations

import json
import os
import platform
import ssl
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from ._engine_run import HEADLINE, VARIANTS, RunSpec
from ._samples import concurrency_row, summarize
from ._simproc import _die_with_parent
from ._stats import ratio

__all__ = ["machine_info", "run_probe", "targets"]

SCHEMA = "kimp-fast/latency-probe/1"

DEFINITIONS = {
    "signal_to_wire": "submit() entry -> both order requests handed to their sockets (later of the two legs)",
    "network": "slowest leg: request written -> response headers parsed (injected delay + simulator + loopback)",
    "overhead": "total - network: everything the engine, adapters and HTTP client add, journaling included",
    "validate/dedupe/size/build/journal/send/resolve": "the engine's own ExecutionReport.timings_us stages",
    "pre_legs": "submit() entry -> first adapter place_order call",
    "legs_to_wire": "first place_order call -> both order requests written (adapters + HTTP client, both legs)",
    "build_sign": "per leg: place_order entry -> aiohttp request start (checks, encode, throttle, sign)",
    "write": "per leg: aiohttp request start -> body handed to the transport (pool, headers, writer task)",
    "first_byte": "per leg: written -> response headers parsed",
    "parse": "per leg: response headers -> place_order returns (body read, decode, normalize)",
    "post_legs": "last place_order return -> submit() returns (leg journaling, resolve, settle, journal)",
    "total": "submit() entry -> submit() returns, measured by the probe",
    "calls_to_wire": "one ENTER, first block (DIRECT, traced variants): Python and C function calls from "
                     "submit() entry until both orders are written (sys.setprofile; the probe's marks excluded)",
}


def machine_info() -> dict[str, Any]:
    """CPU, OS, interpreter, library versions and the commit (never secrets)."""
    from kimp_fast.commands.info import collect

    info = collect()
    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        cpu = platform.processor()
    commit = None
    try:
        root = Path(__file__).resolve().parents[2]
        rev = subprocess.run(["git", "-C", str(root), "rev-parse", "--short", "HEAD"], capture_output=True,
                             text=True, timeout=5)
        if rev.returncode == 0:
            commit = rev.stdout.strip()
            dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                                   capture_output=True, text=True, timeout=5)
            if dirty.stdout.strip():
                commit += "+dirty"
    except (OSError, subprocess.SubprocessError):
        pass
    try:
        load = os.getloadavg()
    except OSError:
        load = None
    return {
        "cpu": cpu,
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
        "python": info["python"],
        "implementation": info["implementation"],
        "openssl": ssl.OPENSSL_VERSION,
        "kimp_fast": info["kimp_fast"],
        "dependencies": info["dependencies"],
        "commit": commit,
        "loadavg_at_start": load,
    }


def cpu_wake_penalty(samples: int = 10) -> dict[str, float]:
    """Median time of the same small piece of hot-path work (encode + sign one Upbit
    order, ~5 µs compiled) warm in a loop, and right after the CPU idled 10 ms / 200 ms.

    On virtual machines and power-saving CPUs the first microseconds after an idle period
    run several times slower (cold caches, a vCPU being woken up): every signal that
    arrives after a quiet spell pays this, which no warm-loop microbenchmark shows.
    """
    from decimal import Decimal
    from statistics import median

    from kimp_fast.orders import encode_upbit_order
    from kimp_fast.signing import UpbitSigner

    signer = UpbitSigner("probe-access-key-000000000000000000000000", "probe-secret-key-00000000000000000000000")
    price, vol, step, tick = Decimal("140000000"), Decimal("0.01"), Decimal("0.00000001"), Decimal("1000")

    def work() -> int:
        t = time.perf_counter_ns()
        _body, h = encode_upbit_order("KRW-BTC", "bid", "limit", volume=vol, price=price, time_in_force="ioc",
                                      identifier="probe-cold-check", volume_step=step, price_tick=tick)
        signer.authorization(h)
        return time.perf_counter_ns() - t

    for _ in range(200):
        work()
    out = {"warm_us": round(median(work() for _ in range(1000)) / 1000, 1)}
    for idle in (0.01, 0.2):
        xs = []
        for _ in range(samples):
            time.sleep(idle)
            xs.append(work())
        out[f"after_{int(idle * 1000)}ms_idle_us"] = round(median(xs) / 1000, 1)
    return out


def _worker(spec: RunSpec, env_extra: dict[str, str | None], timeout_s: float) -> dict[str, Any]:
    env = dict(os.environ)
    for k, v in env_extra.items():
        if v is None:
            env.pop(k, None)
        else:
            env[k] = v
    with tempfile.TemporaryDirectory(prefix="kimp-probe-w-") as tmp:
        out = Path(tmp) / "variant.json"
        cmd = [sys.executable, "-m", "kimp_fast.probe", "--worker-spec", json.dumps(asdict(spec)),
               "--worker-out", str(out)]
        try:
            proc = subprocess.run(cmd, env=env, timeout=timeout_s, stdout=subprocess.PIPE, stderr=None, text=True,
                                  preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None)
        except subprocess.TimeoutExpired:
            return {"available": False, "reason": f"worker timed out after {timeout_s:.0f}s"}
        if proc.returncode != 0 or not out.exists():
            tail = (proc.stdout or "").strip().splitlines()[-5:]
            return {"available": False, "reason": f"worker exited with {proc.returncode}", "output": tail}
        return json.loads(out.read_text())


def _blocks(n: int, blocks: int) -> list[int]:
    k = max(1, min(blocks, n))
    return [n // k + (1 if i < n % k else 0) for i in range(k)]


def run_probe(
    *,
    variants: list[str],
    n: int,
    upbit_delay_ms: float,
    binance_delay_ms: float,
    pairs: list[tuple[float, float]],
    pair_n: int,
    warmup: int,
    interval_s: float,
    qty: str,
    profile: list[str],
    profile_n: int,
    blocks: int = 4,
    market_poll_s: float = 0.0,
    spin: bool = False,
    upbit_answer_pending: bool = False,
    progress: bool = True,
) -> dict[str, Any]:
    """Run the variants, each in its own processes, and return the merged report.

    The ``n`` round trips of a variant are split into ``blocks`` worker runs, and the
    blocks of all variants are interleaved (v1, v2, …, v1, v2, …), so a slow minute on a
    shared machine does not land on one variant only. The concurrency pairs run on the
    headline variant afterwards, then the profiles.
    """
    started = time.time()
    report: dict[str, Any] = {
        "schema": SCHEMA,
        "mode": "simulator",
        "machine": {**machine_info(), "cpu_wake": cpu_wake_penalty()},
        "settings": {
            "round_trips_per_variant": n, "blocks": len(_blocks(n, blocks)), "upbit_delay_ms": upbit_delay_ms,
            "binance_delay_ms": binance_delay_ms, "warmup_round_trips_per_block": warmup, "interval_s": interval_s,
            "qty_btc": qty, "pairs": pairs, "pair_round_trips": pair_n, "market_poll_s": market_poll_s,
            "spin": spin, "upbit_answer_pending": upbit_answer_pending,
        },
        "definitions": DEFINITIONS,
        "variants": {},
        "concurrency": [],
    }
    merged: dict[str, dict[str, Any]] = {name: {"enter": [], "exit": [], "errors": [], "error_count": 0,
                                                "sim_service_p50_us": [], "unavailable": []} for name in variants}

    def job(name: str, rt: int, **extra: Any) -> dict[str, Any]:
        v = VARIANTS[name]
        spec = RunSpec(variant=name, n=rt, upbit_delay_ms=upbit_delay_ms, binance_delay_ms=binance_delay_ms,
                       warmup=warmup, interval_s=interval_s, qty=qty, pair_n=pair_n, market_poll_s=market_poll_s,
                       spin=spin, upbit_answer_pending=upbit_answer_pending, progress=progress, **extra)
        env: dict[str, str | None] = {"KIMP_FAST_NO_EXTENSIONS": "1" if v.build == "pure" else None}
        submits = 2 * (rt + warmup + spec.profile_n + len(spec.pairs) * (pair_n + 1))
        return _worker(spec, env, 120 + submits * (interval_s + 0.5))

    sizes = _blocks(n, blocks)
    for b, rt in enumerate(sizes):
        for name in variants:
            if progress:
                print(f"[probe] {name}: block {b + 1}/{len(sizes)} ({rt} round trips)", file=sys.stderr, flush=True)
            r = job(name, rt, count_calls=b == 0)
            m = merged[name]
            if not r.get("available"):
                m["unavailable"].append(r.get("reason", "unknown"))
                continue
            m["enter"] += r["enter"]
            m["exit"] += r["exit"]
            m["errors"] += r["errors"]
            m["error_count"] += r["error_count"]
            if "calls_to_wire" in r:
                m["calls_to_wire"] = r["calls_to_wire"]
            if r.get("sim_service_us", {}).get("median") is not None:
                m["sim_service_p50_us"].append(round(r["sim_service_us"]["median"], 1))
    for name in variants:
        v, m = VARIANTS[name], merged[name]
        base = {"adapter": v.adapter, "loop": v.loop, "build": v.build, "traced": v.traced, "spin": v.spin,
                "lane": v.lane if v.adapter == "direct" else "ccxt"}
        if not m["enter"]:
            report["variants"][name] = {"available": False, **base,
                                        "reason": "; ".join(dict.fromkeys(m["unavailable"])) or "no sample"}
            continue
        report["variants"][name] = {
            "available": True, **base, **summarize(m["enter"]), "exit": summarize(m["exit"]),
            "sim_service_p50_us_per_block": m["sim_service_p50_us"], "error_count": m["error_count"],
            "errors": m["errors"][:20], "failed_blocks": m["unavailable"],
        }
        if "calls_to_wire" in m:
            report["variants"][name]["calls_to_wire"] = m["calls_to_wire"]
    conc_variant = HEADLINE if HEADLINE in variants else variants[0]
    if pairs:
        if progress:
            print(f"[probe] concurrency pairs on {conc_variant}", file=sys.stderr, flush=True)
        r = job(conc_variant, 0, pairs=list(pairs))
        if r.get("available"):
            report["concurrency"] = [concurrency_row(p["d1_ms"], p["d2_ms"], p["enter"]) for p in r["pairs"]]
            report["concurrency_variant"] = conc_variant
        else:
            report["concurrency_error"] = r.get("reason")
    for name in profile:
        if progress:
            print(f"[probe] profile of {name}", file=sys.stderr, flush=True)
        r = job(name, 0, profile_n=profile_n)
        report.setdefault("profiles", {})[name] = r.get("profile") or {"error": r.get("reason")}
    report["ratios"] = ratios(report["variants"])
    report["targets"] = targets(report)
    report["elapsed_s"] = round(time.time() - started, 1)
    return report


def _m(variants: dict[str, Any], name: str, key: str) -> dict[str, float] | None:
    v = variants.get(name)
    if not v or not v.get("available") or key not in v:
        return None
    return v[key]


def ratios(variants: dict[str, Any]) -> dict[str, Any]:
    """Side-by-side ratios (slower / faster, p50 and p99) from this one run."""
    out: dict[str, Any] = {}
    pairs = {
        "pure_vs_compiled": ("direct_pure_uvloop", HEADLINE),
        "asyncio_vs_uvloop": ("direct_compiled_asyncio", HEADLINE),
        "ccxt_vs_direct": ("ccxt_uvloop", HEADLINE),
        "cold_vs_warm": ("direct_compiled_uvloop_cold", HEADLINE),
    }
    for label, (slow, fast) in pairs.items():
        row = {}
        for key in ("signal_to_wire_us", "legs_to_wire_us", "overhead_us", "total_us"):
            row[key] = {q: ratio(_m(variants, slow, key), _m(variants, fast, key), q) for q in ("p50", "p99")}
        out[label] = row
    traced, untraced = _m(variants, HEADLINE, "total_us"), _m(variants, "direct_compiled_uvloop_untraced", "total_us")
    if traced and untraced:
        out["instrumentation_cost_us_p50"] = round(traced["p50"] - untraced["p50"], 1)
    out["idle_vs_spin"] = {
        key: {q: ratio(_m(variants, HEADLINE, key), _m(variants, "direct_compiled_uvloop_spin", key), q)
              for q in ("p50", "p99")}
        for key in ("signal_to_wire_us", "legs_to_wire_us", "overhead_us")
    }
    return out


def targets(report: dict[str, Any]) -> list[dict[str, Any]]:
    """The issue's targets against this run (reported, never asserted)."""
    v = report["variants"]
    rows: list[dict[str, Any]] = []

    def add(name: str, measured: Any, limit: str, met: bool | None) -> None:
        rows.append({"target": name, "measured": measured, "limit": limit, "met": met})

    stw = _m(v, HEADLINE, "signal_to_wire_us")
    add("signal -> both orders written, p50 (direct, compiled, uvloop)", stw and stw["p50"], "<= 200 us",
        None if not stw else stw["p50"] <= 200)
    add("signal -> both orders written, p99 (direct, compiled, uvloop)", stw and stw["p99"], "<= 500 us",
        None if not stw else stw["p99"] <= 500)
    r = ratio(_m(v, "ccxt_uvloop", "signal_to_wire_us"), stw)
    add("CCXT / DIRECT signal -> both written, p50", r, ">= 3x", None if r is None else r >= 3)
    r2 = ratio(_m(v, "ccxt_uvloop", "legs_to_wire_us"), _m(v, HEADLINE, "legs_to_wire_us"))
    add("CCXT / DIRECT adapters + HTTP client for both legs (legs_to_wire), p50", r2, ">= 3x (same measure, "
        "engine stages excluded)", None if r2 is None else r2 >= 3)
    ov = _m(v, HEADLINE, "overhead_us")
    add("engine overhead p50", ov and ov["p50"], "<= 1000 us", None if not ov else ov["p50"] <= 1000)
    add("engine overhead p99", ov and ov["p99"], "<= 3000 us", None if not ov else ov["p99"] <= 3000)
    conc = report.get("concurrency") or []
    if conc:
        ok = all(c["within_bound"] for c in conc)
        add("ENTER total p50 <= 1.15 x max(d1, d2) + 1 ms, every pair",
            [(c["d1_ms"], c["d2_ms"], c["total_ms_p50"]) for c in conc], "see bound_ms per pair", ok)
        add("ENTER total p50 <= 1.15 x measured slowest-leg network + 1 ms, every pair",
            [(c["d1_ms"], c["d2_ms"], c["total_ms_p50"], c["measured_bound_ms"]) for c in conc],
            "see measured_bound_ms per pair", all(c["within_measured_bound"] for c in conc))
        add("legs concurrent: both written before either answer (every ENTER) and ENTER total below the sum "
            "of the two legs' network times, every pair",
            [(c["d1_ms"], c["d2_ms"], c["total_ms_p50"], c["sum_of_leg_networks_ms_p50"], c["legs_overlapped_share"])
             for c in conc], "overlap share 1.0, total < sum",
            all(c["legs_overlapped_share"] == 1.0 and c["total_below_sum_of_legs"] for c in conc))
    return rows
