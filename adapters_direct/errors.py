"""The error taxonomy every adapter (direct or ccxt) maps exchange failures to.

The one question a two-leg executor must answer after a failed call is *did the order
execute?* The classes answer it:

==================  ==============  =====================================================
class               executed?       typical causes
==================  ==============  =====================================================
Rejected            no              bad parameter, filter, reduce-only, duplicate id
OrderNotFound       no              (a Rejected) look-up/cancel of an unknown client id
InsufficientFunds   no              Upbit ``insufficient_funds_*``, Binance -2018/-2019
RateLimited         no              HTTP 429/418 (``retry_after`` seconds)
AuthError           no              bad key/signature/permissions, -1022, -2015, 401
Unavailable         no              connection refused / DNS: nothing was written
OutcomeUnknown      **maybe**       timeout, reset after the request was written, 5xx,
                                    Binance 503 "Unknown error", -1006, -1007
InvalidResponse     **maybe**       (an OutcomeUnknown) a 2xx answer that fails validation:
                                    undecodable, a non-finite / out-of-range / negative
                                    number, filled > ordered, price <= 0
ResponseTooLarge    **maybe**       (an InvalidResponse) a body over the size cap after
                                    decompression (``max_response_bytes``)
==================  ==============  =====================================================

An answer is validated before it is believed (``adapters_direct.schemas``): a number the
exchange could not mean is never turned into a fill, a balance or a silent zero. For an
order call (place, look-up, cancel) an ``InvalidResponse`` is an ``OutcomeUnknown`` like
any other: the order may exist, so it is looked up, never assumed; for any other call it
is a typed failure of that call that names the field.

``OutcomeUnknown`` is never a failure: the caller looks the order up by ``client_id``
before doing anything else. ``infrastructure`` tells a circuit breaker whether the
failure says something about the exchange's health (business rejections do not).
Messages never contain credentials.
"""

from __future__ import annotations

__all__ = [
    "AdapterError",
    "AuthError",
    "ExchangeError",
    "InsufficientFunds",
    "InvalidResponse",
    "OrderNotFound",
    "OutcomeUnknown",
    "RateLimited",
    "Rejected",
    "ResponseTooLarge",
    "Unavailable",
]


class AdapterError(Exception):
    """Base class of every adapter error."""

    executed: str = "no"  # "no" | "unknown"
    infrastructure: bool = False

    def __init__(
        self,
        message: str,
        *,
        exchange: str = "",
        code: int | str | None = None,
        status: int | None = None,
        client_id: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.exchange = exchange
        self.code = code
        self.status = status
        self.client_id = client_id

    def __str__(self) -> str:
        parts = [self.exchange] if self.exchange else []
        if self.status is not None:
            parts.append(f"HTTP {self.status}")
        if self.code is not None:
            parts.append(f"code={self.code}")
        prefix = f"[{' '.join(parts)}] " if parts else ""
        return f"{prefix}{self.message}"

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({self.message!r}, exchange={self.exchange!r}, "
            f"code={self.code!r}, status={self.status!r}, client_id={self.client_id!r})"
        )


ExchangeError = AdapterError  # friendlier alias


class Rejected(AdapterError):
    """The exchange refused the request: definitely not executed. ``code`` is its code/name."""


class InsufficientFunds(Rejected):
    """Balance or margin too low: definitely not executed."""


class OrderNotFound(Rejected):
    """A look-up or cancel found no order with that id (Upbit 404, Binance -2013/-2011).

    Right after a placement an exchange may briefly not know an order it accepted, so
    one "not found" is evidence, not proof: callers repeat the look-up before they
    conclude the order is absent.
    """


class AuthError(AdapterError):
    """Credentials, signature, nonce, IP allow-list or permission problem."""


class RateLimited(AdapterError):
    """HTTP 429 (slow down) or 418 (banned). ``retry_after`` is in seconds.

    Also raised, with ``code="client_throttle"``, when our own rate limiter refuses a call
    before anything is sent: that says nothing about the exchange's health, so it is not
    an infrastructure failure (a circuit breaker must not count it).
    """

    @property  # type: ignore[override]
    def infrastructure(self) -> bool:
        return self.code != "client_throttle"

    def __init__(self, message: str, *, retry_after: float = 1.0, banned: bool = False, **kw) -> None:
        super().__init__(message, **kw)
        self.retry_after = retry_after
        self.banned = banned


class Unavailable(AdapterError):
    """The request was never written (connection refused, DNS, breaker): not executed."""

    infrastructure = True


class OutcomeUnknown(AdapterError):
    """The request may or may not have executed: look it up by ``client_id``."""

    executed = "unknown"
    infrastructure = True


class InvalidResponse(OutcomeUnknown):
    """The exchange answered, but the answer cannot be believed: it does not decode, or a
    number in it is non-finite, out of range, negative where it cannot be, a fill larger
    than the order or a price <= 0. ``field`` names the offending field when known.

    An ``OutcomeUnknown``: after an order call the order is looked up by ``client_id``;
    after any other call it says the data was refused (never replaced by a default). An
    exchange sending such answers is unhealthy, so a circuit breaker counts it.
    """

    def __init__(self, message: str, *, field: str | None = None, **kw) -> None:
        super().__init__(message, **kw)
        self.field = field


class ResponseTooLarge(InvalidResponse):
    """The answer's body exceeded the size cap (``max_response_bytes``) after
    decompression; reading stopped at the cap, the connection was dropped."""
