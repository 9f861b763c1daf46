# cython: language_level=3, embedsignature=True, emit_code_comments=True
"""Request signing, compiled twin of ``_signing_py`` (keep them behaviourally identical).

The digests stay in OpenSSL through ``hashlib``/``hmac`` (STYLE R5): what this module
removes is the glue around them. The JWT payload is assembled, hex-encoded and
base64url-encoded in C buffers, the nonce is formatted from a pool of ``os.urandom``
bytes instead of a ``uuid.UUID`` object, the Binance query is built and hex-signed
without intermediate strings.

Two digest back ends, identical results:

* **direct** (when setup.py found the OpenSSL headers and libcrypto): ``_hmac_shim.h``
  keeps the two key-padded digest states per signer and runs OpenSSL's SHA-256/512 on the
  bytes where they are assembled (no Python objects, no EVP context copies);
* **hashlib**: an HMAC context keyed once in ``__init__`` and copied per request.

``OPENSSL_DIRECT`` says which one this build uses.
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


cdef extern from "_hmac_shim.h":
    ctypedef struct kf_hmac:
        int alg
    int KF_HAVE_OPENSSL
    int kf_hmac_init(kf_hmac* h, int alg, const unsigned char* key, size_t keylen) nogil
    int kf_hmac_sign(const kf_hmac* h, const unsigned char* msg, size_t n, unsigned char* out) nogil
    int kf_sha512(const unsigned char* msg, size_t n, unsigned char* out) nogil
    void kf_hmac_clear(kf_hmac* h) nogil


OPENSSL_DIRECT = bool(KF_HAVE_OPENSSL)
"""True when this build signs with libcrypto's digests directly (see the module docstring)."""

cdef bint _direct = KF_HAVE_OPENSSL


def _use_direct_digests(flag):
    """Testing hook: switch new signers and the module functions between the back ends.

    Returns the previous setting. Turning the direct back end on in a build without it
    does nothing.
    """
    global _direct
    previous = bool(_direct)
    _direct = bool(flag) and KF_HAVE_OPENSSL
    return previous


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


cdef str _hex_str(const unsigned char* digest, Py_ssize_t n):
    out = PyUnicode_New(2 * n, 127)
    _hex(digest, n, <char*>PyUnicode_DATA(out))
    return <str>out


def upbit_query_hash(query):
    """upbit_query_hash(query: str) -> str

    Lowercase hex SHA-512 of the exact query string (UTF-8), Upbit's ``query_hash``.
    """
    cdef const char* q
    cdef Py_ssize_t n = 0
    cdef unsigned char digest[64]
    if not isinstance(query, str):
        raise TypeError(f"query must be a str, not {type(query).__name__}")
    if _direct:
        q = PyUnicode_AsUTF8AndSize(query, &n)
        if kf_sha512(<const unsigned char*>q, n, digest):
            return _hex_str(digest, 64)
    return _sha512(PyUnicode_AsUTF8String(query)).hexdigest()


def binance_signature(secret_key, payload):
    """binance_signature(secret_key: str, payload: str) -> str

    Lowercase hex HMAC-SHA256 of ``payload`` keyed with ``secret_key`` (Binance SIGNED).
    """
    cdef bytes key = _key_bytes(secret_key, "secret_key")
    cdef kf_hmac h
    cdef unsigned char mac[64]
    cdef const char* m
    cdef Py_ssize_t n = 0
    cdef int ok = 0
    if not isinstance(payload, str):
        raise TypeError(f"payload must be a str, not {type(payload).__name__}")
    if _direct:
        m = PyUnicode_AsUTF8AndSize(payload, &n)
        ok = kf_hmac_init(&h, 256, <const unsigned char*>PyBytes_AS_STRING(key), PyBytes_GET_SIZE(key))
        ok = ok and kf_hmac_sign(&h, <const unsigned char*>m, n, mac)
        kf_hmac_clear(&h)
        if ok:
            return _hex_str(mac, 32)
    mac_obj = _new_mac(key, "sha256")
    mac_obj.update(PyUnicode_AsUTF8String(payload))
    return mac_obj.hexdigest()


def upbit_jwt(access_key, secret_key, query=None, *, nonce=None, alg="HS256"):
    """upbit_jwt(access_key: str, secret_key: str, query: str | None = None, *, nonce: str | None = None, alg: str = "HS256") -> str

    Build Upbit's compact JWS (without ``Bearer``); byte-identical to
    ``jwt.encode(claims, secret_key, algorithm=alg)``. See the pure twin for details.
    """
    return UpbitSigner(access_key, secret_key, alg)._token(query, nonce)


