"""Bad input, fuzzed (Hypothesis): malformed signals and garbage from the exchanges.

* ``decode_signal`` of arbitrary bytes / JSON: a valid :class:`Signal` or a msgspec error.
* ``engine.submit`` of malformed values (types, NaN/Inf, negative/zero/absurd sizes,
  unknown coins/actions, missing ids, stale/future time stamps, garbage JSON, bytes,
  nested containers): always a ``rejected`` (or ``duplicate``) report, never an exception,
  never an order at the exchange. One engine and one simulator run on a background event
  loop shared by all examples.
* Garbage and truncated bodies from the exchanges: through a mutating proxy in front of
  the simulator, every adapter call ends in a typed result or an ``AdapterError``
  (``OutcomeUnknown`` when an order may have executed); and the engine, with the
  simulator's ``garbage`` fault on its orders, ends every signal hedged with the ledger
  and the journal in agreement.
"""

from __future__ import annotations

import asyncio
import json
import math
import threading
import time
from collections.abc import Awaitable, Callable
from decimal import Decimal, InvalidOperation
from typing import Any

import aiohttp
import msgspec
import pytest
from aiohttp import web
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adapters_direct.errors import AdapterError, OutcomeUnknown
from adapters_direct.factory import ExchangeFactory
from adapters_direct.sim import SimServer
from kimp_fast.config import EngineConfig
from kimp_fast.engine import KimpEngine
from kimp_fast.models import OrderRequest, Signal, decode_signal
from kimp_fast.notify import LoggingNotifier
from kimp_fast.reliability.invariants import InvariantChecker
from kimp_fast._speedups._ratelimit_py import BINANCE_BUCKETS, UPBIT_BUCKETS
from kimp_fast.ratelimit import RateLimiter
from kimp_fast.reliability.setup import fast_sim_limits
from kimp_fast.reliability.simctl import SimControl

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
MAX_ORDER_QTY = Decimal("120")  # BTCUSDT MARKET_LOT_SIZE maxQty in the simulator


# ----------------------------------------------------------------------------- decoding

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
signal_like = st.fixed_dictionaries(
    {},
    optional={
        "id": json_values | st.text(max_size=140),
        "action": json_values | st.sampled_from(["ENTER", "EXIT", "enter", "BUY", ""]),
        "coin": json_values | st.sampled_from(["BTC", "btc", "ETH", "", "B-T"]),
        "ts_ms": json_values | st.integers(min_value=-(2**70), max_value=2**70),
        "qty": json_values | st.sampled_from(["0.01", "NaN", "Infinity", "-1", "0", "1e999999", "sNaN"]),
        "ttl_ms": json_values,
        "kimp": json_values | st.sampled_from(["0.01", "nan", "-inf"]),
    },
)


def _check_signal(s: Signal) -> None:
    assert isinstance(s.id, str) and s.id.strip() and len(s.id) <= 128
    assert s.action in ("ENTER", "EXIT")
    assert s.coin.isalnum() and s.coin == s.coin.upper()
    assert type(s.ts_ms) is int and s.ts_ms > 0 and type(s.ttl_ms) is int and s.ttl_ms > 0
    if s.qty is None:
        assert s.action == "EXIT"
    else:
        assert isinstance(s.qty, Decimal) and s.qty.is_finite() and s.qty > 0
    assert s.kimp is None or (isinstance(s.kimp, Decimal) and s.kimp.is_finite())


@FUZZ
@given(st.binary(max_size=300))
def test_decode_signal_of_arbitrary_bytes_is_a_signal_or_a_msgspec_error(data):
    try:
        s = decode_signal(data)
    except (msgspec.ValidationError, msgspec.DecodeError):
        return
    _check_signal(s)


@FUZZ
@given(signal_like)
def test_decode_signal_of_arbitrary_json_objects_validates_every_field(obj):
    raw = json.dumps(obj).encode()
    try:
        s = decode_signal(raw)
    except (msgspec.ValidationError, msgspec.DecodeError):
        return
    _check_signal(s)


@FUZZ
@given(signal_like, st.integers(min_value=1, max_value=len(b'{"id":"x"}')))
def test_decode_signal_of_truncated_json_never_crashes(obj, cut):
    raw = json.dumps(obj).encode()
    try:
        s = decode_signal(raw[: max(0, len(raw) - cut)])
    except (msgspec.ValidationError, msgspec.DecodeError):
        return
    _check_signal(s)


# ----------------------------------------------------------------------------- submit


