"""``kimp-fast probe``: the latency probe (:mod:`kimp_fast.probe`; same as ``bench/latency_probe.py``)."""

from __future__ import annotations

import argparse

from kimp_fast.probe import HELP, add_arguments as _add_arguments, run as _run

__all__ = ["HELP", "add_arguments", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    _add_arguments(parser)


def run(args: argparse.Namespace) -> int:
    return _run(args)
