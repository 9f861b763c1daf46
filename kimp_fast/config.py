"""Engine configuration: a TOML file validated into frozen dataclasses.

Loading::

    cfg = EngineConfig.load("kimp.toml")          # or EngineConfig.default(), from_dict({...})
    access_key, secret = cfg.upbit_keys()         # read from the env vars the file names

Rules
-----
* Every key has a default (SPEC §5); ``config/kimp.example.toml`` documents them all and a
  test checks that it loads to exactly these defaults.
* Unknown sections/keys are errors (typo protection, with a "did you mean" hint). Wrong types
  or out-of-range values raise :class:`ConfigError` naming the dotted key and the expected form.
* Money and ratio fields are :class:`~decimal.Decimal`. They accept strings (preferred:
  ``"0.95"``), integers, and TOML floats, which are converted through ``str`` so ``0.95`` stays
  ``Decimal("0.95")`` and never becomes ``0.9499999999999999555910790149937``.
* Credentials are never read from the file. The file names environment variables
  (``*_env`` keys); a key that looks like a credential (``secret_key = "…"``) is refused without
  echoing its value. :func:`read_env_file` reads a ``.env``-style secrets file into a mapping
  that can be passed as ``environ``.
* A relative ``journal.path`` in a file loaded with :meth:`EngineConfig.load` is resolved
  against the directory of that file (so the journal does not move with the shell's working
  directory); ``~`` is expanded; ``":memory:"`` is kept as is.
* Sections validate on construction too, so ``CapitalConfig(trading_ratio="1.5")`` fails the
  same way a bad file does.
"""

from __future__ import annotations

import dataclasses
import difflib
import hmac
import ipaddress
import os
import re
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import urlsplit

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib

__all__ = [
    "SECTIONS",
    "is_loopback_url",
    "mask_credentials",
    "BinanceConfig",
    "CapitalConfig",
    "CircuitConfig",
    "ConfigError",
    "EngineConfig",
    "ExecutionConfig",
    "ExitConfig",
    "JournalConfig",
    "NotifyConfig",
    "OneLegConfig",
    "PerformanceConfig",
    "RiskConfig",
    "Secret",
    "UpbitConfig",
    "read_env_file",
]


# --------------------------------------------------------------------------- errors, secrets


class ConfigError(ValueError):
    """A configuration problem, always naming the dotted key (``capital.trading_ratio``).

    Attributes
    ----------
    key : str or None
        The dotted key at fault, or None for file-level problems (missing file, bad TOML).
    source : str or None
        Where the configuration came from (a file path, ``"<dict>"``).
    detail : str
        The problem and the expected form, without the key or source.
    """

    def __init__(self, detail: str, *, key: str | None = None, source: str | None = None) -> None:
        self.detail = detail
        self.key = key
        self.source = source
        super().__init__(self._render())

    def _render(self) -> str:
        text = f"{self.key}: {self.detail}" if self.key else self.detail
        if self.source and self.source not in ("<dict>", "<defaults>"):
            text = f"{self.source}: {text}"
        return text

    def with_source(self, source: str) -> ConfigError:
        """Return an equivalent error that also names ``source``."""
        return ConfigError(self.detail, key=self.key, source=source)


class Secret:
    """A secret string that does not leak by accident.

    ``repr()``, ``str()`` and ``format()`` give ``"****"``; :meth:`get` returns the value.
    ``==`` compares values in constant time (against another Secret or a str). Pickling and
    copying to text are refused so a secret cannot end up in a journal or a message queue.
    """

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        if not isinstance(value, str):
            raise TypeError(f"Secret: expected a str, got {type(value).__name__}")
        object.__setattr__(self, "_value", value)

    def get(self) -> str:
        """The secret value. Use it only where it is sent (a signature, an HTTP request)."""
        return self._value

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError("Secret is immutable")

    def __repr__(self) -> str:
        return "****"

    __str__ = __repr__

    def __format__(self, spec: str) -> str:
        return format("****", spec)

    def __bool__(self) -> bool:
        return bool(self._value)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Secret):
            other_value = other._value
        elif isinstance(other, str):
            other_value = other
        else:
            return NotImplemented
        return hmac.compare_digest(self._value.encode(), other_value.encode())

    def __hash__(self) -> int:
        return hash((Secret, self._value))

    def __reduce__(self) -> Any:
        raise TypeError("Secret values cannot be pickled or serialized")

    def __copy__(self) -> Secret:
        return self

    def __deepcopy__(self, memo: dict) -> Secret:
        return self


# --------------------------------------------------------------------------- value checkers
# Each checker takes (value, key) and returns the normalised value or raises ConfigError.

_MISSING = object()
Checker = Callable[[Any, str], Any]
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,127}")
_COIN = re.compile(r"[A-Z0-9]{1,16}")


_USERINFO = re.compile(r"[^\s/@]+@")


