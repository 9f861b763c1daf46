"""The durable journal: SQLite in WAL mode, versioned schema with migrations.

Everything the engine does is written here *before* it is done (write-ahead), so a
restart can tell what was in flight and finish it:

* ``signals``: every signal seen (the primary key is the de-duplication), its state
  (``processing`` until a final report is stored) and the report.
* ``orders``: one row per client order id with its latest state; ``order_events`` keeps
  every state change. An order row is written as ``intent`` before the request leaves.
* ``fills``: the executed part of each order once it is final.
* ``positions``: the hedged position per coin, updated in the same transaction as the
  signal's final report, so a crash can never apply a result twice.
* ``recovery``: every one-leg recovery step; ``breaker_events``; ``halts`` (the kill
  switch, also written by the CLI from another process).

``synchronous=NORMAL`` in WAL mode survives a process crash (SIGKILL) without losing a
committed transaction; ``FULL`` also survives power loss at the cost of an fsync per
commit.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal
from typing import Any

import msgspec

from .models import ExecutionReport, HedgedPosition

__all__ = ["Journal", "JournalError", "OrderRow", "SCHEMA_VERSION", "UNFINISHED_ORDER_STATES"]

SCHEMA_VERSION = 1

#: Order states that need a look-up at the exchange after a restart.
UNFINISHED_ORDER_STATES = ("intent", "sent", "unknown", "open", "partially_filled")
FINAL_ORDER_STATES = ("filled", "canceled", "rejected", "expired", "absent")

_MIGRATIONS: dict[int, str] = {
    1: """
    CREATE TABLE signals (
        id           TEXT PRIMARY KEY,
        action       TEXT NOT NULL,
        coin         TEXT NOT NULL,
        qty          TEXT,
        ts_ms        INTEGER NOT NULL,
        ttl_ms       INTEGER NOT NULL,
        kimp         TEXT,
        received_ms  INTEGER NOT NULL,
        status       TEXT NOT NULL,          -- processing | final report status
        reason       TEXT NOT NULL DEFAULT '',
        report       TEXT,                   -- ExecutionReport JSON
        finished_ms  INTEGER
    );
    CREATE INDEX signals_status ON signals(status);
    CREATE TABLE orders (
        client_id         TEXT PRIMARY KEY,
        signal_id         TEXT NOT NULL,
        exchange          TEXT NOT NULL,
        symbol            TEXT NOT NULL,
        purpose           TEXT NOT NULL,     -- entry | exit | retry | unwind
        attempt           INTEGER NOT NULL,
        side              TEXT NOT NULL,
        type              TEXT NOT NULL,
        tif               TEXT,
        qty               TEXT,
        price             TEXT,
        quote_amount      TEXT,
        reduce_only       INTEGER NOT NULL DEFAULT 0,
        state             TEXT NOT NULL,
        exchange_order_id TEXT NOT NULL DEFAULT '',
        filled_qty        TEXT NOT NULL DEFAULT '0',
        avg_price         TEXT,
        quote_filled      TEXT NOT NULL DEFAULT '0',
        fee               TEXT NOT NULL DEFAULT '0',
        fee_asset         TEXT NOT NULL DEFAULT '',
        error             TEXT NOT NULL DEFAULT '',
        created_ms        INTEGER NOT NULL,
        updated_ms        INTEGER NOT NULL
    );
    CREATE INDEX orders_signal ON orders(signal_id);
    CREATE INDEX orders_state ON orders(state);
    CREATE TABLE order_events (
        id         INTEGER PRIMARY KEY AUTOINCREMENT,
        client_id  TEXT NOT NULL,
        ts_ms      INTEGER NOT NULL,
        state      TEXT NOT NULL,
        detail     TEXT NOT NULL DEFAULT ''
    );
    CREATE INDEX order_events_client ON order_events(client_id);
    CREATE TABLE fills (
        client_id  TEXT PRIMARY KEY,
        signal_id  TEXT NOT NULL,
        exchange   TEXT NOT NULL,
        symbol     TEXT NOT NULL,
        side       TEXT NOT NULL,
        qty        TEXT NOT NULL,
        price      TEXT NOT NULL,
        quote      TEXT NOT NULL,
        fee        TEXT NOT NULL,
        fee_asset  TEXT NOT NULL,
        ts_ms      INTEGER NOT NULL
    );
    CREATE TABLE positions (
        coin        TEXT PRIMARY KEY,
        data        TEXT NOT NULL,           -- HedgedPosition JSON
        updated_ms  INTEGER NOT NULL
    );
    CREATE TABLE recovery (
        id         INTEGER PRIMARY KEY AUTOINCREMENT,
        signal_id  TEXT NOT NULL,
        coin       TEXT NOT NULL,
        step       TEXT NOT NULL,
        detail     TEXT NOT NULL DEFAULT '',
        ts_ms      INTEGER NOT NULL
    );
    CREATE INDEX recovery_signal ON recovery(signal_id);
    CREATE TABLE breaker_events (
        id        INTEGER PRIMARY KEY AUTOINCREMENT,
        exchange  TEXT NOT NULL,
        old_state TEXT NOT NULL,
        new_state TEXT NOT NULL,
        reason    TEXT NOT NULL DEFAULT '',
        ts_ms     INTEGER NOT NULL
    );
    CREATE TABLE halts (
        id      INTEGER PRIMARY KEY AUTOINCREMENT,
        action  TEXT NOT NULL,               -- halt | resume
        reason  TEXT NOT NULL DEFAULT '',
        source  TEXT NOT NULL DEFAULT '',
        ts_ms   INTEGER NOT NULL
    );
    CREATE TABLE notifications (
        id        INTEGER PRIMARY KEY AUTOINCREMENT,
        severity  TEXT NOT NULL,
        title     TEXT NOT NULL,
        message   TEXT NOT NULL DEFAULT '',
        ts_ms     INTEGER NOT NULL
    );
    """,
}

_position_decoder = msgspec.json.Decoder(HedgedPosition)
_report_decoder = msgspec.json.Decoder(ExecutionReport)
_encoder = msgspec.json.Encoder(decimal_format="string")


class JournalError(RuntimeError):
    pass


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def _s(value: Decimal | None) -> str | None:
    return None if value is None else str(value)


class OrderRow(msgspec.Struct, kw_only=True):
    client_id: str
    signal_id: str
    exchange: str
    symbol: str
    purpose: str
    attempt: int
    side: str
    type: str
    tif: str | None
    qty: Decimal | None
    price: Decimal | None
    quote_amount: Decimal | None
    reduce_only: bool
    state: str
    exchange_order_id: str
    filled_qty: Decimal
    avg_price: Decimal | None
    quote_filled: Decimal
    fee: Decimal
    fee_asset: str
    error: str
    created_ms: int
    updated_ms: int

    @property
    def unfinished(self) -> bool:
        return self.state in UNFINISHED_ORDER_STATES


def _dec(v: str | None) -> Decimal | None:
    return None if v is None else Decimal(v)


def _order_row(r: sqlite3.Row) -> OrderRow:
    return OrderRow(
        client_id=r["client_id"],
        signal_id=r["signal_id"],
        exchange=r["exchange"],
        symbol=r["symbol"],
        purpose=r["purpose"],
        attempt=r["attempt"],
        side=r["side"],
        type=r["type"],
        tif=r["tif"],
        qty=_dec(r["qty"]),
        price=_dec(r["price"]),
        quote_amount=_dec(r["quote_amount"]),
        reduce_only=bool(r["reduce_only"]),
        state=r["state"],
        exchange_order_id=r["exchange_order_id"],
        filled_qty=Decimal(r["filled_qty"]),
        avg_price=_dec(r["avg_price"]),
        quote_filled=Decimal(r["quote_filled"]),
        fee=Decimal(r["fee"]),
        fee_asset=r["fee_asset"],
        error=r["error"],
        created_ms=r["created_ms"],
        updated_ms=r["updated_ms"],
    )


class Journal:
    """One SQLite file. Not thread-safe: use one ``Journal`` per thread/process."""

    def __init__(
        self, path: str | os.PathLike[str], *, synchronous: str = "NORMAL", autocheckpoint: bool = True
    ) -> None:
        if synchronous not in ("NORMAL", "FULL"):
            raise ValueError("synchronous: expected 'NORMAL' or 'FULL'")
        self.path = os.fspath(path)
        parent = os.path.dirname(os.path.abspath(self.path))
        os.makedirs(parent, exist_ok=True)
        # isolation_level=None: we issue BEGIN/COMMIT ourselves, so a multi-row step is
        # one atomic transaction and nothing is left half-written by a crash.
        self._db = sqlite3.connect(self.path, isolation_level=None, timeout=10.0)
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(f"PRAGMA synchronous={synchronous}")
        self._db.execute("PRAGMA foreign_keys=ON")
        self._db.execute("PRAGMA busy_timeout=10000")
        if not autocheckpoint:
            # The owner checkpoints off the order path (see checkpoint()): SQLite's automatic
            # checkpoint runs inside whichever commit crosses the threshold, and that commit
            # may be an order intent (it was the whole p99 of signal -> wire).
            self._db.execute("PRAGMA wal_autocheckpoint=0")
        self._migrate()

    # -- lifecycle -------------------------------------------------------------------
    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> "Journal":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Journal({self.path!r})"

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield self._db
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        else:
            self._db.execute("COMMIT")

    def _migrate(self) -> None:
        version = self._db.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise JournalError(
                f"journal {self.path} has schema version {version}, newer than this "
                f"kimp-fast supports ({SCHEMA_VERSION}); upgrade kimp-fast"
            )
        for v in range(version + 1, SCHEMA_VERSION + 1):
            with self.transaction() as db:
                for stmt in _split_sql(_MIGRATIONS[v]):
                    db.execute(stmt)
                db.execute(f"PRAGMA user_version={v}")

    @staticmethod
    def checkpoint(path: str | os.PathLike[str]) -> tuple[int, int, int]:
        """A PASSIVE WAL checkpoint on a connection of its own (safe from another thread;
        it never blocks writers). Returns SQLite's (busy, wal pages, pages checkpointed)."""
        db = sqlite3.connect(os.fspath(path), timeout=10.0)
        try:
            row = db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
            return int(row[0]), int(row[1]), int(row[2])
        finally:
            db.close()

    @property
    def schema_version(self) -> int:
        return int(self._db.execute("PRAGMA user_version").fetchone()[0])

    # -- signals ---------------------------------------------------------------------
    def begin_signal(self, sig: Any, received_ms: int | None = None) -> tuple[bool, str | None]:
        """Record a new signal. Returns ``(True, None)`` if it is new, else
        ``(False, previous_status)`` — the durable de-duplication."""
        cur = self._insert_signal(self._db, sig, received_ms or _now_ms())
        if cur.rowcount == 1:
            return True, None
        return False, self.signal_status(sig.id)

    @staticmethod
    def _insert_signal(db: sqlite3.Connection, sig: Any, now: int) -> sqlite3.Cursor:
        return db.execute(
            "INSERT OR IGNORE INTO signals(id, action, coin, qty, ts_ms, ttl_ms, kimp, received_ms, status)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'processing')",
            (sig.id, sig.action, sig.coin, _s(sig.qty), sig.ts_ms, sig.ttl_ms, _s(sig.kimp), now),
        )

    def signal_status(self, signal_id: str) -> str | None:
        """The journaled status of a signal id, or None if it was never recorded."""
        row = self._db.execute("SELECT status FROM signals WHERE id = ?", (signal_id,)).fetchone()
        return row["status"] if row else None

    def record_rejected_signal(self, signal_id: str, action: str, coin: str, report: ExecutionReport) -> None:
        """Journal a signal refused at validation (it may be malformed, so only what is known)."""
        self._db.execute(
            "INSERT OR IGNORE INTO signals(id, action, coin, ts_ms, ttl_ms, received_ms, status, reason, report, finished_ms)"
            " VALUES (?, ?, ?, 0, 0, ?, ?, ?, ?, ?)",
            (signal_id, action, coin, _now_ms(), report.status, report.reason,
             _encoder.encode(report).decode(), _now_ms()),
        )

    def finish_signal(
        self,
        report: ExecutionReport,
        *,
        position: HedgedPosition | None = None,
        clear_position: str | None = None,
        signal: Any = None,
    ) -> None:
        """Store the final report and the resulting position in ONE transaction
        (``signal``: also record the signal's row if it is not there yet)."""
        with self.transaction() as db:
            if signal is not None:
                self._insert_signal(db, signal, _now_ms())
            db.execute(
                "UPDATE signals SET status = ?, reason = ?, report = ?, finished_ms = ? WHERE id = ?",
                (report.status, report.reason, _encoder.encode(report).decode(), _now_ms(), report.signal_id),
            )
            if position is not None:
                self._put_position(db, position)
            if clear_position is not None:
                db.execute("DELETE FROM positions WHERE coin = ?", (clear_position,))

    def signal(self, signal_id: str) -> dict[str, Any] | None:
        row = self._db.execute("SELECT * FROM signals WHERE id = ?", (signal_id,)).fetchone()
        return dict(row) if row else None

    def signal_report(self, signal_id: str) -> ExecutionReport | None:
        row = self._db.execute("SELECT report FROM signals WHERE id = ?", (signal_id,)).fetchone()
        if row is None or row["report"] is None:
            return None
        return _report_decoder.decode(row["report"])

    def processing_signals(self) -> list[dict[str, Any]]:
        rows = self._db.execute(
            "SELECT * FROM signals WHERE status = 'processing' ORDER BY received_ms"
        ).fetchall()
        return [dict(r) for r in rows]

    def signals(self, last: int = 50) -> list[dict[str, Any]]:
        rows = self._db.execute(
            "SELECT id, action, coin, qty, status, reason, received_ms, finished_ms FROM signals"
            " ORDER BY received_ms DESC, rowid DESC LIMIT ?",
            (last,),
        ).fetchall()
        return [dict(r) for r in rows]

    def signal_counts(self) -> dict[str, int]:
        rows = self._db.execute("SELECT status, COUNT(*) AS n FROM signals GROUP BY status").fetchall()
        return {r["status"]: r["n"] for r in rows}

    # -- orders ----------------------------------------------------------------------
    def order_intent(
        self,
        *,
        client_id: str,
        signal_id: str,
        exchange: str,
        symbol: str,
        purpose: str,
        attempt: int,
        side: str,
        type: str,
        tif: str | None,
        qty: Decimal | None,
        price: Decimal | None,
        quote_amount: Decimal | None = None,
        reduce_only: bool = False,
        detail: str = "",
    ) -> None:
        """Write-ahead: the order row exists before its request is sent."""
        now = _now_ms()
        with self.transaction() as db:
            db.execute(
                "INSERT INTO orders(client_id, signal_id, exchange, symbol, purpose, attempt, side, type, tif,"
                " qty, price, quote_amount, reduce_only, state, created_ms, updated_ms)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'intent', ?, ?)",
                (client_id, signal_id, exchange, symbol, purpose, attempt, side, type, tif,
                 _s(qty), _s(price), _s(quote_amount), int(reduce_only), now, now),
            )
            db.execute(
                "INSERT INTO order_events(client_id, ts_ms, state, detail) VALUES (?, ?, 'intent', ?)",
                (client_id, now, detail),
            )

    def order_intents(
        self,
        rows: list[dict[str, Any]],
        *,
        signal: Any = None,
        plan: dict[str, Any] | None = None,
    ) -> None:
        """Several intents in one transaction (both legs of a pair).

        With ``signal`` the signal's row is written in the same transaction (if it is not
        there yet), and with ``plan`` the pair's plan as its first recovery step: one
        commit on the order path instead of three. A signal that never reaches this point
        sent nothing, so recording it only now loses no de-duplication that matters.
        """
        now = _now_ms()
        with self.transaction() as db:
            if signal is not None:
                self._insert_signal(db, signal, now)
            if plan is not None:
                db.execute(
                    "INSERT INTO recovery(signal_id, coin, step, detail, ts_ms) VALUES (?, ?, 'plan', ?, ?)",
                    (signal.id if signal is not None else rows[0]["signal_id"], plan.pop("coin", ""),
                     json.dumps(plan, default=str, sort_keys=True), now),
                )
            for o in rows:
                db.execute(
                    "INSERT INTO orders(client_id, signal_id, exchange, symbol, purpose, attempt, side, type, tif,"
                    " qty, price, quote_amount, reduce_only, state, created_ms, updated_ms)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'intent', ?, ?)",
                    (o["client_id"], o["signal_id"], o["exchange"], o["symbol"], o["purpose"], o["attempt"],
                     o["side"], o["type"], o.get("tif"), _s(o.get("qty")), _s(o.get("price")),
                     _s(o.get("quote_amount")), int(o.get("reduce_only", False)), now, now),
                )
                db.execute(
                    "INSERT INTO order_events(client_id, ts_ms, state, detail) VALUES (?, ?, 'intent', '')",
                    (o["client_id"], now),
                )

    def update_order(
        self,
        client_id: str,
        state: str,
        *,
        exchange_order_id: str | None = None,
        filled_qty: Decimal | None = None,
        avg_price: Decimal | None = None,
        quote_filled: Decimal | None = None,
        fee: Decimal | None = None,
        fee_asset: str | None = None,
        error: str | None = None,
        detail: str = "",
    ) -> None:
        """Record a state change; when the order is final and filled, record its fill."""
        now = _now_ms()
        sets = ["state = ?", "updated_ms = ?"]
        args: list[Any] = [state, now]
        for col, val in (
            ("exchange_order_id", exchange_order_id),
            ("filled_qty", _s(filled_qty)),
            ("avg_price", _s(avg_price)),
            ("quote_filled", _s(quote_filled)),
            ("fee", _s(fee)),
            ("fee_asset", fee_asset),
            ("error", error),
        ):
            if val is not None:
                sets.append(f"{col} = ?")
                args.append(val)
        args.append(client_id)
        with self.transaction() as db:
            cur = db.execute(f"UPDATE orders SET {', '.join(sets)} WHERE client_id = ?", args)
            if cur.rowcount != 1:
                raise JournalError(f"unknown client order id {client_id!r}")
            db.execute(
                "INSERT INTO order_events(client_id, ts_ms, state, detail) VALUES (?, ?, ?, ?)",
                (client_id, now, state, detail or (error or "")),
            )
            if state in FINAL_ORDER_STATES:
                row = db.execute("SELECT * FROM orders WHERE client_id = ?", (client_id,)).fetchone()
                if Decimal(row["filled_qty"]) > 0:
                    db.execute(
                        "INSERT OR REPLACE INTO fills(client_id, signal_id, exchange, symbol, side, qty, price,"
                        " quote, fee, fee_asset, ts_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                        (client_id, row["signal_id"], row["exchange"], row["symbol"], row["side"],
                         row["filled_qty"], row["avg_price"] or "0", row["quote_filled"], row["fee"],
                         row["fee_asset"], now),
                    )

    def order(self, client_id: str) -> OrderRow | None:
        r = self._db.execute("SELECT * FROM orders WHERE client_id = ?", (client_id,)).fetchone()
        return _order_row(r) if r else None

    def orders_for_signal(self, signal_id: str) -> list[OrderRow]:
        rows = self._db.execute(
            "SELECT * FROM orders WHERE signal_id = ? ORDER BY created_ms, rowid", (signal_id,)
        ).fetchall()
        return [_order_row(r) for r in rows]

    def unfinished_orders(self) -> list[OrderRow]:
        marks = ",".join("?" * len(UNFINISHED_ORDER_STATES))
        rows = self._db.execute(
            f"SELECT * FROM orders WHERE state IN ({marks}) ORDER BY created_ms, rowid",
            UNFINISHED_ORDER_STATES,
        ).fetchall()
        return [_order_row(r) for r in rows]

    def orders(self, last: int = 50) -> list[OrderRow]:
        rows = self._db.execute(
            "SELECT * FROM orders ORDER BY created_ms DESC, rowid DESC LIMIT ?", (last,)
        ).fetchall()
        return [_order_row(r) for r in rows]

    def all_orders(self) -> list[OrderRow]:
        rows = self._db.execute("SELECT * FROM orders ORDER BY created_ms, rowid").fetchall()
        return [_order_row(r) for r in rows]

    def order_events(self, client_id: str) -> list[dict[str, Any]]:
        rows = self._db.execute(
            "SELECT ts_ms, state, detail FROM order_events WHERE client_id = ? ORDER BY id", (client_id,)
        ).fetchall()
        return [dict(r) for r in rows]

    def fills(self) -> list[dict[str, Any]]:
        return [dict(r) for r in self._db.execute("SELECT * FROM fills ORDER BY ts_ms, rowid").fetchall()]

    # -- positions -------------------------------------------------------------------
    @staticmethod
    def _put_position(db: sqlite3.Connection, pos: HedgedPosition) -> None:
        db.execute(
            "INSERT OR REPLACE INTO positions(coin, data, updated_ms) VALUES (?, ?, ?)",
            (pos.coin, _encoder.encode(pos).decode(), _now_ms()),
        )

    def positions(self) -> dict[str, HedgedPosition]:
        rows = self._db.execute("SELECT coin, data FROM positions ORDER BY coin").fetchall()
        return {r["coin"]: _position_decoder.decode(r["data"]) for r in rows}

    # -- recovery, breakers, notifications -------------------------------------------
    def recovery_step(self, signal_id: str, coin: str, step: str, **detail: Any) -> None:
        self._db.execute(
            "INSERT INTO recovery(signal_id, coin, step, detail, ts_ms) VALUES (?, ?, ?, ?, ?)",
            (signal_id, coin, step, json.dumps(detail, default=str, sort_keys=True), _now_ms()),
        )

    def recovery_steps(self, signal_id: str | None = None) -> list[dict[str, Any]]:
        if signal_id is None:
            rows = self._db.execute("SELECT * FROM recovery ORDER BY id").fetchall()
        else:
            rows = self._db.execute(
                "SELECT * FROM recovery WHERE signal_id = ? ORDER BY id", (signal_id,)
            ).fetchall()
        return [dict(r) for r in rows]

    def breaker_event(self, exchange: str, old: str, new: str, reason: str) -> None:
        self._db.execute(
            "INSERT INTO breaker_events(exchange, old_state, new_state, reason, ts_ms) VALUES (?, ?, ?, ?, ?)",
            (exchange, old, new, reason, _now_ms()),
        )

    def breaker_events(self) -> list[dict[str, Any]]:
        return [dict(r) for r in self._db.execute("SELECT * FROM breaker_events ORDER BY id").fetchall()]

    def notification(self, severity: str, title: str, message: str) -> None:
        self._db.execute(
            "INSERT INTO notifications(severity, title, message, ts_ms) VALUES (?, ?, ?, ?)",
            (severity, title, message, _now_ms()),
        )

    def notifications(self) -> list[dict[str, Any]]:
        return [dict(r) for r in self._db.execute("SELECT * FROM notifications ORDER BY id").fetchall()]

    # -- kill switch (shared with the CLI through the file) ---------------------------
    def set_halt(self, reason: str, source: str = "engine") -> None:
        self._db.execute(
            "INSERT INTO halts(action, reason, source, ts_ms) VALUES ('halt', ?, ?, ?)",
            (reason, source, _now_ms()),
        )

    def clear_halt(self, source: str = "engine", reason: str = "") -> None:
        self._db.execute(
            "INSERT INTO halts(action, reason, source, ts_ms) VALUES ('resume', ?, ?, ?)",
            (reason, source, _now_ms()),
        )

    def halt_state(self) -> tuple[bool, str, int]:
        """(halted, reason, id of the last kill-switch row)."""
        row = self._db.execute("SELECT id, action, reason FROM halts ORDER BY id DESC LIMIT 1").fetchone()
        if row is None:
            return False, "", 0
        return row["action"] == "halt", row["reason"], row["id"]

    def halts(self) -> list[dict[str, Any]]:
        return [dict(r) for r in self._db.execute("SELECT * FROM halts ORDER BY id").fetchall()]


def _split_sql(script: str) -> list[str]:
    out = []
    for part in script.split(";"):
        lines = [ln.split("--", 1)[0] for ln in part.splitlines()]
        stmt = "\n".join(lines).strip()
        if stmt:
            out.append(stmt)
    return out
