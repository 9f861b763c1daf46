"""Helpers shared by the CLI commands: config and journal loading with the CLI's exit
codes, JSON output, error messages on stderr. Secrets never reach any output here:
configs are shown through ``EngineConfig.redacted()`` and errors through ``ConfigError``,
which never carries a credential's value."""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import sys
from collections.abc import Coroutine
from decimal import Decimal
from typing import Any, TypeVar

import msgspec

from ..cli import EXIT_FAILED, EXIT_OK, EXIT_RUNTIME, EXIT_USAGE

__all__ = [
    "EXIT_FAILED", "EXIT_OK", "EXIT_RUNTIME", "EXIT_USAGE", "CliError", "add_journal_source",
    "dumps", "fail", "load_config", "open_journal", "resolve_journal_path", "run_async", "safe", "safe_text",
]

T = TypeVar("T")
_encoder = msgspec.json.Encoder(decimal_format="string")


class CliError(Exception):
    """A failure with its exit code; the message goes to stderr as ``kimp-fast: ...``."""

    def __init__(self, message: str, code: int = EXIT_USAGE) -> None:
        super().__init__(message)
        self.code = code


# What must never reach a terminal raw: C0 and C1 control characters (ESC sequences can
# move the cursor, rewrite lines, set the window title...), DEL, and the invisible
# formatting characters that reorder or hide text (bidi overrides, zero-width marks).
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff]")
# In JSON, C0 controls are escaped by the encoder already; the rest of the set above is not.
_JSON_UNSAFE = re.compile("[\x7f-\x9f\u061c\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff]")


def _escape(m: re.Match[str]) -> str:
    c = ord(m.group())
    return f"\\x{c:02x}" if c < 0x100 else f"\\u{c:04x}"


def safe_text(text: object) -> str:
    """``text`` for a terminal: every control/format character written as ``\\xNN`` /
    ``\\uNNNN`` (journal contents — signal ids, reasons, exchange messages — come from outside)."""
    return _UNSAFE.sub(_escape, str(text))


def safe(obj: Any) -> Any:
    """``obj`` with :func:`safe_text` applied to every string in it (dicts, lists, tuples)."""
    if isinstance(obj, str):
        return safe_text(obj)
    if isinstance(obj, dict):
        return {safe(k): safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [safe(v) for v in obj]
    return obj


def fail(message: str, code: int) -> int:
    print(f"kimp-fast: {safe_text(message)}", file=sys.stderr)
    return code


def _default(obj: Any) -> Any:
    if isinstance(obj, Decimal):
        return str(obj)
    raise TypeError(f"cannot encode {type(obj).__name__}")


def dumps(obj: Any) -> str:
    """Compact JSON, decimals as strings, msgspec Structs as objects."""
    text = _encoder.encode(msgspec.to_builtins(obj, enc_hook=_default)).decode()
    return _JSON_UNSAFE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


def load_config(path: str) -> Any:
    """``EngineConfig.load`` with the CLI's exit code 2 on any configuration problem."""
    from ..config import ConfigError, EngineConfig

    try:
        return EngineConfig.load(path)
    except ConfigError as exc:
        raise CliError(f"config error: {exc}", EXIT_USAGE) from None


def add_journal_source(parser: argparse.ArgumentParser) -> None:
    g = parser.add_mutually_exclusive_group()
    g.add_argument("--journal", metavar="PATH", help="the journal (SQLite file) to read")
    g.add_argument("--config", metavar="FILE", help="engine config whose [journal] path to read")


def resolve_journal_path(args: argparse.Namespace) -> str:
    if getattr(args, "journal", None):
        return os.path.abspath(args.journal)
    if getattr(args, "config", None):
        return load_config(args.config).journal.path
    env = os.environ.get("KIMP_FAST_JOURNAL")
    if env:
        return os.path.abspath(env)
    raise CliError("which journal? pass --journal PATH or --config FILE (or set KIMP_FAST_JOURNAL)", EXIT_USAGE)


def open_journal(args: argparse.Namespace, *, must_exist: bool = True) -> Any:
    """The journal named by ``--journal``/``--config``. A missing file is an error unless
    ``must_exist`` is False: opening creates the file, and a typo must not silently create
    (and e.g. halt) a journal no engine reads."""
    from ..journal import Journal, JournalError

    path = resolve_journal_path(args)
    if path != ":memory:" and must_exist and not os.path.exists(path):
        raise CliError(f"journal not found: {path}", EXIT_USAGE)
    try:
        return Journal(path)
    except JournalError as exc:
        raise CliError(str(exc), EXIT_USAGE) from None
    except Exception as exc:  # sqlite3.DatabaseError: not a database, permissions...
        raise CliError(f"cannot open journal {path}: {exc}", EXIT_USAGE) from None


def run_async(coro: Coroutine[Any, Any, T], *, use_uvloop: bool = True) -> T:
    """Run ``coro`` on uvloop when installed (the engine's default), else asyncio."""
    if use_uvloop:
        try:
            import uvloop
        except ImportError:  # pragma: no cover - optional on some platforms
            pass
        else:
            return uvloop.run(coro)
    return asyncio.run(coro)
