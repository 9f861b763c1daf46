"""Request signing, pure-Python twin (the typed reference for ``_signing_c.pyx``).

Upbit authenticates private calls with a JWT (HS256/HS512, secret used as raw UTF-8);
Binance with a hex HMAC-SHA256 over the exact parameter string sent. Both twins produce
byte-identical output for identical input; ``tests/test_signing.py`` checks that with
Hypothesis and against pyjwt, which is the reference for the JWT bytes.

What "byte-identical to pyjwt" pins down (pyjwt 2.x, ``jwt.encode(claims, key, algorithm=alg)``):

* header ``{"alg":"HS256","typ":"JWT"}``: keys sorted, compact separators;
* payload ``json.dumps(claims, separators=(",", ":"))``: insertion order, ``ensure_ascii``
  (non-ASCII and control characters become ``\\uXXXX``; ``"`` and ``\\`` are escaped);
* base64url without ``=`` padding for all three segments.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
from json.encoder import encode_basestring_ascii as _json_str  # what json.dumps uses

__all__ = [
    "BinanceSigner",
    "UpbitSigner",
    "binance_signature",
    "new_nonce",
    "upbit_jwt",
    "upbit_query_hash",
]

_DIGESTS = {"HS256": hashlib.sha256, "HS512": hashlib.sha512}
# base64url('{"alg":"HS256","typ":"JWT"}'): pyjwt sorts header keys and uses compact JSON.
_HEADER_B64 = {
    alg: base64.urlsafe_b64encode(f'{{"alg":"{alg}","typ":"JWT"}}'.encode()).rstrip(b"=")
    for alg in _DIGESTS
}
_MAX_MS = 2**63 - 1  # the compiled twin keeps times in a C long long
_HEX_VARIANT = "89ab89ab89ab89ab"  # RFC 4122 variant bits 10xx for the 17th hex digit


def _b64url(data: bytes) -> bytes:
    return base64.urlsafe_b64encode(data).rstrip(b"=")


def _key_bytes(key: object, what: str) -> bytes:
    if not isinstance(key, str):
        raise TypeError(f"{what} must be a str, not {type(key).__name__}")
    if not key:
        raise ValueError(f"{what} must not be empty")
    return key.encode("utf-8")


def _check_alg(alg: object) -> str:
    if alg not in _DIGESTS:
        raise ValueError(f"unsupported JWT algorithm {alg!r}; expected 'HS256' or 'HS512'")
    return alg  # type: ignore[return-value]


def new_nonce() -> str:
    """Return a fresh random version-4 UUID string (36 characters, lowercase hex).

    Equivalent to ``str(uuid.uuid4())`` without building a ``UUID`` object.
    """
    h = os.urandom(16).hex()
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{_HEX_VARIANT[int(h[16], 16)]}{h[17:20]}-{h[20:]}"


def upbit_query_hash(query: str) -> str:
    """Lowercase hex SHA-512 of the exact query string (UTF-8), Upbit's ``query_hash``.

    Parameters
    ----------
    query : str
        The parameter string as Upbit hashes it: ``k=v`` pairs joined with ``&`` and
        **not** percent-encoded (for a JSON POST body, the body rendered that way).
    """
    if not isinstance(query, str):
        raise TypeError(f"query must be a str, not {type(query).__name__}")
    return hashlib.sha512(query.encode("utf-8")).hexdigest()


def binance_signature(secret_key: str, payload: str) -> str:
    """Lowercase hex HMAC-SHA256 of ``payload`` keyed with ``secret_key`` (Binance SIGNED)."""
    key = _key_bytes(secret_key, "secret_key")
    if not isinstance(payload, str):
        raise TypeError(f"payload must be a str, not {type(payload).__name__}")
    return hmac.new(key, payload.encode("utf-8"), hashlib.sha256).hexdigest()


def upbit_jwt(
    access_key: str,
    secret_key: str,
    query: str | None = None,
    *,
    nonce: str | None = None,
    alg: str = "HS256",
) -> str:
    """Build Upbit's compact JWS (without the ``Bearer`` prefix).

    Claims, in this order: ``access_key``, ``nonce`` (a fresh UUID4 string when None) and,
    only when ``query`` is non-empty, ``query_hash`` and ``query_hash_alg="SHA512"``.
    The token is byte-identical to ``jwt.encode(claims, secret_key, algorithm=alg)``.

    Raises
    ------
    TypeError
        A key, the query or the nonce is not a str.
    ValueError
        ``alg`` is not HS256/HS512, a key or the nonce is empty.
    """
    return UpbitSigner(access_key, secret_key, alg).token(query, nonce)


class UpbitSigner:
    """Upbit JWT signer with the keys prepared once.

    The secret lives only inside a keyed HMAC context that is copied per request; it is
    never stored as an attribute, and the signer refuses to be pickled or copied.
    """

    __slots__ = ("_access_key", "_alg", "_header", "_mac", "_prefix")

    def __init__(self, access_key: str, secret_key: str, alg: str = "HS256") -> None:
        if not isinstance(access_key, str):
            raise TypeError(f"access_key must be a str, not {type(access_key).__name__}")
        if not access_key:
            raise ValueError("access_key must not be empty")
        self._alg = _check_alg(alg)
        self._mac = hmac.new(_key_bytes(secret_key, "secret_key"), digestmod=_DIGESTS[alg])
        self._access_key = access_key
        self._header = _HEADER_B64[alg] + b"."
        self._prefix = '{"access_key":' + _json_str(access_key) + ',"nonce":'

    @property
    def access_key(self) -> str:
        return self._access_key

    @property
    def alg(self) -> str:
        return self._alg

    def token(self, query: str | None = None, nonce: str | None = None) -> str:
        """Return the JWT for one request; see :func:`upbit_jwt`."""
        if nonce is None:
            nonce_json = '"' + new_nonce() + '"'
        elif not isinstance(nonce, str):
            raise TypeError(f"nonce must be a str, not {type(nonce).__name__}")
        elif not nonce:
            raise ValueError("nonce must not be empty")
        else:
            nonce_json = _json_str(nonce)
        if query is None or query == "":
            payload = self._prefix + nonce_json + "}"
        else:
            payload = (
                self._prefix
                + nonce_json
                + ',"query_hash":"'
                + upbit_query_hash(query)
                + '","query_hash_alg":"SHA512"}'
            )
        signing_input = self._header + _b64url(payload.encode("ascii"))
        mac = self._mac.copy()
        mac.update(signing_input)
        return (signing_input + b"." + _b64url(mac.digest())).decode("ascii")

    def authorization(self, query: str | None = None) -> str:
        """Return the ``Authorization`` header value: ``"Bearer " + token`` (fresh nonce)."""
        return "Bearer " + self.token(query)

    def __repr__(self) -> str:
        return f"UpbitSigner(access_key={_mask(self._access_key)!r}, alg={self._alg!r})"

    def __reduce__(self) -> object:
        raise TypeError("UpbitSigner holds a secret and cannot be pickled or copied")


class BinanceSigner:
    """Binance HMAC-SHA256 signer with the secret prepared once (a keyed HMAC context)."""

    __slots__ = ("_api_key", "_mac")

    def __init__(self, api_key: str, secret_key: str) -> None:
        if not isinstance(api_key, str):
            raise TypeError(f"api_key must be a str, not {type(api_key).__name__}")
        if not api_key:
            raise ValueError("api_key must not be empty")
        self._mac = hmac.new(_key_bytes(secret_key, "secret_key"), digestmod=hashlib.sha256)
        self._api_key = api_key

    @property
    def api_key(self) -> str:
        """The API key (sent in ``X-MBX-APIKEY``; not a secret, but masked in ``repr``)."""
        return self._api_key

    def sign(self, payload: str) -> str:
        """Lowercase hex HMAC-SHA256 of ``payload`` (UTF-8)."""
        if not isinstance(payload, str):
            raise TypeError(f"payload must be a str, not {type(payload).__name__}")
        mac = self._mac.copy()
        mac.update(payload.encode("utf-8"))
        return mac.hexdigest()

    def signed_query(
        self, params: str, timestamp_ms: int, recv_window_ms: int | None = 5000
    ) -> str:
        """Append ``recvWindow``, ``timestamp`` and ``signature`` to an encoded parameter string.

        Returns ``f"{params}&recvWindow={rw}&timestamp={ts}&signature={hex}"``: no leading
        ``&`` when ``params`` is empty, no ``recvWindow`` when ``recv_window_ms`` is None.
        The signature covers everything before ``&signature=``, byte for byte.

        Raises
        ------
        TypeError
            ``params`` is not a str, or a time value is not an int.
        ValueError
            A time value is not positive.
        """
        if not isinstance(params, str):
            raise TypeError(f"params must be a str, not {type(params).__name__}")
        _check_ms(timestamp_ms, "timestamp_ms")
        if recv_window_ms is None:
            tail = "timestamp=" + str(timestamp_ms)
        else:
            _check_ms(recv_window_ms, "recv_window_ms")
            tail = "recvWindow=" + str(recv_window_ms) + "&timestamp=" + str(timestamp_ms)
        query = params + "&" + tail if params else tail
        mac = self._mac.copy()
        mac.update(query.encode("utf-8"))
        return query + "&signature=" + mac.hexdigest()

    def __repr__(self) -> str:
        return f"BinanceSigner(api_key={_mask(self._api_key)!r})"

    def __reduce__(self) -> object:
        raise TypeError("BinanceSigner holds a secret and cannot be pickled or copied")


def _check_ms(value: object, what: str) -> None:
    if type(value) is not int:  # bool is an int subclass: refuse it too
        raise TypeError(f"{what} must be an int, not {type(value).__name__}")
    if value <= 0:
        raise ValueError(f"{what} must be positive, got {value}")
    if value > _MAX_MS:
        raise ValueError(f"{what} is out of range, got {value}")


def _mask(key: str) -> str:
    # Enough to tell keys apart in logs, not enough to use one.
    return key[:4] + "…" if len(key) > 8 else "…"
