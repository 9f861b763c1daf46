"""Shared test fixtures.

Hot-path tests take the ``impl`` fixture (or a fixture derived from it) and never import
a twin directly, so every behavioural test runs on the compiled and the pure twin
(STYLE R7). ``--no-c-extensions`` deselects the compiled parameter.
"""

from __future__ import annotations

# Fixture modules contributed by each area (tests/fixtures/*.py).
pytest_plugins: list[str] = ["tests.fixtures.sim", "tests.fixtures.engine", "tests.fixtures.fs"]

# ---- hot-path implementation facade (multidict/propcache pattern, STYLE R7) -------------

import argparse  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from functools import cached_property  # noqa: E402
from importlib import import_module  # noqa: E402
from types import ModuleType  # noqa: E402

import pytest  # noqa: E402

from kimp_fast._env import NO_EXTENSIONS  # noqa: E402

C_EXT_MARK = pytest.mark.c_extension


@dataclass(frozen=True)
class HotPathImplementation:
    """One twin of the hot path: compiled (``_*_c``) or pure (``_*_py``)."""

    is_pure_python: bool

    @cached_property
    def tag(self) -> str:
        return "py" if self.is_pure_python else "c"

    def __str__(self) -> str:  # the test id: test_x[c] / test_x[py]
        return self.tag

    def module(self, name: str) -> ModuleType:
        # The compiled parameter imports ``_x_c`` directly: a missing build fails loudly.
        return import_module(f"kimp_fast._speedups._{name}_{self.tag}")

    @cached_property
    def signing(self) -> ModuleType:
        return self.module("signing")

    @cached_property
    def orders(self) -> ModuleType:
        return self.module("orders")

    @cached_property
    def ratelimit(self) -> ModuleType:
        return self.module("ratelimit")


HOT_PATH_IMPLEMENTATIONS = (
    pytest.param(HotPathImplementation(is_pure_python=False), marks=C_EXT_MARK),
    HotPathImplementation(is_pure_python=True),
)


@pytest.fixture(scope="session", params=HOT_PATH_IMPLEMENTATIONS, ids=str)
def impl(request: pytest.FixtureRequest) -> HotPathImplementation:
    """Every hot-path test runs once per twin through this fixture."""
    return request.param


@pytest.fixture(scope="session")
def hot_path_twins() -> tuple[HotPathImplementation, HotPathImplementation]:
    """(compiled, pure), for differential tests; use them only in c_extension tests."""
    return HotPathImplementation(is_pure_python=False), HotPathImplementation(is_pure_python=True)


@pytest.fixture(scope="session")
def signing_impl(impl: HotPathImplementation) -> ModuleType:
    return impl.signing


@pytest.fixture(scope="session")
def orders_impl(impl: HotPathImplementation) -> ModuleType:
    return impl.orders


@pytest.fixture(scope="session")
def ratelimit_impl(impl: HotPathImplementation) -> ModuleType:
    return impl.ratelimit


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--c-extensions",
        action=argparse.BooleanOptionalAction,
        default=not NO_EXTENSIONS,
        dest="c_extensions",
        help="run the tests of the compiled twins (default: unless KIMP_FAST_NO_EXTENSIONS)",
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("c_extensions"):
        return
    selected, deselected = [], []
    for item in items:
        (deselected if item.get_closest_marker("c_extension") else selected).append(item)
    if deselected:
        config.hook.pytest_deselected(items=deselected)
        items[:] = selected
