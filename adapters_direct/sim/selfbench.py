"""Measure the simulator's own latency per request (``python -m adapters_direct.sim.selfbench``).

The simulator runs in its own process (``kimp-fast sim``, uvloop), exactly as paper mode
and the probe use it; this process sends a realistic mix of signed requests over one
keep-alive connection per exchange, one at a time, and then reads the simulator's
server-side measurement (``GET /_sim/stats``: from the moment the HTTP parser hands the
request over to the moment the response is written, injected delays excluded). The
client-side round trip is reported next to it for scale.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import hmac
import json
import statistics
import subprocess
import sys
import time
import uuid
from typing import Any
from urllib.parse import urlencode

import aiohttp
import jwt
import orjson


def _upbit_token(access: str, secret: str, params: str | None) -> str:
    claims: dict[str, Any] = {"access_key": access, "nonce": str(uuid.uuid4())}
    if params:
        claims["query_hash"] = hashlib.sha512(params.encode()).hexdigest()
        claims["query_hash_alg"] = "SHA512"
    return jwt.encode(claims, secret, algorithm="HS256")


async def _bench(url: str, keys: dict[str, Any], rounds: int, tag: str) -> dict[str, Any]:
    up, bn = keys["upbit"], keys["binance"]
    rtts: list[float] = []
    async with aiohttp.ClientSession() as s:
        # lift the rate limits: we measure the simulator, not its throttling
        await s.post(f"{url}/_sim/config", json={"limits": {
            "upbit_order_per_s": 1e9, "upbit_default_per_s": 1e9, "upbit_quotation_per_s": 1e9,
            "binance_weight_per_min": 10**9, "binance_orders_per_10s": 10**9, "binance_orders_per_min": 10**9}})

        async def upbit(method: str, path: str, params: dict[str, str] | None = None, public: bool = False) -> Any:
            headers = {}
            data = None
            target = url + path
            if method == "POST":
                qs = "&".join(f"{k}={v}" for k, v in (params or {}).items())
                data = orjson.dumps(params)
                headers["Content-Type"] = "application/json"
            else:
                qs = urlencode(params or {})
                if qs:
                    target += "?" + qs
            if not public:
                headers["Authorization"] = "Bearer " + _upbit_token(up["access_key"], up["secret_key"], qs)
            t = time.perf_counter()
            async with s.request(method, target, data=data, headers=headers) as r:
                body = await r.read()
                assert r.status < 300, body
            rtts.append(time.perf_counter() - t)
            return orjson.loads(body)

        async def binance(method: str, path: str, params: dict[str, str], signed: bool = True) -> Any:
            p = dict(params)
            headers = {}
            if signed:
                p["timestamp"] = str(int(time.time() * 1000))
            qs = urlencode(p)
            if signed:
                qs += "&signature=" + hmac.new(bn["secret_key"].encode(), qs.encode(), hashlib.sha256).hexdigest()
                headers["X-MBX-APIKEY"] = bn["api_key"]
            if method == "POST":
                headers["Content-Type"] = "application/x-www-form-urlencoded"
                kw: dict[str, Any] = {"data": qs}
                target = url + path
            else:
                kw = {}
                target = url + path + ("?" + qs if qs else "")
            t = time.perf_counter()
            async with s.request(method, target, headers=headers, **kw) as r:
                body = await r.read()
                assert r.status < 300, body
            rtts.append(time.perf_counter() - t)
            return orjson.loads(body)

        for i in range(rounds):
            o = await upbit("POST", "/v1/orders", {"market": "KRW-BTC", "side": "bid", "ord_type": "price",
                                                   "price": "10000", "identifier": f"bench-{tag}-{i}"})
            await upbit("GET", "/v1/order", {"uuid": o["uuid"]})
            await upbit("GET", "/v1/orderbook", {"markets": "KRW-BTC", "count": "15"}, public=True)
            await upbit("GET", "/v1/accounts")
            side = "SELL" if i % 2 == 0 else "BUY"
            b = await binance("POST", "/fapi/v1/order", {"symbol": "BTCUSDT", "side": side, "type": "MARKET",
                                                         "quantity": "0.002", "newOrderRespType": "RESULT"})
            await binance("GET", "/fapi/v1/order", {"symbol": "BTCUSDT", "orderId": str(b["orderId"])})
            await binance("GET", "/fapi/v1/depth", {"symbol": "BTCUSDT", "limit": "20"}, signed=False)
            await binance("GET", "/fapi/v3/positionRisk", {"symbol": "BTCUSDT"})
        async with s.get(f"{url}/_sim/stats") as r:
            stats = await r.json()
    rtts_us = sorted(x * 1e6 for x in rtts)
    stats["client_round_trip_us"] = {
        "median": statistics.median(rtts_us),
        "p99": rtts_us[min(len(rtts_us) - 1, int(0.99 * (len(rtts_us) - 1)))],
    }
    return stats


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=500, help="rounds of the 8-request mix (default 500)")
    parser.add_argument("--warmup", type=int, default=50)
    args = parser.parse_args(argv)
    proc = subprocess.Popen([sys.executable, "-m", "kimp_fast", "sim", "--port", "0", "--seed", "1"],
                            stdout=subprocess.PIPE, text=True)
    try:
        info = json.loads(proc.stdout.readline())  # type: ignore[union-attr]
        asyncio.run(_bench(info["url"], info, args.warmup, "warmup"))
        asyncio.run(_clear(info["url"]))
        stats = asyncio.run(_bench(info["url"], info, args.rounds, "run"))
    finally:
        proc.terminate()
        proc.wait(10)
    print(json.dumps(stats, indent=2))
    return 0


async def _clear(url: str) -> None:
    async with aiohttp.ClientSession() as s:
        await s.delete(f"{url}/_sim/stats")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
