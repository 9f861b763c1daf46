"""The single source of truth for which hot-path implementation is used.

``KIMP_FAST_NO_EXTENSIONS`` forces the pure-Python twins. Only ``1/true/yes/on``
(case-insensitive) count as true: ``0`` or an empty value leaves extensions allowed.
``setup.py`` and ``packaging/kimp_backend.py`` carry copies of this parser;
``tests/test_env.py`` checks that they agree.
"""

from __future__ import annotations

import os
import sys

_TRUE = frozenset({"1", "true", "yes", "on"})


def env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in _TRUE


NO_EXTENSIONS: bool = env_flag("KIMP_FAST_NO_EXTENSIONS") or sys.implementation.name != "cpython"
