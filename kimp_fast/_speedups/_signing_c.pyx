# cython: language_level=3, embedsignature=True, emit_code_comments=True
"""Request signing, compiled twin of ``_signing_py`` (keep them behaviourally identical).

The digests stay in OpenSSL through ``hashlib``/``hmac`` (STYLE R5): what this module
removes is the glue around them. The JWT payload is assembled, hex-encoded and
base64url-encoded in C buffers, the nonce is formatted from a pool of ``os.urandom``
bytes instead of a ``uuid.UUID`` object, the Binance query is built and hex-signed
without intermediate strings, and the HMAC context keyed once in ``__init__`` is copied
per request.
"""

import hashlib as _hashlib
import hmac as _hmac
import os as _os
from json.encoder import encode_basestring_ascii as _json_str  # what json.dumps uses

cimport cython
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from cpython.mem cimport PyMem_Free, PyMem_Malloc
from cpython.unicode cimport PyUnicode_AsUTF8String, PyUnicode_DecodeUTF8
from libc.string cimport memcpy, memset


cdef extern from "Python.h":
    object PyUnicode_New(Py_ssize_t size, Py_UCS4 maxchar)
    void* PyUnicode_DATA(object u)
    bint PyUnicode_IS_ASCII(object u)
    const char* PyUnicode_AsUTF8AndSize(object u, Py_ssize_t* size) except NULL


__all__ = [
    "BinanceSigner",
    "UpbitSigner",
    "binance_signature",
    "new_nonce",
    "upbit_jwt",
    "upbit_query_hash",
]

# The OpenSSL HMAC object copies cheaper than ``hmac.HMAC`` (no Python wrapper); fall
# back to ``hmac.new`` where ``_hashlib`` is missing or changed. Same digests either way.
try:
    from _hashlib import hmac_new as _openssl_hmac_new

    _openssl_hmac_new(b"k", b"", "sha256").copy()
except Exception:  # pragma: no cover
    _openssl_hmac_new = None


cdef object _new_mac(bytes key, str digest_name):
    if _openssl_hmac_new is not None:
        return _openssl_hmac_new(key, b"", digest_name)
    return _hmac.new(key, digestmod=digest_name)  # pragma: no cover


cdef object _sha512 = _hashlib.sha512
cdef object _urandom = _os.urandom
cdef dict _DIGEST_NAMES = {"HS256": "sha256", "HS512": "sha512"}
cdef dict _HEADERS = {
    "HS256": b"eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.",  # b64url('{"alg":"HS256","typ":"JWT"}') + "."
    "HS512": b"eyJhbGciOiJIUzUxMiIsInR5cCI6IkpXVCJ9.",
}

cdef const char* _HEX = b"0123456789abcdef"
cdef const char* _B64URL = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
cdef bytes _QH_OPEN = b',"query_hash":"'
cdef bytes _QH_CLOSE = b'","query_hash_alg":"SHA512"}'
cdef bytes _SIGNATURE = b"&signature="
cdef bytes _RECV_WINDOW = b"recvWindow="
cdef bytes _TIMESTAMP = b"timestamp="
cdef long long _MAX_MS = 9223372036854775807


# ---- C helpers ------------------------------------------------------------------------

