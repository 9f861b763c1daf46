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

**Write-behind (the engine's mode).** A SQLite commit costs ~80 µs warm and ~400 µs on a
CPU that just woke up, and the engine needs one before every order leaves. With
``write_behind=True`` the engine's writes are first appended, as one line of ready-made
SQL parameters, to a redo file next to the database (``<path>-redo``, one ``write(2)``,
~2 µs warm / ~40 µs cold) and applied to SQLite in one transaction a moment later, once
the orders are on the wire (:meth:`Journal.flush_soon`), before any read, and at close.
The redo line is the write-ahead record: it has the durability of a committed WAL
transaction (a process crash loses nothing; with ``synchronous=FULL`` it is fsynced too),
and every line carries a sequence number that SQLite stores with the rows it produced
(``journal_meta``), so reopening the journal applies exactly the lines that were not yet
applied — never one twice. Each line carries a crc32 of its JSON, so damage is told from
a crash's torn last line (see ``_replay``). The redo file is held under an exclusive
``flock`` by the engine's journal (``exclusive=True``, write-behind or not): one engine
per journal. Other processes (the CLI) read SQLite; a lagging second is the most they
can see, and a journal left by a crashed engine is brought up to date by whoever opens it
next while no engine holds it.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import mmap
import os
import sqlite3
import struct
import time
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from decimal import Decimal
from typing import Any

import msgspec

try:  # POSIX; elsewhere the one-engine-per-journal lock is not enforced
    import fcntl
except ImportError:  # pragma: no cover
    fcntl = None  # type: ignore[assignment]

from .models import TEXT_LIMIT, ExecutionReport, HedgedPosition, bounded

__all__ = [
    "HALT_STAMP_SIZE", "Journal", "JournalError", "OrderRow", "SCHEMA_VERSION", "UNFINISHED_ORDER_STATES",
    "stamp_halt",
]

SCHEMA_VERSION = 2

log = logging.getLogger("kimp_fast.journal")

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
        action  TEXT NOT NULL,               -- halt | halt_entries | resume
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
    2: """
    CREATE TABLE journal_meta (
        key    TEXT PRIMARY KEY,
        value  TEXT NOT NULL
    );
    """,
}

#: The statements a journal write is made of. A write is a list of ``(key, params)``
#: with every value already a str/int/None, so it can be stored as one redo line and
#: applied later (or again, after a crash) with exactly the same effect.
_SQL: dict[str, str] = {
    "signal": "INSERT OR IGNORE INTO signals(id, action, coin, qty, ts_ms, ttl_ms, kimp, received_ms, status)"
              " VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'processing')",
    "rejected_signal": "INSERT OR IGNORE INTO signals(id, action, coin, ts_ms, ttl_ms, received_ms, status, reason,"
                       " report, finished_ms) VALUES (?, ?, ?, 0, 0, ?, ?, ?, ?, ?)",
    "finish": "UPDATE signals SET status = ?, reason = ?, report = ?, finished_ms = ? WHERE id = ?",
    "order": "INSERT INTO orders(client_id, signal_id, exchange, symbol, purpose, attempt, side, type, tif,"
             " qty, price, quote_amount, reduce_only, state, created_ms, updated_ms)"
             " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'intent', ?, ?)",
    "update_order": "UPDATE orders SET state = ?, updated_ms = ?,"
                    " exchange_order_id = COALESCE(?, exchange_order_id), filled_qty = COALESCE(?, filled_qty),"
                    " avg_price = COALESCE(?, avg_price), quote_filled = COALESCE(?, quote_filled),"
                    " fee = COALESCE(?, fee), fee_asset = COALESCE(?, fee_asset), error = COALESCE(?, error)"
                    " WHERE client_id = ?",
    "order_event": "INSERT INTO order_events(client_id, ts_ms, state, detail) VALUES (?, ?, ?, ?)",
    # the fill of a final order, from its row (quantities are decimal text: CAST only tests > 0)
    "fill": "INSERT OR REPLACE INTO fills(client_id, signal_id, exchange, symbol, side, qty, price, quote, fee,"
            " fee_asset, ts_ms) SELECT client_id, signal_id, exchange, symbol, side, filled_qty,"
            " COALESCE(avg_price, '0'), quote_filled, fee, fee_asset, ? FROM orders"
            " WHERE client_id = ? AND CAST(filled_qty AS REAL) > 0",
    "position": "INSERT OR REPLACE INTO positions(coin, data, updated_ms) VALUES (?, ?, ?)",
    "clear_position": "DELETE FROM positions WHERE coin = ?",
    "recovery": "INSERT INTO recovery(signal_id, coin, step, detail, ts_ms) VALUES (?, ?, ?, ?, ?)",
    "breaker": "INSERT INTO breaker_events(exchange, old_state, new_state, reason, ts_ms) VALUES (?, ?, ?, ?, ?)",
    "notification": "INSERT INTO notifications(severity, title, message, ts_ms) VALUES (?, ?, ?, ?)",
    "halt": "INSERT INTO halts(action, reason, source, ts_ms) VALUES (?, ?, ?, ?)",
    "redo_applied": "INSERT OR REPLACE INTO journal_meta(key, value) VALUES ('redo_applied_seq', ?)",
}
_Write = list[tuple[str, list[Any]]]
_redo_encoder = msgspec.json.Encoder()
#: recovery-step details: sorted keys, anything unknown as its str() (json.dumps(default=str,
#: sort_keys=True) without the spaces, 10x cheaper on the order path)
_detail_encoder = msgspec.json.Encoder(enc_hook=str, order="sorted")
_redo_decoder = msgspec.json.Decoder(tuple[int, list[tuple[str, list[Any]]]])