def mask_credentials(text: str) -> str:
    """``text`` with the user-info of any URL in it (``user:password@``) replaced by ``***@``."""
    return _USERINFO.sub("***@", text)


def is_loopback_url(url: str) -> bool:
    """True when ``url``'s host is this machine: ``localhost``, 127.0.0.0/8 or ::1."""
    try:
        host = urlsplit(url).hostname
    except ValueError:
        return False
    if host is None:
        return False
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _insecure(url: str | None) -> bool:
    """Plain http to a host other than this machine."""
    return url is not None and url.lower().startswith("http://") and not is_loopback_url(url)


def _show(value: object) -> str:
    text = mask_credentials(repr(value))
    return text if len(text) <= 60 else text[:57] + "..."


def _kind(value: object) -> str:
    return type(value).__name__


def _interval(lo: object, hi: object, lo_open: bool, hi_open: bool) -> str:
    if lo is None and hi is None:
        return ""
    if hi is None:
        return f" {'>' if lo_open else '>='} {lo}"
    if lo is None:
        return f" {'<' if hi_open else '<='} {hi}"
    return f" in {'(' if lo_open else '['}{lo}, {hi}{')' if hi_open else ']'}"


def _check_range(v: Any, key: str, what: str, lo: Any, hi: Any, lo_open: bool, hi_open: bool) -> None:
    bad = (
        (lo is not None and (v <= lo if lo_open else v < lo))
        or (hi is not None and (v >= hi if hi_open else v > hi))
    )
    if bad:
        raise ConfigError(f"expected {what}{_interval(lo, hi, lo_open, hi_open)}, got {v}", key=key)


def _bool() -> Checker:
    def check(v: Any, key: str) -> bool:
        if not isinstance(v, bool):
            raise ConfigError(f"expected true or false, got {_show(v)}", key=key)
        return v

    return check


def _int(lo: int | None = None, hi: int | None = None) -> Checker:
    def check(v: Any, key: str) -> int:
        if isinstance(v, bool) or not isinstance(v, int):
            raise ConfigError(
                f"expected an integer{_interval(lo, hi, False, False)}, got {_show(v)}", key=key
            )
        _check_range(v, key, "an integer", lo, hi, False, False)
        return v

    return check


def _float(lo: float | None = None, hi: float | None = None, *, lo_open: bool = False) -> Checker:
    def check(v: Any, key: str) -> float:
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise ConfigError(
                f"expected a number{_interval(lo, hi, lo_open, False)}, got {_show(v)}", key=key
            )
        f = float(v)
        if f != f or f in (float("inf"), float("-inf")):
            raise ConfigError(f"expected a finite number, got {v}", key=key)
        _check_range(f, key, "a number", lo, hi, lo_open, False)
        return f

    return check


def _decimal(
    lo: Decimal | None = None,
    hi: Decimal | None = None,
    *,
    lo_open: bool = False,
    hi_open: bool = False,
) -> Checker:
    def check(v: Any, key: str) -> Decimal:
        form = f"a decimal{_interval(lo, hi, lo_open, hi_open)} (a string such as \"0.95\" is best)"
        if isinstance(v, bool):
            raise ConfigError(f"expected {form}, got {_show(v)}", key=key)
        if isinstance(v, Decimal):
            d = v
        elif isinstance(v, float):
            d = Decimal(str(v))  # str() gives the shortest repr: 0.95 -> Decimal("0.95")
        elif isinstance(v, (int, str)):
            try:
                d = Decimal(v.strip() if isinstance(v, str) else v)
            except InvalidOperation:
                raise ConfigError(f"expected {form}, got {_show(v)}", key=key) from None
        else:
            raise ConfigError(f"expected {form}, got {_kind(v)}", key=key)
        if not d.is_finite():
            raise ConfigError(f"expected a finite decimal, got {_show(v)}", key=key)
        _check_range(d, key, "a decimal", lo, hi, lo_open, hi_open)
        return d

    return check


def _choice(*options: str, upper: bool = False) -> Checker:
    def check(v: Any, key: str) -> str:
        s = v.strip() if isinstance(v, str) else v
        if isinstance(s, str):
            s = s.upper() if upper else s.lower()
        if s not in options:
            raise ConfigError(f"expected one of {list(options)}, got {_show(v)}", key=key)
        return s

    return check


def _text() -> Checker:
    def check(v: Any, key: str) -> str:
        if not isinstance(v, str) or not v.strip():
            raise ConfigError(f"expected a non-empty string, got {_show(v)}", key=key)
        return v.strip()

    return check


def _env_name() -> Checker:
    def check(v: Any, key: str) -> str:
        # The value is never echoed: people paste the key itself here by mistake.
        if not isinstance(v, str) or not _ENV_NAME.fullmatch(v.strip()):
            hint = ""
            if isinstance(v, str) and "://" in v:
                hint = " (this looks like a URL: put it in an environment variable and name that variable here)"
            raise ConfigError(
                "expected the NAME of an environment variable (letters, digits, underscore, "
                f"e.g. \"UPBIT_SECRET_KEY\"); the value given is not shown in case it is a secret{hint}",
                key=key,
            )
        return v.strip()

    return check


