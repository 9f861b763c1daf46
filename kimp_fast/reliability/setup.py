"""Engine configuration for harness runs: test-friendly timings, set through the config
(never by patching code), and the environment that carries the simulator's keys."""

from __future__ import annotations

from typing import Any

__all__ = ["ENV", "HarnessTimings", "config_sections", "harness_environ"]

#: names of the environment variables the harness config points at
ENV = {
    "upbit_access": "KIMP_HARNESS_UPBIT_ACCESS",
    "upbit_secret": "KIMP_HARNESS_UPBIT_SECRET",
    "binance_key": "KIMP_HARNESS_BINANCE_KEY",
    "binance_secret": "KIMP_HARNESS_BINANCE_SECRET",
    "webhook": "KIMP_HARNESS_WEBHOOK_URL",
}


#: the longest an injected gateway delay outlasts the client's timeout (seconds)
LATE_DELAY_MAX_S = 0.7


class HarnessTimings:
    """Short timings so thousands of faulted signals fit in minutes.

    ``client_timeout_s`` is the adapters' request timeout; ``retry_delays`` the one-leg
    repair waits; ``lookup_delays``/``resolve_timeout_s`` the engine's look-up budget
    (``KimpEngine`` keyword arguments)."""

    def __init__(self, *, client_timeout_s: float = 1.0, retry_delays: tuple[float, ...] = (0.02, 0.05, 0.1),
                 lookup_delays: tuple[float, ...] = (0.02, 0.05, 0.1, 0.2), resolve_timeout_s: float = 4.0,
                 breaker_recovery_s: float = 0.5, market_max_age_s: float = 0.5,
                 in_flight_grace_s: float | None = None) -> None:
        self.client_timeout_s = client_timeout_s
        self.retry_delays = tuple(retry_delays)
        self.lookup_delays = tuple(lookup_delays)
        self.resolve_timeout_s = resolve_timeout_s
        self.breaker_recovery_s = breaker_recovery_s
        self.market_max_age_s = market_max_age_s
        # must exceed the longest injected gateway delay (FaultPlanner: client timeout + at
        # most LATE_DELAY_MAX_S): until then "not found" is no proof
        self.in_flight_grace_s = (client_timeout_s + LATE_DELAY_MAX_S + 0.5 if in_flight_grace_s is None
                                  else in_flight_grace_s)

    def engine_kwargs(self) -> dict[str, Any]:
        return {"lookup_delays": self.lookup_delays, "resolve_timeout_s": self.resolve_timeout_s,
                "market_max_age_s": self.market_max_age_s, "in_flight_grace_s": self.in_flight_grace_s}

    def as_dict(self) -> dict[str, Any]:
        return dict(vars(self))


def config_sections(url: str, journal_path: str, timings: HarnessTimings, *, webhook: bool = True,
                    synchronous: str = "NORMAL", **overrides: dict[str, Any]) -> dict[str, Any]:
    """``EngineConfig.from_dict`` input for an engine on the simulator at ``url``."""
    t = timings
    sections: dict[str, Any] = {
        "upbit": {"base_url": url, "access_key_env": ENV["upbit_access"], "secret_key_env": ENV["upbit_secret"],
                  "timeout_s": t.client_timeout_s, "order_rate_per_sec": 50.0},
        "binance": {"base_url": url, "api_key_env": ENV["binance_key"], "secret_key_env": ENV["binance_secret"],
                    "timeout_s": t.client_timeout_s},
        "journal": {"path": journal_path, "synchronous": synchronous},
        "one_leg": {"retry_delays": list(t.retry_delays)},
        "circuit": {"failure_threshold": 5, "recovery_timeout": t.breaker_recovery_s},
        "risk": {"check_interval_s": 3600.0},
        "notify": {"min_interval_s": 0.0, "timeout_s": 2.0, "retries": 2},
    }
    if webhook:
        sections["notify"]["discord_webhook_url_env"] = ENV["webhook"]
    for name, values in overrides.items():
        sections.setdefault(name, {}).update(values)
    return sections


def harness_environ(upbit_keys: Any, binance_keys: Any, webhook_url: str | None = None) -> dict[str, str]:
    env = {
        ENV["upbit_access"]: upbit_keys.access_key,
        ENV["upbit_secret"]: upbit_keys.secret_key,
        ENV["binance_key"]: binance_keys.api_key,
        ENV["binance_secret"]: binance_keys.secret_key,
    }
    if webhook_url:
        env[ENV["webhook"]] = webhook_url
    return env


#: simulator keyword arguments for harness runs: frozen prices (the premium is moved by
#: the harness), order rate limits above the engine's configured 50/s
SIM_KWARGS: dict[str, Any] = {
    "market": {"volatility": 0.0, "premium": 0.012},
    "limits": {"upbit_order_per_s": 100.0, "upbit_order_test_per_s": 100.0},
}
# (with fast limits, ``limits`` is replaced by :func:`fast_sim_limits`)


#: how much faster than the real venues' limits the harness lets both sides go
LIMIT_SCALE = 10


def fast_sim_limits(scale: int = LIMIT_SCALE) -> dict[str, Any]:
    """Simulator rate limits ``scale`` times the real ones (a soak compresses hours of
    trading into minutes; 429/418 are injected as faults instead)."""
    return {
        "upbit_order_per_s": 8.0 * scale, "upbit_order_test_per_s": 8.0 * scale,
        "upbit_default_per_s": 30.0 * scale, "upbit_quotation_per_s": 10.0 * scale,
        "binance_weight_per_min": 2400 * scale, "binance_orders_per_10s": 300 * scale,
        "binance_orders_per_min": 1200 * scale,
    }


def harness_adapters(cfg: Any, environ: dict[str, str], scale: int = LIMIT_SCALE) -> tuple[Any, Any]:
    """The two direct adapters the engine would build from ``cfg``, with client-side rate
    limits ``scale`` times the real ones (pass them as ``KimpEngine(upbit=, binance=)``;
    the caller opens and closes them)."""
    from adapters_direct.factory import ExchangeFactory
    from kimp_fast.ratelimit import RateLimiter
    from kimp_fast._speedups._ratelimit_py import BINANCE_BUCKETS, UPBIT_BUCKETS

    coins = cfg.execution.coins
    up_symbols = tuple([f"KRW-{c}" for c in coins] + [cfg.execution.fx_symbol])
    ak, sk = cfg.upbit_keys(environ)
    bk, bs = cfg.binance_keys(environ)
    upbit = ExchangeFactory.create(
        "upbit", "direct", api_key=ak, secret_key=sk.get(), base_url=cfg.upbit.base_url,
        timeout_s=cfg.upbit.timeout_s, jwt_alg=cfg.upbit.jwt_alg, symbols=up_symbols,
        rate_limiter=RateLimiter("upbit", buckets={k: (c * scale, p) for k, (c, p) in UPBIT_BUCKETS.items()}),
    )
    binance = ExchangeFactory.create(
        "binance", "direct", api_key=bk, secret_key=bs.get(), base_url=cfg.binance.base_url,
        timeout_s=cfg.binance.timeout_s, recv_window_ms=cfg.binance.recv_window_ms,
        symbols=tuple(f"{c}USDT" for c in coins),
        rate_limiter=RateLimiter("binance", buckets={k: (c * scale, p) for k, (c, p) in BINANCE_BUCKETS.items()}),
    )
    return upbit, binance