_position_decoder = msgspec.json.Decoder(HedgedPosition)
_report_decoder = msgspec.json.Decoder(ExecutionReport)
_encoder = msgspec.json.Encoder(decimal_format="string")


class JournalError(RuntimeError):
    pass


# -- redo lines ----------------------------------------------------------------------
# A redo line is ``<crc32 of the JSON, 8 lowercase hex digits> <JSON>\n``. The checksum
# tells a damaged line (a flipped digit, a NUL, a zeroed block) from a good one; one
# zlib.crc32 over a few hundred bytes costs well under a microsecond on the order path.
# Lines written before checksums existed start with ``[`` and are refused (see _replay).
_CRC_LEN = 8


_crc32 = zlib.crc32


def _redo_line(record: tuple[int, _Write]) -> bytes:
    body = _redo_encoder.encode(record)
    return b"%08x %b\n" % (_crc32(body), body)


def _check_line(line: bytes) -> bytes | None:
    """The JSON of a redo line whose checksum matches, else None."""
    if len(line) < _CRC_LEN + 2 or line[_CRC_LEN] != 0x20:
        return None
    try:
        crc = int(line[:_CRC_LEN], 16)
    except ValueError:
        return None
    body = line[_CRC_LEN + 1:]
    return body if zlib.crc32(body) == crc else None


# -- the kill-switch stamp -----------------------------------------------------------
#: Size of ``<path>-halt``: one page, written in full when the file is created (a
#: sparse page of a memory map on a full tmpfs is a SIGBUS at the first read).
HALT_STAMP_SIZE = 4096
# Layout (little-endian): [0:8] change stamp (random | 1, moved after every change);
# [8:16] token of a halt set through the stamp (0: none) — in force until a resume,
# whatever SQLite says; [16:24] its time (ms); [24:26] reason length; [26:28] source
# length; [28:32] crc32 of bytes 8..28 + reason + source; [32:32+1024] reason (UTF-8);
# [1056:1056+64] source.
_STAMP_HEAD = struct.Struct("<QQHH")  # token, ts_ms, reason length, source length (at offset 8)
_STAMP_REASON_AT, _STAMP_REASON_MAX = 32, 1024
_STAMP_SOURCE_AT, _STAMP_SOURCE_MAX = 1056, 64


def _clip_utf8(text: str, limit: int) -> bytes:
    raw = text.encode("utf-8", "replace")
    if len(raw) <= limit:
        return raw
    return raw[:limit - 3].decode("utf-8", "ignore").encode() + b"..."


