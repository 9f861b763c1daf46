"""Dependency floors admit no release older than what the code uses.

Each rule names a feature, where it first appeared, and a pattern that finds its use in
the source; a rule whose feature the code uses requires the declared floor to be at
least that release. A feature no longer used asks for nothing (so this does not pin
floors for their own sake)."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.version import Version

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

ROOT = Path(__file__).resolve().parent.parent
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())

# (distribution, first release with the feature, the feature, a regex finding its use, where)
RULES = [
    ("aiohttp", "3.10", "aiohttp.ConnectionTimeoutError", r"aiohttp\.ConnectionTimeoutError", ("adapters_direct",)),
    ("aiohttp", "3.9", "web.AppKey", r"web\.AppKey", ("adapters_direct",)),
    ("uvloop", "0.18", "uvloop.run", r"uvloop\.run\(", ("kimp_fast", "bench")),
    ("msgspec", "0.18.5", "msgspec.structs.force_setattr", r"structs\.force_setattr", ("kimp_fast",)),
    ("msgspec", "0.18.6", "Encoder(order=...)", r"Encoder\([^)]*order=", ("kimp_fast", "adapters_direct")),
    ("pytest-asyncio", "0.24", "asyncio_default_fixture_loop_scope", r"asyncio_default_fixture_loop_scope",
     ("pyproject.toml",)),
]


def _floors() -> dict[str, Version]:
    reqs = list(PYPROJECT["project"]["dependencies"])
    for extra in PYPROJECT["project"]["optional-dependencies"].values():
        reqs.extend(extra)
    out = {}
    for text in reqs:
        req = Requirement(text)
        lows = [Version(s.version) for s in req.specifier if s.operator in (">=", "==", "~=")]
        out[req.name.lower()] = max(lows) if lows else Version("0")
    return out


def _used(pattern: str, places: tuple[str, ...]) -> bool:
    rx = re.compile(pattern)
    for place in places:
        p = ROOT / place
        files = [p] if p.is_file() else p.rglob("*.py")
        if any(rx.search(f.read_text(encoding="utf-8", errors="replace")) for f in files):
            return True
    return False


@pytest.mark.parametrize("dist,since,feature,pattern,places", RULES, ids=[f"{r[0]}:{r[2]}" for r in RULES])
def test_floor_admits_no_release_without_a_used_feature(dist, since, feature, pattern, places):
    if not _used(pattern, places):
        pytest.skip(f"{feature} is not used any more: no floor needed for it")
    floors = _floors()
    assert dist in floors, f"{dist} is used ({feature}) but not declared"
    assert floors[dist] >= Version(since), (
        f"{dist} floor {floors[dist]} admits releases without {feature} (first in {since})")


def test_every_dependency_has_a_floor():
    assert all(v > Version("0") for v in _floors().values()), _floors()
