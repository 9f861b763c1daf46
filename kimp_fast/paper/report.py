"""The end-of-run summary of paper mode: built from the journal file, the engine's
reports and the simulator's ledger, rendered as rich tables or as one JSON object.

Every count in the summary comes from the journal (signals, orders, fills, positions), so
``kimp-fast paper --json`` agrees with ``kimp-fast status/orders --journal`` on the same file.
Money is reported as decimal strings (KRW unless the key says otherwise).
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from decimal import Decimal
from typing import Any

from rich import box
from rich.console import Console, Group
from rich.table import Table
from rich.text import Text

from ..journal import Journal
from ..models import ExecutionReport

__all__ = ["STAGES", "latency_table", "percentile", "pnl_summary", "render_summary", "summarize_journal"]

ZERO = Decimal(0)
#: pipeline stages of ``ExecutionReport.timings_us``, in pipeline order
STAGES = ("validate", "dedupe", "size", "build", "send", "resolve", "repair", "journal", "total")


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile of a non-empty list (``q`` in [0, 100])."""
    s = sorted(values)
    k = max(0, min(len(s) - 1, math.ceil(q / 100.0 * len(s)) - 1))
    return s[k]


def latency_table(reports: list[ExecutionReport]) -> dict[str, dict[str, float]]:
    """Per-stage percentiles (µs) over the reports that went through that stage."""
    samples: dict[str, list[float]] = defaultdict(list)
    for r in reports:
        for stage, us in r.timings_us.items():
            samples[stage].append(float(us))
    out: dict[str, dict[str, float]] = {}
    for stage in [*STAGES, *sorted(set(samples) - set(STAGES))]:
        v = samples.get(stage)
        if v:
            out[stage] = {"n": len(v), "p50": percentile(v, 50), "p90": percentile(v, 90),
                          "p99": percentile(v, 99), "max": max(v)}
    return out


def _d(x: Decimal | None) -> Decimal:
    return ZERO if x is None else x


def pnl_summary(reports: list[ExecutionReport]) -> dict[str, Any]:
    """Realized P&L in KRW from the engine's reports.

    Realizing reports are completed EXITs (their share of the entry fees, the exit fees and
    the funding received while open) and ENTERs that ended ``unwound``. ``realized`` is net
    of ``fees`` and includes ``funding``. The fees of an ENTER are carried by its position
    (``entry_fees_*``) and realized by the EXIT that closes it; only a fully unwound ENTER
    (nothing left open) realizes its own fees.
    """
    realized = fees = funding = ZERO
    n = 0
    for r in reports:
        if r.realized_pnl_krw is None:
            continue
        n += 1
        realized += r.realized_pnl_krw
        if r.action == "EXIT" or r.qty == 0:
            fees += _d(r.fees_krw)
        funding += _d(r.funding_krw)
    q = Decimal("0.01")
    realized, fees, funding = realized.quantize(q), fees.quantize(q), funding.quantize(q)
    return {
        "realized": str(realized),
        "fees": str(fees),
        "funding": str(funding),
        # from the rounded parts, so the identity holds exactly in the printed numbers
        "before_fees_and_funding": str(realized + fees - funding),
        "closing_reports": n,
    }


def summarize_journal(journal: Journal) -> dict[str, Any]:
    """Counts straight from the journal file (what the CLI views show too)."""
    signals = journal.signals(last=1_000_000)
    by_action: dict[str, Counter[str]] = defaultdict(Counter)
    for s in signals:
        by_action[s["action"]][s["status"]] += 1
    orders = journal.all_orders()
    fills = journal.fills()
    fill_stats: dict[str, dict[str, Any]] = {}
    for f in fills:
        st = fill_stats.setdefault(f["exchange"], {"count": 0, "buy_qty": ZERO, "sell_qty": ZERO, "fees": {}})
        st["count"] += 1
        st[f"{f['side']}_qty"] += Decimal(f["qty"])
        st["fees"][f["fee_asset"]] = st["fees"].get(f["fee_asset"], ZERO) + Decimal(f["fee"])
    for st in fill_stats.values():
        st["buy_qty"], st["sell_qty"] = str(st["buy_qty"]), str(st["sell_qty"])
        st["fees"] = {k: str(v) for k, v in st["fees"].items()}
    positions = {
        coin: {"qty": str(p.qty), "entry_spot_price": str(p.entry_spot_price),
               "entry_perp_price": str(p.entry_perp_price), "entry_kimp": None if p.entry_kimp is None else str(p.entry_kimp),
               "spot_residual": str(p.spot_residual), "signal_id": p.signal_id}
        for coin, p in journal.positions().items()
    }
    halted, reason, _ = journal.halt_state()
    return {
        "signals": {
            "total": len(signals),
            "by_status": dict(sorted(journal.signal_counts().items())),
            "by_action": {a: dict(sorted(c.items())) for a, c in sorted(by_action.items())},
        },
        "orders": {
            "total": len(orders),
            "by_exchange": dict(sorted(Counter(o.exchange for o in orders).items())),
            "by_state": dict(sorted(Counter(o.state for o in orders).items())),
            "by_purpose": dict(sorted(Counter(o.purpose for o in orders).items())),
        },
        "fills": {"count": len(fills), "by_exchange": dict(sorted(fill_stats.items()))},
        "positions": positions,
        "recovery_steps": len(journal.recovery_steps()),
        "breaker_events": len(journal.breaker_events()),
        "halted": halted,
        "halt_reason": reason if halted else "",
    }