cdef inline Py_ssize_t _b64url_len(Py_ssize_t n) noexcept:
    return (n // 3) * 4 + ((n % 3) * 4 + 2) // 3


cdef Py_ssize_t _b64url(const unsigned char* src, Py_ssize_t n, char* dst) noexcept:
    """Base64url without padding; returns the number of characters written."""
    cdef Py_ssize_t i = 0
    cdef Py_ssize_t o = 0
    cdef unsigned int v
    while i + 3 <= n:
        v = (<unsigned int>src[i] << 16) | (<unsigned int>src[i + 1] << 8) | src[i + 2]
        dst[o] = _B64URL[(v >> 18) & 63]
        dst[o + 1] = _B64URL[(v >> 12) & 63]
        dst[o + 2] = _B64URL[(v >> 6) & 63]
        dst[o + 3] = _B64URL[v & 63]
        i += 3
        o += 4
    if n - i == 1:
        v = <unsigned int>src[i] << 16
        dst[o] = _B64URL[(v >> 18) & 63]
        dst[o + 1] = _B64URL[(v >> 12) & 63]
        o += 2
    elif n - i == 2:
        v = (<unsigned int>src[i] << 16) | (<unsigned int>src[i + 1] << 8)
        dst[o] = _B64URL[(v >> 18) & 63]
        dst[o + 1] = _B64URL[(v >> 12) & 63]
        dst[o + 2] = _B64URL[(v >> 6) & 63]
        o += 3
    return o


cdef inline void _hex(const unsigned char* src, Py_ssize_t n, char* dst) noexcept:
    cdef Py_ssize_t i
    for i in range(n):
        dst[2 * i] = _HEX[src[i] >> 4]
        dst[2 * i + 1] = _HEX[src[i] & 15]


cdef inline Py_ssize_t _digits(long long v) noexcept:
    cdef Py_ssize_t n = 1
    while v >= 10:
        v //= 10
        n += 1
    return n


cdef inline Py_ssize_t _write_int(long long v, char* dst) noexcept:
    """Write a positive integer in decimal; returns the number of characters."""
    cdef Py_ssize_t n = _digits(v)
    cdef Py_ssize_t i = n
    while i > 0:
        i -= 1
        dst[i] = <char>(48 + v % 10)
        v //= 10
    return n


# ---- nonces ----------------------------------------------------------------------------

cdef enum:
    _POOL_SIZE = 4096  # 256 nonces per os.urandom call

cdef unsigned char _pool[_POOL_SIZE]
cdef Py_ssize_t _pool_pos = _POOL_SIZE


cdef int _take_random16(unsigned char* out) except -1:
    global _pool_pos
    cdef bytes fresh
    if _pool_pos + 16 > _POOL_SIZE:
        fresh = _urandom(_POOL_SIZE)
        memcpy(_pool, PyBytes_AS_STRING(fresh), _POOL_SIZE)
        _pool_pos = 0
    # No Python call between reading and advancing the position: under the GIL no other
    # thread can take the same bytes.
    memcpy(out, _pool + _pool_pos, 16)
    memset(_pool + _pool_pos, 0, 16)
    _pool_pos += 16
    return 0


def _discard_pool():
    """Forget buffered random bytes (after fork: the child must not reuse the parent's)."""
    global _pool_pos
    memset(_pool, 0, _POOL_SIZE)
    _pool_pos = _POOL_SIZE


if hasattr(_os, "register_at_fork"):
    _os.register_at_fork(after_in_child=_discard_pool)


cdef int _write_uuid4(char* dst) except -1:
    """Write a random version-4 UUID (36 characters, lowercase) to ``dst``."""
    cdef unsigned char r[16]
    _take_random16(r)
    r[6] = (r[6] & 0x0F) | 0x40  # version 4
    r[8] = (r[8] & 0x3F) | 0x80  # RFC 4122 variant
    _hex(r, 4, dst)
    dst[8] = 45  # '-'
    _hex(r + 4, 2, dst + 9)
    dst[13] = 45
    _hex(r + 6, 2, dst + 14)
    dst[18] = 45
    _hex(r + 8, 2, dst + 19)
    dst[23] = 45
    _hex(r + 10, 6, dst + 24)
    return 0


def new_nonce():
    """new_nonce() -> str

    Return a fresh random version-4 UUID string (36 characters, lowercase hex).
    """
    out = PyUnicode_New(36, 127)
    _write_uuid4(<char*>PyUnicode_DATA(out))
    return out


# ---- shared checks ----------------------------------------------------------------------

cdef bytes _key_bytes(object key, str what):
    if not isinstance(key, str):
        raise TypeError(f"{what} must be a str, not {type(key).__name__}")
    if not key:
        raise ValueError(f"{what} must not be empty")
    return PyUnicode_AsUTF8String(key)


cdef long long _check_ms(object value, str what) except -1:
    if type(value) is not int:  # bool is an int subclass: refuse it too
        raise TypeError(f"{what} must be an int, not {type(value).__name__}")
    if value <= 0:
        raise ValueError(f"{what} must be positive, got {value}")
    if value > _MAX_MS:
        raise ValueError(f"{what} is out of range, got {value}")
    return <long long>value


cdef str _mask(str key):
    # Enough to tell keys apart in logs, not enough to use one.
    return key[:4] + "…" if len(key) > 8 else "…"


def upbit_query_hash(query):
    """upbit_query_hash(query: str) -> str

    Lowercase hex SHA-512 of the exact query string (UTF-8), Upbit's ``query_hash``.
    """
    if not isinstance(query, str):
        raise TypeError(f"query must be a str, not {type(query).__name__}")
    return _sha512(PyUnicode_AsUTF8String(query)).hexdigest()


def binance_signature(secret_key, payload):
    """binance_signature(secret_key: str, payload: str) -> str

    Lowercase hex HMAC-SHA256 of ``payload`` keyed with ``secret_key`` (Binance SIGNED).
    """
    cdef bytes key = _key_bytes(secret_key, "secret_key")
    if not isinstance(payload, str):
        raise TypeError(f"payload must be a str, not {type(payload).__name__}")
    mac = _new_mac(key, "sha256")
    mac.update(PyUnicode_AsUTF8String(payload))
    return mac.hexdigest()


def upbit_jwt(access_key, secret_key, query=None, *, nonce=None, alg="HS256"):
    """upbit_jwt(access_key: str, secret_key: str, query: str | None = None, *, nonce: str | None = None, alg: str = "HS256") -> str

    Build Upbit's compact JWS (without ``Bearer``); byte-identical to
    ``jwt.encode(claims, secret_key, algorithm=alg)``. See the pure twin for details.
    """
    return UpbitSigner(access_key, secret_key, alg)._token(query, nonce)


# ---- Upbit ------------------------------------------------------------------------------

@cython.final
@cython.auto_pickle(False)
cdef class UpbitSigner:
    """UpbitSigner(access_key: str, secret_key: str, alg: str = "HS256")

    Upbit JWT signer with the keys prepared once. The secret lives only inside a keyed
    HMAC context that is copied per request; the signer refuses to be pickled or copied.
    """

    cdef str _access_key
    cdef str _alg
    cdef object _mac_copy  # bound ``copy`` of the keyed HMAC context
    cdef bytes _header     # base64url(header) + "."
    cdef bytes _prefix     # '{"access_key":"...","nonce":'

    def __init__(self, access_key, secret_key, alg="HS256"):
        if not isinstance(access_key, str):
            raise TypeError(f"access_key must be a str, not {type(access_key).__name__}")
        if not access_key:
            raise ValueError("access_key must not be empty")
        if alg not in _DIGEST_NAMES:
            raise ValueError(f"unsupported JWT algorithm {alg!r}; expected 'HS256' or 'HS512'")
        self._mac_copy = _new_mac(_key_bytes(secret_key, "secret_key"), _DIGEST_NAMES[alg]).copy
        self._alg = alg
        self._access_key = access_key
        self._header = _HEADERS[alg]
        self._prefix = ('{"access_key":' + _json_str(access_key) + ',"nonce":').encode("ascii")

    @property
    def access_key(self):
        return self._access_key

    @property
    def alg(self):
        return self._alg

    def token(self, query=None, nonce=None):
        """token(self, query: str | None = None, nonce: str | None = None) -> str

        Return the JWT for one request; see :func:`upbit_jwt`.
        """
        return self._token(query, nonce)

    def authorization(self, query=None):
        """authorization(self, query: str | None = None) -> str

        Return the ``Authorization`` header value: ``"Bearer " + token`` (fresh nonce).
        """
        return "Bearer " + self._token(query, None)

    cdef str _token(self, object query, object nonce):
        cdef char stack_buf[1024]
        cdef char* payload = stack_buf
        cdef char* heap = NULL
        cdef bytes nonce_json = None
        cdef bytes digest = None
        cdef bytes signing_input
        cdef bytes sig
        cdef char* p
        cdef char* o
        cdef Py_ssize_t nonce_len, plen, pos, hlen, n, slen

        if nonce is None:
            nonce_len = 38  # '"' + 36 + '"'
        elif not isinstance(nonce, str):
            raise TypeError(f"nonce must be a str, not {type(nonce).__name__}")
        elif not nonce:
            raise ValueError("nonce must not be empty")
        else:
            nonce_json = (<str>_json_str(nonce)).encode("ascii")
            nonce_len = PyBytes_GET_SIZE(nonce_json)
        if query is not None and not isinstance(query, str):
            raise TypeError(f"query must be a str, not {type(query).__name__}")
        if query:  # None and "" mean "no parameters": no query_hash claims
            digest = _sha512(PyUnicode_AsUTF8String(query)).digest()

        plen = PyBytes_GET_SIZE(self._prefix) + nonce_len + 1
        if digest is not None:
            plen += PyBytes_GET_SIZE(_QH_OPEN) + 128 + PyBytes_GET_SIZE(_QH_CLOSE) - 1
        if plen > 1024:
            heap = <char*>PyMem_Malloc(plen)
            if heap == NULL:
                raise MemoryError()
            payload = heap
        try:
            pos = PyBytes_GET_SIZE(self._prefix)
            memcpy(payload, PyBytes_AS_STRING(self._prefix), pos)
            if nonce_json is None:
                payload[pos] = 34  # '"'
                _write_uuid4(payload + pos + 1)
                payload[pos + 37] = 34
            else:
                memcpy(payload + pos, PyBytes_AS_STRING(nonce_json), nonce_len)
            pos += nonce_len
            if digest is None:
                payload[pos] = 125  # '}'
                pos += 1
            else:
                n = PyBytes_GET_SIZE(_QH_OPEN)
                memcpy(payload + pos, PyBytes_AS_STRING(_QH_OPEN), n)
                pos += n
                _hex(<const unsigned char*>PyBytes_AS_STRING(digest), 64, payload + pos)
                pos += 128
                n = PyBytes_GET_SIZE(_QH_CLOSE)
                memcpy(payload + pos, PyBytes_AS_STRING(_QH_CLOSE), n)
                pos += n
            hlen = PyBytes_GET_SIZE(self._header)
            n = hlen + _b64url_len(pos)
            signing_input = PyBytes_FromStringAndSize(NULL, n)
            p = PyBytes_AS_STRING(signing_input)
            memcpy(p, PyBytes_AS_STRING(self._header), hlen)
            _b64url(<const unsigned char*>payload, pos, p + hlen)
        finally:
            if heap != NULL:
                PyMem_Free(heap)

        mac = self._mac_copy()
        mac.update(signing_input)
        sig = mac.digest()
        slen = PyBytes_GET_SIZE(sig)
        out = PyUnicode_New(n + 1 + _b64url_len(slen), 127)
        o = <char*>PyUnicode_DATA(out)
        memcpy(o, p, n)
        o[n] = 46  # '.'
        _b64url(<const unsigned char*>PyBytes_AS_STRING(sig), slen, o + n + 1)
        return <str>out

    def __repr__(self):
        return f"UpbitSigner(access_key={_mask(self._access_key)!r}, alg={self._alg!r})"

    def __reduce__(self):
        raise TypeError("UpbitSigner holds a secret and cannot be pickled or copied")


# ---- Binance ----------------------------------------------------------------------------

@cython.final
@cython.auto_pickle(False)
cdef class BinanceSigner:
    """BinanceSigner(api_key: str, secret_key: str)

    Binance HMAC-SHA256 signer with the secret prepared once (a keyed HMAC context).
    """

    cdef str _api_key
    cdef object _mac_copy

    def __init__(self, api_key, secret_key):
        if not isinstance(api_key, str):
            raise TypeError(f"api_key must be a str, not {type(api_key).__name__}")
        if not api_key:
            raise ValueError("api_key must not be empty")
        self._mac_copy = _new_mac(_key_bytes(secret_key, "secret_key"), "sha256").copy
        self._api_key = api_key

    @property
    def api_key(self):
        """The API key (sent in ``X-MBX-APIKEY``; not a secret, but masked in ``repr``)."""
        return self._api_key

    def sign(self, payload):
        """sign(self, payload: str) -> str

        Lowercase hex HMAC-SHA256 of ``payload`` (UTF-8).
        """
        if not isinstance(payload, str):
            raise TypeError(f"payload must be a str, not {type(payload).__name__}")
        mac = self._mac_copy()
        mac.update(PyUnicode_AsUTF8String(payload))
        return mac.hexdigest()

    def signed_query(self, params, timestamp_ms, recv_window_ms=5000):
        """signed_query(self, params: str, timestamp_ms: int, recv_window_ms: int | None = 5000) -> str

        Return ``f"{params}&recvWindow={rw}&timestamp={ts}&signature={hex}"`` (no leading
        ``&`` when ``params`` is empty, no ``recvWindow`` when ``recv_window_ms`` is None).
        """
        cdef const char* pp
        cdef Py_ssize_t plen, mlen, pos, n
        cdef long long ts, rw = 0
        cdef bint has_rw = recv_window_ms is not None
        cdef bytes msg
        cdef bytes digest
        cdef char* m
        cdef char* o
        if not isinstance(params, str):
            raise TypeError(f"params must be a str, not {type(params).__name__}")
        ts = _check_ms(timestamp_ms, "timestamp_ms")
        if has_rw:
            rw = _check_ms(recv_window_ms, "recv_window_ms")
        pp = PyUnicode_AsUTF8AndSize(params, &plen)

        mlen = plen + (1 if plen else 0) + PyBytes_GET_SIZE(_TIMESTAMP) + _digits(ts)
        if has_rw:
            mlen += PyBytes_GET_SIZE(_RECV_WINDOW) + _digits(rw) + 1
        msg = PyBytes_FromStringAndSize(NULL, mlen)
        m = PyBytes_AS_STRING(msg)
        memcpy(m, pp, plen)
        pos = plen
        if plen:
            m[pos] = 38  # '&'
            pos += 1
        if has_rw:
            n = PyBytes_GET_SIZE(_RECV_WINDOW)
            memcpy(m + pos, PyBytes_AS_STRING(_RECV_WINDOW), n)
            pos += n
            pos += _write_int(rw, m + pos)
            m[pos] = 38
            pos += 1
        n = PyBytes_GET_SIZE(_TIMESTAMP)
        memcpy(m + pos, PyBytes_AS_STRING(_TIMESTAMP), n)
        pos += n
        pos += _write_int(ts, m + pos)

        mac = self._mac_copy()
        mac.update(msg)
        digest = mac.digest()
        n = PyBytes_GET_SIZE(_SIGNATURE)
        if PyUnicode_IS_ASCII(params):
            out = PyUnicode_New(mlen + n + 64, 127)
            o = <char*>PyUnicode_DATA(out)
        else:
            out = PyBytes_FromStringAndSize(NULL, mlen + n + 64)
            o = PyBytes_AS_STRING(out)
        memcpy(o, m, mlen)
        memcpy(o + mlen, PyBytes_AS_STRING(_SIGNATURE), n)
        _hex(<const unsigned char*>PyBytes_AS_STRING(digest), 32, o + mlen + n)
        if PyUnicode_IS_ASCII(params):
            return out
        return PyUnicode_DecodeUTF8(o, mlen + n + 64, NULL)

    def __repr__(self):
        return f"BinanceSigner(api_key={_mask(self._api_key)!r})"

    def __reduce__(self):
        raise TypeError("BinanceSigner holds a secret and cannot be pickled or copied")
