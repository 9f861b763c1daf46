"""When the journal cannot be written, nothing more is traded — and the operator can still
halt. A real engine on the simulator, its journal on a real tmpfs that runs full mid-run
(a reader's open transaction keeps SQLite from reusing its WAL, so every commit needs new
space: what a `kimp-fast status` running at that moment does); the CLI in a subprocess."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import time
from decimal import Decimal as D

import pytest

from kimp_fast.journal import Journal
from kimp_fast.models import Signal
from kimp_fast.notify import LoggingNotifier
from tests.fixtures.fs import fill


def kimp(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "kimp_fast", *args], capture_output=True, text=True, timeout=60)


def sig(i: str, action: str = "ENTER", qty: str | None = "0.01") -> Signal:
    return Signal(id=i, action=action, coin="BTC", qty=None if qty is None else D(qty),
                  ts_ms=int(time.time() * 1000), ttl_ms=10_000)


@pytest.mark.parametrize("write_behind", [True, False], ids=["write_behind", "sync"])
async def test_a_journal_that_runs_full_halts_new_signals_and_the_cli_can_still_halt(
    engine_factory, control, small_tmpfs, write_behind
):
    path = small_tmpfs / "j.sqlite"
    notifier = LoggingNotifier()
    await control.market(premium=0.01, volatility=0.0)
    engine = engine_factory(notifier=notifier, journal={"path": str(path), "write_behind": write_behind})
    async with engine:
        first = await engine.submit(sig("jf-enter"))
        assert first.status == "filled", first.reason
        await control.market(premium=0.03)  # an EXIT is now profitable

        reader = sqlite3.connect(path, isolation_level=None)
        reader.execute("BEGIN")
        reader.execute("SELECT COUNT(*) FROM orders").fetchone()  # holds the WAL: commits must grow it
        filler = fill(small_tmpfs)
        try:
            second = await engine.submit(sig("jf-exit", "EXIT", None))
            for _ in range(5):  # let the write-behind flush run (two turns after the orders left)
                await __import__("asyncio").sleep(0.01)
            orders_after_failure = len(await control.orders())
            if write_behind:
                # in flight when the flush failed: it went on, through the redo file
                assert second.status == "filled", second.reason
                assert orders_after_failure == 4
            else:
                # its intents were the write that failed: nothing was sent
                assert second.status == "rejected" and "failed before any order was sent" in second.reason
                assert orders_after_failure == 2

            third = await engine.submit(sig("jf-enter-2"))
            fourth = await engine.submit(sig("jf-exit-2", "EXIT", None))
            assert len(await control.orders()) == orders_after_failure  # nothing sent after the failure
            assert third.status == "refused" and "journal write failed" in third.reason
            assert fourth.status == "refused"

            assert engine.journal.write_error, "the full disk did not fail a SQLite write"
            assert engine.halted
            assert "journal write failed" in engine.halt_reason
            assert engine.status()["journal_error"]
            crit = [n for n in notifier.sent if n["severity"] == "critical" and "journal write failed" in n["title"]]
            assert len(crit) == 1

            st = kimp("status", "--json", "--journal", str(path))
            assert st.returncode == 0, st.stderr
            status = json.loads(st.stdout)
            assert status["halted"] is True
            assert "journal write failed" in status["halt"]["reason"] and status["halt"]["recorded"] is False

            halt = kimp("halt", "operator", "stop", "--journal", str(path))
            assert halt.returncode == 0, halt.stderr
            assert "halted: operator stop" in halt.stdout
            assert "SQLite could not be written" in halt.stdout
            assert engine.halt_reason == "operator stop"
            assert (await engine.submit(sig("jf-enter-3"))).status == "refused"
        finally:
            os.unlink(filler)
            reader.execute("ROLLBACK")
            reader.close()

        engine.journal.flush()  # space again: the pending writes and the halt reach SQLite
        assert engine.journal.write_error == ""
        assert engine.halted  # still halted: only an operator resumes
    with Journal(path) as j:
        assert j.halt_state()[:2] == (True, "operator stop")
        assert [h["reason"] for h in j.halts() if h["action"] == "halt"][-1] == "operator stop"
        journaled = {o.client_id for o in j.all_orders() if o.state == "filled"}
    ledger = {o["client_id"] for o in await control.orders()}
    assert ledger <= journaled  # every order the exchange executed is in the journal


async def test_halt_from_the_cli_when_sqlite_cannot_be_written_stops_the_running_engine(
    engine_factory, control, small_tmpfs
):
    path = small_tmpfs / "j.sqlite"
    await control.market(premium=0.01, volatility=0.0)
    async with engine_factory(journal={"path": str(path)}) as engine:
        reader = sqlite3.connect(path, isolation_level=None)
        reader.execute("BEGIN")
        reader.execute("SELECT COUNT(*) FROM halts").fetchone()
        filler = fill(small_tmpfs)
        try:
            halt = kimp("halt", "disk", "full", "--journal", str(path))
            assert halt.returncode == 0, halt.stderr
            rep = await engine.submit(sig("cli-h1"))
            assert rep.status == "refused" and rep.reason == "engine halted: disk full"
            assert await control.orders() == []
        finally:
            os.unlink(filler)
            reader.execute("ROLLBACK")
            reader.close()
        engine.journal.flush()
        assert [h["reason"] for h in engine.journal.halts()] == ["disk full"]  # recorded once, later
        engine.journal.flush()
        assert len(engine.journal.halts()) == 1
        resumed = kimp("resume", "--journal", str(path))  # from another process
        assert resumed.returncode == 0, resumed.stderr
        assert not engine.halted
        rep = await engine.submit(sig("cli-h2"))
        assert rep.status == "filled", rep.reason

        # a second failure after that resume halts again
        await control.market(premium=0.03)
        reader = sqlite3.connect(path, isolation_level=None)
        reader.execute("BEGIN")
        reader.execute("SELECT COUNT(*) FROM halts").fetchone()
        filler = fill(small_tmpfs)
        try:
            await engine.submit(sig("cli-h3", "EXIT", None))
            for _ in range(5):
                await __import__("asyncio").sleep(0.01)
            n = len(await control.orders())
            assert engine.halted and "journal write failed" in engine.halt_reason
            assert (await engine.submit(sig("cli-h4"))).status == "refused"
            assert len(await control.orders()) == n
        finally:
            os.unlink(filler)
            reader.execute("ROLLBACK")
            reader.close()
