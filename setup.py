"""Build script: compiles the hot-path twins in ``kimp_fast/_speedups`` with Cython.

* ``KIMP_FAST_NO_EXTENSIONS=1`` (also true/yes/on): pure-Python build, no Cython, no compiler.
* ``KIMP_FAST_REQUIRE_EXTENSIONS=1``: a failed compile is an error (CI), not a fallback.
* ``KIMP_FAST_CYTHON_TRACE=1``: line tracing for profiling/coverage of the compiled code.
* ``KIMP_FAST_NO_OPENSSL=1``: do not link libcrypto into the signing extension (it then
  uses hashlib; by default libcrypto is used when its headers are found, see
  ``kimp_fast/_speedups/_hmac_shim.h``).

Without a working compiler a normal build warns loudly and installs the pure twins, which
behave identically (only slower); ``kimp_fast.USE_EXTENSIONS`` then reports False.
"""

from __future__ import annotations

import glob
import os
import sys
import tempfile

from setuptools import setup
from setuptools.command.build_ext import build_ext

_TRUE = frozenset({"1", "true", "yes", "on"})


def _flag(name: str) -> bool:
    # Same parser as kimp_fast/_env.py (a test checks that the copies agree).
    return os.environ.get(name, "").strip().lower() in _TRUE


NO_EXTENSIONS = _flag("KIMP_FAST_NO_EXTENSIONS") or sys.implementation.name != "cpython"
REQUIRE_EXTENSIONS = _flag("KIMP_FAST_REQUIRE_EXTENSIONS")
NO_OPENSSL = _flag("KIMP_FAST_NO_OPENSSL")
CYTHON_TRACE = _flag("KIMP_FAST_CYTHON_TRACE")
HERE = os.path.dirname(os.path.abspath(__file__))


def _extensions():
    """Plain ``Extension`` objects; Cython runs later, in ``build_ext`` (see below), so that
    merely asking this script for its build requirements never needs Cython."""
    from setuptools import Extension

    macros = [("CYTHON_TRACE", "1"), ("CYTHON_TRACE_NOGIL", "1")] if CYTHON_TRACE else []
    cflags = ["-O2"] if os.name != "nt" else []
    exts = []
    speedups = os.path.join("kimp_fast", "_speedups")
    for pyx in sorted(glob.glob(os.path.join(speedups, "*_c.pyx"))):
        mod = pyx[:-4].replace(os.sep, ".")
        depends = glob.glob(os.path.join(speedups, "*.h"))  # shipped in the sdist, not the wheel
        exts.append(
            Extension(mod, [pyx], define_macros=list(macros), extra_compile_args=cflags, depends=depends)
        )
    # "One source compiled twice" (STYLE R4): a ``_x_c.pxd`` without a ``_x_c.pyx`` augments
    # the pure twin ``_x_py.py``, which Cython compiles again as module ``_x_c``.
    for pxd in sorted(glob.glob(os.path.join(speedups, "*_c.pxd"))):
        base = pxd[:-4]
        if os.path.exists(base + ".pyx"):
            continue
        mod = base.replace(os.sep, ".")
        exts.append(
            Extension(mod, [base[:-2] + "_py.py"], define_macros=macros, extra_compile_args=cflags)
        )
    return exts


def _cythonize(exts):
    from Cython.Build import cythonize  # lazy: a pure build never needs Cython

    directives = {
        "language_level": "3",
        "embedsignature": True,
        "emit_code_comments": True,
    }
    if CYTHON_TRACE:
        directives.update(linetrace=True, profile=True)
    return cythonize(exts, compiler_directives=directives, quiet=True)


_OPENSSL_PROBE = """
#define OPENSSL_SUPPRESS_DEPRECATED 1
#include <openssl/crypto.h>
#include <openssl/sha.h>
int main(void) {
    SHA256_CTX c; unsigned char d[64];
    int ok = SHA256_Init(&c) && SHA256_Final(d, &c) && SHA512((const unsigned char *)"", 0, d) != 0;
    OPENSSL_cleanse(d, sizeof d);
    return !ok;
}
"""


class OptionalBuildExt(build_ext):
    """Cythonize at build time; fall back to the pure twins when compiling fails, unless
    extensions are required."""

    def run(self):
        # Cythonize here, not at import: setuptools runs this script just to learn the
        # build requirements, before Cython is installed in the build environment.
        try:
            generated = {e.name: e for e in _cythonize(self.extensions)}
        except Exception as exc:  # Cython missing or a Cython error
            self._fallback(exc)
            return
        # Keep setuptools' own Extension objects (finalize_options annotated them) and
        # only point them at the generated C sources.
        for ext in self.extensions:
            ext.sources = generated[ext.name].sources
        try:
            super().run()
        except Exception as exc:  # compiler missing, headers missing, ...
            self._fallback(exc)

    def build_extension(self, ext):
        if ext.name.endswith("._signing_c") and self._have_openssl():
            ext.define_macros.append(("KIMP_FAST_OPENSSL", "1"))
            ext.libraries.append("crypto")
        try:
            super().build_extension(ext)
        except Exception as exc:
            self._fallback(exc)

    def _have_openssl(self):
        """Can we compile and link against libcrypto? (headers may be missing: then no)."""
        if NO_OPENSSL:
            return False
        with tempfile.TemporaryDirectory() as tmp:
            src = os.path.join(tmp, "probe.c")
            with open(src, "w") as f:
                f.write(_OPENSSL_PROBE)
            try:
                objs = self.compiler.compile([src], output_dir=tmp)
                self.compiler.link_executable(objs, os.path.join(tmp, "probe"), libraries=["crypto"])
            except Exception:
                print("* kimp-fast: OpenSSL headers/libcrypto not found; signing uses hashlib")
                return False
        print("* kimp-fast: signing links libcrypto directly")
        return True

    def _fallback(self, exc):
        if REQUIRE_EXTENSIONS:
            raise
        banner = "*" * 72
        print(
            f"{banner}\n* WARNING: compiling the kimp_fast hot path failed: {exc!r}\n"
            f"* Installing the pure-Python twins instead (identical behaviour, slower).\n{banner}",
            file=sys.stderr,
        )


if NO_EXTENSIONS:
    print("*" * 30 + " kimp-fast: pure-Python build " + "*" * 30)
    setup()
else:
    print("*" * 30 + " kimp-fast: accelerated build " + "*" * 30)
    setup(ext_modules=_extensions(), cmdclass={"build_ext": OptionalBuildExt})
