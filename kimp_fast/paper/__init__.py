"""Paper trading: the whole product on an embedded exchange simulator (``kimp-fast paper``).

No keys, no network: the simulator runs in-process on 127.0.0.1, a seeded premium stream
moves its market, a clearly labelled **demo** strategy produces ENTER/EXIT signals, and the
real engine executes them with a real SQLite journal. The run ends with a report and an
invariant check (hedged, no duplicate order, no loss exit, journal = exchanges' ledger).

    from kimp_fast.paper import PaperOptions, run_paper
    result = asyncio.run(run_paper(PaperOptions(seed=7, faults=True)))
    result.ok, result.summary
"""

from __future__ import annotations

from .session import PaperOptions, PaperResult, PaperRun, run_paper

__all__ = ["PaperOptions", "PaperResult", "PaperRun", "run_paper"]
