"""``kimp-fast halt REASON`` / ``kimp-fast resume``: the kill switch, through the journal.

The switch is a row in the journal's ``halts`` table. A running engine reads it before
every signal, so these commands act on an engine running in another process (or another
machine sharing the file) within one signal — no restart, no signal to the process. While
halted, every new ENTER and EXIT is refused before anything is sent; a recovery already
in progress is finished (it only ever reduces exposure).
"""

from __future__ import annotations

import argparse

from ._common import EXIT_OK, CliError, add_journal_source, dumps, fail, open_journal

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
    reason = " ".join(args.reason).strip()
    if not reason:
        return fail("halt: give a reason", 2)
    try:
        with open_journal(args, must_exist=not args.create) as j:
            j.set_halt(reason, "cli")
            halted, stored, _ = j.halt_state()
            path = j.path
    except CliError as exc:
        return fail(str(exc), exc.code)
    if args.json:
        print(dumps({"halted": halted, "reason": stored, "journal": path}))
    else:
        print(f"halted: {stored}\n(journal {path}; a running engine refuses new signals from its next one; "
              "'kimp-fast resume' clears it)")
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
    if args.json:
        print(dumps({"halted": False, "was_halted": was_halted, "previous_reason": old_reason if was_halted else "",
                     "journal": path}))
    elif was_halted:
        print(f"resumed (was halted: {old_reason})\n(journal {path})")
    else:
        print(f"not halted; nothing to do (journal {path})")
    return EXIT_OK


run = run_halt
