"""Signing: published vectors, byte-identity with pyjwt, and compiled == pure.

Every behavioural test takes ``signing_impl`` (both twins, see conftest). The vectors in
``tests/vectors/signing.json`` are copied from the project's shared vectors (Binance's
documentation examples; Upbit hashes and an HS512 token computed from Upbit's scheme).
"""

from __future__ import annotations

import base64
import copy
import hashlib
import hmac
import json
import os
import pickle
import uuid
import warnings
from pathlib import Path

import jwt
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

VECTORS = json.loads((Path(__file__).parent / "vectors" / "signing.json").read_text("utf-8"))
BINANCE = VECTORS["binance_hmac_sha256"]
UPBIT_HASHES = VECTORS["upbit_query_hash_sha512"]
UPBIT_JWT = VECTORS["upbit_jwt"]
NONCE = "00000000-0000-4000-8000-000000000000"

keys = st.text(min_size=1, max_size=80)
queries = st.one_of(st.none(), st.text(max_size=300))
nonces = st.text(min_size=1, max_size=60)
algs = st.sampled_from(["HS256", "HS512"])
FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _b64url_json(obj_json: str) -> str:
    return base64.urlsafe_b64encode(obj_json.encode()).rstrip(b"=").decode()


def pyjwt_token(access_key: str, secret: str, query: str | None, nonce: str, alg: str) -> str:
    claims = {"access_key": access_key, "nonce": nonce}
    if query:
        claims["query_hash"] = hashlib.sha512(query.encode()).hexdigest()
        claims["query_hash_alg"] = "SHA512"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pyjwt warns about short HMAC keys
        return jwt.encode(claims, secret, algorithm=alg)


# ---- published vectors ------------------------------------------------------------------


@pytest.mark.parametrize("vec", BINANCE, ids=lambda v: v["source"][:30])
def test_binance_signature_matches_docs(signing_impl, vec):
    assert signing_impl.binance_signature(vec["secret"], vec["payload"]) == vec["signature"]
    signer = signing_impl.BinanceSigner("api-key", vec["secret"])
    assert signer.sign(vec["payload"]) == vec["signature"]


def test_binance_signed_query_reproduces_doc_example(signing_impl):
    vec = BINANCE[0]
    params, _, tail = vec["payload"].partition("&recvWindow=")
    recv_window, _, ts = tail.partition("&timestamp=")
    signer = signing_impl.BinanceSigner(vec["api_key"], vec["secret"])
    out = signer.signed_query(params, int(ts), int(recv_window))
    assert out == vec["payload"] + "&signature=" + vec["signature"]


@pytest.mark.parametrize("vec", UPBIT_HASHES, ids=lambda v: v["query"][:20])
def test_upbit_query_hash_vectors(signing_impl, vec):
    assert signing_impl.upbit_query_hash(vec["query"]) == vec["hash"]


@pytest.mark.parametrize("vec", UPBIT_JWT, ids=lambda v: v["alg"])
def test_upbit_jwt_vector(signing_impl, vec):
    payload = json.loads(vec["payload_json"])
    query = next(q["query"] for q in UPBIT_HASHES if q["hash"] == payload["query_hash"])
    token = signing_impl.upbit_jwt(
        payload["access_key"], vec["secret"], query, nonce=payload["nonce"], alg=vec["alg"]
    )
    header, body, signature = token.split(".")
    assert header == _b64url_json(vec["header_json"])
    assert body == _b64url_json(vec["payload_json"])
    assert signature == vec["signature_segment"]


# ---- pyjwt is the reference for the JWT bytes ---------------------------------------------


@pytest.mark.parametrize("alg", ["HS256", "HS512"])
@pytest.mark.parametrize("query", [None, "", "market=KRW-BTC", "uuids[]=a&uuids[]=b", "é=ü"])
def test_upbit_jwt_equals_pyjwt(signing_impl, alg, query):
    expected = pyjwt_token("access", "secret-key", query, NONCE, alg)
    assert signing_impl.upbit_jwt("access", "secret-key", query, nonce=NONCE, alg=alg) == expected
    signer = signing_impl.UpbitSigner("access", "secret-key", alg)
    assert signer.token(query, NONCE) == expected


