"""Time stamps of one order leg, from the adapter call to the parsed result.

Where each mark comes from (all ``time.perf_counter_ns()``, the clock the engine's own
``timings_us`` use):

==============  ==========================================================================
``adapter_in``  the engine's executor calls ``place_order`` (:class:`TimedAdapter`)
``req_start``   the HTTP client starts the order request: the adapter has validated,
                encoded, throttled and signed it (aiohttp ``TraceConfig.on_request_start``;
                order lane ``WireTrace.request_start``)
``wire``        the request is handed to the socket transport (aiohttp
                ``on_request_chunk_sent`` fires right before ``transport.write`` of the
                coalesced headers + body, ``on_request_headers_sent`` for a body-less one;
                order lane ``request_written``, right after its single ``transport.write``)
``resp_end``    the response is parsed (aiohttp ``on_request_end``: status line and
                headers, the simulator's small bodies arrive in the same segment; order
                lane ``response_end``: the whole body)
``adapter_out`` ``place_order`` returns the normalized ``OrderResult``
==============  ==========================================================================

The order request is recognised by method and path (``POST /v1/orders``,
``POST /fapi/v1/order``); other requests seen while a leg is in flight (Upbit's
follow-up ``GET /v1/order`` polls) are counted, not timed.
"""

from __future__ import annotations

import time
from types import SimpleNamespace
from typing import Any

import aiohttp

__all__ = ["ORDER_PATHS", "LegClock", "TimedAdapter", "WireMarks", "attach_trace", "make_trace_config"]

#: the order-placement request of each exchange (method, path)
ORDER_PATHS = {"upbit": ("POST", "/v1/orders"), "binance": ("POST", "/fapi/v1/order")}

_now = time.perf_counter_ns


class LegClock:
    """The marks of the order leg currently in flight on one exchange."""

    __slots__ = ("exchange", "active", "adapter_in", "req_start", "wire", "resp_end", "adapter_out",
                 "requests", "order_requests", "on_wire")

    def __init__(self, exchange: str) -> None:
        self.exchange = exchange
        self.active = False
        #: called right after ``wire`` is marked on the order lane (the call count's stop)
        self.on_wire: Any = None
        self.reset()

    def reset(self) -> None:
        self.adapter_in = self.req_start = self.wire = self.resp_end = self.adapter_out = 0
        self.requests: list[str] = []
        self.order_requests = 0

    def snapshot(self) -> dict[str, Any]:
        return {
            "adapter_in": self.adapter_in, "req_start": self.req_start, "wire": self.wire,
            "resp_end": self.resp_end, "adapter_out": self.adapter_out,
            "requests": list(self.requests), "order_requests": self.order_requests,
        }


def make_trace_config(clock: LegClock, order_path: tuple[str, str] | None = None) -> aiohttp.TraceConfig:
    """An aiohttp ``TraceConfig`` that writes the marks of ``clock``'s order request
    (``order_path`` = (method, path), default :data:`ORDER_PATHS` of the exchange)."""
    method, path = order_path or ORDER_PATHS[clock.exchange]
    tc = aiohttp.TraceConfig(trace_config_ctx_factory=SimpleNamespace)

    async def on_start(session: Any, ctx: Any, params: Any) -> None:
        ctx.order = False
        if not clock.active:
            return
        clock.requests.append(f"{params.method} {params.url.path}")
        if params.method == method and params.url.path == path and clock.order_requests == 0:
            clock.order_requests = 1
            ctx.order = True
            clock.req_start = _now()

    async def on_headers(session: Any, ctx: Any, params: Any) -> None:
        # Body-less requests are written right after this; with a body, aiohttp buffers
        # the headers and writes them together with the first body chunk.
        if getattr(ctx, "order", False) and not clock.wire:
            ctx.headers_at = _now()

    async def on_chunk(session: Any, ctx: Any, params: Any) -> None:
        if getattr(ctx, "order", False) and not clock.wire:
            clock.wire = _now()

    async def on_end(session: Any, ctx: Any, params: Any) -> None:
        if getattr(ctx, "order", False):
            if not clock.wire:  # no body: the headers were the whole request
                clock.wire = getattr(ctx, "headers_at", 0)
            clock.resp_end = _now()

    tc.on_request_start.append(on_start)
    tc.on_request_headers_sent.append(on_headers)
    tc.on_request_chunk_sent.append(on_chunk)
    tc.on_request_end.append(on_end)
    return tc


class WireMarks:
    """The same marks for requests on the order lane (an ``adapters_direct._wire.WireTrace``)."""

    __slots__ = ("_clock", "_method", "_path", "_mine")

    def __init__(self, clock: LegClock, order_path: tuple[str, str] | None = None) -> None:
        self._clock = clock
        self._method, self._path = order_path or ORDER_PATHS[clock.exchange]
        self._mine = False

    def request_start(self, method: str, path: str) -> None:
        clock = self._clock
        self._mine = False
        if not clock.active:
            return
        clock.requests.append(f"{method} {path}")
        if method == self._method and path == self._path and clock.order_requests == 0:
            clock.order_requests = 1
            self._mine = True
            clock.req_start = _now()

    def request_written(self, method: str, path: str) -> None:
        clock = self._clock
        if self._mine and not clock.wire:
            clock.wire = _now()
            if clock.on_wire is not None:
                clock.on_wire()

    def response_end(self, method: str, path: str, status: int) -> None:
        if self._mine:
            self._clock.resp_end = _now()
            self._mine = False


def attach_trace(session: aiohttp.ClientSession, tc: aiohttp.TraceConfig) -> None:
    """Add ``tc`` to a session someone else created (ccxt's).

    aiohttp takes trace configs only in the ``ClientSession`` constructor and ccxt creates
    its session itself, so this appends to the session's list. Requests started later
    pick it up.
    """
    configs = getattr(session, "_trace_configs", None)
    if not isinstance(configs, list):
        raise RuntimeError("this aiohttp version keeps no trace-config list on the session; cannot trace ccxt")
    tc.freeze()
    configs.append(tc)


class TimedAdapter:
    """Forwards everything to an adapter; marks ``place_order`` entry and return.

    The engine accepts injected adapters (``KimpEngine(cfg, upbit=..., binance=...)``);
    this wrapper adds one coroutine frame (well under a microsecond) to each order.
    """

    def __init__(self, inner: Any, clock: LegClock) -> None:
        self._inner = inner
        self._clock = clock

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._inner, name)
        if callable(value) and not name.startswith("__"):
            # cache bound methods: later look-ups are plain instance-dict hits
            object.__setattr__(self, name, value)
        return value

    async def place_order(self, req: Any, *, reserved: bool = False) -> Any:
        clock = self._clock
        clock.reset()
        clock.active = True
        clock.adapter_in = _now()
        try:
            return await self._inner.place_order(req, reserved=reserved)
        finally:
            clock.adapter_out = _now()
            clock.active = False

    def start_order(self, req: Any, *, reserved: bool = False) -> Any:
        clock = self._clock
        clock.reset()
        clock.active = True
        clock.adapter_in = _now()
        try:
            pending = self._inner.start_order(req, reserved=reserved)
        except BaseException:
            clock.adapter_out = _now()
            clock.active = False
            raise
        return self._finish(pending)

    async def _finish(self, pending: Any) -> Any:
        clock = self._clock
        try:
            return await pending
        finally:
            clock.adapter_out = _now()
            clock.active = False

    async def __aenter__(self) -> "TimedAdapter":
        await self._inner.__aenter__()
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self._inner.__aexit__(*exc)
