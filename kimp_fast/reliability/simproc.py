"""Run the exchange simulator in its own process (``python -m kimp_fast.reliability.simproc``).

Long runs put the simulator on its own core. Reads a JSON object of
:class:`~adapters_direct.sim.SimServer` keyword arguments from ``argv[1]``, prints one
JSON line ``{"url", "upbit", "binance"}`` (CONTRACT §4 shape) and serves until its stdin
closes or it receives SIGTERM/SIGINT.
"""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
from typing import Any

__all__ = ["SimProcess"]


async def _serve(kwargs: dict[str, Any]) -> None:
    from adapters_direct.sim import SimServer

    server = await SimServer(**kwargs).start()
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for s in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(s, stop.set)
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    sys.stdout.write(json.dumps(server.startup_info()) + "\n")
    sys.stdout.flush()

    async def eof() -> None:
        while await reader.read(4096):
            pass
        stop.set()

    watcher = asyncio.ensure_future(eof())
    await stop.wait()
    watcher.cancel()
    await server.stop()


class SimProcess:
    """``with SimProcess(seed=1, ...) as sim: sim.url, sim.upbit_keys, sim.binance_keys``."""

    def __init__(self, **kwargs: Any) -> None:
        self.kwargs = kwargs
        self.proc: subprocess.Popen[bytes] | None = None
        self.info: dict[str, Any] = {}

    def start(self) -> "SimProcess":
        from adapters_direct.sim.config import BinanceKeys, UpbitKeys

        self.proc = subprocess.Popen(
            [sys.executable, "-m", "kimp_fast.reliability.simproc", json.dumps(self.kwargs)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError("simulator process did not start")
        self.info = json.loads(line)
        self.upbit_keys = UpbitKeys(**self.info["upbit"])
        self.binance_keys = BinanceKeys(**self.info["binance"])
        return self

    @property
    def url(self) -> str:
        return str(self.info["url"])

    def stop(self) -> None:
        if self.proc is not None:
            if self.proc.stdin is not None:
                self.proc.stdin.close()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            self.proc = None

    def __enter__(self) -> "SimProcess":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


if __name__ == "__main__":
    try:
        import uvloop

        uvloop.run(_serve(json.loads(sys.argv[1])))
    except ImportError:  # pragma: no cover
        asyncio.run(_serve(json.loads(sys.argv[1])))