class BackgroundEngine:
    """A simulator and a started engine on an event loop in a daemon thread."""

    def __init__(self, tmp_dir: str) -> None:
        self.tmp_dir = tmp_dir
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="fuzz-engine", daemon=True)
        self.sim: SimServer | None = None
        self.engine: KimpEngine | None = None

    def start(self) -> "BackgroundEngine":
        self.thread.start()
        self.call(self._start)
        return self

    async def _start(self) -> None:
        self.sim = await SimServer(seed=3, port=0, market={"volatility": 0.0}).start()
        u, b = self.sim.upbit_keys, self.sim.binance_keys
        cfg = EngineConfig.from_dict({
            "upbit": {"base_url": self.sim.url, "access_key_env": "FZ_UA", "secret_key_env": "FZ_US"},
            "binance": {"base_url": self.sim.url, "api_key_env": "FZ_BK", "secret_key_env": "FZ_BS"},
            "journal": {"path": f"{self.tmp_dir}/fuzz-journal.sqlite"},
            "risk": {"check_interval_s": 3600.0},
        }, source="<fuzz>")
        env = {"FZ_UA": u.access_key, "FZ_US": u.secret_key, "FZ_BK": b.api_key, "FZ_BS": b.secret_key}
        self.engine = KimpEngine(cfg, environ=env, notifier=LoggingNotifier())
        await self.engine.start()

    def call(self, fn: Callable[[], Awaitable[Any]], timeout: float = 30.0) -> Any:
        return asyncio.run_coroutine_threadsafe(fn(), self.loop).result(timeout)

    def orders_at_exchange(self) -> int:
        assert self.sim is not None
        return self.call(self._count)

    async def _count(self) -> int:
        return len(self.sim.state.orders)  # type: ignore[union-attr]

    def stop(self) -> None:
        async def _stop() -> None:
            await self.engine.close()  # type: ignore[union-attr]
            await self.sim.stop()  # type: ignore[union-attr]

        self.call(_stop)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


@pytest.fixture(scope="module")
def bg_engine(tmp_path_factory):
    bg = BackgroundEngine(str(tmp_path_factory.mktemp("fuzz"))).start()
    yield bg
    bg.stop()


def _now() -> int:
    return int(time.time() * 1000)


def _bad_qty_text(s: str) -> bool:
    try:
        d = Decimal(s.strip())
    except (InvalidOperation, ValueError):
        return True
    return not d.is_finite() or d <= 0 or d > MAX_ORDER_QTY


def _bad_ttl(v: Any) -> bool:
    """Not something the decoder could turn into a usable TTL (1..60000 ms)."""
    try:
        f = float(v)
    except (TypeError, ValueError):
        return True
    return not math.isfinite(f) or f != int(f) or not (0 < f <= 60_000)


bad_qty = st.one_of(
    st.sampled_from(["NaN", "nan", "sNaN", "Infinity", "-Infinity", "inf", "-1", "0", "-0", "0E-8", "-0.01",
                     "1e30", "1E+999999", "121", "1000000", "", " ", "0x10", "1,5", "1e", "--1", "½"]),
    st.text(max_size=12).filter(_bad_qty_text),
    st.floats(allow_nan=True, allow_infinity=True).filter(lambda f: not (0 < f <= 120)),
    st.integers().filter(lambda i: not (0 < i <= 120)),
    st.booleans(), st.lists(st.integers(), max_size=2), st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
    st.binary(max_size=4),
)
bad_action = st.one_of(st.text(max_size=8).filter(lambda a: a not in ("ENTER", "EXIT")), st.none(), st.integers(),
                       st.booleans(), st.lists(st.just("ENTER"), max_size=1))
bad_coin = st.one_of(
    st.text(max_size=20).filter(lambda c: c.upper() != "BTC"), st.none(), st.integers(), st.just(["BTC"]),
)
bad_id = st.one_of(st.just(""), st.text(alphabet=" \t\n", min_size=1, max_size=4), st.text(min_size=129, max_size=140),
                   st.none(), st.integers(), st.floats(), st.lists(st.text(max_size=3), max_size=2))