def _open_stamp(path: str) -> mmap.mmap:
    """Map ``<journal>-halt``, creating it (0600) with every byte written, or extending an
    older, shorter or sparse one the same way. Raises OSError when the space cannot be had
    (a full disk) — before anything is mapped, so no read of the map can fault."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        st = os.fstat(fd)
        if st.st_size < HALT_STAMP_SIZE or st.st_blocks * 512 < HALT_STAMP_SIZE:
            # Write (never ftruncate) the whole page: the file system must give the blocks
            # now. What an older stamp file holds is kept (its change stamp, its halt).
            have = os.pread(fd, HALT_STAMP_SIZE, 0)
            data = have + bytes(HALT_STAMP_SIZE - len(have))
            if os.pwrite(fd, data, 0) != HALT_STAMP_SIZE:  # pragma: no cover - short write
                raise OSError(28, "short write reserving the kill-switch stamp")
            os.fsync(fd)
        return mmap.mmap(fd, HALT_STAMP_SIZE)
    finally:
        os.close(fd)


def _write_stamp_halt(mm: mmap.mmap, reason: str, source: str) -> int:
    """Put a halt into the stamp (no SQLite involved); returns its token."""
    token = int.from_bytes(os.urandom(8), "little") | 1
    r, s = _clip_utf8(reason, _STAMP_REASON_MAX), _clip_utf8(source, _STAMP_SOURCE_MAX)
    head = _STAMP_HEAD.pack(token, _now_ms(), len(r), len(s))
    mm[_STAMP_REASON_AT:_STAMP_REASON_AT + len(r)] = r
    mm[_STAMP_SOURCE_AT:_STAMP_SOURCE_AT + len(s)] = s
    mm[8:8 + _STAMP_HEAD.size] = head
    struct.pack_into("<I", mm, 28, zlib.crc32(head + r + s))
    _move_stamp(mm)
    return token


def _move_stamp(mm: mmap.mmap) -> None:
    struct.pack_into("<Q", mm, 0, int.from_bytes(os.urandom(8), "little") | 1)


def _read_stamp_halt(mm: mmap.mmap) -> tuple[int, str, str, int] | None:
    """(token, reason, source, ts_ms) of the halt set through the stamp, or None. A record
    that does not check out (being written right now, or damaged) reads as a halt."""
    token, ts_ms, rlen, slen = _STAMP_HEAD.unpack_from(mm, 8)
    if token == 0:
        return None
    if rlen > _STAMP_REASON_MAX or slen > _STAMP_SOURCE_MAX:
        return token, "kill switch set through the halt stamp (its record is unreadable)", "?", ts_ms
    r = mm[_STAMP_REASON_AT:_STAMP_REASON_AT + rlen]
    s = mm[_STAMP_SOURCE_AT:_STAMP_SOURCE_AT + slen]
    if zlib.crc32(mm[8:8 + _STAMP_HEAD.size] + r + s) != struct.unpack_from("<I", mm, 28)[0]:
        return token, "kill switch set through the halt stamp (its record is unreadable)", "?", ts_ms
    return token, r.decode("utf-8", "replace"), s.decode("utf-8", "replace"), ts_ms


def stamp_halt(path: str | os.PathLike[str], reason: str, source: str = "cli") -> None:
    """Halt the engine of journal ``path`` through its kill-switch stamp alone — no SQLite
    write (``kimp-fast halt`` when SQLite cannot be written: a full disk, a read-only
    file). A running engine sees it at its next signal; it stays in force until a resume
    and is recorded in the ``halts`` table by the next process that can write SQLite."""
    mm = _open_stamp(os.fspath(path) + "-halt")
    try:
        _write_stamp_halt(mm, reason, source)
        mm.flush()
    finally:
        mm.close()


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
    """One SQLite file. Not thread-safe: use one ``Journal`` per thread/process.

    ``write_behind=True`` (the engine): writes go to the redo file first and reach SQLite
    at the next :meth:`flush` (see the module docstring); reads always see every write.
    """

    #: bytes reserved for the redo file (it only ever holds writes SQLite does not have
    #: yet — a few KB — and grows if a burst needs more)
    redo_capacity = 1 << 22

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        synchronous: str = "NORMAL",
        autocheckpoint: bool = True,
        write_behind: bool = False,
        exclusive: bool | None = None,
    ) -> None:
        if synchronous not in ("NORMAL", "FULL"):
            raise ValueError("synchronous: expected 'NORMAL' or 'FULL'")
        self.path = os.fspath(path)
        self.redo_path = self.path + "-redo"
        self.write_behind = write_behind
        #: the engine's journal: holds the one-engine lock for its whole life (whatever
        #: write_behind says) and needs its kill-switch stamp; readers (the CLI) do not
        self.exclusive = write_behind if exclusive is None else exclusive
        if write_behind and not self.exclusive:
            raise ValueError("write_behind needs exclusive=True (one engine per journal)")
        #: why the last SQLite write failed ("" while writes succeed)
        self.write_error = ""
        #: called with the error text when a SQLite write fails (the engine halts entries)
        self.on_write_error: Callable[[str], None] | None = None
        self._fsync = synchronous == "FULL"
        self._pending: list[tuple[int, _Write]] = []
        self._seq = 0
        self._redo_fd = -1
        self._lock_fd = -1  # the redo file, held under flock by an exclusive journal without write-behind
        self._redo_map: mmap.mmap | None = None
        self._redo_size = 0  # bytes of unapplied writes at the start of the map
        self._halt_map: mmap.mmap | None = None
        self._halt_seen = -1  # the kill-switch stamp halt_state() last read SQLite under
        self._halt_cached: tuple[bool, str, int] = (False, "", 0)
        self._halt_entries_only = False  # the cached halt refuses ENTERs only (set_halt(entries_only=True))
        self._stamp_recorded = 0  # token of the stamp halt known to be in SQLite
        self._flush_scheduled = False
        self._broken = ""
        #: client ids whose intent this journal wrote: an update of any other id is
        #: checked against SQLite (write-behind cannot wait for the UPDATE's row count)
        self._known_orders: set[str] = set()
        parent = os.path.dirname(os.path.abspath(self.path))
        os.makedirs(parent, exist_ok=True)
        if self.path != ":memory:" and not self.path.startswith("file:"):
            # Created 0600 like the redo file (SQLite gives -wal and -shm the mode of the
            # database file): the journal holds positions, orders and balances.
            try:
                os.close(os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
            except FileExistsError:
                pass
        # isolation_level=None: we issue BEGIN/COMMIT ourselves, so a multi-row step is
        # one atomic transaction and nothing is left half-written by a crash.
        self._conn = sqlite3.connect(self.path, isolation_level=None, timeout=10.0)
        try:
            self._conn.row_factory = sqlite3.Row
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute(f"PRAGMA synchronous={synchronous}")
            self._conn.execute("PRAGMA foreign_keys=ON")
            self._conn.execute("PRAGMA busy_timeout=10000")
            if not autocheckpoint:
                # The owner checkpoints off the order path (see checkpoint()): SQLite's automatic
                # checkpoint runs inside whichever commit crosses the threshold, and that commit
                # may be an order intent (it was the whole p99 of signal -> wire).
                self._conn.execute("PRAGMA wal_autocheckpoint=0")
            self._migrate()
            self._open_redo()
            self._open_halt_stamp()
            if self.exclusive:
                self.record_stamp_halt()
        except BaseException:
            self._close_redo()
            self._conn.close()
            if self._lock_fd >= 0:
                os.close(self._lock_fd)
                self._lock_fd = -1
            raise

    # -- lifecycle -------------------------------------------------------------------
    def close(self) -> None:
        try:
            if self._pending and not self._broken:
                self.flush()
            if self._redo_fd >= 0 and not self._pending:
                self._release_redo_map()
                os.ftruncate(self._redo_fd, 0)  # a closed journal leaves an empty redo file
        finally:
            self._close_redo()
            if self._halt_map is not None:
                self._halt_map.close()
                self._halt_map = None
            self._conn.close()
            if self._lock_fd >= 0:
                os.close(self._lock_fd)  # releases the one-engine lock
                self._lock_fd = -1

    def __enter__(self) -> "Journal":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Journal({self.path!r})"

    @property
    def _db(self) -> sqlite3.Connection:
        """The connection, with every write of this journal applied (read-your-writes)."""
        if self._pending:
            self.flush()
        return self._conn

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        db = self._db
        with self._tx(db):
            yield db

    @staticmethod
    @contextmanager
    def _tx(db: sqlite3.Connection) -> Iterator[None]:
        db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            db.execute("ROLLBACK")
            raise
        else:
            db.execute("COMMIT")

    def _migrate(self) -> None:
        db = self._conn
        version = db.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise JournalError(
                f"journal {self.path} has schema version {version}, newer than this "
                f"kimp-fast supports ({SCHEMA_VERSION}); upgrade kimp-fast"
            )
        for v in range(version + 1, SCHEMA_VERSION + 1):
            with self._tx(db):
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
        return int(self._conn.execute("PRAGMA user_version").fetchone()[0])

    # -- the redo file (write-behind) --------------------------------------------------
    def _open_redo(self) -> None:
        """Take the redo file (write-behind) or, when no engine holds it, apply what a
        crashed one left there."""
        if not self.exclusive:
            try:
                if os.path.getsize(self.redo_path) == 0:
                    return
            except FileNotFoundError:
                return
        fd = os.open(self.redo_path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            if fcntl is not None:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    if self.exclusive:
                        raise JournalError(
                            f"journal {self.path} is in use by another engine (its redo file "
                            f"{self.redo_path} is locked): one engine per journal"
                        ) from None
                    os.close(fd)  # a running engine owns it and keeps SQLite current
                    return
            self._replay(fd)
            if self.write_behind:
                self._redo_fd = fd
                self._map_redo(self.redo_capacity)
            else:
                os.ftruncate(fd, 0)
        except BaseException:
            self._release_redo_map()
            self._redo_fd = -1
            os.close(fd)
            raise
        if not self.write_behind:
            if self.exclusive:
                self._lock_fd = fd  # held (the lock with it) until close()
            else:
                os.close(fd)  # closing releases the lock

    def _map_redo(self, size: int) -> None:
        """Reserve ``size`` bytes on disk (so a full disk fails here, not as a SIGBUS on a
        later store) and map them: a redo write is then a copy into shared memory, which
        the kernel keeps when the process dies — no system call on the order path."""
        self._release_redo_map()
        os.ftruncate(self._redo_fd, 0)  # whatever was there is applied: start from zeros
        try:
            os.posix_fallocate(self._redo_fd, 0, size)
        except (AttributeError, OSError) as exc:
            if isinstance(exc, OSError) and exc.errno not in (errno.EOPNOTSUPP, errno.EINVAL, errno.ENOSYS):
                raise  # ENOSPC and the like: no map (a sparse one would SIGBUS later)
            # no fallocate on this platform/file system: write the zeros (never a sparse file)
            zeros = bytes(min(size, 1 << 20))
            for off in range(0, size, len(zeros)):
                os.pwrite(self._redo_fd, zeros[:size - off], off)
        self._redo_map = mmap.mmap(self._redo_fd, size)
        self._redo_size = 0

    def _release_redo_map(self) -> None:
        if self._redo_map is not None:
            self._redo_map.close()
            self._redo_map = None

    def _close_redo(self) -> None:
        self._release_redo_map()
        if self._redo_fd >= 0:
            os.close(self._redo_fd)
            self._redo_fd = -1

    def client_namespace(self) -> str:
        """This journal's own random id, mixed into every client order id the engine
        derives (``make_client_id(..., namespace=)``). Upbit refuses an ``identifier``
        used before on the account, ever, while Binance accepts a reused id once the first
        order is final: two deployments, or a journal reset, that see the same signal id
        would otherwise send one leg that is refused and one that executes. Created the
        first time it is asked for (in SQLite directly, before any order)."""
        db = self._db
        row = db.execute("SELECT value FROM journal_meta WHERE key = 'client_namespace'").fetchone()
        if row is not None:
            return str(row[0])
        ns = os.urandom(6).hex()
        with self._tx(db):
            db.execute("INSERT OR IGNORE INTO journal_meta(key, value) VALUES ('client_namespace', ?)", (ns,))
        row = db.execute("SELECT value FROM journal_meta WHERE key = 'client_namespace'").fetchone()
        return str(row[0])

    def _applied_seq(self) -> int:
        row = self._conn.execute("SELECT value FROM journal_meta WHERE key = 'redo_applied_seq'").fetchone()
        return int(row[0]) if row else 0

    def _replay(self, fd: int) -> None:
        """Apply the redo lines SQLite does not have yet (sequence numbers above the one
        stored with the last applied line), in one transaction.

        Every line is checked against its checksum. What a crash can leave, and how it is
        read:

        * lines, then a *last* line cut short inside its write (unterminated, or holding
          NUL bytes the copy had not reached): that write never returned, so nothing it
          announced was sent — skipped, with a warning;
        * a region whose first byte is NUL: a flush was zeroing lines SQLite already has
          (it zeroes the first byte first) — whatever is still legible there must be
          applied already.

        Anything else is damage and stops the opening with a :class:`JournalError` that
        names the line: a line that fails its checksum before the last, a complete last
        line that fails it, an unapplied line behind a zeroed start, a line in the format
        of a kimp-fast without checksums.
        """
        size = os.fstat(fd).st_size
        chunks = []
        off = 0
        while off < size:
            b = os.pread(fd, min(1 << 20, size - off), off)
            if not b:
                break
            chunks.append(b)
            off += len(b)
        data = b"".join(chunks).rstrip(b"\x00")  # the unused, zeroed rest of the file
        applied = self._applied_seq()
        self._seq = applied
        if not data:
            return
        what_to_do = (
            "The engine does not start on a damaged redo file, so that no journal write is lost "
            "silently. Keep the file. Compare the journal with the exchanges (kimp-fast reconcile "
            "needs the journal to open: move the redo file aside first, keeping the copy), repair "
            "the journal by hand from the remaining lines if needed (each is '<crc32 hex> <JSON>'), "
            "then start with the redo file moved aside."
        )
        if data[0] == 0:
            # A flush was clearing what SQLite already has; every legible line must be applied.
            zeros = len(data) - len(data.lstrip(b"\x00"))
            at = 0
            for n, line in enumerate(data.split(b"\n"), 1):
                body = _check_line(line.lstrip(b"\x00"))
                start, at = at, at + len(line) + 1
                if body is None:
                    continue
                seq = self._decode_redo(body, n)[0]
                if seq > applied:
                    raise JournalError(
                        f"redo file {self.redo_path} is damaged: its start is zeroed (bytes 0-{zeros - 1}) but "
                        f"write {seq} (line {n}, at byte {start}) was never applied to SQLite (applied up to "
                        f"{applied}): what the zeroed bytes held is lost. {what_to_do}"
                    )
            return
        lines = data.split(b"\n")
        terminated = data.endswith(b"\n")
        if terminated:
            lines.pop()  # the empty piece after the last newline
        records = []
        last = len(lines)
        for n, line in enumerate(lines, 1):
            if line.startswith(b"[") and not (n == last and not terminated):
                raise JournalError(
                    f"redo file {self.redo_path} line {n} was written by an earlier kimp-fast, without a "
                    f"checksum; this version does not apply unchecked lines. Open the journal once with the version that wrote it (for example "
                    f"'kimp-fast status --journal {self.path}' while no engine runs): it applies "
                    f"the lines and empties the file. Then start this version."
                )
            body = _check_line(line)
            if body is None:
                torn = n == last and (not terminated or b"\x00" in line)
                if torn:
                    log.warning(
                        "journal %s: redo line %d is incomplete (%d bytes; a crash inside its write): "
                        "skipped — the write never returned, so nothing it announced was sent",
                        self.path, n, len(line),
                    )
                    break
                nul = ", NUL bytes inside" if b"\x00" in line else ""
                intact = f"lines 1-{n - 1} are intact, " if n > 1 else ""
                raise JournalError(
                    f"redo file {self.redo_path} line {n} is damaged (checksum mismatch{nul}); {intact}"
                    f"line {n} and after are not applied. {what_to_do}"
                )
            records.append(self._decode_redo(body, n))
        todo = [(seq, w) for seq, w in records if seq > applied]
        if todo:
            self._apply(todo)
            log.info("journal %s: applied %d write(s) from the redo file", self.path, len(todo))
        self._seq = max([applied] + [seq for seq, _ in records])

    def _decode_redo(self, body: bytes, n: int) -> tuple[int, _Write]:
        try:
            seq, write = _redo_decoder.decode(body)
        except msgspec.DecodeError as exc:  # a checksum over bad JSON: written wrong, not torn
            raise JournalError(f"redo file {self.redo_path} line {n} is damaged: {exc}") from None
        for key, _params in write:
            if key not in _SQL:
                raise JournalError(f"redo file {self.redo_path} line {n} is damaged: unknown write {key!r}")
        return seq, write

    def _apply(self, records: list[tuple[int, _Write]]) -> None:
        db = self._conn
        with self._tx(db):
            for _seq, write in records:
                for key, params in write:
                    cur = db.execute(_SQL[key], params)
                    if key == "update_order" and cur.rowcount != 1:
                        raise JournalError(f"unknown client order id {params[-1]!r}")
            db.execute(_SQL["redo_applied"], (str(records[-1][0]),))

    def _write(self, write: _Write) -> None:
        """One atomic journal write: now (a transaction) or, write-behind, a redo line."""
        if self._broken:
            raise JournalError(self._broken)
        if not self.write_behind:
            db = self._conn
            try:
                with self._tx(db):
                    for key, params in write:
                        db.execute(_SQL[key], params)
            except sqlite3.IntegrityError:
                raise  # the write is wrong, not the journal
            except (sqlite3.Error, OSError) as exc:
                self._write_failed(exc)
                raise
            if self.write_error:
                self._write_works_again()
            return
        seq = self._seq + 1
        body = _redo_encoder.encode((seq, write))  # _redo_line, inlined: this is the order path
        line = b"%08x %b\n" % (_crc32(body), body)
        start = self._redo_size
        end = start + len(line)
        mm = self._redo_map
        try:
            if mm is None or end > len(mm):
                self._make_room(len(line))
                mm = self._redo_map
                start, end = self._redo_size, self._redo_size + len(line)
            assert mm is not None
            mm[start:end] = line
            if self._fsync:
                mm.flush()
        except OSError as exc:
            self._broken = f"journal {self.path}: redo file unusable after a failed write ({exc})"
            raise JournalError(f"journal {self.path}: redo write failed: {exc}") from exc
        self._seq = seq
        self._redo_size = end
        self._pending.append((seq, write))

    def _make_room(self, need: int) -> None:
        """The map is full (a burst without a turn of the loop): apply what is pending and
        start over, larger if one line needs it. Off the usual path by construction."""
        if self._pending:
            self.flush()
        size = len(self._redo_map) if self._redo_map is not None else self.redo_capacity
        while size < need:
            size *= 2
        self._map_redo(size)

    def flush(self) -> None:
        """Apply every pending write to SQLite, in one transaction, then clear the redo
        file (it only ever holds what SQLite does not have)."""
        self._flush_scheduled = False
        if not self._pending:
            self._record_stamp_halt_soon()
            return
        try:
            self._apply(self._pending)
        except (sqlite3.Error, OSError) as exc:
            # The writes stay in the redo file (durable) and pending; the next flush retries.
            self._write_failed(exc)
            raise
        if self.write_error:
            self._write_works_again()
        self._pending = []
        mm = self._redo_map
        if mm is not None and self._redo_size > 0:
            # The first byte first: a crash part-way leaves a region that starts with a
            # NUL, which _replay reads as "being cleared" (every line still legible in it
            # is applied already, their sequence numbers say so).
            mm[0:1] = b"\x00"
            mm[1:self._redo_size] = bytes(self._redo_size - 1)
            self._redo_size = 0
        self._record_stamp_halt_soon()

    def _record_stamp_halt_soon(self) -> None:
        """A halt set through the stamp and not yet in SQLite is recorded now (one memory
        read when there is none)."""
        if self._halt_map is not None and self._stamp_recorded != _STAMP_HEAD.unpack_from(self._halt_map, 8)[0]:
            self.record_stamp_halt()

    def _write_works_again(self) -> None:
        log.warning("journal %s: SQLite accepts writes again (after: %s); a halt it caused stays until a resume",
                    self.path, self.write_error)
        self.write_error = ""

    def _write_failed(self, exc: BaseException) -> None:
        text = f"{type(exc).__name__}: {exc}"
        first = not self.write_error
        self.write_error = text
        if first:
            log.critical("journal %s: a SQLite write failed (%s)", self.path, text)
        cb = self.on_write_error
        if cb is not None:
            try:
                cb(text)
            except Exception:  # pragma: no cover - the callback must not hide the failure
                log.exception("journal %s: write-failure handler failed", self.path)

    def flush_soon(self) -> None:
        """Flush two turns of the event loop from now. The owner calls this whenever it
        is about to wait (an order on the network, a retry delay, the end of a signal),
        so SQLite is written while nothing else needs the CPU. Two turns, not one: the
        orders whose intents were just written may be tasks that get their first turn
        next — the turn in which they write to their sockets — and the commit must come
        after that. Without a running loop the flush happens at once."""
        if self._flush_scheduled or not self._pending:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self.flush()
            return
        self._flush_scheduled = True
        loop.call_soon(loop.call_soon, self._flush_callback)

    def _flush_callback(self) -> None:
        if not self._flush_scheduled:
            return  # flushed meanwhile (a read, flush(), close())
        try:
            self.flush()
        except Exception:  # the next read or write retries and raises to its caller
            log.exception("journal %s: applying pending writes failed", self.path)

    @property
    def pending(self) -> int:
        """Writes in the redo file that SQLite does not have yet."""
        return len(self._pending)

    # -- signals ---------------------------------------------------------------------
    def begin_signal(self, sig: Any, received_ms: int | None = None) -> tuple[bool, str | None]:
        """Record a new signal. Returns ``(True, None)`` if it is new, else
        ``(False, previous_status)`` — the durable de-duplication."""
        db = self._db
        with self._tx(db):
            cur = db.execute(_SQL["signal"], self._signal_params(sig, received_ms or _now_ms()))
        if cur.rowcount == 1:
            return True, None
        return False, self.signal_status(sig.id)

    @staticmethod
    def _signal_params(sig: Any, now: int) -> list[Any]:
        qty, kimp = sig.qty, sig.kimp
        return [sig.id, sig.action, sig.coin, None if qty is None else str(qty), sig.ts_ms, sig.ttl_ms,
                None if kimp is None else str(kimp), now]

    def signal_status(self, signal_id: str) -> str | None:
        """The journaled status of a signal id, or None if it was never recorded."""
        row = self._db.execute("SELECT status FROM signals WHERE id = ?", (signal_id,)).fetchone()
        return row["status"] if row else None

    def signal_ids(self) -> set[str]:
        """Every signal id ever recorded (the engine keeps them for de-duplication)."""
        return {r[0] for r in self._db.execute("SELECT id FROM signals")}

    def record_rejected_signal(self, signal_id: str, action: str, coin: str, report: ExecutionReport) -> None:
        """Journal a signal refused at validation (it may be malformed, so only what is known)."""
        now = _now_ms()
        if len(report.reason) > TEXT_LIMIT or len(signal_id) > 128:  # what a rejected input may leave behind
            report = msgspec.structs.replace(report, reason=bounded(report.reason), signal_id=bounded(signal_id, 128))
        self._write([("rejected_signal", [bounded(signal_id, 128), bounded(action, 16), bounded(coin, 16), now,
                                          report.status, report.reason, _encoder.encode(report).decode(), now])])

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
        now = _now_ms()
        write: _Write = []
        if signal is not None:
            write.append(("signal", self._signal_params(signal, now)))
        write.append(("finish", [report.status, report.reason, _encoder.encode(report).decode(), now,
                                 report.signal_id]))
        if position is not None:
            write.append(("position", [position.coin, _encoder.encode(position).decode(), now]))
        if clear_position is not None:
            write.append(("clear_position", [clear_position]))
        self._write(write)

    def set_position(self, position: HedgedPosition, signal_id: str, step: str, **detail: Any) -> None:
        """Replace a position outside a signal's report (the risk monitor found the
        exchanges holding less than it), with the recovery step that says why, in ONE
        transaction."""
        now = _now_ms()
        self._write([
            ("position", [position.coin, _encoder.encode(position).decode(), now]),
            ("recovery", [signal_id, position.coin, step, _detail_encoder.encode(detail).decode(), now]),
        ])

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
    def _intent_write(self, o: dict[str, Any], now: int, detail: str = "") -> _Write:
        cid = o["client_id"]
        if cid in self._known_orders:
            # what the PRIMARY KEY would say at commit time, said before anything is sent
            raise sqlite3.IntegrityError(f"UNIQUE constraint failed: orders.client_id ({cid})")
        # (_s inlined: this runs on the order path, twice per pair)
        qty, price, quote = o.get("qty"), o.get("price"), o.get("quote_amount")
        return [
            ("order", [cid, o["signal_id"], o["exchange"], o["symbol"], o["purpose"], o["attempt"],
                       o["side"], o["type"], o.get("tif"), None if qty is None else str(qty),
                       None if price is None else str(price), None if quote is None else str(quote),
                       int(o.get("reduce_only", False)), now, now]),
            ("order_event", [cid, now, "intent", detail]),
        ]

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
        row = {
            "client_id": client_id, "signal_id": signal_id, "exchange": exchange, "symbol": symbol,
            "purpose": purpose, "attempt": attempt, "side": side, "type": type, "tif": tif, "qty": qty,
            "price": price, "quote_amount": quote_amount, "reduce_only": reduce_only,
        }
        self._write(self._intent_write(row, _now_ms(), detail))
        self._known_orders.add(client_id)

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
        write on the order path instead of three. A signal that never reaches this point
        sent nothing, so recording it only now loses no de-duplication that matters.
        """
        self._write(self._intents_write(rows, signal, plan))
        known = self._known_orders
        for o in rows:
            known.add(o["client_id"])

    def rehearse_intents(
        self, rows: list[dict[str, Any]], *, signal: Any = None, plan: dict[str, Any] | None = None
    ) -> bytes:
        """The redo line :meth:`order_intents` would write, built and returned: nothing is
        written (the engine's rehearsal between signals, see ``KimpEngine.rehearse``)."""
        return _redo_line((self._seq + 1, self._intents_write(rows, signal, plan)))

    def _intents_write(self, rows: list[dict[str, Any]], signal: Any, plan: dict[str, Any] | None) -> _Write:
        now = _now_ms()
        write: _Write = []
        if signal is not None:
            write.append(("signal", self._signal_params(signal, now)))
        if plan is not None:
            detail = dict(plan)
            detail.pop("coin", None)
            write.append(("recovery", [signal.id if signal is not None else rows[0]["signal_id"],
                                       plan.get("coin", ""), "plan",
                                       _detail_encoder.encode(detail).decode(), now]))
        for o in rows:
            write.extend(self._intent_write(o, now))
        return write

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
        if client_id not in self._known_orders:
            if self._db.execute("SELECT 1 FROM orders WHERE client_id = ?", (client_id,)).fetchone() is None:
                raise JournalError(f"unknown client order id {client_id!r}")
            self._known_orders.add(client_id)
        now = _now_ms()
        write: _Write = [
            ("update_order", [state, now, exchange_order_id, _s(filled_qty), _s(avg_price), _s(quote_filled),
                              _s(fee), fee_asset, error, client_id]),
            ("order_event", [client_id, now, state, detail or (error or "")]),
        ]
        if state in FINAL_ORDER_STATES:
            write.append(("fill", [now, client_id]))
        self._write(write)

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
    def positions(self) -> dict[str, HedgedPosition]:
        rows = self._db.execute("SELECT coin, data FROM positions ORDER BY coin").fetchall()
        return {r["coin"]: _position_decoder.decode(r["data"]) for r in rows}

    # -- recovery, breakers, notifications -------------------------------------------
    def recovery_step(self, signal_id: str, coin: str, step: str, **detail: Any) -> None:
        self._write([("recovery", [signal_id, coin, step, _detail_encoder.encode(detail).decode(),
                                   _now_ms()])])

    def recovery_steps(self, signal_id: str | None = None) -> list[dict[str, Any]]:
        if signal_id is None:
            rows = self._db.execute("SELECT * FROM recovery ORDER BY id").fetchall()
        else:
            rows = self._db.execute(
                "SELECT * FROM recovery WHERE signal_id = ? ORDER BY id", (signal_id,)
            ).fetchall()
        return [dict(r) for r in rows]

    def breaker_event(self, exchange: str, old: str, new: str, reason: str) -> None:
        self._write([("breaker", [exchange, old, new, reason, _now_ms()])])

    def breaker_events(self) -> list[dict[str, Any]]:
        return [dict(r) for r in self._db.execute("SELECT * FROM breaker_events ORDER BY id").fetchall()]

    def notification(self, severity: str, title: str, message: str) -> None:
        self._write([("notification", [severity, title, message, _now_ms()])])

    def notifications(self) -> list[dict[str, Any]]:
        return [dict(r) for r in self._db.execute("SELECT * FROM notifications ORDER BY id").fetchall()]

    # -- kill switch (shared with the CLI through the file) ---------------------------
    # Two places, one switch. The ``halts`` table is the history (written straight to
    # SQLite, never write-behind: other processes write and read it). The shared memory
    # map ``<path>-halt`` carries a change stamp that moves after every change, so the
    # order path checks the switch with a memory read instead of a query (a cold query
    # costs ~100 µs), and a halt record of its own, which puts a halt in force without
    # any SQLite write (``stamp_halt``; a full disk, a read-only file). A halt in the
    # stamp wins over SQLite until a resume clears it; whoever next can write SQLite
    # records it in ``halts`` (exactly once: its token goes into ``journal_meta`` in the
    # same transaction). Record first, stamp second: a reader that sees the old stamp
    # read SQLite after the previous stamp, so it misses nothing committed before.
    def _open_halt_stamp(self) -> None:
        path = self.path + "-halt"
        try:
            self._halt_map = _open_stamp(path)
        except (OSError, ValueError) as exc:
            if self.exclusive:
                raise JournalError(
                    f"journal {self.path}: cannot reserve the kill-switch stamp {path} ({exc}); "
                    "an engine does not start without it (free space on that file system, or check "
                    "its permissions)"
                ) from None
            log.warning("journal %s: no kill-switch stamp (%s); the halt state is read from SQLite each time",
                        self.path, exc)

    def _stamp_halt(self) -> None:
        if self._halt_map is not None:
            _move_stamp(self._halt_map)

    def stamp_halt(self, reason: str, source: str = "engine", *, replace: bool = True) -> None:
        """Halt through the stamp alone (no SQLite write): in force at once for every
        process of this journal, recorded in SQLite at the next write that succeeds.
        ``replace=False`` keeps a halt the stamp already holds (an operator's reason)."""
        if self._halt_map is None:
            raise JournalError(f"journal {self.path}: no kill-switch stamp to halt through")
        if not replace and _read_stamp_halt(self._halt_map) is not None:
            return
        _write_stamp_halt(self._halt_map, reason, source)

    @property
    def stamp_halted(self) -> bool:
        """True while the stamp holds a halt (set through it and not resumed)."""
        return self._halt_map is not None and _read_stamp_halt(self._halt_map) is not None

    def record_stamp_halt(self) -> bool:
        """Record a halt set through the stamp in the ``halts`` table (once). Returns True
        when SQLite has it (or there is none); False when SQLite could not be written."""
        mm = self._halt_map
        held = _read_stamp_halt(mm) if mm is not None else None
        if held is None:
            self._stamp_recorded = 0
            return True
        token = held[0]
        if token == self._stamp_recorded:
            return True
        db = self._conn
        try:
            with self._tx(db):
                row = db.execute("SELECT value FROM journal_meta WHERE key = 'stamp_halt_token'").fetchone()
                if row is None or row[0] != str(token):
                    db.execute(_SQL["halt"], ("halt", held[1], held[2], held[3]))
                    db.execute("INSERT OR REPLACE INTO journal_meta(key, value) VALUES ('stamp_halt_token', ?)",
                               (str(token),))
        except (sqlite3.Error, OSError) as exc:
            log.warning("journal %s: the halt set through the stamp is not in SQLite yet (%s)", self.path, exc)
            if not self.write_error:
                self.write_error = f"{type(exc).__name__}: {exc}"
            return False
        self._stamp_recorded = token
        if self.write_error:
            self._write_works_again()
        return True

    def set_halt(self, reason: str, source: str = "engine", *, entries_only: bool = False) -> bool:
        """Halt. With a stamp the halt is in force before SQLite is touched, and a failed
        SQLite write only delays its record (returns False); without one, a failed write
        raises.

        ``entries_only``: refuse new ENTERs but let EXITs through (an exposure to unwind,
        a venue that refuses every order). It lives in SQLite only; a full halt already in
        force is never narrowed by it, and when SQLite cannot record it the halt is a full
        one, through the stamp (refusing too much, never too little)."""
        if entries_only:
            if self.halt_state()[0] and not self._halt_entries_only:
                return True  # a full halt is in force: keep it
            try:
                db = self._db
                with self._tx(db):
                    db.execute(_SQL["halt"], ("halt_entries", reason, source, _now_ms()))
            except (sqlite3.Error, OSError) as exc:
                if self._halt_map is None:
                    raise
                log.warning("journal %s: entries-only halt not recorded (%s); halting everything", self.path, exc)
            else:
                self._stamp_halt()
                return True
        if self._halt_map is None:
            db = self._db
            with self._tx(db):
                db.execute(_SQL["halt"], ("halt", reason, source, _now_ms()))
            return True
        self.stamp_halt(reason, source)
        return self.record_stamp_halt()

    def clear_halt(self, source: str = "engine", reason: str = "") -> None:
        """Resume: needs SQLite (a resume with a journal that cannot be written is refused
        by the error SQLite raises). Clears a halt held in the stamp too."""
        mm = self._halt_map
        held = _read_stamp_halt(mm) if mm is not None else None
        if held is not None and not self.record_stamp_halt():
            raise JournalError(f"journal {self.path}: cannot resume, SQLite cannot be written ({self.write_error or 'see the log'})")
        db = self._db
        with self._tx(db):
            db.execute(_SQL["halt"], ("resume", reason, source, _now_ms()))
        if mm is not None and held is not None and _STAMP_HEAD.unpack_from(mm, 8)[0] == held[0]:
            mm[8:8 + _STAMP_HEAD.size] = bytes(_STAMP_HEAD.size)  # token 0: no stamp halt
            struct.pack_into("<I", mm, 28, 0)
        self._stamp_recorded = 0
        self._stamp_halt()

    def halt_state(self) -> tuple[bool, str, int]:
        """(halted, reason, id of the last kill-switch row in SQLite)."""
        mm = self._halt_map
        stamp = -2 if mm is None else struct.unpack_from("<Q", mm)[0]
        if stamp == self._halt_seen:
            return self._halt_cached
        held = _read_stamp_halt(mm) if mm is not None else None
        if held is not None:
            # In force whatever SQLite says (and SQLite may be unreadable right now).
            state = (True, held[1], self._halt_cached[2])
            self._halt_entries_only = False
        else:
            row = self._conn.execute("SELECT id, action, reason FROM halts ORDER BY id DESC LIMIT 1").fetchone()
            action = "" if row is None else row["action"]
            state = (False, "", 0) if row is None else (action in ("halt", "halt_entries"), row["reason"], row["id"])
            self._halt_entries_only = action == "halt_entries"
        if stamp != -2:
            self._halt_seen, self._halt_cached = stamp, state
        return state

    @property
    def halt_entries_only(self) -> bool:
        """True while the kill switch in force refuses ENTERs only (see :meth:`set_halt`)."""
        self.halt_state()
        return self._halt_entries_only

    def halt_info(self) -> dict[str, Any] | None:
        """The halt in force, for views: reason, source, ts_ms and whether SQLite has it
        (``recorded``); None when not halted."""
        halted, reason, _ = self.halt_state()
        if not halted:
            return None
        held = _read_stamp_halt(self._halt_map) if self._halt_map is not None else None
        if held is not None:
            recorded = held[0] == self._stamp_recorded
            if not recorded:
                row = self._conn.execute("SELECT value FROM journal_meta WHERE key = 'stamp_halt_token'").fetchone()
                recorded = row is not None and row[0] == str(held[0])
            return {"reason": held[1], "source": held[2], "ts_ms": held[3], "recorded": recorded, "scope": "all"}
        row = self._conn.execute("SELECT action, reason, source, ts_ms FROM halts ORDER BY id DESC LIMIT 1").fetchone()
        return {"reason": row["reason"], "source": row["source"], "ts_ms": row["ts_ms"], "recorded": True,
                "scope": "entries" if row["action"] == "halt_entries" else "all"}

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