def _base_url() -> Checker:
    def check(v: Any, key: str) -> str:
        if not isinstance(v, str) or not re.fullmatch(r"https?://[^\s/@]+(/[^\s]*)?", v.strip()):
            raise ConfigError(
                "expected an http(s) URL without credentials, such as \"http://127.0.0.1:8080\" "
                f"(omit the key for the production URL), got {_show(v)}",
                key=key,
            )
        return v.strip().rstrip("/")

    return check


def _optional(inner: Checker) -> Checker:
    def check(v: Any, key: str) -> Any:
        return None if v is None else inner(v, key)

    return check


def _delays() -> Checker:
    def check(v: Any, key: str) -> tuple[float, ...]:
        if isinstance(v, (str, bytes)) or not isinstance(v, (list, tuple)):
            raise ConfigError(f"expected a list of seconds such as [1, 2, 4], got {_show(v)}", key=key)
        return tuple(_float(0.0, 3600.0)(x, f"{key}[{i}]") for i, x in enumerate(v))

    return check


def _coins() -> Checker:
    def check(v: Any, key: str) -> tuple[str, ...]:
        if isinstance(v, (str, bytes)) or not isinstance(v, (list, tuple)) or not v:
            raise ConfigError(f"expected a non-empty list of coins such as [\"BTC\"], got {_show(v)}", key=key)
        out: list[str] = []
        for i, c in enumerate(v):
            sym = c.strip().upper() if isinstance(c, str) else c
            if not isinstance(sym, str) or not _COIN.fullmatch(sym):
                raise ConfigError(f"expected a ticker such as \"BTC\", got {_show(c)}", key=f"{key}[{i}]")
            if sym in out:
                raise ConfigError(f"{sym} is listed twice", key=key)
            out.append(sym)
        return tuple(out)

    return check


def _fx_source() -> Checker:
    def check(v: Any, key: str) -> str:
        s = v.strip() if isinstance(v, str) else v
        if not isinstance(s, str) or re.fullmatch(r"upbit:KRW-[A-Z0-9]{1,16}", s) is None:
            raise ConfigError(
                f"expected \"upbit:KRW-<ASSET>\" (an Upbit KRW market's price), got {_show(v)}",
                key=key,
            )
        return s

    return check


def _compiled_mode() -> Checker:
    choice = _choice("auto", "on", "off")

    def check(v: Any, key: str) -> str:
        if isinstance(v, bool):  # `compiled = true` reads naturally too
            return "on" if v else "off"
        return choice(v, key)

    return check


_ONE = Decimal(1)


def _ratio(*, below_one: bool = False) -> Checker:
    """A fraction in (0, 1], or in (0, 1) with ``below_one``."""
    return _decimal(Decimal(0), _ONE, lo_open=True, hi_open=below_one)


def _setting(default: Any, check: Checker) -> Any:
    """A section field: its default and the checker that validates/normalises it.

    Each key is documented, with its default, in ``config/kimp.example.toml``.
    """
    return field(default=default, metadata={"check": check})


# --------------------------------------------------------------------------- sections


class _Section:
    """Shared behaviour of every section: per-field checks, then cross-field rules."""

    __slots__ = ()
    SECTION: ClassVar[str] = ""

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):  # type: ignore[arg-type]
            value = getattr(self, f.name)
            checked = f.metadata["check"](value, f"{self.SECTION}.{f.name}")
            if checked is not value:
                object.__setattr__(self, f.name, checked)
        self._cross_check()

    def _cross_check(self) -> None:
        """Rules spanning several fields; overridden where needed."""

    def _err(self, name: str, detail: str) -> ConfigError:
        return ConfigError(detail, key=f"{self.SECTION}.{name}")


@dataclass(frozen=True, slots=True)
class UpbitConfig(_Section):
    """``[upbit]``: the Upbit KRW spot exchange."""

    SECTION: ClassVar[str] = "upbit"
    base_url: str | None = _setting(None, _optional(_base_url()))
    access_key_env: str = _setting("UPBIT_ACCESS_KEY", _env_name())
    secret_key_env: str = _setting("UPBIT_SECRET_KEY", _env_name())
    adapter: str = _setting("direct", _choice("direct", "ccxt"))
    #: direct adapter: orders over the order lane ("wire") or the aiohttp session
    order_lane: str = _setting("wire", _choice("wire", "aiohttp"))
    timeout_s: float = _setting(5.0, _float(0.0, 120.0, lo_open=True))
    jwt_alg: str = _setting("HS256", _choice("HS256", "HS512", upper=True))
    order_rate_per_sec: float = _setting(8.0, _float(0.0, 100.0, lo_open=True))
    #: accept a plain http:// base_url to a host other than this machine (logged as a
    #: warning at start); without it only https:// or loopback http:// is accepted
    allow_insecure_http: bool = _setting(False, _bool())

    @property
    def key_env_names(self) -> tuple[str, str]:
        """(env var of the access key, env var of the secret key)."""
        return self.access_key_env, self.secret_key_env

    def _cross_check(self) -> None:
        if self.access_key_env == self.secret_key_env:
            raise self._err("secret_key_env", "must name a different variable than access_key_env")
        _check_http(self)


