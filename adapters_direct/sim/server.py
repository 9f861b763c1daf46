"""The aiohttp application and the ways to run it (in-process, background thread, CLI).

One catch-all route feeds :meth:`SimApp.dispatch`, which does what a network and an
exchange gateway would: injected faults and delays, the request log, the per-request
service-time measurement, and then the exchange's own handler. Using one route (instead
of aiohttp's router and middlewares) keeps the simulator's own latency small.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import threading
import time
from decimal import Decimal
from typing import Any, Mapping

from aiohttp import web

from .binance import BinanceExchange
from .config import (
    FeeConfig,
    LimitConfig,
    MarketParams,
    SimConfig,
    coerce_binance_keys,
    coerce_upbit_keys,
    merge_balances,
)
from .control import Control
from .faults import Fault
from .state import SimState
from .upbit import UpbitExchange
from .wire import Ctx, Reply, dumps

__all__ = ["SIM_APP_KEY", "BackgroundSim", "SimApp", "SimServer", "create_app", "run_in_background"]

_ERROR_KINDS = frozenset(("http_500", "unknown_503", "garbage", "rate_limit_429", "reject"))
_LOGGED_HEADERS = ("Content-Type", "X-MBX-APIKEY", "Origin", "User-Agent")
_BODY_LOG_LIMIT = 4096


SIM_APP_KEY: web.AppKey[Any] = web.AppKey("kimp_sim_app")  # app[SIM_APP_KEY] is the SimApp


class _Dropped(Exception):
    """Internal: the connection was closed on purpose without a response."""


class SimApp:
    """State + both exchanges + the control API behind one aiohttp handler."""

    def __init__(self, config: SimConfig) -> None:
        self.config = config
        self.state = SimState(config)
        self.upbit = UpbitExchange(self.state)
        self.binance = BinanceExchange(self.state)
        self.control = Control(self)
        self.url = ""
        self._ticker: asyncio.Task[None] | None = None

    def build(self) -> web.Application:
        app = web.Application(client_max_size=1 << 20)
        app.router.add_route("*", "/{tail:.*}", self.dispatch)
        app.on_startup.append(self._start_ticker)
        app.on_cleanup.append(self._stop_ticker)
        app[SIM_APP_KEY] = self
        return app

    async def _start_ticker(self, app: web.Application) -> None:
        self._ticker = asyncio.create_task(self._tick_forever())

    async def _stop_ticker(self, app: web.Application) -> None:
        if self._ticker is not None:
            self._ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._ticker

    async def _tick_forever(self) -> None:
        # Funding, resting orders and liquidation also happen when nobody is asking.
        while True:
            await asyncio.sleep(self.config.tick_s)
            self.state.tick()

    # ------------------------------------------------------------------ dispatch
    async def dispatch(self, request: web.Request) -> web.StreamResponse:
        t0 = time.perf_counter_ns()
        path = request.path
        if path.startswith("/_sim/"):
            return await self.control.handle(request)
        if path.startswith("/v1/"):
            exchange, handler = "upbit", self.upbit
        elif path.startswith(("/fapi/", "/sapi/")):
            exchange, handler = "binance", self.binance
        else:
            return web.Response(status=404, text="not found")
        st = self.state
        st.tick()
        method = request.method
        body = await request.read() if request.body_exists else b""
        raw_query = request.raw_path.partition("?")[2]
        headers = request.headers
        st.request_seq += 1
        log: dict[str, Any] = {
            "seq": st.request_seq,
            "ts_ms": st.clock.wall_ms(),
            "exchange": exchange,
            "method": method,
            "path": path,
            "query": raw_query,
            "body": body[:_BODY_LOG_LIMIT].decode("utf-8", "replace"),
            "headers": self._log_headers(headers),
            "status": None,
            "fault": None,
        }
        st.requests.append(log)
        fault = st.faults.take(exchange, method, path)
        slept_ns = 0
        reply: Reply | None = None
        try:
            if fault is not None:
                log["fault"] = fault.kind
                kind = fault.kind
                if kind in ("down", "drop_before"):
                    self._drop(request, log)
                if kind == "delay" and fault.params.get("phase", "before") == "before":
                    slept_ns += await self._sleep(fault.params["ms"])
                if kind == "ban_418":
                    reply = self._ban(exchange, request, fault)
                elif kind in _ERROR_KINDS and not fault.executed:
                    reply = self._fault_reply(exchange, fault, None, self._upbit_group(handler, method, path))
            if reply is None:
                ctx = Ctx(method, path, raw_query, request.query, body, headers, request.remote or "", fault, log)
                reply = handler.handle(ctx)
                if fault is not None:
                    if fault.kind in _ERROR_KINDS:  # executed=true: it happened, the answer is lost
                        reply = self._fault_reply(exchange, fault, reply, self._upbit_group(handler, method, path))
                    elif fault.kind == "drop_after":
                        self._drop(request, log)
                    elif fault.kind == "delay" and fault.params.get("phase") == "after":
                        slept_ns += await self._sleep(fault.params["ms"])
            delay = st.upbit_delay_ms if exchange == "upbit" else st.binance_delay_ms
            if delay > 0:
                slept_ns += await self._sleep(delay)
            log["status"] = reply.status
            resp = web.Response(status=reply.status, body=reply.body, headers=reply.headers)
            await resp.prepare(request)
            await resp.write_eof()
        except _Dropped:
            raise asyncio.CancelledError() from None  # aiohttp then writes nothing
        service = time.perf_counter_ns() - t0 - slept_ns
        st.service_ns.append((method + " " + path, service))
        log["service_us"] = service // 1000
        return resp

    @staticmethod
    def _log_headers(headers: Mapping[str, str]) -> dict[str, str]:
        out = {k: headers[k] for k in _LOGGED_HEADERS if k in headers}
        auth = headers.get("Authorization")
        if auth is not None:
            out["Authorization"] = auth.partition(" ")[0]  # the scheme only, never the token
        return out

    @staticmethod
    async def _sleep(ms: float) -> int:
        t = time.perf_counter_ns()
        await asyncio.sleep(ms / 1000.0)
        return time.perf_counter_ns() - t

    @staticmethod
    def _drop(request: web.Request, log: dict[str, Any]) -> None:
        """Close the connection without writing a response: the client sees a disconnect."""
        log["status"] = "dropped"
        transport = request.transport
        if transport is not None:
            transport.abort()
        raise _Dropped()

    def _ban(self, exchange: str, request: web.Request, fault: Fault) -> Reply:
        seconds = float(fault.params.get("seconds", 60))
        ip = request.remote or ""
        if exchange == "upbit":
            self.state.upbit_limiter.ban("ip:" + ip, seconds)
            self.state.upbit_limiter.ban("key:" + self.config.upbit_keys.access_key, seconds)
            body = {"error": {"name": "too_many_requests",
                              "message": f"Blocked for {int(seconds)} seconds: too many requests."}}
            headers = {"Remaining-Req": "group=default; min=1800; sec=0"}
        else:
            self.state.binance_limiter.ban(ip, seconds)
            until = self.state.binance_limiter.banned_until_ms(ip)
            body = {"code": -1003, "msg": f"Way too many requests; IP({ip}) banned until {until}. Please use "
                                          "WebSocket Streams for live updates to avoid bans."}
            headers = {"X-MBX-USED-WEIGHT-1M": "0"}
        headers["Retry-After"] = str(max(1, int(seconds + 0.999)))
        headers["Content-Type"] = "application/json"
        return Reply(418, dumps(body), headers)

    @staticmethod
    def _upbit_group(handler: Any, method: str, path: str) -> str:
        """The Upbit rate-limit group of a route (``default`` for anything unknown)."""
        route = getattr(handler, "routes", {}).get((method, path))
        return route[1] if route is not None else "default"

    @staticmethod
    def _fault_reply(exchange: str, fault: Fault, real: Reply | None, upbit_group: str = "default") -> Reply:
        p = fault.params
        kind = fault.kind
        up = exchange == "upbit"
        headers = {"Content-Type": "application/json;charset=UTF-8" if up else "application/json"}
        if real is not None and real.headers:
            for k in ("Remaining-Req", "X-MBX-USED-WEIGHT-1M"):
                if k in real.headers:
                    headers[k] = real.headers[k]
        if kind == "http_500":
            body = ({"error": {"name": "server_error", "message": "Internal Server Error"}} if up
                    else {"code": -1000, "msg": "An unknown error occured while processing the request."})
            return Reply(500, dumps(body), headers)
        if kind == "unknown_503":
            body = ({"error": {"name": "server_error", "message": "Unknown error, please try again later."}} if up
                    else {"code": -1000, "msg": "Unknown error, please check your request or try again later."})
            return Reply(503, dumps(body), headers)
        if kind == "rate_limit_429":
            headers["Retry-After"] = str(p.get("seconds", 1))
            if up:
                # the real Upbit names the group it limited (the request's own)
                headers.setdefault("Remaining-Req", f"group={upbit_group}; min=1800; sec=0")
                body = {"error": {"name": "too_many_requests", "message": "Too many API requests."}}
            else:
                body = {"code": -1003, "msg": "Too many requests; current limit of IP request weight per minute is "
                                              "2400. Please use WebSocket Streams for live updates to avoid polling "
                                              "the API."}
            return Reply(429, dumps(body), headers)
        if kind == "reject":
            status = int(p.get("status", 400))
            if up:
                body = {"error": {"name": p.get("name", "validation_error"),
                                  "message": p.get("message", "Rejected (injected fault).")}}
            else:
                body = {"code": int(p.get("code", -2010)), "msg": p.get("msg", "Rejected (injected fault).")}
            return Reply(status, dumps(body), headers)
        # garbage: a 200 whose body is not the JSON it claims to be
        if real is not None and real.body:
            return Reply(200, real.body[: max(1, len(real.body) // 2)], headers)
        return Reply(200, b"<html><head><title>502 Bad Gateway</title></head><body>", headers)


def create_app(config: SimConfig | None = None, **kwargs: Any) -> web.Application:
    """An aiohttp application serving both exchanges (``app[SIM_APP_KEY]`` is the :class:`SimApp`)."""
    return SimApp(config or build_config(**kwargs)).build()


def build_config(
    *,
    seed: int = 0,
    upbit_keys: Any = None,
    binance_keys: Any = None,
    time_scale: float = 1.0,
    balances: Mapping[str, Mapping[str, Any]] | None = None,
    market: MarketParams | Mapping[str, Any] | None = None,
    fees: FeeConfig | Mapping[str, Any] | None = None,
    limits: LimitConfig | Mapping[str, Any] | None = None,
    upbit_delay_ms: float = 0.0,
    binance_delay_ms: float = 0.0,
    upbit_answer_pending: bool = False,
    upbit_identifiers_path: str | None = None,
    binance_leverage: int = 20,
    recv_window_ms: int = 5000,
    tick_s: float = 0.05,
) -> SimConfig:
    """A :class:`SimConfig` from keyword arguments (dicts accepted for the nested parts)."""
    if isinstance(market, MarketParams):
        market_params = market
    else:
        market_params = MarketParams()
        if market:
            market_params.update(market)
    if isinstance(fees, FeeConfig):
        fee_cfg = fees
    else:
        fee_cfg = FeeConfig(**{k: Decimal(str(v)) for k, v in (fees or {}).items()})
    if isinstance(limits, LimitConfig):
        limit_cfg = limits
    else:
        limit_cfg = dataclasses.replace(LimitConfig(), **dict(limits or {}))
    return SimConfig(
        seed=seed,
        upbit_keys=coerce_upbit_keys(upbit_keys),
        binance_keys=coerce_binance_keys(binance_keys),
        balances=merge_balances(balances),
        market=market_params,
        fees=fee_cfg,
        limits=limit_cfg,
        time_scale=time_scale,
        upbit_delay_ms=upbit_delay_ms,
        binance_delay_ms=binance_delay_ms,
        upbit_answer_pending=bool(upbit_answer_pending),
        upbit_identifiers_path=upbit_identifiers_path,
        binance_leverage=binance_leverage,
        recv_window_ms=recv_window_ms,
        tick_s=tick_s,
    )


class SimServer:
    """The simulator as an async context manager on a real TCP port.

    Examples
    --------
    >>> async with SimServer(seed=1, port=0) as sim:          # doctest: +SKIP
    ...     sim.url, sim.upbit_keys.access_key, sim.binance_keys.api_key
    ...     sim.state.ledger()
    """

    def __init__(self, *, host: str = "127.0.0.1", port: int = 0, config: SimConfig | None = None,
                 **kwargs: Any) -> None:
        self.host = host
        self.port = port
        self.sim = SimApp(config or build_config(**kwargs))
        self._runner: web.AppRunner | None = None

    # convenient views
    @property
    def state(self) -> SimState:
        return self.sim.state

    @property
    def config(self) -> SimConfig:
        return self.sim.config

    @property
    def upbit_keys(self):  # noqa: ANN201 - UpbitKeys
        return self.sim.config.upbit_keys

    @property
    def binance_keys(self):  # noqa: ANN201 - BinanceKeys
        return self.sim.config.binance_keys

    @property
    def url(self) -> str:
        return self.sim.url

    def ledger(self) -> dict[str, Any]:
        return self.sim.state.ledger()

    def startup_info(self) -> dict[str, Any]:
        """What ``kimp-fast sim`` prints on start."""
        return {"url": self.url, "upbit": self.upbit_keys.as_dict(), "binance": self.binance_keys.as_dict()}

    async def start(self) -> SimServer:
        app = self.sim.build()
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port, reuse_address=True)
        await site.start()
        server = site._server  # noqa: SLF001 - the only way to learn the port picked for port=0
        assert server is not None
        self.port = server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.sim.url = f"http://{self.host}:{self.port}"
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> SimServer:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()


class BackgroundSim:
    """A :class:`SimServer` running on its own event loop in a daemon thread, for
    synchronous callers. ``call(fn)`` runs ``fn(state)`` on the simulator's loop."""

    def __init__(self, **kwargs: Any) -> None:
        self._kwargs = kwargs
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: SimServer | None = None
        self._stopped: asyncio.Event | None = None

    def start(self, timeout: float = 10.0) -> BackgroundSim:
        ready = threading.Event()
        errors: list[BaseException] = []

        def run() -> None:
            try:
                import uvloop

                loop = uvloop.new_event_loop()
            except ImportError:  # pragma: no cover
                loop = asyncio.new_event_loop()
            self._loop = loop
            asyncio.set_event_loop(loop)

            async def main() -> None:
                self._stopped = asyncio.Event()
                try:
                    self._server = await SimServer(**self._kwargs).start()
                except BaseException as e:  # noqa: BLE001 - reported to the starting thread
                    errors.append(e)
                    ready.set()
                    return
                ready.set()
                await self._stopped.wait()
                await self._server.stop()

            loop.run_until_complete(main())
            loop.close()

        self._thread = threading.Thread(target=run, name="kimp-sim", daemon=True)
        self._thread.start()
        if not ready.wait(timeout):
            raise TimeoutError("simulator did not start")
        if errors:
            raise errors[0]
        return self

    @property
    def server(self) -> SimServer:
        assert self._server is not None, "not started"
        return self._server

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def upbit_keys(self):  # noqa: ANN201
        return self.server.upbit_keys

    @property
    def binance_keys(self):  # noqa: ANN201
        return self.server.binance_keys

    @property
    def state(self) -> SimState:
        """Direct access; prefer :meth:`call` or :meth:`ledger` from other threads."""
        return self.server.state

    def call(self, fn: Any, timeout: float = 10.0) -> Any:
        """Run ``fn(state)`` on the simulator's loop and return its result."""
        assert self._loop is not None

        async def run() -> Any:
            return fn(self.server.state)

        return asyncio.run_coroutine_threadsafe(run(), self._loop).result(timeout)

    def ledger(self) -> dict[str, Any]:
        return self.call(lambda st: st.ledger())

    def stop(self, timeout: float = 10.0) -> None:
        if self._loop is not None and self._stopped is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._stopped.set)
            self._thread.join(timeout)
            self._loop = None

    def __enter__(self) -> BackgroundSim:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def run_in_background(**kwargs: Any) -> BackgroundSim:
    """Start a simulator in a background thread (``stop()`` it, or use it as ``with``)."""
    return BackgroundSim(**kwargs).start()
