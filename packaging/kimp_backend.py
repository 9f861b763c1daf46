"""PEP 517 backend: setuptools, plus Cython only when the extensions are built.

A pure build (``KIMP_FAST_NO_EXTENSIONS=1`` or ``--config-settings=pure-python=true``)
asks for nothing beyond setuptools, so it works with no Cython and no C compiler.
"""

from __future__ import annotations

import os

from setuptools import build_meta as _orig
from setuptools.build_meta import *  # noqa: F401,F403  (re-export the whole backend)

_TRUE = frozenset({"1", "true", "yes", "on"})
_CYTHON_REQ = "Cython>=3.1,<4"


def _pure(config_settings: dict | None) -> bool:
    # Same parser as kimp_fast/_env.py and setup.py (a test checks the copies agree).
    if config_settings and str(config_settings.get("pure-python", "")).strip().lower() in _TRUE:
        return True
    return os.environ.get("KIMP_FAST_NO_EXTENSIONS", "").strip().lower() in _TRUE


def get_requires_for_build_wheel(config_settings=None):
    reqs = list(_orig.get_requires_for_build_wheel(config_settings))
    if not _pure(config_settings):
        reqs.append(_CYTHON_REQ)
    return reqs


def get_requires_for_build_editable(config_settings=None):
    reqs = list(_orig.get_requires_for_build_editable(config_settings))
    if not _pure(config_settings):
        reqs.append(_CYTHON_REQ)
    return reqs


def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    if _pure(config_settings):
        os.environ["KIMP_FAST_NO_EXTENSIONS"] = "1"
    return _orig.build_wheel(wheel_directory, config_settings, metadata_directory)


def build_editable(wheel_directory, config_settings=None, metadata_directory=None):
    if _pure(config_settings):
        os.environ["KIMP_FAST_NO_EXTENSIONS"] = "1"
    return _orig.build_editable(wheel_directory, config_settings, metadata_directory)