# --------------------------------------------------------------------------- rendering

def _fmt_krw(s: str) -> str:
    d = Decimal(s)
    return f"{d:+,.0f}"


def _status_style(status: str) -> str:
    return {"filled": "green", "recovered": "yellow", "unwound": "yellow", "refused": "cyan",
            "rejected": "magenta", "duplicate": "dim", "manual_required": "bold red"}.get(status, "")


def render_summary(summary: dict[str, Any], console: Console) -> None:
    """The human end report (tables on ``console``)."""
    out: list[Any] = []
    head = Text()
    head.append("kimp-fast paper", style="bold")
    head.append(f" — seed {summary['seed']}, {summary['elapsed_s']:.1f} s, "
                f"{summary['funding_events']} funding event(s) at time scale {summary['time_scale']:g}x"
                + (", faults injected" if summary["faults"] else ""))
    out.append(head)
    out.append(Text(f"strategy: {summary['strategy']['label']} — ENTER below "
                    f"{float(summary['strategy']['enter_below']):.3%}, EXIT above "
                    f"{float(summary['strategy']['exit_above']):.3%}, qty {summary['strategy']['qty']}",
                    style="dim"))

    sig = Table(title="signals", box=box.SIMPLE_HEAVY, title_justify="left")
    sig.add_column("action")
    statuses = sorted(summary["signals"]["by_status"])
    for st in statuses:
        sig.add_column(st, justify="right", style=_status_style(st))
    for action, counts in summary["signals"]["by_action"].items():
        sig.add_row(action, *[str(counts.get(st, 0)) for st in statuses])
    out.append(sig)

    fills = Table(title="fills", box=box.SIMPLE_HEAVY, title_justify="left")
    for col in ("exchange", "fills", "bought", "sold", "fees"):
        fills.add_column(col, justify="right" if col != "exchange" else "left")
    for ex, st in summary["fills"]["by_exchange"].items():
        fees = ", ".join(f"{v} {k}" for k, v in st["fees"].items())
        fills.add_row(ex, str(st["count"]), st["buy_qty"], st["sell_qty"], fees)
    out.append(fills)

    if summary["incidents"]:
        inc = Table(title="one-leg incidents and injected faults", box=box.SIMPLE_HEAVY, title_justify="left")
        for col in ("signal", "fault", "outcome", "how it ended"):
            inc.add_column(col, overflow="fold")
        for i in summary["incidents"]:
            # Text, not markup: exchange errors contain [brackets]
            inc.add_row(i["signal_id"], Text(i["fault"] or "-"), Text(i["status"], style=_status_style(i["status"])),
                        Text(i["reason"] or "-"))
        out.append(inc)

    pnl = summary["pnl_krw"]
    p = Table(title="realized P&L (KRW)", box=box.SIMPLE_HEAVY, title_justify="left")
    p.add_column("")
    p.add_column("KRW", justify="right")
    p.add_row("before fees and funding", _fmt_krw(pnl["before_fees_and_funding"]))
    p.add_row("fees (both legs, entry + exit)", _fmt_krw(str(-Decimal(pnl["fees"]))))
    p.add_row("funding received", _fmt_krw(pnl["funding"]))
    p.add_row(Text("realized, net", style="bold"), Text(_fmt_krw(pnl["realized"]), style="bold"))
    acct = summary.get("account")
    if acct:
        p.add_row(Text("cross-check: account value change (ledger, at mark)", style="dim"),
                  Text(_fmt_krw(acct["value_change_krw"]), style="dim"))
    out.append(p)
    if summary["positions"]:
        out.append(Text("open at the end (hedged, kept): " + ", ".join(
            f"{c} {v['qty']}" for c, v in summary["positions"].items()), style="dim"))

    lat = Table(title="latency per stage (µs, engine side; the simulator is local)", box=box.SIMPLE_HEAVY,
                title_justify="left")
    for col in ("stage", "n", "p50", "p90", "p99", "max"):
        lat.add_column(col, justify="right" if col != "stage" else "left")
    for stage, v in summary["latency_us"].items():
        lat.add_row(stage, str(v["n"]), f"{v['p50']:,.0f}", f"{v['p90']:,.0f}", f"{v['p99']:,.0f}", f"{v['max']:,.0f}")
    out.append(lat)

    inv = Table(title="invariants", box=box.SIMPLE_HEAVY, title_justify="left")
    inv.add_column("check")
    inv.add_column("")
    inv.add_column("detail", overflow="fold")
    for c in summary["invariants"]:
        inv.add_row(c["name"], Text("ok" if c["ok"] else "FAILED", style="green" if c["ok"] else "bold red"),
                    Text(c["detail"]))
    out.append(inv)
    verdict = Text("all invariants held" if summary["ok"] else "INVARIANT VIOLATED",
                   style="bold green" if summary["ok"] else "bold red")
    out.append(verdict)
    out.append(Text(f"journal: {summary['journal']}" + ("" if summary["journal_kept"] else " (temporary, deleted)"),
                    style="dim"))
    console.print(Group(*out))
