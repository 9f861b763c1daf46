"""Benchmark fixtures (pytest-benchmark; not in the default test run).

``impl`` gives every hot-path benchmark a ``[c]`` and a ``[py]`` variant, like the test
suite's facade (STYLE R7/R14); ``--no-c-extensions`` (default when
``KIMP_FAST_NO_EXTENSIONS`` is set) drops the compiled variants. Run serially, e.g.::

    python -m pytest bench --benchmark-disable-gc --benchmark-columns=median,ops,rounds \\
        --benchmark-json=.benchmarks/$(git rev-parse --short HEAD).json
"""

from __future__ import annotations

import argparse
from importlib import import_module
from types import ModuleType

import pytest

from kimp_fast._env import NO_EXTENSIONS

C_EXT_MARK = pytest.mark.c_extension


class Twin:
    def __init__(self, tag: str) -> None:
        self.tag = tag

    def __str__(self) -> str:
        return self.tag

    def module(self, name: str) -> ModuleType:
        return import_module(f"kimp_fast._speedups._{name}_{self.tag}")


@pytest.fixture(scope="session", params=(pytest.param(Twin("c"), marks=C_EXT_MARK), Twin("py")), ids=str)
def impl(request: pytest.FixtureRequest) -> Twin:
    return request.param


def pytest_addoption(parser: pytest.Parser) -> None:
    try:
        parser.addoption(
            "--c-extensions",
            action=argparse.BooleanOptionalAction,
            default=not NO_EXTENSIONS,
            dest="c_extensions",
            help="benchmark the compiled twins too (default: unless KIMP_FAST_NO_EXTENSIONS)",
        )
    except ValueError:  # already added by tests/conftest.py in a combined run
        pass


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("c_extensions"):
        return
    keep = [i for i in items if not i.get_closest_marker("c_extension")]
    dropped = [i for i in items if i.get_closest_marker("c_extension")]
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = keep
