"""The SQLite journal: de-duplication, write-ahead order rows, atomic finalization."""

from __future__ import annotations

import sqlite3
from decimal import Decimal as D

import pytest

from kimp_fast.journal import SCHEMA_VERSION, Journal, JournalError
from kimp_fast.models import ExecutionReport, HedgedPosition, Signal


@pytest.fixture
def journal(tmp_path):
    j = Journal(tmp_path / "j.sqlite")
    yield j
    j.close()


def sig(i="s1", action="ENTER"):
    return Signal(id=i, action=action, coin="BTC", qty=D("0.01"), ts_ms=1_700_000_000_000)


def test_wal_mode_and_schema_version(journal, tmp_path):
    db = sqlite3.connect(tmp_path / "j.sqlite")
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert journal.schema_version == SCHEMA_VERSION


def test_a_newer_schema_is_refused(tmp_path):
    path = tmp_path / "new.sqlite"
    Journal(path).close()
    db = sqlite3.connect(path)
    db.execute(f"PRAGMA user_version={SCHEMA_VERSION + 1}")
    db.commit()
    db.close()
    with pytest.raises(JournalError, match="newer"):
        Journal(path)


def test_signal_dedup_survives_reopen(tmp_path):
    path = tmp_path / "j.sqlite"
    with Journal(path) as j:
        assert j.begin_signal(sig()) == (True, None)
        assert j.begin_signal(sig()) == (False, "processing")
    with Journal(path) as j:
        assert j.begin_signal(sig()) == (False, "processing")
        assert [s["id"] for s in j.processing_signals()] == ["s1"]


def _intent(j, cid, exchange="upbit", side="buy"):
    j.order_intent(
        client_id=cid, signal_id="s1", exchange=exchange, symbol="KRW-BTC", purpose="entry",
        attempt=1, side=side, type="limit", tif="ioc", qty=D("0.01"), price=D("140000000"),
    )


def test_order_lifecycle_records_every_state_and_the_fill(journal):
    journal.begin_signal(sig())
    _intent(journal, "c1")
    assert [o.client_id for o in journal.unfinished_orders()] == ["c1"]
    journal.update_order("c1", "unknown", error="OutcomeUnknown: timeout")
    journal.update_order(
        "c1", "filled", exchange_order_id="u-1", filled_qty=D("0.01"), avg_price=D("140000000"),
        quote_filled=D("1400000"), fee=D("700"), fee_asset="KRW",
    )
    assert journal.unfinished_orders() == []
    row = journal.order("c1")
    assert row.state == "filled" and row.filled_qty == D("0.01") and row.fee == D("700")
    assert [e["state"] for e in journal.order_events("c1")] == ["intent", "unknown", "filled"]
    fills = journal.fills()
    assert len(fills) == 1 and fills[0]["qty"] == "0.01" and fills[0]["quote"] == "1400000"


def test_duplicate_client_id_is_refused(journal):
    _intent(journal, "c1")
    with pytest.raises(sqlite3.IntegrityError):
        _intent(journal, "c1")
    with pytest.raises(JournalError):
        journal.update_order("nope", "filled")


def test_finish_signal_stores_report_and_position_atomically(journal):
    journal.begin_signal(sig())
    pos = HedgedPosition(coin="BTC", qty=D("0.01"), entry_spot_price=D(1), entry_perp_price=D(2),
                         entry_fx=D(1450))
    rep = ExecutionReport(signal_id="s1", action="ENTER", coin="BTC", status="filled", qty=D("0.01"))
    journal.finish_signal(rep, position=pos)
    assert journal.positions()["BTC"].qty == D("0.01")
    assert journal.signal_report("s1").status == "filled"
    assert journal.processing_signals() == []
    journal.begin_signal(sig("s2", "EXIT"))
    journal.finish_signal(
        ExecutionReport(signal_id="s2", action="EXIT", coin="BTC", status="filled"), clear_position="BTC"
    )
    assert journal.positions() == {}


def test_kill_switch_is_shared_between_connections(tmp_path):
    path = tmp_path / "j.sqlite"
    engine_side, cli_side = Journal(path), Journal(path)
    assert engine_side.halt_state()[0] is False
    cli_side.set_halt("operator: maintenance", source="cli")
    assert engine_side.halt_state()[:2] == (True, "operator: maintenance")
    cli_side.clear_halt(source="cli")
    assert engine_side.halt_state()[0] is False
    engine_side.close()
    cli_side.close()


def test_checkpoints_run_off_the_order_path(tmp_path):
    path = tmp_path / "j.sqlite"
    j = Journal(path, autocheckpoint=False)
    for i in range(300):
        j.begin_signal(sig(f"s{i}"))
    wal = tmp_path / "j.sqlite-wal"
    assert wal.stat().st_size > 0
    busy, pages, done = Journal.checkpoint(path)
    assert busy == 0 and pages > 0 and done == pages
    assert j.signal_status("s299") == "processing"
    j.close()


