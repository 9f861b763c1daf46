"""Deterministic client order ids, valid on both Upbit and Binance.

A client id is derived from ``(signal id, leg, attempt)`` so that a retry after a crash
rebuilds *the same* id and the exchange refuses a second copy instead of executing it.

Format (at most 36 characters, alphabet ``[A-Za-z0-9_-]``)::

    <prefix>-<hash>-<LEG><attempt>
    sig-000123-3kq0s1mb7vxa-UE0

* ``prefix``: the signal id cut to 17 characters, every character outside
  ``[A-Za-z0-9_-]`` replaced by ``_``: readable in exchange UIs and logs, nothing more;
* ``hash``: 12 base-32 characters (60 bits) of BLAKE2b over the *full*, unsanitized
  signal id (and the optional ``namespace``), so ``"a/b"`` and ``"a_b"``, or two long ids
  sharing their first 17 characters, still get different ids;
* ``LEG``: two letters, venue then purpose (see :data:`LEGS`);
* ``attempt``: 0..999, the caller's retry counter for that leg.

The alphabet is the intersection of Binance's ``^[\\.A-Z\\:/a-z0-9_-]{1,36}$`` and what
Upbit accepts without URL-encoding, so the same id can be used on either venue.

What a caller may reuse
-----------------------
* **Upbit** ``identifier`` is single-use *forever*, even when the first attempt failed or
  was never created: after a ``Rejected`` or a not-found ``OutcomeUnknown`` place the next
  try with ``attempt + 1``.
* **Binance** ``newClientOrderId`` is unique only among *open* orders: resending the id of a
  filled order can create a second order. Never resend an id blindly; look it up first.
"""

from __future__ import annotations

import functools
import hashlib
import re
from typing import NamedTuple

__all__ = [
    "LEGS",
    "ParsedClientId",
    "client_id_stem",
    "is_valid_binance_client_id",
    "is_valid_upbit_identifier",
    "make_client_id",
    "parse_client_id",
]

#: leg name -> two-letter code. Venue: U = Upbit, B = Binance. Purpose: E = entry,
#: X = exit, R = repair (retry of a missing leg), W = unwind (emergency hedge).
LEGS: dict[str, str] = {
    "upbit-entry": "UE",
    "upbit-exit": "UX",
    "upbit-repair": "UR",
    "upbit-unwind": "UW",
    "binance-entry": "BE",
    "binance-exit": "BX",
    "binance-repair": "BR",
    "binance-unwind": "BW",
}
_CODE_TO_LEG = {code: leg for leg, code in LEGS.items()}

MAX_ATTEMPT = 999
_PREFIX_LEN = 17
_HASH_LEN = 12
_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")
_BINANCE_ID = re.compile(r"[\.A-Z\:/a-z0-9_-]{1,36}")
_UPBIT_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
_OURS = re.compile(r"([A-Za-z0-9_-]{1,17})-([a-z2-7]{12})-([UB][EXRW])([0-9]{1,3})")


class ParsedClientId(NamedTuple):
    prefix: str
    digest: str
    leg: str
    attempt: int


_B32 = "abcdefghijklmnopqrstuvwxyz234567"  # RFC 4648 base 32, lower case


@functools.lru_cache(maxsize=1024)  # both legs (and every retry) of a signal share the stem
def client_id_stem(signal_id: str, namespace: str = "") -> str:
    """``<prefix>-<hash>``: the part of every client id of one signal that does not
    depend on the leg or attempt (:func:`make_client_id` appends ``-<LEG><attempt>``).
    ``signal_id`` must be a non-empty string (not checked here)."""
    h = hashlib.blake2b(digest_size=8)
    h.update(namespace.encode())
    h.update(b"\x00")
    h.update(signal_id.encode())
    # The first 12 base-32 characters are the digest's top 60 bits, 5 at a time: what
    # base64.b32encode(digest).lower()[:12] gives, without its pure-Python loop.
    n = int.from_bytes(h.digest(), "big") >> (64 - 5 * _HASH_LEN)
    digest = "".join([_B32[(n >> shift) & 31] for shift in range(5 * (_HASH_LEN - 1), -1, -5)])
    return f"{_UNSAFE.sub('_', signal_id[:_PREFIX_LEN])}-{digest}"


def make_client_id(signal_id: str, leg: str, attempt: int, *, namespace: str = "") -> str:
    """Client order id for one leg of one signal.

    Parameters
    ----------
    signal_id
        The signal's id (any non-empty string).
    leg
        A key of :data:`LEGS` (``"upbit-entry"``) or its two-letter code (``"UE"``).
    attempt
        0 for the first try; increment for every new order of the same leg.
    namespace
        Optional extra input to the hash (e.g. an engine instance name), so that two
        engines sharing one account never derive the same id from the same signal id.

    Returns
    -------
    str
        At most 36 characters of ``[A-Za-z0-9_-]``; same inputs, same id.

    Raises
    ------
    ValueError
        Empty signal id, unknown leg, attempt outside 0..999.
    """
    if not isinstance(signal_id, str) or not signal_id:
        raise ValueError("signal_id: a non-empty string is required")
    code = LEGS.get(leg) or (leg if leg in _CODE_TO_LEG else None)
    if code is None:
        raise ValueError(f"leg: expected one of {sorted(LEGS)} or their codes, got {leg!r}")
    if isinstance(attempt, bool) or not isinstance(attempt, int) or not 0 <= attempt <= MAX_ATTEMPT:
        raise ValueError(f"attempt: expected an integer 0..{MAX_ATTEMPT}, got {attempt!r}")
    return f"{client_id_stem(signal_id, namespace)}-{code}{attempt}"


def parse_client_id(client_id: str) -> ParsedClientId | None:
    """Split an id made by :func:`make_client_id`; ``None`` for any other id.

    The leg comes back as its long name (``"upbit-entry"``). The signal id itself cannot
    be recovered (only its readable prefix); match on :func:`make_client_id` output instead.
    """
    m = _OURS.fullmatch(client_id) if isinstance(client_id, str) else None
    if m is None:
        return None
    return ParsedClientId(m.group(1), m.group(2), _CODE_TO_LEG[m.group(3)], int(m.group(4)))


def is_valid_binance_client_id(client_id: str) -> bool:
    """True if Binance accepts ``client_id`` as ``newClientOrderId``."""
    return isinstance(client_id, str) and _BINANCE_ID.fullmatch(client_id) is not None


def is_valid_upbit_identifier(client_id: str) -> bool:
    """True if ``client_id`` is a safe Upbit ``identifier`` (``[A-Za-z0-9_-]``, 1..64)."""
    return isinstance(client_id, str) and _UPBIT_ID.fullmatch(client_id) is not None
