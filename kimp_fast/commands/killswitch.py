"""``kimp-fast halt REASON`` / ``kimp-fast resume``: the kill switch, through the journal.

The switch lives in the journal's kill-switch stamp (``<path>-halt``, a shared memory
map) and its history in the ``halts`` table. ``halt`` puts the halt into the stamp first —
no SQLite write involved, so it works with a full disk or a read-only database file — and
then records it in SQLite; when SQLite cannot be written it says so, the halt is in force
all the same, and whoever next can write SQLite (the engine, the next command) records
it. A running engine reads the stamp before every signal, so these commands act on an
engine running in another process within one signal — no restart, no signal to the
process. While halted, every new ENTER and EXIT is refused before anything is sent; a
recovery already in progress is finished (it only ever reduces exposure). ``resume``
needs a writable journal.
"""

from __future__ import annotations

import argparse
import os

from ._common import (
    EXIT_OK, EXIT_RUNTIME, EXIT_USAGE, CliError, add_journal_source, dumps, fail, open_journal, resolve_journal_path,
    safe_text,
)

HELP = "halt new signals (kill switch) / clear it"


def add_arguments_halt(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("reason", nargs="+", help="why (recorded in the journal and shown by status)")
    add_journal_source(parser)
    parser.add_argument("--create", action="store_true",
                        help="create the journal if it does not exist yet (halt an engine before its first start)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")


def add_arguments_resume(parser: argparse.ArgumentParser) -> None:
    add_journal_source(parser)
    parser.add_argument("--reason", default="", help="note recorded with the resume")
    parser.add_argument("--json", action="store_true", help="print one JSON object")


add_arguments = add_arguments_halt


def run_halt(args: argparse.Namespace) -> int:
    from ..journal import stamp_halt

    reason = " ".join(args.reason).strip()
    if not reason:
        return fail("halt: give a reason", 2)
    try:
        path = resolve_journal_path(args)
        if path != ":memory:" and not args.create and not os.path.exists(path):
            raise CliError(f"journal not found: {path}", EXIT_USAGE)
    except CliError as exc:
        return fail(str(exc), exc.code)
    # 1. the stamp: in force at once, no SQLite write (a full disk, a read-only file)
    stamped, stamp_error = False, ""
    if path != ":memory:":
        try:
            stamp_halt(path, reason, "cli")
            stamped = True
        except OSError as exc:
            stamp_error = f"{type(exc).__name__}: {exc}"
    # 2. the record in SQLite (it carries the halt alone when there is no stamp)
    recorded, sqlite_error = False, ""
    try:
        with open_journal(args, must_exist=False) as j:
            recorded = j.record_stamp_halt() if stamped else j.set_halt(reason, "cli")
            if stamped and not recorded:
                sqlite_error = j.write_error or "the write failed (see the log)"
            path = j.path
    except Exception as exc:  # CliError (cannot open), sqlite3.Error (cannot write)
        sqlite_error = str(exc)
    if not stamped and not recorded:
        return fail(f"halt failed: the kill-switch stamp ({stamp_error or 'none'}) and SQLite ({sqlite_error}) "
                    "both refused the write; stop the engine process itself", EXIT_RUNTIME)
    if args.json:
        print(dumps({"halted": True, "reason": reason, "journal": path, "recorded_in_sqlite": recorded,
                     **({"sqlite_error": sqlite_error} if not recorded else {})}))
    else:
        print(f"halted: {safe_text(reason)}")
        print(safe_text(f"(journal {path}; a running engine refuses new signals from its next one; "
                        "'kimp-fast resume' clears it)"))
        if not recorded:
            print(safe_text(f"note: SQLite could not be written ({sqlite_error}); the halt is in force through "
                            f"{path}-halt and is recorded in SQLite once it can be written"))
    return EXIT_OK


def run_resume(args: argparse.Namespace) -> int:
    try:
        with open_journal(args) as j:
            was_halted, old_reason, _ = j.halt_state()
            if was_halted:
                j.clear_halt("cli", args.reason)
            path = j.path
    except CliError as exc:
        return fail(str(exc), exc.code)
    except Exception as exc:  # JournalError, sqlite3.Error: the journal cannot be written
        return fail(f"resume failed, still halted: {exc}", EXIT_RUNTIME)
    if args.json:
        print(dumps({"halted": False, "was_halted": was_halted, "previous_reason": old_reason if was_halted else "",
                     "journal": path}))
    elif was_halted:
        print(safe_text(f"resumed (was halted: {old_reason})"))
        print(safe_text(f"(journal {path})"))
    else:
        print(safe_text(f"not halted; nothing to do (journal {path})"))
    return EXIT_OK


run = run_halt