# -- write-behind: the redo file ---------------------------------------------------------
import asyncio  # noqa: E402
import os  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402


def _pair_intents(j, signal):
    j.order_intents(
        [dict(client_id=f"{signal.id}-U", signal_id=signal.id, exchange="upbit", symbol="KRW-BTC", purpose="entry",
              attempt=1, side="buy", type="limit", tif="ioc", qty=D("0.01"), price=D("140000000")),
         dict(client_id=f"{signal.id}-B", signal_id=signal.id, exchange="binance", symbol="BTCUSDT", purpose="entry",
              attempt=1, side="sell", type="market", tif=None, qty=D("0.01"), price=None)],
        signal=signal, plan={"coin": "BTC", "action": "ENTER", "qty": "0.01"},
    )


def _redo_content(path):
    """What the redo file holds: its lines end at the first NUL (the zeroed rest)."""
    data = open(str(path) + "-redo", "rb").read()
    return data.split(b"\x00", 1)[0]


def _other_connection_count(path, table):
    db = sqlite3.connect(path)
    try:
        return db.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]  # noqa: S608
    finally:
        db.close()


def test_write_behind_writes_reach_the_redo_file_first_and_sqlite_on_flush(tmp_path):
    path = tmp_path / "j.sqlite"
    j = Journal(path, write_behind=True)
    _pair_intents(j, sig("w1"))
    assert j.pending == 1
    assert b'"w1-U"' in _redo_content(path)
    assert _other_connection_count(path, "orders") == 0  # not in SQLite yet
    j.flush()
    assert j.pending == 0
    assert _redo_content(path) == b""  # it only ever holds what SQLite does not have
    assert _other_connection_count(path, "orders") == 2
    assert [s["step"] for s in j.recovery_steps("w1")] == ["plan"]
    j.close()


def test_write_behind_reads_see_every_write(tmp_path):
    j = Journal(tmp_path / "j.sqlite", write_behind=True)
    _pair_intents(j, sig("w1"))
    j.update_order("w1-U", "filled", exchange_order_id="u-1", filled_qty=D("0.01"), avg_price=D("140000000"),
                   quote_filled=D("1400000"), fee=D("700"), fee_asset="KRW")
    j.update_order("w1-B", "rejected", error="Rejected: -2019")
    assert j.pending == 3
    row = j.order("w1-U")  # a read applies what is pending first
    assert j.pending == 0
    assert row.state == "filled" and row.fee == D("700") and row.exchange_order_id == "u-1"
    assert j.order("w1-B").state == "rejected" and j.order("w1-B").filled_qty == 0
    assert [f["client_id"] for f in j.fills()] == ["w1-U"]  # the rejected order has no fill
    assert [e["state"] for e in j.order_events("w1-U")] == ["intent", "filled"]
    j.close()


def test_write_behind_refuses_what_sync_mode_refuses_before_anything_is_written(tmp_path):
    j = Journal(tmp_path / "j.sqlite", write_behind=True)
    _pair_intents(j, sig("w1"))
    size = len(_redo_content(j.path))
    with pytest.raises(JournalError, match="unknown client order id"):
        j.update_order("nope", "filled")
    with pytest.raises(sqlite3.IntegrityError):
        _pair_intents(j, sig("w1"))
    assert len(_redo_content(j.path)) in (0, size)  # nothing was written for either (the read flushed)
    assert j.pending == 0
    assert [o.client_id for o in j.all_orders()] == ["w1-U", "w1-B"]
    j.close()


def test_one_write_behind_journal_per_file(tmp_path):
    path = tmp_path / "j.sqlite"
    engine = Journal(path, write_behind=True)
    _pair_intents(engine, sig("w1"))
    with pytest.raises(JournalError, match="in use by another engine"):
        Journal(path, write_behind=True)
    # A reader (the CLI) opens fine and leaves the running engine's redo file alone.
    with Journal(path) as cli:
        assert cli.orders_for_signal("w1") == []
    assert engine.pending == 1
    engine.close()
    with Journal(path) as cli:
        assert len(cli.orders_for_signal("w1")) == 2
    assert os.path.getsize(str(path) + "-redo") == 0  # close() applied and emptied it


_KILLED_ENGINE = r"""
import os, signal, sys
from decimal import Decimal as D
sys.path.insert(0, {root!r})
from kimp_fast.journal import Journal
from kimp_fast.models import Signal
j = Journal({path!r}, write_behind=True)
j.flush()
s = Signal(id="k1", action="ENTER", coin="BTC", qty=D("0.01"), ts_ms=1_700_000_000_000)
j.order_intents([dict(client_id="k1-U", signal_id="k1", exchange="upbit", symbol="KRW-BTC", purpose="entry",
                      attempt=1, side="buy", type="limit", tif="ioc", qty=D("0.01"), price=D("140000000"))],
                signal=s, plan={{"coin": "BTC", "action": "ENTER"}})
j.update_order("k1-U", "filled", filled_qty=D("0.01"), avg_price=D("140000000"), quote_filled=D("1400000"),
               fee=D("700"), fee_asset="KRW")
os.kill(os.getpid(), signal.SIGKILL)
"""