def test_upbit_jwt_escapes_like_json_dumps(signing_impl):
    # Quotes, backslashes, control characters, non-ASCII and astral characters.
    access = 'a"b\\c\n\x00\x7fé€😀'
    nonce = "n\t\u2028😀"
    expected = pyjwt_token(access, "s", "q=1", nonce, "HS256")
    assert signing_impl.upbit_jwt(access, "s", "q=1", nonce=nonce) == expected


@FAST
@given(access=keys, secret=keys, query=queries, nonce=nonces, alg=algs)
def test_upbit_jwt_equals_pyjwt_random(signing_impl, access, secret, query, nonce, alg):
    try:
        expected = pyjwt_token(access, secret, query, nonce, alg)
    except jwt.InvalidKeyError:  # pyjwt refuses PEM/JWK-looking secrets
        assume(False)
    assert signing_impl.upbit_jwt(access, secret, query, nonce=nonce, alg=alg) == expected
    assert signing_impl.UpbitSigner(access, secret, alg).token(query, nonce) == expected


def test_fresh_nonce_token_verifies_with_pyjwt(signing_impl):
    secret = "a-secret-key-of-decent-length-for-hs512-0123456789abcdefghijklmnop"
    signer = signing_impl.UpbitSigner("ak", secret, "HS512")
    header = signer.authorization("market=KRW-BTC")
    assert header.startswith("Bearer ")
    claims = jwt.decode(header[7:], secret, algorithms=["HS512"])
    assert list(claims) == ["access_key", "nonce", "query_hash", "query_hash_alg"]
    assert claims["query_hash"] == hashlib.sha512(b"market=KRW-BTC").hexdigest()
    assert uuid.UUID(claims["nonce"]).version == 4
    no_params = jwt.decode(signer.token(), secret, algorithms=["HS512"])
    assert list(no_params) == ["access_key", "nonce"]


def test_every_token_has_a_fresh_nonce(signing_impl):
    signer = signing_impl.UpbitSigner("ak", "sk")
    tokens = [signer.token("a=1") for _ in range(500)]
    nonces = {json.loads(base64.urlsafe_b64decode(t.split(".")[1] + "=="))["nonce"] for t in tokens}
    assert len(nonces) == 500


# ---- nonces -----------------------------------------------------------------------------


def test_new_nonce_is_uuid4(signing_impl):
    seen = set()
    for _ in range(3000):  # crosses several refills of the compiled twin's random pool
        s = signing_impl.new_nonce()
        u = uuid.UUID(s)
        assert u.version == 4 and u.variant == uuid.RFC_4122
        assert str(u) == s
        seen.add(s)
    assert len(seen) == 3000


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_forked_child_does_not_repeat_parent_nonces(signing_impl):
    signing_impl.new_nonce()  # fill the pool before forking
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # child
        try:
            os.write(w, "\n".join(signing_impl.new_nonce() for _ in range(20)).encode())
        finally:
            os._exit(0)
    os.close(w)
    with os.fdopen(r) as f:
        child = set(f.read().split("\n"))
    os.waitpid(pid, 0)
    parent = {signing_impl.new_nonce() for _ in range(20)}
    assert len(child) == 20
    assert not parent & child


# ---- Binance query assembly ---------------------------------------------------------------


def test_signed_query_shapes(signing_impl):
    s = signing_impl.BinanceSigner("k", "secret")
    assert s.signed_query("", 1700000000000, None) == (
        "timestamp=1700000000000&signature=" + s.sign("timestamp=1700000000000")
    )
    assert s.signed_query("", 1700000000000).startswith("recvWindow=5000&timestamp=1700000000000&")
    out = s.signed_query("symbol=BTCUSDT", 5, 7)
    prefix, _, sig = out.partition("&signature=")
    assert prefix == "symbol=BTCUSDT&recvWindow=7&timestamp=5"
    assert sig == hmac.new(b"secret", prefix.encode(), hashlib.sha256).hexdigest()


