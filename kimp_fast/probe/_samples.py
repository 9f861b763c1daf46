"""One signal's stage durations, and their percentiles over many signals.

A *sample* is a dict of durations in microseconds for one submitted signal: the engine's
own ``timings_us`` stages plus, when the legs were traced, the probe's per-leg marks
turned into stages (see :mod:`kimp_fast.probe._recorder` and ``DEFINITIONS`` in
:mod:`kimp_fast.probe._orchestrate`).
"""

from __future__ import annotations

from typing import Any

from ._stats import summary

__all__ = ["LEGS", "concurrency_row", "leg_stages", "sample", "summarize"]

LEGS = ("upbit", "binance")


def _us(ns: int) -> float:
    return ns / 1000.0


def leg_stages(m: dict[str, Any]) -> dict[str, float]:
    return {
        "build_sign": _us(m["req_start"] - m["adapter_in"]),
        "write": _us(m["wire"] - m["req_start"]),
        "first_byte": _us(m["resp_end"] - m["wire"]),
        "parse": _us(m["adapter_out"] - m["resp_end"]),
        "place_order": _us(m["adapter_out"] - m["adapter_in"]),
    }


def sample(t0: int, t1: int, report: Any, marks: dict[str, dict[str, Any]] | None) -> dict[str, Any]:
    """Stage durations (µs) of one signal from the engine's timings and the leg marks."""
    tm = dict(report.timings_us)
    s: dict[str, Any] = {"total": _us(t1 - t0)}
    for k in ("validate", "dedupe", "size", "build", "send", "resolve", "journal"):
        if k in tm:
            s[k] = float(tm[k])
    if marks is None:
        return s
    legs = {ex: leg_stages(m) for ex, m in marks.items()}
    slow = max(LEGS, key=lambda ex: legs[ex]["first_byte"])
    s["legs"] = legs
    s["requests"] = {ex: marks[ex]["requests"] for ex in LEGS}
    s["slowest_leg"] = slow
    s["signal_to_wire"] = _us(max(m["wire"] for m in marks.values()) - t0)
    s["network"] = legs[slow]["first_byte"]
    s["overhead"] = s["total"] - s["network"]
    s["pre_legs"] = _us(min(m["adapter_in"] for m in marks.values()) - t0)
    s["post_legs"] = _us(t1 - max(m["adapter_out"] for m in marks.values()))
    s["build_sign"] = max(legs[ex]["build_sign"] for ex in LEGS)
    s["write"] = max(legs[ex]["write"] for ex in LEGS)
    # Concurrent legs: both requests were written before the first answer arrived.
    s["legs_overlap"] = max(m["wire"] for m in marks.values()) < min(m["resp_end"] for m in marks.values())
    s["legs_to_wire"] = _us(max(m["wire"] for m in marks.values()) - min(m["adapter_in"] for m in marks.values()))
    s["first_byte"] = legs[slow]["first_byte"]
    s["parse"] = legs[slow]["parse"]
    return s


_STAGE_KEYS = ("validate", "dedupe", "size", "build", "pre_legs", "build_sign", "write", "legs_to_wire", "signal_to_wire",
               "first_byte", "parse", "post_legs", "journal", "send", "resolve", "network", "overhead", "total")


def summarize(samples: list[dict[str, Any]]) -> dict[str, Any]:
    """Percentiles of every stage over the samples of one action."""
    if not samples:
        return {"n": 0}
    out: dict[str, Any] = {"n": len(samples)}
    out["signal_to_wire_us"] = summary(s["signal_to_wire"] for s in samples if "signal_to_wire" in s)
    out["overhead_us"] = summary(s["overhead"] for s in samples if "overhead" in s)
    out["network_us"] = summary(s["network"] for s in samples if "network" in s)
    out["total_us"] = summary(s["total"] for s in samples)
    out["legs_to_wire_us"] = summary(s["legs_to_wire"] for s in samples if "legs_to_wire" in s)
    out["stages_us"] = {
        k: summary(s[k] for s in samples if k in s) for k in _STAGE_KEYS if any(k in s for s in samples)
    }
    if any("legs" in s for s in samples):
        out["legs"] = {
            ex: {k: summary(s["legs"][ex][k] for s in samples if "legs" in s)
                 for k in ("build_sign", "write", "first_byte", "parse", "place_order")}
            for ex in LEGS
        }
        counts: dict[str, dict[str, int]] = {ex: {} for ex in LEGS}
        for s in samples:
            for ex in LEGS:
                for r in s.get("requests", {}).get(ex, []):
                    counts[ex][r] = counts[ex].get(r, 0) + 1
        out["requests_per_order"] = {
            ex: {r: round(c / len(samples), 3) for r, c in sorted(v.items())} for ex, v in counts.items()
        }
        slow = {ex: sum(1 for s in samples if s.get("slowest_leg") == ex) for ex in LEGS}
        out["slowest_leg_count"] = slow
    return out




def concurrency_row(d1: float, d2: float, enters: list[dict[str, Any]]) -> dict[str, Any]:
    """ENTER total against max(d1, d2) and d1 + d2 for one delay pair."""
    tot = summary(s["total"] for s in enters)
    net = summary(s["network"] for s in enters if "network" in s)
    over = summary(s["overhead"] for s in enters if "overhead" in s)

    def ms(d: dict[str, Any], key: str) -> float | None:
        return round(d[key] / 1000, 3) if d.get("n") else None

    legs = {ex: summary(s["legs"][ex]["first_byte"] for s in enters if "legs" in s) for ex in LEGS}
    slowest, both = max(d1, d2), d1 + d2
    bound = 1.15 * slowest + 1.0
    p50 = ms(tot, "p50")
    net_p50 = ms(net, "p50")
    # The same bound on what the network really took (the simulator's timers and its own
    # service time add to the nominal delay): isolates concurrency from simulator precision.
    measured_bound = None if net_p50 is None else round(1.15 * net_p50 + 1.0, 3)
    leg_sum = None
    if all(legs[ex].get("n") for ex in LEGS):
        leg_sum = round(sum(legs[ex]["p50"] for ex in LEGS) / 1000, 3)
    return {
        "d1_ms": d1, "d2_ms": d2, "n": tot.get("n", 0),
        "total_ms_p50": p50, "total_ms_p90": ms(tot, "p90"), "total_ms_max": ms(tot, "max"),
        "network_ms_p50": net_p50, "overhead_ms_p50": ms(over, "p50"),
        "leg_network_ms_p50": {ex: ms(legs[ex], "p50") for ex in LEGS},
        "max_d_ms": slowest, "sum_d_ms": both, "bound_ms": round(bound, 3),
        "within_bound": p50 is not None and p50 <= bound,
        "measured_bound_ms": measured_bound,
        "within_measured_bound": p50 is not None and measured_bound is not None and p50 <= measured_bound,
        "sum_of_leg_networks_ms_p50": leg_sum,
        "legs_overlapped_share": (round(sum(1 for s in enters if s.get("legs_overlap")) / len(enters), 3)
                                  if enters else None),
        "total_below_sum_of_legs": p50 is not None and leg_sum is not None and p50 < leg_sum,
    }
