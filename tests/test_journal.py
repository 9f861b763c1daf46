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
