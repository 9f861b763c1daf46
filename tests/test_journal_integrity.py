"""The journal's files are trusted only as far as they can be checked.

Redo files here are written by a real process that is then SIGKILLed (the engine's own
write path), then damaged the way a disk or an operator can damage them; full disks are
small real tmpfs mounts (root only, else skipped with the reason).
"""

from __future__ import annotations

import logging
import os
import sqlite3
import stat
import subprocess
import sys

import pytest

from kimp_fast.journal import Journal, JournalError
from tests.fixtures.fs import fill
from tests.test_journal import _KILLED_ENGINE

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Three redo lines: (1) the signal, its plan and the order intent, (2) the fill, (3) a
# recovery step. Then the process dies before any SQLite commit.
_THREE_LINES = _KILLED_ENGINE.replace(
    "os.kill(", 'j.recovery_step("k1", "BTC", "result", exposure="0")\nos.kill(')


def _killed_writer(path) -> bytes:
    """Run the engine's write path in a process, SIGKILL it, return the redo file's lines."""
    Journal(path).close()
    proc = subprocess.run([sys.executable, "-c", _THREE_LINES.format(root=ROOT, path=str(path))],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == -9, proc.stderr
    with open(str(path) + "-redo", "rb") as f:
        data = f.read().rstrip(b"\x00")
    assert data.count(b"\n") == 3
    return data


def _rewrite(path, data: bytes) -> None:
    with open(str(path) + "-redo", "r+b") as f:
        f.write(data)
        f.truncate(max(len(data), 4096))  # zeros after the lines, as the engine leaves them


def _count(path, table: str) -> int:
    db = sqlite3.connect(path)
    try:
        return db.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]  # noqa: S608
    finally:
        db.close()


def _line_span(data: bytes, n: int) -> tuple[int, int]:
    """[start, end) of line n (1-based), the newline excluded."""
    start = 0
    for _ in range(n - 1):
        start = data.index(b"\n", start) + 1
    return start, data.index(b"\n", start)


@pytest.mark.parametrize("writer", ["engine", "reader"])
def test_intact_lines_are_applied_once(tmp_path, writer):
    path = tmp_path / "j.sqlite"
    _killed_writer(path)
    for _ in range(2):
        with Journal(path, write_behind=writer == "engine") as j:
            assert j.order("k1-U").state == "filled"
            assert [s["step"] for s in j.recovery_steps("k1")] == ["plan", "result"]


def test_a_flipped_digit_stops_the_start_and_names_the_line(tmp_path):
    path = tmp_path / "j.sqlite"
    data = _killed_writer(path)
    s, e = _line_span(data, 1)
    at = data.index(b'"0.01"', s)
    assert at < e
    _rewrite(path, data[:at] + b'"0.07"' + data[at + 6:])  # still valid JSON: only a checksum can tell
    with pytest.raises(JournalError, match=r"line 1 is damaged \(checksum mismatch\).*Keep the file"):
        Journal(path, write_behind=True)
    assert _count(path, "orders") == 0  # nothing of it was applied


def test_a_flipped_digit_in_the_complete_last_line_is_damage_not_a_torn_write(tmp_path):
    path = tmp_path / "j.sqlite"
    data = _killed_writer(path)
    s, e = _line_span(data, 3)
    assert data[e - 4:e] == b"]]]]" and data[e - 5:e - 4].isdigit()  # ..., ts_ms]]]]: its last digit
    flipped = b"%d" % ((int(data[e - 5:e - 4]) + 1) % 10)
    _rewrite(path, data[:e - 5] + flipped + data[e - 4:])
    with pytest.raises(JournalError, match=r"line 3 is damaged.*lines 1-2 are intact"):
        Journal(path)


def test_a_nul_inside_line_2_stops_the_start_and_names_line_2(tmp_path):
    path = tmp_path / "j.sqlite"
    data = _killed_writer(path)
    s, e = _line_span(data, 2)
    mid = (s + e) // 2
    _rewrite(path, data[:mid] + b"\x00" + data[mid + 1:])
    with pytest.raises(JournalError, match=r"line 2 is damaged \(checksum mismatch, NUL bytes inside\)"):
        Journal(path)
    assert _count(path, "orders") == 0


def test_a_zeroed_first_line_before_unapplied_lines_stops_the_start(tmp_path):
    path = tmp_path / "j.sqlite"
    data = _killed_writer(path)
    s, e = _line_span(data, 1)
    _rewrite(path, bytes(e + 1) + data[e + 1:])
    with pytest.raises(JournalError, match=r"start is zeroed \(bytes 0-\d+\) but write 2 .*never applied"):
        Journal(path, write_behind=True)