@dataclass(frozen=True, slots=True)
class BinanceConfig(_Section):
    """``[binance]``: the Binance USDT-M perpetual futures exchange."""

    SECTION: ClassVar[str] = "binance"
    base_url: str | None = _setting(None, _optional(_base_url()))
    api_key_env: str = _setting("BINANCE_API_KEY", _env_name())
    secret_key_env: str = _setting("BINANCE_SECRET_KEY", _env_name())
    adapter: str = _setting("direct", _choice("direct", "ccxt"))
    #: direct adapter: orders over the order lane ("wire") or the aiohttp session
    order_lane: str = _setting("wire", _choice("wire", "aiohttp"))
    timeout_s: float = _setting(5.0, _float(0.0, 120.0, lo_open=True))
    recv_window_ms: int = _setting(5000, _int(1, 60000))
    leverage: int = _setting(2, _int(1, 20))
    margin_type: str = _setting("CROSSED", _choice("CROSSED", "ISOLATED", upper=True))
    #: seconds between background reads of the commission rates (0 = only at start and
    #: before each EXIT, which always reads them)
    fee_refresh_s: float = _setting(300.0, _float(0.0, 86400.0))
    #: as [upbit] allow_insecure_http
    allow_insecure_http: bool = _setting(False, _bool())

    @property
    def key_env_names(self) -> tuple[str, str]:
        """(env var of the API key, env var of the secret key)."""
        return self.api_key_env, self.secret_key_env

    def _cross_check(self) -> None:
        if self.api_key_env == self.secret_key_env:
            raise self._err("secret_key_env", "must name a different variable than api_key_env")
        _check_http(self)


def _check_http(section: Any) -> None:
    """Plain http only to this machine, unless the section says ``allow_insecure_http``:
    keys, signatures and orders would travel in cleartext, and answers could be forged."""
    url = section.base_url
    if _insecure(url) and not section.allow_insecure_http:
        host = urlsplit(url).hostname or "?"
        raise section._err(
            "base_url",
            f"plain http:// to {host}, which is not this machine (keys, orders and answers in "
            f"cleartext): use https://, or set {section.SECTION}.allow_insecure_http = true for a "
            "network you trust (a warning is logged at every start)",
        )


@dataclass(frozen=True, slots=True)
class JournalConfig(_Section):
    """``[journal]``: the SQLite journal."""

    SECTION: ClassVar[str] = "journal"
    path: str = _setting("kimp-journal.sqlite", _text())
    synchronous: str = _setting("NORMAL", _choice("NORMAL", "FULL", upper=True))
    #: the engine's writes go to a redo file first and reach SQLite once the orders are
    #: on the wire (see kimp_fast.journal); false = one SQLite commit per write
    write_behind: bool = _setting(True, _bool())


@dataclass(frozen=True, slots=True)
class NotifyConfig(_Section):
    """``[notify]``: notifications (Discord webhook; logging only when no webhook)."""

    SECTION: ClassVar[str] = "notify"
    discord_webhook_url_env: str | None = _setting(None, _optional(_env_name()))
    min_interval_s: float = _setting(1.0, _float(0.0, 60.0))
    max_queue: int = _setting(1000, _int(1, 1_000_000))
    timeout_s: float = _setting(5.0, _float(0.0, 120.0, lo_open=True))
    retries: int = _setting(3, _int(0, 20))
    #: accept a plain http:// webhook URL to a host other than this machine (warned at start)
    allow_insecure_http: bool = _setting(False, _bool())


@dataclass(frozen=True, slots=True)
class CapitalConfig(_Section):
    """``[capital]``: how much of each exchange's free balance may be committed."""

    SECTION: ClassVar[str] = "capital"
    trading_ratio: Decimal = _setting(Decimal("0.95"), _ratio())
    reserve_ratio: Decimal = _setting(Decimal("0.05"), _ratio())

    def _cross_check(self) -> None:
        if self.trading_ratio + self.reserve_ratio > 1:
            raise self._err(
                "reserve_ratio",
                f"trading_ratio + reserve_ratio must be <= 1, got {self.trading_ratio} + {self.reserve_ratio}",
            )


