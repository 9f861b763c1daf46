"""The engine in a process of its own, for the crash-restart torture.

``python -m kimp_fast.reliability.driver CONFIG.json`` builds a :class:`KimpEngine` from
the config file (``{"sections": …, "engine_kwargs": …, "fast_limits": …}``; keys and the
webhook URL come from the environment, as in production), starts it — which reconciles
the journal with the exchanges — and then obeys JSON lines on stdin:

===========================  ==========================================================
``{"op": "submit",           submit the signals concurrently; one ``report`` event per
"signals": [...]}``          signal as it finishes, then ``batch_done``
``{"op": "resume"}``         ``engine.resume()`` (the operator's kill switch reset)
``{"op": "reconcile"}``      ``engine.reconcile()``; event ``reconciled``
``{"op": "status"}``         event ``status`` (halted, reason, positions)
``{"op": "exit"}``           close the engine cleanly and exit 0
===========================  ==========================================================

Events are JSON lines on stdout; the first are ``starting`` and then ``ready`` (after
reconciliation) or ``start_failed``. The parent kills this process with SIGKILL at
moments of its choosing; nothing here cooperates with that.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sys
from typing import Any

import msgspec

__all__ = ["main"]


def _emit(event: str, **data: Any) -> None:
    sys.stdout.write(json.dumps({"event": event, **data}, default=str) + "\n")
    sys.stdout.flush()


async def _run(cfg_path: str) -> int:
    from kimp_fast.config import EngineConfig
    from kimp_fast.engine import KimpEngine

    from .setup import harness_adapters

    with open(cfg_path, encoding="utf-8") as fh:
        spec = json.load(fh)
    cfg = EngineConfig.from_dict(spec["sections"], source=cfg_path)
    environ = dict(os.environ)
    kwargs = dict(spec.get("engine_kwargs") or {})
    for key in ("lookup_delays",):
        if key in kwargs:
            kwargs[key] = tuple(kwargs[key])
    adapters: dict[str, Any] = {}
    if spec.get("fast_limits", True):
        up, bn = harness_adapters(cfg, environ)
        await up.__aenter__()
        await bn.__aenter__()
        adapters = {"upbit": up, "binance": bn}
    _emit("starting", pid=os.getpid())
    engine = KimpEngine(cfg, environ=environ, **adapters, **kwargs)
    try:
        await engine.start()
    except Exception as exc:  # noqa: BLE001 - reported to the parent
        _emit("start_failed", error=f"{type(exc).__name__}: {exc}")
        return 2
    _emit("ready", halted=engine.halted, halt_reason=engine.halt_reason,
          positions={k: msgspec.to_builtins(v) for k, v in engine.positions().items()})
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    tasks: set[asyncio.Task[Any]] = set()

    async def submit_one(payload: Any) -> None:
        try:
            rep = await engine.submit(payload)
            _emit("report", report=msgspec.to_builtins(rep))
        except Exception as exc:  # noqa: BLE001 - submit must never raise: that is a finding
            _emit("submit_raised", error=f"{type(exc).__name__}: {exc}", payload=payload)

    async def batch(signals: list[Any]) -> None:
        await asyncio.gather(*(submit_one(s) for s in signals))
        # A quiescent point: the parent reads the journal file next. The engine's last
        # writes may still be redo lines that reach SQLite on the loop's next turns.
        engine.journal.flush()
        _emit("batch_done", n=len(signals))

    code = 0
    try:
        while True:
            line = await reader.readline()
            if not line:
                break
            try:
                cmd = json.loads(line)
            except ValueError:
                _emit("bad_command", line=line.decode("utf-8", "replace")[:200])
                continue
            op = cmd.get("op")
            if op == "submit":
                t = asyncio.ensure_future(batch(cmd.get("signals") or []))
                tasks.add(t)
                t.add_done_callback(tasks.discard)
            elif op == "resume":
                engine.resume(source="torture-operator")
                _emit("resumed", halted=engine.halted)
            elif op == "reconcile":
                summary = await engine.reconcile()
                _emit("reconciled", summary=summary, halted=engine.halted, halt_reason=engine.halt_reason)
            elif op == "status":
                _emit("status", halted=engine.halted, halt_reason=engine.halt_reason,
                      positions={k: msgspec.to_builtins(v) for k, v in engine.positions().items()})
            elif op == "exit":
                break
            else:
                _emit("bad_command", line=str(cmd)[:200])
        if tasks:
            await asyncio.gather(*tasks)
    finally:
        await engine.close()
        for ad in adapters.values():
            await ad.__aexit__(None, None, None)
        _emit("closed")
    return code


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr,
                        format="%(asctime)s driver[%(process)d] %(name)s %(levelname)s %(message)s")
    try:
        import uvloop

        return uvloop.run(_run(argv[0]))
    except ImportError:  # pragma: no cover
        return asyncio.run(_run(argv[0]))


if __name__ == "__main__":
    sys.exit(main())
