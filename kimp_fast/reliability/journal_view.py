"""Read-only view of a journal file, independent of the engine's own connection.

The torture reads the journal of an engine running (or just killed) in another process,
so this opens its own SQLite connection with ``query_only`` and decodes rows itself.
"""

from __future__ import annotations

import json
import sqlite3
from decimal import Decimal
from typing import Any

__all__ = ["JournalView"]

UNFINISHED = ("intent", "sent", "unknown", "open", "partially_filled")
NOT_EXECUTED = ("absent", "rejected")


def _dec(v: str | None) -> Decimal:
    return Decimal(v) if v not in (None, "") else Decimal(0)


class JournalView:
    def __init__(self, path: str) -> None:
        self.path = path
        self._db = sqlite3.connect(path, timeout=30.0, isolation_level=None)
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA busy_timeout=30000")
        self._db.execute("PRAGMA query_only=1")

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> "JournalView":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _rows(self, sql: str, args: tuple[Any, ...] = ()) -> list[dict[str, Any]]:
        return [dict(r) for r in self._db.execute(sql, args).fetchall()]

    # -- orders -------------------------------------------------------------------------
    def orders(self, *, after_rowid: int = 0, updated_since_ms: int | None = None) -> list[dict[str, Any]]:
        """Order rows (with ``rowid``), all or those added/changed since a point."""
        if updated_since_ms is None and not after_rowid:
            return self._rows("SELECT rowid, * FROM orders ORDER BY rowid")
        return self._rows(
            "SELECT rowid, * FROM orders WHERE rowid > ? OR updated_ms >= ? ORDER BY rowid",
            (after_rowid, updated_since_ms if updated_since_ms is not None else 1 << 62),
        )

    def orders_for_signal(self, signal_id: str) -> list[dict[str, Any]]:
        return self._rows("SELECT rowid, * FROM orders WHERE signal_id = ? ORDER BY rowid", (signal_id,))

    def order(self, client_id: str) -> dict[str, Any] | None:
        rows = self._rows("SELECT rowid, * FROM orders WHERE client_id = ?", (client_id,))
        return rows[0] if rows else None

    def order_events(self, client_id: str) -> list[dict[str, Any]]:
        return self._rows("SELECT * FROM order_events WHERE client_id = ? ORDER BY id", (client_id,))

    def fills(self) -> dict[str, dict[str, Any]]:
        return {r["client_id"]: r for r in self._rows("SELECT * FROM fills")}

    def max_order_rowid(self) -> int:
        row = self._db.execute("SELECT MAX(rowid) FROM orders").fetchone()
        return int(row[0] or 0)

    # -- signals ------------------------------------------------------------------------
    def signal(self, signal_id: str) -> dict[str, Any] | None:
        rows = self._rows("SELECT * FROM signals WHERE id = ?", (signal_id,))
        return rows[0] if rows else None

    def signals(self, *, finished_since_ms: int | None = None) -> list[dict[str, Any]]:
        if finished_since_ms is None:
            return self._rows("SELECT * FROM signals ORDER BY rowid")
        return self._rows("SELECT * FROM signals WHERE finished_ms >= ? OR status = 'processing' ORDER BY rowid",
                          (finished_since_ms,))

    def processing(self) -> list[dict[str, Any]]:
        return self._rows("SELECT * FROM signals WHERE status = 'processing' ORDER BY rowid")

    @staticmethod
    def report(row: dict[str, Any]) -> dict[str, Any]:
        return json.loads(row["report"]) if row.get("report") else {}

    # -- recovery, positions, halts, notifications ----------------------------------------
    def recovery(self, *, after_id: int = 0, signal_id: str | None = None) -> list[dict[str, Any]]:
        if signal_id is not None:
            rows = self._rows("SELECT * FROM recovery WHERE signal_id = ? ORDER BY id", (signal_id,))
        else:
            rows = self._rows("SELECT * FROM recovery WHERE id > ? ORDER BY id", (after_id,))
        for r in rows:
            r["detail"] = json.loads(r["detail"]) if r["detail"] else {}
        return rows

    def positions(self) -> dict[str, dict[str, Any]]:
        return {r["coin"]: json.loads(r["data"]) for r in self._rows("SELECT coin, data FROM positions")}

    def halt_state(self) -> tuple[bool, str]:
        rows = self._rows("SELECT action, reason FROM halts ORDER BY id DESC LIMIT 1")
        if not rows:
            return False, ""
        return rows[0]["action"] == "halt", rows[0]["reason"]

    def halts(self) -> list[dict[str, Any]]:
        return self._rows("SELECT * FROM halts ORDER BY id")

    def notifications(self, *, after_id: int = 0) -> list[dict[str, Any]]:
        return self._rows("SELECT * FROM notifications WHERE id > ? ORDER BY id", (after_id,))

    def integrity(self) -> str:
        return str(self._db.execute("PRAGMA integrity_check").fetchone()[0])

    def counts(self) -> dict[str, int]:
        out = {}
        for table in ("signals", "orders", "order_events", "fills", "recovery", "halts", "notifications"):
            out[table] = int(self._db.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0])  # noqa: S608
        return out

    @staticmethod
    def dec(v: str | None) -> Decimal:
        return _dec(v)