@dataclass(frozen=True, slots=True)
class ExitConfig(_Section):
    """``[exit]``: the no-loss exit rule."""

    SECTION: ClassVar[str] = "exit"
    min_net_profit: Decimal = _setting(Decimal("0"), _decimal())  # KRW
    include_funding: bool = _setting(True, _bool())
    allow_loss_exit: bool = _setting(False, _bool())
    #: each EXIT leg is a limit IOC at the price its estimate assumed, moved against us
    #: by this many basis points: a filled EXIT realises at most this much of each leg's
    #: notional below its estimate, whatever the market does while the orders travel
    tolerance_bps: Decimal = _setting(Decimal("10"), _decimal(Decimal(0), Decimal(1000)))
    #: a full EXIT the bounds filled only in part sends the rest again, re-estimated and
    #: re-approved, up to this many rounds in all
    max_rounds: int = _setting(3, _int(1, 20))

    def _cross_check(self) -> None:
        if self.min_net_profit < 0 and not self.allow_loss_exit:
            raise self._err(
                "min_net_profit",
                f"a negative value ({self.min_net_profit}) permits loss exits; it needs exit.allow_loss_exit = true",
            )


@dataclass(frozen=True, slots=True)
class OneLegConfig(_Section):
    """``[one_leg]``: repair of a one-leg fill.

    ``retry_delays[i]`` is the wait before retry ``i + 1``. When the list is shorter than
    ``max_retries`` its last value repeats (``[1]`` with 3 retries waits 1 s, 1 s, 1 s);
    extra values are ignored. See :meth:`delay_before`.
    """

    SECTION: ClassVar[str] = "one_leg"
    max_retries: int = _setting(3, _int(0, 20))
    retry_delays: tuple[float, ...] = _setting((1.0, 2.0, 4.0), _delays())
    emergency_hedge: bool = _setting(True, _bool())
    #: ENTERs in a row that ended fully unwound because the same venue did not fill its
    #: leg; reaching it halts new entries with a critical alert (0 = never)
    max_consecutive_unwinds: int = _setting(2, _int(0, 1000))

    def _cross_check(self) -> None:
        if self.max_retries > 0 and not self.retry_delays:
            raise self._err("retry_delays", f"needs at least one delay when max_retries = {self.max_retries}")

    def delay_before(self, retry: int) -> float:
        """Seconds to wait before retry number ``retry`` (1-based)."""
        if retry < 1:
            raise ValueError(f"retry: expected >= 1, got {retry}")
        if not self.retry_delays:
            return 0.0
        return self.retry_delays[min(retry, len(self.retry_delays)) - 1]


@dataclass(frozen=True, slots=True)
class CircuitConfig(_Section):
    """``[circuit]``: per-exchange circuit breakers."""

    SECTION: ClassVar[str] = "circuit"
    failure_threshold: int = _setting(5, _int(1, 1000))
    recovery_timeout: float = _setting(30.0, _float(0.0, 86400.0, lo_open=True))


@dataclass(frozen=True, slots=True)
class ExecutionConfig(_Section):
    """``[execution]``: what is traded and how orders are placed."""

    SECTION: ClassVar[str] = "execution"
    coins: tuple[str, ...] = _setting(("BTC",), _coins())
    upbit_buy_mode: str = _setting("limit_ioc", _choice("limit_ioc", "market_krw"))
    max_slippage_bps: Decimal = _setting(Decimal("30"), _decimal(Decimal(0), Decimal(1000)))
    signal_ttl_ms_max: int = _setting(60000, _int(1, 86_400_000))
    max_clock_skew_ms: int = _setting(5000, _int(0, 600_000))
    fx_source: str = _setting("upbit:KRW-USDT", _fx_source())
    order_timeout_s: float = _setting(5.0, _float(0.0, 300.0, lo_open=True))
    max_order_krw: Decimal | None = _setting(None, _optional(_decimal(Decimal(0), lo_open=True)))

    @property
    def fx_venue(self) -> str:
        """Where the USDT/KRW rate comes from (``"upbit"``)."""
        return self.fx_source.split(":", 1)[0]

    @property
    def fx_symbol(self) -> str:
        """The market quoted for the rate (``"KRW-USDT"``)."""
        return self.fx_source.split(":", 1)[1]


@dataclass(frozen=True, slots=True)
class RiskConfig(_Section):
    """``[risk]``: Binance margin / liquidation monitoring."""

    SECTION: ClassVar[str] = "risk"
    check_interval_s: float = _setting(10.0, _float(0.0, 3600.0, lo_open=True))
    margin_ratio_warning: Decimal = _setting(Decimal("0.5"), _ratio(below_one=True))
    margin_ratio_critical: Decimal = _setting(Decimal("0.8"), _ratio())
    liquidation_distance_warning: Decimal = _setting(Decimal("0.15"), _ratio(below_one=True))
    #: liquidation price within this fraction of the mark price: critical, new entries halted
    liquidation_distance_critical: Decimal = _setting(Decimal("0.05"), _ratio(below_one=True))

    def _cross_check(self) -> None:
        if self.margin_ratio_warning >= self.margin_ratio_critical:
            raise self._err(
                "margin_ratio_warning",
                f"must be below margin_ratio_critical ({self.margin_ratio_critical}), got {self.margin_ratio_warning}",
            )
        if self.liquidation_distance_critical >= self.liquidation_distance_warning:
            raise self._err(
                "liquidation_distance_critical",
                f"must be below liquidation_distance_warning ({self.liquidation_distance_warning}),"
                f" got {self.liquidation_distance_critical}",
            )