@cython.internal
@cython.auto_pickle(False)
cdef class _Keyed:
    """The secret, prepared once: direct digest states, or a keyed hashlib HMAC context."""

    cdef kf_hmac _h
    cdef bint _direct
    cdef object _mac_copy  # bound ``copy`` of the keyed hashlib HMAC context
    cdef Py_ssize_t _mac_len

    cdef int _key(self, bytes key, int bits) except -1:
        self._mac_len = bits // 8
        self._direct = _direct and kf_hmac_init(
            &self._h, bits, <const unsigned char*>PyBytes_AS_STRING(key), PyBytes_GET_SIZE(key)
        )
        if not self._direct:
            self._mac_copy = _new_mac(key, "sha512" if bits == 512 else "sha256").copy
        return 0

    cdef int _sign_into(self, const char* msg, Py_ssize_t n, unsigned char* out) except -1:
        """MAC of ``msg[:n]`` into ``out`` (``_mac_len`` bytes)."""
        cdef bytes digest
        if self._direct:
            if kf_hmac_sign(&self._h, <const unsigned char*>msg, n, out) != self._mac_len:
                raise RuntimeError("HMAC computation failed in libcrypto")
            return 0
        mac = self._mac_copy()
        mac.update(PyBytes_FromStringAndSize(msg, n))
        digest = mac.digest()
        memcpy(out, PyBytes_AS_STRING(digest), self._mac_len)
        return 0

    def __dealloc__(self):
        kf_hmac_clear(&self._h)

    def __reduce__(self):
        raise TypeError(f"{type(self).__name__} holds a secret and cannot be pickled or copied")


# ---- Upbit ------------------------------------------------------------------------------

@cython.final
@cython.auto_pickle(False)
cdef class UpbitSigner(_Keyed):
    """UpbitSigner(access_key: str, secret_key: str, alg: str = "HS256")

    Upbit JWT signer with the keys prepared once. The secret lives only in the prepared
    digest states (never as an attribute); the signer refuses to be pickled or copied.
    """

    cdef str _access_key
    cdef str _alg
    cdef bytes _header     # base64url(header) + "."
    cdef bytes _prefix     # '{"access_key":"...","nonce":'

    def __init__(self, access_key, secret_key, alg="HS256"):
        if not isinstance(access_key, str):
            raise TypeError(f"access_key must be a str, not {type(access_key).__name__}")
        if not access_key:
            raise ValueError("access_key must not be empty")
        if alg not in _DIGEST_NAMES:
            raise ValueError(f"unsupported JWT algorithm {alg!r}; expected 'HS256' or 'HS512'")
        self._key(_key_bytes(secret_key, "secret_key"), 512 if alg == "HS512" else 256)
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
        cdef bytes digest_obj = None
        cdef unsigned char digest[64]
        cdef unsigned char sig[64]
        cdef bint has_query = False
        cdef const char* q
        cdef char* o
        cdef Py_ssize_t qlen = 0, nonce_len, plen, pos, hlen, n

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
            has_query = True
            if self._direct:
                q = PyUnicode_AsUTF8AndSize(query, &qlen)
                if not kf_sha512(<const unsigned char*>q, qlen, digest):
                    raise RuntimeError("SHA-512 computation failed in libcrypto")
            else:
                digest_obj = _sha512(PyUnicode_AsUTF8String(query)).digest()
                memcpy(digest, PyBytes_AS_STRING(digest_obj), 64)

        plen = PyBytes_GET_SIZE(self._prefix) + nonce_len + 1
        if has_query:
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
            if has_query:
                n = PyBytes_GET_SIZE(_QH_OPEN)
                memcpy(payload + pos, PyBytes_AS_STRING(_QH_OPEN), n)
                pos += n
                _hex(digest, 64, payload + pos)
                pos += 128
                n = PyBytes_GET_SIZE(_QH_CLOSE)
                memcpy(payload + pos, PyBytes_AS_STRING(_QH_CLOSE), n)
                pos += n
            else:
                payload[pos] = 125  # '}'
                pos += 1
            # The token is assembled in place: header.payload, signed, then .signature.
            hlen = PyBytes_GET_SIZE(self._header)
            n = hlen + _b64url_len(pos)
            out = PyUnicode_New(n + 1 + _b64url_len(self._mac_len), 127)
            o = <char*>PyUnicode_DATA(out)
            memcpy(o, PyBytes_AS_STRING(self._header), hlen)
            _b64url(<const unsigned char*>payload, pos, o + hlen)
        finally:
            if heap != NULL:
                PyMem_Free(heap)
        self._sign_into(o, n, sig)
        o[n] = 46  # '.'
        _b64url(sig, self._mac_len, o + n + 1)
        return <str>out

    def __repr__(self):
        return f"UpbitSigner(access_key={_mask(self._access_key)!r}, alg={self._alg!r})"

    def __reduce__(self):
        raise TypeError("UpbitSigner holds a secret and cannot be pickled or copied")


