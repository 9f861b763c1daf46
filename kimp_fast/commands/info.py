"""``kimp-fast info``: version, build and dependency versions (never secrets)."""

from __future__ import annotations

import argparse
import json
import platform
import sys
from importlib import metadata

HELP = "version, build (compiled or pure) and dependency versions"
_DEPS = ("aiohttp", "uvloop", "orjson", "msgspec", "pyjwt", "rich", "Cython", "ccxt")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print one JSON object")


def collect() -> dict:
    import kimp_fast
    from kimp_fast import orders, ratelimit, signing

    deps = {}
    for name in _DEPS:
        try:
            deps[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            deps[name] = None
    return {
        "kimp_fast": kimp_fast.__version__,
        "build": "compiled" if kimp_fast.USE_EXTENSIONS else "pure",
        "use_extensions": kimp_fast.USE_EXTENSIONS,
        "modules": {
            "signing": signing.USE_EXTENSIONS,
            "orders": orders.USE_EXTENSIONS,
            "ratelimit": ratelimit.USE_EXTENSIONS,
        },
        "python": sys.version.split()[0],
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "dependencies": deps,
    }


def run(args: argparse.Namespace) -> int:
    info = collect()
    if args.json:
        print(json.dumps(info))
        return 0
    print(f"kimp-fast {info['kimp_fast']} ({info['build']} hot path)")
    for mod, compiled in info["modules"].items():
        print(f"  {mod:<10} {'compiled' if compiled else 'pure'}")
    print(f"python {info['python']} ({info['implementation']}) on {info['platform']}")
    for name, ver in info["dependencies"].items():
        print(f"  {name:<10} {ver or '-'}")
    return 0
