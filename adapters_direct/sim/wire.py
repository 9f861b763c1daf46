"""What a handler returns and the errors it raises, in each exchange's own shape."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import orjson

__all__ = ["BinanceError", "Reply", "UpbitError", "dumps", "parse_upbit_json"]


def dumps(obj: Any) -> bytes:
    return orjson.dumps(obj)


class Reply:
    __slots__ = ("status", "body", "headers")

    def __init__(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
        self.status = status
        self.body = body
        self.headers = headers


def ok(obj: Any, status: int = 200) -> Reply:
    return Reply(status, orjson.dumps(obj))


class UpbitError(Exception):
    """``{"error": {"name", "message"}}`` with an HTTP status (name may be an int on
    quotation endpoints, as Upbit does)."""

    def __init__(self, status: int, name: str | int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.name = name
        self.message = message

    def reply(self) -> Reply:
        return Reply(self.status, orjson.dumps({"error": {"name": self.name, "message": self.message}}))


class BinanceError(Exception):
    """``{"code": -NNNN, "msg": "..."}`` with an HTTP status."""

    def __init__(self, code: int, msg: str, status: int = 400) -> None:
        super().__init__(msg)
        self.code = code
        self.msg = msg
        self.status = status

    def reply(self) -> Reply:
        return Reply(self.status, orjson.dumps({"code": self.code, "msg": self.msg}))


class RawNumber(str):
    """A JSON number kept as the exact text the client sent (for query_hash rendering)."""


def parse_upbit_json(body: bytes) -> Any:
    """Parse a JSON body keeping key order; non-string numbers keep their original text,
    because Upbit hashes the parameters exactly as sent."""
    data = orjson.loads(body)
    if isinstance(data, dict) and any(isinstance(v, float) for v in data.values()):
        data = json.loads(body, parse_float=RawNumber, parse_int=RawNumber)
    return data


class Ctx:
    """One request as the exchange handlers see it (already read and parsed)."""

    __slots__ = ("method", "path", "raw_query", "query", "body", "headers", "ip", "fault", "log")

    def __init__(self, method: str, path: str, raw_query: str, query: Any, body: bytes, headers: Any,
                 ip: str, fault: Any, log: dict[str, Any]) -> None:
        self.method = method
        self.path = path
        self.raw_query = raw_query
        self.query = query  # MultiDictProxy of the decoded query
        self.body = body
        self.headers = headers
        self.ip = ip
        self.fault = fault  # the Fault applied to this request (partial_fill reads it), or None
        self.log = log  # the request-log entry (handlers may annotate it)

    @property
    def fill_fraction(self) -> Decimal | None:
        f = self.fault
        if f is not None and f.kind == "partial_fill":
            return Decimal(str(f.params["fraction"]))
        return None