@dataclass(frozen=True, slots=True)
class PerformanceConfig(_Section):
    """``[performance]``: runtime accelerators."""

    SECTION: ClassVar[str] = "performance"
    use_uvloop: bool = _setting(True, _bool())
    use_orjson: bool = _setting(True, _bool())
    compiled: str = _setting("auto", _compiled_mode())
    #: rehearse the ENTER order path (built, signed, never sent) this often while idle,
    #: so a signal finds its code in the CPU caches; 0 = off (KimpEngine.rehearse)
    keep_warm_ms: float = _setting(2.0, _float(0.0, 1000.0))


SECTIONS: dict[str, type[_Section]] = {
    cls.SECTION: cls
    for cls in (
        UpbitConfig,
        BinanceConfig,
        JournalConfig,
        NotifyConfig,
        CapitalConfig,
        ExitConfig,
        OneLegConfig,
        CircuitConfig,
        ExecutionConfig,
        RiskConfig,
        PerformanceConfig,
    )
}
"""Section name -> dataclass, in the order of the example file."""


# --------------------------------------------------------------------------- mapping -> section

# Key names that carry a credential. They are refused wherever they appear, and their values
# never reach an error message.
_CREDENTIAL_WORDS = ("secret", "password", "passphrase", "token", "api_key", "apikey", "access_key", "private_key", "webhook_url")


def _looks_like_credential(name: str) -> bool:
    n = name.lower()
    return not n.endswith("_env") and (n in ("key", "secret") or any(w in n for w in _CREDENTIAL_WORDS))


def _refuse_credential(key: str, section: str | None) -> ConfigError:
    where = f"[{section}] " if section else ""
    if section == "upbit":
        hint = "name the variable with upbit.access_key_env / upbit.secret_key_env (see config/.env.example)"
    elif section == "binance":
        hint = "name the variable with binance.api_key_env / binance.secret_key_env (see config/.env.example)"
    elif section == "notify":
        hint = "name the variable with notify.discord_webhook_url_env"
    else:
        hint = "name the variable with the matching *_env key"
    return ConfigError(
        f"credentials are never read from the config file; remove it from {where}(its value is not "
        f"shown here), put the value in an environment variable and {hint}",
        key=key,
    )


def _unknown(key: str, name: str, known: list[str], what: str) -> ConfigError:
    close = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
    hint = f"; did you mean {close[0]}?" if close else f"; expected one of {known}"
    return ConfigError(f"unknown {what}{hint}", key=key)


def _checked_items(cls: type[_Section], data: object, section: str) -> dict[str, Any]:
    if not isinstance(data, Mapping):
        raise ConfigError(f"expected a table ([{section}] with key = value lines), got {_kind(data)}", key=section)
    names = [f.name for f in dataclasses.fields(cls)]  # type: ignore[arg-type]
    for name in data:
        key = f"{section}.{name}"
        if not isinstance(name, str):
            raise ConfigError("keys must be strings", key=section)
        if name in names:
            continue
        if _looks_like_credential(name):
            raise _refuse_credential(key, section)
        raise _unknown(key, name, names, "key")
    return dict(data)


def _section_from(cls: type[_Section], data: object, section: str, base: _Section | None = None) -> _Section:
    items = _checked_items(cls, data, section)
    if base is None:
        return cls(**items)
    return dataclasses.replace(base, **items)  # type: ignore[type-var]


def _resolve_path(path: str, base_dir: str | os.PathLike[str] | None) -> str:
    if path == ":memory:" or path.startswith("file:"):
        return path
    p = Path(path).expanduser()
    if base_dir is not None and not p.is_absolute():
        p = Path(base_dir) / p
    return str(p)


# --------------------------------------------------------------------------- the whole config


def _section_field(cls: type[_Section]) -> Any:
    return field(default_factory=cls)