# ---- Binance ----------------------------------------------------------------------------

@cython.final
@cython.auto_pickle(False)
cdef class BinanceSigner(_Keyed):
    """BinanceSigner(api_key: str, secret_key: str)

    Binance HMAC-SHA256 signer with the secret prepared once.
    """

    cdef str _api_key

    def __init__(self, api_key, secret_key):
        if not isinstance(api_key, str):
            raise TypeError(f"api_key must be a str, not {type(api_key).__name__}")
        if not api_key:
            raise ValueError("api_key must not be empty")
        self._key(_key_bytes(secret_key, "secret_key"), 256)
        self._api_key = api_key

    @property
    def api_key(self):
        """The API key (sent in ``X-MBX-APIKEY``; not a secret, but masked in ``repr``)."""
        return self._api_key

    def sign(self, payload):
        """sign(self, payload: str) -> str

        Lowercase hex HMAC-SHA256 of ``payload`` (UTF-8).
        """
        cdef const char* m
        cdef Py_ssize_t n = 0
        cdef unsigned char mac[32]
        if not isinstance(payload, str):
            raise TypeError(f"payload must be a str, not {type(payload).__name__}")
        m = PyUnicode_AsUTF8AndSize(payload, &n)
        self._sign_into(m, n, mac)
        return _hex_str(mac, 32)

    def signed_query(self, params, timestamp_ms, recv_window_ms=5000):
        """signed_query(self, params: str, timestamp_ms: int, recv_window_ms: int | None = 5000) -> str

        Return ``f"{params}&recvWindow={rw}&timestamp={ts}&signature={hex}"`` (no leading
        ``&`` when ``params`` is empty, no ``recvWindow`` when ``recv_window_ms`` is None).
        """
        cdef const char* pp
        cdef Py_ssize_t plen = 0, mlen, pos, n = 0, total
        cdef long long ts, rw = 0
        cdef bint has_rw = recv_window_ms is not None
        cdef bint ascii
        cdef unsigned char mac[32]
        cdef char* m
        if not isinstance(params, str):
            raise TypeError(f"params must be a str, not {type(params).__name__}")
        ts = _check_ms(timestamp_ms, "timestamp_ms")
        if has_rw:
            rw = _check_ms(recv_window_ms, "recv_window_ms")
        pp = PyUnicode_AsUTF8AndSize(params, &plen)
        ascii = PyUnicode_IS_ASCII(params)

        mlen = plen + (1 if plen else 0) + PyBytes_GET_SIZE(_TIMESTAMP) + _digits(ts)
        if has_rw:
            mlen += PyBytes_GET_SIZE(_RECV_WINDOW) + _digits(rw) + 1
        total = mlen + PyBytes_GET_SIZE(_SIGNATURE) + 64
        # Assembled in place: ASCII (the normal case) straight into the result string.
        if ascii:
            out = PyUnicode_New(total, 127)
            m = <char*>PyUnicode_DATA(out)
        else:
            out = PyBytes_FromStringAndSize(NULL, total)
            m = PyBytes_AS_STRING(out)
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
        self._sign_into(m, mlen, mac)
        n = PyBytes_GET_SIZE(_SIGNATURE)
        memcpy(m + mlen, PyBytes_AS_STRING(_SIGNATURE), n)
        _hex(mac, 32, m + mlen + n)
        if ascii:
            return out
        return PyUnicode_DecodeUTF8(m, total, NULL)

    def __repr__(self):
        return f"BinanceSigner(api_key={_mask(self._api_key)!r})"

    def __reduce__(self):
        raise TypeError("BinanceSigner holds a secret and cannot be pickled or copied")
