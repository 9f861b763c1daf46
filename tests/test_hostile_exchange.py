"""The hostile exchange, end to end (issue 19, "Done when").

The real engine trades through a real proxy (``tests.fixtures.hostile``) in front of the
simulator: every order reaches the simulator byte for byte and really executes there, but
the answer the engine reads is, one signal after the other, a negative fill, ``NaN``,
``1e999999999``, a fill larger than the order, a gzip bomb, an oversized body, or a body
trickled slower than the client timeout — on Binance's and on Upbit's order answers, for
ENTERs and EXITs. Upbit's orders go over the aiohttp session, Binance's over the order
lane (``wire``): both transports meet the hostile answers. The journal lives on a real
8 MiB tmpfs (root only; skipped with the reason elsewhere) that runs full mid-run while an
order is in flight.

The judge is the simulator's ledger, never the engine's report:

* after every signal (and ``check_risk()``), what the exchanges hold — Upbit's BTC balance
  and Binance's signed position — is what the engine's journal position says it holds
  (``qty``, ``spot_residual``, ``naked_spot``) to within one lot, or the engine has flagged
  it: halted (entries or all) with a CRITICAL notification;
* once the journal could not be written, no order reaches the simulator.
"""

from __future__ import annotations

import asyncio
import functools
import os
import sqlite3
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import pytest
from aiohttp import web

from kimp_fast.journal import Journal
from kimp_fast.models import Signal
from kimp_fast.notify import LoggingNotifier
from tests.fixtures.fs import fill
from tests.fixtures.hostile import HostileProxy

D = Decimal
LOT = D("0.001")  # Binance BTCUSDT step: the engine's own tolerance (check_risk flags >= one lot)
QTY = "0.01"
MiB = 1024 * 1024
TIMEOUT_S = 1.0  # both adapters' client timeout: the slow drip outlasts it
BN_ORDER = ("POST", "/fapi/v1/order")
UP_ORDER = ("POST", "/v1/orders")


# ============================================================================ a proxy that also drips
@dataclass
class _Drip:
    method: str
    path: str
    interval_s: float
    count: int