@dataclass(frozen=True, slots=True)
class EngineConfig:
    """The engine's whole configuration (CONTRACT §3). Immutable; see the module docstring.

    Sections may be passed as section objects or as mappings (merged onto that section's
    defaults): ``EngineConfig(one_leg={"retry_delays": [0.01]})``.
    ``source`` records where it was loaded from (not part of equality).
    """

    upbit: UpbitConfig = _section_field(UpbitConfig)
    binance: BinanceConfig = _section_field(BinanceConfig)
    journal: JournalConfig = _section_field(JournalConfig)
    notify: NotifyConfig = _section_field(NotifyConfig)
    capital: CapitalConfig = _section_field(CapitalConfig)
    exit: ExitConfig = _section_field(ExitConfig)
    one_leg: OneLegConfig = _section_field(OneLegConfig)
    circuit: CircuitConfig = _section_field(CircuitConfig)
    execution: ExecutionConfig = _section_field(ExecutionConfig)
    risk: RiskConfig = _section_field(RiskConfig)
    performance: PerformanceConfig = _section_field(PerformanceConfig)
    source: str = field(default="<defaults>", compare=False)

    def __post_init__(self) -> None:
        for name, cls in SECTIONS.items():
            value = getattr(self, name)
            if isinstance(value, cls):
                continue
            if isinstance(value, Mapping):
                object.__setattr__(self, name, _section_from(cls, value, name))
            else:
                raise ConfigError(f"expected {cls.__name__} or a mapping, got {_kind(value)}", key=name)
        names = {
            "upbit.access_key_env": self.upbit.access_key_env,
            "upbit.secret_key_env": self.upbit.secret_key_env,
            "binance.api_key_env": self.binance.api_key_env,
            "binance.secret_key_env": self.binance.secret_key_env,
        }
        if self.notify.discord_webhook_url_env is not None:
            names["notify.discord_webhook_url_env"] = self.notify.discord_webhook_url_env
        seen: dict[str, str] = {}
        for key, env in names.items():
            if env in seen:
                raise ConfigError(f"names the same environment variable ({env}) as {seen[env]}", key=key)
            seen[env] = key

    # ---- construction

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> EngineConfig:
        """Read a TOML file. A relative ``journal.path`` is resolved against the file's directory.

        Raises
        ------
        ConfigError
            The file is missing, unreadable, not TOML, or holds a bad key/value.
        """
        p = Path(path)
        source = str(p)
        try:
            raw = p.read_bytes()
        except FileNotFoundError:
            raise ConfigError("config file not found", source=source) from None
        except OSError as exc:
            raise ConfigError(f"cannot read config file ({exc.strerror or type(exc).__name__})", source=source) from None
        try:
            data = tomllib.loads(raw.decode("utf-8"))
        except UnicodeDecodeError:
            raise ConfigError("config file is not UTF-8 text", source=source) from None
        except tomllib.TOMLDecodeError as exc:
            # tomllib's message gives the line and column, never the offending value.
            raise ConfigError(f"invalid TOML: {exc}", source=source) from None
        return cls.from_dict(data, source=source, base_dir=p.resolve().parent)

    @classmethod
    def from_dict(
        cls,
        data: Mapping[str, Any],
        *,
        source: str = "<dict>",
        base_dir: str | os.PathLike[str] | None = None,
    ) -> EngineConfig:
        """Build from a parsed mapping (``{"capital": {"trading_ratio": "0.9"}, ...}``).

        ``base_dir``, when given, anchors a relative ``journal.path`` (``load`` passes the
        config file's directory).
        """
        try:
            if not isinstance(data, Mapping):
                raise ConfigError(f"expected a mapping of sections, got {_kind(data)}")
            sections: dict[str, Any] = {}
            for name, value in data.items():
                if name in SECTIONS:
                    sections[name] = _section_from(SECTIONS[name], value, name)
                elif isinstance(name, str) and _looks_like_credential(name):
                    raise _refuse_credential(name, None)
                elif isinstance(value, Mapping):
                    raise _unknown(str(name), str(name), list(SECTIONS), "section")
                else:
                    raise _unknown(str(name), str(name), list(SECTIONS), "top-level key (keys belong in a [section])")
            journal = sections.get("journal", JournalConfig())
            resolved = _resolve_path(journal.path, base_dir)
            if resolved != journal.path:
                sections["journal"] = dataclasses.replace(journal, path=resolved)
            return cls(**sections, source=source)
        except ConfigError as exc:
            raise exc.with_source(source) from None

    @classmethod
    def default(cls, **overrides: Any) -> EngineConfig:
        """The SPEC §5 defaults, with sections overridden by objects or mappings."""
        return cls().replace(**overrides)

    def replace(self, **overrides: Any) -> EngineConfig:
        """A copy with some sections changed; a mapping is merged onto the current section.

        ``cfg.replace(upbit={"base_url": url}, circuit=CircuitConfig(failure_threshold=2))``
        """
        changes: dict[str, Any] = {}
        for name, value in overrides.items():
            cls = SECTIONS.get(name)
            if cls is None:
                if name == "source" and isinstance(value, str):
                    changes[name] = value
                    continue
                raise _unknown(name, name, list(SECTIONS), "section")
            if isinstance(value, Mapping):
                changes[name] = _section_from(cls, value, name, base=getattr(self, name))
            else:
                changes[name] = value
        return dataclasses.replace(self, **changes)

    # ---- credentials (read from the environment, never stored in the config)

    def upbit_keys(self, environ: Mapping[str, str] | None = None) -> tuple[str, Secret]:
        """(access key, secret key) from the env vars ``upbit.access_key_env``/``secret_key_env``."""
        return (
            _read_env(environ, self.upbit.access_key_env, "upbit.access_key_env"),
            Secret(_read_env(environ, self.upbit.secret_key_env, "upbit.secret_key_env")),
        )

    def binance_keys(self, environ: Mapping[str, str] | None = None) -> tuple[str, Secret]:
        """(API key, secret key) from the env vars ``binance.api_key_env``/``secret_key_env``."""
        return (
            _read_env(environ, self.binance.api_key_env, "binance.api_key_env"),
            Secret(_read_env(environ, self.binance.secret_key_env, "binance.secret_key_env")),
        )

    def discord_webhook_url(self, environ: Mapping[str, str] | None = None) -> Secret | None:
        """The webhook URL, or None when ``notify.discord_webhook_url_env`` is not set.

        Raises ConfigError when the named variable is missing/empty or not an http(s) URL
        (the URL carries the webhook's token, so it is never shown).
        """
        name = self.notify.discord_webhook_url_env
        if name is None:
            return None
        url = _read_env(environ, name, "notify.discord_webhook_url_env")
        if not re.fullmatch(r"https?://[^\s/]+/\S*", url):
            raise ConfigError(
                f"environment variable {name} must hold an http(s) webhook URL (value not shown)",
                key="notify.discord_webhook_url_env",
            )
        if _insecure(url) and not self.notify.allow_insecure_http:
            raise ConfigError(
                f"environment variable {name} holds a plain http:// URL to a host that is not this "
                "machine (the webhook's token in cleartext; value not shown): use https://, or set "
                "notify.allow_insecure_http = true",
                key="notify.discord_webhook_url_env",
            )
        return Secret(url)

    def insecure_http_warnings(self, environ: Mapping[str, str] | None = None) -> list[str]:
        """One line per plain-http URL to another machine that ``allow_insecure_http``
        lets through (the engine logs them at start). No credential is shown."""
        out = []
        for sec in (self.upbit, self.binance):
            if _insecure(sec.base_url):
                out.append(f"{sec.SECTION}.base_url is plain http:// to {urlsplit(sec.base_url).hostname} "
                           f"({sec.SECTION}.allow_insecure_http = true): keys and orders travel in cleartext")
        if self.notify.allow_insecure_http and self.notify.discord_webhook_url_env is not None:
            try:
                url = self.discord_webhook_url(environ)
            except ConfigError:
                url = None
            if url is not None and _insecure(url.get()):
                out.append("the notify webhook URL is plain http:// (notify.allow_insecure_http = true): "
                           "its token travels in cleartext")
        return out

    # ---- views

    def redacted(self) -> dict[str, Any]:
        """Plain data for ``kimp-fast info``/status. Env var names appear; values never do."""
        out: dict[str, Any] = {"source": self.source}
        for name in SECTIONS:
            section = getattr(self, name)
            out[name] = {f.name: _plain(getattr(section, f.name)) for f in dataclasses.fields(section)}
        return out


