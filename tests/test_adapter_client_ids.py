"""Client order ids: deterministic, valid on both exchanges, collision-resistant."""

from __future__ import annotations

import base64
import hashlib
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from adapters_direct.client_ids import (
    LEGS,
    client_id_stem,
    is_valid_binance_client_id,
    is_valid_upbit_identifier,
    make_client_id,
    parse_client_id,
)

BINANCE = re.compile(r"^[\.A-Z\:/a-z0-9_-]{1,36}$")  # the documented pattern, verbatim


def test_readable_and_deterministic() -> None:
    cid = make_client_id("sig-000123", "upbit-entry", 0)
    assert cid.startswith("sig-000123-")
    assert cid.endswith("-UE0")
    assert make_client_id("sig-000123", "upbit-entry", 0) == cid
    assert make_client_id("sig-000123", "UE", 0) == cid  # the code works as well as the name


def test_pinned_ids_never_change() -> None:
    # A restart rebuilds the ids of orders in flight from the journal's signal ids: an id
    # that changed between versions would be an order the engine no longer recognises.
    assert make_client_id("sig-000123", "UE", 0) == "sig-000123-cq7tyimv5dl7-UE0"
    assert make_client_id("research/run 7: ENTER BTC", "BX", 12, namespace="engine-b") == (
        "research_run_7__E-sqmscs2codvw-BX12"
    )


@settings(max_examples=300, deadline=None)
@given(signal_id=st.text(min_size=1, max_size=80), namespace=st.sampled_from(["", "engine-b", "a/b"]))
def test_hash_is_base32_of_blake2b(signal_id: str, namespace: str) -> None:
    # the documented construction, rebuilt here with the standard library
    h = hashlib.blake2b(digest_size=8)
    h.update(namespace.encode() + b"\x00" + signal_id.encode())
    digest = base64.b32encode(h.digest()).decode("ascii").lower()[:12]
    prefix = re.sub(r"[^A-Za-z0-9_-]", "_", signal_id[:17])
    assert client_id_stem(signal_id, namespace) == f"{prefix}-{digest}"
    assert make_client_id(signal_id, "BW", 7, namespace=namespace) == f"{prefix}-{digest}-BW7"


def test_every_part_changes_the_id() -> None:
    base = make_client_id("sig-1", "binance-entry", 0)
    assert make_client_id("sig-2", "binance-entry", 0) != base
    assert make_client_id("sig-1", "binance-repair", 0) != base
    assert make_client_id("sig-1", "binance-entry", 1) != base
    assert make_client_id("sig-1", "binance-entry", 0, namespace="engine-b") != base


def test_sanitized_and_long_ids_do_not_collide() -> None:
    # same readable prefix, different signals
    assert make_client_id("a/b", "UE", 0) != make_client_id("a_b", "UE", 0)
    long_a = "research-run-2026-11-23/" + "x" * 100 + "a"
    long_b = "research-run-2026-11-23/" + "x" * 100 + "b"
    assert make_client_id(long_a, "BE", 0) != make_client_id(long_b, "BE", 0)


@settings(max_examples=300, deadline=None)
@given(
    signal_id=st.text(min_size=1, max_size=200),
    leg=st.sampled_from(sorted(LEGS)),
    attempt=st.integers(min_value=0, max_value=999),
)
def test_valid_on_both_exchanges(signal_id: str, leg: str, attempt: int) -> None:
    cid = make_client_id(signal_id, leg, attempt)
    assert len(cid) <= 36
    assert BINANCE.match(cid) and "\n" not in cid
    assert is_valid_binance_client_id(cid)
    assert is_valid_upbit_identifier(cid)
    parsed = parse_client_id(cid)
    assert parsed is not None
    assert parsed.leg == leg and parsed.attempt == attempt


@settings(max_examples=50, deadline=None)
@given(st.lists(st.text(min_size=1, max_size=60), min_size=2, max_size=200, unique=True))
def test_distinct_signals_distinct_ids(signal_ids: list[str]) -> None:
    ids = {make_client_id(s, "UE", 0) for s in signal_ids}
    assert len(ids) == len(signal_ids)


@pytest.mark.parametrize(
    ("signal_id", "leg", "attempt"),
    [
        ("", "UE", 0),
        ("sig", "upbit", 0),
        ("sig", "XX", 0),
        ("sig", "UE", -1),
        ("sig", "UE", 1000),
        ("sig", "UE", True),
        ("sig", "UE", 1.0),
        (None, "UE", 0),
    ],
)
def test_bad_input_is_refused(signal_id: object, leg: str, attempt: object) -> None:
    with pytest.raises(ValueError):
        make_client_id(signal_id, leg, attempt)  # type: ignore[arg-type]


def test_parse_rejects_foreign_ids() -> None:
    assert parse_client_id("x-AAAA") is None
    assert parse_client_id("sig-cq7tyimv5dl7-UE0\n") is None
    assert parse_client_id(123) is None  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("cid", "binance", "upbit"),
    [
        ("abc_DEF-123", True, True),
        ("a.b:c/d", True, False),  # Binance allows . : /, Upbit URLs choke on ':'
        ("a" * 36, True, True),
        ("a" * 37, False, True),
        ("a" * 65, False, False),
        ("", False, False),
        ("sp ace", False, False),
        ("new\nline", False, False),
        ("abc\n", False, False),
        ("ünï", False, False),
    ],
)
def test_validators(cid: str, binance: bool, upbit: bool) -> None:
    assert is_valid_binance_client_id(cid) is binance
    assert is_valid_upbit_identifier(cid) is upbit