@st.composite
def malformed_payload(draw: st.DrawFn) -> Any:
    """A signal made invalid on purpose: a valid ENTER template with 1–3 fields broken,
    or not a signal at all."""
    kind = draw(st.sampled_from(["fields", "fields", "fields", "raw"]))
    uid = draw(st.uuids()).hex[:16]
    if kind == "raw":
        good = json.dumps({"id": "raw-" + uid, "action": "ENTER", "coin": "BTC", "qty": "0.01", "ts_ms": _now()})
        return draw(st.one_of(
            st.binary(max_size=100).filter(lambda b: b.strip() != b""),
            st.just(good[: draw(st.integers(1, len(good) - 1))]),
            st.just(good[: draw(st.integers(1, len(good) - 1))].encode()),
            st.sampled_from(["null", "[]", "42", '"ENTER"', "{}", '{"id": null}', "[{}]"]),
            st.none(), st.integers(), st.lists(st.integers(), max_size=3), st.just(b""),
        ))
    payload: dict[str, Any] = {"id": "fz-" + uid, "action": "ENTER", "coin": "BTC", "qty": "0.01",
                               "ts_ms": None, "ttl_ms": 10_000}
    broken = draw(st.lists(st.sampled_from(["qty", "action", "coin", "id", "ts_ms", "ttl_ms", "missing"]),
                           min_size=1, max_size=3, unique=True))
    for field in broken:
        if field == "qty":
            payload["qty"] = draw(bad_qty)
        elif field == "action":
            payload["action"] = draw(bad_action)
        elif field == "coin":
            payload["coin"] = draw(bad_coin)
        elif field == "id":
            payload["id"] = draw(bad_id)
        elif field == "ts_ms":
            payload["ts_ms"] = draw(st.one_of(
                st.integers(min_value=60_000, max_value=10**12).map(lambda age: ("stale", age)),
                st.integers(min_value=6_000, max_value=10**12).map(lambda ahead: ("future", ahead)),
                st.integers(max_value=0), st.floats(), st.text(max_size=6), st.booleans(), st.integers(min_value=2**63)))
        elif field == "ttl_ms":
            payload["ttl_ms"] = draw(st.one_of(st.integers(max_value=0), st.integers(min_value=60_001),
                                               st.text(max_size=6).filter(_bad_ttl), st.booleans(),
                                               st.floats().filter(_bad_ttl)))
        else:
            del payload[draw(st.sampled_from(["id", "action", "coin", "ts_ms"]))]
    return payload


def _materialize(payload: Any) -> Any:
    if isinstance(payload, dict) and "ts_ms" in payload:
        p = dict(payload)
        ts = p["ts_ms"]
        if ts is None:
            p["ts_ms"] = _now()
        elif isinstance(ts, tuple):
            p["ts_ms"] = _now() - ts[1] if ts[0] == "stale" else _now() + ts[1]
        return p
    return payload


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(malformed_payload())
def test_submit_of_malformed_signals_rejects_and_sends_nothing(bg_engine, payload):
    before = bg_engine.orders_at_exchange()
    raw = _materialize(payload)

    async def submit() -> Any:
        return await bg_engine.engine.submit(raw)

    rep = bg_engine.call(submit)  # an exception here is the failure
    assert rep.status in ("rejected", "duplicate"), (raw, rep)
    assert rep.reason
    assert bg_engine.orders_at_exchange() == before


@pytest.mark.parametrize("raw", [
    {"id": "x1", "action": "ENTER", "coin": "BTC", "qty": float("nan"), "ts_ms": 1},
    {"id": "x2", "action": "ENTER", "coin": "BTC", "qty": math.inf},
    {"id": "x3", "action": "ENTER", "coin": "BTC", "qty": "1e30"},
    {"id": "x4", "action": "ENTER", "coin": "BTC", "qty": "0.01", "ts_ms": 10**30},
    b"\x00\x01\x02",
    "not json at all",
    Signal(id="x5", action="ENTER", coin="BTC", qty=Decimal("500"), ts_ms=1),  # stale and absurd
])
def test_submit_examples(bg_engine, raw):
    before = bg_engine.orders_at_exchange()

    async def submit() -> Any:
        return await bg_engine.engine.submit(raw)

    rep = bg_engine.call(submit)
    assert rep.status == "rejected" and rep.reason
    assert bg_engine.orders_at_exchange() == before


# ----------------------------------------------------------------------------- exchange garbage