@pytest.mark.parametrize(
    ("ts", "rw", "exc"),
    [
        (True, 5000, TypeError),
        (1.5, 5000, TypeError),
        ("1", 5000, TypeError),
        (0, 5000, ValueError),
        (-1, 5000, ValueError),
        (2**63, 5000, ValueError),
        (1, 0, ValueError),
        (1, False, TypeError),
        (1, 5000.0, TypeError),
    ],
)
def test_signed_query_rejects_bad_times(signing_impl, ts, rw, exc):
    with pytest.raises(exc):
        signing_impl.BinanceSigner("k", "s").signed_query("a=1", ts, rw)


# ---- errors and secrecy -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("call", "exc"),
    [
        (lambda m: m.upbit_jwt("a", "s", alg="HS384"), ValueError),
        (lambda m: m.upbit_jwt("a", "s", alg="none"), ValueError),
        (lambda m: m.upbit_jwt("a", b"s"), TypeError),
        (lambda m: m.upbit_jwt(1, "s"), TypeError),
        (lambda m: m.upbit_jwt("a", ""), ValueError),
        (lambda m: m.upbit_jwt("", "s"), ValueError),
        (lambda m: m.upbit_jwt("a", "s", b"q=1"), TypeError),
        (lambda m: m.upbit_jwt("a", "s", nonce=5), TypeError),
        (lambda m: m.upbit_jwt("a", "s", nonce=""), ValueError),
        (lambda m: m.UpbitSigner("a", None), TypeError),
        (lambda m: m.binance_signature(b"k", "p"), TypeError),
        (lambda m: m.binance_signature("k", b"p"), TypeError),
        (lambda m: m.binance_signature("", "p"), ValueError),
        (lambda m: m.BinanceSigner(None, "s"), TypeError),
        (lambda m: m.BinanceSigner("k", 5), TypeError),
        (lambda m: m.BinanceSigner("k", "s").sign(None), TypeError),
        (lambda m: m.BinanceSigner("k", "s").signed_query(None, 1), TypeError),
        (lambda m: m.upbit_query_hash(None), TypeError),
    ],
)
def test_bad_input_raises_typed_errors(signing_impl, call, exc):
    with pytest.raises(exc):
        call(signing_impl)


SECRET = "TOP-SECRET-0123456789abcdef"


@pytest.mark.parametrize("kind", ["upbit", "binance"])
def test_secret_never_leaks(signing_impl, kind):
    if kind == "upbit":
        signer = signing_impl.UpbitSigner("access-key-123456", SECRET)
    else:
        signer = signing_impl.BinanceSigner("api-key-123456", SECRET)
    assert SECRET not in repr(signer) and SECRET not in str(signer)
    assert "access-key-123456" not in repr(signer) and "api-key-123456" not in repr(signer)
    for attempt in (pickle.dumps, copy.copy, copy.deepcopy):
        with pytest.raises(TypeError, match="secret"):
            attempt(signer)
    assert not any(SECRET in str(getattr(signer, a, "")) for a in dir(signer))


def test_binance_api_key_is_read_only(signing_impl):
    signer = signing_impl.BinanceSigner("my-api-key", "s")
    assert signer.api_key == "my-api-key"
    with pytest.raises(AttributeError):
        signer.api_key = "other"
    assert signing_impl.UpbitSigner("ak", "sk").access_key == "ak"


# ---- compiled == pure -------------------------------------------------------------------


@pytest.fixture(scope="module")
def twins(hot_path_twins):
    return hot_path_twins[0].signing, hot_path_twins[1].signing


def _outcome(fn, *args, **kwargs):
    try:
        return ("ok", fn(*args, **kwargs))
    except Exception as exc:  # noqa: BLE001 - compare the failure type across twins
        return ("error", type(exc))


junk = st.one_of(st.none(), st.integers(), st.binary(max_size=5), st.text(max_size=8))


