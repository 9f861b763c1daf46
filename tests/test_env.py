"""``KIMP_FAST_NO_EXTENSIONS``: one parser in three copies, and what the dispatchers load.

The parser lives in ``kimp_fast/_env.py`` and is copied into ``setup.py`` and
``packaging/kimp_backend.py`` (build time cannot import the package). These tests read the
copies out of the source files, so they cannot drift apart unnoticed.
"""

from __future__ import annotations

import ast
import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

import kimp_fast
from kimp_fast import _env, orders, ratelimit, signing

ROOT = Path(__file__).resolve().parent.parent
VALUES = ["1", "true", "TRUE", " yes ", "On", "0", "", "false", "no", "off", "2", "y", "enable", "1 "]


def _load_defs(path: Path, names: set[str]) -> dict:
    """Execute only the named top-level assignments/functions of a source file."""
    tree = ast.parse(path.read_text("utf-8"))
    keep = [
        node
        for node in tree.body
        if (isinstance(node, ast.FunctionDef) and node.name in names)
        or (isinstance(node, ast.Assign) and any(getattr(t, "id", None) in names for t in node.targets))
    ]
    namespace: dict = {"os": os}
    exec(compile(ast.Module(body=keep, type_ignores=[]), str(path), "exec"), namespace)  # noqa: S102
    return namespace


@pytest.mark.parametrize("value", VALUES)
def test_parser_copies_agree(monkeypatch, value):
    setup_ns = _load_defs(ROOT / "setup.py", {"_TRUE", "_flag"})
    backend_ns = _load_defs(ROOT / "packaging" / "kimp_backend.py", {"_TRUE", "_pure"})
    monkeypatch.setenv("KIMP_FAST_NO_EXTENSIONS", value)
    expected = value.strip().lower() in {"1", "true", "yes", "on"}
    assert _env.env_flag("KIMP_FAST_NO_EXTENSIONS") is expected
    assert setup_ns["_flag"]("KIMP_FAST_NO_EXTENSIONS") is expected
    assert backend_ns["_pure"](None) is expected
    assert setup_ns["_TRUE"] == backend_ns["_TRUE"] == _env._TRUE


def test_backend_config_setting_forces_pure(monkeypatch):
    backend_ns = _load_defs(ROOT / "packaging" / "kimp_backend.py", {"_TRUE", "_pure"})
    monkeypatch.delenv("KIMP_FAST_NO_EXTENSIONS", raising=False)
    assert backend_ns["_pure"]({"pure-python": "true"}) is True
    assert backend_ns["_pure"]({"pure-python": "0"}) is False


def test_unset_means_extensions_allowed(monkeypatch):
    monkeypatch.delenv("KIMP_FAST_NO_EXTENSIONS", raising=False)
    assert _env.env_flag("KIMP_FAST_NO_EXTENSIONS") is False


def test_dispatchers_follow_the_environment():
    """Guard: fails when the compiled twins were expected (env var unset) but not loaded."""
    expected = not _env.NO_EXTENSIONS
    assert signing.USE_EXTENSIONS is expected
    assert orders.USE_EXTENSIONS is expected
    assert ratelimit.USE_EXTENSIONS is expected
    assert kimp_fast.USE_EXTENSIONS is expected
    suffix = "_c" if expected else "_py"
    assert signing.upbit_jwt.__module__ == "kimp_fast._speedups._signing" + suffix
    assert signing.UpbitSigner.__module__ == "kimp_fast._speedups._signing" + suffix
    assert orders.encode_binance_order.__module__ == "kimp_fast._speedups._orders" + suffix
    assert ratelimit.RateLimiter.__module__ == "kimp_fast._speedups._ratelimit" + suffix
    assert signing.UpbitSignerPy.__module__ == "kimp_fast._speedups._signing_py"
    assert ratelimit.RateLimiterPy.__module__ == "kimp_fast._speedups._ratelimit_py"
    assert (signing.UpbitSignerC is not None) is expected
    assert (ratelimit.RateLimiterC is not None) is expected


def _use_extensions_in_subprocess(value: str | None) -> str:
    env = dict(os.environ)
    env.pop("KIMP_FAST_NO_EXTENSIONS", None)
    if value is not None:
        env["KIMP_FAST_NO_EXTENSIONS"] = value
    code = "import kimp_fast; print(kimp_fast.USE_EXTENSIONS)"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    return out.stdout.strip()


def _compiled_twins_installed() -> bool:
    return all(
        importlib.util.find_spec(f"kimp_fast._speedups._{m}_c") is not None
        for m in ("signing", "orders", "ratelimit")
    )


@pytest.mark.parametrize("value", ["1", "true", "YES", "on"])
def test_env_var_forces_pure_in_a_fresh_interpreter(value):
    assert _use_extensions_in_subprocess(value) == "False"


@pytest.mark.parametrize("value", [None, "0", "", "false"])
def test_env_var_off_uses_compiled_when_installed(value):
    assert _use_extensions_in_subprocess(value) == str(_compiled_twins_installed())


@pytest.mark.c_extension
def test_compiled_twins_are_installed():
    assert _compiled_twins_installed()
    assert _use_extensions_in_subprocess(None) == "True"
