"""The control API under ``/_sim/`` (CONTRACT §4; not part of either exchange's API).

=====================  =========================================================
``GET /_sim/ledger``   every accepted order (``?since=N``: from the N-th on),
                       balances, positions (+ income)
``POST /_sim/faults``  add a fault; ``GET`` lists them; ``DELETE`` clears them
``POST /_sim/market``  move the market at once; ``GET`` shows top of book + params
``GET /_sim/requests`` the request log (``limit``, ``exchange``, ``method``, ``path``)
``POST /_sim/reset``   back to the starting balances (``{"market": true}`` also
                       restarts the price process)
``POST /_sim/config``  delays, time scale, fees, limits, Binance symbol rules,
                       ``upbit_answer_pending``
``POST /_sim/clock``   ``{"advance_s": N}`` jumps the simulation clock (funding)
``POST /_sim/balances`` set available balances
``GET /_sim/stats``    server-side latency per request; ``DELETE`` resets it
``GET /_sim/health``   liveness
=====================  =========================================================
"""

from __future__ import annotations

import statistics
from dataclasses import fields
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any

import orjson
from aiohttp import web

from .decimals import plain

if TYPE_CHECKING:  # pragma: no cover
    from .server import SimApp

__all__ = ["Control"]


class ControlError(Exception):
    pass


def _json(obj: Any, status: int = 200) -> web.Response:
    return web.Response(status=status, body=orjson.dumps(obj), content_type="application/json")


def percentile(sorted_values: list[int], q: float) -> float:
    if not sorted_values:
        return 0.0
    idx = min(len(sorted_values) - 1, max(0, int(round(q * (len(sorted_values) - 1)))))
    return float(sorted_values[idx])


def _summary(values: list[int]) -> dict[str, float]:
    values = sorted(values)
    to_us = 1 / 1000.0
    return {
        "median": percentile(values, 0.5) * to_us,
        "p90": percentile(values, 0.9) * to_us,
        "p99": percentile(values, 0.99) * to_us,
        "max": (values[-1] if values else 0) * to_us,
        "mean": (statistics.fmean(values) if values else 0.0) * to_us,
    }


