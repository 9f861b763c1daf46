"""Reliability harness: the fault soak and the crash-restart torture (SPEC §7, docs/RELIABILITY.md).

These modules turn the promises of SPEC §7 into checks that run against the real engine,
the exchange simulator over real sockets, real SQLite journals and a real local webhook
receiver:

* :mod:`.scenario` — seeded generators of signal sequences and fault schedules;
* :mod:`.invariants` — the invariants, read from ``/_sim/ledger`` and the journal file;
* :mod:`.operator` — what a human does after ``manual_required`` (so a soak can go on);
* :mod:`.soak` — the fault soak (``bench/soak.py``);
* :mod:`.torture` and :mod:`.driver` — the crash-restart torture (``bench/crash_torture.py``):
  the engine runs in a subprocess that is killed with SIGKILL;
* :mod:`.webhook` — a Discord-compatible webhook receiver on 127.0.0.1;
* :mod:`.simctl` — a small client of the simulator's control API.

Nothing here is imported by the engine itself.
"""

from __future__ import annotations

__all__: list[str] = []