@pytest.mark.c_extension
@FAST
@given(
    access=st.one_of(keys, junk),
    secret=st.one_of(keys, junk),
    query=st.one_of(queries, junk),
    nonce=st.one_of(nonces, junk),
    alg=st.one_of(algs, st.text(max_size=5)),
)
def test_compiled_equals_pure_upbit(twins, access, secret, query, nonce, alg):
    c, py = twins
    if nonce is None:  # fresh nonces differ by design; compare with a fixed one
        nonce = NONCE
    assert _outcome(c.upbit_jwt, access, secret, query, nonce=nonce, alg=alg) == _outcome(
        py.upbit_jwt, access, secret, query, nonce=nonce, alg=alg
    )
    assert _outcome(c.upbit_query_hash, query) == _outcome(py.upbit_query_hash, query)


@pytest.mark.c_extension
@FAST
@given(
    secret=st.one_of(keys, junk),
    params=st.one_of(st.text(max_size=300), junk),
    ts=st.one_of(st.integers(min_value=-5, max_value=2**64), junk),
    rw=st.one_of(st.none(), st.integers(min_value=-5, max_value=10**7), junk),
)
def test_compiled_equals_pure_binance(twins, secret, params, ts, rw):
    c, py = twins
    assert _outcome(c.binance_signature, secret, params) == _outcome(
        py.binance_signature, secret, params
    )
    try:
        signers = c.BinanceSigner("k", secret), py.BinanceSigner("k", secret)
    except (TypeError, ValueError) as exc:
        with pytest.raises(type(exc)):
            py.BinanceSigner("k", secret)
        return
    assert _outcome(signers[0].signed_query, params, ts, rw) == _outcome(
        signers[1].signed_query, params, ts, rw
    )
    assert _outcome(signers[0].sign, params) == _outcome(signers[1].sign, params)


# ---- the compiled twin's two digest back ends ------------------------------------------------


@pytest.fixture
def hashlib_backend(hot_path_twins):
    """The compiled twin with its libcrypto back end switched off (hashlib instead)."""
    c = hot_path_twins[0].signing
    previous = c._use_direct_digests(False)
    yield c
    c._use_direct_digests(previous)


@pytest.mark.c_extension
def test_compiled_hashlib_backend_matches_vectors_and_pyjwt(hashlib_backend):
    c = hashlib_backend
    for vec in BINANCE:
        assert c.binance_signature(vec["secret"], vec["payload"]) == vec["signature"]
        assert c.BinanceSigner("k", vec["secret"]).sign(vec["payload"]) == vec["signature"]
    for vec in UPBIT_HASHES:
        assert c.upbit_query_hash(vec["query"]) == vec["hash"]
    for alg in ("HS256", "HS512"):
        for query in (None, "market=KRW-BTC", "é=ü"):
            expected = pyjwt_token("access", "secret-key", query, NONCE, alg)
            assert c.UpbitSigner("access", "secret-key", alg).token(query, NONCE) == expected


@pytest.mark.c_extension
@FAST
@given(secret=keys, params=st.text(max_size=300), query=st.text(max_size=300), alg=algs)
def test_compiled_backends_agree(hot_path_twins, secret, params, query, alg):
    c = hot_path_twins[0].signing
    results = []
    previous = c._use_direct_digests(True)
    try:
        for direct in (True, False):
            c._use_direct_digests(direct)
            signer = c.BinanceSigner("k", secret)
            results.append((
                c.binance_signature(secret, params),
                signer.sign(params),
                signer.signed_query(params, 1767225600000),
                c.upbit_query_hash(query),
                c.UpbitSigner("ak", secret, alg).token(query, NONCE),
            ))
    finally:
        c._use_direct_digests(previous)
    assert results[0] == results[1]


@pytest.mark.c_extension
def test_long_keys_are_hashed_first(hot_path_twins):
    # RFC 2104: keys longer than the block (64 bytes for SHA-256, 128 for SHA-512).
    c = hot_path_twins[0].signing
    for key in ("k" * 64, "k" * 65, "k" * 128, "k" * 129, "é" * 100):
        assert c.binance_signature(key, "x") == hmac.new(key.encode(), b"x", hashlib.sha256).hexdigest()
        for alg in ("HS256", "HS512"):
            assert c.upbit_jwt("a", key, "q", nonce=NONCE, alg=alg) == pyjwt_token("a", key, "q", NONCE, alg)