class MutatingProxy:
    """Forwards to the simulator; for the armed (method, path) answers ``status`` with a
    body made from the real one by ``mutate``."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream
        self.target: tuple[str, str] | None = None
        self.mutate: Callable[[bytes], bytes] = lambda b: b
        self.status = 200
        self.hits = 0
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None
        self.url = ""

    async def start(self) -> "MutatingProxy":
        self._session = aiohttp.ClientSession(auto_decompress=False)
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self.handle)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"  # noqa: SLF001
        return self

    async def stop(self) -> None:
        await self._session.close()  # type: ignore[union-attr]
        await self._runner.cleanup()  # type: ignore[union-attr]

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        headers = {k: v for k, v in request.headers.items() if k.lower() not in ("host", "content-length")}
        async with self._session.request(request.method, self.upstream + request.path_qs,  # type: ignore[union-attr]
                                         data=body or None, headers=headers) as r:
            data = await r.read()
            status = r.status
            ctype = r.headers.get("Content-Type", "application/json")
        if self.target == (request.method, request.path):
            self.hits += 1
            return web.Response(status=self.status, body=self.mutate(data), headers={"Content-Type": ctype})
        return web.Response(status=status, body=data, headers={"Content-Type": ctype})


@st.composite
def mutations(draw: st.DrawFn) -> tuple[str, Callable[[bytes], bytes]]:
    kind = draw(st.sampled_from(["truncate", "bytes", "json", "replace_field", "empty"]))
    if kind == "truncate":
        frac = draw(st.floats(0.0, 0.99))
        return kind, lambda b: b[: int(len(b) * frac)]
    if kind == "bytes":
        junk = draw(st.binary(min_size=1, max_size=64))
        return kind, lambda b: junk
    if kind == "json":
        value = draw(json_values)
        return kind, lambda b: json.dumps(value).encode()
    if kind == "empty":
        return kind, lambda b: b""
    value = draw(json_values)
    pick = draw(st.integers(0, 50))

    def replace(b: bytes) -> bytes:
        try:
            doc = json.loads(b)
        except ValueError:
            return b
        target = doc[0] if isinstance(doc, list) and doc else doc
        if isinstance(target, dict) and target:
            keys = sorted(target)
            target[keys[pick % len(keys)]] = value
        return json.dumps(doc).encode()

    return kind, replace


class AdapterWorld:
    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="fuzz-adapters", daemon=True)

    def call(self, fn: Callable[[], Awaitable[Any]], timeout: float = 30.0) -> Any:
        return asyncio.run_coroutine_threadsafe(fn(), self.loop).result(timeout)

    def start(self) -> "AdapterWorld":
        self.thread.start()

        async def _start() -> None:
            self.sim = await SimServer(seed=4, port=0, market={"volatility": 0.0}, limits=fast_sim_limits()).start()
            self.proxy = await MutatingProxy(self.sim.url).start()
            u, b = self.sim.upbit_keys, self.sim.binance_keys
            fast = {"upbit": UPBIT_BUCKETS, "binance": BINANCE_BUCKETS}  # x10: many calls, no waiting
            lim = {ex: RateLimiter(ex, buckets={k: (c * 10, p) for k, (c, p) in b.items()}) for ex, b in fast.items()}
            self.upbit = ExchangeFactory.create("upbit", "direct", api_key=u.access_key, secret_key=u.secret_key,
                                                base_url=self.proxy.url, symbols=("KRW-BTC",), timeout_s=2.0,
                                                keepwarm_s=0, rules_refresh_s=0, final_state_timeout_s=0.3,
                                                rate_limiter=lim["upbit"])
            self.binance = ExchangeFactory.create("binance", "direct", api_key=b.api_key, secret_key=b.secret_key,
                                                  base_url=self.proxy.url, symbols=("BTCUSDT",), timeout_s=2.0,
                                                  keepwarm_s=0, rules_refresh_s=0, rate_limiter=lim["binance"])
            await self.upbit.__aenter__()
            await self.binance.__aenter__()

        self.call(_start)
        return self

    def stop(self) -> None:
        async def _stop() -> None:
            await self.upbit.__aexit__(None, None, None)
            await self.binance.__aexit__(None, None, None)
            await self.proxy.stop()
            await self.sim.stop()

        self.call(_stop)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


@pytest.fixture(scope="module")
def adapters():
    w = AdapterWorld().start()
    yield w
    w.stop()


_n = iter(range(10**9))

# (exchange, method, path, call): what each fuzzed call does; "order" calls may execute.
CALLS: dict[str, tuple[str, str, str]] = {
    "binance_place": ("binance", "POST", "/fapi/v1/order"),
    "binance_get_order": ("binance", "GET", "/fapi/v1/order"),
    "binance_depth": ("binance", "GET", "/fapi/v1/depth"),
    "binance_margin": ("binance", "GET", "/fapi/v3/account"),
    "upbit_place": ("upbit", "POST", "/v1/orders"),
    "upbit_get_order": ("upbit", "GET", "/v1/order"),
    "upbit_book": ("upbit", "GET", "/v1/orderbook"),
    "upbit_balances": ("upbit", "GET", "/v1/accounts"),
}


async def _invoke(w: AdapterWorld, name: str) -> Any:
    n = next(_n)
    if name == "binance_place":
        side = "sell" if n % 2 == 0 else "buy"
        return await w.binance.place_order(OrderRequest(symbol="BTCUSDT", side=side, type="market",
                                                        quantity=Decimal("0.002"), client_id=f"fz-b-{n}"))
    if name == "binance_get_order":
        await w.binance.place_order(OrderRequest(symbol="BTCUSDT", side="sell" if n % 2 == 0 else "buy",
                                                 type="market", quantity=Decimal("0.002"), client_id=f"fz-g-{n}"))
        return await w.binance.get_order("BTCUSDT", f"fz-g-{n}")
    if name == "binance_depth":
        return await w.binance.get_order_book("BTCUSDT", 10)
    if name == "binance_margin":
        return await w.binance.get_available_margin()
    if name == "upbit_place":
        book = await w.upbit.get_order_book("KRW-BTC", 5)
        if n % 2 == 0:
            return await w.upbit.place_order(OrderRequest(
                symbol="KRW-BTC", side="buy", type="limit", quantity=Decimal("0.0002"), price=book.best_ask(),
                time_in_force="ioc", client_id=f"fz-u-{n}"))
        return await w.upbit.place_order(OrderRequest(symbol="KRW-BTC", side="sell", type="market",
                                                      quantity=Decimal("0.0001"), client_id=f"fz-u-{n}"))
    if name == "upbit_get_order":
        book = await w.upbit.get_order_book("KRW-BTC", 5)
        await w.upbit.place_order(OrderRequest(symbol="KRW-BTC", side="buy", type="limit", quantity=Decimal("0.0001"),
                                               price=book.best_ask(), time_in_force="ioc", client_id=f"fz-ug-{n}"))
        return await w.upbit.get_order("KRW-BTC", f"fz-ug-{n}")
    if name == "upbit_book":
        return await w.upbit.get_order_book("KRW-BTC", 5)
    return await w.upbit.get_balances()


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(name=st.sampled_from(sorted(CALLS)), mutation=mutations(),
       status=st.sampled_from([200, 200, 200, 201, 400, 404, 418, 429, 500, 502, 503, 504]))
def test_garbage_from_the_exchange_is_a_typed_error_never_a_crash(adapters, name, mutation, status):
    exchange, method, path = CALLS[name]
    kind, mutate = mutation

    async def run() -> Any:
        adapters.proxy.hits = 0
        adapters.proxy.target = (method, path)
        adapters.proxy.mutate = mutate
        adapters.proxy.status = status
        try:
            return await _invoke(adapters, name)
        except AdapterError as err:
            return err
        finally:
            adapters.proxy.target = None

    out = adapters.call(run)  # any other exception fails the test
    if not adapters.proxy.hits:
        return  # refused before anything was sent (e.g. the local rate limiter): nothing to judge
    if isinstance(out, AdapterError) and name.endswith("_place") and (status == 200 or status >= 500):
        # The order may have executed: only "look it up" is an honest answer.
        assert isinstance(out, OutcomeUnknown), (kind, status, repr(out))
    if kind in ("truncate", "bytes", "empty") and status == 200 and name.endswith("_place"):
        assert isinstance(out, OutcomeUnknown), (kind, repr(out))


@pytest.mark.parametrize("exchange,path", [("upbit", "/v1/orders"), ("binance", "/fapi/v1/order")])
@pytest.mark.parametrize("executed", [True, False])
async def test_garbage_order_responses_end_hedged_with_ledger_and_journal_agreeing(
        engine_factory, control, sim, exchange, path, executed):
    await control.market(premium=0.01, volatility=0.0)
    async with engine_factory() as engine:
        await control.fault(exchange=exchange, method="POST", path=path, kind="garbage", executed=executed, count=1)
        rep = await engine.submit({"id": "g1", "action": "ENTER", "coin": "BTC", "qty": "0.01", "ts_ms": _now()})
        assert rep.status in ("filled", "recovered"), rep.reason
        await control.market(premium=0.03)
        await control.fault(exchange=exchange, method="POST", path=path, kind="garbage", executed=executed, count=1)
        rep = await engine.submit({"id": "g2", "action": "EXIT", "coin": "BTC", "ts_ms": _now()})
        assert rep.status in ("filled", "recovered"), rep.reason
        async with SimControl(sim.url) as sc:
            checker = InvariantChecker(sc, engine.config.journal.path)
            try:
                assert await checker.check("garbage", full=True) == []
            finally:
                checker.close()
        assert engine.positions() == {}
        assert not engine.halted
