"""Shared test fixtures.

Hot-path tests take the ``impl`` fixture (or a fixture derived from it) and never import
a twin directly, so every behavioural test runs on the compiled and the pure twin
(STYLE R7). ``--no-c-extensions`` deselects the compiled parameter.
"""

from __future__ import annotations

# Fixture modules contributed by each area (tests/fixtures/*.py).
pytest_plugins: list[str] = []
