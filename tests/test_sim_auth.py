"""The simulator's authentication: independent verifiers, checked against published
vectors and against hand-signed requests on the wire (every documented failure)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import time

import jwt
import orjson
import pytest

from adapters_direct.sim.auth import (
    AuthFailure,
    NonceStore,
    binance_payload_and_signature,
    upbit_body_query_string,
    verify_binance_signature,
    verify_upbit_jwt,
)

pytestmark = pytest.mark.filterwarnings("ignore::jwt.warnings.InsecureKeyLengthWarning")

# Binance USD-M docs, signed endpoint examples 1 and 2.
BINANCE_SECRET = "2b5eb11e18796d12d88f13dc27dbbd02c2cc51ff7059765ed9821957d82bb4d9"
BINANCE_PAYLOAD = ("symbol=BTCUSDT&side=BUY&type=LIMIT&quantity=1&price=9000&timeInForce=GTC"
                   "&recvWindow=5000&timestamp=1591702613943")
BINANCE_SIG = "3c661234138461fcc7a7d8746c6558c9842d4e10870d2ecbedf7777cad694af9"
# SHA-512 of Upbit's documented market-buy parameter string (EXCHANGE_NOTES A1).
UPBIT_QUERY = "market=KRW-BTC&side=bid&ord_type=price&price=10000"
UPBIT_HASH = ("4a69e8b814f9f38bc6e52c078303abac445d8166673e5ab18e487d8a9aa597fe"
              "3745f9c7c919cb4f401759fb86dd563bacc4f4ed2d87619a13a422ce29c7a2a1")
UPBIT_HS512_SIG = "myFzvswwIK8l7IVAmxzxTyuM6xAwcIuS2sDLXlllOndsXYsFLlHjFgVhT6FVXoLQFdhchwGOYeVvLEexWS6Jlg"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


# ---------------------------------------------------------------------------- unit level
def test_binance_signature_vector_in_query_and_in_body() -> None:
    payload, sig = binance_payload_and_signature(BINANCE_PAYLOAD + "&signature=" + BINANCE_SIG, "")
    assert payload == BINANCE_PAYLOAD and sig == BINANCE_SIG
    assert verify_binance_signature(BINANCE_SECRET, payload, sig)
    payload, sig = binance_payload_and_signature("", BINANCE_PAYLOAD + "&signature=" + BINANCE_SIG)
    assert payload == BINANCE_PAYLOAD and verify_binance_signature(BINANCE_SECRET, payload, sig)
    assert not verify_binance_signature(BINANCE_SECRET, payload.replace("9000", "9001"), sig)


def test_binance_mixed_query_and_body_are_concatenated_without_separator() -> None:
    query, body = "symbol=BTCUSDT&side=BUY&type=LIMIT&timeInForce=GTC", "quantity=1&price=9000&timestamp=1"
    sig = hmac.new(b"s", (query + body).encode(), hashlib.sha256).hexdigest()
    payload, got = binance_payload_and_signature(query, body + "&signature=" + sig)
    assert payload == query + body and verify_binance_signature("s", payload, got)


def test_binance_signature_not_last_is_not_taken_as_the_signature() -> None:
    payload, sig = binance_payload_and_signature("signature=abc&timestamp=1", "")
    assert sig is None and payload == "signature=abc&timestamp=1"


def test_upbit_hs512_vector_reproduces_the_documented_token() -> None:
    header = b'{"alg":"HS512","typ":"JWT"}'
    claims = orjson.dumps({"access_key": "test-access-key", "nonce": "00000000-0000-4000-8000-000000000000",
                           "query_hash": UPBIT_HASH, "query_hash_alg": "SHA512"})
    signing_input = f"{_b64(header)}.{_b64(claims)}"
    sig = hmac.new(b"test-secret-key", signing_input.encode(), hashlib.sha512).digest()
    assert _b64(sig) == UPBIT_HS512_SIG
    key, hdr, got = verify_upbit_jwt("Bearer " + signing_input + "." + _b64(sig), {"test-access-key": "test-secret-key"},
                                     UPBIT_QUERY, NonceStore())
    assert key == "test-access-key" and hdr["alg"] == "HS512" and got["query_hash"] == UPBIT_HASH


def test_upbit_body_rendering_keeps_key_order_and_repeats_arrays() -> None:
    assert upbit_body_query_string({"market": "KRW-BTC", "side": "bid", "ord_type": "price", "price": "10000"}) == UPBIT_QUERY
    assert upbit_body_query_string({"price": "10000", "market": "KRW-BTC"}) == "price=10000&market=KRW-BTC"
    assert upbit_body_query_string({"uuids": ["a", "b"]}) == "uuids[]=a&uuids[]=b"


@pytest.mark.parametrize("alg", ["HS256", "HS512"])
def test_upbit_both_algorithms_verify_and_nonce_is_single_use(alg: str) -> None:
    nonces = NonceStore()
    claims = {"access_key": "ak", "nonce": "n-1", "query_hash": hashlib.sha512(b"a=1").hexdigest(),
              "query_hash_alg": "SHA512"}
    token = jwt.encode(claims, "sk", algorithm=alg)
    verify_upbit_jwt("Bearer " + token, {"ak": "sk"}, "a=1", nonces)
    with pytest.raises(AuthFailure) as e:
        verify_upbit_jwt("Bearer " + token, {"ak": "sk"}, "a=1", nonces)
    assert e.value.name == "nonce_used"


def test_upbit_forged_token_does_not_burn_the_nonce() -> None:
    nonces = NonceStore()
    claims = {"access_key": "ak", "nonce": "n-2"}
    with pytest.raises(AuthFailure) as e:
        verify_upbit_jwt("Bearer " + jwt.encode(claims, "wrong", algorithm="HS256"), {"ak": "sk"}, None, nonces)
    assert e.value.name == "jwt_verification"
    verify_upbit_jwt("Bearer " + jwt.encode(claims, "sk", algorithm="HS256"), {"ak": "sk"}, None, nonces)


def test_upbit_unsupported_algorithm_is_refused() -> None:
    token = jwt.encode({"access_key": "ak", "nonce": "x"}, "sk", algorithm="HS384")
    with pytest.raises(AuthFailure) as e:
        verify_upbit_jwt("Bearer " + token, {"ak": "sk"}, None, NonceStore())
    assert e.value.name == "jwt_verification"


# ---------------------------------------------------------------------------- Upbit on the wire
@pytest.mark.parametrize("alg", ["HS256", "HS512"])
async def test_upbit_signed_get_and_post_accepted(sim_client, alg: str) -> None:
    r = await sim_client.upbit("GET", "/v1/orders/chance", {"market": "KRW-BTC"}, alg=alg)
    assert r.status == 200, r.text
    r = await sim_client.upbit("POST", "/v1/orders/test",
                               {"market": "KRW-BTC", "side": "bid", "ord_type": "price", "price": "10000"}, alg=alg)
    assert r.status == 201, r.text
    logged = (await sim_client.requests(path="/v1/orders/test"))[-1]
    assert logged["jwt"]["header"]["alg"] == alg
    assert logged["jwt"]["claims"]["query_hash"] == UPBIT_HASH
    assert logged["headers"]["Authorization"] == "Bearer"  # the scheme only, never the token


async def test_upbit_query_hash_is_over_the_unencoded_query(sim_client) -> None:
    # uuids[] is percent-encoded on the wire but hashed as typed
    r = await sim_client.upbit("GET", "/v1/orders/uuids", {"uuids[]": ["u-1", "u-2"]})
    assert r.status == 200, r.text
    encoded = "uuids%5B%5D=u-1&uuids%5B%5D=u-2"
    bad = sim_client.upbit_token(encoded)  # hashing the encoded form is the classic bug
    r = await sim_client.upbit("GET", "/v1/orders/uuids", {"uuids[]": ["u-1", "u-2"]}, token=bad)
    assert (r.status, r.data["error"]["name"]) == (401, "invalid_query_payload")


async def test_upbit_post_hash_must_follow_the_body_key_order(sim_client) -> None:
    body = {"market": "KRW-BTC", "side": "bid", "ord_type": "price", "price": "10000"}
    token = sim_client.upbit_token("side=bid&market=KRW-BTC&ord_type=price&price=10000")
    r = await sim_client.upbit("POST", "/v1/orders/test", body, token=token)
    assert (r.status, r.data["error"]["name"]) == (401, "invalid_query_payload")
    json_hash = hashlib.sha512(orjson.dumps(body)).hexdigest()  # hashing the JSON text: wrong
    r = await sim_client.upbit("POST", "/v1/orders/test", body, query_hash=json_hash)
    assert (r.status, r.data["error"]["name"]) == (401, "invalid_query_payload")


async def test_upbit_auth_failures(sim_client) -> None:
    c = sim_client
    r = await c.upbit("GET", "/v1/accounts", auth=False)
    assert (r.status, r.data) == (401, {"error": {"name": "no_authorization_token",
                                                  "message": "Authorization token does not exist."}})
    assert r.headers["Remaining-Req"].startswith("group=default;")
    r = await c.upbit("GET", "/v1/accounts", secret_key="not-the-secret")
    assert (r.status, r.data["error"]["name"]) == (401, "jwt_verification")
    r = await c.upbit("GET", "/v1/accounts", access_key="unknown-key")
    assert (r.status, r.data["error"]["name"]) == (401, "invalid_access_key")
    r = await c.upbit("GET", "/v1/accounts", nonce="fixed-nonce")
    assert r.status == 200
    r = await c.upbit("GET", "/v1/accounts", nonce="fixed-nonce")
    assert (r.status, r.data["error"]["name"]) == (401, "nonce_used")
    # parameters present but no query_hash in the token
    token = jwt.encode({"access_key": c.sim.upbit_keys.access_key, "nonce": "n-x"}, c.sim.upbit_keys.secret_key,
                       algorithm="HS256")
    r = await c.upbit("GET", "/v1/orders/chance", {"market": "KRW-BTC"}, token=token)
    assert (r.status, r.data["error"]["name"]) == (401, "invalid_query_payload")
    r = await c.upbit("GET", "/v1/accounts", token="not.a.jwt")
    assert (r.status, r.data["error"]["name"]) == (401, "jwt_verification")


async def test_upbit_secret_is_raw_utf8_not_base64(sim_factory, sim_client) -> None:
    # a secret that is valid base64: a verifier that decoded it would reject this token
    sim = await sim_factory(upbit_keys=("ak-b64", "c2VjcmV0LWtleQ=="))
    import aiohttp

    from tests.fixtures.sim import SimClient

    async with aiohttp.ClientSession() as s:
        c = SimClient(sim, s)
        r = await c.upbit("GET", "/v1/accounts")
        assert r.status == 200, r.text


# ---------------------------------------------------------------------------- Binance on the wire
async def test_binance_signed_in_query_in_body_and_mixed(sim_client) -> None:
    c = sim_client
    assert (await c.binance("GET", "/fapi/v3/balance")).status == 200
    r = await c.binance("POST", "/fapi/v1/leverage", {"symbol": "BTCUSDT", "leverage": 7}, in_body=True)
    assert r.status == 200 and r.data["leverage"] == 7
    r = await c.binance("POST", "/fapi/v1/leverage", {"symbol": "BTCUSDT", "leverage": 8}, in_body=False)
    assert r.status == 200 and r.data["leverage"] == 8
    # mixed: symbol in the query, the rest (signed together) in the body
    keys = c.sim.binance_keys
    query = "symbol=BTCUSDT"
    body = f"leverage=9&timestamp={int(time.time() * 1000)}"
    sig = hmac.new(keys.secret_key.encode(), (query + body).encode(), hashlib.sha256).hexdigest()
    async with c.session.post(f"{c.url}/fapi/v1/leverage?{query}", data=f"{body}&signature={sig}",
                              headers={"X-MBX-APIKEY": keys.api_key,
                                       "Content-Type": "application/x-www-form-urlencoded"}) as resp:
        assert resp.status == 200, await resp.text()
        assert (await resp.json())["leverage"] == 9


async def test_binance_auth_failures(sim_client) -> None:
    c = sim_client
    r = await c.binance("GET", "/fapi/v3/account", secret_key="0" * 64)
    assert (r.status, r.data) == (400, {"code": -1022, "msg": "Signature for this request is not valid."})
    r = await c.binance("GET", "/fapi/v3/account", api_key="A" * 64)
    assert (r.status, r.data["code"]) == (401, -2015)
    r = await c.binance("GET", "/fapi/v3/account", api_key="bad key!")
    assert (r.status, r.data["code"]) == (401, -2014)
    r = await c.binance("GET", "/fapi/v3/account", tamper=lambda q: q.replace("timestamp=", "timestamp=1"))
    assert r.data["code"] == -1022  # a parameter changed after signing
    async with c.session.get(f"{c.url}/fapi/v3/account?timestamp=1") as resp:  # no key header at all
        assert resp.status == 401 and (await resp.json())["code"] == -2014


async def test_binance_timestamp_window(sim_client) -> None:
    c = sim_client
    now = int(time.time() * 1000)
    r = await c.binance("GET", "/fapi/v3/balance", timestamp=now + 5000)
    assert r.data == {"code": -1021, "msg": "Timestamp for this request was 1000ms ahead of the server's time."}
    r = await c.binance("GET", "/fapi/v3/balance", timestamp=now - 6000)
    assert r.data["code"] == -1021 and "recvWindow" in r.data["msg"]
    r = await c.binance("GET", "/fapi/v3/balance", timestamp=now - 6000, recv_window=10000)
    assert r.status == 200
    r = await c.binance("GET", "/fapi/v3/balance", recv_window=70000)
    assert r.data["code"] == -1131


async def test_binance_missing_signature_and_timestamp(sim_client) -> None:
    c = sim_client
    r = await c.binance("GET", "/fapi/v3/balance", tamper=lambda q: q.split("&signature=")[0])
    assert (r.status, r.data["code"]) == (400, -1102)
    keys = c.sim.binance_keys
    sig = hmac.new(keys.secret_key.encode(), b"", hashlib.sha256).hexdigest()
    async with c.session.get(f"{c.url}/fapi/v3/balance?signature={sig}", headers={"X-MBX-APIKEY": keys.api_key}) as resp:
        assert (await resp.json())["code"] == -1102
