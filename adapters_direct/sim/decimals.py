"""Decimal helpers: exact parsing of wire values and the exchanges' number formats."""

from __future__ import annotations

from decimal import ROUND_DOWN, ROUND_HALF_UP, Decimal, InvalidOperation

__all__ = [
    "ZERO",
    "ONE",
    "dec_or_none",
    "fixed",
    "krw_tick",
    "plain",
    "q8",
    "upbit_str",
]

ZERO = Decimal(0)
ONE = Decimal(1)
_Q8 = Decimal("1e-8")


def dec_or_none(value: object) -> Decimal | None:
    """Parse a wire value into a finite Decimal; ``None`` if missing or not a number."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, float):
        value = repr(value)
    try:
        d = Decimal(str(value).strip())
    except (InvalidOperation, ValueError):
        return None
    if not d.is_finite():
        return None
    return d


def plain(d: Decimal) -> str:
    """Shortest plain (non-scientific) rendering: ``1.50`` → ``"1.5"``, ``100`` → ``"100"``."""
    if not d:
        return "0"
    s = format(d.normalize(), "f")
    return s


def upbit_str(d: Decimal | None) -> str | None:
    """Upbit renders decimals with at least one fractional digit (``"1.0"``, ``"0.0015"``)."""
    if d is None:
        return None
    s = plain(d)
    return s if "." in s else s + ".0"


def fixed(d: Decimal, places: int) -> str:
    """Fixed number of decimals, as Binance pads its fields (``"0.010"``, ``"96000.10"``)."""
    return format(d.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP), "f")


def q8(d: Decimal, rounding: str = ROUND_HALF_UP) -> Decimal:
    """Round to 8 decimals (coin amounts, fees)."""
    return d.quantize(_Q8, rounding=rounding)


def floor_to(d: Decimal, step: Decimal) -> Decimal:
    return (d / step).to_integral_value(rounding=ROUND_DOWN) * step


# Upbit KRW-market tick table (policy of 2025-07-31; the rows below 100 KRW follow the
# earlier table because the current one was not captured). /v1/orderbook/instruments is
# the runtime source on the real exchange, and the simulator serves this same table there.
_KRW_TICKS: tuple[tuple[Decimal, Decimal], ...] = (
    (Decimal(1_000_000), Decimal(1000)),
    (Decimal(500_000), Decimal(500)),
    (Decimal(100_000), Decimal(100)),
    (Decimal(50_000), Decimal(50)),
    (Decimal(10_000), Decimal(10)),
    (Decimal(5_000), Decimal(5)),
    (Decimal(100), Decimal(1)),
    (Decimal(10), Decimal("0.01")),
    (Decimal(1), Decimal("0.001")),
)


def krw_tick(price: Decimal) -> Decimal:
    """Tick size of a KRW-market price."""
    for floor, tick in _KRW_TICKS:
        if price >= floor:
            return tick
    return Decimal("0.0001")