def _killed_engine(path):
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    proc = subprocess.run([sys.executable, "-c", _KILLED_ENGINE.format(root=root, path=str(path))],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == -9, proc.stderr


@pytest.mark.parametrize("reopen_as_engine", [True, False])
def test_a_killed_engine_loses_nothing_and_nothing_is_applied_twice(tmp_path, reopen_as_engine):
    path = tmp_path / "j.sqlite"
    Journal(path).close()
    _killed_engine(path)
    assert _other_connection_count(path, "orders") == 0  # it died before flushing
    for _ in range(2):  # the second open must not apply the redo lines again
        with Journal(path, write_behind=reopen_as_engine) as j:
            assert j.signal_status("k1") == "processing"
            row = j.order("k1-U")
            assert row.state == "filled" and row.filled_qty == D("0.01")
            assert len(j.fills()) == 1
            assert [e["state"] for e in j.order_events("k1-U")] == ["intent", "filled"]
            assert [s["step"] for s in j.recovery_steps("k1")] == ["plan"]


def test_a_torn_last_redo_line_is_ignored_and_a_damaged_one_refused(tmp_path):
    path = tmp_path / "j.sqlite"
    Journal(path).close()
    _killed_engine(path)
    redo = str(path) + "-redo"
    good = _redo_content(path)
    with open(redo, "r+b") as f:
        f.seek(len(good))
        f.write(b'5f3e2a1b [3,[["order",["half')  # a write cut short by the crash: never acknowledged
    with Journal(path) as j:
        assert j.order("k1-U").state == "filled"
    with open(redo, "wb") as f:
        f.write(b"not json\n" + good)
    db = sqlite3.connect(path)
    db.execute("DELETE FROM journal_meta")
    db.commit()
    db.close()
    with pytest.raises(JournalError, match="line 1 is damaged"):
        Journal(path)


def test_a_burst_larger_than_the_redo_file_is_applied_and_sequence_numbers_carry_on(tmp_path):
    j = Journal(tmp_path / "j.sqlite", write_behind=True)
    j.redo_capacity = 4096
    j._map_redo(4096)
    for i in range(40):  # ~20 KB of writes with no flush in between
        _pair_intents(j, sig(f"c{i}"))
    assert j.pending < 40  # the full file was applied on the way
    assert len(j.all_orders()) == 80
    j.close()
    with Journal(tmp_path / "j.sqlite", write_behind=True) as j2:  # sequence numbers carry on
        _pair_intents(j2, sig("after"))
    with Journal(tmp_path / "j.sqlite") as j3:
        assert len(j3.all_orders()) == 82


async def test_flush_soon_commits_after_the_tasks_started_in_the_same_turn(tmp_path):
    """The order path: intents written, both legs started as tasks, flush requested. Each
    leg must find its intent still pending (the commit did not go first) and the commit
    must follow while the legs wait."""
    j = Journal(tmp_path / "j.sqlite", write_behind=True)
    _pair_intents(j, sig("f1"))
    seen = []

    async def leg() -> None:
        j.flush_soon()
        seen.append(j.pending)  # the moment a leg writes its request
        await asyncio.sleep(0.01)  # the network

    both = asyncio.gather(leg(), leg())
    await asyncio.sleep(0.005)
    assert seen == [1, 1]
    assert j.pending == 0 and _other_connection_count(tmp_path / "j.sqlite", "orders") == 2
    await both
    j.close()


def test_full_synchronous_write_behind_works(tmp_path):
    with Journal(tmp_path / "j.sqlite", write_behind=True, synchronous="FULL") as j:
        _pair_intents(j, sig("s1"))
        assert j.order("s1-B").state == "intent"


def test_a_halt_from_another_process_is_seen_at_once_without_a_query_otherwise(tmp_path):
    path = tmp_path / "j.sqlite"
    engine = Journal(path, write_behind=True)
    assert engine.halt_state()[0] is False
    queries = []
    engine._conn.set_trace_callback(queries.append)
    for _ in range(3):
        assert engine.halt_state()[0] is False
    assert queries == []  # the order path reads the stamp, not SQLite
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    code = (f"import sys; sys.path.insert(0, {root!r}); from kimp_fast.journal import Journal; "
            f"Journal({str(path)!r}).set_halt('operator: stop', source='cli')")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
    assert engine.halt_state()[:2] == (True, "operator: stop")
    assert len(queries) <= 1  # the halt is in the stamp itself: at most one look at SQLite
    engine.close()