def _plain(v: Any) -> Any:
    if isinstance(v, Decimal):
        return str(v)
    if isinstance(v, tuple):
        return [_plain(x) for x in v]
    return v


def _read_env(environ: Mapping[str, str] | None, name: str, key: str) -> str:
    env = os.environ if environ is None else environ
    value = env.get(name)
    if value is None or not value.strip():
        state = "is empty" if value is not None else "is not set"
        raise ConfigError(
            f"environment variable {name} {state}; export it or put it in a secrets file "
            "(see config/.env.example)",
            key=key,
        )
    return value.strip()


_ENV_LINE = re.compile(r"(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*)")


def read_env_file(path: str | os.PathLike[str]) -> dict[str, str]:
    """Read a ``.env``-style secrets file: ``NAME=value`` lines, ``#`` comments, optional quotes.

    The result can be passed as ``environ`` to :meth:`EngineConfig.upbit_keys` and friends
    (``{**read_env_file(p), **os.environ}`` lets the real environment win). Errors name the
    line number, never the content.
    """
    source = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError("secrets file not found", source=source) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read secrets file ({type(exc).__name__})", source=source) from None
    out: dict[str, str] = {}
    for lineno, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        m = _ENV_LINE.fullmatch(stripped)
        if m is None:
            raise ConfigError(f"line {lineno}: expected NAME=value (content not shown)", source=source)
        name, value = m.group(1), m.group(2).strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            value = value[1:-1]
        elif " #" in value:  # an unquoted trailing comment
            value = value.split(" #", 1)[0].rstrip()
        out[name] = value
    return out