class DrippingProxy(HostileProxy):
    """:class:`HostileProxy` plus ``arm_drip``: the real answer, its headers at once and
    its body a few bytes at a time, so that the whole body takes longer than the client
    waits. The shared fixture has no such rule; it is added here, not there."""

    def __init__(self, upstream: str) -> None:
        super().__init__(upstream)
        self.drips: list[_Drip] = []
        self.dripped: list[float] = []  # seconds each drip went on before the client left

    def arm_drip(self, method: str, path: str, *, interval_s: float = 0.1, count: int = 1) -> None:
        self.drips.append(_Drip(method, path, interval_s, count))

    def disarm(self) -> None:
        super().disarm()
        self.drips.clear()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        drip = next((d for d in self.drips if (d.method, d.path) == (request.method, request.path) and d.count),
                    None)
        if drip is None:
            return await super()._handle(request)
        drip.count -= 1
        body = await request.read()
        headers = {k: v for k, v in request.headers.items() if k.lower() not in ("host", "content-length")}
        assert self._session is not None
        async with self._session.request(request.method, self.upstream + request.path_qs,
                                         data=body or None, headers=headers) as r:
            data = await r.read()  # the order has executed at the simulator now
            status, ctype = r.status, r.headers.get("Content-Type", "application/json")
        self.hits.append((request.method, request.path))
        resp = web.StreamResponse(status=status, headers={"Content-Type": ctype, "Content-Length": str(len(data))})
        await resp.prepare(request)
        loop = asyncio.get_running_loop()
        started = loop.time()
        step = max(1, len(data) // 100)  # ~100 pieces: ~10 s at 0.1 s each, far beyond the timeout
        try:
            for i in range(0, len(data), step):
                await resp.write(data[i : i + step])
                await asyncio.sleep(drip.interval_s)
                if request.transport is None or request.transport.is_closing():
                    break  # the client gave up (its timeout): stop dripping
                if loop.time() - started > 4 * TIMEOUT_S:
                    break  # a client that never times out: the test sees it below
        except (ConnectionError, RuntimeError):
            pass
        self.dripped.append(loop.time() - started)
        if request.transport is not None:
            request.transport.close()
        return resp


@pytest.fixture
async def proxy(sim: Any):
    p = DrippingProxy(sim.url)
    await p.start()
    try:
        yield p
    finally:
        await p.stop()


# ============================================================================ hostile answers
@functools.lru_cache(maxsize=None)
def gzip_bomb(inflated: int = 16 * MiB) -> bytes:
    """~16 KB of gzip that inflates to 16 MiB (the cap after decompression is 4 MiB)."""
    c = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    block = b"\0" * MiB
    return b"".join(c.compress(block) for _ in range(inflated // MiB)) + c.flush()


def bomb() -> tuple[int, dict[str, str], bytes]:
    return 200, {"Content-Type": "application/json", "Content-Encoding": "gzip"}, gzip_bomb()


def oversized() -> tuple[int, dict[str, str], bytes]:
    return 200, {"Content-Type": "application/json"}, b'{"pad":"' + b"x" * (5 * MiB) + b'"}'


def setter(field: str, value: str) -> Callable[[Any], Any]:
    def edit(obj: Any) -> Any:
        obj[field] = value
        return obj

    return edit


def overfill(field: str, ordered: str) -> Callable[[Any], Any]:
    """Filled 100 times what was ordered."""

    def edit(obj: Any) -> Any:
        obj[field] = str(D(obj[ordered]) * 100)
        return obj

    return edit


# (name, exchange, arm(proxy)) — each rewrites the first order answer of one signal
def _field(exchange: str) -> tuple[str, str]:
    return ("executedQty", "origQty") if exchange == "binance" else ("executed_volume", "volume")


def _route(exchange: str) -> tuple[str, str]:
    return BN_ORDER if exchange == "binance" else UP_ORDER


def arm(p: DrippingProxy, kind: str, exchange: str) -> None:
    method, path = _route(exchange)
    filled, ordered = _field(exchange)
    if kind == "negative":
        p.arm(method, path, edit=setter(filled, "-5"))
    elif kind == "nan":
        p.arm(method, path, edit=setter(filled, "NaN"))
    elif kind == "1e999999999":
        p.arm(method, path, edit=setter(filled, "1e999999999"))
    elif kind == "huge":
        p.arm(method, path, edit=overfill(filled, ordered))
    elif kind == "gzip-bomb":
        p.arm(method, path, raw=bomb)
    elif kind == "oversized":
        p.arm(method, path, raw=oversized)
    elif kind == "slow-drip":
        p.arm_drip(method, path)
    else:  # pragma: no cover
        raise AssertionError(kind)


# One ENTER and one EXIT per kind; the ENTER's and the EXIT's answers come from opposite
# exchanges, and which exchange goes first alternates: every kind is tried on both.
PLAN = [
    ("negative", "binance", "upbit"),
    ("nan", "upbit", "binance"),
    ("1e999999999", "binance", "upbit"),
    ("huge", "upbit", "binance"),
    ("gzip-bomb", "binance", "upbit"),
    ("oversized", "upbit", "binance"),
    ("slow-drip", "binance", "upbit"),
]


# ============================================================================ the judge
def sig(i: str, action: str = "ENTER", qty: str | None = QTY) -> Signal:
    return Signal(id=i, action=action, coin="BTC", qty=None if qty is None else D(qty),
                  ts_ms=int(time.time() * 1000), ttl_ms=10_000)


async def holdings(control) -> tuple[D, D, int]:
    """(Upbit BTC incl. locked, Binance signed BTCUSDT position, orders ever accepted)."""
    led = await control.ledger()
    bal = led["balances"]["upbit"].get("BTC", {"balance": "0", "locked": "0"})
    spot = D(bal["balance"]) + D(bal.get("locked", "0"))
    perp = D(led["positions"]["binance"].get("BTCUSDT", {"qty": "0"})["qty"])
    return spot, perp, int(led["orders_total"])


def journal_holds(pos: Any) -> tuple[D, D]:
    """(spot, signed perp) a journal position says the exchanges hold (engine._held)."""
    if pos is None:
        return D(0), D(0)
    residual, naked = D(pos.spot_residual), D(pos.naked_spot)
    spot = D(pos.qty) + max(residual, D(0)) + naked
    short = D(pos.qty) - min(residual, D(0))
    return spot, -short


def flagged(halted: bool, scope: str, notifier: LoggingNotifier) -> bool:
    """Halted (entries or everything) and a CRITICAL alert went out."""
    return halted and scope in ("entries", "all") and any(n["severity"] == "critical" for n in notifier.sent)


async def assert_no_unflagged_exposure(engine, control, notifier: LoggingNotifier, where: str,
                                       journal: Journal | None = None) -> bool:
    """The invariant, judged against the running engine's journal (or, after it closed,
    ``journal`` reopened from disk). Returns True when the exchanges match the journal;
    False when they do not but the engine flagged it."""
    if journal is None:
        pos = engine.positions().get("BTC")
        halted, scope = engine.halted, engine.status()["halt_scope"]
    else:
        pos = journal.positions().get("BTC")
        halted, _, _ = journal.halt_state()
        scope = ("entries" if journal.halt_entries_only else "all") if halted else ""
    spot, perp, _ = await holdings(control)
    j_spot, j_perp = journal_holds(pos)
    net_off = abs((spot + perp) - (j_spot + j_perp))
    legs_off = max(abs(spot - j_spot), abs(perp - j_perp))
    if net_off < LOT and legs_off < LOT:
        return True
    assert flagged(halted, scope, notifier), (
        f"{where}: the exchanges hold spot {spot} / perp {perp} (net {spot + perp}), the journal "
        f"{j_spot} / {j_perp} (net {j_spot + j_perp}), and the engine has not flagged it: "
        f"halted={halted} scope={scope!r} "
        f"critical={[n['title'] for n in notifier.sent if n['severity'] == 'critical']}")
    return False


# ============================================================================ the run
async def test_hostile_exchange_and_a_journal_that_runs_full(engine_factory, control, proxy, small_tmpfs):
    """Seven hostile answers × {ENTER, EXIT} × {Binance, Upbit}, then the disk fills while
    an order's answer is dripping; the ledger is checked after every step.

    Why this can fail (the code cannot be reverted here, so the reasoning is written down):

    * had the engine believed ``executedQty: "-5"`` (the incident), it would have retried the
      short — each retry really fills — and unwound Upbit: the ledger would show more than
      two orders for the signal, a status other than ``filled``, a short the journal does
      not hold (check_risk would then halt entries: ``not engine.halted`` below fails);
    * had it believed the fill 100× the order, the journal would hold qty 1 against 0.01 at
      the exchanges: the per-signal position check and the invariant fail;
    * had ``NaN``/``1e999999999``/a bomb/a huge body escaped as a bare error, the signal
      would end ``manual_required`` with a full halt (``status == "filled"`` fails, and the
      next ENTER is refused); had a bomb or a huge body been read in full, the run would
      swell to gigabytes or crawl past the timeout;
    * had a slow drip been waited out, the ENTER would take ~10 s (the ``elapsed`` bound);
    * had an order left after the failed journal write, ``orders_total`` grows.
    """
    path = small_tmpfs / "j.sqlite"
    notifier = LoggingNotifier()
    engine = engine_factory(
        notifier=notifier,
        journal={"path": str(path)},
        upbit={"base_url": proxy.url, "timeout_s": TIMEOUT_S, "order_lane": "aiohttp"},
        binance={"base_url": proxy.url, "timeout_s": TIMEOUT_S, "order_lane": "wire"},
    )
    loop = asyncio.get_running_loop()
    async with engine:
        _, _, orders = await holdings(control)
        assert orders == 0
        for n, (kind, enter_on, exit_on) in enumerate(PLAN, 1):
            for action, exchange in (("ENTER", enter_on), ("EXIT", exit_on)):
                where = f"{action} #{n} with a {kind} answer from {exchange}"
                await control.market(premium=0.01 if action == "ENTER" else 0.03, volatility=0.0)
                hits = len(proxy.hits)
                arm(proxy, kind, exchange)
                started = loop.time()
                rep = await engine.submit(sig(f"hx-{n}-{action.lower()}", action,
                                              QTY if action == "ENTER" else None))
                elapsed = loop.time() - started
                proxy.disarm()
                assert proxy.hits[hits:] == [_route(exchange)], f"{where}: the armed answer was not read"
                # the hostile answer was looked up, not believed: one pair sent, nothing retried
                assert rep.status == "filled", f"{where}: {rep.status} — {rep.reason}"
                spot, perp, total = await holdings(control)
                assert total == orders + 2, f"{where}: {total - orders} orders reached the simulator"
                orders = total
                assert elapsed < 4 * TIMEOUT_S, f"{where}: took {elapsed:.1f}s"
                await engine.check_risk()
                assert not engine.halted, f"{where}: halted: {engine.halt_reason}"
                pos = engine.positions().get("BTC")
                if action == "ENTER":
                    assert pos is not None and D(pos.qty) == D(QTY), f"{where}: journal holds {pos}"
                    assert (spot, perp) == (D(QTY), -D(QTY)), f"{where}: the exchanges hold {spot} / {perp}"
                else:
                    assert pos is None, f"{where}: journal still holds {pos}"
                    assert (spot, perp) == (0, 0), f"{where}: the exchanges hold {spot} / {perp}"
                assert await assert_no_unflagged_exposure(engine, control, notifier, where)
        assert proxy.dripped and all(t < 4 * TIMEOUT_S for t in proxy.dripped), proxy.dripped
        assert not [n for n in notifier.sent if n["severity"] == "critical"]

        # ---- the journal becomes unwritable while an order's answer is dripping -------
        await control.market(premium=0.01, volatility=0.0)
        reader = sqlite3.connect(path, isolation_level=None)
        reader.execute("BEGIN")
        reader.execute("SELECT COUNT(*) FROM orders").fetchone()  # holds the WAL: commits must grow it
        filler = None
        try:
            proxy.arm_drip(*BN_ORDER)
            arm(proxy, "negative", "upbit")
            before = orders
            in_flight = asyncio.create_task(engine.submit(sig("hx-full-enter")))
            for _ in range(200):  # until Binance's answer has started to drip
                if BN_ORDER in proxy.hits[-2:] and UP_ORDER in proxy.hits[-2:]:
                    break
                await asyncio.sleep(0.01)
            else:
                raise AssertionError(f"the in-flight pair never reached the proxy: {proxy.hits[-2:]}")
            filler = fill(small_tmpfs)
            rep = await in_flight
            for _ in range(5):  # let the write-behind flush run
                await asyncio.sleep(0.01)
            proxy.disarm()
            assert engine.journal.write_error, "the full disk did not fail a SQLite write"
            # in flight when the disk filled: resolved and recorded (the redo file), not repeated
            assert rep.status == "filled", f"in-flight ENTER: {rep.status} — {rep.reason}"
            _, _, orders = await holdings(control)
            assert orders == before + 2, f"{orders - before} orders for the in-flight ENTER"
            pos = engine.positions().get("BTC")
            assert pos is not None and D(pos.qty) == D(QTY)
            await engine.check_risk()
            assert await assert_no_unflagged_exposure(engine, control, notifier, "in-flight ENTER, disk full")

            # nothing more is traded, whatever is asked and whatever the exchange answers
            assert engine.halted and engine.status()["journal_error"]
            assert "journal write failed" in engine.halt_reason
            assert any(n["severity"] == "critical" and "journal write failed" in n["title"] for n in notifier.sent)
            failed_at, proxied = orders, len(proxy.hits)
            for i, (action, exchange) in enumerate((("EXIT", "binance"), ("ENTER", "upbit"), ("EXIT", "upbit"),
                                                    ("ENTER", "binance"))):
                await control.market(premium=0.01 if action == "ENTER" else 0.03, volatility=0.0)
                arm(proxy, ("negative", "huge", "slow-drip", "gzip-bomb")[i], exchange)
                rep = await engine.submit(sig(f"hx-after-{i}", action, QTY if action == "ENTER" else None))
                proxy.disarm()
                assert rep.status == "refused" and "journal write failed" in rep.reason, (action, rep.status,
                                                                                          rep.reason)
                await engine.check_risk()
                _, _, orders = await holdings(control)
                assert orders == failed_at, f"{action} after the journal failed: {orders - failed_at} orders sent"
                assert len(proxy.hits) == proxied, f"{action} after the journal failed: an order reached the proxy"
                await assert_no_unflagged_exposure(engine, control, notifier, f"{action} after the journal failed")
            assert engine.halted and engine.status()["journal_error"]
        finally:
            if filler is not None:
                os.unlink(filler)
            reader.execute("ROLLBACK")
            reader.close()
        engine.journal.flush()  # space again: the redo file's writes reach SQLite
        assert engine.journal.write_error == ""
        assert engine.halted  # only an operator resumes
        assert await assert_no_unflagged_exposure(engine, control, notifier, "end, engine view")

    # ---- the end, from the ledger and the journal on disk --------------------------------
    _, _, total = await holdings(control)
    assert total == failed_at
    with Journal(path) as j:
        durable = j.positions().get("BTC")
        journaled = {o.client_id for o in j.all_orders() if o.state == "filled"}
        assert durable is not None and D(durable.qty) == D(QTY), durable
        assert j.halt_state()[0]
        assert await assert_no_unflagged_exposure(engine, control, notifier, "end, journal on disk", journal=j)
    ledger = {o["client_id"] for o in await control.orders()}
    assert len(ledger) == total and ledger <= journaled  # every order executed is journaled, filled