class Control:
    def __init__(self, sim: SimApp) -> None:
        self.sim = sim
        self.routes = {
            ("GET", "/_sim/ledger"): self.ledger,
            ("GET", "/_sim/faults"): self.list_faults,
            ("POST", "/_sim/faults"): self.add_fault,
            ("DELETE", "/_sim/faults"): self.clear_faults,
            ("GET", "/_sim/market"): self.get_market,
            ("POST", "/_sim/market"): self.set_market,
            ("GET", "/_sim/requests"): self.requests,
            ("DELETE", "/_sim/requests"): self.clear_requests,
            ("POST", "/_sim/reset"): self.reset,
            ("GET", "/_sim/config"): self.get_config,
            ("POST", "/_sim/config"): self.set_config,
            ("POST", "/_sim/clock"): self.clock,
            ("GET", "/_sim/clock"): self.get_clock,
            ("POST", "/_sim/balances"): self.set_balances,
            ("GET", "/_sim/stats"): self.stats,
            ("DELETE", "/_sim/stats"): self.clear_stats,
            ("GET", "/_sim/health"): self.health,
        }

    async def handle(self, request: web.Request) -> web.Response:
        handler = self.routes.get((request.method, request.path))
        if handler is None:
            return _json({"error": f"unknown control endpoint {request.method} {request.path}"}, 404)
        body: Any = None
        if request.can_read_body:
            raw = await request.read()
            if raw:
                try:
                    body = orjson.loads(raw)
                except orjson.JSONDecodeError:
                    return _json({"error": "body is not valid JSON"}, 400)
        self.sim.state.tick()
        try:
            return _json(handler(request, body))
        except (ControlError, ValueError, KeyError, TypeError, InvalidOperation) as e:
            return _json({"error": str(e) or type(e).__name__}, 400)

    # ------------------------------------------------------------------ endpoints
    def health(self, request: web.Request, body: Any) -> Any:
        return {"ok": True, "url": self.sim.url}

    def ledger(self, request: web.Request, body: Any) -> Any:
        since = int(request.query.get("since", 0))  # ?since=N: only orders N, N+1, …
        return self.sim.state.ledger(since)

    def list_faults(self, request: web.Request, body: Any) -> Any:
        return {"faults": self.sim.state.faults.active(), "history": list(self.sim.state.faults.history)[-100:]}

    def add_fault(self, request: web.Request, body: Any) -> Any:
        if not isinstance(body, dict):
            raise ControlError("expected a JSON object")
        fault = self.sim.state.faults.add(body)
        return {"fault": fault.as_dict()}

    def clear_faults(self, request: web.Request, body: Any) -> Any:
        self.sim.state.faults.clear()
        return {"faults": []}

    def get_market(self, request: web.Request, body: Any) -> Any:
        m = self.sim.state.market
        params = {f.name: getattr(m.params, f.name) for f in fields(m.params)}
        return {"top": m.top(), "params": params,
                "process": {"binance_mid": m.btc, "usdt_krw": m.fx, "premium": m.prem}}

    def set_market(self, request: web.Request, body: Any) -> Any:
        if not isinstance(body, dict):
            raise ControlError("expected a JSON object")
        top = self.sim.state.market.update(body)
        self.sim.state.tick()
        return top

    def requests(self, request: web.Request, body: Any) -> Any:
        q = request.query
        limit = int(q.get("limit", 100))
        rows = list(self.sim.state.requests)
        for key in ("exchange", "method", "path"):
            if key in q:
                rows = [r for r in rows if r.get(key) == q[key]]
        return {"requests": rows[-limit:] if limit > 0 else []}

    def clear_requests(self, request: web.Request, body: Any) -> Any:
        self.sim.state.requests.clear()
        return {"requests": []}

    def reset(self, request: web.Request, body: Any) -> Any:
        self.sim.state.reset(market=bool((body or {}).get("market", False)))
        return {"ok": True, "top": self.sim.state.market.top()}

    def get_config(self, request: web.Request, body: Any) -> Any:
        st = self.sim.state
        cfg = st.config
        return {
            "seed": cfg.seed,
            "time_scale": st.clock.time_scale,
            "upbit_delay_ms": st.upbit_delay_ms,
            "binance_delay_ms": st.binance_delay_ms,
            "upbit_answer_pending": st.upbit_answer_pending,
            "recv_window_ms": cfg.recv_window_ms,
            "fees": {f.name: plain(getattr(cfg.fees, f.name)) for f in fields(cfg.fees)},
            "limits": {f.name: getattr(cfg.limits, f.name) for f in fields(cfg.limits)},
            "binance_rules": {
                sym: {f.name: (plain(v) if isinstance(v := getattr(r, f.name), Decimal) else v) for f in fields(r)}
                for sym, r in self.sim.binance.rules.items()
            },
        }

    def set_config(self, request: web.Request, body: Any) -> Any:
        if not isinstance(body, dict):
            raise ControlError("expected a JSON object")
        st = self.sim.state
        cfg = st.config
        known = {"upbit_delay_ms", "binance_delay_ms", "time_scale", "fees", "limits", "binance_rules",
                 "recv_window_ms", "upbit_answer_pending"}
        unknown = set(body) - known
        if unknown:
            raise ControlError(f"unknown config key(s): {', '.join(sorted(unknown))}")
        for key in ("upbit_delay_ms", "binance_delay_ms"):
            if key in body:
                v = float(body[key])
                if v < 0:
                    raise ControlError(f"{key} must be >= 0")
                setattr(st, key, v)
        if "upbit_answer_pending" in body:
            flag = body["upbit_answer_pending"]
            if not isinstance(flag, bool):  # bool("false") is True: accept JSON booleans only
                raise ControlError("upbit_answer_pending must be true or false")
            st.upbit_answer_pending = flag
        if "time_scale" in body:
            st.clock.set_time_scale(float(body["time_scale"]))
        if "recv_window_ms" in body:
            cfg.recv_window_ms = int(body["recv_window_ms"])
        if "fees" in body:
            for k, v in body["fees"].items():
                if k not in {f.name for f in fields(cfg.fees)}:
                    raise ControlError(f"unknown fee {k!r}")
                setattr(cfg.fees, k, Decimal(str(v)))
        if "limits" in body:
            for k, v in body["limits"].items():
                if k not in {f.name for f in fields(cfg.limits)}:
                    raise ControlError(f"unknown limit {k!r}")
                cur = getattr(cfg.limits, k)
                setattr(cfg.limits, k, type(cur)(v))
        if "binance_rules" in body:
            for sym, changes in body["binance_rules"].items():
                rules = self.sim.binance.rules[sym]
                for k, v in changes.items():
                    if k not in {f.name for f in fields(rules)}:
                        raise ControlError(f"unknown rule {k!r}")
                    cur = getattr(rules, k)
                    setattr(rules, k, Decimal(str(v)) if isinstance(cur, Decimal) else type(cur)(v))
        return self.get_config(request, None)

    def get_clock(self, request: web.Request, body: Any) -> Any:
        st = self.sim.state
        return {
            "wall_time_ms": st.clock.wall_ms(),
            "sim_time_ms": int(st.clock.sim() * 1000),
            "time_scale": st.clock.time_scale,
            "next_funding_time_sim_ms": int(st.next_funding_sim * 1000),
            "next_funding_time_ms": self.sim.binance.next_funding_ms(),
            "funding_events": st.funding_events,
        }

    def clock(self, request: web.Request, body: Any) -> Any:
        body = body or {}
        st = self.sim.state
        if "time_scale" in body:
            st.clock.set_time_scale(float(body["time_scale"]))
        if "advance_s" in body:
            st.clock.advance(float(body["advance_s"]))
        st.tick()
        return self.get_clock(request, None)

    def set_balances(self, request: web.Request, body: Any) -> Any:
        if not isinstance(body, dict):
            raise ControlError("expected a JSON object")
        st = self.sim.state
        for exchange, currencies in body.items():
            if exchange not in ("upbit", "binance"):
                raise ControlError(f"unknown exchange {exchange!r}")
            for cur, amount in currencies.items():
                if isinstance(amount, float):
                    raise ControlError("amounts must be strings, not floats")
                value = Decimal(str(amount))
                if exchange == "upbit":
                    st.upbit.holding(cur.upper()).balance = value
                else:
                    st.binance.wallet[cur.upper()] = value
        return st.ledger()["balances"]

    def stats(self, request: web.Request, body: Any) -> Any:
        """The simulator's own time per exchange request (request handed over by the HTTP
        parser → response written), injected delays excluded; overall and per route."""
        samples = list(self.sim.state.service_ns)
        by_route: dict[str, list[int]] = {}
        for key, ns in samples:
            by_route.setdefault(key, []).append(ns)
        return {
            "requests": len(samples),
            "service_us": _summary([ns for _, ns in samples]),
            "by_route": {k: {"requests": len(v), **_summary(v)} for k, v in sorted(by_route.items())},
        }

    def clear_stats(self, request: web.Request, body: Any) -> Any:
        self.sim.state.service_ns.clear()
        return {"requests": 0}
