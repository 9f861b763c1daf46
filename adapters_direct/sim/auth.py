"""Independent verification of both exchanges' request authentication.

Deliberately not built on the project's signers (``kimp_fast.signing``): a verifier that
shares code with the signer it checks would agree with the signer's bugs. Only the
standard library is used (``hmac``, ``hashlib``, ``base64``).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections import OrderedDict
from typing import Any, Mapping
from urllib.parse import unquote

import orjson

__all__ = [
    "AuthFailure",
    "NonceStore",
    "binance_payload_and_signature",
    "upbit_body_query_string",
    "verify_binance_signature",
    "verify_upbit_jwt",
]

_HS = {"HS256": hashlib.sha256, "HS512": hashlib.sha512}


class AuthFailure(Exception):
    """Authentication failed; ``name``/``status`` (Upbit) or ``code`` (Binance) say how."""

    def __init__(self, name: str | int, message: str, status: int = 401) -> None:
        super().__init__(message)
        self.name = name
        self.message = message
        self.status = status


class NonceStore:
    """Remembers used nonces per access key (bounded, oldest forgotten first)."""

    def __init__(self, capacity: int = 1_000_000) -> None:
        self._seen: OrderedDict[tuple[str, str], None] = OrderedDict()
        self._capacity = capacity

    def use(self, access_key: str, nonce: str) -> bool:
        """Record ``nonce``; False if it was already used."""
        key = (access_key, nonce)
        if key in self._seen:
            return False
        self._seen[key] = None
        if len(self._seen) > self._capacity:
            self._seen.popitem(last=False)
        return True

    def clear(self) -> None:
        self._seen.clear()


def _b64url_decode(segment: str) -> bytes:
    pad = "=" * (-len(segment) % 4)
    return base64.urlsafe_b64decode(segment + pad)


def _render_value(value: Any) -> str:
    if value is True:
        return "true"
    if value is False:
        return "false"
    if value is None:
        return ""
    return str(value)


def upbit_body_query_string(body: Mapping[str, Any]) -> str:
    """The JSON body rendered as ``k=v&…`` in the body's own key order, un-encoded;
    arrays repeat the key as ``k[]=v`` (Upbit's documented form for list parameters)."""
    parts = []
    for key, value in body.items():
        if isinstance(value, list):
            name = key if key.endswith("[]") else key + "[]"
            parts.extend(f"{name}={_render_value(v)}" for v in value)
        else:
            parts.append(f"{key}={_render_value(value)}")
    return "&".join(parts)


def verify_upbit_jwt(
    authorization: str | None,
    secrets: Mapping[str, str],
    hashed: str | None,
    nonces: NonceStore,
) -> tuple[str, dict[str, Any], dict[str, Any]]:
    """Verify an Upbit ``Authorization: Bearer <JWT>`` header.

    Parameters
    ----------
    authorization:
        the header value, or None when absent.
    secrets:
        access key → secret key.
    hashed:
        the parameter string the request carries (un-percent-encoded query, or the JSON
        body rendered as ``k=v&…``); None/empty when it has no parameters.

    Returns ``(access_key, header, claims)``; raises :class:`AuthFailure` otherwise.
    """
    if not authorization:
        raise AuthFailure("no_authorization_token", "Authorization token does not exist.")
    scheme, _, token = authorization.partition(" ")
    if scheme != "Bearer" or not token:
        raise AuthFailure("invalid_authorization_token", "Authorization token is not a Bearer token.")
    parts = token.strip().split(".")
    if len(parts) != 3:
        raise AuthFailure("jwt_verification", "Failed to verify Jwt token.")
    try:
        header = orjson.loads(_b64url_decode(parts[0]))
        claims = orjson.loads(_b64url_decode(parts[1]))
        signature = _b64url_decode(parts[2])
    except (ValueError, binascii.Error, orjson.JSONDecodeError):
        raise AuthFailure("jwt_verification", "Failed to verify Jwt token.") from None
    if not isinstance(header, dict) or not isinstance(claims, dict):
        raise AuthFailure("jwt_verification", "Failed to verify Jwt token.")
    digest = _HS.get(header.get("alg"))
    if digest is None:
        raise AuthFailure("jwt_verification", "Failed to verify Jwt token.")
    access_key = claims.get("access_key")
    if not isinstance(access_key, str) or access_key not in secrets:
        raise AuthFailure("invalid_access_key", "Invalid access key.")
    # The secret is used as raw UTF-8 bytes (Upbit says: it is not base64).
    expected = hmac.new(secrets[access_key].encode(), f"{parts[0]}.{parts[1]}".encode(), digest).digest()
    if not hmac.compare_digest(expected, signature):
        raise AuthFailure("jwt_verification", "Failed to verify Jwt token.")
    nonce = claims.get("nonce")
    if not isinstance(nonce, str) or not nonce:
        raise AuthFailure("invalid_query_payload", "nonce is missing from the Jwt payload.")
    if hashed:
        query_hash = claims.get("query_hash")
        alg = claims.get("query_hash_alg", "SHA512")
        if not isinstance(query_hash, str) or alg != "SHA512":
            raise AuthFailure("invalid_query_payload", "query_hash is missing from the Jwt payload.")
        if not hmac.compare_digest(hashlib.sha512(hashed.encode()).hexdigest(), query_hash.lower()):
            raise AuthFailure("invalid_query_payload", "query_hash does not match the request parameters.")
    # The nonce is spent only by a token that verified: a forged token cannot burn it.
    if not nonces.use(access_key, nonce):
        raise AuthFailure("nonce_used", "The nonce has already been used.")
    return access_key, header, claims


def upbit_query_for_hash(raw_query: str) -> str:
    """The query string as Upbit hashes it: exactly as sent, minus percent-encoding."""
    return unquote(raw_query)


def binance_payload_and_signature(raw_query: str, raw_body: str) -> tuple[str, str | None]:
    """Split ``signature=`` off the parameters; the signed payload is query + body with
    the signature parameter (which must come last in its part) removed."""
    signature: str | None = None

    def strip(part: str) -> str:
        nonlocal signature
        if not part:
            return part
        idx = part.rfind("signature=")
        if idx == -1 or (idx > 0 and part[idx - 1] != "&"):
            return part
        value = part[idx + len("signature="):]
        if "&" in value:  # not the last parameter: leave it in, the HMAC will not match
            return part
        signature = value
        return part[: max(idx - 1, 0)]

    q = strip(raw_query)
    b = strip(raw_body)
    return q + b, signature


def verify_binance_signature(secret: str, payload: str, signature: str) -> bool:
    expected = hmac.new(secret.encode(), payload.encode(), hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, signature.lower())
