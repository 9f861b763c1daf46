"""The live view of ``kimp-fast paper`` (rich): premium, positions, last orders, breaker
states, latency. Shown only on a terminal; it reads the running engine's state and
journal a few times a second and never touches the order path."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import Any

from rich import box
from rich.console import Console, Group
from rich.live import Live
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from .session import PaperRun

__all__ = ["LiveView"]

_SPARK = "▁▂▃▄▅▆▇█"


def _spark(values: list[float], width: int = 60) -> str:
    vals = values[-width:]
    if not vals:
        return ""
    lo, hi = min(vals), max(vals)
    span = hi - lo or 1.0
    return "".join(_SPARK[min(len(_SPARK) - 1, int((v - lo) / span * (len(_SPARK) - 1)))] for v in vals)


def _pct(x: Decimal | float | None) -> str:
    return "-" if x is None else f"{float(x):+.3%}"


def _status_style(status: str) -> str:
    return {"filled": "green", "recovered": "yellow", "unwound": "yellow", "refused": "cyan",
            "rejected": "magenta", "manual_required": "bold red"}.get(status, "")


def render(snap: dict[str, Any]) -> Group:
    parts: list[Any] = []
    title = Text()
    title.append("kimp-fast paper ", style="bold")
    title.append(f"{snap['phase']}  {snap['elapsed']:5.1f}/{snap['limit_s']:g} s  signals {snap['signals']}"
                 + (f"/{snap['max_signals']}" if snap["max_signals"] else ""))
    totals = [r.report.timings_us["total"] for r in snap["all_records"] if "total" in r.report.timings_us]
    if totals:
        totals.sort()
        title.append(f"  latency total p50 {totals[len(totals) // 2]:,.0f} µs, max {totals[-1]:,.0f} µs", style="dim")
    if snap["halted"]:
        title.append(f"  HALTED: {snap['halt_reason']}", style="bold red")
    parts.append(title)

    q = snap["quote"]
    strat = snap["strategy"]
    prem = Table(box=None, show_header=False, pad_edge=False)
    prem.add_column(style="dim")
    prem.add_column()
    if q is not None:
        prem.add_row("premium (mid)", _pct(q.mid_premium))
        prem.add_row("enter at (ask/bid)", Text(_pct(q.enter_premium),
                                                style="green" if q.enter_premium < strat.enter_below else ""))
        prem.add_row("exit at (bid/ask)", Text(_pct(q.exit_premium),
                                               style="green" if q.exit_premium > strat.exit_above else ""))
        prem.add_row("USDT/KRW", f"{q.fx:,.2f}")
    prem.add_row("demo thresholds", f"ENTER < {_pct(strat.enter_below)}, EXIT > {_pct(strat.exit_above)}")
    prem.add_row("last 12 s", _spark(snap["premium_history"]))
    parts.append(Panel(prem, title="premium", title_align="left", box=box.ROUNDED))

    row = Table.grid(expand=True, padding=(0, 1))
    row.add_column(ratio=1)
    row.add_column(ratio=1)
    pos = Table(box=box.SIMPLE, title="positions", title_justify="left")
    for c in ("coin", "qty", "entry premium", "residual"):
        pos.add_column(c)
    for coin, p in snap["positions"].items():
        ek = p.get("entry_kimp")
        pos.add_row(coin, str(p["qty"]), _pct(Decimal(ek)) if ek is not None else "-", str(p.get("spot_residual", "0")))
    brk = Table(box=box.SIMPLE, title="circuit breakers", title_justify="left")
    for c in ("exchange", "state", "failures"):
        brk.add_column(c)
    for name, b in snap["breakers"].items():
        st = b["state"]
        brk.add_row(name, Text(st, style="green" if st == "closed" else "bold red"),
                    f"{b['consecutive_failures']}/{b['failure_threshold']}")
    row.add_row(pos, brk)
    parts.append(row)

    orders = Table(box=box.SIMPLE, title="last orders", title_justify="left")
    for c in ("client id", "exch", "purpose", "side", "qty", "filled", "state"):
        orders.add_column(c, overflow="fold")
    for o in snap["orders"]:
        orders.add_row(o.client_id, o.exchange, o.purpose, o.side, str(o.qty or o.quote_amount or ""),
                       str(o.filled_qty), o.state)
    parts.append(orders)

    sig = Table(box=box.SIMPLE, title="last signals", title_justify="left")
    for c in ("at", "signal", "status", "fault", "total µs", "send µs"):
        sig.add_column(c, overflow="fold")
    for r in snap["records"]:
        t = r.report.timings_us
        sig.add_row(f"{r.at_s:.1f}s", r.report.signal_id, Text(r.report.status, style=_status_style(r.report.status)),
                    Text(r.fault.name if r.fault else ""), f"{t.get('total', 0):,.0f}", f"{t.get('send', 0):,.0f}")
    parts.append(sig)
    return Group(*parts)


class LiveView:
    """Redraws :func:`render` of a :class:`PaperRun` about four times a second."""

    def __init__(self, console: Console, refresh_s: float = 0.25) -> None:
        self.console = console
        self.refresh_s = refresh_s
        self._task: asyncio.Task[None] | None = None
        self._live: Live | None = None

    def attach(self, run: PaperRun) -> None:
        self._live = Live(render(run.snapshot()), console=self.console, auto_refresh=False, transient=True)
        self._live.start()
        self._task = asyncio.ensure_future(self._loop(run))

    async def _loop(self, run: PaperRun) -> None:
        assert self._live is not None
        while True:
            try:
                self._live.update(render(run.snapshot()), refresh=True)
            except Exception as exc:  # a view bug must never stop trading
                self._live.console.log(f"live view error: {exc!r}")
            await asyncio.sleep(self.refresh_s)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None
        if self._live is not None:
            self._live.stop()
            self._live = None