def test_a_torn_last_line_is_skipped_with_a_warning_and_the_rest_applied(tmp_path, caplog):
    path = tmp_path / "j.sqlite"
    data = _killed_writer(path)
    s, e = _line_span(data, 3)
    _rewrite(path, data[:s + (e - s) // 2] + bytes(len(data) - s - (e - s) // 2))
    with caplog.at_level(logging.WARNING, logger="kimp_fast.journal"):
        with Journal(path) as j:
            assert j.order("k1-U").state == "filled"  # lines 1 and 2
            assert [x["step"] for x in j.recovery_steps("k1")] == ["plan"]  # line 3 never returned
    assert any("redo line 3 is incomplete" in r.getMessage() and "skipped" in r.getMessage() for r in caplog.records)


def test_a_torn_last_line_with_its_newline_already_copied_is_still_a_torn_write(tmp_path, caplog):
    """A copy is not always front to back: the end of the line (its newline) may be in
    place while the middle is still zeros. Only the last line can be in that state."""
    path = tmp_path / "j.sqlite"
    data = _killed_writer(path)
    s, e = _line_span(data, 3)
    _rewrite(path, data[:s + 4] + bytes(e - s - 8) + data[e - 4:])
    with caplog.at_level(logging.WARNING, logger="kimp_fast.journal"):
        with Journal(path) as j:
            assert j.order("k1-U").state == "filled"
    assert any("redo line 3 is incomplete" in r.getMessage() for r in caplog.records)


def test_a_crash_while_a_flush_zeroed_applied_lines_opens_cleanly(tmp_path):
    path = tmp_path / "j.sqlite"
    data = _killed_writer(path)
    with Journal(path) as j:  # applies all three (and empties the file)
        assert j.order("k1-U").state == "filled"
    s, e = _line_span(data, 2)
    _rewrite(path, bytes(s + 5) + data[s + 5:])  # the flush's zeroing got into line 2
    for _ in range(2):
        with Journal(path, write_behind=True) as j:
            assert len(j.order_events("k1-U")) == 2 and len(j.fills()) == 1  # nothing twice


def test_redo_lines_of_an_earlier_version_are_refused_with_what_to_do(tmp_path):
    path = tmp_path / "j.sqlite"
    data = _killed_writer(path)
    old = b"".join(line[9:] + b"\n" for line in data.split(b"\n")[:-1])  # the same lines, no checksum
    assert old.startswith(b"[")
    _rewrite(path, old)
    with pytest.raises(JournalError, match=r"line 1 was written by an earlier kimp-fast.*kimp-fast status --journal"):
        Journal(path, write_behind=True)


def test_journal_files_are_created_0600(tmp_path):
    old = os.umask(0o022)
    try:
        path = tmp_path / "j.sqlite"
        j = Journal(path, write_behind=True)
        j.set_halt("check", "test")  # a direct SQLite write: -wal and -shm exist now
        names = ["", "-wal", "-shm", "-redo", "-halt"]
        modes = {n: stat.S_IMODE(os.stat(str(path) + n).st_mode) for n in names}
        j.close()
    finally:
        os.umask(old)
    assert modes == {n: 0o600 for n in names}


def test_two_engine_journals_never_share_a_file_whatever_write_behind_says(tmp_path):
    path = tmp_path / "j.sqlite"
    for first_wb, second_wb in ((False, False), (True, False), (False, True)):
        first = Journal(path, write_behind=first_wb, exclusive=True)
        with pytest.raises(JournalError, match="in use by another engine"):
            Journal(path, write_behind=second_wb, exclusive=True)
        with Journal(path) as reader:  # the CLI still reads
            assert reader.halt_state()[0] is False
        first.close()
        Journal(path, write_behind=second_wb, exclusive=True).close()  # the lock went with it


# -- full file systems --------------------------------------------------------------------

_OPEN_ON_FULL_DISK = r"""
import sys
sys.path.insert(0, {root!r})
from kimp_fast.journal import Journal, JournalError
from tests.fixtures.fs import fill
Journal.redo_capacity = 4096
try:
    j = Journal({path!r}, write_behind=True)
    print("halted:", j.halt_state()[0])
except JournalError as exc:
    print("JournalError:", exc)
    sys.exit(3)
"""


def test_an_engine_journal_on_a_full_tmpfs_fails_cleanly_instead_of_dying_of_sigbus(small_tmpfs):
    path = small_tmpfs / "j.sqlite"
    Journal(path).close()
    os.unlink(str(path) + "-halt")  # the stamp is made on the full disk
    with open(str(path) + "-redo", "wb") as f:
        f.write(bytes(4096))  # the redo file keeps the blocks it will map
    reader = sqlite3.connect(path)  # keeps -wal/-shm (and their blocks) in place
    reader.execute("SELECT COUNT(*) FROM signals").fetchone()
    fill(small_tmpfs)
    try:
        proc = subprocess.run([sys.executable, "-c", _OPEN_ON_FULL_DISK.format(root=ROOT, path=str(path))],
                              capture_output=True, text=True, timeout=60)
    finally:
        reader.close()
    assert proc.returncode != -7, "died of SIGBUS reading the kill-switch stamp"
    assert proc.returncode == 3, (proc.returncode, proc.stdout, proc.stderr)
    assert "cannot reserve the kill-switch stamp" in proc.stdout and "No space left" in proc.stdout
